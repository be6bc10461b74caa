"""Reading input files into ``(kind, locator, record)`` items.

Owns transparent gzip, format detection, the ``Reader`` registry and the container formats
(JSON document, JSON lines, CSV, Parquet) with the position of every record, so that a
rejected record can always be reported as file plus line, row or JSON pointer. Which files
to read (path expansion, :class:`SourceFile`) is ``_paths``, re-exported here.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import pyarrow.parquet as pq

from ..errors import TraceFormatError, UnknownFormatError
from . import langfuse
from ._limits import (
    bounded_blocks,
    bounded_lines,
    bounded_text,
    parquet_rows,
    read_at_most,
    too_large,
)
from ._paths import FORMATS, SourceFile, expand_paths

__all__ = [
    "FORMATS",
    "READERS",
    "Reader",
    "SourceFile",
    "detect",
    "expand_paths",
    "jsonl_lines",
    "jsonl_record",
    "read_items",
    "row_items",
]


@dataclass(frozen=True)
class Reader:
    """A file format beyond Langfuse's, plugged into detection and reading.

    ``sniff`` gets the parsed JSON document (``.json``) or the first record (JSON lines, CSV,
    Parquet) and says whether the file is this format; readers are asked before the Langfuse
    fallbacks, in registration order. ``read_document`` maps a parsed JSON document and
    ``read_rows`` maps ``(locator, record)`` rows (a ``ValueError`` in place of a record is a
    bad line) into items. Items are ``(kind, locator, record)`` where ``kind`` is a Langfuse
    kind (``trace``, ``observation``, ``stub``, ``score``: mapped by the Langfuse mappers),
    ``trace_row`` / ``observation_row`` / ``score_row`` (an already canonical row), or
    ``error`` (the record is the reason).
    """

    name: str
    description: str
    sniff: Callable[[SourceFile, Any], bool]
    read_document: Callable[[SourceFile, Any], Iterator[langfuse.Item]] | None = None
    read_rows: Callable[[SourceFile, Iterator[tuple[str, Any]]], Iterator[langfuse.Item]] | None = (
        None
    )


#: Registered non-Langfuse readers, by format name.
READERS: dict[str, Reader] = {}


def register(reader: Reader) -> Reader:
    """Add ``reader`` to detection, ``FORMATS`` and ``read_items``."""
    READERS[reader.name] = reader
    FORMATS[reader.name] = reader.description
    return reader


_SNIFF_RECORDS = 100  # records detection reads past unreadable ones before giving up
_SNIFF_HEADS = 5  # readable records a format reader is shown
_TOO_DEEP = "JSON nested too deeply to read (over about 1000 levels)"


def _open_text(src: SourceFile, errors: str = "strict") -> IO[str]:
    return io.TextIOWrapper(_open_bytes(src), encoding="utf-8", errors=errors, newline="")


_BAD_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of invalid UTF-8


def _open_bytes(src: SourceFile) -> IO[bytes]:
    if src.gzipped:
        return gzip.open(src.path, "rb")  # type: ignore[return-value]
    return open(src.path, "rb")


def _load_document(src: SourceFile) -> Any:
    # ``json`` parses a document whole: one over the limit is refused before it is read.
    limit = src.max_record_bytes
    size = src.path.stat().st_size if not src.gzipped else None
    try:
        data = None if size is not None and size > limit else _read_at_most(src, limit)
    except (OSError, EOFError) as exc:
        raise TraceFormatError(str(src.path), "file", f"cannot read: {exc}") from exc
    if data is None:
        shown = size if size is not None else f"more than {limit}"
        reason = too_large("JSON document", shown, limit) + ", or export it as JSON lines"
        raise TraceFormatError(str(src.path), "file", reason)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TraceFormatError(str(src.path), f"byte {exc.start}", "invalid UTF-8") from exc
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(
            str(src.path), f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}"
        ) from exc
    except RecursionError as exc:  # hostile input: thousands of nested arrays or objects
        raise TraceFormatError(str(src.path), "file", _TOO_DEEP) from exc


def _read_at_most(src: SourceFile, limit: int) -> bytes | None:
    with _open_bytes(src) as raw:
        return read_at_most(raw, limit)


def detect(src: SourceFile, doc: Any = None) -> str:
    """Name the format of a file from its container and (for JSON) its parsed content.

    Raises
    ------
    UnknownFormatError
        The content matches no supported format; the message lists them.
    """
    heads = [doc] if src.container == "json" else _head_records(src)
    head = heads[0] if heads else None
    for reader in READERS.values():
        # Any of the first few records: one record missing a field its format usually has
        # (a planner session without tool calls) must not hide the format of the file.
        if any(h is not None and reader.sniff(src, h) for h in heads):
            return reader.name
    if src.container in ("csv", "parquet"):
        return "langfuse-blob"
    if src.container == "jsonl":
        first = head
        if isinstance(first, Mapping) and "data" in first and "meta" in first:
            return _api_version(first)
        if isinstance(first, Mapping) and "trace" in first and "observations" in first:
            return "langfuse-trace"
        return "langfuse-blob"
    if doc is None:
        return "langfuse-blob"  # an empty export window
    if isinstance(doc, Mapping):
        if "trace" in doc and "observations" in doc:
            return "langfuse-trace"
        if isinstance(doc.get("data"), list):
            return _api_version(doc)
        if "id" in doc and "timestamp" in doc:
            return "langfuse-trace"
    if isinstance(doc, list):
        if not doc:
            return "langfuse-blob"
        head = doc[0]
        if isinstance(head, Mapping) and isinstance(head.get("data"), list):
            return _api_version(head)
        if isinstance(head, Mapping) and "trace" in head and "observations" in head:
            return "langfuse-trace"
        if isinstance(head, Mapping) and any("_" in k for k in head):
            return "langfuse-blob"
    shape = type(doc).__name__
    keys = ", ".join(list(doc)[:6]) if isinstance(doc, Mapping) else ""
    raise UnknownFormatError(
        str(src.path), f"a JSON {shape}" + (f" with keys {keys}" if keys else ""), list(FORMATS)
    )


def _api_version(page: Mapping[str, Any]) -> str:
    # v1 pages always count pages; v2 pages carry only a cursor, absent on the last page.
    meta = page.get("meta")
    if isinstance(meta, Mapping) and ("page" in meta or "totalItems" in meta):
        return "langfuse-api-v1"
    return "langfuse-api-v2"


def _head_records(src: SourceFile) -> list[Any]:
    # Detection looks at the first records that read: one bad first line (truncated, too
    # large, nested too deeply) must not make the rest of the file look like another format.
    rows = _jsonl_rows(src) if src.container == "jsonl" else None
    if rows is None:
        rows = _csv_rows(src) if src.container == "csv" else _parquet_rows(src)
    heads: list[Any] = []
    try:
        for _, row in itertools.islice(rows, _SNIFF_RECORDS):
            if not isinstance(row, ValueError):
                heads.append(row)
                if len(heads) == _SNIFF_HEADS:
                    break
    except TraceFormatError:
        pass  # reading reports the error
    finally:
        rows.close()  # type: ignore[attr-defined]  # a generator: closes its file now
    return heads


def jsonl_lines(src: SourceFile) -> Iterator[tuple[int, bytes | int]]:
    """A JSON lines file's raw lines, as ``bounded_lines`` numbers them (an over-long line
    is its size); a file that cannot be read raises ``TraceFormatError``. With
    :func:`jsonl_record` this is ``_jsonl_rows``, split so that worker processes can decode
    lines the parent read (``loaders._parallel``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = path.write_bytes(b'{"a": 1}\\n{"a": 2}\\n')
    >>> [jsonl_record(SourceFile(path, "jsonl", False), n, line) for n, line in jsonl_lines(
    ...     SourceFile(path, "jsonl", False))]
    [('line 1', {'a': 1}), ('line 2', {'a': 2})]
    """
    with _open_bytes(src) as raw:
        try:
            yield from bounded_lines(raw, src.max_record_bytes)
        except (OSError, EOFError) as exc:
            raise TraceFormatError(str(src.path), "file", f"cannot read: {exc}") from exc


def jsonl_blocks(src: SourceFile, size: int) -> Iterator[tuple[int, bytes | int]]:
    """:func:`jsonl_lines` as :func:`~._limits.bounded_blocks` of about ``size`` bytes (split
    them with :func:`~._limits.block_lines`); a file that cannot be read raises the same.

    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = path.write_bytes(b'{"a": 1}\\n{"a": 2}\\n')
    >>> list(jsonl_blocks(SourceFile(path, "jsonl", False), 2**16))
    [(1, b'{"a": 1}\\n{"a": 2}\\n')]
    """
    with _open_bytes(src) as raw:
        try:
            yield from bounded_blocks(raw, src.max_record_bytes, size)
        except (OSError, EOFError) as exc:
            raise TraceFormatError(str(src.path), "file", f"cannot read: {exc}") from exc


def jsonl_record(src: SourceFile, number: int, line: bytes | int) -> tuple[str, Any] | None:
    """``(locator, record)`` of one line from :func:`jsonl_lines` (a ``ValueError`` in place
    of a bad record), or ``None`` for a blank line.

    >>> from pathlib import Path
    >>> jsonl_record(SourceFile(Path("x.jsonl"), "jsonl", False), 3, b'{"a": 1}\\n')
    ('line 3', {'a': 1})
    """
    where = f"line {number}"
    if isinstance(line, int):
        return where, ValueError(too_large("record", line, src.max_record_bytes))
    if line.isspace():  # a blank line (``bounded_lines`` never yields b"")
        return None
    try:
        return where, json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return where, ValueError("invalid UTF-8")
    except json.JSONDecodeError as exc:
        return where, ValueError(f"invalid JSON: {exc.msg}")
    except RecursionError:
        return where, ValueError(_TOO_DEEP)


def _jsonl_rows(src: SourceFile) -> Iterator[tuple[str, Any]]:
    for number, line in jsonl_lines(src):
        row = jsonl_record(src, number, line)
        if row is not None:
            yield row


def _csv_rows(src: SourceFile) -> Iterator[tuple[str, Any]]:
    limit = src.max_record_bytes
    csv.field_size_limit(limit)  # a quoted field may span lines: bounded here, not by them
    reader = None
    try:
        # Invalid bytes are kept as escapes and reported per row, not for the whole file.
        with _open_text(src, errors="surrogateescape") as handle:
            reader = csv.DictReader(bounded_text(handle, str(src.path), limit))
            if any(_BAD_BYTE.search(name) for name in reader.fieldnames or ()):
                raise TraceFormatError(str(src.path), "line 1", "invalid UTF-8 in the header row")
            start = 2
            for row in reader:
                if None in row:
                    yield f"line {start}", ValueError("more fields than the header has")
                elif any(isinstance(v, str) and _BAD_BYTE.search(v) for v in row.values()):
                    yield f"line {start}", ValueError("invalid UTF-8")
                else:
                    # CSV has no NULL: an empty field is one, and nested values are JSON text.
                    yield f"line {start}", {k: (v if v != "" else None) for k, v in row.items()}
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise TraceFormatError(str(src.path), "file", "invalid UTF-8") from exc
    except csv.Error as exc:
        line = f"line {reader.line_num}" if reader is not None else "file"
        if "field larger than field limit" in str(exc):
            reason = too_large("CSV field", f"more than {limit}", limit)
            raise TraceFormatError(str(src.path), line, reason) from exc
        raise TraceFormatError(str(src.path), line, f"cannot read CSV: {exc}") from exc
    except (OSError, EOFError) as exc:
        raise TraceFormatError(str(src.path), "file", f"cannot read CSV: {exc}") from exc


def _parquet_rows(src: SourceFile) -> Iterator[tuple[str, Any]]:
    try:
        parquet = pq.ParquetFile(src.path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise TraceFormatError(str(src.path), "file", f"cannot read Parquet: {exc}") from exc
    yield from parquet_rows(parquet, src.max_record_bytes)


def read_items(src: SourceFile, fmt: str = "auto") -> tuple[str, Iterator[langfuse.Item]]:
    """Resolve the format of ``src`` and return it with an iterator over its records.

    Items are ``(kind, locator, record)``; ``kind`` is ``trace``, ``observation``, ``stub``
    (trace fields carried by an observation row), ``score``, or ``error`` (then the record
    is the reason). A file that cannot be read at all raises ``TraceFormatError``.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise UnknownFormatError(str(src.path), f"unknown format {fmt!r}", list(FORMATS))
    if src.container == "json":
        doc = _load_document(src)
        fmt = detect(src, doc) if fmt == "auto" else fmt
        reader = READERS.get(fmt)
        if reader is not None:
            if reader.read_document is None:
                raise UnknownFormatError(
                    str(src.path), f"{fmt} does not come as one JSON document", list(FORMATS)
                )
            return fmt, reader.read_document(src, doc)
        return fmt, _document_items(src, fmt, doc)
    fmt = detect(src) if fmt == "auto" else fmt
    if src.container == "jsonl":
        rows = _jsonl_rows(src)
    elif src.container == "csv":
        rows = _csv_rows(src)
    else:
        rows = _parquet_rows(src)
    return fmt, row_items(src, fmt, rows)


def row_items(
    src: SourceFile, fmt: str, rows: Iterator[tuple[str, Any]]
) -> Iterator[langfuse.Item]:
    """Items of ``(locator, record)`` rows of ``src`` in format ``fmt`` (not a JSON document).

    Raises
    ------
    UnknownFormatError
        ``fmt`` does not come as rows.

    Examples
    --------
    >>> from pathlib import Path
    >>> src = SourceFile(Path("export/scores/x.jsonl"), "jsonl", False)
    >>> [kind for kind, _, _ in row_items(src, "langfuse-blob", iter([("line 1", {"id": "s"})]))]
    ['score']
    """
    reader = READERS.get(fmt)
    if reader is not None:
        if reader.read_rows is None:
            raise UnknownFormatError(
                str(src.path), f"{fmt} does not come as {src.container} rows", list(FORMATS)
            )
        return reader.read_rows(src, rows)
    if fmt == "langfuse-blob":
        return langfuse.iter_blob_rows(rows, src.table_hint)
    return _line_documents(rows, fmt)


def _document_items(src: SourceFile, fmt: str, doc: Any) -> Iterator[langfuse.Item]:
    if doc is None:
        return
    if fmt == "langfuse-trace":
        docs = doc if isinstance(doc, list) else [doc]
        for i, one in enumerate(docs):
            yield from langfuse.iter_trace_download(one, f"/{i}" if isinstance(doc, list) else "")
    elif fmt == "langfuse-blob":
        if not isinstance(doc, list):
            yield "error", "/", "a blob-export JSON file must be an array of rows"
            return
        rows = ((f"/{i}", row) for i, row in enumerate(doc))
        yield from langfuse.iter_blob_rows(rows, src.table_hint)
    else:
        yield from langfuse.iter_api_pages(doc)


def _line_documents(rows: Iterator[tuple[str, Any]], fmt: str) -> Iterator[langfuse.Item]:
    for where, page in rows:
        if isinstance(page, ValueError):
            yield "error", where, str(page)
            continue
        items = (
            langfuse.iter_trace_download(page)
            if fmt == "langfuse-trace"
            else langfuse.iter_api_pages(page)
        )
        for kind, sub, record in items:
            yield kind, f"{where} {sub}", record
