"""Which sessions an incremental run hashes and recomputes, and that it equals a forced run.

``analyze_sessions`` hashes only the sessions that may have changed since the previous run
(``_analyze_stage.stage_fingerprints``): new or re-stamped observations, changed traces, a
changed configuration. Each test changes real-shaped data the way a user would (re-loading an
export, a corrected record, a record moved elsewhere, a SQL edit) and checks both the set of
recomputed sessions and that the rows equal those of ``force=True`` on the same data.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens import _analyze_stage as stage
from sessionlens import cache, datasets
from sessionlens.analysis._ibis import backend
from sessionlens.analysis.tags import assign_session_tags

from .conftest import analysis_rows, assert_same_analysis

AS_OF = datetime(2027, 1, 1)


def _reanalyse_equals_forced(con: duckdb.DuckDBPyConnection) -> sl.AnalyzeResult:
    """Run incrementally, then forced; the rows must not differ. Returns the incremental run."""
    result = sl.analyze_sessions(con, as_of=AS_OF)
    incremental = analysis_rows(con)
    forced = sl.analyze_sessions(con, as_of=AS_OF, force=True)
    assert forced.recomputed == forced.sessions
    assert_same_analysis(incremental, analysis_rows(con))
    return result


def _candidates(con: duckdb.DuckDBPyConnection) -> set[str] | None:
    """The sessions the next run would hash (``None``: all of them), without running it."""
    config = con.execute("SELECT any_value(config_fingerprint) FROM session_analysis").fetchone()
    con.begin()
    try:
        stage.stage_fingerprints(
            backend(con),
            include_internal=False,
            version=cache.ANALYZER_VERSION,
            config=str(config[0]) if config else "",
            force=False,
        )
        found = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = '_sl_cand'"
        ).fetchone()
        if not found or not found[0]:
            return None
        return {str(r[0]) for r in con.execute("SELECT session_id FROM _sl_cand").fetchall()}
    finally:
        con.rollback()
        stage.drop(con)


def _export(ds: datasets.SyntheticDataset, path: Path, **only: list[dict[str, Any]]) -> Path:
    """Write ``ds`` (or, with ``traces=``/``observations=``, just those records) as a
    Langfuse blob export."""
    if only:
        ds = dataclasses.replace(
            ds, traces=only.get("traces", []), observations=only.get("observations", []), scores=[]
        )
    datasets.write_langfuse_blob_export(ds, path)
    return path


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset]]:
    ds = datasets.generate(24, seed=11)
    con = sl.connect()
    sl.load(con, _export(ds, tmp_path / "all"), progress=False)
    first = sl.analyze_sessions(con, as_of=AS_OF)
    assert first.recomputed == first.sessions > 10
    yield con, ds
    con.close()


def _session_of(con: duckdb.DuckDBPyConnection, trace_id: str) -> str:
    row = con.execute("SELECT session_id FROM traces WHERE trace_id = ?", [trace_id]).fetchone()
    assert row is not None
    return str(row[0])


def _agent_generation(con: duckdb.DuckDBPyConnection, ds: datasets.SyntheticDataset) -> dict:
    agent = {
        str(r[0])
        for r in con.execute("SELECT trace_id FROM traces WHERE NOT is_internal").fetchall()
    }
    return next(o for o in ds.observations if o["type"] == "GENERATION" and o["trace_id"] in agent)


def test_reloading_the_same_export_hashes_and_recomputes_nothing(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset], tmp_path: Path
) -> None:
    con, ds = loaded
    sl.load(con, _export(ds, tmp_path / "again"), progress=False)
    assert _candidates(con) == set()
    assert _reanalyse_equals_forced(con).recomputed == 0


def test_an_observation_reloaded_with_other_content_recomputes_its_session(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset], tmp_path: Path
) -> None:
    con, ds = loaded
    gen = _agent_generation(con, ds)
    session = _session_of(con, gen["trace_id"])
    errors = "SELECT error_count FROM session_analysis WHERE session_id = ?"
    before = con.execute(errors, [session]).fetchone()
    # A corrected re-export: same id and age, now an error.
    fixed = {**gen, "level": "ERROR", "status_message": "upstream timeout"}
    sl.load(con, _export(ds, tmp_path / "fixed", observations=[fixed]), progress=False)
    # A replaced row could have come from another trace: every session is hashed again.
    assert _candidates(con) is None
    assert _reanalyse_equals_forced(con).recomputed == 1
    after = con.execute(errors, [session]).fetchone()
    assert before is not None and after == (before[0] + 1,)


def test_new_sessions_are_the_only_candidates(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset], tmp_path: Path
) -> None:
    con, _ = loaded
    extra = datasets.generate(4, seed=12, start=datetime(2026, 12, 1, 8), days=1)
    sl.load(con, _export(extra, tmp_path / "extra"), progress=False)
    new = {str(s) for s in extra.planted.session_id[~extra.planted.is_internal]}
    assert _candidates(con) == new
    assert _reanalyse_equals_forced(con).recomputed == len(new)


def test_an_observation_moved_to_another_trace_recomputes_both_sessions(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset], tmp_path: Path
) -> None:
    con, ds = loaded
    gen = _agent_generation(con, ds)
    source = _session_of(con, gen["trace_id"])
    target_trace = con.execute(
        "SELECT min(trace_id) FROM traces WHERE NOT is_internal AND session_id <> ?", [source]
    ).fetchone()
    assert target_trace is not None
    newer = gen["updated_at"] + timedelta(hours=1)
    moved = {**gen, "trace_id": target_trace[0], "updated_at": newer}
    sl.load(con, _export(ds, tmp_path / "moved", observations=[moved]), progress=False)
    # A replaced row may have left another session: every session is hashed again.
    assert _candidates(con) is None
    result = _reanalyse_equals_forced(con)
    assert result.recomputed == 2


def test_a_trace_moved_to_another_session_recomputes_both(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset], tmp_path: Path
) -> None:
    con, ds = loaded
    sessions = con.execute(
        "SELECT session_id FROM sessions WHERE NOT is_internal AND trace_count > 1 "
        "ORDER BY session_id LIMIT 2"
    ).fetchall()
    source, target = str(sessions[0][0]), str(sessions[1][0])
    trace = next(t for t in ds.traces if t["session_id"] == source)
    newer = trace["updated_at"] + timedelta(hours=1)
    sl.load(
        con,
        _export(
            ds,
            tmp_path / "regrouped",
            traces=[{**trace, "session_id": target, "updated_at": newer}],
        ),
        progress=False,
    )
    assert _candidates(con) == {source, target}
    assert _reanalyse_equals_forced(con).recomputed == 2


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE observations SET row_hash = 'edited' WHERE observation_id = ?",
        "DELETE FROM observations WHERE observation_id = ?",
    ],
)
def test_an_observation_edited_in_sql_is_noticed(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset], edit: str
) -> None:
    con, ds = loaded
    gen = _agent_generation(con, ds)
    con.execute(edit, [gen["id"]])  # no loader, so no new loaded_at
    assert _candidates(con) is None  # the XOR of the old rows no longer matches
    assert _reanalyse_equals_forced(con).recomputed == 1


def test_prices_and_analyzer_version_still_invalidate_everything(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    con, _ = loaded
    everyone = sl.analyze_sessions(con, as_of=AS_OF).sessions
    prices = {"gpt-4.1": {"input": 9.0, "output": 9.0}}
    assert sl.analyze_sessions(con, as_of=AS_OF, prices=prices).recomputed == everyone
    monkeypatch.setattr(cache, "ANALYZER_VERSION", "next")
    assert sl.analyze_sessions(con, as_of=AS_OF, prices=prices).recomputed == everyone
    assert sl.analyze_sessions(con, as_of=AS_OF, prices=prices).recomputed == 0


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_sliced_and_whole_tables_give_the_same_rows(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    share: float,
) -> None:
    con, _ = loaded
    monkeypatch.setattr(stage, "_SLICE_SHARE", share)  # 0: never slice, 1: always
    extra = datasets.generate(6, seed=13, start=datetime(2026, 12, 1, 8), days=1)
    sl.load(con, _export(extra, tmp_path / "extra"), progress=False)
    assert _reanalyse_equals_forced(con).recomputed > 0


def test_the_watermark_is_recorded_in_the_run_transaction(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset],
) -> None:
    con, _ = loaded
    state = dict(con.execute("SELECT key, value FROM settings").fetchall())
    newest = con.execute("SELECT max(loaded_at)::TEXT, count(*) FROM observations").fetchone()
    assert newest is not None
    assert state[stage._WATERMARK] == newest[0]
    assert json.loads(state[stage._COUNT]) == newest[1]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_tags_recounted_from_fresh_sessions_equal_the_full_count(
    loaded: tuple[duckdb.DuckDBPyConnection, datasets.SyntheticDataset], data: st.DataObject
) -> None:
    """Unchanged sessions' models are read from their tags: the counters are still exact,
    whichever sessions are fresh and whichever tags were lost."""
    con, _ = loaded
    expected = con.execute("SELECT session_id, session_tag FROM sessions ORDER BY 1").fetchall()
    ids = [str(s) for s, _ in expected]
    users = sorted({str(r[0]) for r in con.execute("SELECT user_id FROM sessions").fetchall()})
    chosen = data.draw(st.lists(st.sampled_from(users), min_size=1, unique=True))
    fresh = data.draw(st.lists(st.sampled_from(ids), unique=True))
    lost = data.draw(st.lists(st.sampled_from(ids), unique=True))
    mine = {
        str(r[0])
        for r in con.execute(
            "SELECT session_id FROM sessions WHERE user_id IN (SELECT unnest(?::TEXT[]))",
            [chosen],
        ).fetchall()
    }
    # Fresh sessions may have any tag (their data changed); untagged ones are read anyway.
    con.execute(
        "UPDATE sessions SET session_tag = CASE WHEN session_id IN (SELECT unnest(?::TEXT[])) "
        "THEN NULL ELSE 'chat_model_stale_99' END "
        "WHERE session_id IN (SELECT unnest(?::TEXT[])) AND session_tag IS NOT NULL",
        [lost, [s for s in fresh if s not in lost]],
    )
    con.register("_fresh", pa.table({"session_id": pa.array(fresh, pa.string())}))
    try:
        assign_session_tags(con, user_ids=chosen, fresh=backend(con).table("_fresh"))
    finally:
        con.unregister("_fresh")
    after = dict(con.execute("SELECT session_id, session_tag FROM sessions").fetchall())
    assert all(after[s] == t for s, t in expected if s in mine)
    assign_session_tags(con)  # put back what other users' sessions lost
    assert con.execute("SELECT session_id, session_tag FROM sessions ORDER BY 1").fetchall() == (
        expected
    )
