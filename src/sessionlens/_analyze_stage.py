"""DuckDB staging for ``analyze_sessions``: the run's intermediate tables stay in the database.

:mod:`sessionlens.cache` decides what to compute; this module owns where the intermediate
results of one run live, so that a run over a million sessions never holds them all in Python:

- ``_sl_fp``: every analysable session's input fingerprint (compiled from
  :func:`~sessionlens.analysis.session_frame.session_fingerprints`);
- ``_sl_todo``: the sessions to (re)compute, and ``_sl_users``: the users whose session tags
  can have moved (owners of sessions recomputed or removed, and of untagged sessions), so tags
  are recounted for those users only;
- ``_sl_py``: the Python pass's rows, appended batch by batch as Arrow;
- ``_sl_frame``: the analysis frame, run by DuckDB and inserted from there, never fetched.

All are DuckDB temporary tables (per connection, spilled to the temp directory past
``memory_limit``), created inside the caller's transaction and dropped by :func:`drop`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb
import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends import BaseBackend

from .analysis._ibis import duckdb_connection

__all__ = ["TEMP", "drop", "stage_fingerprints", "stage_python_rows", "stage_todo", "write_rows"]

#: Where Ibis finds the temporary tables: ``backend.table(name, database=TEMP)``.
TEMP = ("temp", "main")
_TABLES = ("_sl_fp", "_sl_todo", "_sl_users", "_sl_py", "_sl_frame", "_sl_new")


def _materialise(db: BaseBackend, name: str, expr: ir.Table) -> duckdb.DuckDBPyConnection:
    """Run ``expr`` into the temporary table ``name`` inside DuckDB; return the connection.

    Compiled once here: Ibis's ``create_table`` compiles the expression to a sqlglot tree
    and renders it again inside its ``INSERT`` (for the 50 KB analysis frame, 0.4 s each).
    """
    con = duckdb_connection(db)
    if con is None:  # analyze_sessions only stages on DuckDB
        raise TypeError("staging needs the DuckDB backend")
    db._run_pre_execute_hooks(expr)  # registers the memtables it uses (flows, price links)
    sql = db.compile(expr)
    # ``name`` is one of this module's constants; the query is compiled, nothing pasted.
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
    return con


def stage_fingerprints(db: BaseBackend, fingerprints: ir.Table) -> int:
    """Materialise ``fingerprints`` (session_id, input_fingerprint) as ``_sl_fp``."""
    row = _materialise(db, "_sl_fp", fingerprints).execute("SELECT count(*) FROM _sl_fp").fetchone()
    return int(row[0]) if row else 0


def stage_todo(
    con: duckdb.DuckDBPyConnection, *, config: str, version: str, force: bool
) -> tuple[list[str], int]:
    """Fill ``_sl_todo`` and ``_sl_users``, delete cached rows of vanished sessions.

    A session is to do when forced, new, or its input fingerprint, analyzer version or
    configuration differ from its cached row, or it was ``in_progress``. Returns the ids to
    do (sorted) and the number of rows removed.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sl_todo AS "
        "SELECT f.session_id FROM _sl_fp f LEFT JOIN session_analysis a USING (session_id) "
        "WHERE ? OR a.session_id IS NULL OR a.input_fingerprint IS DISTINCT FROM "
        "f.input_fingerprint OR a.analyzer_version IS DISTINCT FROM ? "
        "OR a.config_fingerprint IS DISTINCT FROM ? OR a.status = 'in_progress'",
        [force, version, config],
    )
    # Tags count a user's sessions in start order: a recomputed, removed or untagged session
    # can move the counters of its user's other sessions, and of no one else's.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sl_users AS "
        "SELECT DISTINCT s.user_id FROM sessions s "
        "WHERE s.session_id IN (SELECT session_id FROM _sl_todo) "
        "OR (s.session_tag IS NULL AND s.session_id IN (SELECT session_id FROM _sl_fp)) "
        "UNION SELECT a.user_id FROM session_analysis a "
        "WHERE a.session_id NOT IN (SELECT session_id FROM _sl_fp)"
    )
    removed = con.execute(
        "DELETE FROM session_analysis WHERE session_id NOT IN (SELECT session_id FROM _sl_fp)"
    ).fetchone()
    ids = [str(r[0]) for r in con.execute("SELECT session_id FROM _sl_todo ORDER BY 1").fetchall()]
    return ids, int(removed[0]) if removed else 0


def stage_python_rows(
    con: duckdb.DuckDBPyConnection, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> None:
    """Append the Python pass's record batches to ``_sl_py`` as they come."""
    con.register("_sl_py_empty", schema.empty_table())
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _sl_py AS SELECT * FROM _sl_py_empty")
    finally:
        con.unregister("_sl_py_empty")
    for batch in batches:
        con.register("_sl_py_batch", batch)
        try:
            con.execute("INSERT INTO _sl_py SELECT * FROM _sl_py_batch")
        finally:
            con.unregister("_sl_py_batch")


def write_rows(
    db: BaseBackend,
    frame: ir.Table,
    *,
    columns: Sequence[str],
    version: str,
    config: str,
) -> None:
    """Replace the ``session_analysis`` rows of the sessions in ``frame``.

    ``frame`` is the analysis frame (one row per session, ``tool_calls`` as an
    array of structs); bookkeeping columns are added here. Column names are constants of
    :mod:`sessionlens.cache`.
    """
    select = ", ".join(
        {
            "tool_sequence_json": "coalesce(to_json(r.tool_calls), '[]')::JSON",
            "analyzer_version": "?",
            "config_fingerprint": "?",
            "input_fingerprint": "f.input_fingerprint",
            "analyzed_at": "now()::TIMESTAMP",
            "created_at": "coalesce(a.created_at, now()::TIMESTAMP)",
        }.get(c, f"r.{c}")
        for c in columns
    )
    con = _materialise(db, "_sl_frame", frame)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _sl_new AS SELECT {select} FROM _sl_frame r "
        "JOIN _sl_fp f USING (session_id) LEFT JOIN session_analysis a USING (session_id)",
        [version, config],
    )
    con.execute("DELETE FROM session_analysis WHERE session_id IN (SELECT session_id FROM _sl_new)")
    con.execute(f"INSERT INTO session_analysis ({', '.join(columns)}) SELECT * FROM _sl_new")


def drop(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every staging table of this connection (after commit or rollback)."""
    for name in _TABLES:
        con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
