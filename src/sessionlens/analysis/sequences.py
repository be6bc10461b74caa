"""How far each session got through its flow, and tool sequences across sessions.

This module owns the Ibis expressions over ``tool_calls`` that measure progress: per session
the ordered calls with status, duration and repeated / unexpected flags; the longest prefix
of the flow reached in order by successful calls (``completion_rate``; the first step not
reached is ``drop_off_step``); and, across sessions, sequence variants, directly-follows
transitions with latency, and the drop-off funnel per intent.

"Reached in order" is a greedy scan: step *i* is reached at the first successful call of that
tool after step *i-1*'s position. SQL has no portable fold, so the scan runs as one join and
aggregation per step (flows are short); every engine Ibis supports runs it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.types as ir

from ._ibis import backend, checkpoint
from .flows import DEFAULT_FLOWS, Flow, flow_steps_table

__all__ = [
    "dropoff_funnel",
    "flow_progress",
    "sequence_variants",
    "tool_sequences",
    "tool_transitions",
]


def _calls(con: Any, sessions: ir.Table | None) -> ir.Table:
    calls = backend(con).table("tool_calls")
    if sessions is not None:
        calls = calls.semi_join(sessions.select("session_id"), "session_id")
    return calls


def flow_progress(
    con: Any, *, assignments: ir.Table, flows: Mapping[str, Flow] | None = None
) -> ir.Table:
    """How far each session got through the flow of its intent.

    Parameters
    ----------
    con : connection or Ibis backend
    assignments : Ibis table
        ``session_id`` and ``intent`` (the classified intent of each session).
    flows : mapping of intent to Flow, optional
        Default :data:`DEFAULT_FLOWS`.

    Returns
    -------
    Ibis table
        session_id, intent, flow_length, reached_count, completion_rate (NULL when the intent
        has no flow), drop_off_step (NULL when every step was reached), success_reached.

    Examples
    --------
    >>> import ibis
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> a = ibis.memtable({"session_id": ["none"], "intent": ["booking"]})
    >>> flow_progress(con, assignments=a).to_pyarrow().to_pylist()[0]["drop_off_step"]
    'lookup_patient'
    """
    flows = DEFAULT_FLOWS if flows is None else flows
    steps = flow_steps_table(flows)
    # Not narrowed to the assigned sessions: the left joins below do that, and a semi-join
    # here would be planned once per step (a hash table each).
    ok = _calls(con, None)
    ok = ok.filter(~ok.is_error.fill_null(False)).select(
        call_session="session_id", call_seq="seq", call_tool="tool_name"
    )
    lengths = steps.group_by("intent").aggregate(
        flow_length=steps.flow_length.max(),
        success_index=steps.step_index.min(where=steps.is_success),
    )
    pos = assignments.select("session_id", "intent").mutate(
        reached_count=ibis.literal(0, "int64"), position=ibis.literal(-1, "int64")
    )
    longest = max((len(f.steps) for f in flows.values()), default=0)
    for i in range(longest):
        step = steps.filter(steps.step_index == i).select(
            step_intent="intent", step_tool="step", step_index="step_index"
        )
        cand = step.join(ok, step.step_tool == ok.call_tool)
        # One left join and a group-by per step, reading the previous step once: a filter
        # of it joined back to it would repeat the whole chain twice per step in the SQL
        # (Ibis inlines it), and DuckDB would run 2**steps copies of the scan at once, whose
        # hash tables together outgrow memory_limit instead of spilling.
        j = pos.left_join(
            cand,
            [
                # Against the step's column, not the literal ``i``: DuckDB runs an outer join
                # whose condition tests one side alone as a nested loop (100x slower).
                pos.reached_count == cand.step_index,
                pos.intent == cand.step_intent,
                pos.session_id == cand.call_session,
                cand.call_seq > pos.position,
            ],
        )
        found = j.group_by(["session_id", "intent", "reached_count", "position"]).aggregate(
            next_seq=j.call_seq.min()
        )
        pos = found.select(
            "session_id",
            "intent",
            reached_count=(found.reached_count + found.next_seq.notnull().cast("int64")),
            position=found.next_seq.fill_null(found.position).cast("int64"),
        )
        # On Spark the plan of each step is cut here (see ``checkpoint``).
        pos = checkpoint(pos)
    out = pos.left_join(lengths, pos.intent == lengths.intent).drop("intent_right")
    drop = steps.select(drop_intent="intent", drop_index="step_index", drop_off_step="step")
    out = out.left_join(
        drop, (out.intent == drop.drop_intent) & (out.reached_count == drop.drop_index)
    )
    return out.select(
        "session_id",
        "intent",
        "flow_length",
        "reached_count",
        completion_rate=(out.reached_count.cast("float64") / out.flow_length.cast("float64")),
        drop_off_step=out.drop_off_step,
        success_reached=out.success_index.notnull() & (out.reached_count > out.success_index),
    )


def tool_sequences(
    con: Any,
    *,
    assignments: ir.Table | None = None,
    flows: Mapping[str, Flow] | None = None,
) -> ir.Table:
    """Per session, the ordered tool calls with status, duration and flags.

    Parameters
    ----------
    con : connection or Ibis backend
    assignments : Ibis table, optional
        ``session_id`` and ``intent``; restricts the sessions and marks calls to tools outside
        the intent's flow as unexpected. Default: every session, nothing unexpected.
    flows : mapping of intent to Flow, optional

    Returns
    -------
    Ibis table
        session_id, calls (array of structs ``seq, tool, ok, duration_ms, repeated,
        unexpected`` sorted by ``seq``), tool_call_count, failed_tool_calls, repeated_calls,
        unexpected_calls, variant (tool names joined by ``" > "``).

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> row = tool_sequences(con).order_by("session_id").limit(1).to_pyarrow().to_pylist()[0]
    >>> row["tool_call_count"] == len(row["calls"])
    True
    """
    flows = DEFAULT_FLOWS if flows is None else flows
    calls = _calls(con, assignments)
    ok = ~calls.is_error.fill_null(False)
    calls = calls.mutate(
        ok=ok,
        duration_ms=calls.end_time.delta(calls.start_time, unit="millisecond"),
        repeated=ibis.row_number().over(
            group_by=[calls.session_id, calls.tool_name], order_by=calls.seq
        )
        > 0,
    )
    if assignments is not None:
        steps = flow_steps_table(flows).select(s_intent="intent", s_step="step").distinct()
        a = assignments.select(a_session="session_id", a_intent="intent")
        calls = calls.left_join(a, calls.session_id == a.a_session)
        calls = calls.left_join(
            steps, (calls.a_intent == steps.s_intent) & (calls.tool_name == steps.s_step)
        )
        unexpected = calls.s_step.isnull() & calls.a_intent.isin(list(flows))
    else:
        unexpected = ibis.literal(False)
    calls = calls.mutate(unexpected=unexpected)
    grouped = calls.group_by("session_id").aggregate(
        calls=ibis.struct(
            {
                "seq": calls.seq,
                "tool": calls.tool_name,
                "ok": calls.ok,
                "duration_ms": calls.duration_ms,
                "repeated": calls.repeated,
                "unexpected": calls.unexpected,
            }
        )
        .collect()
        .sort(),
        tool_call_count=calls.count(),
        failed_tool_calls=(~calls.ok).sum(),
        repeated_calls=calls.repeated.sum(),
        unexpected_calls=calls.unexpected.sum(),
    )
    return grouped.mutate(
        variant=grouped.calls.map(lambda c: c.tool).join(" > "),
    )


def sequence_variants(
    con: Any, *, sequences: ir.Table | None = None, limit: int | None = None
) -> ir.Table:
    """Distinct tool sequences across sessions with counts and completion.

    ``sequences`` is :func:`tool_sequences` output, optionally joined with a
    ``completion_rate`` column (as ``session_analysis`` has); by default the cached analysis.

    Returns
    -------
    Ibis table
        variant, sessions, share, mean_completion_rate (NULL without completion data), ordered
        by sessions descending.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> v = sequence_variants(con, sequences=tool_sequences(con)).to_pyarrow()
    >>> sum(v.column("sessions").to_pylist()) == len(tool_sequences(con).to_pyarrow())
    True
    """
    seqs = sequences if sequences is not None else _analysis_variants(con)
    if "completion_rate" not in seqs.columns:
        seqs = seqs.mutate(completion_rate=ibis.null("float64"))
    total = seqs.count()
    out = seqs.group_by("variant").aggregate(
        sessions=seqs.count(), mean_completion_rate=seqs.completion_rate.mean()
    )
    out = out.mutate(share=out.sessions.cast("float64") / total.as_scalar().cast("float64"))
    out = out.order_by([ibis.desc("sessions"), "variant"])
    return out.limit(limit) if limit is not None else out


def _analysis_variants(con: Any) -> ir.Table:
    sa = backend(con).table("session_analysis")
    sa = sa.select("session_id", "completion_rate")
    seqs = tool_sequences(con, assignments=None)
    return seqs.join(sa, "session_id").select("session_id", "variant", "completion_rate")


def tool_transitions(con: Any, *, session_ids: ir.Table | None = None) -> ir.Table:
    """Directly-follows transitions between tools within sessions.

    Each consecutive pair of calls in a session (ordered by ``seq``) is one transition, from
    ``"(start)"`` before the first call and to ``"(end)"`` after the last. Latency is the gap
    between the end of one call and the start of the next.

    Returns
    -------
    Ibis table
        from_tool, to_tool, transitions, sessions, median_latency_seconds.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> t = tool_transitions(con).to_pyarrow().to_pylist()
    >>> any(r["from_tool"] == "(start)" for r in t)
    True
    """
    calls = _calls(con, session_ids)
    w = ibis.window(group_by=calls.session_id, order_by=calls.seq)
    calls = calls.mutate(
        next_tool=calls.tool_name.lead().over(w),
        next_start=calls.start_time.lead().over(w),
        first=ibis.row_number().over(w) == 0,
    )
    pairs = calls.select(
        "session_id",
        from_tool=calls.tool_name,
        to_tool=calls.next_tool.fill_null("(end)"),
        latency=calls.next_start.delta(calls.end_time, unit="millisecond").cast("float64") / 1000.0,
    )
    starts = calls.filter(calls.first).select(
        "session_id",
        from_tool=ibis.literal("(start)"),
        to_tool=calls.tool_name,
        latency=ibis.null("float64"),
    )
    both = pairs.union(starts)
    return (
        both.group_by(["from_tool", "to_tool"])
        .aggregate(
            transitions=both.count(),
            sessions=both.session_id.nunique(),
            median_latency_seconds=both.latency.median(),
        )
        .order_by([ibis.desc("transitions"), "from_tool", "to_tool"])
    )


def dropoff_funnel(
    con: Any, *, progress: ir.Table | None = None, flows: Mapping[str, Flow] | None = None
) -> ir.Table:
    """Per intent and flow step, how many sessions reached it and how many stopped there.

    ``progress`` is :func:`flow_progress` output (or anything with intent and
    reached_count); by default the cached ``session_analysis``.

    Returns
    -------
    Ibis table
        intent, step_index, step, sessions (of the intent), reached, dropped_here,
        reached_share.
    """
    flows = DEFAULT_FLOWS if flows is None else flows
    if progress is None:
        sa = backend(con).table("session_analysis")
        sa = sa.filter(sa.completion_rate.notnull())
        progress = sa.select(
            intent=sa.caller_intent_type,
            reached_count=(sa.completion_rate * _flow_len(sa, flows)).round().cast("int64"),
        )
    steps = flow_steps_table(flows)
    per_intent = progress.group_by("intent").aggregate(sessions=progress.count())
    j = steps.join(progress, steps.intent == progress.intent)
    reached = j.group_by([j.intent, j.step_index, j.step]).aggregate(
        reached=(j.reached_count > j.step_index).sum(),
        dropped_here=(j.reached_count == j.step_index).sum(),
    )
    out = reached.join(per_intent, "intent")
    return out.mutate(
        reached_share=out.reached.cast("float64") / out.sessions.cast("float64")
    ).order_by(["intent", "step_index"])


def _flow_len(sa: ir.Table, flows: Mapping[str, Flow]) -> ir.IntegerValue:
    cases = [(sa.caller_intent_type == k, len(f.steps)) for k, f in flows.items()]
    return ibis.cases(*cases, else_=ibis.null("int64")) if cases else ibis.null("int64")
