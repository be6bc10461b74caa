"""Writing mapped rows into the canonical tables: staging, newest-wins merge, error rows.

Rows are staged through Arrow into temporary tables and merged with ``INSERT ... ON CONFLICT
DO UPDATE`` guarded by the record's ``updated_at`` and content hash, so that

- a re-load of the same export changes nothing (same age and hash, no write);
- overlapping export windows add each record once, and the newest ``updated_at`` wins;
- a placeholder trace made from observation rows never replaces a real trace record.

The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

__all__ = ["attach_orphans", "merge_rows", "touched_trace_ids", "write_errors"]

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


def _arrow(
    columns: list[tuple[str, str]], rows: Sequence[dict[str, Any]], extra: dict[str, Any]
) -> pa.Table:
    arrays = {}
    for name, dtype in columns:
        values = [extra[name] if name in extra else row.get(name) for row in rows]
        arrays[name] = pa.array(values, type=_TYPES.get(dtype, pa.string()))
    arrays["_pos"] = pa.array(range(len(rows)), type=pa.int64())
    return pa.table(arrays)


def merge_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: Sequence[dict[str, Any]],
    *,
    source_file: str,
) -> int:
    """Merge ``rows`` into ``table`` (traces, observations or scores); return rows written.

    Within the batch the newest ``source_updated_at`` per id wins (a real trace before a
    placeholder, a later position on ties); against the table the incoming row replaces the
    stored one if it is newer, or as new but with other content.
    """
    if not rows:
        return 0
    key = _KEYS[table]
    columns = _columns(con, table)
    names = [name for name, _ in columns]
    extra = {"source_file": source_file, "loaded_at": None}
    batch = _arrow(columns, rows, extra)
    stage = f"_stage_{table}"
    con.execute(f"DROP TABLE IF EXISTS {stage}")
    con.register("_sessionlens_batch", batch)
    try:
        stub_first = "is_stub ASC, " if table == "traces" else ""
        con.execute(
            f"CREATE TEMP TABLE {stage} AS SELECT * EXCLUDE (_pos) REPLACE "
            f"(now()::TIMESTAMP AS loaded_at) FROM _sessionlens_batch "
            f"QUALIFY row_number() OVER (PARTITION BY {_q(key)} ORDER BY {stub_first}"
            f"source_updated_at DESC NULLS LAST, _pos DESC) = 1"
        )
    finally:
        con.unregister("_sessionlens_batch")
    target = _q(table)
    # ``session_id`` is left to session grouping, which must see the old value to know which
    # sessions' derived rows to rebuild.
    updates = ", ".join(
        f"{_q(n)} = excluded.{_q(n)}" for n in names if n not in (key, "session_id")
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
    if table == "traces":
        # The effective session id starts as the exported one; grouping refines it later.
        select = f"SELECT * REPLACE (source_session_id AS session_id) FROM {stage}"
    else:
        select = f"SELECT * FROM {stage}"
    result = con.execute(
        f"INSERT INTO {target} ({', '.join(map(_q, names))}) {select} "
        f"ON CONFLICT ({_q(key)}) DO UPDATE SET {updates} WHERE {guard}"
    ).fetchone()
    return int(result[0]) if result else 0


def attach_orphans(con: duckdb.DuckDBPyConnection, source_file: str) -> int:
    """Give every staged observation whose trace exists nowhere a placeholder trace.

    Readers emit placeholders for observation-only exports; this is the net under all of
    them, so that no format (a nested observation naming another trace, a trace record that
    was rejected while its observations were fine) can leave an observation without a trace.
    Returns the number of placeholders added.
    """
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
        ["_stage_observations"],
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = con.execute(
        "INSERT INTO traces (trace_id, is_stub, source_format, source_file, loaded_at) "
        "SELECT trace_id, TRUE, any_value(source_format), ?, now()::TIMESTAMP "
        "FROM _stage_observations s "
        "WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = s.trace_id) "
        "GROUP BY trace_id",
        [source_file],
    ).fetchone()
    return int(row[0]) if row else 0


def touched_trace_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Add the trace ids of the staged batch to temp table ``_touched_traces``.

    A file is written in batches (``loaders.write_stream``); the table collects every
    batch's ids until :func:`drop_stages` with ``touched=True``.
    """
    con.execute("CREATE TEMP TABLE IF NOT EXISTS _touched_traces (trace_id TEXT)")
    for table in ("traces", "observations"):
        stage = f"_stage_{table}"
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [stage]
        ).fetchone()
        if exists and exists[0]:
            con.execute(
                f"INSERT INTO _touched_traces SELECT DISTINCT trace_id FROM {stage} "
                "EXCEPT SELECT trace_id FROM _touched_traces"
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


def drop_stages(con: duckdb.DuckDBPyConnection, *, touched: bool = True) -> None:
    """Remove the temporary staging tables of a batch (and the touched ids, unless told)."""
    for table in ("_stage_traces", "_stage_observations", "_stage_scores"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    if touched:
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
