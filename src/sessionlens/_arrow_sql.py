"""Running SQL over an Arrow table without registering it in DuckDB's catalog.

``con.register(name, table)`` makes a view, and a view dropped (``unregister``) inside a
transaction stays in the transaction's undo log, with its Arrow table, until the commit: a
load or analysis that registers one batch after another in one transaction held every batch
in memory until the end (a 400 MB file kept 300 MB of dead Arrow batches). DuckDB's
replacement scan instead reads a Python variable named in the query for that query only, so
the batch is freed as soon as the caller drops it.

The variable is ``_sessionlens_arrow`` in this module's frame; queries name it there.
Replacement scans need ``python_enable_replacements``, which Ibis switches off on a
connection it wraps, so :func:`execute_arrow` switches it on for its query and restores it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

__all__ = ["ARROW", "execute_arrow", "select_arrow"]

_T = TypeVar("_T")

#: The name a query uses for the Arrow table passed to :func:`execute_arrow`.
ARROW = "_sessionlens_arrow"


def _run(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    table: pa.Table,
    params: list[Any] | dict[str, Any] | None,
    fetch: Callable[[duckdb.DuckDBPyConnection], _T],
) -> _T:
    _sessionlens_arrow = table  # read by DuckDB's replacement scan in the query below
    row = con.execute("SELECT current_setting('python_enable_replacements')").fetchone()
    enabled = bool(row and row[0])
    if not enabled:
        con.execute("SET python_enable_replacements = true")
    try:
        # Fetched before the setting is restored: that statement replaces the pending result.
        return fetch(con.execute(sql, params))
    finally:
        if not enabled:
            con.execute("SET python_enable_replacements = false")


def execute_arrow(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    table: pa.Table,
    params: list[Any] | dict[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Execute ``sql``, in which ``_sessionlens_arrow`` reads ``table``; return its rows.

    Examples
    --------
    >>> con = duckdb.connect()
    >>> execute_arrow(con, f"SELECT sum(x) FROM {ARROW}", pa.table({"x": [1, 2]}))
    [(3,)]

    It works on a connection that Ibis wraps, and leaves Ibis's setting as it was:

    >>> _ = con.execute("SET python_enable_replacements = false")
    >>> execute_arrow(con, f"SELECT count(*) FROM {ARROW}", pa.table({"x": [1]}))
    [(1,)]
    >>> con.execute("SELECT current_setting('python_enable_replacements')").fetchone()
    (False,)
    """
    return _run(con, sql, table, params, lambda result: result.fetchall())


def select_arrow(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    table: pa.Table,
    params: list[Any] | dict[str, Any] | None = None,
) -> pa.Table:
    """Like :func:`execute_arrow`, returning the result as an Arrow table.

    Examples
    --------
    >>> con = duckdb.connect()
    >>> select_arrow(con, f"SELECT x * 2 AS y FROM {ARROW}", pa.table({"x": [1]})).to_pylist()
    [{'y': 2}]
    """
    return _run(con, sql, table, params, lambda result: result.arrow().read_all())
