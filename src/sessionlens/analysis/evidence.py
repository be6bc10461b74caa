"""What the Python-side analyses see of one session: its turns and its tool calls.

Intent classification and booking-detail extraction read text, which SQL does poorly; they run
per session on this plain structure instead. This module owns the structure and reading it from
the derived ``conversation_turns`` and ``tool_calls`` tables in batches, so a custom classifier
(for example one that asks an LLM) needs nothing but these dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

__all__ = ["SessionEvidence", "ToolCall", "Turn", "evidence_from_row", "iter_evidence"]


@dataclass(frozen=True)
class Turn:
    """One transcript message: ``role`` is system, user, assistant or tool."""

    role: str
    content: str
    timestamp: datetime | None = None


@dataclass(frozen=True)
class ToolCall:
    """One tool invocation, in session order; ``arguments`` and ``result`` are decoded JSON."""

    name: str
    arguments: Any = None
    result: Any = None
    is_error: bool = False
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class SessionEvidence:
    """A session's transcript and tool calls, the input of classifiers and extractors.

    Examples
    --------
    >>> ev = SessionEvidence("s1", turns=(Turn("user", "I need to cancel"),))
    >>> ev.caller_text
    'I need to cancel'
    """

    session_id: str
    start_time: datetime | None = None
    turns: tuple[Turn, ...] = ()
    tool_calls: tuple[ToolCall, ...] = field(default_factory=tuple)

    @property
    def caller_turns(self) -> tuple[Turn, ...]:
        """The caller's own messages."""
        return tuple(t for t in self.turns if t.role == "user")

    @property
    def caller_text(self) -> str:
        """Everything the caller said, one message per line."""
        return "\n".join(t.content for t in self.caller_turns)


def _decode(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def iter_evidence(
    con: duckdb.DuckDBPyConnection, session_ids: Sequence[str], *, batch_size: int = 2000
) -> Iterator[SessionEvidence]:
    """Yield the evidence of each session in ``session_ids`` (sessions without rows included).

    Reads in batches so memory stays bounded however many sessions there are.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> sid = con.sql("SELECT min(session_id) FROM sessions").fetchone()[0]
    >>> ev = next(iter_evidence(con, [sid]))
    >>> ev.session_id == sid and len(ev.turns) > 0
    True
    """
    ids = list(session_ids)
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        # One query per batch, each session's turns and calls as ordered lists, handed over
        # as Arrow: a row per session instead of a Python tuple per turn.
        table = con.execute(_BATCH_QUERY, [batch]).to_arrow_table()
        found = {
            row["session_id"]: row
            for row in table.to_pylist()  # at most batch_size rows: memory stays bounded
        }
        for sid in batch:
            row = found.get(sid)
            yield SessionEvidence(sid) if row is None else evidence_from_row(row)


def evidence_from_row(row: Mapping[str, Any]) -> SessionEvidence:
    """One session's evidence from its row of ``_BATCH_QUERY``'s shape.

    ``turns`` holds structs ``(role, content, ts)`` and ``calls`` structs ``(name, args,
    result, is_error, t0, t1)``, both in session order; other fields are ignored. The Spark
    executors (:mod:`sessionlens._spark_cache`) build rows of the same shape.

    Examples
    --------
    >>> row = {"session_id": "s1", "start_time": None,
    ...        "turns": [{"role": "user", "content": "hi", "ts": None}],
    ...        "calls": [{"name": "lookup", "args": '{"q": 1}', "result": None,
    ...                   "is_error": None, "t0": None, "t1": None}]}
    >>> ev = evidence_from_row(row)
    >>> ev.caller_text, ev.tool_calls[0].arguments, ev.tool_calls[0].is_error
    ('hi', {'q': 1}, False)
    """
    return SessionEvidence(
        row["session_id"],
        row["start_time"],
        tuple(Turn(t["role"], t["content"], t["ts"]) for t in row["turns"] or ()),
        tuple(
            ToolCall(
                c["name"],
                _decode(c["args"]),
                _decode(c["result"]),
                bool(c["is_error"]),
                c["t0"],
                c["t1"],
            )
            for c in row["calls"] or ()
        ),
    )


_BATCH_QUERY = """
WITH ids AS (SELECT DISTINCT unnest(?::TEXT[]) AS session_id),
turns AS (
    SELECT session_id,
           list(struct_pack(role := role, content := content, ts := timestamp) ORDER BY seq)
               AS turns
    FROM conversation_turns
    WHERE session_id IN (SELECT session_id FROM ids) AND content IS NOT NULL
    GROUP BY session_id),
calls AS (
    SELECT session_id,
           list(struct_pack(name := tool_name, args := arguments, result := result,
                            is_error := coalesce(is_error, FALSE), t0 := start_time,
                            t1 := end_time) ORDER BY seq) AS calls
    FROM tool_calls
    WHERE session_id IN (SELECT session_id FROM ids)
    GROUP BY session_id)
SELECT ids.session_id, s.start_time, turns.turns, calls.calls
FROM ids
LEFT JOIN sessions s ON s.session_id = ids.session_id
LEFT JOIN turns ON turns.session_id = ids.session_id
LEFT JOIN calls ON calls.session_id = ids.session_id
"""
