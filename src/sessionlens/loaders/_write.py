"""Writing mapped rows into the canonical tables: staging, newest-wins merge, error rows.

Rows are staged as Arrow tables (:class:`Stage`) and merged: an ``UPDATE`` of stored ids
guarded by the record's ``updated_at`` and content hash, then an ``INSERT`` of new ids, so that

- a re-load of the same export changes nothing (same age and hash, no write);
- overlapping export windows add each record once, and the newest ``updated_at`` wins;
- a placeholder trace made from observation rows never replaces a real trace record.

The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .._arrow_sql import ARROW, execute_arrow, select_arrow

__all__ = [
    "Stage",
    "attach_orphans",
    "drop_touched",
    "fill_trace_times",
    "merge_rows",
    "table_columns",
    "to_arrow",
    "touched_trace_ids",
    "write_errors",
]

_TYPES: dict[str, pa.DataType] = {
    "TEXT": pa.string(),
    "JSON": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "TEXT[]": pa.list_(pa.string()),
    "VARCHAR": pa.string(),
    "VARCHAR[]": pa.list_(pa.string()),
}

_KEYS = {"traces": "trace_id", "observations": "observation_id", "scores": "score_id"}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [(str(name), str(dtype)) for name, dtype in rows]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """``(name, type)`` of ``table``'s columns, what :func:`to_arrow` builds.

    >>> from sessionlens.store import connect
    >>> table_columns(connect(), "scores")[:2]
    [('score_id', 'VARCHAR'), ('trace_id', 'VARCHAR')]
    """
    return _columns(con, table)


def to_arrow(
    columns: list[tuple[str, str]], rows: Sequence[dict[str, Any]], *, source_file: str
) -> pa.Table:
    """``rows`` as an Arrow table with ``columns`` (:func:`table_columns`), as
    :func:`merge_rows` stages them: ``source_file`` set, ``loaded_at`` left for the merge.

    Worker processes call this on the rows they map (``loaders._parallel``), so that this
    process receives Arrow buffers rather than unpickling and converting Python rows.

    >>> to_arrow([("id", "TEXT"), ("n", "BIGINT"), ("source_file", "TEXT")],
    ...          [{"id": "a", "n": 1}], source_file="f").to_pylist()
    [{'id': 'a', 'n': 1, 'source_file': 'f'}]
    """
    values = _column_values(rows)
    arrays = {}
    for name, dtype in columns:
        kind = _TYPES.get(dtype, pa.string())
        if name == "source_file":
            arrays[name] = pa.array([source_file] * len(rows), type=kind)
        elif name == "loaded_at":
            arrays[name] = pa.nulls(len(rows), type=kind)
        elif values is None:
            arrays[name] = pa.array([row.get(name) for row in rows], type=kind)
        else:
            arrays[name] = pa.array(values.get(name, [None] * len(rows)), type=kind)
    return pa.table(arrays)


def _column_values(rows: Sequence[dict[str, Any]]) -> dict[str, Sequence[Any]] | None:
    """Each key's values, when every row has the same keys in the same order, else ``None``.

    A mapper builds every row of a table with one dict literal, so this is the usual case;
    transposing the rows' ``values()`` in one ``zip`` is about three times faster than one
    ``dict.get`` per row and column.

    >>> _column_values([{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    {'a': (1, 3), 'b': (2, 4)}
    >>> _column_values([{"a": 1, "b": 2}, {"b": 4, "a": 3}]) is None
    True
    """
    if not rows:
        return None
    keys = tuple(rows[0])
    if any(tuple(row) != keys for row in rows):
        return None
    return dict(zip(keys, zip(*map(dict.values, rows), strict=True), strict=True))


@dataclass
class Stage:
    """One batch's deduplicated rows per table, as Arrow tables.

    Not temporary tables: a temp table dropped inside the file's transaction keeps its rows
    until the commit, and so would a registered view (see ``sessionlens._arrow_sql``), which
    made a big file's memory grow by a batch per batch.
    """

    tables: dict[str, pa.Table] = field(default_factory=dict)


def merge_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: Sequence[dict[str, Any]] | pa.Table,
    *,
    source_file: str,
    stage: Stage,
) -> int:
    """Merge ``rows`` into ``table`` (traces, observations or scores); return rows written.

    ``rows`` are canonical row dicts, or the Arrow table :func:`to_arrow` made of them.
    Within the batch the newest ``source_updated_at`` per id wins (a real trace before a
    placeholder, a later position on ties); against the table the incoming row replaces the
    stored one if it is newer, or as new but with other content. The deduplicated batch is
    kept in ``stage`` for :func:`attach_orphans` and :func:`touched_trace_ids`.
    """
    stage.tables.pop(table, None)
    if not len(rows):
        return 0
    key = _KEYS[table]
    columns = _columns(con, table)
    names = [name for name, _ in columns]
    if not isinstance(rows, pa.Table):
        rows = to_arrow(columns, rows, source_file=source_file)
    staged = _newest(con, rows, key, stubs=table == "traces")
    stage.tables[table] = staged
    target = _q(table)
    # ``session_id`` is left to session grouping, which must see the old value to know which
    # sessions' derived rows to rebuild.
    # ``loaded_at`` is the transaction's start (DuckDB's ``now()``), as for every batch.
    updates = ", ".join(
        f"{_q(n)} = {'now()::TIMESTAMP' if n == 'loaded_at' else 'excluded.' + _q(n)}"
        for n in names
        if n not in (key, "session_id")
    )
    newer = (
        f"coalesce(excluded.source_updated_at, '-infinity'::TIMESTAMP) > "
        f"coalesce({target}.source_updated_at, '-infinity'::TIMESTAMP)"
    )
    # Same age but different content (a corrected re-export) also replaces; same age and
    # same content is a re-load and writes nothing.
    changed = (
        f"(excluded.row_hash IS DISTINCT FROM {target}.row_hash AND "
        f"coalesce(excluded.source_updated_at, '-infinity'::TIMESTAMP) = "
        f"coalesce({target}.source_updated_at, '-infinity'::TIMESTAMP))"
    )
    if table == "traces":
        guard = (
            f"(NOT excluded.is_stub OR {target}.is_stub) AND "
            f"(({target}.is_stub AND NOT excluded.is_stub) OR {newer} OR {changed})"
        )
    elif table == "observations":
        guard = f"({newer} OR {changed})"
    else:
        guard = newer
    # The effective session id starts as the exported one; grouping refines it later.
    session = ", source_session_id AS session_id" if table == "traces" else ""
    select = f"SELECT * REPLACE (now()::TIMESTAMP AS loaded_at{session}) FROM {ARROW}"
    # Two statements rather than ``INSERT ... ON CONFLICT DO UPDATE``: DuckDB keeps an
    # upsert's rows in transaction-local memory until commit, so a multi-GB file grew memory
    # with its size; a plain insert of new ids is written to the database file as row groups
    # fill (optimistic writes) and the file's one transaction stays bounded in memory.
    updated = execute_arrow(
        con,
        f"UPDATE {target} SET {updates} FROM {ARROW} AS excluded "
        f"WHERE {target}.{_q(key)} = excluded.{_q(key)} AND {guard}",
        staged,
    )
    inserted = execute_arrow(
        con,
        f"INSERT INTO {target} ({', '.join(map(_q, names))}) {select} AS excluded "
        f"WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE {target}.{_q(key)} = excluded.{_q(key)})",
        staged,
    )
    return sum(int(r[0][0]) for r in (updated, inserted) if r)


def _newest(con: duckdb.DuckDBPyConnection, rows: pa.Table, key: str, *, stubs: bool) -> pa.Table:
    """``rows`` without the versions that lose to another of the same id, in their order.

    The winner per id: a real trace before a placeholder (``stubs``), then the newest
    ``source_updated_at``, then the later position. Most batches repeat no id, which one
    count of distinct ids tells; the others pick their winners' positions in DuckDB from
    the few columns that decide, not from whole rows.
    """
    ids = rows.column(key)
    if pc.count_distinct(ids, mode="all").as_py() == rows.num_rows:
        return rows
    decide = {key: ids, "source_updated_at": rows.column("source_updated_at")}
    if stubs:
        decide["is_stub"] = rows.column("is_stub")
    decide["_pos"] = pa.array(range(rows.num_rows), type=pa.int64())
    stub_first = "is_stub ASC, " if stubs else ""
    winners = select_arrow(
        con,
        f"SELECT _pos FROM {ARROW} QUALIFY row_number() OVER (PARTITION BY {_q(key)} "
        f"ORDER BY {stub_first}source_updated_at DESC NULLS LAST, _pos DESC) = 1 ORDER BY _pos",
        pa.table(decide),
    )
    return rows.take(winners.column("_pos"))


def attach_orphans(con: duckdb.DuckDBPyConnection, source_file: str, stage: Stage) -> int:
    """Give every staged observation whose trace exists nowhere a placeholder trace.

    Readers emit placeholders for observation-only exports; this is the net under all of
    them, so that no format (a nested observation naming another trace, a trace record that
    was rejected while its observations were fine) can leave an observation without a trace.
    Returns the number of placeholders added.
    """
    staged = stage.tables.get("observations")
    if staged is None:
        return 0
    row = execute_arrow(
        con,
        "INSERT INTO traces (trace_id, is_stub, source_format, source_file, loaded_at) "
        "SELECT trace_id, TRUE, any_value(source_format), ?, now()::TIMESTAMP "
        f"FROM {ARROW} s "
        "WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = s.trace_id) "
        "GROUP BY trace_id",
        staged,
        [source_file],
    )
    return int(row[0][0]) if row else 0


def touched_trace_ids(con: duckdb.DuckDBPyConnection, stage: Stage | None = None) -> None:
    """Add the trace ids of the staged batch to temp table ``_touched_traces``.

    A file is written in batches (``loaders.write_stream``); the table collects every
    batch's ids until :func:`drop_touched`. Without a ``stage`` it only makes sure the table
    exists.
    """
    con.execute("CREATE TEMP TABLE IF NOT EXISTS _touched_traces (trace_id TEXT)")
    for table in ("traces", "observations"):
        staged = stage.tables.get(table) if stage else None
        if staged is not None:
            execute_arrow(
                con,
                f"INSERT INTO _touched_traces SELECT DISTINCT trace_id FROM {ARROW} "
                "EXCEPT SELECT trace_id FROM _touched_traces",
                staged,
            )


def fill_trace_times(con: duckdb.DuckDBPyConnection) -> None:
    """Give touched traces a start (placeholders) and an end from their observations.

    Langfuse traces carry one timestamp; the session analyses need when the last
    observation ended, and a placeholder trace needs a start at all.
    """
    con.execute(
        """
        UPDATE traces SET
            start_time = coalesce(traces.start_time, span.first_start),
            end_time = greatest(coalesce(traces.start_time, span.first_start), span.last_end)
        FROM (
            SELECT o.trace_id, min(o.start_time) AS first_start,
                   max(coalesce(o.end_time, o.start_time)) AS last_end
            FROM observations o JOIN _touched_traces t USING (trace_id)
            GROUP BY o.trace_id
        ) AS span
        WHERE traces.trace_id = span.trace_id
        """
    )
    con.execute(
        "UPDATE traces SET end_time = start_time WHERE end_time IS NULL "
        "AND trace_id IN (SELECT trace_id FROM _touched_traces)"
    )


def drop_touched(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the touched trace ids of the last file."""
    con.execute("DROP TABLE IF EXISTS _touched_traces")


def write_errors(
    con: duckdb.DuckDBPyConnection, source_file: str, rejected: Sequence[tuple[str, str, str]]
) -> None:
    """Append rejected records ``(locator, reason, excerpt)`` to ``load_errors``."""
    if rejected:
        con.executemany(
            "INSERT INTO load_errors VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
            [(source_file, loc, reason, excerpt) for loc, reason, excerpt in rejected],
        )
