"""Langfuse loaders on the real framework traces, reshaped into every API shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import sessionlens as sl

from .conftest import FRAMEWORK_TRACES, snapshot

FILES = sorted(FRAMEWORK_TRACES.glob("*.trace.json"))


def _doc(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_the_twenty_framework_traces_are_there():
    assert len(FILES) == 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name.split(".")[0])
def test_every_framework_trace_loads_whole(con, path: Path):
    doc = _doc(path)
    result = sl.load(con, path, strict=True)
    trace_id = doc["trace"]["id"]
    assert result.rejected == 0
    assert result.files[0].format == "langfuse-trace"
    counts = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE type = 'TOOL') FROM observations "
        "WHERE trace_id = ?",
        [trace_id],
    ).fetchone()
    tools = sum(1 for o in doc["observations"] if o["type"] == "TOOL")
    assert counts == (len(doc["observations"]), tools)
    stored = con.execute(
        "SELECT session_id, source_session_id, user_id, name FROM traces WHERE trace_id = ?",
        [trace_id],
    ).fetchone()
    assert stored is not None
    assert stored[1] == doc["trace"]["sessionId"]
    assert stored[2] == doc["trace"]["userId"]
    assert stored[3] == doc["trace"]["name"]


def test_all_framework_traces_in_one_load_then_reload_is_a_no_op(con):
    first = sl.load(con, FRAMEWORK_TRACES)
    assert first.rejected == 0
    # Two files hold the same pydantic-ai trace: 19 distinct traces, 135 distinct observations.
    ids = {_doc(p)["trace"]["id"] for p in FILES}
    obs = {o["id"] for p in FILES for o in _doc(p)["observations"]}
    assert (first.traces, first.observations) == (len(ids), len(obs)) == (19, 135)
    before = snapshot(con)
    again = sl.load(con, FRAMEWORK_TRACES)
    assert again.written == {"traces": 0, "observations": 0, "scores": 0}
    assert snapshot(con) == before


def test_json_payloads_are_decoded_even_when_encoded_twice(con):
    path = FRAMEWORK_TRACES / "claude-agent-2025-12-22.trace.json"
    raw = _doc(path)["trace"]["input"]
    assert isinstance(json.loads(raw), str)  # the file really encodes it twice
    sl.load(con, path)
    prompt = con.execute(
        "SELECT input->>'$.prompt' FROM traces WHERE trace_id = ?", [_doc(path)["trace"]["id"]]
    ).fetchone()
    assert prompt == ("What's the weather like in Berlin and New York?",)


def test_tokens_follow_the_otel_convention(con):
    # langgraph-js: Langfuse split reasoning out of output (output 35 + output_reasoning 64).
    sl.load(con, FRAMEWORK_TRACES / "langgraph-js-2025-10-30.trace.json")
    row = con.execute(
        "SELECT input_tokens, output_tokens, reasoning_tokens, total_tokens, cache_read_tokens "
        "FROM observations WHERE usage_details->>'$.output_reasoning' = '64'"
    ).fetchone()
    assert row == (179, 99, 64, 278, 0)


def test_reasoning_already_inside_output_is_not_added_twice(con):
    # google-gemini: completion_details.reasoning 1104 is part of output 2055 (total 2061).
    sl.load(con, FRAMEWORK_TRACES / "google-gemini-2025-08-01.trace.json")
    row = con.execute(
        "SELECT input_tokens, output_tokens, reasoning_tokens, total_tokens, provider, "
        "reported_cost_usd FROM observations WHERE type = 'GENERATION'"
    ).fetchone()
    assert row == (6, 2055, 1104, 2061, "google", pytest.approx(0.005139299999))


def test_model_and_provider_are_filled(con):
    sl.load(con, FRAMEWORK_TRACES)
    providers = dict(
        con.execute(
            "SELECT model, any_value(provider) FROM observations WHERE model IS NOT NULL "
            "GROUP BY model"
        ).fetchall()
    )
    assert providers["claude-sonnet-4-5-20250929"] == "anthropic"
    assert providers["gpt-4.1-2025-04-14"] == "openai"
    assert providers["gemini-2.0-flash"] == "google"
    assert None not in providers.values()


# -- API v1 and v2 shapes, built from the same real records ------------------------------------


def _v1_trace(doc: dict[str, Any]) -> dict[str, Any]:
    trace = {k: v for k, v in doc["trace"].items() if k not in ("observations", "scores")}
    trace["observations"] = doc["observations"]
    trace["scores"] = []
    return trace


def test_api_v1_trace_pages_with_nested_observations(con, tmp_path: Path):
    docs = [_doc(p) for p in FILES[:6]]
    page = {
        "data": [_v1_trace(d) for d in docs],
        "meta": {"page": 1, "limit": 50, "totalItems": 6, "totalPages": 1},
    }
    path = tmp_path / "traces-page-1.json"
    path.write_text(json.dumps(page))
    result = sl.load(con, path, strict=True)
    assert result.files[0].format == "langfuse-api-v1"
    assert result.traces == 6
    assert result.observations == sum(len(d["observations"]) for d in docs)


def test_api_v1_trace_list_with_observation_ids_and_observation_pages(con, tmp_path: Path):
    doc = _doc(FRAMEWORK_TRACES / "openai-agents-2025-09-30.trace.json")
    trace = _v1_trace(doc)
    trace["observations"] = [o["id"] for o in doc["observations"]]  # the list endpoint's ids
    (tmp_path / "traces.json").write_text(json.dumps({"data": [trace], "meta": {"page": 1}}))
    obs_pages = [
        {
            "data": doc["observations"][i : i + 2],
            "meta": {"page": i // 2 + 1, "limit": 2, "totalItems": 5, "totalPages": 3},
        }
        for i in range(0, 5, 2)
    ]
    (tmp_path / "observations.jsonl").write_text("\n".join(json.dumps(p) for p in obs_pages))
    result = sl.load(con, tmp_path, strict=True)
    assert {f.format for f in result.files} == {"langfuse-api-v1"}
    assert (result.traces, result.observations) == (1, 5)
    assert con.execute("SELECT count(*) FROM traces WHERE is_stub").fetchone() == (0,)


def _v2_row(trace: dict[str, Any], obs: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in obs.items() if k not in ("model", "internalModelId")}
    row["providedModelName"] = obs.get("model")
    row.update(
        traceName=trace["name"],
        userId=trace.get("userId") or "",
        sessionId=trace.get("sessionId") or "",
        tags=trace.get("tags") or [],
    )
    for key in ("input", "output"):  # v2 always returns io as raw strings
        value = obs.get(key)
        row[key] = value if isinstance(value, str) or value is None else json.dumps(value)
    return row


def test_api_v2_cursor_pages_make_traces_from_trace_fields(con, tmp_path: Path):
    doc = _doc(FRAMEWORK_TRACES / "csharp-agent-with-gemini-2026-03-09.trace.json")
    rows = [_v2_row(doc["trace"], o) for o in doc["observations"]]
    pages = [
        {"data": rows[:3], "meta": {"cursor": "eyJwYWdlIjoyfQ=="}},
        {"data": rows[3:6], "meta": {"cursor": "eyJwYWdlIjozfQ=="}},
        {"data": rows[6:], "meta": {}},
    ]
    for i, page in enumerate(pages):
        (tmp_path / f"v2-page-{i}.json").write_text(json.dumps(page))
    result = sl.load(con, tmp_path, strict=True)
    assert {f.format for f in result.files} == {"langfuse-api-v2"}
    assert result.observations == len(doc["observations"])
    trace = con.execute(
        "SELECT trace_id, session_id, user_id, name, is_stub, start_time FROM traces"
    ).fetchall()
    assert len(trace) == 1
    t = doc["trace"]
    assert trace[0][:5] == (t["id"], t["sessionId"], t["userId"], t["name"], True)
    assert trace[0][5] is not None  # placeholder trace starts with its first observation
    # the real trace record arriving later replaces the placeholder
    sl.load(con, FRAMEWORK_TRACES / "csharp-agent-with-gemini-2026-03-09.trace.json")
    assert con.execute("SELECT is_stub, input IS NOT NULL FROM traces").fetchall() == [
        (False, True)
    ]
    # ... and a later placeholder never overwrites the real record
    sl.load(con, tmp_path / "v2-page-0.json")
    assert con.execute("SELECT is_stub FROM traces").fetchall() == [(False,)]
