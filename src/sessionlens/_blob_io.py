"""Files in and out of :func:`sessionlens.spark_blob.load_langfuse_blob`.

Owns the two ends of the Spark blob path that touch storage:

- **listing** the export's Parquet files in the order the DuckDB loader reads them (traces,
  observations, ``observations_v2``, scores; then by path), each with its table (the folder
  name, else its columns as the loader decides) and the path string the loader would record
  in ``source_file``. Local paths go through the loader's own ``expand_paths``; ``s3a://``,
  ``hdfs://`` and other URLs are listed with Spark's Hadoop file system;
- **writing** a Spark DataFrame into the Parquet root in the layout ``convert`` writes,
  ``ROOT/<table>/date=YYYY-MM-DD/part-<part>_<n>.parquet``: Spark writes into a hidden staging
  directory, then the files are renamed into place after this part's earlier files are
  removed, so a re-load replaces its own output and nothing else.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from .errors import ConfigError
from .loaders import langfuse
from .loaders.files import expand_paths

__all__ = ["BlobFile", "Storage", "list_blob_files"]

_TABLES = ("traces", "observations", "observations_v2", "scores")
_KIND_TABLE = {"trace": "traces", "observation": "observations", "score": "scores"}


@dataclass(frozen=True)
class BlobFile:
    """One input file: the path as the loader records it, Spark's key for it, its table."""

    path: str
    key: str
    table: str
    size: int


class Storage:
    """Hadoop file system operations through the Spark session's JVM (local, HDFS, S3...)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._jvm = session._jvm
        self._conf = session._jsc.hadoopConfiguration()

    def _fs(self, path: str) -> tuple[Any, Any]:
        hpath = self._jvm.org.apache.hadoop.fs.Path(path)
        return hpath.getFileSystem(self._conf), hpath

    def glob(self, pattern: str) -> list[Any]:
        """File statuses matching ``pattern`` (empty when none)."""
        fs, path = self._fs(pattern)
        return list(fs.globStatus(path) or [])

    def walk(self, pattern: str) -> list[tuple[str, int]]:
        """``(path, size)`` of every file under what ``pattern`` matches, recursively."""
        found: list[tuple[str, int]] = []
        for status in self.glob(pattern):
            if not status.isDirectory():
                found.append((str(status.getPath()), int(status.getLen())))
                continue
            fs, _ = self._fs(str(status.getPath()))
            files = fs.listFiles(status.getPath(), True)
            while files.hasNext():
                f = files.next()
                found.append((str(f.getPath()), int(f.getLen())))
        return found

    def delete(self, path: str) -> None:
        fs, hpath = self._fs(path)
        fs.delete(hpath, True)

    def move(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target``, creating the target's directory."""
        fs, src = self._fs(source)
        _, dst = self._fs(target)
        fs.mkdirs(dst.getParent())
        if not fs.rename(src, dst):
            raise OSError(f"could not move {source} to {target}")

    def write_part(
        self, df: Any, root: str, table: str, *, part: str, date: str | None, empty: bool
    ) -> None:
        """Write ``df`` as ``table``'s files of ``part`` (dated by column ``date``).

        This part's earlier files go first; an ``empty`` frame only removes them.
        """
        from pyspark.sql import functions as F

        base = f"{root.rstrip('/')}/{table}"
        for old in self.glob(f"{base}/date=*/part-{part}_*.parquet") + self.glob(
            f"{base}/part-{part}_*.parquet"
        ):
            self.delete(str(old.getPath()))
        if empty:
            return
        staging = f"{root.rstrip('/')}/.sl-blob-{uuid.uuid4().hex[:12]}"
        if date is not None:
            df.withColumn("date", F.date_format(F.col(date), "yyyy-MM-dd")).write.partitionBy(
                "date"
            ).parquet(staging)
            written = self.glob(f"{staging}/date=*/*.parquet")
        else:
            df.coalesce(1).write.parquet(staging)
            written = self.glob(f"{staging}/*.parquet")
        counters: dict[str, int] = {}
        for status in written:
            src = status.getPath()
            folder = src.getParent().getName() if date is not None else ""
            n = counters.get(folder, 0)
            counters[folder] = n + 1
            where = f"{base}/{folder}" if folder else base
            self.move(str(src), f"{where}/part-{part}_{n}.parquet")
        self.delete(staging)


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file:")


def _local_files(paths: list[str]) -> tuple[list[BlobFile], list[tuple[str, str, str]]]:
    files: list[BlobFile] = []
    unreadable: list[tuple[str, str, str]] = []
    for src in expand_paths(paths):
        if src.container != "parquet" or src.gzipped:
            raise ConfigError(
                "paths",
                f"{src.path} is not a Parquet file; load JSON, JSONL and CSV blob exports with "
                "sl.load or sessionlens convert",
            )
        try:
            names = pq.read_schema(src.path).names
        except Exception as exc:  # pyarrow raises several types for a damaged file
            # The loader's own reason for a file it cannot open, so the rejects agree.
            unreadable.append((str(src.path), "file", f"cannot read Parquet: {exc}"))
            continue
        table = src.table_hint or _KIND_TABLE[langfuse.blob_kind(dict.fromkeys(names), None)]
        key = os.path.abspath(src.path)
        files.append(BlobFile(str(src.path), key, table, src.path.stat().st_size))
    return files, unreadable


def _remote_files(storage: Storage, paths: list[str]) -> list[BlobFile]:
    files: list[BlobFile] = []
    for pattern in paths:
        found = storage.walk(pattern)
        if not found:
            raise ConfigError("paths", f"{pattern} matched no files; check the URL and access")
        for path, size in found:
            name = path.rsplit("/", 1)[-1].lower()
            if "/manifests/" in path or name.startswith((".", "_")):
                continue  # run manifests, _SUCCESS and hidden files are not tables
            if not name.endswith(".parquet"):
                raise ConfigError(
                    "paths",
                    f"{path} is not a Parquet file; load JSON, JSONL and CSV blob exports with "
                    "sl.load or sessionlens convert",
                )
            parent = path.rsplit("/", 2)[-2] if path.count("/") > 1 else ""
            if parent in _TABLES:
                table = parent
            else:
                columns = storage.session.read.parquet(path).columns
                table = _KIND_TABLE[langfuse.blob_kind(dict.fromkeys(columns), None)]
            files.append(BlobFile(path, path, table, size))
    rank = {t: i for i, t in enumerate(_TABLES)}
    unique = {f.key: f for f in files}.values()
    return sorted(unique, key=lambda f: (rank.get(f.table, 0), f.path))


def list_blob_files(
    storage: Storage, paths: list[str]
) -> tuple[list[BlobFile], list[tuple[str, str, str]]]:
    """The export's Parquet files in load order, and ``(file, locator, reason)`` of unreadable
    local files (remote files that cannot be read fail the Spark job instead).

    Raises
    ------
    InputNotFoundError
        A local path or glob matched nothing.
    ConfigError
        A file is not Parquet, or a URL matched nothing.
    """
    local = [p for p in paths if not _is_url(p)]
    remote = [p for p in paths if _is_url(p)]
    files, unreadable = _local_files(local) if local else ([], [])
    if remote:
        rank = {t: i for i, t in enumerate(_TABLES)}
        files = sorted(
            files + _remote_files(storage, remote), key=lambda f: (rank.get(f.table, 0), f.path)
        )
    return files, unreadable
