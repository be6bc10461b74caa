"""Build the derived ``tool_calls`` table: one row per tool invocation, ordered per session.

This module owns ``tool_calls``. A tool call shows up in a trace in two ways: as a ``TOOL``
observation (the execution) and as a request inside a ``GENERATION`` output (the model asking for
it). Many instrumentations record only one of the two, so both are read and a call seen both ways
counts once. The ``TOOL`` part and the matching are set-based SQL; Python only parses generation
payloads, whose shapes differ per SDK (see :mod:`sessionlens.analysis.messages`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from .._arrow_sql import ARROW, execute_arrow
from ._history import HistoryParser
from ._scope import clear_sessions
from .messages import Message, decode_json_value, extract_messages

__all__ = ["rebuild_tool_calls"]


_GEN_SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("trace_id", pa.string()),
        ("observation_id", pa.string()),
        ("call_index", pa.int32()),
        ("tool_name", pa.string()),
        ("tool_call_id", pa.string()),
        ("start_time", pa.timestamp("us")),
        ("arguments", pa.string()),
        ("result", pa.string()),
    ]
)

# Matching, in two passes, within a trace and one-to-one (row_number pairs the n-th occurrence
# on each side): first by tool_call_id; then, for calls whose ids cannot meet (Gemini has no
# call ids, several instrumentations leave the TOOL span without one), by tool name in time order.
_INSERT_SQL = """
INSERT INTO tool_calls (session_id, trace_id, observation_id, seq, tool_name, tool_call_id,
                        start_time, end_time, arguments, result, is_error, origin)
WITH tool_obs AS (
    SELECT t.session_id, o.trace_id, o.observation_id, 0 AS call_index,
           coalesce(o.tool_name,
                    regexp_replace(o.name, '^(running tool: |execute_tool |tool: )', '')
           ) AS tool_name,
           o.tool_call_id, o.start_time, o.end_time,
           coalesce(o.tool_arguments, o.input) AS arguments, o.output AS result,
           coalesce(o.level = 'ERROR', FALSE) AS is_error, 'tool_observation' AS origin
    FROM observations o JOIN traces t ON t.trace_id = o.trace_id
    WHERE o.type = 'TOOL' AND NOT coalesce(t.is_internal, FALSE) {scope}
),
gen AS (
    SELECT session_id, trace_id, observation_id, call_index, tool_name, tool_call_id,
           start_time, NULL::TIMESTAMP AS end_time, arguments::JSON AS arguments,
           result::JSON AS result, FALSE AS is_error, 'generation_output' AS origin
    FROM {gen_view}
),
t_id AS (
    SELECT observation_id, trace_id, tool_call_id, row_number() OVER (
        PARTITION BY trace_id, tool_call_id ORDER BY start_time, observation_id) AS n
    FROM tool_obs WHERE tool_call_id IS NOT NULL
),
g_id AS (
    SELECT observation_id, call_index, trace_id, tool_call_id, row_number() OVER (
        PARTITION BY trace_id, tool_call_id ORDER BY start_time, observation_id, call_index) AS n
    FROM gen WHERE tool_call_id IS NOT NULL
),
by_id AS (
    SELECT g.observation_id, g.call_index FROM g_id g JOIN t_id t USING (trace_id, tool_call_id, n)
),
t_rest AS (
    SELECT observation_id, trace_id, tool_name, row_number() OVER (
        PARTITION BY trace_id, tool_name ORDER BY start_time, observation_id) AS n
    FROM tool_obs t
    WHERE tool_call_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM gen g WHERE g.trace_id = t.trace_id AND g.tool_call_id = t.tool_call_id)
),
g_rest AS (
    SELECT observation_id, call_index, trace_id, tool_name, row_number() OVER (
        PARTITION BY trace_id, tool_name ORDER BY start_time, observation_id, call_index) AS n
    FROM gen g
    WHERE tool_call_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM tool_obs t WHERE t.trace_id = g.trace_id AND t.tool_call_id = g.tool_call_id)
),
by_name AS (
    SELECT g.observation_id, g.call_index, t.observation_id AS tool_observation_id
    FROM g_rest g JOIN t_rest t USING (trace_id, tool_name, n)
),
calls AS (
    -- A TOOL span without a call id borrows the id of the request it was matched to.
    SELECT t.* REPLACE (coalesce(t.tool_call_id, (
        SELECT any_value(g.tool_call_id) FROM by_name m JOIN gen g
            ON g.observation_id = m.observation_id AND g.call_index = m.call_index
        WHERE m.tool_observation_id = t.observation_id)) AS tool_call_id)
    FROM tool_obs t
    UNION ALL BY NAME
    SELECT * FROM gen g
    WHERE NOT EXISTS (SELECT 1 FROM by_id m
                      WHERE m.observation_id = g.observation_id AND m.call_index = g.call_index)
      AND NOT EXISTS (SELECT 1 FROM by_name m
                      WHERE m.observation_id = g.observation_id AND m.call_index = g.call_index)
)
SELECT session_id, trace_id, observation_id,
       row_number() OVER (
           PARTITION BY coalesce(session_id, 'trace:' || trace_id)
           ORDER BY start_time NULLS LAST, observation_id, call_index
       ) AS seq,
       tool_name, tool_call_id, start_time, end_time, arguments, result, is_error, origin
FROM calls
"""

_GENERATIONS_SQL = """
SELECT t.session_id, o.trace_id, o.observation_id, coalesce(o.end_time, o.start_time), o.input,
       o.output
FROM observations o JOIN traces t ON t.trace_id = o.trace_id
WHERE o.type = 'GENERATION' AND o.output IS NOT NULL AND NOT coalesce(t.is_internal, FALSE)
      {scope}
ORDER BY t.session_id, o.start_time, o.observation_id
"""


def rebuild_tool_calls(
    con: duckdb.DuckDBPyConnection, *, session_ids: Sequence[str] | None = None
) -> int:
    """Recompute ``tool_calls`` for some sessions (all when ``session_ids`` is None).

    Rows of those sessions are deleted and inserted afresh from ``TOOL`` observations and from the
    tool calls requested in ``GENERATION`` outputs. A call seen both ways is kept once, as its
    ``TOOL`` row. Internal traces are skipped. The caller owns the transaction.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection from :func:`sessionlens.store.connect`.
    session_ids : sequence of str, optional
        Sessions to rebuild; ``None`` rebuilds the whole table.

    Returns
    -------
    int
        Number of rows inserted.

    Examples
    --------
    >>> from sessionlens.store import connect
    >>> con = connect()
    >>> _ = con.execute("INSERT INTO traces (trace_id, session_id) VALUES ('t1', 's1')")
    >>> _ = con.execute(
    ...     "INSERT INTO observations (observation_id, trace_id, type, name, start_time, input) "
    ...     "VALUES ('o1', 't1', 'TOOL', 'get_weather', TIMESTAMP '2025-01-01', '{\\"city\\": 1}')"
    ... )
    >>> rebuild_tool_calls(con)
    1
    >>> con.sql("SELECT seq, tool_name, origin FROM tool_calls").fetchall()
    [(1, 'get_weather', 'tool_observation')]
    """
    scope, params = clear_sessions(con, "tool_calls", session_ids)
    rows = con.execute(_GENERATIONS_SQL.format(scope=scope), params).fetchall()
    history = HistoryParser()
    calls = generation_calls(
        (
            session_id,
            trace_id,
            observation_id,
            at,
            history.parse(raw_input)[0],
            extract_messages(decode_json_value(raw_output), default_role="assistant"),
        )
        for session_id, trace_id, observation_id, at, raw_input, raw_output in rows
    )
    return insert_tool_calls(con, calls, scope, params)


def insert_tool_calls(
    con: duckdb.DuckDBPyConnection, calls: pa.Table, scope: str, params: dict[str, Any]
) -> int:
    """Insert ``TOOL`` observations and the generation ``calls``, matched; return the count.

    ``scope`` and ``params`` are those :func:`~sessionlens.analysis._scope.clear_sessions`
    returned; ``calls`` is the table :func:`generation_calls` made for the same sessions.
    """
    inserted = execute_arrow(con, _INSERT_SQL.format(scope=scope, gen_view=ARROW), calls, params)
    return int(inserted[0][0]) if inserted else 0


def generation_calls(
    rows: Iterable[tuple[str | None, str, str, Any, list[Message], list[Message]]],
) -> pa.Table:
    """Tool calls requested in generation outputs, with results found in later inputs.

    ``rows`` are ``(session_id, trace_id, observation_id, time, inputs, outputs)`` in the order
    of ``_GENERATIONS_SQL``, with the messages of each generation's input and output.

    Examples
    --------
    >>> from sessionlens.analysis.messages import ToolCallRef
    >>> call = [Message("assistant", None, (ToolCallRef("c1", "f"),))]
    >>> result = [Message("tool", "42", (), "c1")]
    >>> rows = [("s", "t", "o1", None, [], call), ("s", "t", "o2", None, result, [])]
    >>> generation_calls(rows).select(["tool_name", "result"]).to_pylist()
    [{'tool_name': 'f', 'result': '42'}]
    """
    cols: dict[str, list[Any]] = {name: [] for name in _GEN_SCHEMA.names}
    seen: set[tuple[str, str]] = set()
    results: dict[tuple[str | None, str], str | None] = {}
    for session_id, trace_id, observation_id, at, inputs, outputs in rows:
        # A tool result is sent back to the model in a later request's input, usually the
        # very next generation of the same session.
        for msg in inputs:
            if msg.role == "tool" and msg.tool_call_id:
                results.setdefault((session_id, msg.tool_call_id), msg.content)
        index = 0
        for msg in outputs:
            for call in msg.tool_calls:
                # Nested generations (a framework span around the provider call) repeat the
                # same output; keep the first one.
                if call.id is not None and (trace_id, call.id) in seen:
                    continue
                if call.id is not None:
                    seen.add((trace_id, call.id))
                index += 1
                cols["session_id"].append(session_id)
                cols["trace_id"].append(trace_id)
                cols["observation_id"].append(observation_id)
                cols["call_index"].append(index)
                cols["tool_name"].append(call.name)
                cols["tool_call_id"].append(call.id)
                cols["start_time"].append(at if isinstance(at, datetime) else None)
                cols["arguments"].append(_as_json_text(call.arguments))
    cols["result"] = [
        None if call_id is None else _as_json_text(results.get((session_id, call_id)))
        for session_id, call_id in zip(cols["session_id"], cols["tool_call_id"], strict=True)
    ]
    return pa.Table.from_pydict(cols, schema=_GEN_SCHEMA)


def _as_json_text(text: str | None) -> str | None:
    """Return ``text`` if it is a JSON document, else ``text`` encoded as a JSON string.

    Tool arguments and results are usually JSON, but a model may emit broken JSON and a tool may
    return plain text; the JSON columns must accept both without losing anything.
    """
    if text is None:
        return None
    try:
        json.loads(text)
    except ValueError:
        return json.dumps(text, ensure_ascii=False)
    return text
