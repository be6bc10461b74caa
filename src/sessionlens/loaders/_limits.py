"""The record size limit: reading input in bounded pieces so one huge record cannot exhaust memory.

Owns ``max_record_bytes`` (default 64 MiB, ``sl.load(max_record_bytes=...)``, ``sessionlens
load --max-record-mb``) and the bounded readers behind it. A record larger than the limit is
rejected with its file, position and size and the option that raises the limit, without being
read into memory whole:

- JSON lines: each line is read with ``readline(limit + 1)``; an over-long line is skipped in
  1 MiB pieces (counting its size) and rejected as one record, the lines after it still load;
- a JSON document is parsed whole by ``json``, so a document over the limit is rejected
  before parsing (from its size on disk, or by reading at most ``limit + 1`` bytes of a gzip);
- CSV: lines go to the ``csv`` module through the same bounded ``readline``, and its field
  size limit is set to the limit (a quoted field can span lines);
- Parquet is read one row group at a time (pyarrow cannot read less): a row group whose rows
  average over the limit holds a record over it and is rejected unread; in the groups that
  are read, a row whose text and binary values together exceed the limit is rejected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError, TraceFormatError

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "bounded_lines",
    "bounded_text",
    "check_limit",
    "oversized_rows",
    "parquet_rows",
    "read_at_most",
    "too_large",
]

#: Default ``max_record_bytes``: 64 MiB, far above any real trace record.
DEFAULT_MAX_RECORD_BYTES = 64 * 2**20
_SKIP = 2**20


def check_limit(value: object) -> int:
    """Validate a ``max_record_bytes`` value.

    >>> check_limit(1024)
    1024
    >>> check_limit(0)
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: max_record_bytes: must be a positive number of bytes, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("max_record_bytes", f"must be a positive number of bytes, got {value!r}")
    return value


def too_large(what: str, size: int | str | None, limit: int) -> str:
    """The reason text for a record over the limit: size, limit, and how to raise it.

    >>> too_large("record", 2048, 1024)[:60]
    'record of 2048 bytes is larger than max_record_bytes (1024 b'
    """
    subject = what if size is None else f"{what} of {size} bytes"
    return (
        f"{subject} is larger than max_record_bytes ({limit} bytes); raise the "
        "limit with load(..., max_record_bytes=...) or --max-record-mb"
    )


def bounded_lines(raw: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | int]]:
    """Yield ``(line number, line)``, or ``(line number, size)`` for a line over ``limit``.

    An over-long line is consumed in 1 MiB pieces and only its size is kept. The newline does
    not count towards the limit.

    >>> import io
    >>> list(bounded_lines(io.BytesIO(b"ab\\n" + b"x" * 10 + b"\\ncd"), 4))
    [(1, b'ab\\n'), (2, 10), (3, b'cd')]
    """
    number = 0
    while True:
        line = raw.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith(b"\n")):
            size = len(line)
            while not line.endswith(b"\n"):
                line = raw.readline(_SKIP)
                if not line:
                    break
                size += len(line)
            yield number, size - line.endswith(b"\n")
        else:
            yield number, line


def bounded_blocks(raw: IO[bytes], limit: int, size: int) -> Iterator[tuple[int, bytes | int]]:
    """:func:`bounded_lines` read ``size`` bytes at a time: ``(first line number, whole lines)``
    blocks, and ``(line number, size)`` for a line over ``limit`` (never held whole).

    A worker process turns a block back into those lines with :func:`block_lines`, so that
    this process reads a big file without making an object per line
    (``loaders._parallel``). A last line without a newline comes as a block of its own.

    >>> import io
    >>> data = b"ab\\n\\n" + b"x" * 10 + b"\\ncd\\nef"
    >>> list(bounded_blocks(io.BytesIO(data), 4, 3))
    [(1, b'ab\\n'), (2, b'\\n'), (3, 10), (4, b'cd\\n'), (5, b'ef')]
    >>> lines = [line for first, block in bounded_blocks(io.BytesIO(data), 4, 3)
    ...          for line in (block_lines(first, block, 4) if isinstance(block, bytes)
    ...                       else [(first, block)])]
    >>> lines == list(bounded_lines(io.BytesIO(data), 4))
    True
    """
    number = 1  # of the next line
    carry = b""  # the start of a line whose newline is not read yet
    while True:
        data = raw.read(size)
        carry += data
        cut = carry.rfind(b"\n") + 1
        if cut:
            yield number, carry[:cut]
            number += carry.count(b"\n", 0, cut)
            carry = carry[cut:]
        if not data:
            if carry:
                yield number, carry
            return
        if len(carry) > limit:  # over the limit whatever follows: count the rest of it
            total, carry = len(carry), b""
            while data:
                data = raw.read(size)
                end = data.find(b"\n")
                if end >= 0:
                    total, carry = total + end, data[end + 1 :]
                    break
                total += len(data)
            yield number, total
            number += 1


def block_lines(first: int, block: bytes, limit: int) -> list[tuple[int, bytes | int]]:
    """The ``(line number, line or size)`` of a block from :func:`bounded_blocks`, numbered
    from ``first``: what :func:`bounded_lines` yields for the same bytes.

    >>> block_lines(7, b"ab\\n\\nabcdef\\n", 4)
    [(7, b'ab\\n'), (8, b'\\n'), (9, 6)]
    """
    lines = block.split(b"\n")
    last = lines.pop()  # b"" when the block ends with a newline
    out: list[tuple[int, bytes | int]] = [
        (first + i, line + b"\n" if len(line) <= limit else len(line))
        for i, line in enumerate(lines)
    ]
    if last:
        out.append((first + len(lines), last if len(last) <= limit else len(last)))
    return out


def read_at_most(raw: IO[bytes], limit: int) -> bytes | None:
    """Read a whole stream if it is at most ``limit`` bytes, else ``None`` (reading no more).

    >>> import io
    >>> read_at_most(io.BytesIO(b"abc"), 3), read_at_most(io.BytesIO(b"abcd"), 3)
    (b'abc', None)
    """
    data = raw.read(limit + 1)
    return None if len(data) > limit else data


def oversized_rows(batch: pa.RecordBatch, limit: int) -> dict[int, int]:
    """Rows of ``batch`` whose text and binary values add up to more than ``limit`` bytes.

    Returns ``{row index: bytes}``; nested values are not counted (their strings are bounded by
    the row group check).

    >>> batch = pa.record_batch({"a": ["xx", "y" * 10], "n": [1, 2]})
    >>> oversized_rows(batch, 5)
    {1: 10}
    """
    sizes = None
    for column in batch.columns:
        kind = column.type
        if not any(
            check(kind)
            for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary)
        ) and not pa.types.is_large_binary(kind):
            continue
        length = pc.cast(pc.fill_null(pc.binary_length(column), 0), pa.int64())
        sizes = length if sizes is None else pc.add(sizes, length)
    if sizes is None:
        return {}
    over = pc.indices_nonzero(pc.greater(sizes, limit)).to_pylist()
    return {i: int(sizes[i].as_py()) for i in over}


def bounded_text(handle: IO[str], path: str, limit: int) -> Iterator[str]:
    """Lines of a text file for ``csv``; a line over ``limit`` characters stops the file.

    A CSV cannot be resynchronised after a line it could not parse, so the error is the
    file's (``TraceFormatError`` naming the line).
    """
    number = 0
    while line := handle.readline(limit + 1):
        number += 1
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith("\n")):
            reason = too_large("line", f"more than {limit}", limit)
            raise TraceFormatError(path, f"line {number}", reason)
        yield line


def parquet_rows(parquet: pq.ParquetFile, limit: int) -> Iterator[tuple[str, Any]]:
    """``(row N, record)`` pairs of a Parquet file, a ``ValueError`` for a row over ``limit``.

    One row group at a time, the least pyarrow can read; a group whose rows average over the
    limit holds a record over it and is rejected unread, as one ``rows A-B`` error.
    """
    position = 0
    for group in range(parquet.num_row_groups):
        meta = parquet.metadata.row_group(group)
        if meta.num_rows and meta.total_byte_size / meta.num_rows > limit:
            where = f"rows {position + 1}-{position + meta.num_rows}"
            what = (
                f"row group {group} ({meta.num_rows} rows, {meta.total_byte_size} bytes) "
                "holds a row that"
            )
            yield where, ValueError(too_large(what, None, limit))
            position += meta.num_rows
            continue
        for batch in parquet.iter_batches(batch_size=1024, row_groups=[group]):
            over = oversized_rows(batch, limit)
            for i, row in enumerate(batch.to_pylist(maps_as_pydicts="strict")):
                position += 1
                if i in over:
                    yield f"row {position}", ValueError(too_large("row", over[i], limit))
                else:
                    yield f"row {position}", row
