"""A Langfuse blob Parquet export mapped in Spark gives the rows the DuckDB loader gives.

The same export is loaded (a) with ``sl.load`` into DuckDB and written with
``sl.export_parquet``, (b) with ``load_langfuse_blob`` on a local Spark session; every canonical
table and ``load_errors`` must be equal row by row. Only ``loaded_at`` is left out: it is the
wall-clock time of each load. The export is made to exercise the loader's rules: overlapping
windows (newer copies of records), an identical copy of a whole file (ties), sessions the export
does not name (grouped by user and gap), internal traces, a rejected observation and a trace
whose record is rejected (its observations then hang off a placeholder).

One Spark session serves the module; skipped only without pyspark or Java (CI has both).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sessionlens as sl
from sessionlens.cli import main
from sessionlens.errors import ConfigError, TraceFormatError
from sessionlens.loaders._normalize import camel_to_snake
from sessionlens.spark_blob import load_langfuse_blob
from tests.conftest import FRAMEWORK_TRACES

pytest.importorskip("pyspark")
if shutil.which("java") is None:  # pragma: no cover - CI has Java 17
    pytest.skip("Spark needs Java (17+)", allow_module_level=True)

TABLES = [*sl.parquet.CANONICAL, "load_errors"]


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sl.SparkStore]:
    root = tmp_path_factory.mktemp("blob-spark") / "unused-root"
    store = sl.connect_spark(
        root=str(root), master="local[2]", config={"spark.sql.shuffle.partitions": "2"}
    )
    yield store
    store.close()


def _export(base: Path) -> Path:
    ds = sl.datasets.generate(40, seed=5)
    # Some sessions the export does not name: grouped by user and inactivity gap instead.
    for trace in ds.traces[::3]:
        trace["session_id"] = None
    ds.observations[7]["type"] = "BOGUS"  # rejected, its trace stays
    ds.traces[4]["id"] = None  # rejected; its observations get a placeholder trace
    out = base / "export"
    sl.datasets.write_langfuse_blob_export(
        ds, out, fmt="parquet", window=timedelta(days=2), overlap=timedelta(hours=12)
    )
    # An identical copy of a window: every record ties, the first file must stay its source.
    first = sorted((out / "observations").iterdir())[0]
    shutil.copy(first, out / "observations" / ("zz-copy-" + first.name))
    return out


def _rows(root: Path, table: str) -> list[tuple[Any, ...]]:
    files = sorted(root.glob(f"{table}/**/*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    rel = con.read_parquet([str(f) for f in files], hive_partitioning=False)
    cols = [c for c in rel.columns if c != "loaded_at"]
    return sorted(rel.select(*cols).fetchall(), key=repr)


def _column(root: Path, table: str, name: str) -> list[Any]:
    rel = duckdb.connect().read_parquet(str(root / table / "*" / "*.parquet"))
    return [r[0] for r in rel.select(name).fetchall()]


def _both(spark: sl.SparkStore, export: Path, base: Path) -> tuple[Path, Path, Any]:
    duck = sl.connect()
    sl.load(duck, export, progress=False)
    sl.export_parquet(duck, base / "duck")
    errors = duck.table("load_errors")
    errors.to_parquet(str(base / "duck" / "load_errors.parquet"))  # export_parquet skips it
    duck.close()
    (base / "duck" / "load_errors").mkdir()
    (base / "duck" / "load_errors.parquet").rename(base / "duck" / "load_errors" / "e.parquet")
    result = load_langfuse_blob(spark, export, root=base / "spark")
    return base / "duck", base / "spark", result


def test_blob_export_maps_to_the_loaders_rows(spark: sl.SparkStore, tmp_path: Path) -> None:
    duck, mapped, result = _both(spark, _export(tmp_path), tmp_path)
    for table in TABLES:
        want, got = _rows(duck, table), _rows(mapped, table)
        assert got == want, table
    origins = _column(mapped, "sessions", "origin")
    assert {"source", "inferred"} <= set(origins)
    assert result.rejected == len(_rows(duck, "load_errors")) >= 2
    assert result.rows["sessions"] == len(origins)
    assert any(_column(mapped, "traces", "is_stub"))  # the rejected trace's placeholder
    # The layout convert writes: date partitions, one part name, readable by connect_spark.
    names = {p.name.split("_")[0] for p in (mapped / "traces").glob("date=*/*.parquet")}
    assert names == {f"part-{result.part}"}


def test_enriched_export_of_observations_v2_only(spark: sl.SparkStore, tmp_path: Path) -> None:
    """Langfuse's enriched mode: no ``traces/``, trace fields on every ``observations_v2`` row."""
    ds = sl.datasets.generate(10, seed=4)
    legacy = tmp_path / "legacy"
    sl.datasets.write_langfuse_blob_export(ds, legacy, fmt="parquet", window=timedelta(days=4))
    by_id = {t["id"]: t for t in ds.traces}
    export = tmp_path / "export"
    (export / "observations_v2").mkdir(parents=True)
    for path in sorted((legacy / "observations").iterdir()):
        table = pq.read_table(path)
        owners = [by_id[t] for t in table.column("trace_id").to_pylist()]
        for column, field in [("user_id", "user_id"), ("session_id", "session_id")]:
            table = table.append_column(column, pa.array([t[field] for t in owners], pa.string()))
        table = table.append_column("trace_name", pa.array([t["name"] for t in owners]))
        pq.write_table(table, export / "observations_v2" / path.name)
    shutil.copytree(legacy / "scores", export / "scores")
    duck, mapped, _ = _both(spark, export, tmp_path)
    for table in TABLES:
        assert _rows(mapped, table) == _rows(duck, table), table
    assert all(_column(mapped, "traces", "is_stub"))  # every trace is made from its rows
    assert len(_column(mapped, "sessions", "session_id")) == 10


def test_real_framework_traces_as_blob_parquet(
    spark: sl.SparkStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real Langfuse downloads (20 agent frameworks) rewritten as a blob Parquet export."""
    tables: dict[str, list[dict[str, Any]]] = {"traces": [], "observations": []}
    for path in sorted(FRAMEWORK_TRACES.glob("*.json")):
        doc = json.loads(path.read_text())
        tables["traces"].append(doc["trace"])
        tables["observations"].extend(doc["observations"])
    export = tmp_path / "export"
    for table, records in tables.items():
        rows = [{camel_to_snake(k): _cell(k, v) for k, v in r.items()} for r in records]
        columns = sorted({k for r in rows for k in r})
        (export / table).mkdir(parents=True)
        arrays = {c: [r.get(c) for r in rows] for c in columns}
        schema = pa.schema(
            [(c, pa.list_(pa.string()) if c == "tags" else pa.string()) for c in columns]
        )
        pq.write_table(pa.table(arrays, schema=schema), export / table / "2025-12-01.parquet")
    duck, mapped, result = _both(spark, export, tmp_path)
    for table in TABLES:
        assert _rows(mapped, table) == _rows(duck, table), table
    # Loading the export again (here from the CLI) replaces its own part: nothing doubles.
    assert main(["convert", str(export), "--out", str(mapped), "--spark"]) == 0
    assert f"-> part-{result.part}: traces {result.rows['traces']}" in capsys.readouterr().out
    store = sl.connect_spark(spark.session, root=str(mapped))
    assert store.read("observations").count() == result.rows["observations"]
    assert _rows(mapped, "traces") == _rows(duck, "traces")
    # The downloads repeat 3 observation ids: one row each, as in the DuckDB store.
    assert result.rows["observations"] == len({o["id"] for o in tables["observations"]})
    assert result.rows["tool_calls"] > 0 and result.rows["conversation_turns"] > 0


def _cell(key: str, value: Any) -> Any:
    # Blob Parquet holds text; objects, arrays and numbers become JSON text (tags stay a list).
    if key == "tags" or value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def test_strict_names_file_row_and_reason(spark: sl.SparkStore, tmp_path: Path) -> None:
    ds = sl.datasets.generate(3, seed=2)
    ds.observations[2]["type"] = "BOGUS"
    sl.datasets.write_langfuse_blob_export(ds, tmp_path / "x", fmt="parquet")
    with pytest.raises(TraceFormatError, match=r"observations/.*\.parquet.*row 3.*BOGUS"):
        load_langfuse_blob(spark, tmp_path / "x", root=tmp_path / "root", strict=True)
    assert not (tmp_path / "root" / "traces").exists()  # nothing written


def test_input_and_options_errors(
    spark: sl.SparkStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sl.datasets.write_langfuse_blob_export(sl.datasets.generate(2, seed=1), tmp_path / "j")
    with pytest.raises(ConfigError, match=r"paths: .*\.jsonl is not a Parquet file; load JSON"):
        load_langfuse_blob(spark, tmp_path / "j", root=tmp_path / "root")
    with pytest.raises(ConfigError, match="root: give the Parquet root"):
        load_langfuse_blob(spark.session, tmp_path / "j")
    with pytest.raises(ConfigError, match="part: 'a/b' is not a plain name"):
        load_langfuse_blob(spark, [], root=tmp_path / "root", part="a/b")
    with pytest.raises(ConfigError, match="gap: gap must be a positive duration"):
        load_langfuse_blob(spark, [], root=tmp_path / "root", gap=timedelta(0))
    assert main(["convert", str(tmp_path / "j"), "--out", str(tmp_path), "--gap", "5"]) == 1
    assert "error: --gap: applies only with --spark" in capsys.readouterr().err
