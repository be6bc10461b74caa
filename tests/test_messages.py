"""Tests for sessionlens.analysis.messages: one test per payload shape, plus odd inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sessionlens.analysis.messages import (
    Message,
    ToolCallRef,
    decode_json_value,
    extract_messages,
)


def roles(messages: list[Message]) -> list[str]:
    return [m.role for m in messages]


# --- plain values --------------------------------------------------------------------------


def test_plain_string_uses_default_role() -> None:
    assert extract_messages("hi") == [Message("user", "hi")]
    assert extract_messages("done", default_role="assistant") == [Message("assistant", "done")]


@pytest.mark.parametrize("payload", [None, "", "   ", 42, 3.5, True, {}, [], {"foo": {"bar": 1}}])
def test_unknown_or_empty_shapes_give_no_messages(payload: Any) -> None:
    assert extract_messages(payload) == []


def test_garbage_never_raises() -> None:
    weird: list[Any] = [
        {"choices": [None]},
        {"candidates": ["x"]},
        {"role": 5, "content": {"a": [1, 2]}},
        {"messages": [None, 1, {"role": "user", "content": [None, 3, {"type": "text"}]}]},
        {"type": "function_call"},
        {"lc": 1, "kwargs": {}, "id": None},
        "role='user' content=<broken name=None",
        [[["deep"]]],
    ]
    for payload in weird:
        assert isinstance(extract_messages(payload), list)


def test_json_text_is_decoded_even_when_double_encoded() -> None:
    inner = json.dumps([{"role": "user", "content": "hello"}])
    assert extract_messages(json.dumps(inner)) == [Message("user", "hello")]
    assert decode_json_value(json.dumps(inner)) == [{"role": "user", "content": "hello"}]
    assert decode_json_value("42") == "42"
    assert decode_json_value("{not json") == "{not json"


def test_flattened_role_transcript_string() -> None:
    text = "system: Be brief.\nuser: Say hi\nassistant: None"
    assert extract_messages(text) == [Message("system", "Be brief."), Message("user", "Say hi")]


# --- OpenAI chat completions ----------------------------------------------------------------

WEATHER_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Berlin"}'},
}


def test_openai_chat_list_with_tool_calls_and_tool_result() -> None:
    payload = [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
    ]
    got = extract_messages(payload)
    assert roles(got) == ["system", "user", "assistant", "tool"]
    assert got[1].content == "Weather?"
    assert got[2].tool_calls == (ToolCallRef("call_1", "get_weather", '{"city":"Berlin"}'),)
    assert got[2].content is None
    assert got[3] == Message("tool", "Sunny", (), "call_1")


def test_openai_messages_wrapper_and_output_message() -> None:
    wrapped = {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}
    assert extract_messages(wrapped) == [Message("user", "hi")]
    out = {"role": "assistant", "content": "hello"}
    assert extract_messages(out, default_role="assistant") == [Message("assistant", "hello")]


def test_openai_chat_completion_response() -> None:
    response = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [WEATHER_CALL]}}],
    }
    (msg,) = extract_messages(response, default_role="assistant")
    assert msg.role == "assistant"
    assert msg.tool_calls[0].name == "get_weather"


def test_single_choice_object() -> None:
    choice = {"index": 0, "message": {"role": "assistant", "content": "ok"}}
    assert extract_messages(choice, default_role="assistant") == [Message("assistant", "ok")]


def test_legacy_function_call() -> None:
    msg = {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}
    assert extract_messages(msg)[0].tool_calls == (ToolCallRef(None, "f", "{}"),)


# --- OpenAI Responses API -------------------------------------------------------------------


def test_responses_input_items() -> None:
    payload = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Tokyo?"}]},
        {
            "type": "function_call",
            "call_id": "call_K",
            "name": "get_weather",
            "arguments": '{"city":"Tokyo"}',
            "id": "fc_1",
        },
        {"type": "function_call_output", "call_id": "call_K", "output": "Sunny"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "It is sunny."}],
        },
    ]
    got = extract_messages(payload)
    assert roles(got) == ["user", "assistant", "tool", "assistant"]
    assert got[0].content == "Weather in Tokyo?"
    assert got[1].tool_calls == (ToolCallRef("call_K", "get_weather", '{"city":"Tokyo"}'),)
    assert got[2] == Message("tool", "Sunny", (), "call_K")
    assert got[3].content == "It is sunny."


def test_responses_response_object_and_request() -> None:
    response = {
        "object": "response",
        "instructions": "You are helpful.",
        "output": [
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ],
    }
    got = extract_messages(response, default_role="assistant")
    assert got == [Message("assistant", None, (ToolCallRef("c1", "f", "{}"),))]
    request = {"instructions": "Be brief.", "input": "Hello"}
    assert extract_messages(request) == [Message("system", "Be brief."), Message("user", "Hello")]


# --- Anthropic ------------------------------------------------------------------------------


def test_anthropic_request_with_tool_use_and_tool_result() -> None:
    payload = {
        "system": [{"type": "text", "text": "Be kind."}],
        "messages": [
            {"role": "user", "content": "Weather in Berlin?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"c": "B"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "Cloudy"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    }
    got = extract_messages(payload)
    assert roles(got) == ["system", "user", "assistant", "tool", "user"]
    assert got[0].content == "Be kind."
    assert got[2].content == "Let me check."
    assert got[2].tool_calls == (ToolCallRef("toolu_1", "weather", '{"c": "B"}'),)
    assert got[3] == Message("tool", "Cloudy", (), "toolu_1")
    assert got[4].content == "Thanks"


def test_anthropic_output_and_thinking_is_skipped() -> None:
    out = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Hi"}],
    }
    assert extract_messages(out, default_role="assistant") == [Message("assistant", "Hi")]


def test_content_blocks_without_role() -> None:
    out = {"content": [{"type": "text", "text": "Weather in Berlin: Cloudy"}]}
    assert extract_messages(out, default_role="assistant") == [
        Message("assistant", "Weather in Berlin: Cloudy")
    ]


# --- Gemini ---------------------------------------------------------------------------------


def test_gemini_request_camel_case() -> None:
    payload = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "hello", "args": {"n": 1}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "hello", "response": {"g": "hey"}}}],
            },
        ],
    }
    got = extract_messages(payload)
    assert roles(got) == ["system", "user", "assistant", "tool"]
    assert got[2].tool_calls == (ToolCallRef(None, "hello", '{"n": 1}'),)
    assert got[3] == Message("tool", '{"g": "hey"}', (), None, "hello")


def test_gemini_python_sdk_snake_case_and_string_contents() -> None:
    payload = {
        "config": {"system_instruction": "Greet."},
        "contents": [{"role": "model", "parts": [{"function_call": {"name": "f", "args": {}}}]}],
    }
    got = extract_messages(payload)
    assert got[0] == Message("system", "Greet.")
    assert got[1].tool_calls == (ToolCallRef(None, "f", "{}"),)
    assert extract_messages({"model": "gemini", "contents": "What?"}) == [Message("user", "What?")]


def test_gemini_response_candidates_and_adk_event() -> None:
    response = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "thinking", "thought": True}]}},
        ]
    }
    assert extract_messages(response, default_role="assistant") == []
    response["candidates"][0]["content"]["parts"].append({"text": "Answer"})
    assert extract_messages(response, default_role="assistant") == [Message("assistant", "Answer")]
    adk = {"content": {"parts": [{"text": "Hello"}], "role": "model"}, "author": "agent"}
    assert extract_messages(adk, default_role="assistant") == [Message("assistant", "Hello")]


# --- other frameworks -----------------------------------------------------------------------


def test_otel_genai_parts() -> None:
    payload = [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}}],
        },
        {
            "role": "user",
            "parts": [
                {"type": "tool_call_response", "id": "c1", "name": "f", "result": "ok"},
                {"type": "tool_call_response", "id": "c2", "name": "g", "response": "fine"},
            ],
        },
    ]
    got = extract_messages(payload)
    assert roles(got) == ["system", "assistant", "tool", "tool"]
    assert got[1].tool_calls == (ToolCallRef("c1", "f", '{"a": 1}'),)
    assert got[2] == Message("tool", "ok", (), "c1", "f")
    assert got[3].content == "fine"


def test_vercel_ai_sdk_tool_calls() -> None:
    out = [{"toolCallId": "call_D", "toolName": "getWeather", "input": '{"location":"SF"}'}]
    got = extract_messages(out, default_role="assistant")
    assert got == [
        Message("assistant", None, (ToolCallRef("call_D", "getWeather", out[0]["input"]),))
    ]
    prompt = {"system": "Be brief.", "prompt": "Weather?"}
    assert roles(extract_messages(prompt)) == ["system", "user"]


def test_langchain_dicts_and_serialised_messages() -> None:
    payload = {
        "messages": [
            {"type": "human", "content": "Search"},
            {
                "type": "ai",
                "content": "",
                "additional_kwargs": {"tool_calls": [WEATHER_CALL]},
                "tool_calls": [{"name": "get_weather", "args": {"city": "Berlin"}, "id": "call_1"}],
            },
            {
                "lc": 1,
                "type": "constructor",
                "id": ["langchain_core", "messages", "ToolMessage"],
                "kwargs": {"content": "Sunny", "tool_call_id": "call_1", "name": "get_weather"},
            },
        ]
    }
    got = extract_messages(payload)
    assert roles(got) == ["user", "assistant", "tool"]
    assert [c.id for c in got[1].tool_calls] == ["call_1"]  # the two copies collapse
    assert got[2] == Message("tool", "Sunny", (), "call_1", "get_weather")


def test_tool_result_with_tool_name_as_role_and_tool_schema_message() -> None:
    payload = [
        {"role": "get_weather", "content": "Sunny"},
        {
            "role": "tool",
            "content": {"type": "function", "function": {"name": "f", "parameters": {}}},
        },
    ]
    assert extract_messages(payload) == [Message("tool", "Sunny", (), None, "get_weather")]


def test_koog_tool_calls_as_json_content() -> None:
    content = json.dumps([{"function": {"name": "Hello", "arguments": "{}"}, "id": "c1"}])
    got = extract_messages([{"role": "assistant", "content": content}])
    assert got == [Message("assistant", None, (ToolCallRef("c1", "Hello", "{}"),))]


def test_agno_message_repr() -> None:
    text = (
        "role='assistant' content=None name=None tool_call_id=None tool_calls=[{'id': 'c1', "
        "'function': {'arguments': '{\"q\":\"x\"}', 'name': 'search'}, 'type': 'function'}] "
        "audio=None images=None"
    )
    got = extract_messages({"messages": ["role='user' content='Hi there' name=None x=1", text]})
    assert got[0] == Message("user", "Hi there")
    assert got[1].tool_calls == (ToolCallRef("c1", "search", '{"q":"x"}'),)


def test_llamaindex_args() -> None:
    assert extract_messages({"args": ["What is it?"]}) == [Message("user", "What is it?")]
