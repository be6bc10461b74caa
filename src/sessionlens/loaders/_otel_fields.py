"""Attribute access and the table-like conventions: observation type, tokens, cost, parameters.

This module owns the parts of the OTel attribute conventions that are lookups in a table:
which attribute declares the observation type (``langfuse.observation.type``, then
OpenInference's ``openinference.span.kind``, GenAI's ``gen_ai.operation.name``, OpenLLMetry's
``traceloop.span.kind`` / ``llm.request.type``), which ones carry token counts (GenAI
``gen_ai.usage.*`` current and deprecated names, OpenInference ``llm.token_count.*``,
Langfuse ``langfuse.observation.usage_details``), cost (``llm.cost.*``,
``langfuse.observation.cost_details``) and model parameters. :class:`Attrs` records which
attributes a mapping read, so the rest can be kept in metadata. ``_otel_attrs`` builds the row.

Token counts follow the project convention (OTel GenAI): input includes cache reads and
writes, output includes reasoning. GenAI and OpenInference already count that way; Langfuse's
own usage details are converted by ``normalize_usage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._normalize import decode_json, normalize_usage, to_float, to_int
from .langfuse import OBSERVATION_TYPES

__all__ = [
    "LLM_TYPES",
    "TRACE_KEYS",
    "TRACE_PREFIXES",
    "Attrs",
    "cost",
    "has_usage",
    "json_value",
    "mapping",
    "model_parameters",
    "observation_type",
    "tokens",
]

LLM_TYPES = frozenset({"GENERATION", "EMBEDDING"})
_OPENINFERENCE_KINDS = {
    "LLM": "GENERATION",
    "EMBEDDING": "EMBEDDING",
    "TOOL": "TOOL",
    "AGENT": "AGENT",
    "CHAIN": "CHAIN",
    "RETRIEVER": "RETRIEVER",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
}
_GENAI_OPERATIONS = {
    "chat": "GENERATION",
    "text_completion": "GENERATION",
    "generate_content": "GENERATION",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "invoke_workflow": "CHAIN",
    "retrieval": "RETRIEVER",
}
_TRACELOOP_KINDS = {"workflow": "CHAIN", "task": "SPAN", "agent": "AGENT", "tool": "TOOL"}
_LLM_REQUEST_TYPES = {"chat": "GENERATION", "completion": "GENERATION", "embedding": "EMBEDDING"}
_USAGE_PREFIXES = ("gen_ai.usage.", "llm.token_count.", "llm.usage.")
_TOKEN_KEYS = {
    "input": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "total": ("gen_ai.usage.total_tokens", "llm.token_count.total", "llm.usage.total_tokens"),
    "cache_read": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "cache_write": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
}
_REQUEST_PARAMS = (
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "stop_sequences",
    "choice.count",
)
#: Attributes that describe the trace, not the span: read by ``_otel_spans`` for the trace row.
TRACE_KEYS = frozenset(
    [
        "langfuse.trace.name",
        "langfuse.trace.tags",
        "langfuse.trace.public",
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.trace.metadata",
        "langfuse.session.id",
        "langfuse.user.id",
        "langfuse.environment",
        "langfuse.release",
        "langfuse.version",
        "session.id",
        "user.id",
        "gen_ai.conversation.id",
        "tag.tags",
    ]
)
TRACE_PREFIXES = ("langfuse.trace.metadata.", "traceloop.association.properties.")


class Attrs:
    """A span's attributes with a record of which ones the mapping used."""

    def __init__(self, attrs: Mapping[str, Any]) -> None:
        self.attrs = attrs
        self.used: set[str] = set()

    def take(self, *keys: str) -> Any:
        """The first non-empty value of ``keys``; every present key counts as used."""
        found = None
        for key in keys:
            value = self.attrs.get(key)
            if key in self.attrs:
                self.used.add(key)
            if found is None and value not in (None, "", [], {}):
                found = value
        return found

    def prefixed(self, prefix: str) -> dict[str, Any]:
        """Every ``prefix<rest>`` attribute as ``{rest: value}``, marked used."""
        out = {k[len(prefix) :]: v for k, v in self.attrs.items() if k.startswith(prefix)}
        self.used.update(prefix + k for k in out)
        return out

    def rest(self) -> dict[str, Any]:
        """The attributes no mapping used."""
        return {k: v for k, v in self.attrs.items() if k not in self.used}


def observation_type(attrs: Mapping[str, Any]) -> str:
    """The canonical observation type a span's attributes declare (``SPAN`` if none).

    >>> observation_type({"gen_ai.operation.name": "execute_tool"})
    'TOOL'
    >>> observation_type({"openinference.span.kind": "LLM"})
    'GENERATION'
    """
    declared = attrs.get("langfuse.observation.type")
    if declared not in (None, ""):
        kind = str(declared).upper()
        if kind not in OBSERVATION_TYPES:
            raise ValueError(f"langfuse.observation.type: unknown type {declared!r}")
        return kind
    for key, table in (
        ("openinference.span.kind", _OPENINFERENCE_KINDS),
        ("gen_ai.operation.name", _GENAI_OPERATIONS),
        ("traceloop.span.kind", _TRACELOOP_KINDS),
        ("llm.request.type", _LLM_REQUEST_TYPES),
    ):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            key_value = value.upper() if key == "openinference.span.kind" else value.lower()
            return table.get(key_value, "SPAN")
    # An undeclared span that names a model is a model call (Vercel AI's doGenerate, ...).
    if any(attrs.get(k) for k in ("gen_ai.request.model", "gen_ai.response.model")):
        return "GENERATION"
    return "SPAN"


def has_usage(attrs: Mapping[str, Any]) -> bool:
    """Whether a span reports token usage."""
    return "langfuse.observation.usage_details" in attrs or any(
        k.startswith(_USAGE_PREFIXES) for k in attrs
    )


def json_value(value: Any) -> Any:
    return decode_json(value) if isinstance(value, str) else value


def mapping(value: Any, what: str) -> dict[str, Any]:
    value = json_value(value)
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return dict(value)


def model_parameters(a: Attrs) -> dict[str, Any] | None:
    params = mapping(a.take("langfuse.observation.model.parameters"), "model.parameters")
    invocation = mapping(a.take("llm.invocation_parameters"), "llm.invocation_parameters")
    params.update({k: v for k, v in invocation.items() if k not in params})
    for name in _REQUEST_PARAMS:
        value = a.take(f"gen_ai.request.{name}")
        if value is not None and name not in params:
            params[name] = value
    return params or None


def tokens(a: Attrs) -> tuple[dict[str, int | None], dict[str, Any]]:
    details: dict[str, Any] = {}
    for prefix in _USAGE_PREFIXES:
        details.update({prefix + k: v for k, v in a.prefixed(prefix).items()})
    given = mapping(a.take("langfuse.observation.usage_details"), "usage_details")
    if given:
        usage = normalize_usage(given)
        counts = {
            "input": usage.input_tokens,
            "output": usage.output_tokens,
            "total": usage.total_tokens,
            "cache_read": usage.cache_read_tokens,
            "cache_write": usage.cache_write_tokens,
            "reasoning": usage.reasoning_tokens,
        }
        return counts, {**given, **details}
    counts = {}
    for column, keys in _TOKEN_KEYS.items():
        value = next((details[k] for k in keys if details.get(k) is not None), None)
        counts[column] = to_int(value, f"{column} tokens")
    if counts["total"] is None and (counts["input"] is not None or counts["output"] is not None):
        counts["total"] = (counts["input"] or 0) + (counts["output"] or 0)
    return counts, details


def cost(a: Attrs) -> tuple[float | None, dict[str, Any] | None]:
    given = mapping(a.take("langfuse.observation.cost_details"), "cost_details")
    oi = {k: to_float(v, f"llm.cost.{k}") for k, v in a.prefixed("llm.cost.").items()}
    details = given or oi
    if not details:
        return None, None
    if "total" in details:
        return to_float(details["total"], "cost total"), details
    # Without a total, the top-level parts add up (``prompt_details.*`` are parts of ``prompt``).
    parts = [to_float(v, f"cost {k}") for k, v in details.items() if "." not in k]
    return sum(p for p in parts if p is not None), details
