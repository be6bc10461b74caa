"""The Parquet root: ``export_parquet`` layout and ``convert`` of units in parallel processes.

Real-shaped input: generated Langfuse trace downloads (one file per trace, whole sessions
split over files per session) and the real framework traces in ``../shared/data``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import sessionlens as sl
from sessionlens.cli import main
from sessionlens.errors import ConfigError
from sessionlens.parquet import convert, export_parquet, unit_hash
from tests.conftest import FRAMEWORK_TRACES


def _count(root: Path, table: str) -> int:
    glob = str(root / table / "**" / "*.parquet")
    row = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=false)")
    result = row.fetchone()
    return int(result[0]) if result else 0


def test_export_layout_dates_and_row_counts(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    sl.load(con, sl.datasets.sample_dir(), progress=False)
    rows = export_parquet(con, tmp_path, part="sample")
    for table in ("traces", "observations", "sessions", "tool_calls", "conversation_turns"):
        assert rows[table] > 0
        assert _count(tmp_path, table) == rows[table]
    # Every trace sits in the folder of the UTC day it started.
    for day_dir in (tmp_path / "traces").iterdir():
        day = day_dir.name.removeprefix("date=")
        starts = duckdb.sql(
            f"SELECT DISTINCT strftime(start_time, '%Y-%m-%d') FROM '{day_dir}/*.parquet'"
        ).fetchall()
        assert starts == [(day,)]
    assert {p.name.split("_")[0] for p in tmp_path.glob("*/date=*/*.parquet")} == {"part-sample"}


def test_reexport_replaces_its_own_parts(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    sl.load(con, sl.datasets.sample_dir(), progress=False)
    export_parquet(con, tmp_path, part="a")
    export_parquet(con, tmp_path, part="a")
    export_parquet(con, tmp_path, part="b")
    sessions = con.execute("SELECT count(*) FROM sessions").fetchone()
    assert sessions is not None
    assert _count(tmp_path, "sessions") == 2 * sessions[0]  # a once, b once


def test_convert_units_in_parallel_processes(tmp_path: Path) -> None:
    files = sorted(FRAMEWORK_TRACES.glob("*.json"))[:4]
    out = tmp_path / "root"
    results = convert(files, out=out, workers=2)
    assert [r.part for r in results] == [unit_hash(f) for f in files]
    con = sl.connect()
    sl.load(con, files, progress=False)
    for table in ("traces", "observations"):
        want = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert want is not None and _count(out, table) == want[0] > 0
    # Converting again replaces each unit's parts: no row twice.
    convert(files, out=out, workers=2)
    assert _count(out, "traces") == sum(r.rows["traces"] for r in results)


def test_convert_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = sorted(FRAMEWORK_TRACES.glob("*.json"))[0]
    assert main(["convert", str(src), "--out", str(tmp_path), "--workers", "1"]) == 0
    assert "converted 1 unit(s)" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 1
    assert "error:" in capsys.readouterr().err


def test_bad_options(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"part: '\.\./x' is not a plain name"):
        export_parquet(con, tmp_path, part="../x")
    with pytest.raises(ConfigError, match="workers: must be a positive integer"):
        convert(["x"], out=tmp_path, workers=0)
    with pytest.raises(ConfigError, match="paths: give at least one"):
        convert([], out=tmp_path)
