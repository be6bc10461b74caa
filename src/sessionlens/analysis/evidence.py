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
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "SessionEvidence",
    "ToolCall",
    "Turn",
    "evidence_from_row",
    "evidence_from_table",
    "iter_evidence",
]


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
        # At most batch_size sessions: memory stays bounded.
        found = {ev.session_id: ev for ev in evidence_from_table(table)}
        for sid in batch:
            ev = found.get(sid)
            yield SessionEvidence(sid) if ev is None else ev


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


_TIMESTAMP = pa.timestamp("us")
#: The microseconds since 1970 that ``datetime`` can hold (years 1 to 9999).
_DATETIME_US = (-62_135_596_800_000_000, 253_402_300_799_999_999)


def _values(array: pa.Array) -> list[Any]:
    """``array.to_pylist()``; for time zone-less microsecond timestamps, through numpy.

    NumPy makes the same naive ``datetime`` objects (``None`` for nulls) a dozen times
    faster. Outside years 1-9999 it would make integers instead, so such an array takes
    ``to_pylist`` (which then raises what it raises).
    """
    if array.type == _TIMESTAMP:
        low, high = pc.min_max(array.cast(pa.int64())).values()
        if low.as_py() is None or (
            _DATETIME_US[0] <= low.as_py() and high.as_py() <= _DATETIME_US[1]
        ):
            return array.to_numpy(zero_copy_only=False).astype(object).tolist()
    return array.to_pylist()


def _lists(column: pa.ChunkedArray, fields: Sequence[str]) -> tuple[list[int], list[list[Any]]]:
    """Per row, its list's length (0 for null); per struct field, its values over all lists."""
    lists = column.combine_chunks()
    lengths = [n or 0 for n in pc.list_value_length(lists).to_pylist()]
    # flatten() leaves out what null rows' offsets may still span, and the take()'s slicing.
    values = lists.flatten()
    return lengths, [_values(values.field(name)) for name in fields]


def evidence_from_table(table: pa.Table) -> list[SessionEvidence]:
    """Per row of a ``_BATCH_QUERY``-shaped table, what :func:`evidence_from_row` makes of it.

    Column by column: Arrow converts each struct field's values in one call, instead of
    building a dict per turn and per call that is read once (the same values, and half the
    cost). A row whose ``session_id`` is null gives a ``SessionEvidence`` of ``None``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> row = {"session_id": "s1", "start_time": None,
    ...        "turns": [{"role": "user", "content": "hi", "ts": None}],
    ...        "calls": [{"name": "lookup", "args": '{"q": 1}', "result": None,
    ...                   "is_error": False, "t0": None, "t1": None}]}
    >>> table = pa.Table.from_pylist([row, {"session_id": "s2", "turns": None, "calls": []}])
    >>> evidence_from_table(table) == [evidence_from_row(row), SessionEvidence("s2")]
    True
    """
    n_turns, (roles, contents, stamps) = _lists(table.column("turns"), ("role", "content", "ts"))
    n_calls, (names, args, results, errors, t0s, t1s) = _lists(
        table.column("calls"), ("name", "args", "result", "is_error", "t0", "t1")
    )
    turns = list(map(Turn, roles, contents, stamps))
    calls = list(
        map(ToolCall, names, map(_decode, args), map(_decode, results), map(bool, errors), t0s, t1s)
    )
    out = []
    at_turn = at_call = 0
    for sid, start, n_turn, n_call in zip(
        table.column("session_id").to_pylist(),
        _values(table.column("start_time").combine_chunks()),
        n_turns,
        n_calls,
        strict=True,
    ):
        out.append(
            SessionEvidence(
                sid,
                start,
                tuple(turns[at_turn : at_turn + n_turn]),
                tuple(calls[at_call : at_call + n_call]),
            )
        )
        at_turn += n_turn
        at_call += n_call
    return out


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
