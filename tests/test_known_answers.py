"""Known answers: the seeded generator's planted sessions come back exactly from every blob
export format, through overlapping windows, and from UI trace downloads."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

import sessionlens as sl
from sessionlens import datasets

from .conftest import snapshot


@pytest.fixture(scope="module")
def ds() -> datasets.SyntheticDataset:
    return datasets.generate(80, seed=11)


def _per_session(con) -> pd.DataFrame:
    return con.execute(
        """
        SELECT t.session_id, any_value(t.user_id) AS user_id,
               count(DISTINCT t.trace_id) AS trace_count,
               count(o.observation_id) AS observation_count,
               coalesce(sum(o.input_tokens), 0) AS input_tokens,
               coalesce(sum(o.output_tokens), 0) AS output_tokens,
               coalesce(sum(o.cache_read_tokens), 0) AS cache_read_tokens,
               coalesce(sum(o.cache_write_tokens), 0) AS cache_write_tokens,
               coalesce(sum(o.reasoning_tokens), 0) AS reasoning_tokens,
               coalesce(sum(o.reported_cost_usd), 0) AS reported_cost_usd,
               bool_and(t.is_internal) AS is_internal
        FROM traces t LEFT JOIN observations o USING (trace_id)
        GROUP BY t.session_id ORDER BY t.session_id
        """
    ).df()


def _check_against_planted(con, ds: datasets.SyntheticDataset) -> None:
    planted = ds.planted.sort_values("session_id").reset_index(drop=True)
    got = _per_session(con)
    assert got["session_id"].tolist() == planted["session_id"].tolist()
    for column in [
        "user_id",
        "trace_count",
        "observation_count",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "is_internal",
    ]:
        assert got[column].tolist() == planted[column].tolist(), column
    assert got["reported_cost_usd"].tolist() == pytest.approx(
        planted["reported_cost_usd"].tolist(), rel=1e-9, abs=1e-12
    )
    sessions = con.execute(
        "SELECT session_id, origin, trace_count, start_time, end_time FROM sessions "
        "ORDER BY session_id"
    ).df()
    assert set(sessions["origin"]) == {"source"}
    assert sessions["start_time"].tolist() == planted["start_time"].tolist()
    assert sessions["end_time"].tolist() == planted["end_time"].tolist()
    # tool calls in the order the agent made them, internal sessions left out
    calls = con.execute(
        "SELECT session_id, list(tool_name ORDER BY seq) FROM tool_calls GROUP BY 1"
    ).fetchall()
    agent = planted[~planted["is_internal"] & (planted["tool_call_count"] > 0)]
    assert dict(calls) == dict(zip(agent["session_id"], agent["tool_sequence"], strict=True))


@pytest.mark.parametrize(
    ("fmt", "gz"),
    [
        ("jsonl", False),
        ("jsonl", True),
        ("json", False),
        ("csv", False),
        ("csv", True),
        ("parquet", False),
    ],
)
def test_blob_export_in_every_format_gives_back_the_planted_sessions(ds, tmp_path, fmt, gz):
    datasets.write_langfuse_blob_export(ds, tmp_path, fmt=fmt, gzip=gz)
    result = sl.load(sl_con := sl.connect(), tmp_path, strict=True)
    assert result.rejected == 0
    assert {f.format for f in result.files} == {"langfuse-blob"}
    _check_against_planted(sl_con, ds)
    assert sl_con.execute("SELECT count(*) FROM scores").fetchone() == (len(ds.scores),)


def test_overlapping_windows_dedupe_and_the_newest_update_wins(ds, tmp_path):
    files = datasets.write_langfuse_blob_export(
        ds, tmp_path, window=timedelta(days=1), overlap=timedelta(hours=16)
    )
    assert len(files) > 6
    con = sl.connect()
    sl.load(con, tmp_path, strict=True)
    _check_against_planted(con, ds)
    # every record that was exported twice carries the later copy's revision
    rows = [
        json.loads(line)
        for f in tmp_path.glob("observations/*.jsonl")
        for line in f.read_text().splitlines()
    ]
    newest: dict[str, dict] = {}
    for row in rows:
        if row["id"] not in newest or row["updated_at"] >= newest[row["id"]]["updated_at"]:
            newest[row["id"]] = row
    repeated = {r["id"] for r in rows if sum(1 for x in rows if x["id"] == r["id"]) > 1}
    assert repeated, "the overlap should export some observations twice"
    stored = dict(
        con.execute(
            "SELECT observation_id, metadata->>'$.export_revision' FROM observations"
        ).fetchall()
    )
    for oid in repeated:
        assert stored[oid] == newest[oid]["metadata"].get("export_revision")


def test_windows_loaded_in_reverse_order_still_keep_the_newest(ds, tmp_path):
    datasets.write_langfuse_blob_export(
        ds, tmp_path, window=timedelta(days=1), overlap=timedelta(hours=16)
    )
    forward, backward = sl.connect(), sl.connect()
    files = sorted(tmp_path.rglob("*.jsonl"))
    for f in files:
        sl.load(forward, f)
    for f in reversed(files):
        sl.load(backward, f)
    a, b = snapshot(forward), snapshot(backward)
    for table in ("sessions", "tool_calls", "conversation_turns", "scores"):
        assert a[table] == b[table], table
    # source_file names whichever window won, so it differs by design
    for table, key in (("traces", "trace_id"), ("observations", "observation_id")):
        cols = [c for c in forward.table(table).columns if c not in ("loaded_at", "source_file")]
        q = f"SELECT {', '.join(cols)} FROM {table} ORDER BY {key}"
        assert forward.execute(q).fetchall() == backward.execute(q).fetchall(), table


def test_observations_before_traces_leave_no_placeholder_behind(ds, tmp_path):
    datasets.write_langfuse_blob_export(ds, tmp_path)
    con = sl.connect()
    sl.load(con, tmp_path / "observations", strict=True)
    assert con.execute("SELECT bool_and(is_stub) FROM traces").fetchone() == (True,)
    sl.load(con, tmp_path / "traces", strict=True)
    assert con.execute("SELECT count(*) FROM traces WHERE is_stub").fetchone() == (0,)
    assert con.execute(
        "SELECT count(*) FROM sessions WHERE session_id LIKE 'trace:%'"
    ).fetchone() == (0,)
    _check_against_planted(con, ds)


def test_ui_trace_downloads_give_back_the_planted_sessions(ds, tmp_path):
    datasets.write_langfuse_trace_downloads(ds, tmp_path)
    con = sl.connect()
    result = sl.load(con, tmp_path, strict=True)
    assert {f.format for f in result.files} == {"langfuse-trace"}
    _check_against_planted(con, ds)


def test_the_bundled_sample_loads_clean():
    con = sl.connect()
    result = sl.load(con, datasets.sample_dir(), strict=True)
    assert result.rejected == 0
    assert result.sessions == 60
    assert result.files and all(Path(f.path).name.endswith(".jsonl.gz") for f in result.files)
