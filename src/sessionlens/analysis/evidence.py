"""What the Python-side analyses see of one session: its turns and its tool calls.

Intent classification and booking-detail extraction read text, which SQL does poorly; they run
per session on this plain structure instead. This module owns the structure and reading it from
the derived ``conversation_turns`` and ``tool_calls`` tables in batches, so a custom classifier
(for example one that asks an LLM) needs nothing but these dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

__all__ = ["SessionEvidence", "ToolCall", "Turn", "iter_evidence"]


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
        starts = dict(
            con.execute(
                "SELECT session_id, start_time FROM sessions WHERE session_id IN "
                "(SELECT unnest(?::TEXT[]))",
                [batch],
            ).fetchall()
        )
        turns: dict[str, list[Turn]] = {}
        for sid, role, content, ts in con.execute(
            "SELECT session_id, role, content, timestamp FROM conversation_turns "
            "WHERE session_id IN (SELECT unnest(?::TEXT[])) AND content IS NOT NULL "
            "ORDER BY session_id, seq",
            [batch],
        ).fetchall():
            turns.setdefault(sid, []).append(Turn(role, content, ts))
        calls: dict[str, list[ToolCall]] = {}
        for sid, name, args, result, is_error, t0, t1 in con.execute(
            "SELECT session_id, tool_name, arguments, result, coalesce(is_error, FALSE), "
            "start_time, end_time FROM tool_calls "
            "WHERE session_id IN (SELECT unnest(?::TEXT[])) ORDER BY session_id, seq",
            [batch],
        ).fetchall():
            calls.setdefault(sid, []).append(
                ToolCall(name, _decode(args), _decode(result), bool(is_error), t0, t1)
            )
        for sid in batch:
            yield SessionEvidence(
                sid, starts.get(sid), tuple(turns.get(sid, ())), tuple(calls.get(sid, ()))
            )
