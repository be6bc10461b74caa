"""Chat transcripts (format ``chat-transcript``): tau-bench runs and OpenAI message lists load as
one trace and one session per conversation, with tool calls in the order the agent made them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens.loaders._paths import _source
from sessionlens.loaders.files import detect

from .conftest import FRAMEWORK_TRACES, SHARED, snapshot

TAU = SHARED / "tau-bench" / "gpt-4o-airline.json"


@pytest.fixture(scope="module")
def runs() -> list[dict[str, Any]]:
    return json.loads(TAU.read_text())


@pytest.fixture(scope="module")
def tau() -> duckdb.DuckDBPyConnection:
    con = sl.connect()
    sl.load(con, TAU, strict=True)
    return con


def _session_of(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> str:
    found = con.execute(
        "SELECT session_id FROM traces WHERE json_extract(metadata, '$.task_id')::INT = ? "
        "AND json_extract(metadata, '$.trial')::INT = ?",
        [run["task_id"], run["trial"]],
    ).fetchall()
    assert len(found) == 1
    return str(found[0][0])


def _called(messages: list[dict[str, Any]]) -> list[str]:
    return [
        call["function"]["name"]
        for m in messages
        if m["role"] == "assistant"
        for call in m.get("tool_calls") or []
    ]


def test_tau_bench_is_200_sessions_from_the_source(tau):
    assert tau.execute("SELECT count(*), count(DISTINCT session_id) FROM traces").fetchone() == (
        200,
        200,
    )
    assert tau.execute("SELECT origin, count(*) FROM sessions GROUP BY 1").fetchall() == [
        ("source", 200)
    ]
    formats = tau.execute("SELECT DISTINCT source_format FROM observations").fetchall()
    assert formats == [("chat-transcript",)]


@pytest.mark.parametrize("index", [0, 1, 57, 123, 199])
def test_tool_calls_are_in_the_order_the_agent_made_them(tau, runs, index):
    run = runs[index]
    session = _session_of(tau, run)
    got = tau.execute(
        "SELECT tool_name FROM tool_calls WHERE session_id = ? ORDER BY seq", [session]
    ).fetchall()
    assert [name for (name,) in got] == _called(run["traj"])


def test_every_tool_call_appears_once_with_its_result(tau, runs):
    expected = sum(len(_called(run["traj"])) for run in runs)
    got = tau.execute(
        "SELECT count(*), count(*) FILTER (origin = 'tool_observation'), "
        "count(*) FILTER (is_error) FROM tool_calls"
    ).fetchone()
    errors = sum(
        1
        for run in runs
        for m in run["traj"]
        if m["role"] == "tool" and m["content"].startswith("Error")
    )
    assert got == (expected, expected, errors)
    # tau-bench reuses tool_call_ids (across runs and even within one), so compare per run in
    # call order; here every tool call is answered by the very next message.
    for run in runs[::9]:
        want = []
        for k, m in enumerate(run["traj"]):
            for _ in m.get("tool_calls") or []:
                answer = run["traj"][k + 1] if k + 1 < len(run["traj"]) else None
                content = answer["content"] if answer and answer["role"] == "tool" else ""
                # JSON results are stored as JSON, text as JSON strings, empty ones as NULL
                want.append(json.loads(content) if content[:1] in "{[" and content else content)
        stored = tau.execute(
            "SELECT result::VARCHAR FROM tool_calls WHERE session_id = ? ORDER BY seq",
            [_session_of(tau, run)],
        ).fetchall()
        assert [json.loads(r) if r is not None else "" for (r,) in stored] == want


def test_reward_and_expected_actions_are_in_trace_metadata(tau, runs):
    rows = tau.execute(
        "SELECT json_extract(metadata, '$.task_id')::INT, json_extract(metadata, '$.trial')::INT, "
        "json_extract(metadata, '$.reward')::DOUBLE, "
        "json_extract(metadata, '$.info.task.actions')::VARCHAR FROM traces"
    ).fetchall()
    got = {(task, trial): (reward, json.loads(actions)) for task, trial, reward, actions in rows}
    want = {(r["task_id"], r["trial"]): (r["reward"], r["info"]["task"]["actions"]) for r in runs}
    assert got == want


def test_conversation_turns_hold_the_user_turns(tau, runs):
    for run in runs[::25]:
        session = _session_of(tau, run)
        turns = tau.execute(
            "SELECT content FROM conversation_turns WHERE session_id = ? AND role = 'user' "
            "ORDER BY seq",
            [session],
        ).fetchall()
        last = max(i for i, m in enumerate(run["traj"]) if m["role"] == "assistant")
        seen = [m["content"] for m in run["traj"][:last] if m["role"] == "user"]
        assert [c for (c,) in turns] == seen
        # The closing user line no LLM call saw is kept in the trace's metadata.
        after = tau.execute(
            "SELECT json_extract(metadata, '$._sessionlens.after_last_reply') FROM traces "
            "WHERE trace_id = ?",
            [session],
        ).fetchone()
        assert after is not None
        assert json.loads(after[0] or "null") == (run["traj"][last + 1 :] or None)


def test_generations_carry_the_history_and_times_are_synthetic(tau, runs):
    run = runs[3]
    session = _session_of(tau, run)
    rows = tau.execute(
        "SELECT input, output, start_time, end_time FROM observations "
        "WHERE trace_id = ? AND type = 'GENERATION' ORDER BY start_time",
        [session],
    ).fetchall()
    assistant = [i for i, m in enumerate(run["traj"]) if m["role"] == "assistant"]
    assert len(rows) == len(assistant)
    for (inp, out, start, end), k in zip(rows, assistant, strict=True):
        assert json.loads(inp) == run["traj"][:k]
        assert json.loads(out) == run["traj"][k]
        assert (end - sl.loaders._rows.SYNTHETIC_START).total_seconds() == k
        assert start < end
    notes = tau.execute(
        "SELECT json_extract(metadata, '$._sessionlens.synthetic_times') FROM traces "
        "WHERE trace_id = ?",
        [session],
    ).fetchone()
    assert notes == ("true",)


def test_reload_writes_nothing(runs, tmp_path):
    con = sl.connect()
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs[:20]))
    sl.load(con, path)
    before = snapshot(con)
    again = sl.load(con, path)
    assert again.written == {"traces": 0, "observations": 0, "scores": 0}
    # the same conversations from another file (ids do not depend on the file) add nothing
    other = tmp_path / "again.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in runs[:20]))
    assert sl.load(con, other).written == {"traces": 0, "observations": 0, "scores": 0}
    assert snapshot(con) == before


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    snap = snapshot(con)
    return {k: v for k, v in snap.items() if k not in ("traces", "observations")} | {
        table: sorted(
            con.execute(
                f"SELECT * EXCLUDE (source_file, loaded_at, source_format) FROM {table}"
            ).fetchall(),
            key=repr,
        )
        for table in ("traces", "observations")
    }


def test_every_container_shape_gives_the_same_tables(runs, tmp_path):
    chosen = runs[5:8]
    bare = [r["traj"] for r in chosen]
    shapes: dict[str, list[tuple[str, str]]] = {
        "array of records": [("a.json", json.dumps(chosen))],
        "jsonl records": [("b.jsonl", "".join(json.dumps(r) + "\n" for r in chosen))],
        "one record per file": [(f"c{i}.json", json.dumps(r)) for i, r in enumerate(chosen)],
    }
    results = {}
    for shape, files in shapes.items():
        con = sl.connect()
        for name, content in files:
            path = tmp_path / shape.replace(" ", "_") / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(content)
            doc = json.loads(content) if name.endswith(".json") else None
            assert detect(_source(path), doc) == "chat-transcript"
            assert sl.load(con, path, strict=True).files[0].format == "chat-transcript"
        results[shape] = _tables(con)
    first = results.pop("array of records")
    for shape, tables in results.items():
        assert tables == first, shape
    # bare message lists have no metadata to tell them apart, but the same calls and turns
    bare_shapes = {
        "array of lists": [("d.json", json.dumps(bare))],
        "jsonl lists": [("e.jsonl", "".join(json.dumps(m) + "\n" for m in bare))],
        "one list per file": [(f"f{i}.json", json.dumps(m)) for i, m in enumerate(bare)],
    }
    for shape, files in bare_shapes.items():
        con = sl.connect()
        for name, content in files:
            path = tmp_path / shape.replace(" ", "_") / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(content)
            sl.load(con, path, strict=True)
        calls = con.execute(
            "SELECT tool_name, arguments::VARCHAR, result::VARCHAR FROM tool_calls ORDER BY ALL"
        ).fetchall()
        want = [(n, a, r) for _, _, _, _, n, _, _, _, a, r, _, _ in first["tool_calls"]]
        assert calls == sorted(want), shape


def test_record_ids_times_and_models_are_used(con, tmp_path):
    record = {
        "conversation_id": "conv-42",
        "model": "gpt-4o-mini",
        "user": "caller-7",
        "messages": [
            {"role": "user", "content": "Cancel my booking", "timestamp": "2026-05-01T10:00:00Z"},
            {
                "role": "assistant",
                "content": None,
                "timestamp": "2026-05-01T10:00:02Z",
                "usage": {"prompt_tokens": 120, "completion_tokens": 9},
                "tool_calls": [
                    {"id": "a", "function": {"name": "find_booking", "arguments": "{}"}},
                    {"id": "b", "function": {"name": "cancel", "arguments": '{"id": 1'}},
                ],
            },
            # answered out of order, and one result without a call
            {"role": "tool", "tool_call_id": "b", "content": '{"error": "not found"}'},
            {"role": "tool", "tool_call_id": "a", "content": '{"booking": 1}'},
            {"role": "tool", "tool_call_id": "zz", "name": "audit", "content": "logged"},
            {"role": "assistant", "content": "Done.", "timestamp": "2026-05-01T10:00:09Z"},
        ],
    }
    path = tmp_path / "one.json"
    path.write_text(json.dumps(record))
    sl.load(con, path, strict=True)
    trace = con.execute("SELECT trace_id, session_id, user_id, start_time FROM traces").fetchone()
    assert trace is not None
    assert trace[:3] == ("conv-42", "conv-42", "caller-7")
    assert str(trace[3]) == "2026-05-01 10:00:00"
    gen = con.execute(
        "SELECT model, provider, input_tokens, output_tokens FROM observations "
        "WHERE type = 'GENERATION' ORDER BY start_time LIMIT 1"
    ).fetchone()
    assert gen == ("gpt-4o-mini", "openai", 120, 9)
    calls = con.execute(
        "SELECT seq, tool_name, tool_call_id, arguments::VARCHAR, is_error FROM tool_calls "
        "ORDER BY seq"
    ).fetchall()
    assert calls == [
        (1, "find_booking", "a", "{}", False),
        (2, "cancel", "b", '"{\\"id\\": 1"', True),  # broken JSON arguments kept as text
        (3, "audit", "zz", None, False),
    ]


def test_langfuse_files_are_not_claimed(tmp_path):
    for path in sorted(FRAMEWORK_TRACES.glob("*.json"))[:5]:
        src = _source(path)
        assert detect(src, json.loads(path.read_text())) == "langfuse-trace"
    assert detect(_source(TAU), json.loads(TAU.read_text())) == "chat-transcript"


def _write(tmp_path: Path, name: str, conversations: list[Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(conversations))
    return path


GOOD = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
BAD_CASES = {
    "unknown role": ([{"role": "robot", "content": "x"}], r"messages/0/role: expected one of"),
    "content type": ([{"role": "user", "content": 5}], r"messages/0/content: expected text"),
    "tool_calls type": (
        [{"role": "assistant", "content": None, "tool_calls": "lookup"}],
        r"messages/0/tool_calls: expected a list",
    ),
    "arguments type": (
        [
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 5}}],
            }
        ],
        r"messages/0/tool_calls/0/function/arguments: expected JSON text",
    ),
    "no function name": (
        [{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}],
        r"messages/0/tool_calls/0: the tool call has no function name",
    ),
    "message not an object": (["hello"], r"messages/0: expected a message object"),
    "lone surrogate": ([{"role": "user", "content": "\ud800"}], r"messages/0: lone surrogate"),
    "id type": ({"id": {"x": 1}, "messages": GOOD}, r"id: expected a string id"),
    "bad timestamp": (
        {"timestamp": "yesterday", "messages": GOOD},
        r"timestamp: not a timestamp",
    ),
    "no message list": ({"id": "x", "turns": GOOD}, r"no message list"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_a_bad_conversation_is_rejected_whole(con, tmp_path, case):
    bad, reason = BAD_CASES[case]
    record = bad if isinstance(bad, dict) else {"id": "bad", "messages": GOOD + bad}
    if isinstance(bad, list):  # the bad message follows two good ones
        reason = reason.replace("messages/0", "messages/2")
    path = _write(tmp_path, "c.json", [{"id": "ok", "messages": GOOD}, record])
    sl.load(con, FRAMEWORK_TRACES / "openai-agents-2025-09-30.trace.json")
    before = snapshot(con)
    with pytest.raises(sl.TraceFormatError, match=rf"c\.json, /1: {reason}"):
        sl.load(con, path, strict=True, format="chat-transcript")
    assert snapshot(con) == before
    result = sl.load(con, path, format="chat-transcript")
    assert result.rejected == 1
    assert con.execute("SELECT locator FROM load_errors").fetchall() == [("/1",)]
    ids = con.execute(
        "SELECT trace_id FROM traces WHERE source_format = 'chat-transcript'"
    ).fetchall()
    assert ids == [("ok",)]  # nothing of the bad conversation, all of the good one


def test_hostile_values_never_crash(con, tmp_path):
    huge = "x" * 5_000_000
    lines = [
        json.dumps({"id": "huge", "messages": [{"role": "user", "content": huge}, *GOOD]}),
        '{"id": "deep", "messages": ' + "[" * 5000 + "]" * 5000 + "}",
        json.dumps({"id": "types", "messages": {"role": "user"}}),
        '{"id": "surrogate", "messages": [{"role": "user", "content": "\\udc00"}]}',
        json.dumps(42),
        json.dumps({"id": "fine", "messages": GOOD}),
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps({"id": "first", "messages": GOOD}) + "\n" + "\n".join(lines))
    before = snapshot(con)
    with pytest.raises(sl.TraceFormatError, match=r"hostile\.jsonl, line 3: JSON nested too"):
        sl.load(con, path, strict=True)
    assert snapshot(con) == before
    result = sl.load(con, path)
    errors = con.execute("SELECT locator, error FROM load_errors ORDER BY locator").fetchall()
    assert [loc for loc, _ in errors] == ["line 3", "line 4", "line 5", "line 6"]
    assert "lone surrogate" in errors[2][1]
    assert result.rejected == 4
    kept = con.execute("SELECT trace_id FROM traces ORDER BY 1").fetchall()
    assert kept == [("fine",), ("first",), ("huge",)]
    size = con.execute("SELECT length(input->>'$.content') FROM traces WHERE trace_id = 'huge'")
    assert size.fetchone() == (len(huge),)


messages = st.lists(
    st.one_of(
        st.builds(lambda t: {"role": "user", "content": t}, st.text(min_size=1, max_size=20)),
        st.builds(
            lambda names: {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": None, "function": {"name": n, "arguments": "{}"}} for n in names
                ],
            },
            st.lists(st.sampled_from(["search", "book", "cancel"]), min_size=1, max_size=3),
        ),
        st.just({"role": "tool", "content": "ok"}),
        st.builds(lambda t: {"role": "assistant", "content": t}, st.text(min_size=1, max_size=9)),
    ),
    max_size=12,
)


def _with_orphans(conversation: list[dict[str, Any]]) -> list[str | None]:
    """Calls in order; a result answering no call is a call of its own (no name)."""
    calls: list[str | None] = []
    pending = 0
    for m in conversation:
        if m["role"] == "assistant":
            calls += [c["function"]["name"] for c in m.get("tool_calls") or []]
            pending += len(m.get("tool_calls") or [])
        elif m["role"] == "tool":
            if pending:
                pending -= 1
            else:
                calls.append(None)
    return calls


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations=st.lists(messages, min_size=1, max_size=4))
def test_any_conversation_keeps_its_calls_in_order_and_reloads_as_nothing(conversations):
    con = sl.connect()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in conversations))
        sl.load(con, path, strict=True, format="chat-transcript")
        # identical conversations are one session (their ids are content hashes)
        by_session: dict[str, list[str | None]] = {}
        for session, name in con.execute(
            "SELECT session_id, tool_name FROM tool_calls ORDER BY session_id, seq"
        ).fetchall():
            by_session.setdefault(session, []).append(name)
        distinct = {json.dumps(c): _with_orphans(c) for c in conversations}
        assert sorted(by_session.values(), key=repr) == sorted(
            (v for v in distinct.values() if v), key=repr
        )
        assert sl.load(con, path, format="chat-transcript").written == {
            "traces": 0,
            "observations": 0,
            "scores": 0,
        }
