"""A full analysis under a tight DuckDB ``memory_limit`` (issue 6: out-of-core at 1M sessions).

Before the analysis frame was staged part by part, its one query held every join's and
aggregation's hash tables at once: 400 generated sessions needed more than 75 MB (1M needed
12 GB), where the staged frame runs in 60 MB. The rows must be those of an unconstrained run.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

import sessionlens as sl
from sessionlens import _analyze_stage as stage
from sessionlens import datasets

from .conftest import analysis_rows, assert_same_analysis

AS_OF = datetime(2027, 1, 1)  # after every generated session: none is in progress


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oom") / "export"
    datasets.write_langfuse_blob_export(datasets.generate(400, seed=7), out)
    return out


def _analysed(export: Path, db: Path, limit: str | None) -> list[tuple[object, ...]]:
    con = sl.connect(str(db))
    try:
        sl.load(con, export, progress=False)
        # Two threads as on the machine this was measured on: DuckDB's fixed memory per
        # operator grows with threads.
        con.execute("SET threads = 2")
        if limit is not None:
            con.execute("SET memory_limit = ?", [limit])
            con.execute("SET temp_directory = ?", [str(db.parent / "spill")])
        result = sl.analyze_sessions(con, force=True, progress=False, workers=1, as_of=AS_OF)
        assert result.recomputed == result.sessions > 0
        # Every staging table is gone after the run.
        left = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary AND table_name LIKE '\\_sl\\_%'"
            " ESCAPE '\\'"
        ).fetchall()
        assert left == []
        return analysis_rows(con)
    finally:
        con.close()


def test_full_analysis_fits_a_tight_memory_limit(export: Path, tmp_path: Path) -> None:
    want = _analysed(export, tmp_path / "free.duckdb", None)
    got = _analysed(export, tmp_path / "tight.duckdb", "75MB")
    assert_same_analysis(got, want)


def test_frame_stager_rejects_unknown_parts(con: duckdb.DuckDBPyConnection) -> None:
    from sessionlens.analysis._ibis import backend

    db = backend(con)
    with pytest.raises(ValueError, match="unknown frame part 'x; DROP TABLE traces'"):
        stage.frame_stager(db)("x; DROP TABLE traces", db.table("traces"))
