"""Flows configuration, flow progress, tool sequences, transitions, funnel and tags.

Known answers come from the seeded generator: it plants each session's intent, tool sequence,
reached steps, completion rate and drop-off step counted from the records it wrote.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import duckdb
import ibis
import pyarrow as pa
import pytest

import sessionlens as sl
from sessionlens import datasets
from sessionlens.analysis.flows import DEFAULT_FLOWS, load_flows
from sessionlens.analysis.sequences import (
    dropoff_funnel,
    flow_progress,
    sequence_variants,
    tool_sequences,
    tool_transitions,
)
from sessionlens.analysis.tags import assign_session_tags, session_tags
from sessionlens.errors import ConfigError

SEED = 11


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[duckdb.DuckDBPyConnection, object]:
    ds = datasets.generate(240, seed=SEED)
    out = tmp_path_factory.mktemp("flows")
    datasets.write_langfuse_blob_export(ds, out)
    con = sl.connect()
    sl.load(con, out)
    return con, ds


def _agent(ds: object) -> object:
    planted = ds.planted  # type: ignore[attr-defined]
    return planted[~planted.is_internal].reset_index(drop=True)


def _assignments(planted: object) -> ibis.Table:
    table = pa.Table.from_pandas(planted[["session_id", "intent"]], preserve_index=False)  # type: ignore[index]
    return ibis.memtable(table)


def test_default_flows_match_the_generator() -> None:
    assert {k: list(f.steps) for k, f in DEFAULT_FLOWS.items()} == datasets.FLOWS
    assert all(f.success_step == f.steps[-1] for f in DEFAULT_FLOWS.values())


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_flows_from_files_equal_the_dict(tmp_path: Path, suffix: str) -> None:
    spec = {
        "refund": {
            "steps": ["find_order", "refund"],
            "success": "refund",
            "goals": [{"name": "refunded", "tool_succeeded": "refund", "success": True}],
        }
    }
    path = tmp_path / f"flows{suffix}"
    if suffix == ".toml":
        path.write_text(
            '[refund]\nsteps = ["find_order", "refund"]\nsuccess = "refund"\n'
            'goals = [{ name = "refunded", tool_succeeded = "refund", success = true }]\n'
        )
    elif suffix == ".json":
        path.write_text(json.dumps({"flows": spec}))
    else:
        path.write_text(
            "refund:\n  steps: [find_order, refund]\n  success: refund\n"
            "  goals:\n    - {name: refunded, tool_succeeded: refund, success: true}\n"
        )
    assert load_flows(path) == load_flows(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": {"steps": []}}, r"flows\.a\.steps: list at least one tool name"),
        ({"a": {"steps": ["x"], "success": "y"}}, r"flows\.a\.success: 'y' is not one of"),
        ({"a": {"steps": ["x"], "goals": [{"name": "g"}]}}, r"must have exactly one of"),
        ({"a": {"steps": ["x"], "goals": "x"}}, r"expected a list of goal tables"),
        ({"a": 3}, r"flows\.a: expected a table with a steps list"),
    ],
)
def test_bad_flows_are_rejected(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_flows(spec)


def test_bad_flow_files_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "flows.toml"
    bad.write_text("[booking\nsteps = 1")
    with pytest.raises(ConfigError, match=r"flows: .*flows.toml is not valid TOML"):
        load_flows(bad)
    with pytest.raises(ConfigError, match=r"unsupported extension '.ini'"):
        load_flows(tmp_path / "flows.ini")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"must hold a table/object at the top, got list"):
        load_flows(tmp_path / "list.json")


def test_flow_progress_recovers_planted_completion(generated: tuple) -> None:
    con, ds = generated
    planted = _agent(ds)
    got = flow_progress(con, assignments=_assignments(planted)).to_pyarrow().to_pylist()
    by_id = {r["session_id"]: r for r in got}
    assert len(by_id) == len(planted)
    for row in planted.itertuples():
        r = by_id[row.session_id]
        assert r["completion_rate"] == pytest.approx(row.completion_rate, abs=1e-12)
        assert r["drop_off_step"] == row.drop_off_step
        assert r["reached_count"] == len(row.reached_steps)
        assert r["success_reached"] == (row.status == "completed")


def test_flow_progress_needs_order_and_success() -> None:
    con = sl.connect()
    con.execute(
        "INSERT INTO tool_calls (session_id, seq, tool_name, is_error) VALUES "
        "('s1', 1, 'check_availability', false), ('s1', 2, 'lookup_patient', false), "
        "('s1', 3, 'book_appointment', true), ('s1', 4, 'check_availability', false)"
    )
    a = ibis.memtable({"session_id": ["s1", "s2"], "intent": ["booking", "unknown"]})
    rows = {r["session_id"]: r for r in flow_progress(con, assignments=a).to_pyarrow().to_pylist()}
    # lookup at 2, then availability at 4; the failed booking does not count.
    assert rows["s1"]["reached_count"] == 2
    assert rows["s1"]["drop_off_step"] == "book_appointment"
    assert rows["s1"]["completion_rate"] == 0.5
    assert rows["s2"]["completion_rate"] is None and not rows["s2"]["success_reached"]


def test_tool_sequences_match_planted(generated: tuple) -> None:
    con, ds = generated
    planted = _agent(ds)
    seqs = tool_sequences(con, assignments=_assignments(planted)).to_pyarrow().to_pylist()
    by_id = {r["session_id"]: r for r in seqs}
    for row in planted.itertuples():
        if not row.tool_sequence:
            assert row.session_id not in by_id
            continue
        got = by_id[row.session_id]
        assert [c["tool"] for c in got["calls"]] == list(row.tool_sequence)
        assert got["variant"] == " > ".join(row.tool_sequence)
        assert got["failed_tool_calls"] == row.failed_tool_calls
        assert got["repeated_calls"] == len(row.tool_sequence) - len(set(row.tool_sequence))
        assert got["unexpected_calls"] == 0  # the generator stays on its flows
        assert all(c["duration_ms"] >= 0 for c in got["calls"])


def test_variants_and_transitions_count_every_session(generated: tuple) -> None:
    con, ds = generated
    planted = _agent(ds)
    variants = sequence_variants(con, sequences=tool_sequences(con)).to_pyarrow().to_pylist()
    expected = Counter(" > ".join(s) for s in planted.tool_sequence if s)
    assert {v["variant"]: v["sessions"] for v in variants} == dict(expected)
    assert sum(v["share"] for v in variants) == pytest.approx(1.0)

    pairs: Counter[tuple[str, str]] = Counter()
    for seq in planted.tool_sequence:
        if seq:
            steps = ["(start)", *seq, "(end)"]
            pairs.update(itertools.pairwise(steps))
    got = tool_transitions(con).to_pyarrow().to_pylist()
    assert {(t["from_tool"], t["to_tool"]): t["transitions"] for t in got} == dict(pairs)
    inner = [t for t in got if t["from_tool"] != "(start)" and t["to_tool"] != "(end)"]
    assert all(t["median_latency_seconds"] >= 0 for t in inner)


def test_dropoff_funnel_counts_reached_steps(generated: tuple) -> None:
    con, ds = generated
    planted = _agent(ds)
    progress = flow_progress(con, assignments=_assignments(planted))
    funnel = dropoff_funnel(con, progress=progress).to_pyarrow().to_pylist()
    for row in funnel:
        of_intent = planted[planted.intent == row["intent"]]
        assert row["sessions"] == len(of_intent)
        assert row["reached"] == sum(len(r) > row["step_index"] for r in of_intent.reached_steps)
        assert row["dropped_here"] == sum(d == row["step"] for d in of_intent.drop_off_step)


def test_session_tags_number_each_users_sessions_per_model(generated: tuple) -> None:
    con, ds = generated
    # The expectation, computed from the generated records: each session's most used model.
    gens = [o for o in ds.observations if o["type"] == "GENERATION"]
    trace_session = {t["id"]: t["session_id"] for t in ds.traces}
    per: dict[str, Counter[str]] = {}
    for o in gens:
        per.setdefault(trace_session[o["trace_id"]], Counter())[o["provided_model_name"]] += 1
    planted = _agent(ds).sort_values(["start_time", "session_id"])
    counters: Counter[tuple[str, str]] = Counter()
    expected = {}
    for row in planted.itertuples():
        model = sorted(per[row.session_id].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        short = model.lower().removesuffix("-20250929")
        counters[(row.user_id, short)] += 1
        expected[row.session_id] = f"chat_model_{short}_{counters[(row.user_id, short)]}"
    assert assign_session_tags(con) >= len(expected)
    got = dict(con.execute("SELECT session_id, session_tag FROM sessions").fetchall())
    assert {k: got[k] for k in expected} == expected
    internal = ds.planted[ds.planted.is_internal].session_id
    assert all(got[s] is None for s in internal)
    assert assign_session_tags(con) == 0  # deterministic: a second pass changes nothing
    rows = session_tags(con).to_pyarrow().to_pylist()
    owned = [(r["user_id"], r["session_tag"]) for r in rows if r["session_tag"]]
    assert len(owned) == len(set(owned))  # a tag names one session of its user
