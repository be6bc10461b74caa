"""sl.redact_database: PII in the stored tables becomes the report's tokens, in one transaction."""

from __future__ import annotations

import re

import duckdb
import pytest

import sessionlens as sl
from sessionlens import _redact_db
from sessionlens.cli import main
from sessionlens.redact import token
from tests.conftest import snapshot
from tests.test_report import phone_spellings, planted_names


@pytest.fixture
def world(tmp_path):
    ds = sl.datasets.generate(60, seed=5)
    export = tmp_path / "export"
    sl.datasets.write_langfuse_blob_export(ds, export)
    con = sl.connect(tmp_path / "db.duckdb")
    sl.load(con, export, progress=False)
    sl.analyze_sessions(con, progress=False)
    yield ds, con, export
    con.close()


def stored_text(con: duckdb.DuckDBPyConnection) -> str:
    """Every text, JSON and list cell of every table of trace data, as one string."""
    cols = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' AND (data_type LIKE 'VARCHAR%' OR data_type = 'JSON') "
        # The price list names models such as "qwen-max": reference data, not anyone's.
        "AND table_name NOT IN ('model_prices', 'schema_migrations', 'settings')"
    ).fetchall()
    parts = []
    for table, column in cols:
        t, c = (_redact_db._quote(x) for x in (table, column))
        parts += [str(v) for (v,) in con.execute(f"SELECT {c} FROM {t}").fetchall()]
    return "\n".join(parts)


def found(text: str, ds) -> list[str]:
    # Names are known from analysed sessions' booking details; internal runs are not analysed.
    analysed = ds.planted[~ds.planted.is_internal]
    said = " ".join(
        " ".join([str(parent), *kids])
        for parent, kids in zip(analysed.parent_name, analysed.children, strict=True)
    )
    names = {n for n in planted_names(ds) if n in said}
    hits = [p for p in phone_spellings(ds) if p in text]
    hits += [n for n in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text, re.IGNORECASE)]
    return hits


def test_no_phone_or_name_left_in_any_table_and_tokens_match_reports(world):
    ds, con, _ = world
    assert found(stored_text(con), ds)  # the scan sees them before
    result = sl.redact_database(con)
    assert result.total > 0 and result.changed["conversation_turns.content"] > 0
    assert found(stored_text(con), ds) == []
    row = ds.planted[~ds.planted.is_internal].iloc[0]
    details = con.execute(
        "SELECT booking_details_json ->> '$.phone_e164' FROM session_analysis WHERE session_id = ?",
        [row.session_id],
    ).fetchone()
    assert details == (token("phone", row.phone_e164),)


def test_redacting_twice_changes_nothing_and_ids_survive(world):
    _, con, _ = world
    counts = {t: con.table(t).shape[0] for t in _redact_db.PII_COLUMNS}
    ids_sql = "SELECT list(session_id ORDER BY session_id) FROM sessions"
    ids = con.execute(ids_sql).fetchone()
    sl.redact_database(con, salt="team-secret")
    again = snapshot(con)
    assert sl.redact_database(con, salt="team-secret").total == 0
    assert snapshot(con) == again
    assert {t: con.table(t).shape[0] for t in _redact_db.PII_COLUMNS} == counts
    assert con.execute(ids_sql).fetchone() == ids


def test_reload_of_the_raw_export_does_not_bring_pii_back_and_cache_holds(world):
    ds, con, export = world
    sl.redact_database(con)
    assert set(sl.load(con, export, progress=False).written.values()) == {0}
    assert found(stored_text(con), ds) == []
    result = sl.analyze_sessions(con, progress=False)
    assert result.recomputed == 0 and result.skipped > 0


def test_a_failure_part_way_leaves_the_database_as_it_was(world, monkeypatch):
    _, con, _ = world
    before = snapshot(con)
    # A column that does not exist fails after the earlier tables were already rewritten.
    monkeypatch.setitem(_redact_db.PII_COLUMNS, "zz_missing", ("text",))
    with pytest.raises(duckdb.CatalogException, match="zz_missing"):
        sl.redact_database(con)
    assert snapshot(con) == before


def test_cli_redact(world, capsys):
    ds, con, _ = world
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = 'db'").fetchone()
    con.close()
    assert main(["redact", "--db", path[0], "--salt", "s3cret", "--name", "Zed Quill"]) == 0
    out = capsys.readouterr().out
    assert "redacted" in out and "conversation_turns.content" in out
    con2 = sl.connect(path[0], read_only=True)
    assert found(stored_text(con2), ds) == []
    con2.close()
    assert main(["redact", "--db", path[0] + ".missing"]) == 1
    assert "error:" in capsys.readouterr().err
