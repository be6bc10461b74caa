"""Shared normalisation: raw source values to canonical column values.

Every loader funnels its records through these functions so that the same quirk is fixed in
one place: JSON payloads that arrive as JSON strings (sometimes encoded twice), timestamps in
ISO-8601, Langfuse's ``YYYY-MM-DD HH:MM:SS.ffffff`` or epoch numbers, usage dictionaries in
Langfuse, OpenAI chat, OpenAI Responses, Anthropic and Gemini shapes, providers guessed from
model names, and the rules that mark a trace as internal (evaluations, experiments).

Timestamps are parsed in ``_time`` (re-exported here as ``parse_timestamp``). The functions
run several times per record, so the common cases take short exact paths (a string that is
plainly not JSON, a ``str`` that is text already, one digest update per row hash).

A function here raises ``ValueError`` with a short reason; the loader adds file and position
and turns it into a ``TraceFormatError`` or a ``load_errors`` row.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._time import parse_timestamp

__all__ = [
    "InternalRules",
    "Usage",
    "camel_to_snake",
    "decode_json",
    "infer_provider",
    "json_text",
    "normalize_usage",
    "parse_timestamp",
    "row_hash",
    "to_float",
    "to_int",
    "to_text",
]

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


@functools.lru_cache(maxsize=4096)
def camel_to_snake(key: str) -> str:
    """``traceId`` -> ``trace_id``; snake_case keys pass through unchanged.

    >>> camel_to_snake("parentObservationId"), camel_to_snake("start_time")
    ('parent_observation_id', 'start_time')
    """
    return _CAMEL.sub(r"_\1", key).lower()


def decode_json(value: Any, *, max_depth: int = 4) -> Any:
    """Decode a value that may be JSON text, possibly encoded more than once.

    Strings that are not JSON stay strings. Exports store payloads as JSON text and some SDKs
    serialise an already-serialised payload again, so decoding repeats while the result is
    still a string that parses as a JSON object, array or string.

    >>> decode_json('"{\\\\"a\\\\": 1}"')
    {'a': 1}
    >>> decode_json("hello")
    'hello'
    """
    for _ in range(max_depth):
        if not isinstance(value, str):
            return value
        # Most text is not JSON: decide from its first character before copying it to strip.
        head = value[:1]
        if not head or (head not in '{["' and not head.isspace()):
            return value
        text = value.strip()
        if not text or text[0] not in '{["':
            return value
        try:
            value = json.loads(text)
        except ValueError:
            return value
    return value


# What ``json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)`` builds on every
# call; made once, since every payload of every record goes through it.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False)


def json_text(value: Any) -> str | None:
    """Serialise a decoded payload as JSON text for a ``JSON`` column (``None`` stays NULL)."""
    if value is None or value == "":
        return None
    return _ENCODER.encode(value)


def to_text(value: Any) -> str | None:
    """A text column value: empty strings become NULL, scalars become strings."""
    if type(value) is str:  # the usual case, answered before the general checks
        return value if value != "" else None
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (dict, list)):
        raise ValueError(f"expected text, got {type(value).__name__}")
    text = str(value)
    return text if text != "" else None


_MAX_COUNT = 2**63 - 1


def to_int(value: Any, what: str) -> int | None:
    """A token count: a non-negative whole number (``3.0`` and ``"3"`` accepted)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a count, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{what}: expected a count, got {value!r}") from None
    if not isinstance(value, (int, float)):
        raise ValueError(f"{what}: expected a count, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{what}: expected a whole count, got {value!r}")
        value = int(value)
    if value < 0:
        raise ValueError(f"{what}: negative count {value}")
    if value > _MAX_COUNT:  # would overflow the BIGINT column and abort the whole file
        raise ValueError(f"{what}: count {value} is too large (over 2**63 - 1)")
    return int(value)


def to_float(value: Any, what: str) -> float | None:
    """A cost in USD: a finite number (strings of numbers accepted)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what}: expected a finite number, got {value!r}")
    return number


@dataclass(frozen=True)
class Usage:
    """Token counts in the OTel GenAI convention (see DESIGN.md).

    ``input_tokens`` includes cache reads and writes; ``reasoning_tokens`` is part of
    ``output_tokens``. ``details`` keeps every key as the source gave it.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _first(flat: Mapping[str, int | None], *keys: str) -> int | None:
    for key in keys:
        if flat.get(key) is not None:
            return flat[key]
    return None


def _add(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def normalize_usage(usage: Any) -> Usage:
    """Map a usage dictionary in any common shape to OTel-convention token counts.

    Shapes recognised, by their distinctive keys:

    - Langfuse (``input``, ``output``, ``input_*``, ``output_*`` details): Langfuse subtracts
      ``input_*`` detail keys from ``input`` and ``output_*`` from ``output``, so every key
      starting with ``input`` is summed back (as Langfuse's own ``inputUsage`` does);
    - OpenAI chat (``prompt_tokens``, ``completion_tokens``, ``*_tokens_details``): prompt
      tokens already include cached ones;
    - OpenAI Responses (``input_tokens`` with ``input_tokens_details``): same;
    - Anthropic (``input_tokens`` beside ``cache_read_input_tokens`` /
      ``cache_creation_input_tokens``): cache tokens are *not* in ``input_tokens``, so added;
    - Gemini (``promptTokenCount``/``prompt_token_count``, ``candidatesTokenCount``,
      ``thoughtsTokenCount``): thoughts are not in candidates, so added to output.

    >>> u = normalize_usage({"input": 100, "input_cache_read": 400, "output": 20,
    ...                      "output_reasoning": 30, "total": 550})
    >>> (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens)
    (500, 400, 50, 30)
    >>> u = normalize_usage({"input_tokens": 10, "cache_read_input_tokens": 90,
    ...                      "cache_creation_input_tokens": 5, "output_tokens": 7})
    >>> (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.total_tokens)
    (105, 90, 5, 112)
    """
    if usage is None or usage == {}:
        return Usage()
    if not isinstance(usage, Mapping):
        raise ValueError(f"usage: expected an object, got {type(usage).__name__}")
    details = _flatten(usage)
    counts: dict[str, int | None] = {}
    for key, value in details.items():
        # Costs, the unit label and per-modality lists (Gemini's promptTokensDetails) are
        # kept in ``details`` but are not counts.
        if key == "unit" or key.lower().endswith("cost") or isinstance(value, list):
            continue
        counts[key] = to_int(value, f"usage.{key}")
    snake = {camel_to_snake(k).replace(".", "_"): v for k, v in counts.items()}

    total = _first(snake, "total", "total_tokens", "total_token_count")
    if "prompt_token_count" in snake or "candidates_token_count" in snake:  # Gemini
        cache_read = _first(snake, "cached_content_token_count")
        reasoning = _first(snake, "thoughts_token_count")
        inp = _add(snake.get("prompt_token_count"), snake.get("tool_use_prompt_token_count"))
        out = _add(snake.get("candidates_token_count"), reasoning)
        cache_write = None
    elif "prompt_tokens" in snake or "completion_tokens" in snake:  # OpenAI chat
        inp = snake.get("prompt_tokens")
        out = snake.get("completion_tokens")
        cache_read = _first(snake, "prompt_tokens_details_cached_tokens")
        cache_write = None
        reasoning = _first(snake, "completion_tokens_details_reasoning_tokens")
    elif "input_tokens" in snake and (
        "cache_read_input_tokens" in snake or "cache_creation_input_tokens" in snake
    ):  # Anthropic
        cache_read = snake.get("cache_read_input_tokens")
        cache_write = snake.get("cache_creation_input_tokens")
        inp = _add(snake.get("input_tokens"), cache_read, cache_write)
        out = snake.get("output_tokens")
        reasoning = None
    elif "input_tokens" in snake or "output_tokens" in snake:  # OpenAI Responses
        inp = snake.get("input_tokens")
        out = snake.get("output_tokens")
        cache_read = _first(snake, "input_tokens_details_cached_tokens")
        cache_write = None
        reasoning = _first(snake, "output_tokens_details_reasoning_tokens")
    else:  # Langfuse usage_details
        inp = _add(*(v for k, v in counts.items() if k.startswith("input")))
        out = _add(*(v for k, v in counts.items() if k.startswith("output")))
        cache_read = _first(
            snake,
            "input_cache_read",
            "input_cached_tokens",
            "input_cache_read_tokens",
            "prompt_details_cache_read",
            "prompt_details_cached_tokens",
        )
        cache_write = _first(
            snake,
            "input_cache_creation",
            "input_cache_write",
            "input_cache_creation_tokens",
            "prompt_details_cache_creation",
            "prompt_details_cache_write",
        )
        reasoning = _first(
            snake,
            "output_reasoning",
            "output_reasoning_tokens",
            "completion_details_reasoning",
            "completion_details_reasoning_tokens",
        )
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    return Usage(inp, out, total, cache_read, cache_write, reasoning, details)


_PROVIDERS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"(^|/)(gpt-|o\d(-|$)|chatgpt|text-embedding|davinci|babbage|whisper|tts-)"),
        "openai",
    ),
    (re.compile(r"claude"), "anthropic"),
    (re.compile(r"gemini|gemma|palm|bison"), "google"),
    (re.compile(r"mistral|mixtral|codestral|magistral|pixtral"), "mistral"),
    (re.compile(r"command-r|command-a|^command"), "cohere"),
    (re.compile(r"llama"), "meta"),
    (re.compile(r"deepseek"), "deepseek"),
    (re.compile(r"grok"), "xai"),
    (re.compile(r"qwen"), "alibaba"),
]
_SYSTEM_PREFIXES = {
    "az": "azure",
    "azure": "azure",
    "gcp": "google",
    "google-gla": "google",
    "google-vertex": "google",
    "vertex_ai": "google",
    "aws": "aws",
    "mistral_ai": "mistral",
}


def infer_provider(model: str | None, metadata: Any = None) -> str | None:
    """Provider of a model call: ``gen_ai.provider.name`` if set, else from the model name,
    else from the older ``gen_ai.system`` / ``llm.provider`` attributes.

    The model name wins over ``gen_ai.system`` because frameworks put their own name there
    (``openai.responses``, ``gcp.vertex.agent``, ``microsoft.agent_framework``).

    >>> infer_provider("claude-sonnet-4-5-20250929"), infer_provider("gpt-4.1")
    ('anthropic', 'openai')
    >>> infer_provider("my-finetune", {"attributes": {"gen_ai.system": "gcp.vertex_ai"}})
    'google'
    """
    attrs: Mapping[str, Any] = {}
    if isinstance(metadata, Mapping):
        nested = metadata.get("attributes")
        attrs = {**metadata, **nested} if isinstance(nested, Mapping) else metadata
    named = attrs.get("gen_ai.provider.name")
    if isinstance(named, str) and named:
        return _system_to_provider(named)
    if model:
        lowered = model.lower()
        for pattern, provider in _PROVIDERS:
            if pattern.search(lowered):
                return provider
    for key in ("gen_ai.system", "llm.provider", "llm.system"):
        named = attrs.get(key)
        if isinstance(named, str) and named and named != "langchain":
            return _system_to_provider(named)
    return None


def _system_to_provider(name: str) -> str:
    lowered = name.lower()
    if lowered in _SYSTEM_PREFIXES:
        return _SYSTEM_PREFIXES[lowered]
    head = re.split(r"[._]", lowered, maxsplit=1)[0]
    return _SYSTEM_PREFIXES.get(head, head)


@dataclass(frozen=True)
class InternalRules:
    """Which traces are internal (evaluations, experiments, simulators) and kept out of analyses.

    Langfuse's own environments (``langfuse-*``, such as ``langfuse-evaluation`` and
    ``langfuse-prompt-experiment``) and ``sdk-experiment`` are always internal. Add your own:

    >>> rules = InternalRules(names=("user-simulator",), tags=("eval",),
    ...                       metadata={"purpose": "test"})
    >>> rules.matches(environment="production", name="user-simulator", tags=[], metadata={})
    True
    >>> rules.matches(environment="langfuse-evaluation", name="x", tags=[], metadata={})
    True
    """

    environments: tuple[str, ...] = ("sdk-experiment",)
    environment_prefixes: tuple[str, ...] = ("langfuse-",)
    names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def matches(
        self, *, environment: str | None, name: str | None, tags: Iterable[str], metadata: Any
    ) -> bool:
        """Whether a trace with these fields is internal."""
        if environment and (
            environment in self.environments or environment.startswith(self.environment_prefixes)
        ):
            return True
        if name and name in self.names:
            return True
        if self.tags and set(self.tags) & set(tags):
            return True
        if self.metadata and isinstance(metadata, Mapping):
            return any(
                str(metadata.get(k)) == str(v) for k, v in self.metadata.items() if k in metadata
            )
        return False


def row_hash(values: Iterable[Any]) -> str:
    """A stable fingerprint of a canonical row's content (used to skip unchanged re-loads).

    The BLAKE2b-128 of each value's ``repr`` followed by ``\\x1f``, in UTF-8. It is stored
    in the tables, so its bytes must never change; one ``join`` and one ``update`` give the
    same digest as feeding the pieces one by one (UTF-8 encodes code point by code point).

    >>> row_hash(["a", 1, None])
    'c18b5807dee47d64d0c034b7b4f7c60d'
    """
    text = "\x1f".join(map(repr, values))
    # ``repr`` is never empty: an empty ``text`` means no values, whose digest covers nothing.
    data = (text + "\x1f").encode("utf-8", "surrogatepass") if text else b""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
