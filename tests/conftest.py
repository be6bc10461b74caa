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
