"""Hostile strings from data (and from the analyst) never reach SQL as text.

Names, tags, metadata keys and values, session and user ids, tool and model names are set to
quotes, semicolons, ``'); DROP TABLE traces; --``, NUL bytes, backslashes and odd Unicode; the
export is loaded, analysed and put through every public analysis. The tables must be intact
and every value must come back exactly as it went in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

import sessionlens as sl
from sessionlens import datasets

HOSTILE = [
    "'); DROP TABLE traces; --",
    "Robert'); DROP TABLE observations;--",
    '"; DELETE FROM sessions; --',
    'semi;colon\'s "quoted"',
    "back\\slash\\' \\x00",
    "nul\x00byte",
    "ünï 😀 \u202e rtl",
    "$1 ? :name %s {0}",
    "a\nnew line\r\ttab",
]
TABLES = ("traces", "observations", "sessions", "tool_calls", "conversation_turns", "load_errors")


def _pick(i: int) -> str:
    return HOSTILE[i % len(HOSTILE)]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hostile")
    ds = datasets.generate(9, seed=2)
    users = {t["user_id"]: _pick(i) for i, t in enumerate(ds.traces)}
    sessions = {t["session_id"]: _pick(i + 3) + f" #{i}" for i, t in enumerate(ds.traces)}
    for i, t in enumerate(ds.traces):
        t["name"] = _pick(i)
        t["user_id"] = users[t["user_id"]]
        t["session_id"] = sessions[t["session_id"]]
        t["tags"] = [_pick(i), _pick(i + 1)]
        t["metadata"] = {_pick(i + 2): _pick(i + 4), "plain": _pick(i + 5)}
    for i, o in enumerate(ds.observations):
        if o["type"] == "GENERATION":
            o["provided_model_name"] = "gpt-4o-mini" + _pick(i)
        o["name"] = _pick(i)
    files = datasets.write_langfuse_blob_export(ds, root / "blob")
    conversations = [
        {
            "session_id": f"chat {_pick(i)}",
            "user_id": _pick(i + 1),
            "messages": [
                {"role": "user", "content": _pick(i + 2)},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call-{i}",
                            "type": "function",
                            "function": {
                                "name": _pick(i + 3),
                                "arguments": json.dumps({_pick(i): _pick(i + 4)}),
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": f"call-{i}", "content": _pick(i + 5)},
                {"role": "assistant", "content": _pick(i + 6)},
            ],
        }
        for i in range(len(HOSTILE))
    ]
    chats = root / "chats.jsonl"
    chats.write_text("".join(json.dumps(c) + "\n" for c in conversations))
    con = sl.connect()
    result = sl.load(con, [*files, chats], strict=True)
    return {"con": con, "ds": ds, "chats": conversations, "result": result}


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    row = con.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0]


def test_hostile_values_round_trip_exactly(hostile: dict[str, Any]) -> None:
    con, ds = hostile["con"], hostile["ds"]
    assert {
        t
        for t in TABLES
        if _one(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [t])
    } == set(TABLES)
    assert _one(con, "SELECT count(*) FROM traces WHERE source_format = 'langfuse-blob'") == len(
        ds.traces
    )
    stored = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT trace_id, name, user_id, source_session_id, tags, metadata FROM traces"
        ).fetchall()
    }
    for t in ds.traces:
        name, user, session, tags, metadata = stored[t["id"]]
        assert (name, user, session, tags) == (t["name"], t["user_id"], t["session_id"], t["tags"])
        assert json.loads(metadata) == t["metadata"]
    models = {r[0] for r in con.execute("SELECT DISTINCT model FROM observations").fetchall()}
    want = {o["provided_model_name"] for o in ds.observations if o["type"] == "GENERATION"}
    assert want <= models
    tools = {r[0] for r in con.execute("SELECT tool_name FROM tool_calls").fetchall()}
    chat_tools = {c["messages"][1]["tool_calls"][0]["function"]["name"] for c in hostile["chats"]}
    assert chat_tools <= tools
    turns = {r[0] for r in con.execute("SELECT content FROM conversation_turns").fetchall()}
    assert {c["messages"][0]["content"] for c in hostile["chats"]} <= turns


def test_every_analysis_runs_on_hostile_data(hostile: dict[str, Any]) -> None:
    con = hostile["con"]
    counts = {t: _one(con, f"SELECT count(*) FROM {t}") for t in TABLES}
    sl.analyze_sessions(con, include_internal=True, progress=False)
    assert sl.assign_session_tags(con) >= 0
    frames = [
        sl.intent_mix(con),
        sl.completion_by_intent(con),
        sl.session_stats(con, by=["status", "intent", "user", "tag"]),
        sl.recent_sessions(con),
        sl.cost_by(con, by=["day", "model"]),
        sl.token_usage(con, by="model"),
        sl.unpriced_models(con),
        sl.session_costs(con),
        sl.tool_sequences(con),
        sl.sequence_variants(con),
        sl.tool_transitions(con),
        sl.dropoff_funnel(con),
        sl.session_tags(con),
    ]
    for frame in frames:
        frame.to_pyarrow()
    models = set(sl.cost_by(con, by="model").to_pyarrow().column("model").to_pylist())
    assert {m for m in models if m and m.startswith("gpt-4o-mini")} >= {
        "gpt-4o-mini" + h for h in HOSTILE
    } & {o["provided_model_name"] for o in hostile["ds"].observations if o["type"] == "GENERATION"}
    assert {t: _one(con, f"SELECT count(*) FROM {t}") for t in TABLES} == counts


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_filters_find_exactly_their_rows(hostile: dict[str, Any], value: str) -> None:
    con = hostile["con"]
    sl.analyze_sessions(con, include_internal=True, progress=False)
    want = {
        r[0]
        for r in con.execute(
            "SELECT session_id FROM session_analysis WHERE user_id = ?", [value]
        ).fetchall()
    }
    got = set(sl.find_sessions(con, user_id=value).to_pyarrow().column("session_id").to_pylist())
    assert got == want
    for tag in (value, value + "*"):
        assert sl.find_sessions(con, tag=tag).count().execute() >= 0
    assert _one(con, "SELECT count(*) FROM traces") > 0
    assert (
        set(
            sl.find_sessions(con, intent=value, status=value)
            .to_pyarrow()
            .column("session_id")
            .to_pylist()
        )
        == set()
    )


def test_hostile_flow_and_taxonomy_names(hostile: dict[str, Any], tmp_path: Path) -> None:
    con = hostile["con"]
    tool = hostile["chats"][0]["messages"][1]["tool_calls"][0]["function"]["name"]
    flows = {HOSTILE[1]: {"steps": [tool, HOSTILE[2]], "success": tool}}
    intents = {"intents": {HOSTILE[1]: {"patterns": [HOSTILE[3]], "tools": {tool: 3.0}}}}
    result = sl.analyze_sessions(con, flows=flows, intents=intents, force=True, progress=False)
    assert result.sessions > 0
    assert (
        _one(
            con, "SELECT count(*) FROM session_analysis WHERE caller_intent_type = ?", [HOSTILE[1]]
        )
        > 0
    )
    assert sl.dropoff_funnel(con, flows=sl.load_flows(flows)).count().execute() >= 0
