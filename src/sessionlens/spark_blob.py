"""``load_langfuse_blob``: a Langfuse blob-storage Parquet export to canonical tables in Spark.

A blob export keeps a session's traces and its observations in different files (and an
overlapping window's newer copy of a record in yet another), so no file can be converted on its
own. This module reads the whole export with ``spark.read.parquet`` and writes the canonical
tables into a Parquet root that :func:`sessionlens.connect_spark` reads, in the layout
``convert`` writes. The mapping is not written twice: every step that decides a value is the
DuckDB loader's code, run on the executors (:mod:`sessionlens._blob_tasks`), or Spark SQL
that is the same rule as the loader's SQL:

1. rows -> canonical rows and rejects: the Langfuse mappers per row (``mapInArrow``);
2. newest version per id: Spark windows, ordered as the loader's merge decides (newest
   ``updated_at``, a real trace over a placeholder, on a tie the later file and row; for scores
   the earlier file, as the loader only replaces a score by a strictly newer one);
3. trace start / end from their observations, placeholders for observations without a trace:
   Spark SQL of ``_write.fill_trace_times`` / ``attach_orphans``;
4. sessions by user and inactivity gap: ``regroup_sessions`` per user partition (DuckDB);
5. sessions, tool calls, turns: ``regroup_sessions`` and ``rebuild_derived`` (both derived
   tables from one parse) per session partition (DuckDB).

Known differences from ``sl.load`` + ``export_parquet`` (none in the parity test's data):
``loaded_at`` is the time of this call; when identical copies (same ``updated_at`` and content)
of a record sit in several files, ``source_file`` is the first of them, as in the loader,
except after an A-B-A change of content at one ``updated_at``; a placeholder trace's start is
its earliest observation over the whole export (the loader: over the first file that had one).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import _blob_tasks as tasks
from ._blob_io import BlobFile, Storage, list_blob_files
from ._blob_plan import newest, sessions, spark_type, with_times
from .analysis.sessions import DEFAULT_GAP
from .errors import ConfigError, TraceFormatError
from .loaders._limits import DEFAULT_MAX_RECORD_BYTES, check_limit
from .loaders._normalize import InternalRules
from .parquet import CANONICAL
from .spark import SparkStore, _spark_schema

__all__ = ["BlobLoadResult", "load_langfuse_blob"]

_PARTITION_BYTES = 64 * 2**20  # input bytes per grouping partition (payloads grow ~2x mapped)
#: Rows per Arrow batch handed to the mappers: the DuckDB loader reads Parquet 1,024 at a time.
ROWS_PER_BATCH = 1024


@dataclass
class BlobLoadResult:
    """What :func:`load_langfuse_blob` wrote: rows per table under ``part-<part>``."""

    part: str
    files: int
    rows: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    seconds: float = 0.0


def _map(session: Any, files: list[BlobFile], rules: InternalRules, limit: int) -> Any:
    """Every file through the Langfuse mappers: one envelope DataFrame of rows and rejects."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    order = {f.key: (f.path, rank) for rank, f in enumerate(files)}
    out_type = spark_type(tasks.envelope("traces", "observations", "scores", "load_errors"))
    mapped = None
    for table in dict.fromkeys(f.table for f in files):
        keys = [f.key for f in files if f.table == table]
        try:
            raw = session.read.option("mergeSchema", "true").parquet(*keys)
        except AnalysisException as exc:
            reason = str(exc).strip().splitlines()[0]
            raise TraceFormatError(
                keys[0],
                f"{table}/",
                f"cannot read the {table} files as one table ({reason}); "
                "load files of different schemas in separate calls",
            ) from exc
        raw = raw.select(
            "*",
            F.col("_metadata.file_path").alias(tasks.FILE),
            F.col("_metadata.row_index").alias(tasks.ROW),
        )
        task = functools.partial(tasks.map_rows, hint=table, files=order, rules=rules, limit=limit)
        part = raw.mapInArrow(task, out_type)
        mapped = part if mapped is None else mapped.unionByName(part)
    return mapped


def _part_name(files: list[BlobFile], part: str | None) -> str:
    if part is None:
        part = hashlib.sha256("\n".join(sorted(f.path for f in files)).encode()).hexdigest()[:16]
    if not part or not all(c.isalnum() or c in "-_" for c in part):
        raise ConfigError("part", f"{part!r} is not a plain name; use letters, digits, - and _")
    return part


def _frames(
    session: Any,
    files: list[BlobFile],
    unreadable: list[tuple[str, str, str]],
    *,
    rules: InternalRules,
    limit: int,
    strict: bool,
    gap: timedelta,
    partitions: int,
) -> tuple[dict[str, Any], Any]:
    """The canonical tables' DataFrames and the rejects (``load_errors`` columns)."""
    from pyspark.sql import functions as F

    mapped = _map(session, files, rules, limit) if files else None
    errors = session.createDataFrame(
        [(*u, "", None) for u in unreadable], spark_type(tasks.arrow_schema("load_errors"))
    )
    out: dict[str, Any] = {}
    if mapped is not None:
        mapped = mapped.localCheckpoint(eager=True)
        rejects = mapped.where(F.col(tasks.TABLE) == "load_errors")
        if strict:
            first = rejects.orderBy(tasks.RANK, tasks.POS).first()
            if first is not None:
                raise TraceFormatError(first[tasks.FILE], first["locator"], first["error"])
        errors = errors.unionByName(rejects.orderBy(tasks.RANK, tasks.POS).select(*errors.columns))
        of = {t: mapped.where(F.col(tasks.TABLE) == t) for t in ("traces", "observations")}
        # Checkpoints: both are read again by the grouping and the writes.
        observations = newest(of["observations"], "observation_id").localCheckpoint(eager=True)
        traces = with_times(newest(of["traces"], "trace_id"), observations)
        traces = traces.localCheckpoint(eager=True)
        scores = newest(mapped.where(F.col(tasks.TABLE) == "scores"), "score_id", scores=True)
        keyed, built = sessions(traces, observations, gap=gap, partitions=partitions)
        derived = {t: built.where(F.col(tasks.TABLE) == t) for t in tasks.BUILT}
        owner = built.where(F.col(tasks.TABLE) == "trace_sessions").select(
            "trace_id", F.col("session_id").alias("_sl_owner")
        )
        out = {
            "traces": keyed.join(owner, "trace_id", "left").withColumn(
                "session_id", F.col("_sl_owner")
            ),
            "observations": observations,
            "scores": scores,
            "sessions": derived["sessions"],
            "tool_calls": derived["tool_calls"],
            "conversation_turns": derived["conversation_turns"],
        }
    return out, errors


def _write(
    session: Any,
    storage: Storage,
    out: dict[str, Any],
    errors: Any,
    now: Any,
    root: str,
    part: str,
    result: BlobLoadResult,
) -> None:
    """Every canonical table (empty when not in ``out``) and the rejects, as ``part``."""
    from pyspark.sql import functions as F

    for table, column in CANONICAL.items():
        schema = _spark_schema(table)
        df = out.get(table)
        if df is None:
            df = session.createDataFrame([], schema)
        if "loaded_at" in schema.names:
            df = df.withColumn("loaded_at", now)
        df = df.select(*(F.col(f.name).cast(f.dataType) for f in schema))
        result.rows[table] = df.count()
        storage.write_part(df, root, table, part=part, date=column, empty=not result.rows[table])
    result.rejected = errors.count()
    storage.write_part(errors, root, "load_errors", part=part, date=None, empty=not result.rejected)


@contextlib.contextmanager
def _batch_rows(session: Any, rows: int) -> Iterator[None]:
    """Arrow batches of at most ``rows`` rows to the executors' Python, for this load only."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = session.conf.get(key, None)
    session.conf.set(key, str(rows))
    try:
        yield
    finally:
        if before is None:
            session.conf.unset(key)
        else:
            session.conf.set(key, before)


def _session_of(store_or_session: Any, root: str | Path | None) -> tuple[Any, str]:
    if isinstance(store_or_session, SparkStore):
        return store_or_session.session, str(root or store_or_session.root)
    if not hasattr(store_or_session, "read") or not hasattr(store_or_session, "_jvm"):
        raise ConfigError(
            "store_or_session",
            f"expected a SparkStore (sl.connect_spark) or a SparkSession, got "
            f"{type(store_or_session).__name__}",
        )
    if not root:
        raise ConfigError("root", "give the Parquet root directory to write the tables under")
    return store_or_session, str(root)


def load_langfuse_blob(
    store_or_session: Any,
    paths: str | Path | list[str | Path],
    *,
    root: str | Path | None = None,
    part: str | None = None,
    strict: bool = False,
    internal: InternalRules | None = None,
    gap: timedelta = DEFAULT_GAP,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    partitions: int | None = None,
) -> BlobLoadResult:
    """Map a Langfuse blob-storage Parquet export to canonical tables with Spark.

    Reads the export's ``traces/``, ``observations/``, ``observations_v2/`` and ``scores/``
    Parquet files and writes ``traces``, ``observations``, ``scores``, ``sessions``,
    ``tool_calls``, ``conversation_turns`` (``ROOT/<table>/date=YYYY-MM-DD/part-<part>_<n>
    .parquet``) and the rejected records (``ROOT/load_errors/part-<part>_0.parquet``) with the
    rows ``sl.load`` into DuckDB followed by ``sl.export_parquet`` would write.

    Parameters
    ----------
    store_or_session : SparkStore or pyspark.sql.SparkSession
        From :func:`sessionlens.connect_spark` (then ``root`` defaults to its root, and its
        tables are re-read afterwards) or a session of your cluster.
    paths : path, URL, glob, or a list of them
        Export directories or files. Local paths as ``sl.load`` takes them; ``s3a://``,
        ``hdfs://`` ... are listed through Spark. ``manifests/`` is skipped. All of it is one
        load: a session's traces and observations may be in any of the files.
    root : str or Path, optional
        The Parquet root to write under.
    part : str, optional
        Unit name in the file names; default a hash of the input paths. Loading the same
        export again replaces this part's files (and nothing else under ``root``).
    strict : bool
        Raise ``TraceFormatError`` (file, ``row N``, reason) for the first rejected record and
        write nothing. Default: write the good rows and the rejects.
    internal : InternalRules, optional
        Extra internal-trace rules (Langfuse's own environments and ``sdk-experiment`` always
        are); they are pickled to the executors.
    gap : timedelta
        Inactivity gap that splits a user's traces into sessions when the export names none.
    max_record_bytes : int
        Rows whose text and binary values exceed this are rejected, as ``sl.load`` does.
    partitions : int, optional
        Partitions of the session grouping; default from the input size (one per 64 MB) and at
        least ``spark.sql.shuffle.partitions``.

    Returns
    -------
    BlobLoadResult

    Raises
    ------
    ConfigError
        No root, a bad ``part``, ``gap`` or ``max_record_bytes``, or an input file that is not
        Parquet (JSON / CSV blob exports load with ``sl.load`` or ``sessionlens convert``).
    InputNotFoundError
        A local path matched nothing.
    TraceFormatError
        ``strict`` and a bad record or unreadable file; or files of one table whose schemas
        cannot be merged.

    Examples
    --------
    With a handle from ``sl.connect_spark(root="parquet-root/")`` (or ``sessionlens convert
    langfuse-export/ --out parquet-root/ --spark``)::

        result = load_langfuse_blob(store, "langfuse-export/")
        result.rows["sessions"], result.rejected

    Anything but a Spark handle is refused before Spark does any work:

    >>> load_langfuse_blob(None, "langfuse-export/", root="parquet-root/")
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: store_or_session: expected a SparkStore (sl.connect_spark) \
or a SparkSession, got NoneType
    """
    from pyspark.sql import functions as F

    started = time.perf_counter()
    session, root_text = _session_of(store_or_session, root)
    if gap <= timedelta(0):
        raise ConfigError("gap", f"gap must be a positive duration, got {gap}")
    limit = check_limit(max_record_bytes)
    session.conf.set("spark.sql.session.timeZone", "UTC")
    storage = Storage(session)
    listed = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files, unreadable = list_blob_files(storage, [tasks.file_key(str(p)) for p in listed])
    if strict and unreadable:
        raise TraceFormatError(*unreadable[0])
    part = _part_name(files, part)
    rules = internal or InternalRules()
    if partitions is None:
        default = int(session.conf.get("spark.sql.shuffle.partitions", "8"))
        partitions = max(default, sum(f.size for f in files) // _PARTITION_BYTES + 1)
    result = BlobLoadResult(part=part, files=len(files))
    now = F.lit(datetime.now(UTC).replace(tzinfo=None)).cast("timestamp_ntz")
    with _batch_rows(session, ROWS_PER_BATCH):
        out, errors = _frames(
            session,
            files,
            unreadable,
            rules=rules,
            limit=limit,
            strict=strict,
            gap=gap,
            partitions=partitions,
        )
        _write(
            session, storage, out, errors.withColumn("loaded_at", now), now, root_text, part, result
        )
    if isinstance(store_or_session, SparkStore):
        store_or_session.refresh()
    result.seconds = time.perf_counter() - started
    return result
