"""The synthetic voice-agent generator, its Langfuse writers and the bundled sample."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sessionlens.datasets import (
    FLOWS,
    INTENT_WEIGHTS,
    SyntheticDataset,
    generate,
    make_sample,
    sample_dir,
    write_langfuse_blob_export,
    write_langfuse_trace_downloads,
)

SHARED_TRACES = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "langfuse-framework-traces"
)
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@pytest.fixture(scope="module")
def ds() -> SyntheticDataset:
    return generate(80, seed=11)


def _read_jsonl(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(folder.iterdir()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh]
    return rows


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _user_texts(ds: SyntheticDataset) -> dict[str, str]:
    texts: dict[str, list[str]] = {}
    for t in ds.traces:
        texts.setdefault(t["session_id"], []).append(json.loads(t["input"])["content"])
    return {sid: " ".join(parts) for sid, parts in texts.items()}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, fmt: Any) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_langfuse_blob_export(generate(25, seed=seed), tmp_path / name, fmt=fmt)
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
    assert _tree_bytes(tmp_path / "a") != _tree_bytes(tmp_path / "c")


def test_intent_mix_on_1000_sessions() -> None:
    planted = generate(1000, seed=5).planted
    shares = planted["intent"].value_counts(normalize=True)
    for intent, weight in INTENT_WEIGHTS.items():
        assert abs(shares[intent] - weight) < 0.04, (intent, shares[intent])
    statuses = planted["status"].value_counts(normalize=True)
    assert 0.6 < statuses["completed"] < 0.85
    assert statuses["abandoned"] > 0.1
    assert statuses["failed"] > 0.03
    assert 0.02 < planted["is_internal"].mean() < 0.05


def test_planted_tokens_equal_written_usage_in_otel_convention(
    ds: SyntheticDataset, tmp_path: Path
) -> None:
    write_langfuse_blob_export(ds, tmp_path, gzip=True)
    session_of = {t["id"]: t["session_id"] for t in _read_jsonl(tmp_path / "traces")}
    sums: dict[str, Counter[str]] = {}
    for o in _read_jsonl(tmp_path / "observations"):
        usage = o["usage_details"]
        if o["type"] != "GENERATION":
            assert usage == {}
            continue
        # Langfuse buckets are exclusive: total is their sum.
        assert usage["total"] == sum(v for k, v in usage.items() if k != "total")
        c = sums.setdefault(session_of[o["trace_id"]], Counter())
        c["input_tokens"] += sum(v for k, v in usage.items() if k.startswith("input"))
        c["output_tokens"] += sum(v for k, v in usage.items() if k.startswith("output"))
        c["cache_read_tokens"] += usage.get("input_cache_read", 0)
        c["cache_write_tokens"] += usage.get("input_cache_creation", 0)
        c["reasoning_tokens"] += usage.get("output_reasoning", 0)
        c["cost"] += o["total_cost"]
        assert o["total_cost"] == pytest.approx(o["cost_details"]["total"])
    for row in ds.planted.to_dict("records"):
        c = sums[row["session_id"]]
        for key in ("input_tokens", "output_tokens", "cache_read_tokens"):
            assert row[key] == c[key], key
        assert row["cache_write_tokens"] == c["cache_write_tokens"]
        assert row["reasoning_tokens"] == c["reasoning_tokens"]
        assert row["reported_cost_usd"] == pytest.approx(c["cost"], rel=1e-9)
    models = {m for ms in ds.planted["models"] for m in ms}
    assert {"claude-sonnet-4-5-20250929", "o4-mini", "gemini-2.5-flash"} <= models
    assert (ds.planted["cache_read_tokens"] > 0).any()
    assert (ds.planted["reasoning_tokens"] > 0).any()


def test_tool_observations_answer_a_preceding_generation(ds: SyntheticDataset) -> None:
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for o in ds.observations:
        by_trace.setdefault(o["trace_id"], []).append(o)
    tools = 0
    for observations in by_trace.values():
        observations = sorted(observations, key=lambda o: o["start_time"])
        asked: dict[str, tuple[str, Any]] = {}
        for o in observations:
            if o["type"] == "GENERATION":
                for call in json.loads(o["output"]).get("tool_calls") or []:
                    function = call["function"]
                    asked[call["id"]] = (function["name"], json.loads(function["arguments"]))
            elif o["type"] == "TOOL":
                tools += 1
                assert asked[o["metadata"]["tool_call_id"]] == (o["name"], json.loads(o["input"]))
    assert tools == ds.planted["tool_call_count"].sum() > 0


def test_generations_resend_history(ds: SyntheticDataset) -> None:
    session_of = {t["id"]: t["session_id"] for t in ds.traces}
    previous: dict[str, list[Any]] = {}
    for o in sorted(ds.observations, key=lambda o: o["start_time"]):
        if o["type"] != "GENERATION":
            continue
        messages = json.loads(o["input"])
        assert messages[0]["role"] == "system"
        sid = session_of[o["trace_id"]]
        before = previous.get(sid, [])
        assert messages[: len(before)] == before
        previous[sid] = [*messages, json.loads(o["output"])]


def test_planted_answers_are_consistent(ds: SyntheticDataset) -> None:
    p = ds.planted
    assert len(p) == 80 and p["session_id"].is_unique
    assert ((p["status"] == "completed") == (p["completion_rate"] == 1.0)).all()
    assert p["drop_off_step"].isna().eq(p["status"] == "completed").all()
    for row in p.to_dict("records"):
        assert row["expected_flow"] == FLOWS[row["intent"]]
        assert row["reached_steps"] == row["expected_flow"][: len(row["reached_steps"])]
        if row["drop_off_step"] is not None:
            assert row["drop_off_step"] == row["expected_flow"][len(row["reached_steps"])]
        assert re.sub(r"\D", "", row["phone_raw"])[-10:] == row["phone_e164"][2:]
        assert re.fullmatch(r"\+1\d{3}55501\d\d", row["phone_e164"])
        assert row["child_count"] == len(row["children"])
        assert [t for t in row["tool_sequence"] if t in row["expected_flow"]] == row[
            "tool_sequence"
        ]
        assert 1 <= row["trace_count"] <= 4
    pt = ds.planted_traces
    assert len(pt) == len(ds.traces) == p["trace_count"].sum()
    assert pt["observation_count"].sum() == len(ds.observations) == p["observation_count"].sum()
    internal = {t["id"] for t in ds.traces if t["environment"] != "default"}
    assert set(pt.loc[pt["is_internal"], "trace_id"]) == internal
    assert internal and {t["environment"] for t in ds.traces} <= {
        "default",
        "sdk-experiment",
        "langfuse-evaluation",
    }


def test_caller_words_mention_the_planted_entities(ds: SyntheticDataset) -> None:
    texts = _user_texts(ds)
    resolved = 0
    for row in ds.planted.to_dict("records"):
        text = texts[row["session_id"]]
        assert row["parent_name"] in text and row["phone_raw"] in text
        assert all(name in text for name in row["children"])
        day0 = row["start_time"].date()
        said = []
        for m in re.finditer(
            r"next (\w+day)|on (\d{4}-\d\d-\d\d)|tomorrow|on ([A-Z][a-z]+ \d+)", text
        ):
            if m.group(1):  # "next Tuesday" = the first Tuesday after the call
                ahead = (WEEKDAYS.index(m.group(1)) - day0.weekday() - 1) % 7 + 1
                said.append(day0 + timedelta(days=ahead))
                resolved += 1
            elif m.group(2):
                said.append(date.fromisoformat(m.group(2)))
            elif m.group(0) == "tomorrow":
                said.append(day0 + timedelta(days=1))
            else:
                d = datetime.strptime(f"{m.group(3)} {day0.year}", "%B %d %Y").date()
                said.append(d if d >= day0 else d.replace(year=d.year + 1))
        # The planted dates are the distinct days said, in the order first said.
        assert [d.isoformat() for d in dict.fromkeys(said)] == row["requested_dates"]
        assert all(1 <= (d - day0).days <= 30 for d in said)
    assert resolved > 0


def test_failed_tool_calls_are_errors_with_status(ds: SyntheticDataset) -> None:
    errors = [o for o in ds.observations if o["type"] == "TOOL" and o["level"] == "ERROR"]
    assert len(errors) == ds.planted["failed_tool_calls"].sum() > 0
    assert all(o["status_message"] and "error" in json.loads(o["output"]) for o in errors)
    assert (ds.planted.loc[ds.planted["status"] == "failed", "failed_tool_calls"] > 0).all()


def test_overlapping_windows_repeat_records_with_later_updated_at(
    ds: SyntheticDataset, tmp_path: Path
) -> None:
    files = write_langfuse_blob_export(
        ds, tmp_path, window=timedelta(hours=6), overlap=timedelta(hours=1)
    )
    assert len({f.name for f in files if f.parent.name == "traces"}) > 5
    for kind, records in (("traces", ds.traces), ("observations", ds.observations)):
        seen: dict[str, list[dict[str, Any]]] = {}
        for row in _read_jsonl(tmp_path / kind):  # files in window order
            seen.setdefault(row["id"], []).append(row)
        assert set(seen) == {r["id"] for r in records}
        repeated = [rows for rows in seen.values() if len(rows) > 1]
        assert repeated, kind
        for first, later in repeated:
            assert later["updated_at"] > first["updated_at"]
        changed = [1 for first, later in repeated if first["metadata"] != later["metadata"]]
        assert 0 < len(changed) < len(repeated)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.jsonl", files[0].name)


@pytest.mark.parametrize(
    ("fmt", "reader"),
    [
        ("csv", "read_csv"),
        ("parquet", "read_parquet"),
        ("json", "read_json"),
        ("jsonl", "read_json"),
    ],
)
def test_files_read_back_with_duckdb(
    ds: SyntheticDataset, tmp_path: Path, fmt: Any, reader: str
) -> None:
    files = write_langfuse_blob_export(ds, tmp_path, fmt=fmt, window=timedelta(days=2))
    con = duckdb.connect()
    expected = {"traces": ds.traces, "observations": ds.observations, "scores": ds.scores}
    for kind, records in expected.items():
        paths = [str(f) for f in files if f.parent.name == kind]
        count = con.execute(f"SELECT count(*) FROM {reader}($paths)", {"paths": paths})
        row = count.fetchone()
        assert row is not None and row[0] == len(records), kind
    ts = con.execute(
        f"SELECT min(start_time) FROM {reader}($p)",
        {"p": [str(f) for f in files if f.parent.name == "observations"]},
    ).fetchone()
    assert ts is not None and str(ts[0]).startswith("2026-09-0")
    con.close()


def test_csv_cells_are_quoted_json_text(ds: SyntheticDataset, tmp_path: Path) -> None:
    files = write_langfuse_blob_export(ds, tmp_path, fmt="csv")
    obs_file = next(f for f in files if f.parent.name == "observations")
    header, first = obs_file.read_text().splitlines()[:2]
    assert header.startswith('"id","trace_id","project_id"')
    assert '"{""turn"": ""0""}"' in first or '"{}"' in first
    with pytest.raises(ValueError, match="Parquet"):
        write_langfuse_blob_export(ds, tmp_path, fmt="parquet", gzip=True)


def test_trace_downloads_look_like_real_ones(ds: SyntheticDataset, tmp_path: Path) -> None:
    files = write_langfuse_trace_downloads(ds, tmp_path)
    assert len(files) == len(ds.traces)
    real = json.loads(next(iter(sorted(SHARED_TRACES.glob("*.json")))).read_text())
    doc = json.loads(files[0].read_text())
    assert set(doc["trace"]) <= set(real["trace"]) | {"observations"}
    assert set(doc["observations"][0]) <= {k for o in real["observations"] for k in o}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["trace"]["timestamp"])
    assert doc["trace"]["sessionId"] == ds.traces[0]["session_id"]
    types = {o["type"] for o in doc["observations"]}
    assert {"SPAN", "GENERATION"} <= types


def test_bundled_sample_is_up_to_date(tmp_path: Path) -> None:
    make_sample(tmp_path)
    assert _tree_bytes(tmp_path) == _tree_bytes(sample_dir())
    assert sum(len(b) for b in _tree_bytes(sample_dir()).values()) < 400_000
    traces = _read_jsonl(sample_dir() / "traces")
    assert len({t["session_id"] for t in traces}) == 60


def test_repo_otlp_sample_is_the_documented_generator_output(tmp_path: Path) -> None:
    """data/README.md's recipe regenerates data/otlp-genai-sample.jsonl.gz byte for byte."""
    from sessionlens.datasets import write_otlp_export
    from tests.conftest import ROOT

    sample = ROOT / "data" / "otlp-genai-sample.jsonl.gz"
    [jsonl] = write_otlp_export(generate(12, seed=11), tmp_path, lines=True)
    assert gzip.decompress(sample.read_bytes()) == jsonl.read_bytes()

    import sessionlens as sl

    con = sl.connect()
    result = sl.load(con, sample)
    assert (result.sessions, result.rejected) == (12, 0)
