"""``load``: read exports into the canonical tables, one transaction per file.

Owns the load pipeline every format shares: expand paths, detect the format, map each record
(rejecting bad ones with file and position), then, in one transaction per file, merge rows
(batch by batch, so a multi-GB file is never held in memory as Python rows),
record rejects in ``load_errors``, fill trace times, regroup sessions and rebuild the derived
``tool_calls`` / ``conversation_turns`` for the sessions that changed. A file that fails
leaves the database exactly as it was.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
from tqdm.auto import tqdm

from .._pool import gc_paused as _gc_paused
from ..analysis.derived import rebuild_derived
from ..analysis.sessions import regroup_sessions, session_gap
from ..errors import TraceFormatError

# Importing a format's module registers its reader (detection asks them in this order).
from . import _write, langfuse, otlp, phoenix, planner, transcripts  # noqa: F401
from ._limits import DEFAULT_MAX_RECORD_BYTES, check_limit
from ._mapping import (
    TAG_NONE,
    TAG_OBSERVATION,
    TAG_REJECT,
    TAG_SCORE,
    TAG_TRACE,
    map_items,
    map_tagged,
)
from ._normalize import InternalRules
from .files import FORMATS, expand_paths, read_items
from .phoenix import load_spans_dataframe

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "FORMATS",
    "TAG_NONE",
    "TAG_OBSERVATION",
    "TAG_REJECT",
    "TAG_SCORE",
    "TAG_TRACE",
    "FileResult",
    "InternalRules",
    "LoadResult",
    "load",
    "load_spans_dataframe",
    "map_items",
    "map_tagged",
    "write_file",
    "write_stream",
]

#: A batch's rows per table (row dicts, or their Arrow table from ``_write.to_arrow``) and
#: its rejects ``(locator, reason, excerpt)``.
Batch = tuple[dict[str, Any], list[tuple[str, str, str]]]


@dataclass
class FileResult:
    """What one file contributed."""

    path: str
    format: str
    traces: int = 0
    observations: int = 0
    scores: int = 0
    rejected: int = 0


@dataclass
class LoadResult:
    """Summary of a ``load`` call; totals are counts in the database afterwards."""

    files: list[FileResult] = field(default_factory=list)
    traces: int = 0
    observations: int = 0
    sessions: int = 0
    tool_calls: int = 0
    rejected: int = 0

    @property
    def written(self) -> dict[str, int]:
        """Rows this call inserted or replaced, per table."""
        return {
            "traces": sum(f.traces for f in self.files),
            "observations": sum(f.observations for f in self.files),
            "scores": sum(f.scores for f in self.files),
        }


#: Items mapped and merged at a time: bounds the Python rows of a file in memory.
BATCH_ITEMS = 20_000
#: Sessions whose derived tool_calls / conversation_turns are rebuilt in one step.
REBUILD_SESSIONS = 1_000


def _batches(
    path: str, fmt: str, items: Iterable[langfuse.Item], *, rules: InternalRules, strict: bool
) -> Iterator[Batch]:
    iterator = iter(items)
    while True:
        with _gc_paused():
            chunk = list(itertools.islice(iterator, BATCH_ITEMS))
            if not chunk:
                return
            batch = map_items(path, fmt, chunk, rules=rules, strict=strict)
            del chunk
        yield batch
        del batch  # not alive while the next batch is read and mapped


def write_file(
    con: duckdb.DuckDBPyConnection,
    path: str,
    rows: dict[str, list[dict[str, Any]]],
    rejected: list[tuple[str, str, str]],
    result: FileResult,
) -> None:
    """Write one file's mapped rows and rejects in one transaction."""
    write_stream(con, path, [(rows, rejected)], result)


def write_stream(
    con: duckdb.DuckDBPyConnection,
    path: str,
    batches: Iterable[Batch],
    result: FileResult,
    *,
    rebuild: Callable[[duckdb.DuckDBPyConnection, list[str]], bool] | None = None,
) -> None:
    """Write one file's batches of mapped rows and rejects in one transaction.

    Batches are merged as they come, so a multi-GB file never sits in memory as Python
    rows; the transaction still covers the whole file, and an exception from the batches
    (a strict reject, a file that breaks off) rolls all of it back. ``rebuild(con, ids)``, if
    given, may rebuild the derived rows of sessions ``ids`` another way (returning ``True``).
    """
    result.traces = result.observations = result.scores = result.rejected = 0
    con.begin()
    try:
        _write.drop_touched(con)
        for rows, rejected in batches:
            with _gc_paused():  # rows to Arrow: more acyclic garbage
                stage = _write.Stage()
                merge = functools.partial(_write.merge_rows, con, source_file=path, stage=stage)
                result.traces += merge("traces", rows["traces"])
                result.observations += merge("observations", rows["observations"])
                result.scores += merge("scores", rows["scores"])
                _write.attach_orphans(con, path, stage)
                _write.write_errors(con, path, rejected)
                result.rejected += len(rejected)
                _write.touched_trace_ids(con, stage)
                del stage, rows  # the batch's Arrow tables go now, not at the next batch
        _write.touched_trace_ids(con)  # exists even when the file had no rows
        _write.fill_trace_times(con)
        changed = set(regroup_sessions(con, session_gap(con)))
        changed.update(
            str(r[0])
            for r in con.execute(
                "SELECT DISTINCT session_id FROM traces "
                "WHERE trace_id IN (SELECT trace_id FROM _touched_traces)"
            ).fetchall()
        )
        ids = sorted(changed) if changed and (result.traces or result.observations) else []
        if ids and not (rebuild and rebuild(con, ids)):
            # In slices of sessions: the rebuild holds every event of the sessions it is given,
            # so one slice at a time keeps a big file's memory to one slice's events.
            for start in range(0, len(ids), REBUILD_SESSIONS):
                chunk = ids[start : start + REBUILD_SESSIONS]
                rebuild_derived(con, session_ids=chunk)
        _write.drop_touched(con)
        con.commit()
    except BaseException:
        con.rollback()
        raise


def load(
    con: duckdb.DuckDBPyConnection,
    paths: str | Path | Sequence[str | Path],
    *,
    format: str = "auto",
    strict: bool = False,
    internal: InternalRules | None = None,
    progress: bool | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    workers: int | None = None,
) -> LoadResult:
    """Load trace exports into the canonical tables.

    Parameters
    ----------
    con : DuckDBPyConnection
        A database from ``sessionlens.connect``.
    paths : path, glob, directory, or a list of them
        Directories are searched recursively for ``.json``, ``.jsonl``, ``.ndjson``, ``.csv``
        and ``.parquet`` files (each optionally ``.gz``).
    format : str
        ``"auto"`` (detect per file) or one of ``FORMATS``.
    strict : bool
        Raise ``TraceFormatError`` (file, line or JSON pointer, reason) on the first bad record
        and leave that file unloaded. Default: load the good records and write each rejected
        one to ``load_errors``.
    internal : InternalRules, optional
        Extra rules that flag traces as internal (evals, simulators); Langfuse's own
        environments and ``sdk-experiment`` are always internal.
    progress : bool, optional
        Show a progress bar over files. Default: only when stderr is a terminal.
    max_record_bytes : int
        Largest record accepted (a JSON line, CSV line or field, Parquet row, or a whole JSON
        document), default 64 MiB. A larger one is rejected like any bad record (file,
        position, size) without being read into memory whole; see ``docs/reliability.md``.
    workers : int, optional
        Processes that decode and map the records of a JSON lines file (Langfuse exports,
        chat transcripts, planner logs) and rebuild the derived tables; this process still
        writes every row, in the same batches, so the tables come out as with ``workers=1``
        (today's path, all in this process). Default: one per CPU for files of 8 MB or more
        on machines with 2 or more CPUs (``_parallel.AUTO_MIN_CPUS``), when the calling
        script guards its entry point with ``if __name__ == "__main__":``; else 1.

    Returns
    -------
    LoadResult

    Examples
    --------
    >>> from sessionlens import connect, datasets
    >>> con = connect()
    >>> result = load(con, datasets.sample_dir())
    >>> result.rejected, result.sessions > 0
    (0, True)
    >>> load(con, datasets.sample_dir()).written  # a re-load writes nothing
    {'traces': 0, 'observations': 0, 'scores': 0}
    """
    # Imported here: the module imports the mapping functions above from this package.
    from ._parallel import (
        one_thread,
        parallel_batches,
        parallel_rebuild,
        plan_workers,
        pooled,
        start,
    )

    if isinstance(paths, (str, Path)):
        paths = [paths]
    limit = check_limit(max_record_bytes)
    sources = [replace(src, max_record_bytes=limit) for src in expand_paths(paths)]
    rules = internal or InternalRules()
    plan = plan_workers(workers, rules=rules)
    start(sources, plan)
    result = LoadResult()
    bar = tqdm(
        sources, desc="loading", unit="file", disable=None if progress is None else not progress
    )
    for src in bar:
        path = str(src.path)
        try:
            fmt, items = read_items(src, format)
            file_result = FileResult(path, fmt)
            if pooled(src, fmt, plan):
                batches = parallel_batches(
                    src,
                    fmt,
                    rules=rules,
                    strict=strict,
                    workers=plan[0],
                    batch_items=BATCH_ITEMS,
                    columns={
                        t: _write.table_columns(con, t)
                        for t in ("traces", "observations", "scores")
                    },
                )
                threads: contextlib.AbstractContextManager[None] = one_thread(con)
            else:
                batches = _batches(path, fmt, items, rules=rules, strict=strict)
                threads = contextlib.nullcontext()
            rebuild = functools.partial(parallel_rebuild, plan=plan, most=REBUILD_SESSIONS)
            with threads:  # rolled back whole (before the setting returns) if reading fails
                write_stream(con, path, batches, file_result, rebuild=rebuild)
        except TraceFormatError as exc:
            if strict:
                raise
            # The whole file is unreadable (truncated JSON document, damaged gzip): one row.
            file_result = FileResult(path, "unreadable")
            empty: dict[str, list[dict[str, Any]]] = {
                "traces": [],
                "observations": [],
                "scores": [],
            }
            write_file(con, path, empty, [(exc.locator, exc.reason, "")], file_result)
        result.files.append(file_result)
    totals = con.execute(
        "SELECT (SELECT count(*) FROM traces), (SELECT count(*) FROM observations), "
        "(SELECT count(*) FROM sessions), (SELECT count(*) FROM tool_calls)"
    ).fetchone()
    assert totals is not None
    result.traces, result.observations, result.sessions, result.tool_calls = map(int, totals)
    result.rejected = sum(f.rejected for f in result.files)
    return result
