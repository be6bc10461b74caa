"""Tests for the derived tables: tool_calls (analysis.tools) and conversation_turns
(analysis.transcript), on an in-memory database filled with canonical rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sessionlens.analysis.tools import rebuild_tool_calls
from sessionlens.analysis.transcript import rebuild_conversation_turns
from sessionlens.store import connect

DATA = Path("/work/shared/data/langfuse-framework-traces")
T0 = datetime(2025, 1, 1, 12, 0, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect()
    yield connection
    connection.close()


def add_trace(
    con: duckdb.DuckDBPyConnection,
    trace_id: str,
    session_id: str | None,
    *,
    start: datetime = T0,
    input: Any = None,
    output: Any = None,
    is_internal: bool = False,
) -> None:
    con.execute(
        "INSERT INTO traces (trace_id, session_id, start_time, end_time, input, output, "
        "is_internal) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [trace_id, session_id, start, start, _json(input), _json(output), is_internal],
    )


def add_obs(
    con: duckdb.DuckDBPyConnection,
    observation_id: str,
    trace_id: str,
    type: str,
    *,
    name: str | None = None,
    start: datetime = T0,
    end: datetime | None = None,
    input: Any = None,
    output: Any = None,
    level: str = "DEFAULT",
    tool_name: str | None = None,
    tool_call_id: str | None = None,
    tool_arguments: Any = None,
) -> None:
    con.execute(
        "INSERT INTO observations (observation_id, trace_id, type, name, start_time, end_time, "
        "level, input, output, tool_name, tool_call_id, tool_arguments) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            observation_id,
            trace_id,
            type,
            name,
            start,
            end or start,
            level,
            _json(input),
            _json(output),
            tool_name,
            tool_call_id,
            _json(tool_arguments),
        ],
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def tool_rows(con: duckdb.DuckDBPyConnection, session_id: str | None = None) -> list[tuple]:
    sql = (
        "SELECT session_id, seq, tool_name, tool_call_id, origin, observation_id "
        "FROM tool_calls WHERE ? IS NULL OR session_id = ? ORDER BY session_id, seq"
    )
    return con.execute(sql, [session_id, session_id]).fetchall()


def turns(con: duckdb.DuckDBPyConnection, session_id: str) -> list[tuple[str, str]]:
    return [
        (role, content)
        for role, content in con.execute(
            "SELECT role, content FROM conversation_turns WHERE session_id = ? ORDER BY seq",
            [session_id],
        ).fetchall()
    ]


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- tool_calls -----------------------------------------------------------------------------


def test_call_seen_as_tool_and_in_generation_output_counts_once(
    con: duckdb.DuckDBPyConnection,
) -> None:
    add_trace(con, "t1", "s1")
    out = {"role": "assistant", "tool_calls": [call("c1", "get_weather", '{"city":"Berlin"}')]}
    add_obs(con, "g1", "t1", "GENERATION", start=at(0), end=at(1), input="Hi", output=out)
    add_obs(
        con,
        "x1",
        "t1",
        "TOOL",
        name="get_weather",
        start=at(2),
        end=at(3),
        tool_call_id="c1",
        input={"city": "Berlin"},
        output="Sunny",
    )
    assert rebuild_tool_calls(con) == 1
    row = con.execute(
        "SELECT tool_name, tool_call_id, arguments, result, is_error, origin FROM tool_calls"
    ).fetchone()
    assert row is not None
    assert row[:2] == ("get_weather", "c1")
    assert json.loads(row[2]) == {"city": "Berlin"}
    assert json.loads(row[3]) == "Sunny"
    assert row[4:] == (False, "tool_observation")


def test_generation_only_call_gets_result_from_later_tool_message(
    con: duckdb.DuckDBPyConnection,
) -> None:
    add_trace(con, "t1", "s1")
    first_out = {"role": "assistant", "tool_calls": [call("c1", "lookup", "{not json")]}
    add_obs(con, "g1", "t1", "GENERATION", start=at(0), end=at(1), input="Q", output=first_out)
    later_in = [
        {"role": "user", "content": "Q"},
        first_out,
        {"role": "tool", "tool_call_id": "c1", "content": '{"found": true}'},
    ]
    add_obs(con, "g2", "t1", "GENERATION", start=at(2), end=at(3), input=later_in, output="A")
    assert rebuild_tool_calls(con) == 1
    row = con.execute(
        "SELECT tool_name, start_time, end_time, arguments, result, origin FROM tool_calls"
    ).fetchone()
    assert row is not None
    assert row[0] == "lookup"
    assert row[1] == at(1)  # the generation's end
    assert row[2] is None
    assert json.loads(row[3]) == "{not json"  # broken JSON is kept as a JSON string
    assert json.loads(row[4]) == {"found": True}
    assert row[5] == "generation_output"


def test_tool_without_call_id_matches_generation_call_by_name(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # Claude agent SDK: TOOL spans carry no call id, generations name the calls.
    add_trace(con, "t1", "s1")
    for i, city in enumerate(["Berlin", "Paris"]):
        block = {"type": "tool_use", "id": f"toolu_{i}", "name": "weather", "input": {"c": city}}
        out = {"role": "assistant", "content": [block]}
        add_obs(con, f"g{i}", "t1", "GENERATION", start=at(i), end=at(i + 0.5), output=out)
    for i in range(2):
        add_obs(con, f"x{i}", "t1", "TOOL", name="weather", start=at(5 + i), input={"c": i})
    assert rebuild_tool_calls(con) == 2
    assert [r[4] for r in tool_rows(con)] == ["tool_observation", "tool_observation"]
    assert [r[3] for r in tool_rows(con)] == ["toolu_0", "toolu_1"]  # borrowed from the request


def test_tool_name_fallback_error_level_and_seq_order(con: duckdb.DuckDBPyConnection) -> None:
    add_trace(con, "t1", "s1", start=at(0))
    add_trace(con, "t2", "s1", start=at(10))
    add_obs(con, "b", "t2", "TOOL", name="running tool: search", start=at(11), level="ERROR")
    add_obs(con, "z", "t1", "TOOL", name="execute_tool fetch", start=at(1))
    add_obs(con, "a", "t1", "TOOL", name="n", tool_name="fetch", start=at(1), tool_arguments=[1])
    add_obs(con, "s", "t1", "SPAN", name="not a tool", start=at(0))
    assert rebuild_tool_calls(con) == 3
    assert [(r[1], r[2], r[5]) for r in tool_rows(con)] == [
        (1, "fetch", "a"),  # same start time: observation_id breaks the tie
        (2, "fetch", "z"),
        (3, "search", "b"),
    ]
    errors = con.execute("SELECT observation_id FROM tool_calls WHERE is_error").fetchall()
    assert errors == [("b",)]
    args = con.execute("SELECT arguments FROM tool_calls WHERE observation_id = 'a'").fetchone()
    assert args is not None and json.loads(args[0]) == [1]


def test_nested_generations_repeating_a_call_count_once(con: duckdb.DuckDBPyConnection) -> None:
    # Vercel AI SDK: ai.generateText wraps ai.generateText.doGenerate with the same output.
    add_trace(con, "t1", "s1")
    out = [{"toolCallId": "c9", "toolName": "getWeather", "input": '{"location":"SF"}'}]
    add_obs(con, "outer", "t1", "GENERATION", start=at(0), end=at(3), output=out)
    add_obs(con, "inner", "t1", "GENERATION", start=at(1), end=at(2), output=out)
    assert rebuild_tool_calls(con) == 1


def test_tool_calls_session_scoping_and_internal_traces(con: duckdb.DuckDBPyConnection) -> None:
    add_trace(con, "t1", "s1")
    add_trace(con, "t2", "s2")
    add_trace(con, "t3", "s3", is_internal=True)
    for trace in ("t1", "t2", "t3"):
        add_obs(con, f"x-{trace}", trace, "TOOL", name="f")
    assert rebuild_tool_calls(con) == 2
    assert {r[0] for r in tool_rows(con)} == {"s1", "s2"}

    add_obs(con, "x-t1b", "t1", "TOOL", name="g", start=at(5))
    con.execute("UPDATE tool_calls SET tool_name = 'kept' WHERE session_id = 's2'")
    assert rebuild_tool_calls(con, session_ids=["s1"]) == 2
    assert [r[2] for r in tool_rows(con, "s1")] == ["f", "g"]
    assert [r[2] for r in tool_rows(con, "s2")] == ["kept"]
    assert rebuild_tool_calls(con, session_ids=[]) == 0
    assert len(tool_rows(con)) == 3


def test_rebuild_inside_callers_transaction(con: duckdb.DuckDBPyConnection) -> None:
    add_trace(con, "t1", "s1", input="Hi", output="Hello")
    add_obs(con, "x", "t1", "TOOL", name="f")
    con.begin()
    assert rebuild_tool_calls(con) == 1
    assert rebuild_conversation_turns(con) == 2
    con.rollback()
    assert tool_rows(con) == []
    assert rebuild_tool_calls(con) == rebuild_tool_calls(con) == 1  # idempotent


# --- conversation_turns ---------------------------------------------------------------------


def test_history_resent_by_each_generation_is_not_repeated(
    con: duckdb.DuckDBPyConnection,
) -> None:
    add_trace(con, "t1", "s1")
    system = {"role": "system", "content": "Be brief."}
    user1 = {"role": "user", "content": "Weather in Berlin?"}
    ask = {"role": "assistant", "content": None, "tool_calls": [call("c1", "w", '{"c":"B"}')]}
    result = {"role": "tool", "tool_call_id": "c1", "content": "Cloudy"}
    answer = {"role": "assistant", "content": "Cloudy in Berlin."}
    user2 = {"role": "user", "content": "Thanks!"}
    # The echoed call comes back re-serialised; it must still count as already said.
    echoed = {**ask, "tool_calls": [call("c1", "w", '{"c": "B"}')]}
    generations = [
        ([system, user1], ask),
        ([system, user1, echoed, result], answer),
        ([system, user1, echoed, result, answer, user2], {"role": "assistant", "content": "Bye"}),
    ]
    for i, (inp, out) in enumerate(generations):
        add_obs(con, f"g{i}", "t1", "GENERATION", start=at(10 * i), end=at(10 * i + 5), input=inp)
        con.execute(
            "UPDATE observations SET output = ? WHERE observation_id = ?", [_json(out), f"g{i}"]
        )
    assert rebuild_conversation_turns(con) == 7
    assert turns(con, "s1") == [
        ("system", "Be brief."),
        ("user", "Weather in Berlin?"),
        ("assistant", 'w({"c":"B"})'),
        ("tool", "Cloudy"),
        ("assistant", "Cloudy in Berlin."),
        ("user", "Thanks!"),
        ("assistant", "Bye"),
    ]
    rows = con.execute(
        "SELECT seq, observation_id, timestamp FROM conversation_turns ORDER BY seq"
    ).fetchall()
    assert [r[0] for r in rows] == list(range(1, 8))
    assert rows[1][1:] == ("g0", at(0))  # input: generation start
    assert rows[2][1:] == ("g0", at(5))  # output: generation end
    assert rows[3][1:] == ("g1", at(10))


def test_message_genuinely_repeated_is_kept(con: duckdb.DuckDBPyConnection) -> None:
    add_trace(con, "t1", "s1")
    yes, ok = {"role": "user", "content": "yes"}, {"role": "assistant", "content": "ok"}
    add_obs(con, "g0", "t1", "GENERATION", start=at(0), input=[yes], output=ok)
    add_obs(con, "g1", "t1", "GENERATION", start=at(1), input=[yes, ok, yes], output=ok)
    rebuild_conversation_turns(con)
    assert turns(con, "s1") == [
        ("user", "yes"),
        ("assistant", "ok"),
        ("user", "yes"),
        ("assistant", "ok"),
    ]


def test_trace_io_fallback_scoping_and_internal(con: duckdb.DuckDBPyConnection) -> None:
    add_trace(
        con, "t1", "s1", input="Book a table", output={"role": "assistant", "content": "Done"}
    )
    add_trace(con, "t2", "s2", input="Hi", output="Hello")
    add_trace(con, "t3", "s3", input="secret", output="internal", is_internal=True)
    assert rebuild_conversation_turns(con) == 4
    assert turns(con, "s1") == [("user", "Book a table"), ("assistant", "Done")]
    assert turns(con, "s3") == []

    add_trace(con, "t4", "s1", start=at(60), input="Cancel it", output="Cancelled")
    con.execute("UPDATE conversation_turns SET content = 'kept' WHERE session_id = 's2'")
    assert rebuild_conversation_turns(con, session_ids=["s1"]) == 4
    assert [c for _, c in turns(con, "s1")] == ["Book a table", "Done", "Cancel it", "Cancelled"]
    assert turns(con, "s2") == [("user", "kept"), ("assistant", "kept")]


# --- real payloads --------------------------------------------------------------------------


def _ts(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def _stored(value: Any) -> str | None:
    """Store a payload as the loader does: decoded JSON, re-encoded once."""
    while isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            break
    return None if value is None else json.dumps(value)


def load_langfuse_file(con: duckdb.DuckDBPyConnection, name: str, session_id: str) -> None:
    data = json.loads((DATA / name).read_text())
    trace = data["trace"]
    con.execute(
        "INSERT INTO traces (trace_id, session_id, name, start_time, input, output) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            trace["id"],
            session_id,
            trace["name"],
            _ts(trace["timestamp"]),
            _stored(trace.get("input")),
            _stored(trace.get("output")),
        ],
    )
    for obs in data["observations"]:
        con.execute(
            "INSERT INTO observations (observation_id, trace_id, parent_observation_id, type, "
            "name, start_time, end_time, level, input, output) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                obs["id"],
                obs["traceId"],
                obs["parentObservationId"],
                obs["type"],
                obs["name"],
                _ts(obs["startTime"]),
                _ts(obs["endTime"]),
                obs["level"],
                _stored(obs.get("input")),
                _stored(obs.get("output")),
            ],
        )


@pytest.mark.skipif(not DATA.is_dir(), reason="shared trace samples not available")
def test_real_claude_agent_and_openai_agents_traces(con: duckdb.DuckDBPyConnection) -> None:
    load_langfuse_file(con, "claude-agent-2025-12-22.trace.json", "claude")
    load_langfuse_file(con, "openai-agents-2025-09-30.trace.json", "openai")
    assert rebuild_tool_calls(con) == 3

    claude = tool_rows(con, "claude")
    assert all(r[3].startswith("toolu_") for r in claude)
    assert [(r[1], r[2], r[4]) for r in claude] == [
        (1, "mcp__weather__get_weather", "tool_observation"),
        (2, "mcp__weather__get_weather", "tool_observation"),
    ]
    openai = con.execute(
        "SELECT tool_name, arguments, result, origin FROM tool_calls WHERE session_id = 'openai'"
    ).fetchall()
    assert len(openai) == 1
    assert openai[0][0] == "get_weather"
    assert json.loads(openai[0][1]) == {"city": "Tokyo"}
    assert json.loads(openai[0][2]) == "The weather in Tokyo is sunny."
    assert openai[0][3] == "tool_observation"

    assert rebuild_conversation_turns(con) > 0
    claude_turns = turns(con, "claude")
    assert claude_turns[0] == ("user", "What's the weather like in Berlin and New York?")
    assert sum(c.startswith("mcp__weather__get_weather(") for _, c in claude_turns) == 2
    assert claude_turns[-1][0] == "assistant"
    assert claude_turns[-1][1].startswith("Great! Here's the current weather")

    openai_turns = turns(con, "openai")
    assert openai_turns == [
        ("user", "What's the weather in Tokyo?"),
        ("assistant", 'get_weather({"city":"Tokyo"})'),
        ("tool", "The weather in Tokyo is sunny."),
        (
            "assistant",
            "The weather in Tokyo is currently sunny. If you need more details like temperature "
            "or forecast for the upcoming days, just let me know!",
        ),
    ]
