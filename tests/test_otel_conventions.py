"""Attribute conventions beyond the parity data: deprecated GenAI forms, OpenLLMetry, Langfuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

import sessionlens as sl

from .test_otlp import obs, request, span, write

SESSION = "conv-1"


def test_genai_deprecated_events_and_attributes(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # Before 1.37: gen_ai.system, prompt/completion tokens and one span event per message.
    chat = span(
        "00000000000000a1",
        attrs={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.prompt_tokens": 40,
            "gen_ai.usage.completion_tokens": 9,
            "gen_ai.conversation.id": SESSION,
        },
        events=[
            {"name": "gen_ai.system.message", "attributes": [
                {"key": "content", "value": {"stringValue": "Be brief."}}]},
            {"name": "gen_ai.user.message", "attributes": [
                {"key": "content", "value": {"stringValue": "Book me in"}}]},
            {"name": "gen_ai.choice", "attributes": [{"key": "message", "value": {
                "kvlistValue": {"values": [{"key": "content", "value": {
                    "stringValue": "Which day?"}}]}}}]},
        ],
    )  # fmt: skip
    sl.load(con, write(tmp_path, request(chat)), strict=True)
    row = obs(con, "00000000000000a1")
    assert (row["type"], row["provider"], row["input_tokens"], row["total_tokens"]) == (
        "GENERATION",
        "anthropic",
        40,
        49,
    )
    assert json.loads(row["input"]) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Book me in"},
    ]
    assert json.loads(row["output"]) == {"role": "assistant", "content": "Which day?"}
    turns = con.sql("SELECT role, content FROM conversation_turns ORDER BY seq").fetchall()
    assert turns == [("system", "Be brief."), ("user", "Book me in"), ("assistant", "Which day?")]
    assert con.sql("SELECT session_id, origin FROM sessions").fetchall() == [(SESSION, "source")]


def test_exception_events_mark_the_span_failed(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    failing = span(
        "00000000000000a1",
        attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "book"},
        events=[{"name": "exception", "attributes": [
            {"key": "exception.type", "value": {"stringValue": "TimeoutError"}},
            {"key": "exception.message", "value": {"stringValue": "slot service down"}}]}],
    )  # fmt: skip
    sl.load(con, write(tmp_path, request(failing)), strict=True)
    row = obs(con, "00000000000000a1")
    assert (row["type"], row["level"], row["tool_name"]) == ("TOOL", "ERROR", "book")
    assert row["status_message"] == "TimeoutError: slot service down"
    assert con.sql("SELECT tool_name, is_error FROM tool_calls").fetchall() == [("book", True)]


def test_openllmetry_attributes(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    props = {
        "traceloop.association.properties.session_id": SESSION,
        "traceloop.association.properties.user_id": "u-9",
        "traceloop.association.properties.clinic": "north",
    }
    workflow = span(
        "00000000000000a1",
        attrs={
            **props,
            "traceloop.span.kind": "workflow",
            "traceloop.entity.name": "booking",
            "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"q": "hi"}}),
            "traceloop.entity.output": json.dumps("done"),
        },
    )
    llm = span(
        "00000000000000a2",
        parent="00000000000000a1",
        attrs={
            **props,
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hi",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.finish_reason": "tool_calls",
            "gen_ai.completion.0.tool_calls.0.id": "call_1",
            "gen_ai.completion.0.tool_calls.0.name": "lookup",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"q": "hi"}',
            "gen_ai.usage.prompt_tokens": 12,
            "gen_ai.usage.completion_tokens": 4,
            "llm.usage.total_tokens": 16,
        },
    )
    sl.load(con, write(tmp_path, request(workflow, llm)), strict=True)
    root, gen = obs(con, "00000000000000a1"), obs(con, "00000000000000a2")
    assert root["type"] == "CHAIN"
    assert json.loads(root["input"]) == {"args": [], "kwargs": {"q": "hi"}}
    assert (gen["type"], gen["model"], gen["total_tokens"]) == ("GENERATION", "gpt-4o", 16)
    assert json.loads(gen["input"]) == [{"role": "user", "content": "hi"}]
    output = json.loads(gen["output"])
    assert output["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q": "hi"}'}
    trace = con.sql("SELECT session_id, user_id, name, metadata FROM traces").fetchone()
    assert trace is not None
    assert trace[:3] == (SESSION, "u-9", "span a1")
    assert json.loads(trace[3])["clinic"] == "north"
    calls = con.sql("SELECT tool_name, origin FROM tool_calls").fetchall()
    assert calls == [("lookup", "generation_output")]


def test_langfuse_attributes_fill_the_trace(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    root: dict[str, Any] = {
        "langfuse.trace.name": "eval-run",
        "langfuse.trace.tags": ["nightly", "eval"],
        "langfuse.trace.metadata.dataset": "golden",
        "langfuse.session.id": SESSION,
        "langfuse.user.id": "grader",
        "langfuse.environment": "langfuse-evaluation",
        "langfuse.release": "r7",
        "langfuse.version": "2.0",
        "langfuse.observation.type": "event",
        "langfuse.observation.level": "WARNING",
        "langfuse.observation.status_message": "slow",
        "langfuse.observation.metadata.note": "first",
    }
    generation = {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "gpt-4o-mini",
        "langfuse.observation.usage_details": json.dumps(
            {"input": 10, "input_cache_read": 90, "output": 5}
        ),
        "langfuse.observation.cost_details": json.dumps({"input": 0.1, "output": 0.2}),
        "langfuse.observation.completion_start_time": '"2026-01-01T10:00:01.250Z"',
    }
    doc = request(
        span("00000000000000a1", attrs=root),
        span("00000000000000a2", parent="00000000000000a1", attrs=generation),
    )
    sl.load(con, write(tmp_path, doc), strict=True)
    trace = con.sql(
        "SELECT name, tags, session_id, user_id, environment, release, version, is_internal, "
        "metadata FROM traces"
    ).fetchone()
    assert trace is not None
    assert trace[:8] == (
        "eval-run",
        ["nightly", "eval"],
        SESSION,
        "grader",
        "langfuse-evaluation",
        "r7",
        "2.0",
        True,
    )
    assert json.loads(trace[8])["dataset"] == "golden"
    event, gen = obs(con, "00000000000000a1"), obs(con, "00000000000000a2")
    assert (event["type"], event["level"], event["status_message"]) == ("EVENT", "WARNING", "slow")
    assert json.loads(event["metadata"])["note"] == "first"
    assert "attributes" not in json.loads(event["metadata"])  # trace attributes are mapped
    # Langfuse's usage convention (input excludes cache reads) is turned into the project's.
    assert (gen["input_tokens"], gen["cache_read_tokens"], gen["total_tokens"]) == (100, 90, 105)
    assert abs(gen["reported_cost_usd"] - 0.3) < 1e-12
    assert str(gen["completion_start_time"]) == "2026-01-01 10:00:01.250000"


def test_openinference_text_inputs_stay_text(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    attrs = {
        "openinference.span.kind": "RERANKER",
        "input.value": '{"not": "parsed"}',
        "input.mime_type": "text/plain",
        "output.value": '{"parsed": true}',
        "output.mime_type": "application/json",
        "metadata": json.dumps({"team": "search"}),
        "session.id": SESSION,
    }
    sl.load(con, write(tmp_path, request(span("00000000000000a1", attrs=attrs))), strict=True)
    row = obs(con, "00000000000000a1")
    assert row["type"] == "SPAN"
    assert json.loads(row["input"]) == '{"not": "parsed"}'
    assert json.loads(row["output"]) == {"parsed": True}
    assert json.loads(row["metadata"])["team"] == "search"
