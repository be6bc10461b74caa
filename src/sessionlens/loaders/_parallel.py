"""Loading on worker processes: records mapped and derived tables rebuilt, rows as ``workers=1``.

:func:`sessionlens.loaders.load` spends most of its time in Python turning records into rows
(``json.loads`` and the mappers). For a JSON lines file whose records map one line at a time
(:data:`ROW_LOCAL` formats), this module spreads that over processes with
:func:`sessionlens._pool.ordered_map` (``forkserver``, bounded, in order), while this process
keeps the file's one DuckDB transaction:

- this process only reads raw bytes, blocks of whole lines of a plain file
  (:func:`~sessionlens.loaders.files.jsonl_blocks`) or a gzipped file's lines, and sends
  chunks of them; pickling parsed records instead costs about 60 % of mapping them;
- a worker splits and decodes its lines and maps their items exactly as the serial path
  does (:func:`~sessionlens.loaders.files.jsonl_record`,
  :func:`~sessionlens.loaders.files.row_items`, :func:`~sessionlens.loaders.map_tagged`),
  says with one byte per item where each item's output went, and sends the rows back as
  Arrow tables (``_write.to_arrow``): cheaper to receive than Python rows, and what the
  merge stages anyway;
- :class:`~._mapping.Cutter` re-cuts the results into batches of ``BATCH_ITEMS`` items, the batches
  the serial path maps and merges one by one: merging sees the same rows in the same batches
  (newest-wins, placeholders, written counts and rejects are those of ``workers=1``), with
  DuckDB on one thread (:func:`one_thread`), the cores being the workers';
- a strict reject, a mapper's error or an unreadable file raises what the serial path
  raises: the first item that fails to map wins (later chunks may fail too, the serial
  path never maps them), unless reading its batch fails.

Formats whose reader needs the whole file (OpenTelemetry spans roll up across lines),
JSON documents, CSV and Parquet are mapped in this process as before.

After the rows, :func:`~._rebuild.parallel_rebuild` runs the Python pass of the derived
tables (:func:`~sessionlens.analysis.derived.derive`) on workers, slice of sessions by slice,
for any file. :func:`plan_workers` decides how many processes, :func:`pooled` which files; each
file (and each rebuild) uses its own pool, forked from the one fork server (:func:`start`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Generator, Iterator
from typing import Any, cast

import duckdb
import pyarrow as pa

from .._pool import (
    check_workers,
    ignore_sigint,
    ordered_map,
    picklable,
    portable,
    restore,
    warm_up,
)
from .._pypass import _cpus, _main_guarded
from ..errors import ConfigError, TraceFormatError

# The package imports this module only inside ``load``, so the names below exist by then.
from . import _gc_paused, planner, transcripts
from ._limits import block_lines
from ._mapping import Cutter, map_tagged
from ._normalize import InternalRules
from ._rebuild import AUTO_MIN_SESSIONS, parallel_rebuild
from ._write import to_arrow
from .files import SourceFile, jsonl_blocks, jsonl_lines, jsonl_record, row_items

__all__ = [
    "AUTO_MIN_BYTES",
    "AUTO_MIN_CPUS",
    "AUTO_MIN_SESSIONS",
    "ROW_LOCAL",
    "one_thread",
    "parallel_batches",
    "parallel_rebuild",
    "plan_workers",
    "pooled",
    "start",
]

#: Formats whose JSON lines map one line at a time (no state across lines).
ROW_LOCAL = frozenset(
    {
        "langfuse-blob",
        "langfuse-trace",
        "langfuse-api-v1",
        "langfuse-api-v2",
        transcripts.FORMAT,
        planner.FORMAT,
    }
)
#: With ``workers=None``, files of at least this many (uncompressed, estimated) bytes are
#: mapped on workers: starting them costs ~0.1-1 s, mapping ~2 s per 10 MB of records.
AUTO_MIN_BYTES = 8 * 2**20
#: With ``workers=None``, use workers only with this many CPUs. On an idle 2-CPU machine a
#: 10k-session export (108k observations) loads in 19 s with 2 workers against 25 s in one
#: process, though with 25% more CPU in all; on 2 CPUs that other work keeps busy the
#: workers only compete with this process's merging and are slower: ``workers=1`` then.
AUTO_MIN_CPUS = 2
#: A gzipped file's size on disk times this estimates its records' size.
_GZIP_RATIO = 5
#: Lines per chunk sent to a worker, and a cap on their bytes: ~0.1 s of mapping each, so
#: ``2 x workers`` chunks in flight keep the workers busy and memory small.
CHUNK_LINES = 1000
CHUNK_BYTES = 2 * 2**20
#: A plain file is read this many bytes at a time, and chunks are whole reads.
READ_BYTES = 2**16
#: Chunks in flight beyond ``2 x workers``: the workers keep mapping while this process
#: merges a batch (about ten chunks of Langfuse observations).
AHEAD = 8


Rows = dict[str, list[dict[str, Any]]]
#: A task's raw lines: ``(number, line or size)`` each, or ``(first number, block)``.
Lines = list[tuple[int, bytes | int]] | tuple[int, bytes]
Tables = dict[str, pa.Table]
Rejects = list[tuple[str, str, str]]
_TABLES = ("traces", "observations", "scores")


def plan_workers(workers: int | None, *, rules: InternalRules) -> tuple[int, int]:
    """``(processes, min_bytes)``: eligible files of ``min_bytes`` or more map on workers.

    ``workers=None`` gives one process per CPU this process may use, for files of at least
    :data:`AUTO_MIN_BYTES`, when there are :data:`AUTO_MIN_CPUS` or more, ``rules`` can be
    pickled and the calling script (if any) guards its entry point (see
    ``sessionlens._pypass.resolve_workers``); else ``(1, 0)``.

    Raises
    ------
    ConfigError
        ``workers`` is not a whole number >= 1, or is > 1 and ``rules`` cannot be pickled.

    Examples
    --------
    >>> plan_workers(1, rules=InternalRules())
    (1, 0)
    >>> plan_workers(3, rules=InternalRules())
    (3, 0)
    >>> plan_workers(0, rules=InternalRules())
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: workers: must be a whole number >= 1, got 0; pass 1 to \
load in this process or leave it unset to use every CPU on large files
    """
    if workers is None:
        if _cpus() < AUTO_MIN_CPUS or picklable(rules) is not None or not _main_guarded():
            return 1, 0
        return _cpus(), AUTO_MIN_BYTES
    checked = check_workers(
        workers,
        sent=rules,
        what="the internal rules",
        fix="use plain tuples and a dict in InternalRules",
        work="load",
        scope="files",
    )
    return checked, 0


def start(sources: list[SourceFile], plan: tuple[int, int]) -> None:
    """Start the fork server now if some file of ``sources`` may map on workers: it imports
    sessionlens (~1.2 CPU s) while this process reads the files before that one."""
    if any(_big_enough(src, plan) for src in sources):
        warm_up(__name__)


def pooled(src: SourceFile, fmt: str, plan: tuple[int, int]) -> bool:
    """Whether ``src`` (read as ``fmt``) is mapped on workers under ``plan``."""
    return fmt in ROW_LOCAL and _big_enough(src, plan)


@contextlib.contextmanager
def one_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run this process's DuckDB statements on one thread while workers keep the cores busy.

    With mapping on workers, this process runs many small statements (a batch's merge, a
    slice's events): on more threads they cost about twice the CPU for little gain in time,
    CPU the workers then lack (a 10k-session export with 2 workers: 13.3 -> 10.8 CPU s in
    this process). The setting is the database's, so the caller enters this outside the
    file's transaction (a statement in an aborted one fails); it is restored on the way out.

    Examples
    --------
    >>> con = duckdb.connect()
    >>> _ = con.execute("SET threads = 2")
    >>> with one_thread(con):
    ...     con.execute("SELECT current_setting('threads')").fetchone()
    (1,)
    >>> con.execute("SELECT current_setting('threads')").fetchone()
    (2,)
    """
    row = con.execute("SELECT current_setting('threads')").fetchone()
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute(f"SET threads = {int(row[0]) if row else 1}")


def _big_enough(src: SourceFile, plan: tuple[int, int]) -> bool:
    processes, min_bytes = plan
    if processes < 2 or src.container != "jsonl":
        return False
    if not min_bytes:
        return True
    try:
        size = os.stat(src.path).st_size * (_GZIP_RATIO if src.gzipped else 1)
    except OSError:
        return False  # reading it reports the problem
    return size >= min_bytes


def parallel_batches(
    src: SourceFile,
    fmt: str,
    *,
    rules: InternalRules,
    strict: bool,
    workers: int,
    batch_items: int,
    columns: dict[str, list[tuple[str, str]]],
) -> Iterator[tuple[Tables, Rejects]]:
    """The batches ``loaders._batches`` yields for ``src``, mapped on ``workers`` processes.

    Their rows come as the Arrow tables ``_write.to_arrow`` makes with ``columns`` (each
    table's, from ``_write.table_columns``): workers convert what they map, which costs this
    process less to receive than Python rows and leaves it only the merge.

    Raises
    ------
    TraceFormatError
        A strict reject, or the file cannot be read (as ``workers=1`` raises them).
    ConfigError
        A worker process died.
    """
    failed: list[Exception] = []
    payload = pickle.dumps((src, fmt, rules, strict, columns))
    results = cast(  # a generator: closing it stops the workers
        Generator[Any, None, None],
        ordered_map(
            _map_lines,
            _line_chunks(src, failed),
            workers=workers,
            initializer=_init_worker,
            initargs=(payload,),
            preload=__name__,
            ahead=2 * workers + AHEAD,
        ),
    )
    cutter = Cutter(batch_items)
    # The first item whose mapping failed (a strict reject, or any other error a mapper
    # raised): the serial path raises it once its batch has been read whole, and never maps
    # the items after it, so a mapping error in a later chunk is not looked at.
    failure: BaseException | None = None
    seen = need = 0  # items read so far; with a failure, the items its batch needs
    try:
        while True:
            with _gc_paused():  # reading and unpickling rows: acyclic garbage, as in _batches
                result = next(results, None)
            if result is None:
                break
            n_items, tags, rows, rejected, error = result
            if failure is None and error is None:
                yield from cutter.add(tags, rows, rejected)
            elif failure is None:  # the file rolls back: its last rows need no merging
                if isinstance(error, tuple):
                    failure = TraceFormatError(str(src.path), *error)
                else:
                    failure = restore(error)
                need = ((seen + len(tags)) // batch_items + 1) * batch_items
            seen += n_items
            if failure is not None and seen >= need:
                raise failure  # its batch was read whole: mapping it raises first
    finally:
        results.close()  # on an early exit, stops the workers now
    if failed:
        raise failed[0]
    if failure is not None:
        raise failure
    yield from cutter.flush()


def _line_chunks(src: SourceFile, failed: list[Exception]) -> Iterator[tuple[Lines]]:
    """Tasks of raw lines; a read error ends them and goes to ``failed`` (raised in order).

    A plain file goes in blocks of whole lines (:func:`~.files.jsonl_blocks`: no object per
    line here, one bytes object to send); a gzipped one line by line, so that a damaged
    stream ends the tasks at the line where the serial path's reading stops too.
    """
    if src.gzipped:
        yield from _gzip_chunks(src, failed)
        return
    blocks: list[bytes] = []
    first = lines = size = 0
    try:
        for number, block in jsonl_blocks(src, READ_BYTES):
            if isinstance(block, int):  # an over-long line, as its size
                if blocks:
                    yield ((first, b"".join(blocks)),)
                    blocks, lines, size = [], 0, 0
                yield ([(number, block)],)
                continue
            first = first if blocks else number
            blocks.append(block)
            lines += block.count(b"\n")
            size += len(block)
            if lines >= CHUNK_LINES or size >= CHUNK_BYTES:
                yield ((first, b"".join(blocks)),)
                blocks, lines, size = [], 0, 0
    except Exception as exc:  # the serial path raises it after the items read before it
        failed.append(exc)
    if blocks:
        yield ((first, b"".join(blocks)),)


def _gzip_chunks(src: SourceFile, failed: list[Exception]) -> Iterator[tuple[Lines]]:
    chunk: list[tuple[int, bytes | int]] = []
    size = 0
    try:
        for number, line in jsonl_lines(src):
            chunk.append((number, line))
            size += line if isinstance(line, int) else len(line)
            if len(chunk) >= CHUNK_LINES or size >= CHUNK_BYTES:
                yield (chunk,)
                chunk, size = [], 0
    except Exception as exc:  # the serial path raises it after the items read before it
        failed.append(exc)
    if chunk:
        yield (chunk,)


#: Worker state from :func:`_init_worker`: ``(src, fmt, rules, strict)``, or the error that
#: made it impossible, raised with the first chunk.
_STATE: (
    tuple[SourceFile, str, InternalRules, bool, dict[str, list[tuple[str, str]]]] | Exception | None
) = None


def _init_worker(payload: bytes) -> None:
    global _STATE
    ignore_sigint()
    try:
        _STATE = pickle.loads(payload)
    except Exception as exc:
        _STATE = ConfigError(
            "workers",
            f"a worker process could not load the internal rules ({type(exc).__name__}: "
            f"{exc}); define them in a module importable from PYTHONPATH, or pass workers=1",
        )


def _map_lines(
    lines: Lines,
) -> tuple[int, bytes, Tables, Rejects, tuple[str, str] | Exception | None]:
    """Worker side: ``(items, tags, tables, rejects, failure)`` of one chunk of lines.

    The chunk's items are all read before any is mapped, as the serial path reads a batch:
    an error reading them is raised. The first mapping failure comes back with the chunk's
    item count, not raised, so that the parent can tell which failure the serial path meets
    first: a strict reject as ``(locator, reason)``, any other error (a mapper's bug) as
    itself (:func:`~sessionlens._pool.portable`).
    """
    state = _STATE
    try:
        if not isinstance(state, tuple):
            raise state or RuntimeError("worker not initialised")
        src, fmt, rules, strict, columns = state
        if isinstance(lines, tuple):  # a block of whole lines from its first line's number
            lines = block_lines(*lines, src.max_record_bytes)
        records = (
            row for number, line in lines if (row := jsonl_record(src, number, line)) is not None
        )
        tags = bytearray()
        with _gc_paused():
            items = list(row_items(src, fmt, records))
            try:
                rows, rejected = map_tagged(
                    str(src.path), fmt, items, rules=rules, strict=strict, tags=tags
                )
            except TraceFormatError as exc:
                return len(items), bytes(tags), {}, [], (exc.locator, exc.reason)
            except Exception as exc:
                return len(items), bytes(tags), {}, [], portable(exc)
            path = str(src.path)
            tables = {t: to_arrow(columns[t], rows[t], source_file=path) for t in _TABLES}
        return len(tags), bytes(tags), tables, rejected, None
    except Exception as exc:
        raise portable(exc) from None
