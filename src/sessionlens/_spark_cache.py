"""``analyze_sessions`` on a Spark handle: the same analyses, Parquet in and out.

:func:`sessionlens.analyze_sessions` hands a :class:`~sessionlens.spark.SparkStore` to
:func:`analyze_spark`. The per-session analysis (flows, sequences, cost, status) is the very
Ibis code DuckDB runs; this module owns only what is engine IO:

- **prices**: built by the DuckDB price builder in memory (the bundled genai-prices data, a
  Langfuse file, your table) and written to ``ROOT/model_prices`` when missing or replaced;
- **tags**: computed by :func:`~sessionlens.analysis.tags.session_tags` over all sessions and
  put in the ``sessions`` view (the Parquet files are not rewritten);
- **the Python pass** (intent, booking details, goals) runs **on the executors** with
  ``mapInArrow``: each session's turns and tool calls are gathered into arrays by Spark, and
  every Arrow batch becomes :class:`~sessionlens.analysis.evidence.SessionEvidence` and rows of
  :func:`sessionlens.cache.python_row`. Nothing per session passes through the driver, so a
  classifier that calls an LLM scales with executors (it must be picklable);
- **the cache**: which sessions to compute is the DuckDB rule (fingerprint, analyzer version,
  configuration, ``in_progress``, ``force``), and ``session_analysis`` is rewritten whole
  (new rows plus kept ones) into a new directory swapped in place, partitioned by start date.

Input fingerprints hash rows with Spark's ``hash`` (32-bit Murmur3) where DuckDB uses its
64-bit hash: each engine's cache is consistent with itself, not with the other's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from .analysis.evidence import evidence_from_row
from .analysis.flows import Flow
from .analysis.prices import build_model_prices
from .analysis.session_frame import session_fingerprints, session_frame
from .analysis.tags import session_tags
from .cache import _COLUMNS, _PY_SCHEMA, ANALYZER_VERSION, AnalyzeResult, _config_fingerprint
from .cache import python_row as _python_row
from .spark import SparkStore, _spark_schema

__all__ = ["analyze_spark"]


def _ensure_prices(store: SparkStore, user: Any, langfuse: Any) -> None:
    from pyspark.sql import functions as F

    if user is None and langfuse is None and store.session.table("model_prices").take(1):
        return
    from .store import connect

    duck = connect()
    try:
        build_model_prices(duck, user=user, langfuse=langfuse)
        rows = duck.table("model_prices").to_arrow_table()
    finally:
        duck.close()
    schema = _spark_schema("model_prices")
    df = store.session.createDataFrame(rows)
    store.replace("model_prices", df.select(*(F.col(f.name).cast(f.dataType) for f in schema)))


def _tag_sessions(store: SparkStore) -> None:
    """Put every session's tag into the ``sessions`` view (as DuckDB's UPDATE does)."""
    tags = store.dataframe(session_tags(store)).select("session_id", "session_tag")
    raw = store.read("sessions").drop("session_tag")
    names = _spark_schema("sessions").names
    # A checkpoint, not a cache: a cached frame keeps its plan, and every analysis that reads
    # ``sessions`` would plan the tag computation again.
    tagged = raw.join(tags, "session_id", "left").select(*names).localCheckpoint(eager=True)
    tagged.createOrReplaceTempView("sessions")


def _evidence(store: SparkStore, todo: Any) -> Any:
    """One row per session to analyse: start time, sorted turns and sorted tool calls."""
    from pyspark.sql import functions as F

    turns = store.session.table("conversation_turns").where(F.col("content").isNotNull())
    turns = turns.join(todo, "session_id", "left_semi").groupBy("session_id")
    # array_sort orders structs field by field: seq first, as DuckDB's ORDER BY seq.
    turns = turns.agg(
        F.array_sort(
            F.collect_list(F.struct("seq", "role", "content", F.col("timestamp").alias("ts")))
        ).alias("turns")
    )
    calls = store.session.table("tool_calls").join(todo, "session_id", "left_semi")
    # Field names as DuckDB's evidence query, so evidence_from_row reads both engines' rows.
    call = F.struct(
        "seq",
        F.col("tool_name").alias("name"),
        F.col("arguments").alias("args"),
        "result",
        F.coalesce(F.col("is_error"), F.lit(False)).alias("is_error"),
        F.col("start_time").alias("t0"),
        F.col("end_time").alias("t1"),
    )
    calls = calls.groupBy("session_id").agg(F.array_sort(F.collect_list(call)).alias("calls"))
    starts = store.session.table("sessions").select("session_id", "start_time")
    return (
        todo.join(starts, "session_id", "left")
        .join(turns, "session_id", "left")
        .join(calls, "session_id", "left")
    )


def _analyse_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    classify: Callable[[Any], Any],
    flows: Mapping[str, Flow],
    region: str,
) -> Iterator[pa.RecordBatch]:
    """Executor side: evidence rows in, ``_PY_SCHEMA`` rows out."""
    for batch in batches:
        rows = [
            _python_row(evidence_from_row(r), classify=classify, flows=flows, region=region)
            for r in batch.to_pylist()
        ]
        yield pa.RecordBatch.from_pylist(rows, schema=_PY_SCHEMA)


def _todo(store: SparkStore, fps: Any, *, config: str, force: bool) -> tuple[Any, int]:
    from pyspark.sql import functions as F

    old = store.session.table("session_analysis")
    removed = old.join(fps, "session_id", "left_anti").count()
    a = old.select(
        "session_id",
        F.col("input_fingerprint").alias("a_fp"),
        F.col("analyzer_version").alias("a_version"),
        F.col("config_fingerprint").alias("a_config"),
        F.col("status").alias("a_status"),
        F.lit(True).alias("a_exists"),
    )
    j = fps.join(a, "session_id", "left")
    stale = (
        F.lit(force)
        | F.col("a_exists").isNull()
        | ~F.col("a_fp").eqNullSafe(F.col("input_fingerprint"))
        | ~F.col("a_version").eqNullSafe(F.lit(ANALYZER_VERSION))
        | ~F.col("a_config").eqNullSafe(F.lit(config))
        | (F.col("a_status") == "in_progress")
    )
    return j.where(stale).select("session_id"), removed


def _rows(store: SparkStore, frame: Any, fps: Any, config: str, now: datetime) -> Any:
    """The frame plus the cache's bookkeeping, typed as the store's ``session_analysis``."""
    from pyspark.sql import functions as F

    old = store.session.table("session_analysis").select(
        "session_id", F.col("created_at").alias("old_created_at")
    )
    j = frame.join(fps, "session_id").join(old, "session_id", "left")
    stamp = F.lit(now).cast("timestamp_ntz")
    special = {
        # DuckDB's to_json keeps NULL fields; Spark drops them unless told not to.
        "tool_sequence_json": F.coalesce(
            F.to_json(F.col("tool_calls"), {"ignoreNullFields": "false"}), F.lit("[]")
        ),
        "analyzer_version": F.lit(ANALYZER_VERSION),
        "config_fingerprint": F.lit(config),
        "input_fingerprint": F.col("input_fingerprint"),
        "analyzed_at": stamp,
        "created_at": F.coalesce(F.col("old_created_at"), stamp),
    }
    schema = _spark_schema("session_analysis")
    return j.select(
        *(special.get(f.name, F.col(f.name)).cast(f.dataType).alias(f.name) for f in schema)
    )


def _kept(store: SparkStore, fps: Any, todo: Any) -> tuple[Any, int]:
    """Cached rows still valid, with the session tag of now; and how many tags moved."""
    from pyspark.sql import functions as F

    old = store.session.table("session_analysis")
    kept = old.join(fps.select("session_id"), "session_id", "left_semi")
    kept = kept.join(todo, "session_id", "left_anti")
    tags = store.session.table("sessions").select(
        "session_id", F.col("session_tag").alias("new_tag")
    )
    kept = kept.join(tags, "session_id", "left")
    moved = kept.where(~F.col("session_tag").eqNullSafe(F.col("new_tag"))).count()
    kept = kept.withColumn("session_tag", F.col("new_tag")).drop("new_tag")
    return kept.select(*_COLUMNS), moved


def analyze_spark(
    store: SparkStore,
    *,
    classify: Callable[[Any], Any],
    flows: Mapping[str, Flow],
    config_parts: Mapping[str, Any],
    prices: Any,
    langfuse_prices: Any,
    force: bool,
    include_internal: bool,
    region: str,
    inactivity: timedelta,
    as_of: datetime,
    started: float,
) -> AnalyzeResult:
    """Run :func:`sessionlens.analyze_sessions` on ``store``; see the module docstring."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    _ensure_prices(store, prices, langfuse_prices)
    _tag_sessions(store)
    config = _config_fingerprint(store, config_parts)
    fps = store.dataframe(session_fingerprints(store, include_internal=include_internal))
    # Checkpoints cut the plans the later steps would otherwise plan again under every read.
    fps = fps.localCheckpoint(eager=True)
    result = AnalyzeResult(sessions=fps.count())
    todo, result.removed = _todo(store, fps, config=config, force=force)
    todo = todo.localCheckpoint(eager=True)
    result.recomputed = todo.count()
    result.skipped = result.sessions - result.recomputed
    kept, moved = _kept(store, fps, todo)
    try:
        if result.recomputed or result.removed or moved:
            parts = [kept]
            if result.recomputed:
                task = functools.partial(
                    _analyse_batches, classify=classify, flows=flows, region=region
                )
                py = _evidence(store, todo).mapInArrow(task, from_arrow_schema(_PY_SCHEMA))
                # Checkpointed: the frame reads it several times; the pass must run once, and
                # its plan (evidence, tags) must not be planned again under every read.
                py = py.localCheckpoint(eager=True)
                py.createOrReplaceTempView("_sl_py")
                frame = session_frame(
                    store,
                    store.table("_sl_py"),
                    flows=flows,
                    as_of=as_of,
                    inactivity=inactivity,
                )
                now = datetime.now(UTC).replace(tzinfo=None)
                parts.append(_rows(store, store.dataframe(frame), fps, config, now))
            table = functools.reduce(lambda a, b: a.unionByName(b), parts)
            store.replace("session_analysis", table, partition_by_date="start_time")
    finally:
        store.session.catalog.dropTempView("_sl_py")
    sa = store.session.table("session_analysis")
    result.statuses = {
        str(r[0]): int(r[1]) for r in sa.groupBy("status").count().orderBy("status").collect()
    }
    unpriced = sa.select(F.explode("unpriced_models").alias("m")).distinct().collect()
    result.unpriced_models = sorted(str(r[0]) for r in unpriced)
    result.seconds = time.perf_counter() - started
    return result
