"""``analyze_sessions`` end to end: known answers, the cache's incremental behaviour, the CLI.

The generator plants every session's truth (intent, completion, drop-off, status, tokens,
reported cost); the analysis must give it back exactly for every agent session.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import sessionlens as sl
from sessionlens import datasets
from sessionlens.cli import main
from sessionlens.errors import ConfigError

from .conftest import SHARED

AS_OF = datetime(2027, 1, 1)  # after every generated session: none is in progress


def _loaded(tmp_path: Path, n: int, seed: int) -> tuple[duckdb.DuckDBPyConnection, object]:
    ds = datasets.generate(n, seed=seed)
    datasets.write_langfuse_blob_export(ds, tmp_path / f"export-{seed}")
    con = sl.connect()
    sl.load(con, tmp_path / f"export-{seed}")
    return con, ds


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[duckdb.DuckDBPyConnection, object]:
    con, ds = _loaded(tmp_path_factory.mktemp("analysis"), 300, 5)
    sl.analyze_sessions(con, as_of=AS_OF)
    return con, ds


def _rows(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, object]]:
    df = con.sql("SELECT * FROM session_analysis").df()
    return {r["session_id"]: r for r in df.to_dict("records")}


def test_planted_answers_come_back(analysed: tuple) -> None:
    con, ds = analysed
    rows = _rows(con)
    agent = ds.planted[~ds.planted.is_internal]
    assert set(rows) == set(agent.session_id)  # internal sessions are not agent sessions
    for p in agent.itertuples():
        r = rows[p.session_id]
        assert r["caller_intent_type"] == p.intent, p.session_id
        assert 0 < r["caller_intent_confidence"] <= 1
        assert r["completion_rate"] == pytest.approx(p.completion_rate, abs=1e-12)
        assert (r["drop_off_step"] if isinstance(r["drop_off_step"], str) else None) == (
            p.drop_off_step
        )
        assert r["status"] == p.status, p.session_id
        assert json.loads(r["expected_flow_json"]) == p.expected_flow
        calls = json.loads(r["tool_sequence_json"])
        assert [c["tool"] for c in calls] == list(p.tool_sequence)
        assert r["tool_call_count"] == p.tool_call_count
        assert r["failed_tool_calls"] == p.failed_tool_calls
        for col in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            assert r[col] == getattr(p, col), col
        assert r["reasoning_tokens"] == p.reasoning_tokens
        assert r["cost_usd"] == pytest.approx(p.reported_cost_usd, rel=1e-9)
        assert sorted(r["models"]) == p.models
        assert r["duration_seconds"] == pytest.approx(
            (p.end_time - p.start_time).total_seconds(), abs=1e-3
        )
        assert r["session_tag"].startswith("chat_model_")
        details = json.loads(r["booking_details_json"])
        assert details["phone_e164"] == p.phone_e164
        assert details["parent_name"] == p.parent_name
        assert sorted(details["children"]) == sorted(p.children)
        assert details["child_count"] == p.child_count
        assert details["requested_dates"] == p.requested_dates
        goals = json.loads(r["goals_json"])
        declared = {g.target for g in sl.DEFAULT_FLOWS[p.intent].goals if g.success}
        assert goals["success"] == declared.issubset(p.reached_steps)
        assert r["goal_completion"] == pytest.approx(
            len(goals["met"]) / len(goals["met"] + goals["unmet"])
        )


def test_confidence_is_not_a_constant(analysed: tuple) -> None:
    con, _ = analysed
    distinct = con.sql(
        "SELECT count(DISTINCT round(caller_intent_confidence, 4)) FROM session_analysis"
    ).fetchone()
    assert distinct is not None and distinct[0] > 5


def test_rerun_skips_everything_and_force_recomputes(analysed: tuple) -> None:
    con, _ = analysed
    n = con.sql("SELECT count(*) FROM session_analysis").fetchone()[0]  # type: ignore[index]
    again = sl.analyze_sessions(con, as_of=AS_OF)
    assert (again.sessions, again.recomputed, again.skipped) == (n, 0, n)
    forced = sl.analyze_sessions(con, as_of=AS_OF, force=True)
    assert forced.recomputed == n


def test_incremental_after_one_percent_new_sessions(tmp_path: Path) -> None:
    con, _ds = _loaded(tmp_path, 400, 21)
    first = sl.analyze_sessions(con, as_of=AS_OF)
    created = dict(con.execute("SELECT session_id, created_at FROM session_analysis").fetchall())
    extra = datasets.generate(4, seed=99)  # 1% more sessions, other ids
    datasets.write_langfuse_blob_export(extra, tmp_path / "extra")
    sl.load(con, tmp_path / "extra")
    new = set(extra.planted[~extra.planted.is_internal].session_id)
    second = sl.analyze_sessions(con, as_of=AS_OF)
    assert second.recomputed == len(new) > 0
    assert second.skipped == first.sessions
    again = dict(con.execute("SELECT session_id, created_at FROM session_analysis").fetchall())
    assert set(again) - set(created) == new
    assert all(again[s] == created[s] for s in created)  # untouched rows keep their rows


def test_a_changed_session_and_a_changed_config_are_recomputed(tmp_path: Path) -> None:
    con, _ds = _loaded(tmp_path, 60, 8)
    base = sl.analyze_sessions(con, as_of=AS_OF)
    trace_id, session_id = con.execute(
        "SELECT trace_id, session_id FROM traces WHERE NOT is_internal ORDER BY trace_id LIMIT 1"
    ).fetchone()  # type: ignore[misc]
    con.execute("UPDATE observations SET row_hash = 'changed' WHERE trace_id = ?", [trace_id])
    assert sl.analyze_sessions(con, as_of=AS_OF).recomputed == 1
    flows = {k: {"steps": list(f.steps)} for k, f in sl.DEFAULT_FLOWS.items()}
    flows["booking"]["success"] = "book_appointment"
    changed = sl.analyze_sessions(con, as_of=AS_OF, flows=flows)
    assert changed.recomputed == base.sessions  # the configuration is part of the key
    assert session_id in _rows(con)


def test_in_progress_sessions_are_recomputed_until_they_end(tmp_path: Path) -> None:
    con, ds = _loaded(tmp_path, 40, 3)
    last_end = ds.planted.end_time.max()
    during = sl.analyze_sessions(con, as_of=last_end + timedelta(minutes=1))
    open_ = during.statuses.get("in_progress", 0)
    assert open_ >= 1
    later = sl.analyze_sessions(con, as_of=AS_OF)
    assert later.recomputed == open_ and "in_progress" not in later.statuses


def test_removed_sessions_leave_the_cache(tmp_path: Path) -> None:
    con, _ = _loaded(tmp_path, 30, 4)
    sl.analyze_sessions(con, as_of=AS_OF)
    gone = con.sql("SELECT min(session_id) FROM session_analysis").fetchone()[0]  # type: ignore[index]
    con.execute(
        "DELETE FROM observations WHERE trace_id IN "
        "(SELECT trace_id FROM traces WHERE session_id = ?)",
        [gone],
    )
    con.execute("DELETE FROM traces WHERE session_id = ?", [gone])
    con.execute("DELETE FROM sessions WHERE session_id = ?", [gone])
    assert sl.analyze_sessions(con, as_of=AS_OF).removed == 1


def test_prune_by_age(analysed: tuple, tmp_path: Path) -> None:
    con, ds = _loaded(tmp_path, 30, 6)
    sl.analyze_sessions(con, as_of=AS_OF)
    n = con.sql("SELECT count(*) FROM session_analysis").fetchone()[0]  # type: ignore[index]
    middle = ds.planted.end_time.sort_values().iloc[len(ds.planted) // 2]
    expected = con.execute(
        "SELECT count(*) FROM session_analysis WHERE end_time < ?", [middle]
    ).fetchone()[0]  # type: ignore[index]
    assert sl.prune(con, older_than=timedelta(days=1), as_of=middle + timedelta(days=1)) == expected
    assert con.sql("SELECT count(*) FROM session_analysis").fetchone()[0] == n - expected  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"older_than: must be a positive timedelta"):
        sl.prune(con, older_than=timedelta(0))


def test_classifier_and_taxonomy_are_exclusive() -> None:
    with pytest.raises(ConfigError, match=r"either a classifier or an intent taxonomy"):
        sl.analyze_sessions(sl.connect(), classifier=lambda ev: ("x", 1.0, None), intents={})


def test_stats_over_the_cache(analysed: tuple) -> None:
    con, ds = analysed
    agent = ds.planted[~ds.planted.is_internal]
    mix = {r["intent"]: r["sessions"] for r in sl.intent_mix(con).to_pyarrow().to_pylist()}
    assert mix == agent.intent.value_counts().to_dict()
    done = sl.completion_by_intent(con).to_pyarrow().to_pylist()
    for r in done:
        of = agent[agent.intent == r["intent"]]
        assert r["completed"] == (of.status == "completed").sum()
    by_status = sl.session_stats(con, by="status").to_pyarrow().to_pylist()
    assert {r["status"]: r["sessions"] for r in by_status} == agent.status.value_counts().to_dict()
    recent = sl.recent_sessions(con, limit=500).to_pyarrow().to_pylist()
    assert len(recent) == sl.analysis.stats.RECENT_LIMIT_MAX
    starts = [r["start_time"] for r in recent]
    assert starts == sorted(starts, reverse=True)
    assert starts[0] == agent.start_time.max()
    with pytest.raises(ConfigError, match=r"limit: must be a positive integer"):
        sl.recent_sessions(con, limit=0)
    tag = recent[0]["session_tag"]
    assert sl.find_sessions(con, tag=tag).to_pyarrow().num_rows >= 1
    prefix = tag.rsplit("_", 1)[0] + "_*"
    found = sl.find_sessions(con, tag=prefix).to_pyarrow().column("session_tag").to_pylist()
    assert len(found) > 1 and all(t.startswith(prefix[:-1]) for t in found)
    with pytest.raises(ConfigError, match=r"since: 'soon' is not an ISO date"):
        sl.find_sessions(con, since="soon")


CLASSIFIER = '''
def classify(evidence):
    """Deterministic stand-in for an LLM classifier: the first tool decides."""
    first = evidence.tool_calls[0].name if evidence.tool_calls else "none"
    return {"type": "tool:" + first, "confidence": 0.5, "summary": evidence.caller_text[:40]}
'''


def test_cli_analyze_with_custom_classifier_and_taxonomy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.duckdb"
    assert main(["load", str(datasets.sample_dir()), "--db", str(db), "--no-progress"]) == 0
    (tmp_path / "my_classifier.py").write_text(CLASSIFIER)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["analyze", "--db", str(db), "--classifier", "my_classifier:classify"]) == 0
    out = capsys.readouterr().out
    assert "recomputed" in out and "status:" in out
    con = sl.connect(db, read_only=True)
    intents = {
        r[0] for r in con.sql("SELECT DISTINCT caller_intent_type FROM session_analysis").fetchall()
    }
    con.close()
    assert intents and all(i.startswith("tool:") for i in intents)

    taxonomy = tmp_path / "intents.toml"
    taxonomy.write_text(
        '[intents.appointment]\npatterns = ["appointment", "book", "schedule", "cancel"]\n'
        '[intents.question]\npatterns = ["hours", "open", "insurance", "parking"]\n'
    )
    code = main(["analyze", "--db", str(db), "--intents", str(taxonomy), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    con = sl.connect(db, read_only=True)
    intents = {
        r[0] for r in con.sql("SELECT DISTINCT caller_intent_type FROM session_analysis").fetchall()
    }
    con.close()
    assert intents <= {"appointment", "question", "other"} and "appointment" in intents

    assert main(["analyze", "--db", str(db), "--classifier", "nope"]) == 1
    assert "error: --classifier: 'nope' must look like package.module:function" in (
        capsys.readouterr().err
    )
    assert main(["analyze", "--db", str(db), "--flows", str(tmp_path / "none.toml")]) == 1
    assert "error: flows: file" in capsys.readouterr().err
    sys.modules.pop("my_classifier", None)


def test_cli_analyze_with_price_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "p.duckdb"
    assert main(["load", str(datasets.sample_dir()), "--db", str(db), "--no-progress"]) == 0
    prices = tmp_path / "prices.csv"
    prices.write_text("model,input,output\ngpt-4.1,100,100\n")
    langfuse = SHARED / "prices" / "langfuse-default-model-prices.json"
    args = ["analyze", "--db", str(db), "--prices", str(prices), "--langfuse-prices", str(langfuse)]
    assert main(args) == 0, capsys.readouterr().err
    con = sl.connect(db, read_only=True)
    sources = dict(con.sql("SELECT source, count(*) FROM model_prices GROUP BY 1").fetchall())
    con.close()
    assert sources["user"] == 1 and sources["langfuse"] > 100 and sources["genai-prices"] > 1000
    prices.write_text("model,input,output\ngpt-4.1,cheap,1\n")
    assert main(["analyze", "--db", str(db), "--prices", str(prices)]) == 1
    assert "error: user: " in capsys.readouterr().err


def test_bad_options_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con = sl.connect()
    with pytest.raises(ConfigError, match=r"by: unknown dimension 'weekday'; use one of status"):
        sl.session_stats(con, by=["status", "weekday"])
    db = tmp_path / "e.duckdb"
    sl.connect(db).close()
    assert main(["analyze", "--db", str(db), "--classifier", "no_such_module_xyz:f"]) == 1
    assert "cannot import 'no_such_module_xyz'" in capsys.readouterr().err
    assert main(["analyze", "--db", str(db), "--classifier", "json:not_there"]) == 1
    assert "error: --classifier: json has no callable 'not_there'" in capsys.readouterr().err
