"""Build the derived ``conversation_turns`` table: the readable transcript of each session.

This module owns ``conversation_turns``. Traces do not store a conversation, they store LLM
requests: every generation's input re-sends the whole history plus one new message. The
transcript is recovered by walking a session's generations in time order and keeping only the
messages not already said, so each user, assistant and tool message appears once, where it
first happened. Payload shapes are parsed by :mod:`sessionlens.analysis.messages`; re-sent
history is parsed once (:mod:`sessionlens.analysis._history`) and, being already said, only
counted, not walked again: the Python work per request is proportional to its new messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from .._arrow_sql import ARROW, execute_arrow
from ._history import HistoryParser
from ._scope import clear_sessions
from .messages import Message, Role, decode_json_value, extract_messages

__all__ = ["rebuild_conversation_turns", "render_message"]

# See Transcriber._identity.
_Key = tuple[Role, str, str | None, tuple[tuple[str, str], ...]]


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
# with a payload (then its own input/output stand in for the conversation). ``{tool_rank}`` is
# NULL here; the combined rebuild (:mod:`sessionlens.analysis.derived`) puts there the
# generation's place in the order ``tool_calls`` reads generations in.
EVENTS_SQL = """
SELECT t.session_id, o.trace_id, o.observation_id, o.start_time,
       coalesce(o.end_time, o.start_time), o.input, o.output, {tool_rank}
FROM observations o JOIN traces t ON t.trace_id = o.trace_id
WHERE o.type = 'GENERATION' AND (o.input IS NOT NULL OR o.output IS NOT NULL)
      AND NOT coalesce(t.is_internal, FALSE) {scope}
UNION ALL
SELECT t.session_id, t.trace_id, NULL, t.start_time, coalesce(t.end_time, t.start_time),
       t.input, t.output, NULL
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
    traces are skipped. The caller owns the transaction. To rebuild ``tool_calls`` as well, use
    :func:`sessionlens.analysis.derived.rebuild_derived`, which parses the payloads once for both.

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
    events = con.execute(EVENTS_SQL.format(scope=scope, tool_rank="NULL"), params).fetchall()
    history = HistoryParser()
    transcript = Transcriber()
    for session_id, trace_id, observation_id, started, ended, raw_in, raw_out, _ in events:
        inputs, reused = history.parse(raw_in)
        outputs = extract_messages(decode_json_value(raw_out), default_role="assistant")
        transcript.add(
            session_id, trace_id, observation_id, started, ended, inputs, reused, outputs
        )
    return transcript.insert(con)


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


class Transcriber:
    """Collect ``conversation_turns`` rows from events sorted by session, then time.

    Feed it every event of the walk, in order, with the messages of its input and output
    (``reused``: how many leading inputs are the previous event's inputs, as
    :class:`~sessionlens.analysis._history.HistoryParser` reports, so their identities are not
    computed again); then :meth:`insert` writes the rows.

    Examples
    --------
    >>> from sessionlens.store import connect
    >>> t = Transcriber()
    >>> t.add("s1", "t1", None, None, None, [Message("user", "Hi")], 0, [])
    >>> t.add("s1", "t1", None, None, None, [Message("user", "Hi")], 1, [Message("user", "Hi")])
    >>> t.insert(connect())  # the first "Hi" repeated as history, then said again
    2
    """

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []
        self._group: object = object()
        self._said: dict[_Key, int] = {}  # how often the session has said each message
        self._seq = 0
        self._in_keys: list[_Key] = []  # identities of the previous event's inputs
        self._in_counts: dict[_Key, int] = {}  # and how often each occurs
        self._canonical: dict[str, str] = {}  # tool arguments text -> canonical JSON

    def add(
        self,
        session_id: str | None,
        trace_id: str,
        observation_id: str | None,
        started: Any,
        ended: Any,
        inputs: list[Message],
        reused: int,
        outputs: list[Message],
    ) -> None:
        """Add one event: its input messages at ``started``, then its outputs at ``ended``."""
        # Sessionless traces are transcribed on their own.
        group = session_id if session_id is not None else ("trace", trace_id)
        event = (session_id, trace_id, observation_id)
        same_group = group == self._group
        if not same_group:
            self._group, self._said, self._seq = group, {}, 0
        new_keys = [self._identity(m) for m in inputs[reused:]]
        prev_keys, self._in_keys = self._in_keys, self._in_keys[:reused] + new_keys
        # Count occurrences within this request, so history already said is skipped while a
        # message genuinely repeated (a user saying "yes" twice) is kept the second time.
        # Re-sent history (the previous request's inputs, within the session) is all skipped:
        # that request left said[k] >= its count of k, and said only grows within a session.
        # So its walk would only count, and the counts are the previous request's: start there.
        if same_group and reused == len(prev_keys) and reused:
            in_request = self._in_counts.copy()
            self._walk(in_request, inputs[reused:], new_keys, started, event)
        else:
            in_request = {}
            self._walk(in_request, inputs, self._in_keys, started, event)
        self._in_counts = in_request.copy()
        out_keys = [self._identity(m) for m in outputs]
        self._walk(in_request, outputs, out_keys, ended, event)

    def _walk(
        self,
        in_request: dict[_Key, int],
        messages: list[Message],
        keys: list[_Key],
        at: Any,
        event: tuple[str | None, str, str | None],
    ) -> None:
        said = self._said
        at = at if isinstance(at, datetime) else None
        for msg, key in zip(messages, keys, strict=True):
            count = in_request.get(key, 0) + 1
            in_request[key] = count
            if count <= said.get(key, 0):
                continue
            said[key] = count  # said[key] was count - 1: one more than the request's so far
            content = render_message(msg)
            if content is None:
                continue
            self._seq += 1
            self._rows.append((*event, self._seq, msg.role, content, at))

    def insert(self, con: duckdb.DuckDBPyConnection) -> int:
        """Insert the collected rows into ``conversation_turns``; return how many."""
        count = len(self._rows)
        if count:
            columns = [
                pa.array(values, type=field.type)
                for values, field in zip(zip(*self._rows, strict=True), _SCHEMA, strict=True)
            ]
            execute_arrow(
                con,
                "INSERT INTO conversation_turns "
                "(session_id, trace_id, observation_id, seq, role, content, timestamp) "
                "SELECT session_id, trace_id, observation_id, seq, role, content, timestamp "
                f"FROM {ARROW}",
                pa.Table.from_arrays(columns, schema=_SCHEMA),
            )
        return count

    def _identity(self, msg: Message) -> _Key:
        """What makes two messages "the same" across requests of one session.

        Whitespace is trimmed and tool arguments are compared as parsed JSON, because SDKs
        re-send the history re-serialised (``{"a":1}`` may come back as ``{"a": 1}``). Tool calls
        are compared by name and arguments, not id: some shapes drop the id when echoing history.
        """
        calls: tuple[tuple[str, str], ...] = ()
        if msg.tool_calls:
            calls = tuple((c.name, self._canonical_json(c.arguments)) for c in msg.tool_calls)
        return msg.role, (msg.content or "").strip(), msg.tool_call_id, calls

    def _canonical_json(self, text: str | None) -> str:
        if text is None:
            return ""
        canonical = self._canonical.get(text)
        if canonical is None:
            try:
                canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
            except ValueError:
                canonical = text.strip()
            self._canonical[text] = canonical
        return canonical
