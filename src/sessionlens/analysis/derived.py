"""Rebuild both payload-derived tables, ``tool_calls`` and ``conversation_turns``, in one pass.

This module owns the combined rebuild that loading and regrouping run after every change. The
two tables are built from the same generation payloads, and parsing those payloads is most of
their cost, so here one query reads the events once and one Python pass parses each payload
once (re-sent history incrementally, see :mod:`sessionlens.analysis._history`), feeding both
builders. The rows are exactly those of :func:`~sessionlens.analysis.tools.rebuild_tool_calls`
and :func:`~sessionlens.analysis.transcript.rebuild_conversation_turns`, which remain for
callers that need one table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from ._history import HistoryParser
from ._scope import clear_sessions
from .messages import Message, decode_json_value, extract_messages
from .tools import generation_calls, insert_tool_calls
from .transcript import EVENTS_SQL, Transcriber

__all__ = [
    "Rebuilt",
    "clear_derived",
    "derive",
    "events_sql",
    "insert_derived",
    "rebuild_derived",
]

# ``tool_calls`` reads generations with an output in its own order (``_GENERATIONS_SQL`` in
# :mod:`.tools`: session, start time, id), which differs from the transcript's on ties; the
# first tool result and the first of repeated calls depend on it, so each event carries its
# place in that order. Only the relative order of those generations matters.
_TOOL_RANK = (
    "CASE WHEN o.output IS NOT NULL THEN "
    "row_number() OVER (ORDER BY t.session_id, o.start_time, o.observation_id) END"
)


class Rebuilt(NamedTuple):
    """Rows inserted by :func:`rebuild_derived`, per table."""

    tool_calls: int
    conversation_turns: int


def rebuild_derived(
    con: duckdb.DuckDBPyConnection, *, session_ids: Sequence[str] | None = None
) -> Rebuilt:
    """Recompute ``tool_calls`` and ``conversation_turns`` for some sessions (None: all).

    Equivalent to :func:`~sessionlens.analysis.tools.rebuild_tool_calls` followed by
    :func:`~sessionlens.analysis.transcript.rebuild_conversation_turns`, in about half the time.
    The caller owns the transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection from :func:`sessionlens.store.connect`.
    session_ids : sequence of str, optional
        Sessions to rebuild; ``None`` rebuilds both tables whole.

    Returns
    -------
    Rebuilt
        Number of rows inserted into each table.

    Examples
    --------
    >>> from sessionlens.store import connect
    >>> con = connect()
    >>> _ = con.execute("INSERT INTO traces (trace_id, session_id) VALUES ('t1', 's1')")
    >>> _ = con.execute(
    ...     "INSERT INTO observations (observation_id, trace_id, type, start_time, input, output) "
    ...     "VALUES ('o1', 't1', 'GENERATION', TIMESTAMP '2025-01-01', "
    ...     "'[{\\"role\\": \\"user\\", \\"content\\": \\"Weather in Oslo?\\"}]', "
    ...     "'{\\"role\\": \\"assistant\\", \\"tool_calls\\": [{\\"id\\": \\"c1\\", "
    ...     "\\"function\\": {\\"name\\": \\"get_weather\\", \\"arguments\\": \\"{}\\"}}]}')"
    ... )
    >>> rebuild_derived(con, session_ids=["s1"])
    Rebuilt(tool_calls=1, conversation_turns=2)
    >>> con.sql("SELECT role, content FROM conversation_turns ORDER BY seq").fetchall()
    [('user', 'Weather in Oslo?'), ('assistant', 'get_weather({})')]
    """
    scope, params = clear_derived(con, session_ids)
    calls, transcript = derive(con.execute(events_sql(scope), params).fetchall())
    return insert_derived(con, calls, transcript, scope, params)


def clear_derived(
    con: duckdb.DuckDBPyConnection, session_ids: Sequence[str] | None
) -> tuple[str, dict[str, Any]]:
    """Delete both tables' rows of ``session_ids`` (None: all); return the query's scope.

    With :func:`events_sql`, :func:`derive` and :func:`insert_derived` this is
    :func:`rebuild_derived` in steps, so that :func:`derive` (the Python pass, most of the
    cost) can run in another process (``sessionlens.loaders._parallel``).

    Examples
    --------
    >>> from sessionlens.store import connect
    >>> con = connect()
    >>> scope, params = clear_derived(con, ["s1"])
    >>> calls, transcript = derive(con.execute(events_sql(scope), params).fetchall())
    >>> insert_derived(con, calls, transcript, scope, params)
    Rebuilt(tool_calls=0, conversation_turns=0)
    """
    scope, params = clear_sessions(con, "tool_calls", session_ids)
    clear_sessions(con, "conversation_turns", session_ids)
    return scope, params


def events_sql(scope: str) -> str:
    """The events query of the sessions in ``scope``; its rows are what :func:`derive` reads."""
    return EVENTS_SQL.format(scope=scope, tool_rank=_TOOL_RANK)


def derive(events: Iterable[Sequence[Any]]) -> tuple[pa.Table, Transcriber]:
    """The Python pass over the events query's rows: tool calls and the transcript.

    Examples
    --------
    >>> calls, transcript = derive([])
    >>> calls.num_rows
    0
    """
    history = HistoryParser()
    transcript = Transcriber()
    generations: list[tuple[int, tuple[Any, Any, Any, Any, list[Message], list[Message]]]] = []
    for event in events:
        session_id, trace_id, observation_id, started, ended, raw_in, raw_out, rank = event
        inputs, reused = history.parse(raw_in)
        outputs = extract_messages(decode_json_value(raw_out), default_role="assistant")
        transcript.add(
            session_id, trace_id, observation_id, started, ended, inputs, reused, outputs
        )
        if rank is not None:
            # The tool call's time is the generation's end (start when it has none).
            generations.append(
                (rank, (session_id, trace_id, observation_id, ended, inputs, outputs))
            )
    generations.sort(key=itemgetter(0))
    return generation_calls(row for _, row in generations), transcript


def insert_derived(
    con: duckdb.DuckDBPyConnection,
    calls: pa.Table,
    transcript: Transcriber,
    scope: str,
    params: dict[str, Any],
) -> Rebuilt:
    """Insert what :func:`derive` made for the sessions of ``scope``."""
    return Rebuilt(insert_tool_calls(con, calls, scope, params), transcript.insert(con))
