"""Mapping items to canonical rows: what ``load`` does to each record, in any process.

Owns :func:`map_items` and :func:`map_tagged`, the step between a reader's items and the
rows merged into the tables. Workers (``loaders._parallel``) run it too, so it depends on
the mappers only, not on the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from ..errors import TraceFormatError
from . import langfuse
from ._normalize import InternalRules, row_hash

__all__ = [
    "TAG_NONE",
    "TAG_OBSERVATION",
    "TAG_REJECT",
    "TAG_SCORE",
    "TAG_TRACE",
    "Cutter",
    "map_items",
    "map_tagged",
]

_EXCERPT = 200
_TABLES = ("traces", "observations", "scores")
Tables = dict[str, pa.Table]
Rejects = list[tuple[str, str, str]]


def _excerpt(record: Any) -> str:
    text = repr(record)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


_ROW_HASHED = {
    "traces": langfuse.TRACE_HASHED,
    "observations": langfuse.OBSERVATION_HASHED,
    "scores": None,
}


def _canonical(table: str, record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ValueError(f"expected a {table} row, got {type(record).__name__}")
    row = dict(record)
    hashed = _ROW_HASHED[table]
    if hashed is not None:
        row["row_hash"] = row_hash(row.get(k) for k in hashed)
    return row


def _check_text(row: dict[str, Any]) -> dict[str, Any]:
    # A lone surrogate (JSON "\ud800") decodes into a Python str but is not Unicode text;
    # rejecting the record here keeps it from aborting the whole file at write time.
    # ``isascii`` is a flag lookup: only the rare non-ASCII text is actually encoded.
    for key, value in row.items():
        if type(value) is str:
            if value.isascii():
                continue
        elif not isinstance(value, (str, list)):
            continue  # NULL, numbers, times
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, str) and not item.isascii():
                _check_unicode(key, item)
    return row


def _check_unicode(key: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{key}: contains a lone surrogate, not valid text") from None


def map_items(
    path: str,
    fmt: str,
    items: Iterable[langfuse.Item],
    *,
    rules: InternalRules,
    strict: bool,
) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, str, str]]]:
    """Map ``(kind, locator, record)`` items to canonical rows and rejects.

    Readers of every format feed this: Langfuse-shaped records go through the Langfuse
    mappers, ``*_row`` items are canonical already and only get their content hash.
    """
    return map_tagged(path, fmt, items, rules=rules, strict=strict, tags=None)


#: What one item became, in the ``tags`` of :func:`map_tagged`: a byte per item.
TAG_NONE, TAG_TRACE, TAG_OBSERVATION, TAG_SCORE, TAG_REJECT = range(5)
_TABLE_TAG = {"traces": TAG_TRACE, "observations": TAG_OBSERVATION, "scores": TAG_SCORE}


def map_tagged(
    path: str,
    fmt: str,
    items: Iterable[langfuse.Item],
    *,
    rules: InternalRules,
    strict: bool,
    tags: bytearray | None,
) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, str, str]]]:
    """:func:`map_items`, also appending to ``tags`` (if given) one ``TAG_*`` byte per item.

    The tags say which list each item's output went to (or none: a repeated or empty
    placeholder, a placeholder's own error), so mapped items can be cut into batches
    afterwards exactly as if each batch had been mapped alone (``loaders._parallel``).

    Examples
    --------
    >>> tags = bytearray()
    >>> items = [("error", "line 1", "not JSON"), ("score", "line 2", {"id": "s1"})]
    >>> rows, rejected = map_tagged("x.jsonl", "langfuse-blob", items,
    ...     rules=InternalRules(), strict=False, tags=tags)
    >>> list(tags) == [TAG_REJECT, TAG_SCORE], len(rows["scores"]), rejected[0][:2]
    (True, 1, ('line 1', 'not JSON'))
    """
    rows: dict[str, list[dict[str, Any]]] = {"traces": [], "observations": [], "scores": []}
    rejected: list[tuple[str, str, str]] = []
    # Placeholder traces by what they are made of: every observation row of a trace repeats
    # the trace's fields, and an equal key gives an equal row, so it is mapped once.
    stubs: dict[tuple[Any, ...], dict[str, Any]] = {}
    for kind, where, record in items:
        tag = TAG_NONE
        try:
            if kind == "error":
                raise ValueError(str(record))
            if kind == "trace":
                row = langfuse.map_trace(record, rules=rules, source_format=fmt)
                rows["traces"].append(_check_text(row))
                tag = TAG_TRACE
            elif kind == "stub":
                key = langfuse.stub_key(record)
                stub = stubs.get(key) if key is not None else None
                if stub is None:
                    stub = langfuse.map_stub_trace(record, rules=rules, source_format=fmt)
                    if stub is not None:
                        _check_text(stub)
                        if key is not None:
                            stubs[key] = stub
                if stub is not None:
                    rows["traces"].append(stub)
                    tag = TAG_TRACE
            elif kind == "observation":
                row = langfuse.map_observation(record, source_format=fmt)
                rows["observations"].append(_check_text(row))
                tag = TAG_OBSERVATION
            elif kind == "score":
                rows["scores"].append(_check_text(langfuse.map_score(record)))
                tag = TAG_SCORE
            elif kind.endswith("_row") and kind[:-4] + "s" in rows:
                table = kind[:-4] + "s"
                rows[table].append(_check_text(_canonical(table, record)))
                tag = _TABLE_TAG[table]
            else:
                raise ValueError(f"unknown item kind {kind!r}")
        except ValueError as exc:
            if strict:
                raise TraceFormatError(path, where, str(exc)) from exc
            if kind != "stub":  # the observation itself reports the same problem
                rejected.append((where, str(exc), _excerpt(record if kind != "error" else "")))
                tag = TAG_REJECT
        if tags is not None:
            tags.append(tag)
    return rows, rejected


class Cutter:
    """Re-cuts mapped chunks (tables, rejects and a tag per item) into batches of ``size`` items.

    Workers map chunks of lines with :func:`map_tagged` (``loaders._parallel``); re-cut, they
    give the batches the serial path maps alone. A batch's table is the chunks' slices,
    concatenated.

    Examples
    --------
    >>> import pyarrow as pa
    >>> rows = {"traces": pa.table({"n": [1, 2, 3]}), "observations": pa.table({}),
    ...         "scores": pa.table({})}
    >>> tags = bytes([TAG_TRACE, TAG_REJECT, TAG_TRACE, TAG_TRACE])
    >>> cutter = Cutter(2)
    >>> [(b[0]["traces"]["n"].to_pylist(), b[1]) for b in cutter.add(tags, rows, [("l2", "x", "")])]
    [([1], [('l2', 'x', '')]), ([2, 3], [])]
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._reset()

    def _reset(self) -> None:
        self.pieces: dict[str, list[pa.Table]] = {table: [] for table in _TABLES}
        self.rejected: Rejects = []
        self.items = 0

    def add(self, tags: bytes, rows: Tables, rejected: Rejects) -> Iterator[tuple[Tables, Rejects]]:
        taken = dict.fromkeys(_TABLES, 0)
        taken_rejects = pos = 0
        while pos < len(tags):
            end = pos + min(self.size - self.items, len(tags) - pos)
            for table, tag in zip(_TABLES, (TAG_TRACE, TAG_OBSERVATION, TAG_SCORE), strict=True):
                count = tags.count(tag, pos, end)
                if count:
                    self.pieces[table].append(rows[table].slice(taken[table], count))
                taken[table] += count
            count = tags.count(TAG_REJECT, pos, end)
            self.rejected.extend(rejected[taken_rejects : taken_rejects + count])
            taken_rejects += count
            self.items += end - pos
            pos = end
            if self.items == self.size:
                yield self._batch()

    def flush(self) -> Iterator[tuple[Tables, Rejects]]:
        if self.items:
            yield self._batch()

    def _batch(self) -> tuple[Tables, Rejects]:
        tables = {
            table: pa.concat_tables(pieces) if pieces else pa.table({})
            for table, pieces in self.pieces.items()
        }
        batch = tables, self.rejected
        self._reset()
        return batch
