"""Shared fixtures: an in-memory database and the real exports in ../shared/data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import sessionlens as sl

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FRAMEWORK_TRACES = SHARED / "langfuse-framework-traces"


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = sl.connect()
    yield connection
    connection.close()


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    """Every canonical table's rows, without load timestamps, for before/after comparisons."""
    tables = [
        "traces",
        "observations",
        "sessions",
        "tool_calls",
        "conversation_turns",
        "scores",
        "load_errors",
    ]
    out = {}
    for table in tables:
        rel = con.table(table)
        cols = [c for c in rel.columns if c != "loaded_at"]
        out[table] = sorted(
            con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr
        )
    return out


#: ``session_analysis`` columns that are times of the run, not results.
VOLATILE_ANALYSIS = {"analyzed_at", "created_at"}


def analysis_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    """``session_analysis`` by session, without the run-time columns."""
    cols = [c for c in con.table("session_analysis").columns if c not in VOLATILE_ANALYSIS]
    return con.execute(
        f"SELECT {', '.join(cols)} FROM session_analysis ORDER BY session_id"
    ).fetchall()


def assert_same_analysis(got: list[tuple[object, ...]], want: list[tuple[object, ...]]) -> None:
    """Rows of :func:`analysis_rows` equal, floats to the last bits DuckDB's parallel sums vary."""
    assert [r[0] for r in got] == [r[0] for r in want]
    for g_row, w_row in zip(got, want, strict=True):
        for g, w in zip(g_row, w_row, strict=True):
            assert g == (pytest.approx(w, rel=1e-12) if isinstance(w, float) else w)
