"""``connect_spark``: the canonical tables as Parquet under one root, read and written by Spark.

When traces outgrow one machine the analyses run unchanged on Spark: they are Ibis
expressions, and this module owns the handle that gives them a PySpark backend over a Parquet
root instead of a DuckDB file. The handle (:class:`SparkStore`) is accepted wherever a DuckDB
connection is (``analyze_sessions``, ``intent_mix``, ``cost_by``...).

Layout (written by :func:`sessionlens.parquet.export_parquet`, ``sessionlens convert`` or
:func:`sessionlens.spark_blob.load_langfuse_blob`)::

    ROOT/<table>/date=YYYY-MM-DD/part-<hash>.parquet   traces, observations, sessions,
                                                       tool_calls, conversation_turns,
                                                       session_analysis
    ROOT/model_prices/part-<hash>.parquet              prices (no date)

Every table is read with the schema of the DuckDB store (:mod:`sessionlens.store`), so parts
agree on types and a table without files reads as empty. The ``date`` partition column is
dropped on read: it only prunes files.

pyspark is imported only when a handle is made, so ``import sessionlens`` works without it.
"""

from __future__ import annotations

import functools
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import ibis.expr.types as ir
import pyarrow as pa

from .errors import ConfigError

__all__ = ["TABLES", "SparkStore", "arrow_schema", "connect_spark"]

#: Tables read from the root; the derived tables and the cache included.
TABLES = (
    "traces",
    "observations",
    "sessions",
    "tool_calls",
    "conversation_turns",
    "scores",
    "model_prices",
    "session_analysis",
)
#: Tables with no date partition (small, read whole).
UNDATED = frozenset({"model_prices"})
_DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    # The analyses compile to large plans (one join per flow step, eight roll-up levels);
    # keeping every plan's full text for the status store exhausts a small driver heap.
    "spark.sql.maxPlanStringLength": "20000",
    "spark.sql.ui.retainedExecutions": "20",
    "spark.driver.memory": "2g",
    # Those plans hold hundreds of sort/aggregate operators per stage; small pages keep
    # their fixed memory reservation from starving a task.
    "spark.buffer.pageSize": "2m",
}


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a canonical table, as the DuckDB store defines it.

    Examples
    --------
    >>> arrow_schema("sessions").field("start_time").type
    TimestampType(timestamp[us])
    """
    from .store import connect

    con = connect()
    try:
        return con.table(table).limit(0).to_arrow_table().schema
    finally:
        con.close()


def _spark_schema(table: str) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema(table), prefer_timestamp_ntz=True)


def _patch_compiler() -> None:
    """Teach Ibis's PySpark compiler ``bit_xor`` (Spark has had it since 3.0).

    Ibis 12 leaves it undefined for PySpark; the input fingerprints XOR row hashes so they do
    not depend on row order. Only an undefined rule is added: nothing Ibis compiles changes.
    """
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    def visit_bit_xor(self: Any, _: Any, *, arg: Any, where: Any, **__: Any) -> Any:
        return self.agg.bit_xor(arg, where=where)

    PySparkCompiler.visit_BitXor = visit_bit_xor


@dataclass
class SparkStore:
    """A Parquet root of canonical tables and the Spark session reading it.

    Pass it to the analyses in place of a DuckDB connection. ``ibis_backend`` is the Ibis
    PySpark backend where every table of :data:`TABLES` is a temporary view.
    """

    session: Any
    root: str
    ibis_backend: Any = field(repr=False)

    def path(self, table: str) -> str:
        """Where ``table``'s files live."""
        return f"{self.root.rstrip('/')}/{table}"

    def table(self, name: str) -> ir.Table:
        """The Ibis table of one canonical table."""
        return self.ibis_backend.table(name)

    def dataframe(self, name_or_expr: str | ir.Table) -> Any:
        """A Spark DataFrame of a table name or of an Ibis expression on this store."""
        if isinstance(name_or_expr, str):
            return self.session.table(name_or_expr)
        # Registers the expression's in-memory tables (e.g. the flows) as Spark views first.
        self.ibis_backend._run_pre_execute_hooks(name_or_expr)
        return self.session.sql(self.ibis_backend.compile(name_or_expr))

    def refresh(self, *tables: str) -> None:
        """(Re-)read tables from the root (all of :data:`TABLES` by default)."""
        for table in tables or TABLES:
            self.read(table).createOrReplaceTempView(table)

    def read(self, table: str) -> Any:
        """A Spark DataFrame of ``table``'s Parquet files (empty when there are none)."""
        schema = _spark_schema(table)
        if not self.exists(table):
            return self.session.createDataFrame([], schema)
        df = self.session.read.schema(schema).parquet(self.path(table))
        return df.select(*schema.names)

    def _fs(self, path: str) -> tuple[Any, Any]:
        jvm = self.session._jvm
        hpath = jvm.org.apache.hadoop.fs.Path(path)
        conf = self.session._jsc.hadoopConfiguration()
        return hpath.getFileSystem(conf), hpath

    def exists(self, table: str) -> bool:
        """Whether ``table`` has a directory under the root."""
        fs, path = self._fs(self.path(table))
        return bool(fs.exists(path))

    def replace(self, table: str, df: Any, *, partition_by_date: str | None = None) -> None:
        """Write ``df`` as the whole of ``table``: to a new directory, then swapped in.

        The swap is two renames through the Hadoop file system (atomic on HDFS and local
        disks; on object stores a reader may briefly see no table). Readers of the old files
        are re-pointed by :meth:`refresh`.
        """
        target = self.path(table)
        tmp = f"{self.root.rstrip('/')}/.{table}.tmp-{uuid.uuid4().hex[:12]}"
        writer = df
        if partition_by_date is not None:
            from pyspark.sql import functions as F

            writer = df.withColumn("date", F.to_date(F.col(partition_by_date)))
            writer.write.partitionBy("date").parquet(tmp)
        else:
            writer.coalesce(1).write.parquet(tmp)
        fs, old = self._fs(target)
        _, new = self._fs(tmp)
        if fs.exists(old):
            _, trash = self._fs(f"{tmp}.old")
            fs.rename(old, trash)
            fs.rename(new, old)
            fs.delete(trash, True)
        else:
            fs.rename(new, old)
        self.refresh(table)

    def close(self) -> None:
        """Stop the Spark session (only call it when this handle made the session)."""
        self.session.stop()


def connect_spark(
    session: Any = None,
    *,
    root: str,
    master: str = "local[*]",
    config: dict[str, str] | None = None,
) -> SparkStore:
    """Open a Parquet root of canonical tables with Spark; analyses accept the handle.

    Parameters
    ----------
    session : pyspark.sql.SparkSession, optional
        An existing session (e.g. one built with your cluster's master URL). When omitted,
        one is built with ``master`` and ``config``.
    root : str
        The directory (local path, ``hdfs://``, ``s3a://``...) holding ``<table>/`` folders.
    master : str
        Master URL for a new session: ``local[*]``, ``spark://host:7077``, ``yarn``...
    config : dict, optional
        Extra Spark settings for a new session, over sessionlens's defaults (UTC session
        time zone, Arrow transfers, no UI).

    Returns
    -------
    SparkStore

    Raises
    ------
    ConfigError
        pyspark (the ``sessionlens[spark]`` extra) is not installed, or ``root`` is empty.
    """
    if not root:
        raise ConfigError("root", "give the directory that holds the canonical Parquet tables")
    try:
        import ibis
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ConfigError(
            "session", f"Spark is not installed ({exc}); pip install 'sessionlens[spark]'"
        ) from exc
    if session is None:
        builder = SparkSession.builder.master(master).appName("sessionlens")
        if master.startswith("local"):
            # Local Python workers must be this interpreter (it has sessionlens installed);
            # PySpark reads the worker interpreter from this variable, not from the config.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in {**_DEFAULT_CONF, **(config or {})}.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
    # Timestamps are naive UTC everywhere; Ibis's backend sets the same zone.
    session.conf.set("spark.sql.session.timeZone", "UTC")
    _patch_compiler()
    store = SparkStore(session, str(root), ibis.pyspark.connect(session))
    store.refresh()
    return store
