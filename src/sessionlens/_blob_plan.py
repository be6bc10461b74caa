"""The Spark side of :func:`sessionlens.spark_blob.load_langfuse_blob`: merge, times, grouping.

Owns the steps between the mapped rows and the written tables that Spark itself runs:

- :func:`newest`: one version per id, the one the loader's ``INSERT ... ON CONFLICT`` guard
  keeps (``loaders/_write.merge_rows``), as a window over (load order, row);
- :func:`with_times`: ``_write.attach_orphans`` and ``_write.fill_trace_times`` in Spark SQL;
- :func:`sessions`: repartitions by user, then by session, and hands sorted partitions to the
  executor functions of :mod:`sessionlens._blob_tasks`, which run the loader's DuckDB code.

pyspark is imported inside the functions: importing sessionlens never needs it.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from . import _blob_tasks as tasks
from .loaders import BATCH_ITEMS

__all__ = ["newest", "sessions", "spark_type", "with_times"]


def spark_type(schema: Any) -> Any:
    """The Spark schema of an Arrow schema (timestamps without zone, as the store's)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema, prefer_timestamp_ntz=True)


def newest(df: Any, key: str, *, scores: bool = False) -> Any:
    """One row per ``key``: the version the loader's merge keeps, with its ``source_file``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    updated = F.col("source_updated_at").desc_nulls_last()
    rank, pos = F.col(tasks.RANK), F.col(tasks.POS)
    if scores:  # only a strictly newer score replaces: the first batch with the newest wins
        order = [updated, rank, F.floor(pos / BATCH_ITEMS), pos.desc()]
    else:  # newer, or as new with other content, replaces: the last copy wins
        order = [updated, rank.desc(), pos.desc()]
    if key == "trace_id":
        order.insert(0, F.col("is_stub").asc())
    df = df.withColumn("_sl_n", F.row_number().over(Window.partitionBy(key).orderBy(*order)))
    if not scores:
        # An identical later copy writes nothing: the row keeps the first such copy's file.
        same = [key, "source_updated_at", "row_hash"] + (["is_stub"] if key == "trace_id" else [])
        first = Window.partitionBy(*same).orderBy(rank, pos)
        df = df.withColumn("source_file", F.first(tasks.FILE).over(first))
    return df.where(F.col("_sl_n") == 1).drop("_sl_n")


def with_times(traces: Any, observations: Any) -> Any:
    """Placeholders for trace-less observations, then start / end from the observations."""
    from pyspark.sql import functions as F

    span = observations.groupBy("trace_id").agg(
        F.min("start_time").alias("_sl_first"),
        F.max(F.coalesce("end_time", "start_time")).alias("_sl_last"),
        F.min(F.struct(tasks.RANK, tasks.POS, "source_format", tasks.FILE)).alias("_sl_o"),
    )
    orphans = span.join(traces.select("trace_id"), "trace_id", "left_anti").select(
        "trace_id",
        F.lit(True).alias("is_stub"),
        F.lit(False).alias("is_internal"),
        F.col("_sl_o.source_format").alias("source_format"),
        F.col(f"_sl_o.{tasks.FILE}").alias("source_file"),
    )
    traces = traces.unionByName(orphans, allowMissingColumns=True)
    start = F.coalesce(F.col("start_time"), F.col("_sl_first"))
    return (
        traces.join(span.drop("_sl_o"), "trace_id", "left")
        .withColumn("end_time", F.coalesce(F.greatest(start, F.col("_sl_last")), start))
        .withColumn("start_time", start)
        .drop("_sl_first", "_sl_last")
    )


def sessions(traces: Any, observations: Any, *, gap: timedelta, partitions: int) -> Any:
    """Session keys by the loader's rule, then the derived tables per session partition."""
    from pyspark.sql import functions as F

    candidates = traces.where(
        ~F.col("is_internal") & F.col("source_session_id").isNull() & F.col("user_id").isNotNull()
    ).select("trace_id", "user_id", "start_time", "end_time")
    inferred = (
        candidates.repartition(partitions, "user_id")
        .sortWithinPartitions("user_id")
        .mapInArrow(
            functools.partial(tasks.group_users, gap=gap), "trace_id string, session_id string"
        )
        .withColumnRenamed("session_id", "_sl_inferred")
    )
    keyed = traces.join(inferred, "trace_id", "left").withColumn(
        tasks.SESSION,
        F.coalesce("source_session_id", "_sl_inferred", F.concat(F.lit("trace:"), "trace_id")),
    )
    schema = tasks.envelope("traces", "observations")
    obs = observations.drop(tasks.SESSION).join(keyed.select("trace_id", tasks.SESSION), "trace_id")
    both = keyed.withColumn("session_id", F.col(tasks.SESSION)).withColumn(
        tasks.TABLE, F.lit("traces")
    )
    both = both.unionByName(
        obs.withColumn(tasks.TABLE, F.lit("observations")), allowMissingColumns=True
    )
    both = both.select(*(F.col(f.name).cast(f.dataType) for f in spark_type(schema)))
    built = (
        both.repartition(partitions, tasks.SESSION)
        .sortWithinPartitions(tasks.SESSION)
        .mapInArrow(
            functools.partial(tasks.build_sessions, gap=gap),
            spark_type(tasks.envelope("sessions", "tool_calls", "conversation_turns")),
        )
    )
    return keyed, built.localCheckpoint(eager=True)
