"""``load_table``: spans from any table (DataFrame, Arrow, Parquet, CSV) plus a column mapping.

Tracing backends, warehouses and homegrown loggers all end up with a table of spans whose
columns are named their own way. ``load_table`` takes such a table and a mapping from canonical
names to the table's columns, and loads it like any export: one transaction, bad rows in
``load_errors`` (or ``TraceFormatError`` with ``strict=True``), idempotent by id.

Canonical names (``COLUMNS``): the ``observations`` columns (``observation_id``, ``trace_id``,
``parent_observation_id``, ``type``, ``name``, ``start_time``, ``end_time``, ``model``,
``input_tokens``, ``output_tokens``, ``tool_name``, ``input``, ``output``, ...), plus
``updated_at`` (newest wins on re-load) and the trace-level ``session_id``, ``user_id``,
``trace_name``, ``tags``, ``environment``, ``release`` and ``version``. Required:
``trace_id``, ``observation_id`` and ``start_time``. Unmapped table columns are ignored.

Values are coerced as the Langfuse mappers do: timestamps by ``parse_timestamp`` (ISO-8601,
epoch numbers, ``datetime``), counts by ``to_int``, JSON columns decoded from JSON text when
they hold it. Without a ``type`` a row is a ``TOOL`` if it names a tool, a ``GENERATION`` if it
names a model, else a ``SPAN``. One trace is derived per ``trace_id``: its session, user, tags
and environment are the first non-null values in time order, its name the ``trace_name`` or
the root span's name, its input and output the root span's (the earliest without a parent).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError, InputNotFoundError, TraceFormatError
from . import FileResult, LoadResult, map_items, write_file
from ._limits import DEFAULT_MAX_RECORD_BYTES, check_limit
from ._normalize import (
    InternalRules,
    decode_json,
    infer_provider,
    parse_timestamp,
    to_float,
    to_int,
)
from ._rows import observation_row, payload, text, trace_record
from .files import SourceFile, _csv_rows, _open_bytes, _parquet_rows
from .langfuse import OBSERVATION_TYPES, Item

__all__ = ["COLUMNS", "REQUIRED", "load_table"]

FORMAT = "table"
REQUIRED = ("trace_id", "observation_id", "start_time")
_TEXT = (
    *("observation_id", "trace_id", "parent_observation_id", "name", "status_message"),
    *("model", "provider", "tool_name", "tool_call_id"),
)
_TIMES = ("start_time", "end_time", "completion_start_time", "updated_at")
_COUNTS = (
    *("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens"),
    *("cache_write_tokens", "reasoning_tokens"),
)
_JSON = ("input", "output", "metadata", "model_parameters", "tool_arguments", "cost_details")
_TRACE = ("session_id", "user_id", "trace_name", "tags", "environment", "release", "version")
#: Canonical names a mapping may use.
COLUMNS = (*_TEXT, "type", "level", *_TIMES, *_COUNTS, *_JSON, "reported_cost_usd", *_TRACE)
_LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")


def _py(value: Any) -> Any:
    """A pandas / numpy cell as a plain Python value (``NaN`` / ``NaT`` / ``NA`` are None)."""
    if isinstance(value, (list, dict, tuple)):
        return value
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value


def _open(data: Any, limit: int) -> tuple[list[str], Iterator[tuple[str, Any]], str]:
    """Column names, ``(locator, row)`` pairs and a default source name for ``data``."""
    if isinstance(data, pd.DataFrame):
        columns = [str(c) for c in data.columns]
        records = (
            (f"row {i}", {str(k): _py(v) for k, v in row.items()})
            for i, row in enumerate(data.to_dict("records"), start=1)
        )
        return columns, records, "<DataFrame>"
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        rows = (
            (f"row {i}", row)
            for i, row in enumerate(table.to_pylist(maps_as_pydicts="strict"), start=1)
        )
        return list(table.column_names), rows, "<Arrow table>"
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise InputNotFoundError(str(path))
        name = path.name.lower().removesuffix(".gz")
        gzipped = path.name.lower().endswith(".gz")
        src = SourceFile(path, name.rsplit(".", 1)[-1], gzipped, max_record_bytes=limit)
        if src.container == "parquet":
            try:
                columns = list(pq.ParquetFile(path).schema_arrow.names)
            except Exception as exc:  # pyarrow raises several types for a damaged file
                raise TraceFormatError(str(path), "file", f"cannot read Parquet: {exc}") from exc
            return columns, _parquet_rows(src), str(path)
        if src.container == "csv":
            try:
                # Only the header line: a bad byte further down is that row's problem.
                with _open_bytes(src) as handle:
                    first = handle.readline(limit + 1).decode("utf-8")
                header = next(csv.reader([first]), [])
            except UnicodeDecodeError as exc:
                raise TraceFormatError(
                    str(path), "line 1", "invalid UTF-8 in the header row"
                ) from exc
            except (OSError, EOFError, csv.Error) as exc:
                raise TraceFormatError(str(path), "line 1", f"cannot read CSV: {exc}") from exc
            return header, _csv_rows(src), str(path)
    raise ConfigError(
        "data",
        f"expected a pandas DataFrame, a pyarrow Table, or a .parquet / .csv path, "
        f"got {type(data).__name__} {str(data)[:60]!r}",
    )


def _check_mapping(mapping: Any, columns: list[str], source: str) -> dict[str, str]:
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise ConfigError("mapping", "expected a dict of canonical column name -> table column")
    has = ", ".join(columns) or "(no columns)"
    unknown = sorted(set(mapping) - set(COLUMNS))
    if unknown:
        raise ConfigError(
            "mapping",
            f"unknown canonical column {unknown[0]!r}; use one of: {', '.join(COLUMNS)}",
        )
    for name in REQUIRED:
        if name not in mapping:
            raise ConfigError(
                "mapping",
                f"required column {name!r} is not mapped; map it to one of the table's "
                f"columns: {has}",
            )
    for name, column in mapping.items():
        if column not in columns:
            raise ConfigError(
                "mapping",
                f"{name!r} maps to column {column!r}, which {source} does not have; it has: {has}",
            )
    return dict(mapping)


def _tags(value: Any) -> list[str]:
    value = decode_json(value)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value):
        return [text(t, "tags") or "" for t in value]
    raise ValueError(f"tags: expected a list of strings, got {value!r:.80}")


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in _TIMES:
            return parse_timestamp(value)
        if name in _COUNTS:
            return to_int(value, name)
        if name == "reported_cost_usd":
            return to_float(value, name)
        if name in _JSON:
            return payload(decode_json(value), name)
        if name == "tags":
            return _tags(value)
        return text(value, name)
    except ValueError as exc:
        reason = str(exc)
        raise ValueError(reason if reason.startswith(name) else f"{name}: {reason}") from None


def _map_row(record: Any, mapping: dict[str, str]) -> dict[str, Any]:
    """A table row to canonical values (observation columns plus trace-level fields)."""
    if not isinstance(record, Mapping):
        raise ValueError(f"expected a row, got {type(record).__name__}")
    values = {name: _coerce(name, record.get(column)) for name, column in mapping.items()}
    for name in REQUIRED:
        if values.get(name) is None:
            raise ValueError(f"missing {name} (column {mapping[name]!r} is empty)")
    kind = (values.get("type") or "").upper() or (
        "TOOL" if values.get("tool_name") else "GENERATION" if values.get("model") else "SPAN"
    )
    if kind not in OBSERVATION_TYPES:
        raise ValueError(f"type: unknown observation type {kind!r}")
    level = (values.get("level") or "DEFAULT").upper()
    if level not in _LEVELS:
        raise ValueError(f"level: unknown level {level!r}")
    values["type"], values["level"] = kind, level
    counts = {mapping[n]: values[n] for n in _COUNTS if values.get(n) is not None}
    if values.get("total_tokens") is None and (
        values.get("input_tokens") is not None or values.get("output_tokens") is not None
    ):
        values["total_tokens"] = (values.get("input_tokens") or 0) + (
            values.get("output_tokens") or 0
        )
    values["usage_details"] = payload(counts or None, "usage")
    if values.get("provider") is None and values.get("model"):
        values["provider"] = infer_provider(values["model"])
    return values


def _observation(values: dict[str, Any]) -> dict[str, Any]:
    row = observation_row(
        **{
            k: v
            for k, v in values.items()
            if k in _TEXT + _TIMES + _COUNTS + _JSON and k != "updated_at"
        },
        type=values["type"],
        level=values["level"],
        usage_details=values["usage_details"],
        reported_cost_usd=values.get("reported_cost_usd"),
        source_format=FORMAT,
        source_updated_at=values.get("updated_at"),
    )
    if row["type"] == "TOOL" and row["tool_arguments"] is None:
        row["tool_arguments"] = row["input"]
    return row


def _trace(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The trace of one trace_id's rows (sorted by start time)."""

    def first(name: str) -> Any:
        return next((r[name] for r in rows if r.get(name) not in (None, [])), None)

    root = next((r for r in rows if r.get("parent_observation_id") is None), rows[0])
    return trace_record(
        trace_id=rows[0]["trace_id"],
        start_time=rows[0]["start_time"],
        session_id=first("session_id"),
        user_id=first("user_id"),
        name=first("trace_name") or root.get("name"),
        input=root.get("input"),
        output=root.get("output"),
        tags=first("tags"),
        environment=first("environment"),
        release=first("release"),
        version=first("version"),
    )


def _items(rows: Iterator[tuple[str, Any]], mapping: dict[str, str]) -> Iterator[Item]:
    by_trace: dict[str, list[dict[str, Any]]] = {}
    where_of: dict[str, str] = {}
    for where, record in rows:
        if isinstance(record, ValueError):
            yield "error", where, str(record)
            continue
        try:
            values = _map_row(record, mapping)
        except ValueError as exc:
            yield "error", where, str(exc)
            continue
        yield "observation_row", where, _observation(values)
        by_trace.setdefault(values["trace_id"], []).append(values)
        where_of.setdefault(values["trace_id"], where)
    for trace_id, members in by_trace.items():
        members.sort(key=lambda r: r["start_time"])
        yield "trace", where_of[trace_id], _trace(members)


def load_table(
    con: duckdb.DuckDBPyConnection,
    data: pd.DataFrame | pa.Table | str | Path,
    *,
    mapping: dict[str, str],
    source: str | None = None,
    strict: bool = False,
    internal: InternalRules | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> LoadResult:
    """Load a table of spans into the canonical tables, in one transaction.

    Parameters
    ----------
    con : DuckDBPyConnection
        A database from ``sessionlens.connect``.
    data : DataFrame, pyarrow Table, or path
        The spans; a path must name a ``.parquet`` or ``.csv`` file (optionally ``.gz``).
    mapping : dict
        Canonical column name -> the table's column name (see ``COLUMNS``); ``trace_id``,
        ``observation_id`` and ``start_time`` are required.
    source : str, optional
        Recorded as ``source_file`` and in ``load_errors``; default the path, or
        ``<DataFrame>`` / ``<Arrow table>``.
    strict : bool
        Raise ``TraceFormatError`` (source, row, reason) on the first bad row and load nothing.
        Default: load the good rows and record each bad one in ``load_errors``.
    internal : InternalRules, optional
        Extra rules that flag traces as internal.
    max_record_bytes : int
        Largest row (CSV line or field, Parquet row) of a file accepted; as in ``load``.

    Returns
    -------
    LoadResult

    Raises
    ------
    ConfigError
        The mapping names an unknown canonical column or a column the table lacks, or leaves
        a required one out; or ``data`` is of an unsupported kind.

    Examples
    --------
    >>> import pandas as pd
    >>> from sessionlens import connect
    >>> spans = pd.DataFrame({
    ...     "span": ["s1", "s2"], "trace": ["t1", "t1"], "parent": [None, "s1"],
    ...     "op": ["agent", "search"], "ts": ["2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z"],
    ...     "tool": [None, "search"]})
    >>> con = connect()
    >>> result = load_table(con, spans, mapping={
    ...     "observation_id": "span", "trace_id": "trace", "parent_observation_id": "parent",
    ...     "name": "op", "start_time": "ts", "tool_name": "tool"})
    >>> result.traces, result.observations, result.tool_calls
    (1, 2, 1)
    >>> con.sql("SELECT name FROM traces").fetchall()
    [('agent',)]
    """
    empty: dict[str, list[dict[str, Any]]] = {"traces": [], "observations": [], "scores": []}
    try:
        columns, rows, default_source = _open(data, check_limit(max_record_bytes))
    except TraceFormatError as exc:
        if strict:
            raise
        # Not even the header is readable: one load_errors row, as ``load`` records it.
        return _finish(con, source or exc.path, empty, [(exc.locator, exc.reason, "")])
    path = source or default_source
    checked = _check_mapping(
        mapping, columns, path if isinstance(data, (str, Path)) else "the table"
    )
    raw: dict[str, Any] = {}

    def remember(pairs: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
        for where, record in pairs:
            raw[where] = record
            yield where, record

    try:
        mapped, rejected = map_items(
            path,
            FORMAT,
            _items(remember(rows), checked),
            rules=internal or InternalRules(),
            strict=strict,
        )
    except TraceFormatError as exc:
        if strict:
            raise
        # The file broke off part-way (damaged gzip, an unclosed CSV quote): nothing of it.
        return _finish(con, path, empty, [(exc.locator, exc.reason, "")])
    # ``map_items`` gives rows rejected before mapping an empty excerpt: show the raw row.
    rejected = [
        (where, reason, _excerpt(raw.get(where)) if excerpt in ("", "''") else excerpt)
        for where, reason, excerpt in rejected
    ]
    return _finish(con, path, mapped, rejected)


def _finish(
    con: duckdb.DuckDBPyConnection,
    path: str,
    mapped: dict[str, list[dict[str, Any]]],
    rejected: list[tuple[str, str, str]],
) -> LoadResult:
    result = LoadResult(files=[FileResult(path, FORMAT, rejected=len(rejected))])
    write_file(con, path, mapped, rejected, result.files[0])
    totals = con.execute(
        "SELECT (SELECT count(*) FROM traces), (SELECT count(*) FROM observations), "
        "(SELECT count(*) FROM sessions), (SELECT count(*) FROM tool_calls)"
    ).fetchone()
    assert totals is not None
    result.traces, result.observations, result.sessions, result.tool_calls = map(int, totals)
    result.rejected = len(rejected)
    return result


def _excerpt(record: Any) -> str:
    if isinstance(record, ValueError) or record is None:
        return ""
    try:
        shown = repr(record)
    except RecursionError:
        return "(a value nested too deeply to show)"
    return shown if len(shown) <= 200 else shown[:199] + "…"
