"""One place that turns what users pass into an Ibis backend.

Analyses are Ibis expressions so that the same code runs on the embedded DuckDB and on other
engines (PySpark) when data outgrows one machine. Public functions accept a DuckDB
connection from :func:`sessionlens.connect`, a Spark handle from
:func:`sessionlens.connect_spark`, or any Ibis backend holding the canonical tables;
this module owns that conversion, and :func:`checkpoint`, the one place an analysis tells
an engine to cut a plan that reuses a sub-query.
"""

from __future__ import annotations

import uuid
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir
from ibis.backends import BaseBackend

__all__ = ["backend", "checkpoint", "duckdb_connection"]


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


def checkpoint(expr: ir.Table) -> ir.Table:
    """``expr`` unchanged, except on Spark: there it is computed now and read back from a
    temporary view with its lineage cut.

    Ibis compiles a table used twice into one SQL text that repeats it, and Spark inlines
    such repeats: a loop that reuses the previous step's table (the flow scan, the roll-up
    ancestors) doubles the plan per step, and planning, not data, then takes the time. DuckDB
    plans the same text in milliseconds, so it gets the expression as it was. On Spark the
    view holds a local checkpoint (executor memory, dropped with the Spark session).

    Examples
    --------
    >>> from sessionlens import connect
    >>> t = backend(connect()).table("traces")
    >>> checkpoint(t) is t
    True
    """
    backends, _ = expr._find_backends()
    spark = next((b for b in backends if b.name == "pyspark"), None)
    if spark is None:
        return expr
    spark._run_pre_execute_hooks(expr)  # registers the expression's memtables as views
    df = spark._session.sql(spark.compile(expr)).localCheckpoint(eager=True)
    name = f"_sl_step_{uuid.uuid4().hex[:16]}"
    df.createOrReplaceTempView(name)
    return spark.table(name)
