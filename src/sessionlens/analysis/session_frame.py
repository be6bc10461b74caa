"""The per-session analysis frame: flows, sequences, cost, counts and status in one Ibis table.

This module owns how the analyses combine into one row per session (everything
``session_analysis`` holds except the cache's bookkeeping) and the input fingerprint the cache
compares. Both are Ibis expressions, so they run wherever the canonical tables live; the cache
(:mod:`sessionlens.cache`) decides which sessions to compute and writes the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from ._ibis import backend
from .cost import session_costs
from .flows import Flow
from .sequences import flow_progress, tool_sequences

__all__ = ["FRAME_PARTS", "session_fingerprints", "session_frame", "trace_summaries"]

#: The parts of the frame, each a table keyed by ``session_id``, in the order they are joined
#: (see ``stage`` in :func:`session_frame`). The last, tool sequences, is the wide one (each
#: session's calls as a list): it is joined with the Python pass's rows in the final query.
FRAME_PARTS = ("progress", "costs", "turns", "errors", "last_calls", "sequences")


def _trace_hashes(db: Any) -> ir.Table:
    traces = db.table("traces")
    return traces.select(
        "trace_id", "session_id", h=traces.trace_id.concat(traces.row_hash.fill_null("")).hash()
    )


def _analysable(db: Any, include_internal: bool) -> ir.Table:
    sessions = db.table("sessions")
    if not include_internal:
        sessions = sessions.filter(~sessions.is_internal)
    return sessions.select("session_id")


def trace_summaries(con: Any, *, include_internal: bool = False) -> ir.Table:
    """Per analysable session, the trace part of its fingerprint: ``tn`` traces, ``tx`` their
    hash (the first and third field of :func:`session_fingerprints`'s text).

    Reads ``traces`` only (a tenth of the rows of ``observations``): the cache compares it with
    the cached fingerprints to find the sessions whose traces changed, moved or vanished.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> ts = trace_summaries(con).to_pyarrow()
    >>> fp = session_fingerprints(con).to_pyarrow()
    >>> ts.column_names, ts.num_rows == fp.num_rows
    (['session_id', 'tx', 'tn'], True)
    """
    db = backend(con)
    th = _trace_hashes(db)
    per = th.group_by("session_id").aggregate(tx=th.h.bit_xor(), tn=th.count())
    return _analysable(db, include_internal).join(per, "session_id")


def session_fingerprints(
    con: Any, *, include_internal: bool = False, sessions: ir.Table | None = None
) -> ir.Table:
    """Per analysable session, a hash of its trace and observation rows (ids and content).

    XOR of per-row hashes makes it independent of row order, so every engine computes it
    without ordered aggregation. The text is ``tn:n:tx:ox`` (traces, observations and their
    hashes). ``sessions`` (a table with ``session_id``) limits it to those sessions, reading
    only their traces' observations.
    """
    db = backend(con)
    obs = db.table("observations")
    th = _trace_hashes(db)
    if sessions is not None:
        th = th.semi_join(sessions, "session_id")
        obs = obs.semi_join(th, "trace_id")
    oh = obs.select("trace_id", h=obs.observation_id.concat(obs.row_hash.fill_null("")).hash())
    per_trace = oh.group_by("trace_id").aggregate(ox=oh.h.bit_xor(), on=oh.count())
    j = th.left_join(per_trace, "trace_id")
    per = j.group_by("session_id").aggregate(
        tx=j.h.bit_xor(), ox=j.ox.bit_xor(), n=j.on.sum(), tn=j.count()
    )
    s = _analysable(db, include_internal).join(per, "session_id")
    fp = (
        s.tn.cast("string")
        .concat(":", s.n.fill_null(0).cast("string"), ":", s.tx.cast("string"), ":")
        .concat(s.ox.fill_null(0).cast("string"))
    )
    return s.select("session_id", input_fingerprint=fp)


def session_frame(
    con: Any,
    py: pa.Table | ir.Table,
    *,
    flows: Mapping[str, Flow],
    as_of: datetime,
    inactivity: timedelta,
    stage: Callable[[str, ir.Table], ir.Table] | None = None,
    clock: ir.Table | None = None,
) -> ir.Table:
    """Every ``session_analysis`` column but the cache bookkeeping, for the sessions in ``py``.

    ``py`` holds the Python pass's results per session (intent, details, goals), as Arrow or
    as an Ibis table of the same backend; the rest is
    Ibis over the canonical tables. Status: ``completed`` when the flow's success step was
    reached in order (or, for an intent without a flow, every declared success goal was met);
    else ``in_progress`` when the last activity is within ``inactivity`` of ``as_of``; else
    ``failed`` when the session ended on an error (its last tool call failed, or the last of
    its observations to end is at ERROR level); else ``abandoned``. ``tool_calls`` is an array of
    structs the writer stores as ``tool_sequence_json``.

    ``stage``, given, is called with each part's name (one of :data:`FRAME_PARTS`) and
    expression, then (but for the last part, joined in the returned expression with the Python
    pass's rows) with ``"frame_<name>"`` and the frame with that part joined, and returns
    the table used in its place: the cache runs each into a temporary table, so that DuckDB
    holds one part's hash tables at a time. (As one query, the frame's dozens of joins and
    aggregations are all live at once, and their hash tables together outgrow
    ``memory_limit`` instead of spilling.) The rows are the same either way.

    ``clock`` (a one-row table of the same backend with a ``cutoff`` timestamp column, which
    must hold ``as_of - inactivity``) is read instead of that literal: the expression, and
    so its compiled SQL, then does not change with the time of the run (the cache reuses it).

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> from sessionlens._pypass import PY_SCHEMA
    >>> from sessionlens.analysis.flows import DEFAULT_FLOWS
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> py = PY_SCHEMA.empty_table()  # no session to compute: the parts are still built
    >>> seen = []
    >>> f = session_frame(con, py, flows=DEFAULT_FLOWS, as_of=datetime(2030, 1, 1),
    ...     inactivity=timedelta(minutes=30), stage=lambda n, t: seen.append(n) or t)
    >>> tuple(seen[::2]) == FRAME_PARTS, seen[1], f.count().execute()
    (True, 'frame_progress', 0)
    """
    db = backend(con)
    # An Ibis table keeps the Python pass's rows where they are (a DuckDB temp table, or a
    # Spark frame when the pass ran on the executors).
    todo = py if isinstance(py, ir.Table) else ibis.memtable(py)
    assign = todo.select("session_id", intent=todo.intent)
    prog = flow_progress(db, assignments=assign, flows=flows).drop("intent")
    seqs = tool_sequences(db, assignments=assign, flows=flows)
    costs = session_costs(db, session_ids=todo.select("session_id"))
    sessions = db.table("sessions").semi_join(todo, "session_id")
    traces = db.table("traces").semi_join(todo, "session_id")
    traces = traces.filter(~traces.is_internal)
    obs = db.table("observations").semi_join(traces, "trace_id")
    turns = db.table("conversation_turns").semi_join(todo, "session_id")
    turns = turns.filter(turns.role != "system")
    turn_counts = turns.group_by("session_id").aggregate(turn_count=turns.count())
    oj = obs.select("trace_id", "level", "end_time").join(
        traces.select("trace_id", "session_id"), "trace_id"
    )
    errs = oj.group_by("session_id").aggregate(
        error_count=(oj.level == "ERROR").sum(),
        last_end=oj.end_time.max(),
        last_error_end=oj.end_time.max(where=oj.level == "ERROR"),
    )
    calls = db.table("tool_calls").semi_join(todo, "session_id")
    last = calls.group_by("session_id").aggregate(
        last_seq=calls.seq.max(), last_error_seq=calls.seq.max(where=calls.is_error)
    )
    f = sessions
    parts = (prog, costs, turn_counts, errs, last, seqs)
    for name, part in zip(FRAME_PARTS, parts, strict=True):
        if stage is not None:
            part = stage(name, part)
        if name == FRAME_PARTS[-1]:
            # The wide columns (the Python pass's text and JSON, the call lists) join last:
            # staging a frame that holds them copied them once per part (6x the final write).
            f = f.left_join(todo, "session_id").drop("session_id_right")
        f = f.left_join(part, "session_id").drop("session_id_right")
        if stage is not None and name != FRAME_PARTS[-1]:
            f = stage(f"frame_{name}", f)
    ended_on_error = (f.last_error_seq.notnull() & (f.last_error_seq == f.last_seq)) | (
        f.last_error_end.notnull() & (f.last_error_end == f.last_end)
    )
    success = f.success_reached.fill_null(False) | (
        f.flow_length.isnull() & f.goal_success.fill_null(False)
    )
    if clock is None:
        cutoff: ir.Value = ibis.literal(as_of - inactivity, "timestamp")
    else:
        cutoff = clock.cutoff.max().as_scalar()
    recent = f.end_time >= cutoff
    status = ibis.cases(
        (success, "completed"),
        (recent.fill_null(False), "in_progress"),
        (ended_on_error, "failed"),
        else_="abandoned",
    )
    return f.select(
        "session_id",
        "user_id",
        "start_time",
        "end_time",
        "is_internal",
        caller_intent_type=f.intent,
        caller_intent_confidence=f.confidence,
        caller_intent_summary=f.summary,
        booking_details_json=f.booking_details_json,
        tool_calls=f.calls,
        expected_flow_json=f.expected_flow_json,
        completion_rate=f.completion_rate,
        drop_off_step=f.drop_off_step,
        goals_json=f.goals_json,
        goal_completion=f.goal_completion,
        status=status,
        turn_count=f.turn_count.fill_null(0),
        tool_call_count=f.tool_call_count.fill_null(0),
        failed_tool_calls=f.failed_tool_calls.fill_null(0),
        error_count=f.error_count.fill_null(0),
        input_tokens=f.input_tokens,
        output_tokens=f.output_tokens,
        cache_read_tokens=f.cache_read_tokens,
        cache_write_tokens=f.cache_write_tokens,
        reasoning_tokens=f.reasoning_tokens,
        cost_usd=f.cost_usd,
        cost_source=f.cost_source,
        unpriced_models=f.unpriced_models,
        internal_cost_usd=f.internal_cost_usd,
        models=f.models,
        duration_seconds=f.end_time.delta(f.start_time, unit="millisecond").cast("float64")
        / 1000.0,
        session_tag=f.session_tag,
    )
