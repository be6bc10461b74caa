"""The same analyses on Spark: DuckDB and a local Spark session give the same rows.

Generated sessions are loaded into DuckDB, exported as the date-partitioned Parquet root and
analysed on both engines; ``session_analysis`` and every cross-session analysis must match
(floats within 1e-9). Bookkeeping differs by design: the input fingerprints hash rows with
each engine's own hash function, and the analysis times are wall clock.

One Spark session serves the module (start-up takes ~20 s). Skipped only when pyspark or
Java is missing; CI has both.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sessionlens as sl
from sessionlens.errors import ConfigError

pytest.importorskip("pyspark")
if shutil.which("java") is None:  # pragma: no cover - CI has Java 17
    pytest.skip("Spark needs Java (17+)", allow_module_level=True)

AS_OF = datetime(2026, 10, 1)
BOOKKEEPING = {"input_fingerprint", "config_fingerprint", "analyzed_at", "created_at"}
CROSS = {
    "intent_mix": {},
    "completion_by_intent": {},
    "sequence_variants": {},
    "tool_transitions": {},
    "dropoff_funnel": {},
    "cost_by": {"by": ["day", "model"]},
    "token_usage": {"by": ["model", "intent"]},
    "session_stats": {"by": ["status", "intent"]},
    "recent_sessions": {"limit": 10},
    "find_sessions": {"tag": "chat_model_gpt-4.1_*"},
}


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("spark")
    ds = sl.datasets.generate(30, seed=11)
    sl.datasets.write_langfuse_blob_export(ds, base / "export")
    duck = sl.connect()
    sl.load(duck, base / "export", progress=False)
    sl.export_parquet(duck, base / "root")
    store = sl.connect_spark(
        root=str(base / "root"),
        master="local[2]",
        config={"spark.sql.shuffle.partitions": "2"},
    )
    try:
        yield {
            "duck": duck,
            "spark": store,
            "root": base / "root",
            "ds": ds,
            "duck_result": sl.analyze_sessions(duck, as_of=AS_OF),
            "spark_result": sl.analyze_sessions(store, as_of=AS_OF),
        }
    finally:
        store.close()
        duck.close()


def _value(v: Any) -> Any:
    if isinstance(v, (list, tuple)) or hasattr(v, "tolist"):
        return [_value(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


def _rows(frame: pd.DataFrame, key: list[str] | None = None) -> list[dict[str, Any]]:
    rows = [{k: _value(v) for k, v in r.items()} for r in frame.to_dict("records")]
    return sorted(rows, key=lambda r: [repr(r[k]) for k in key]) if key else rows


def _assert_same(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float) and isinstance(b[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9), k
            elif isinstance(a[k], str) and isinstance(b[k], (dict, list)):
                # A JSON column comes back parsed from DuckDB and as its text from Spark.
                assert json.loads(a[k]) == b[k], (k, a.get("session_id"))
            else:
                assert a[k] == b[k], (k, a.get("session_id"), a[k], b[k])


def test_session_analysis_is_identical(engines: dict[str, Any]) -> None:
    duck, spark = engines["duck"], engines["spark"]
    cols = [c for c in duck.table("session_analysis").columns if c not in BOOKKEEPING]
    want = _rows(duck.table("session_analysis").df()[cols], ["session_id"])
    got = _rows(spark.table("session_analysis").to_pandas()[cols], ["session_id"])
    assert len(want) == engines["duck_result"].sessions > 20
    _assert_same(got, want)
    assert engines["spark_result"].statuses == engines["duck_result"].statuses
    # Planted truth, not only agreement: the intents the generator chose.
    planted = dict(zip(engines["ds"].planted.session_id, engines["ds"].planted.intent, strict=True))
    agree = [r["caller_intent_type"] == planted.get(r["session_id"]) for r in got]
    assert sum(agree) >= 0.8 * len(got)


@pytest.mark.parametrize("name", sorted(CROSS))
def test_cross_session_analyses_match(engines: dict[str, Any], name: str) -> None:
    fn = getattr(sl, name)
    want = fn(engines["duck"], **CROSS[name]).to_pandas()
    got = fn(engines["spark"], **CROSS[name]).to_pandas()
    assert list(got.columns) == list(want.columns)
    # find_sessions returns whole session_analysis rows: bookkeeping differs by design.
    keep = [c for c in want.columns if c not in BOOKKEEPING]
    want, got = want[keep], got[keep]
    assert len(want) > 0
    _assert_same(_rows(got), _rows(want))


def test_rerun_skips_unchanged_sessions_and_forced_rerun_recomputes(
    engines: dict[str, Any],
) -> None:
    spark = engines["spark"]
    again = sl.analyze_sessions(spark, as_of=AS_OF)
    assert (again.recomputed, again.skipped) == (0, engines["spark_result"].sessions)
    parts = list(Path(engines["root"], "session_analysis").glob("date=*/*.parquet"))
    assert parts, "session_analysis is written back as date-partitioned Parquet"


def test_layout_is_date_partitioned_with_one_part_per_unit(engines: dict[str, Any]) -> None:
    root = engines["root"]
    days = sorted(p.name for p in (root / "traces").iterdir())
    assert days[0].startswith("date=2026-09-")
    names = {p.name.split("_")[0] for p in (root / "traces").glob("date=*/*.parquet")}
    assert len(names) == 1  # one input unit, one part name


def test_connect_spark_needs_a_root() -> None:
    with pytest.raises(ConfigError, match="root: give the directory"):
        sl.connect_spark(root="")
