from __future__ import annotations

from pathlib import Path

import pytest

import sessionlens as sl
from sessionlens.store import MIGRATIONS, SCHEMA_VERSION, schema_version


def test_connect_creates_every_canonical_table(con):
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {
        "traces",
        "observations",
        "sessions",
        "tool_calls",
        "conversation_turns",
        "load_errors",
        "scores",
        "schema_migrations",
    } <= tables
    assert schema_version(con) == SCHEMA_VERSION == len(MIGRATIONS)


def test_reconnecting_applies_nothing_twice(tmp_path: Path):
    db = tmp_path / "t.duckdb"
    sl.connect(db).close()
    con = sl.connect(db)
    rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(i + 1, name) for i, (name, _) in enumerate(MIGRATIONS)]


def test_newer_database_is_refused(tmp_path: Path):
    db = tmp_path / "t.duckdb"
    con = sl.connect(db)
    con.execute(
        "INSERT INTO schema_migrations VALUES (?, 'from_the_future', now())", [SCHEMA_VERSION + 1]
    )
    con.close()
    with pytest.raises(sl.SchemaVersionError, match=r"newer than this sessionlens supports"):
        sl.connect(db)


def test_read_only_connection_reads(tmp_path: Path):
    db = tmp_path / "t.duckdb"
    sl.connect(db).close()
    ro = sl.connect(db, read_only=True)
    assert ro.execute("SELECT count(*) FROM traces").fetchone() == (0,)


def test_second_writer_gets_a_clear_error(tmp_path: Path):
    # DuckDB's lock is per process; a second process must be told who holds it.
    import subprocess
    import sys

    db = tmp_path / "t.duckdb"
    con = sl.connect(db)
    code = (
        "import sessionlens as sl, sys\n"
        "try:\n    sl.connect(sys.argv[1])\n"
        "except sl.DatabaseLockedError as e:\n    print('LOCKED', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=True
    )
    con.close()
    assert out.stdout.startswith(f"LOCKED {db}: another process (PID ")
    assert "not even read-only: wait for it to finish" in out.stdout


def test_docs_tables_page_matches_the_code(con):
    from sessionlens.store import schema_markdown

    from .conftest import ROOT

    page = (ROOT / "docs" / "tables.md").read_text()
    assert page == schema_markdown(con), "docs/tables.md is stale: run `make docs`"
