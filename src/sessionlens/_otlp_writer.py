"""Write a :class:`~sessionlens.datasets.SyntheticDataset` as OTLP/JSON, as an app would emit it.

This module owns the OTLP side of the parity test: the same generated sessions that
``_export_writer`` writes as Langfuse exports come out here as ``ExportTraceServiceRequest``
files, spans carrying the attributes a real app emits under one of two conventions:

- ``"genai"``: OTel GenAI (``gen_ai.operation.name``, ``gen_ai.usage.*``, structured
  ``gen_ai.input.messages`` / ``gen_ai.output.messages`` with parts, ``execute_tool`` spans with
  ``gen_ai.tool.call.arguments`` / ``.result``, ``gen_ai.conversation.id``);
- ``"openinference"``: OpenInference as its Python instrumentors write it (flattened
  ``llm.input_messages.N.message.*``, ``llm.token_count.*``, ``llm.cost.*``, ``input.value``
  with ``input.mime_type``, ``session.id``, ``tag.tags``, ``metadata`` as JSON text).

What a convention has no attribute for (trace name, trace metadata, release, Langfuse cost
details under GenAI, completion start under OpenInference, parameters GenAI does not name)
goes in Langfuse's own OTel attributes (``langfuse.trace.name``, ...), as apps that send to
Langfuse do. Environment and version travel on the resource (``deployment.environment.name``,
``service.version``), so each environment is its own resource, as separate deployments are.
Spans are batched in the order they end, as the SDK's batch processor exports them, so a trace
may straddle two files with its root span in the later one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .datasets import SyntheticDataset

__all__ = ["write_otlp_export"]

Conventions = Literal["genai", "openinference"]

_EPOCH = datetime(1970, 1, 1)
_GENAI_OPERATIONS = {
    "GENERATION": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "CHAIN": "invoke_workflow",
    "RETRIEVER": "retrieval",
}
_OPENINFERENCE_KINDS = {
    "GENERATION": "LLM",
    "SPAN": "UNKNOWN",
    "TOOL": "TOOL",
    "AGENT": "AGENT",
    "CHAIN": "CHAIN",
    "RETRIEVER": "RETRIEVER",
    "EMBEDDING": "EMBEDDING",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
}
_GENAI_PARAMS = {"temperature", "max_tokens", "top_p", "top_k", "seed", "stop_sequences"}
# GenAI well-known provider names (gen_ai.provider.name) for the generator's providers.
_GENAI_PROVIDERS = {"google": "gcp.gemini"}
_SCOPES = {
    "genai": {"name": "opentelemetry.instrumentation.genai", "version": "0.4b0"},
    "openinference": {"name": "openinference.instrumentation.openai", "version": "0.1.30"},
}


def _nanos(value: datetime) -> str:
    # OTLP/JSON writes 64-bit integers as decimal strings.
    return str((value - _EPOCH) // timedelta(microseconds=1) * 1000)


def _any(value: Any) -> dict[str, Any]:
    """A Python value as an OTLP ``AnyValue``."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_any(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _kv(value)}}
    return {"stringValue": str(value)}


def _kv(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": _any(v)} for k, v in attrs.items() if v is not None]


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _genai_message(chat: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI chat message as a GenAI ``{role, parts}`` message."""
    role = chat.get("role")
    if role == "tool":
        part = {"type": "tool_call_response", "id": chat.get("tool_call_id")}
        return {"role": "tool", "parts": [{**part, "response": chat.get("content")}]}
    parts: list[dict[str, Any]] = []
    if chat.get("content") is not None:
        parts.append({"type": "text", "content": chat["content"]})
    for call in chat.get("tool_calls") or []:
        function = call.get("function", {})
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name"),
                "arguments": _loads(function.get("arguments")),
            }
        )
    return {"role": role, "parts": parts}


def _openinference_messages(prefix: str, messages: list[Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for i, chat in enumerate(messages):
        at = f"{prefix}.{i}.message"
        attrs[f"{at}.role"] = chat.get("role")
        if chat.get("content") is not None:
            attrs[f"{at}.content"] = chat["content"]
        if chat.get("tool_call_id"):
            attrs[f"{at}.tool_call_id"] = chat["tool_call_id"]
        for j, call in enumerate(chat.get("tool_calls") or []):
            tc = f"{at}.tool_calls.{j}.tool_call"
            attrs[f"{tc}.id"] = call.get("id")
            attrs[f"{tc}.function.name"] = call["function"]["name"]
            attrs[f"{tc}.function.arguments"] = call["function"]["arguments"]
    return attrs


def _usage(usage: Mapping[str, int]) -> dict[str, int | None]:
    """Langfuse usage (input excludes cache, output excludes reasoning) in OTel terms."""
    return {
        "input": sum(v for k, v in usage.items() if k.startswith("input")),
        "output": sum(v for k, v in usage.items() if k.startswith("output")),
        "cache_read": usage.get("input_cache_read"),
        "cache_write": usage.get("input_cache_creation"),
        "reasoning": usage.get("output_reasoning"),
    }


def _genai_generation(o: Mapping[str, Any]) -> dict[str, Any]:
    model, provider = o["provided_model_name"], o["metadata"].get("gen_ai.system")
    history = _loads(o["input"])
    message = _loads(o["output"])
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _GENAI_PROVIDERS.get(provider, provider),
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
    }
    params = _loads(o["model_parameters"]) or {}
    if set(params) <= _GENAI_PARAMS:
        attrs.update({f"gen_ai.request.{k}": v for k, v in params.items()})
    else:  # GenAI has no attribute for these (reasoning_effort, max_completion_tokens)
        attrs["langfuse.observation.model.parameters"] = json.dumps(params)
    usage = _usage(o["usage_details"])
    attrs["gen_ai.usage.input_tokens"] = usage["input"]
    attrs["gen_ai.usage.output_tokens"] = usage["output"]
    attrs["gen_ai.usage.cache_read.input_tokens"] = usage["cache_read"]
    attrs["gen_ai.usage.cache_creation.input_tokens"] = usage["cache_write"]
    attrs["gen_ai.usage.reasoning.output_tokens"] = usage["reasoning"]
    if o["completion_start_time"] is not None:
        ttfc = (o["completion_start_time"] - o["start_time"]).total_seconds()
        attrs["gen_ai.response.time_to_first_chunk"] = ttfc
    if o["cost_details"]:
        attrs["langfuse.observation.cost_details"] = json.dumps(o["cost_details"])
    # Anthropic takes the system prompt apart from the messages: system_instructions.
    system = [m for m in history if m.get("role") == "system"] if provider == "anthropic" else []
    if system:
        attrs["gen_ai.system_instructions"] = [
            {"type": "text", "content": m["content"]} for m in system
        ]
    attrs["gen_ai.input.messages"] = [_genai_message(m) for m in history if m not in system]
    finish = "tool_call" if message.get("tool_calls") else "stop"
    attrs["gen_ai.output.messages"] = [{**_genai_message(message), "finish_reason": finish}]
    return attrs


def _openinference_generation(o: Mapping[str, Any]) -> dict[str, Any]:
    provider = o["metadata"].get("gen_ai.system")
    attrs: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.model_name": o["provided_model_name"],
        "llm.provider": provider,
        "llm.system": {"google": "vertexai"}.get(provider, provider),
        "llm.invocation_parameters": o["model_parameters"],
    }
    attrs.update(_openinference_messages("llm.input_messages", _loads(o["input"])))
    attrs.update(_openinference_messages("llm.output_messages", [_loads(o["output"])]))
    usage = _usage(o["usage_details"])
    attrs["llm.token_count.prompt"] = usage["input"]
    attrs["llm.token_count.completion"] = usage["output"]
    attrs["llm.token_count.total"] = (usage["input"] or 0) + (usage["output"] or 0)
    attrs["llm.token_count.prompt_details.cache_read"] = usage["cache_read"]
    attrs["llm.token_count.prompt_details.cache_write"] = usage["cache_write"]
    attrs["llm.token_count.completion_details.reasoning"] = usage["reasoning"]
    cost = o["cost_details"] or {}
    if cost:
        attrs["llm.cost.prompt"] = sum(v for k, v in cost.items() if k.startswith("input"))
        attrs["llm.cost.completion"] = sum(v for k, v in cost.items() if k.startswith("output"))
        attrs["llm.cost.total"] = cost["total"]
        for key, oi in (
            ("input", "prompt_details.input"),
            ("input_cache_read", "prompt_details.cache_read"),
            ("input_cache_creation", "prompt_details.cache_write"),
            ("output", "completion_details.output"),
            ("output_reasoning", "completion_details.reasoning"),
        ):
            attrs[f"llm.cost.{oi}"] = cost.get(key)
    if o["completion_start_time"] is not None:  # OpenInference has no time-to-first-token
        attrs["langfuse.observation.completion_start_time"] = (
            o["completion_start_time"].isoformat() + "Z"
        )
    return attrs


def _span_attributes(
    o: Mapping[str, Any], t: Mapping[str, Any], conventions: Conventions
) -> dict[str, Any]:
    genai = conventions == "genai"
    kind = o["type"]
    attrs: dict[str, Any] = {}
    if kind == "GENERATION":
        attrs.update(_genai_generation(o) if genai else _openinference_generation(o))
    elif genai:
        if kind in _GENAI_OPERATIONS:
            attrs["gen_ai.operation.name"] = _GENAI_OPERATIONS[kind]
        else:
            attrs["langfuse.observation.type"] = kind.lower()
        if kind == "TOOL":
            attrs["gen_ai.tool.name"] = o["name"]
            attrs["gen_ai.tool.call.id"] = o["metadata"].get("tool_call_id")
            attrs["gen_ai.tool.call.arguments"] = _loads(o["input"])
            attrs["gen_ai.tool.call.result"] = _loads(o["output"])
        else:
            attrs["langfuse.observation.input"] = o["input"]
            attrs["langfuse.observation.output"] = o["output"]
    else:
        if kind in _OPENINFERENCE_KINDS:
            attrs["openinference.span.kind"] = _OPENINFERENCE_KINDS[kind]
        else:
            attrs["langfuse.observation.type"] = kind.lower()
        if kind == "TOOL":
            attrs["tool.name"] = o["name"]
            attrs["tool_call.id"] = o["metadata"].get("tool_call_id")
        for io in ("input", "output"):
            if o[io] is not None:
                attrs[f"{io}.value"] = _text(o[io])
                attrs[f"{io}.mime_type"] = "application/json"
    if o["level"] not in ("DEFAULT", "ERROR"):
        attrs["langfuse.observation.level"] = o["level"]
        attrs["langfuse.observation.status_message"] = o["status_message"]
    metadata = o["metadata"] or {}
    if genai:
        attrs.update({f"langfuse.observation.metadata.{k}": _text(v) for k, v in metadata.items()})
    elif metadata:
        attrs["metadata"] = json.dumps(metadata)
    # Session and user ride on every span (a span processor adds them); the rest of the trace
    # fields on the root span.
    attrs["gen_ai.conversation.id" if genai else "session.id"] = t["session_id"]
    attrs["user.id"] = t["user_id"]
    if o["parent_observation_id"] is None:
        attrs["langfuse.trace.name"] = t["name"]
        attrs["langfuse.release"] = t["release"]
        attrs["langfuse.trace.tags" if genai else "tag.tags"] = t["tags"]
        trace_md = t["metadata"] or {}
        attrs.update({f"langfuse.trace.metadata.{k}": _text(v) for k, v in trace_md.items()})
    return attrs


def _span(o: Mapping[str, Any], t: Mapping[str, Any], conventions: Conventions) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": o["trace_id"],
        "spanId": o["id"],
        "name": o["name"],
        "kind": 3 if o["type"] == "GENERATION" else 1,  # CLIENT for model calls, else INTERNAL
        "startTimeUnixNano": _nanos(o["start_time"]),
        "endTimeUnixNano": _nanos(o["end_time"]),
        "attributes": _kv(_span_attributes(o, t, conventions)),
        "status": {},
    }
    if o["parent_observation_id"]:
        span["parentSpanId"] = o["parent_observation_id"]
    if o["level"] == "ERROR":
        span["status"] = {"code": 2, "message": o["status_message"]}
        if o["type"] == "TOOL" and o["status_message"]:
            kind, _, message = o["status_message"].partition(": ")
            attributes = {"exception.type": kind, "exception.message": message}
            event = {"timeUnixNano": span["endTimeUnixNano"], "name": "exception"}
            span["events"] = [{**event, "attributes": _kv(attributes)}]
    return span


def write_otlp_export(
    ds: SyntheticDataset,
    out_dir: str | Path,
    *,
    conventions: Conventions = "genai",
    lines: bool = False,
    batch_size: int = 512,
) -> list[Path]:
    """Write ``ds`` as OTLP/JSON trace exports following ``conventions``.

    Parameters
    ----------
    ds : SyntheticDataset
        What to write (``datasets.generate``).
    out_dir : str or Path
        Target folder; created if missing.
    conventions : {'genai', 'openinference'}
        The attribute conventions spans follow (see the module docstring).
    lines : bool
        ``False``: one ``ExportTraceServiceRequest`` per ``otlp-NNNN.json`` file. ``True``: one
        ``traces.jsonl`` with a request per line, as the Collector's file exporter writes.
    batch_size : int
        Spans per request; spans are exported in the order they end.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import tempfile
    >>> from sessionlens.datasets import generate
    >>> files = write_otlp_export(generate(3, seed=1), tempfile.mkdtemp(), lines=True)
    >>> [f.name for f in files]
    ['traces.jsonl']
    """
    if conventions not in ("genai", "openinference"):
        raise ValueError(f"conventions must be 'genai' or 'openinference', not {conventions!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    traces = {t["id"]: t for t in ds.traces}
    ordered = sorted(ds.observations, key=lambda o: (o["end_time"], o["id"]))
    requests = []
    for first in range(0, len(ordered), batch_size):
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for o in ordered[first : first + batch_size]:
            t = traces[o["trace_id"]]
            key = (t["environment"], t["version"])
            groups.setdefault(key, []).append(_span(o, t, conventions))
        resource_spans = []
        for (environment, version), spans in groups.items():
            resource = {
                "service.name": "dental-voice-agent",
                "service.version": version,
                "deployment.environment.name": environment,
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": "1.38.0",
            }
            resource_spans.append(
                {
                    "resource": {"attributes": _kv(resource)},
                    "scopeSpans": [{"scope": _SCOPES[conventions], "spans": spans}],
                }
            )
        requests.append({"resourceSpans": resource_spans})
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if lines:
        path = root / "traces.jsonl"
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
        path.write_text(body, encoding="utf-8")
        return [path]
    written = []
    for i, request in enumerate(requests):
        path = root / f"otlp-{i:04d}.json"
        path.write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
        written.append(path)
    return written
