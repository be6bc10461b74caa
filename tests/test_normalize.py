"""Usage shapes from every provider map to the OTel convention; payload and value quirks."""

from __future__ import annotations

import pytest

from sessionlens.loaders._normalize import (
    decode_json,
    infer_provider,
    normalize_usage,
    parse_timestamp,
    to_int,
)


def _counts(usage):
    u = normalize_usage(usage)
    return (
        u.input_tokens,
        u.output_tokens,
        u.total_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
    )


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # OpenAI chat completions: prompt_tokens already include the cached ones
        (
            {
                "prompt_tokens": 17903,
                "completion_tokens": 300,
                "total_tokens": 18203,
                "prompt_tokens_details": {"cached_tokens": 17817, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 128},
            },
            (17903, 300, 18203, 17817, None, 128),
        ),
        # OpenAI Responses API
        (
            {
                "input_tokens": 900,
                "output_tokens": 50,
                "total_tokens": 950,
                "input_tokens_details": {"cached_tokens": 512},
                "output_tokens_details": {"reasoning_tokens": 20},
            },
            (900, 50, 950, 512, None, 20),
        ),
        # Anthropic: cache reads and writes are reported beside input and added in
        (
            {
                "input_tokens": 12,
                "output_tokens": 80,
                "cache_read_input_tokens": 3000,
                "cache_creation_input_tokens": 400,
            },
            (3412, 80, 3492, 3000, 400, None),
        ),
        # Gemini (camelCase and snake_case): thoughts are not part of candidates
        (
            {
                "promptTokenCount": 1000,
                "candidatesTokenCount": 200,
                "thoughtsTokenCount": 300,
                "cachedContentTokenCount": 600,
                "totalTokenCount": 1500,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}],
            },
            (1000, 500, 1500, 600, None, 300),
        ),
        (
            {"prompt_token_count": 10, "candidates_token_count": 5, "total_token_count": 15},
            (10, 5, 15, None, None, None),
        ),
        # Langfuse: input_* / output_* keys were subtracted and are added back
        (
            {
                "input": 86,
                "input_cached_tokens": 17817,
                "output": 300,
                "output_reasoning_tokens": 128,
                "total": 18331,
            },
            (17903, 428, 18331, 17817, None, 128),
        ),
        (
            {"input": 100, "input_cache_read": 50, "input_cache_creation": 25, "output": 7},
            (175, 7, 182, 50, 25, None),
        ),
        # Langfuse with OpenAI-style detail names that are *not* subtracted
        (
            {
                "input": 85,
                "output": 29,
                "total": 114,
                "prompt_details.cache_read": 0,
                "completion_details.reasoning": 0,
            },
            (85, 29, 114, 0, None, 0),
        ),
        # the deprecated v1 usage object, and nothing at all
        ({"input": 5, "output": 94, "total": 99, "unit": "TOKENS"}, (5, 94, 99, None, None, None)),
        ({}, (None, None, None, None, None, None)),
    ],
    ids=[
        "openai-chat",
        "openai-responses",
        "anthropic",
        "gemini",
        "gemini-snake",
        "langfuse-openai",
        "langfuse-langchain",
        "langfuse-dotted",
        "v1-usage",
        "empty",
    ],
)
def test_usage_shapes(usage, expected):
    assert _counts(usage) == expected


def test_usage_keeps_every_key_as_given():
    usage = {"input": 1, "output": 2, "input_audio": 3}
    assert normalize_usage(usage).details == usage


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "negative count"),
        (1.5, "whole count"),
        (float("nan"), "whole count"),
        ("many", "expected a count"),
        (True, "expected a count"),
        ([1], "expected a count"),
    ],
)
def test_bad_counts_are_rejected(value, message):
    with pytest.raises(ValueError, match=message):
        to_int(value, "usage.input")


def test_usage_must_be_an_object():
    with pytest.raises(ValueError, match="usage: expected an object, got list"):
        normalize_usage([1, 2])


def test_decode_json_undoes_double_encoding_and_leaves_text():
    assert decode_json('"[1, 2]"') == [1, 2]
    assert decode_json("plain words") == "plain words"
    assert decode_json("{not json") == "{not json"
    assert decode_json({"a": 1}) == {"a": 1}


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", [2026], {"t": 1}, -5])
def test_bad_timestamps(value):
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(value)


def test_nanosecond_fractions_are_cut_to_microseconds():
    assert parse_timestamp("2026-09-01T08:00:00.123456789Z").microsecond == 123456


@pytest.mark.parametrize(
    ("model", "metadata", "provider"),
    [
        ("o4-mini", None, "openai"),
        ("gemini-2.5-flash", None, "google"),
        ("mistral-large-latest", None, "mistral"),
        ("gpt-5", {"attributes": {"gen_ai.system": "openai.responses"}}, "openai"),
        ("my-model", {"gen_ai.provider.name": "aws.bedrock"}, "aws"),
        ("my-model", {"attributes": {"gen_ai.system": "az.ai.openai"}}, "azure"),
        ("my-model", None, None),
    ],
)
def test_provider(model, metadata, provider):
    assert infer_provider(model, metadata) == provider
