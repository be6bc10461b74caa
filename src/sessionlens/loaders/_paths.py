"""Input files: what ``load`` is given, expanded into the files it reads.

Owns :class:`SourceFile` (a path with its container, gzip flag and record limit), path
expansion (file, directory, glob; traces before observations) and :data:`FORMATS`, the format
names ``load`` accepts, which :func:`sessionlens.loaders.files.register` extends. Split from
``files.py`` (the readers) so that each stays a readable size; ``files`` re-exports these.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputNotFoundError, UnknownFormatError
from ._limits import DEFAULT_MAX_RECORD_BYTES

__all__ = ["FORMATS", "SourceFile", "expand_paths"]

#: Formats ``load`` accepts, with what each one is.
FORMATS: dict[str, str] = {
    "langfuse-trace": "Langfuse UI trace download {trace, observations} (or API single trace)",
    "langfuse-api-v1": "Langfuse public API v1 pages {data, meta{page}} of traces/observations",
    "langfuse-api-v2": "Langfuse API v2 observation pages {data, meta{cursor}}",
    "langfuse-blob": "Langfuse blob-storage export: traces/observations/scores as "
    "JSON, JSONL, CSV (.gz) or Parquet",
}

_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".parquet")
_BLOB_TABLES = ("traces", "observations", "observations_v2", "scores")


@dataclass(frozen=True)
class SourceFile:
    """One input file: its path, container (json, jsonl, csv, parquet), gzip flag and limit."""

    path: Path
    container: str
    gzipped: bool
    #: Records (lines, CSV lines, Parquet rows, JSON documents) over this size are rejected.
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES

    @property
    def table_hint(self) -> str | None:
        """The blob-export table named by the parent folder, if any."""
        parent = self.path.parent.name
        return parent if parent in _BLOB_TABLES else None


def _container(path: Path) -> tuple[str, bool] | None:
    name = path.name.lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[:-3]
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            kind = suffix[1:]
            return ("jsonl" if kind == "ndjson" else kind), gzipped
    return None


def _source(path: Path) -> SourceFile:
    found = _container(path)
    if found is None:
        raise UnknownFormatError(
            str(path), f"unknown file extension {path.suffix!r}", list(FORMATS)
        )
    return SourceFile(path, *found)


def expand_paths(paths: Sequence[str | Path]) -> list[SourceFile]:
    """Expand files, directories (recursively) and globs into a sorted list of input files.

    Inside a directory, files without a known extension (``.json``, ``.jsonl``, ``.ndjson``,
    ``.csv``, ``.parquet``, each optionally ``.gz``) are skipped; a file named explicitly must
    have one.

    Raises
    ------
    InputNotFoundError
        A path or glob matched nothing.
    """
    found: dict[Path, SourceFile] = {}
    for raw in paths:
        text = str(raw)
        matches = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        if not matches and Path(text).exists():
            matches = [Path(text)]
        if not matches:
            raise InputNotFoundError(text)
        for match in matches:
            if match.is_dir():
                for child in sorted(match.rglob("*")):
                    if child.is_file() and _container(child) and "manifests" not in child.parts:
                        found.setdefault(child, _source(child))
            elif match.is_file():
                found.setdefault(match, _source(match))
    # Traces before their observations: a blob export's observations then attach to real
    # traces instead of creating placeholders that the traces file replaces.
    rank = {table: i for i, table in enumerate(_BLOB_TABLES)}
    return sorted(found.values(), key=lambda s: (rank.get(s.table_hint or "", 0), str(s.path)))
