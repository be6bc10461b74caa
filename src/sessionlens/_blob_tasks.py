"""Executor side of :func:`sessionlens.spark_blob.load_langfuse_blob`: the loaders, per batch.

Spark ships Arrow batches to these functions (``mapInArrow``); each one runs the very code the
DuckDB loader runs, so the Spark path cannot drift from it:

- :func:`map_rows`: raw blob-export rows -> ``langfuse.iter_blob_rows`` -> ``loaders.map_items``
  (the Langfuse mappers, internal-trace rules, text checks, rejects with file and ``row N``);
- :func:`group_users`: a user's session candidates -> ``regroup_sessions`` in an in-memory
  DuckDB (user + inactivity gap, the loader's SQL);
- :func:`build_sessions`: whole sessions (traces and observations) -> ``regroup_sessions``,
  ``rebuild_derived`` (tool calls and conversation turns) in an in-memory DuckDB.

Grouping functions get partitions sorted by their key and work in chunks cut at key
boundaries, so an executor holds one chunk (about :data:`CHUNK_BYTES`) at a time, never a
whole partition. Nothing here imports pyspark: executors need only sessionlens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc

from .analysis.derived import rebuild_derived
from .analysis.sessions import regroup_sessions
from .loaders import langfuse, map_items
from .loaders._limits import oversized_rows, too_large
from .loaders._normalize import InternalRules
from .spark import arrow_schema
from .store import connect

__all__ = [
    "BUILT",
    "FILE",
    "ROW",
    "TABLE",
    "build_sessions",
    "envelope",
    "file_key",
    "group_users",
    "map_rows",
]

FILE, ROW, TABLE = "_sl_file", "_sl_row", "_sl_table"
#: Columns that order the versions of one record as the DuckDB loader meets them.
RANK, POS = "_sl_rank", "_sl_pos"
SESSION = "_sl_session"
#: A grouping chunk is cut at the next key boundary once it holds this many bytes.
CHUNK_BYTES = 64 * 2**20
_FORMAT = "langfuse-blob"


def file_key(uri: str) -> str:
    """The path Spark reports for a file (``file:/a%20b.parquet``) as the driver lists it.

    Examples
    --------
    >>> file_key("file:/tmp/x%20y/traces/a.parquet"), file_key("s3a://b/k.parquet")
    ('/tmp/x y/traces/a.parquet', 's3a://b/k.parquet')
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path)
    return unquote(uri)  # Spark reports URLs encoded; Hadoop lists them decoded


@functools.cache
def envelope(*tables: str) -> pa.Schema:
    """One Arrow schema holding rows of several canonical tables (``_sl_table`` says which).

    Columns are the union of the tables' columns (a name has one type in every table) plus
    the bookkeeping ``_sl_table``, ``_sl_file``, ``_sl_rank``, ``_sl_pos``, ``_sl_session``.

    Examples
    --------
    >>> schema = envelope("traces", "observations")
    >>> schema.field("tags").type, schema.field("input_tokens").type
    (ListType(list<l: string>), DataType(int64))
    """
    fields: dict[str, pa.Field] = {
        TABLE: pa.field(TABLE, pa.string()),
        FILE: pa.field(FILE, pa.string()),
        RANK: pa.field(RANK, pa.int32()),
        POS: pa.field(POS, pa.int64()),
        SESSION: pa.field(SESSION, pa.string()),
    }
    for table in tables:
        for f in arrow_schema(table):
            known = fields.setdefault(f.name, f)
            if known.type != f.type:
                raise TypeError(f"{f.name} is {known.type} in one table and {f.type} in {table}")
    return pa.schema(list(fields.values()))


def map_rows(
    batches: Iterator[pa.RecordBatch],
    *,
    hint: str,
    files: dict[str, tuple[str, int]],
    rules: InternalRules,
    limit: int,
) -> Iterator[pa.RecordBatch]:
    """Raw rows of one blob table -> canonical trace, observation, score and reject rows.

    ``files`` maps :func:`file_key` of each input to ``(path as listed, load order)``. Every
    row is mapped on its own so each output row keeps its file and position; the items and
    the mapping are those of ``sl.load`` (``iter_blob_rows`` then ``map_items``).
    """
    schema = envelope("traces", "observations", "scores", "load_errors")
    for batch in batches:
        names = [n for n in batch.schema.names if n not in (FILE, ROW)]
        data = batch.select(names)
        over = oversized_rows(data, limit)  # the Parquet reader's per-row size check
        uris = batch.column(FILE).to_pylist()
        positions = batch.column(ROW).to_pylist()
        out: list[dict[str, Any]] = []
        for i, record in enumerate(data.to_pylist(maps_as_pydicts="strict")):
            path, rank = files[file_key(uris[i])]
            where = f"row {positions[i] + 1}"
            raw: Any = ValueError(too_large("row", over[i], limit)) if i in over else record
            stamp = {FILE: path, RANK: rank, POS: positions[i], "source_file": path}
            for item in langfuse.iter_blob_rows(iter([(where, raw)]), hint):
                rows, rejected = map_items(path, _FORMAT, [item], rules=rules, strict=False)
                for table, mapped in rows.items():
                    out.extend({**row, **stamp, TABLE: table} for row in mapped)
                out.extend(
                    {**stamp, TABLE: "load_errors", "locator": loc, "error": why, "excerpt": ex}
                    for loc, why, ex in rejected
                )
        yield pa.RecordBatch.from_pylist(out, schema=schema)


def _chunks(batches: Iterator[pa.RecordBatch], key: str) -> Iterator[pa.Table]:
    """Tables of whole key groups from batches sorted by ``key``, about CHUNK_BYTES each."""
    held: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        held.append(batch)
        size += batch.nbytes
        if size < CHUNK_BYTES:
            continue
        table = pa.Table.from_batches(held)
        keys = table.column(key)
        cut = pc.index(keys, keys[len(keys) - 1]).as_py()  # first row of the last key
        if cut > 0:
            yield table.slice(0, cut)
            rest = table.slice(cut)
            held, size = rest.to_batches(), rest.nbytes
    if held:
        yield pa.Table.from_batches(held)


def _duck(
    chunk: pa.Table, tables: dict[str, str], work: Callable[[Any], list[tuple[str, str]]]
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Load a chunk into a fresh in-memory store, run ``work``, yield the tables it names."""
    con = connect()
    try:
        con.register("_sl_chunk", chunk)
        for table, where in tables.items():
            columns = [f.name for f in arrow_schema(table) if f.name in chunk.column_names]
            cols = ", ".join(f'"{c}"' for c in columns)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _sl_chunk WHERE {where}")
        con.unregister("_sl_chunk")
        for name, query in work(con):
            for batch in con.execute(query).fetch_record_batch():
                yield name, batch
    finally:
        con.close()


def group_users(batches: Iterator[pa.RecordBatch], *, gap: timedelta) -> Iterator[pa.RecordBatch]:
    """Session candidates sorted by user -> ``(trace_id, session_id)`` by the loader's rule."""

    def work(con: Any) -> list[tuple[str, str]]:
        regroup_sessions(con, gap)
        return [("traces", "SELECT trace_id, session_id FROM traces")]

    for chunk in _chunks(batches, "user_id"):
        for _, batch in _duck(chunk, {"traces": "TRUE"}, work):
            yield batch


def build_sessions(
    batches: Iterator[pa.RecordBatch], *, gap: timedelta
) -> Iterator[pa.RecordBatch]:
    """Whole sessions' traces and observations -> sessions, tool calls, turns, trace sessions.

    Input rows are an :func:`envelope` of traces and observations sorted by ``_sl_session``;
    traces carry their session in ``session_id``. Output is an ``envelope("sessions",
    "tool_calls", "conversation_turns")`` of those tables plus ``trace_sessions`` rows
    (``trace_id``, ``session_id``: the loader's own grouping, which Spark's partitioning
    must have agreed with).
    """
    schema = envelope(*BUILT)
    sources = {t: (t, [c for c in schema.names if c in arrow_schema(t).names]) for t in BUILT}
    sources["trace_sessions"] = ("traces", ["trace_id", "session_id"])

    def work(con: Any) -> list[tuple[str, str]]:
        regroup_sessions(con, gap)
        rebuild_derived(con)
        return [
            (name, f"SELECT {', '.join(cols)} FROM {table}")
            for name, (table, cols) in sources.items()
        ]

    wanted = {"traces": f"{TABLE} = 'traces'", "observations": f"{TABLE} = 'observations'"}
    for chunk in _chunks(batches, SESSION):
        for name, batch in _duck(chunk, wanted, work):
            n = batch.num_rows
            columns = [
                pa.array([name] * n, pa.string())
                if f.name == TABLE
                else batch.column(f.name).cast(f.type)
                if f.name in batch.schema.names
                else pa.nulls(n, f.type)
                for f in schema
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)


BUILT = ("sessions", "tool_calls", "conversation_turns")
