"""Canonical tables as date-partitioned Parquet: ``export_parquet`` and parallel ``convert``.

This module owns writing the Parquet root that :func:`sessionlens.connect_spark` reads::

    ROOT/<table>/date=YYYY-MM-DD/part-<hash>.parquet

One input unit (a file, or a directory loaded together) becomes one ``part-<hash>`` file per
table and date, where ``<hash>`` names the unit: units convert independently, in parallel
processes here or as Spark tasks elsewhere, and re-converting a unit replaces its own parts and
nothing else. The date is the UTC day a row starts (``timestamp`` for turns and scores); rows
without one go to ``date=__HIVE_DEFAULT_PARTITION__``, Spark's name for a NULL partition.

What a unit must hold: everything derived per session (``sessions``, ``tool_calls``,
``conversation_turns``) is built inside the unit, so a session must not straddle units. Trace
downloads, OTLP files of whole traces and transcripts qualify; a Langfuse blob export keeps
traces and observations in separate files, so convert its directory as one unit or map it in
Spark with :func:`sessionlens.spark_blob.load_langfuse_blob`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .errors import ConfigError

__all__ = ["CANONICAL", "ConvertResult", "convert", "export_parquet", "unit_hash"]

#: Tables a unit writes, and the column whose UTC day partitions them.
CANONICAL = {
    "traces": "start_time",
    "observations": "start_time",
    "sessions": "start_time",
    "tool_calls": "start_time",
    "conversation_turns": "timestamp",
    "scores": "timestamp",
}
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


@dataclass
class ConvertResult:
    """What one unit wrote."""

    path: str
    part: str
    rows: dict[str, int]


def unit_hash(path: str | Path) -> str:
    """The ``part-<hash>`` name of an input unit: a hash of its resolved path.

    Examples
    --------
    >>> unit_hash("a.jsonl") == unit_hash("./a.jsonl"), len(unit_hash("a.jsonl"))
    (True, 16)
    """
    return hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]


def _remove_parts(folder: Path, part: str) -> None:
    """Delete an earlier conversion's files of this unit (its dates may have changed)."""
    if folder.is_dir():
        for old in folder.glob(f"date=*/part-{part}*.parquet"):
            old.unlink()


def export_parquet(
    con: duckdb.DuckDBPyConnection,
    root: str | Path,
    *,
    part: str | None = None,
    prices: bool = False,
) -> dict[str, int]:
    """Write the canonical tables of ``con`` under ``root`` in the Spark layout.

    Parameters
    ----------
    con : DuckDBPyConnection
        A loaded database from :func:`sessionlens.connect`.
    root : str or Path
        Local directory of the Parquet root (created if missing).
    part : str, optional
        The unit name in file names (``part-<part>_0.parquet``); default a hash of the
        source files the traces came from, so exporting the same input twice replaces rather
        than duplicates. Re-exporting a part first removes that part's earlier files.
    prices : bool
        Also write ``model_prices`` (``ROOT/model_prices/part-<part>.parquet``), replacing the
        prices there: do it from one database only, or rows repeat.

    Returns
    -------
    dict
        Rows written per table.

    Raises
    ------
    ConfigError
        ``part`` is not a plain name (letters, digits, ``-`` and ``_``).

    Examples
    --------
    >>> import tempfile, sessionlens as sl
    >>> con = sl.connect()
    >>> _ = sl.load(con, sl.datasets.sample_dir())
    >>> rows = export_parquet(con, tempfile.mkdtemp(), part="sample")
    >>> rows["sessions"]
    60
    """
    if part is None:
        sources = con.execute(
            "SELECT DISTINCT source_file FROM traces WHERE source_file IS NOT NULL "
            "UNION SELECT DISTINCT source_file FROM observations WHERE source_file IS NOT NULL "
            "ORDER BY 1"
        ).fetchall()
        part = hashlib.sha256("\n".join(str(r[0]) for r in sources).encode()).hexdigest()[:16]
    if not part or not all(c.isalnum() or c in "-_" for c in part):
        raise ConfigError("part", f"{part!r} is not a plain name; use letters, digits, - and _")
    base = Path(root)
    rows: dict[str, int] = {}
    for table, column in CANONICAL.items():
        folder = base / table
        _remove_parts(folder, part)
        count = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        rows[table] = int(count[0]) if count else 0
        if not rows[table]:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        # COPY takes no bound parameters: identifiers are constants from CANONICAL, the part
        # name was checked above, and the path is quoted as a SQL string literal.
        path_literal = "'" + str(folder).replace("'", "''") + "'"
        con.execute(
            f"COPY (SELECT *, coalesce(strftime(\"{column}\", '%Y-%m-%d'), "
            f"'{_NULL_PARTITION}') AS date FROM \"{table}\") TO {path_literal} "
            f"(FORMAT parquet, PARTITION_BY (date), OVERWRITE_OR_IGNORE, "
            f"FILENAME_PATTERN 'part-{part}_{{i}}')"
        )
    if prices:
        folder = base / "model_prices"
        if folder.is_dir():
            for old in folder.glob("*.parquet"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        path_literal = "'" + str(folder / f"part-{part}.parquet").replace("'", "''") + "'"
        con.execute(f"COPY model_prices TO {path_literal} (FORMAT parquet)")
        count = con.execute("SELECT count(*) FROM model_prices").fetchone()
        rows["model_prices"] = int(count[0]) if count else 0
    return rows


def _convert_one(path: str, out: str, fmt: str, strict: bool) -> ConvertResult:
    from .loaders import load
    from .store import connect

    con = connect()
    try:
        load(con, path, format=fmt, strict=strict, progress=False)
        part = unit_hash(path)
        return ConvertResult(path, part, export_parquet(con, out, part=part))
    finally:
        con.close()


def convert(
    paths: Sequence[str | Path],
    *,
    out: str | Path,
    workers: int | None = None,
    format: str = "auto",
    strict: bool = False,
) -> list[ConvertResult]:
    """Convert each path (a file, or a directory loaded as one unit) into the Parquet root.

    Units run in ``workers`` processes (default: one per CPU), each loading into its own
    in-memory DuckDB and exporting with :func:`export_parquet` under ``part-<unit_hash>``.

    Raises
    ------
    ConfigError
        ``workers`` is not a positive integer, or no paths were given.
    InputNotFoundError, TraceFormatError
        As :func:`sessionlens.load` (the first failing unit's error).

    Examples
    --------
    >>> import tempfile, sessionlens as sl
    >>> [r.rows["sessions"] for r in convert([sl.datasets.sample_dir()], out=tempfile.mkdtemp(),
    ...                                       workers=1)]
    [60]
    """
    if not paths:
        raise ConfigError("paths", "give at least one file or directory to convert")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ConfigError("workers", f"must be a positive integer, got {workers!r}")
    units = [str(p) for p in paths]
    if workers == 1 or len(units) == 1:
        return [_convert_one(u, str(out), format, strict) for u in units]
    # spawn: a forked child would inherit DuckDB's threads and locks mid-flight.
    context: Any = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_convert_one, u, str(out), format, strict) for u in units]
        return [f.result() for f in futures]
