"""One place that turns what users pass into an Ibis backend.

Analyses are Ibis expressions so that the same code runs on the embedded DuckDB and on other
engines (PySpark) when data outgrows one machine. Public functions accept a DuckDB
connection from :func:`sessionlens.connect`, a Spark handle from
:func:`sessionlens.connect_spark`, or any Ibis backend holding the canonical tables;
this module owns that conversion and nothing else.
"""

from __future__ import annotations

from typing import Any

import duckdb
import ibis
from ibis.backends import BaseBackend

__all__ = ["backend", "duckdb_connection"]


def backend(con: Any) -> BaseBackend:
    """Return an Ibis backend for ``con`` (a DuckDB connection or an Ibis backend).

    Examples
    --------
    >>> from sessionlens import connect
    >>> backend(connect()).table("traces").count().execute()
    0
    """
    if isinstance(con, BaseBackend):
        return con
    if isinstance(con, duckdb.DuckDBPyConnection):
        return ibis.duckdb.from_connection(con)
    # A Spark handle (sessionlens.spark.SparkStore) carries its backend; duck-typed so this
    # module never imports pyspark.
    inner = getattr(con, "ibis_backend", None)
    if isinstance(inner, BaseBackend):
        return inner
    raise TypeError(
        f"expected a sessionlens/DuckDB connection or an Ibis backend, got {type(con).__name__}"
    )


def duckdb_connection(con: Any) -> duckdb.DuckDBPyConnection | None:
    """The DuckDB connection behind ``con``, or ``None`` for other engines."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return con
    inner = getattr(con, "con", None)
    return inner if isinstance(inner, duckdb.DuckDBPyConnection) else None
