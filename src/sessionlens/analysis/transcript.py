"""Build the derived ``conversation_turns`` table: the readable transcript of each session.

This module owns ``conversation_turns``. Traces do not store a conversation, they store LLM
requests: every generation's input re-sends the whole history plus one new message. The
transcript is recovered by walking a session's generations in time order and keeping only the
messages not already said, so each user, assistant and tool message appears once, where it
first happened. Payload shapes are parsed by :mod:`sessionlens.analysis.messages`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from .._arrow_sql import ARROW, execute_arrow
from ._scope import clear_sessions
from .messages import Message, Role, decode_json_value, extract_messages

__all__ = ["rebuild_conversation_turns", "render_message"]


_SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("trace_id", pa.string()),
        ("observation_id", pa.string()),
        ("seq", pa.int32()),
        ("role", pa.string()),
        ("content", pa.string()),
        ("timestamp", pa.timestamp("us")),
    ]
)


# One row per payload-bearing event: each generation, and each trace that has no generation
# with a payload (then its own input/output stand in for the conversation).
_EVENTS_SQL = """
SELECT t.session_id, o.trace_id, o.observation_id, o.start_time,
       coalesce(o.end_time, o.start_time), o.input, o.output
FROM observations o JOIN traces t ON t.trace_id = o.trace_id
WHERE o.type = 'GENERATION' AND (o.input IS NOT NULL OR o.output IS NOT NULL)
      AND NOT coalesce(t.is_internal, FALSE) {scope}
UNION ALL
SELECT t.session_id, t.trace_id, NULL, t.start_time, coalesce(t.end_time, t.start_time),
       t.input, t.output
FROM traces t
WHERE NOT coalesce(t.is_internal, FALSE) {scope}
      AND NOT EXISTS (
          SELECT 1 FROM observations o
          WHERE o.trace_id = t.trace_id AND o.type = 'GENERATION'
                AND (o.input IS NOT NULL OR o.output IS NOT NULL))
ORDER BY 1 NULLS FIRST, 4 NULLS LAST, 5 NULLS LAST, 3 NULLS FIRST
"""


def rebuild_conversation_turns(
    con: duckdb.DuckDBPyConnection, *, session_ids: Sequence[str] | None = None
) -> int:
    """Recompute ``conversation_turns`` for some sessions (all when ``session_ids`` is None).

    Each generation contributes its input messages (stamped with its start time) and then its
    output messages (stamped with its end time); a message the session has already said is not
    repeated. A trace without generations contributes its own input and output instead. Internal
    traces are skipped. The caller owns the transaction.

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
    >>> _ = con.execute(
    ...     "INSERT INTO traces (trace_id, session_id, start_time, input, output) VALUES "
    ...     "('t1', 's1', TIMESTAMP '2025-01-01', '\\"Hi\\"', '\\"Hello!\\"')"
    ... )
    >>> rebuild_conversation_turns(con)
    2
    >>> con.sql("SELECT seq, role, content FROM conversation_turns ORDER BY seq").fetchall()
    [(1, 'user', 'Hi'), (2, 'assistant', 'Hello!')]
    """
    scope, params = clear_sessions(con, "conversation_turns", session_ids)

    events = con.execute(_EVENTS_SQL.format(scope=scope), params).fetchall()
    rows = list(_turns(events))
    if not rows:
        return 0
    execute_arrow(
        con,
        "INSERT INTO conversation_turns "
        "(session_id, trace_id, observation_id, seq, role, content, timestamp) "
        "SELECT session_id, trace_id, observation_id, seq, role, content, timestamp "
        f"FROM {ARROW}",
        pa.Table.from_pylist(rows, schema=_SCHEMA),
    )
    return len(rows)


def render_message(message: Message) -> str | None:
    """Render a message as transcript text; tool calls are written as ``name(arguments)``.

    Parameters
    ----------
    message : Message
        A parsed message.

    Returns
    -------
    str or None
        The text, one line per tool call after it; ``None`` when there is nothing to show.

    Examples
    --------
    >>> from sessionlens.analysis.messages import ToolCallRef
    >>> render_message(Message("assistant", None, (ToolCallRef("c1", "get_weather", '{"x": 1}'),)))
    'get_weather({"x": 1})'
    """
    lines = [message.content] if message.content else []
    lines += [f"{c.name}({c.arguments or ''})" for c in message.tool_calls]
    return "\n".join(lines) or None


def _turns(events: Iterable[tuple[Any, ...]]) -> Iterable[dict[str, Any]]:
    """Yield transcript rows from events sorted by session, then time."""
    current: object = object()
    said: Counter[Hashable] = Counter()
    seq = 0
    for session_id, trace_id, observation_id, started, ended, raw_in, raw_out in events:
        # Sessionless traces are transcribed on their own.
        group = session_id if session_id is not None else ("trace", trace_id)
        if group != current:
            current, said, seq = group, Counter(), 0
        inputs = extract_messages(decode_json_value(raw_in), default_role="user")
        outputs = extract_messages(decode_json_value(raw_out), default_role="assistant")
        # Count occurrences within this request, so history already said is skipped while a
        # message genuinely repeated (a user saying "yes" twice) is kept the second time.
        in_request: Counter[Hashable] = Counter()
        for messages, at in ((inputs, started), (outputs, ended)):
            for msg in messages:
                key = _identity(msg)
                in_request[key] += 1
                if in_request[key] <= said[key]:
                    continue
                said[key] += 1
                content = render_message(msg)
                if content is None:
                    continue
                seq += 1
                yield {
                    "session_id": session_id,
                    "trace_id": trace_id,
                    "observation_id": observation_id,
                    "seq": seq,
                    "role": msg.role,
                    "content": content,
                    "timestamp": at if isinstance(at, datetime) else None,
                }


def _identity(msg: Message) -> tuple[Role, str, str | None, tuple[tuple[str, str], ...]]:
    """What makes two messages "the same" across requests of one session.

    Whitespace is trimmed and tool arguments are compared as parsed JSON, because SDKs re-send
    the history re-serialised (``{"a":1}`` may come back as ``{"a": 1}``). Tool calls are
    compared by name and arguments, not id: some shapes drop the id when echoing history.
    """
    calls = tuple((c.name, _canonical_json(c.arguments)) for c in msg.tool_calls)
    return msg.role, (msg.content or "").strip(), msg.tool_call_id, calls


def _canonical_json(text: str | None) -> str:
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return text.strip()
