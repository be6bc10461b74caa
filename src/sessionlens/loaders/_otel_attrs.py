"""OTel span attributes to an ``observations`` row: GenAI, OpenInference, OpenLLMetry, Langfuse.

This module owns the attribute conventions (field by field in ``docs/otel-formats.md``). When
several conventions name the same thing, Langfuse's own ``langfuse.*`` attributes win (an app
sets them on purpose), then OpenInference, then OTel GenAI, then OpenLLMetry, then guesses.
Every attribute the mapping reads is *consumed*; the rest go to ``metadata.attributes``, and the
OTLP envelope (resource, scope, span kind, status, unmapped events) to ``metadata.otel``, so
nothing a span carried is lost. Trace-level attributes (session, user, tags, ``langfuse.trace.*``)
are consumed here and used by ``_otel_spans`` for the trace row.

Tokens follow the project convention (OTel GenAI, see DESIGN.md) and are kept only on LLM spans
(GENERATION, EMBEDDING) that have no LLM span below them: an agent or chain span that reports
its children's summed usage keeps it in ``usage_details`` only, so sums never count twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from . import _otel_messages as msgs
from ._normalize import infer_provider, json_text, parse_timestamp, to_float, to_text
from ._otel_fields import (
    LLM_TYPES,
    TRACE_KEYS,
    TRACE_PREFIXES,
    Attrs,
    cost,
    json_value,
    mapping,
    model_parameters,
    observation_type,
    tokens,
)
from ._otlp_decode import Span

__all__ = ["check_text", "map_span"]

_LEVELS = frozenset({"DEBUG", "DEFAULT", "WARNING", "ERROR"})


def _io_value(value: Any, mime: Any = None) -> Any:
    if isinstance(value, str) and isinstance(mime, str) and not mime.endswith("json"):
        return value  # text/plain stays text even when it looks like JSON
    return json_value(value)


def _input(a: Attrs, obs_type: str, inputs_from_events: list[Any]) -> Any:
    value = a.take("langfuse.observation.input")
    if value is not None:
        return json_value(value)
    flat, keys = msgs.indexed(a.attrs, "llm.input_messages")
    if flat:
        a.used.update(keys)
        return msgs.chat_from_flat(flat)
    genai = a.take("gen_ai.input.messages")
    if genai is not None:
        system = json_value(a.take("gen_ai.system_instructions"))
        return msgs.chat_from_genai(json_value(genai), system)
    if inputs_from_events:
        return inputs_from_events
    flat, keys = msgs.indexed(a.attrs, "gen_ai.prompt")
    if flat:
        a.used.update(keys)
        return msgs.chat_from_flat(flat)
    value = a.take("input.value")
    if value is not None:
        return _io_value(value, a.take("input.mime_type"))
    if obs_type == "TOOL" and a.attrs.get("gen_ai.tool.call.arguments") is not None:
        return json_value(a.attrs["gen_ai.tool.call.arguments"])
    value = a.take("gen_ai.prompt", "traceloop.entity.input")
    return json_value(value)


def _output(a: Attrs, obs_type: str, outputs_from_events: list[Any]) -> Any:
    value = a.take("langfuse.observation.output")
    if value is not None:
        return json_value(value)
    flat, keys = msgs.indexed(a.attrs, "llm.output_messages")
    if flat:
        a.used.update(keys)
        return msgs.single_or_list(msgs.chat_from_flat(flat))
    genai = a.take("gen_ai.output.messages")
    if genai is not None:
        return msgs.single_or_list(msgs.chat_from_genai(json_value(genai)))
    if outputs_from_events:
        return msgs.single_or_list(outputs_from_events)
    flat, keys = msgs.indexed(a.attrs, "gen_ai.completion")
    if flat:
        a.used.update(keys)
        return msgs.single_or_list(msgs.chat_from_flat(flat))
    value = a.take("output.value")
    if value is not None:
        return _io_value(value, a.take("output.mime_type"))
    if obs_type == "TOOL":
        value = a.take("gen_ai.tool.call.result")
        if value is not None:
            return json_value(value)
    return json_value(a.take("gen_ai.completion", "traceloop.entity.output"))


def _timestamp(value: Any, what: str) -> datetime | None:
    try:
        return parse_timestamp(json_value(value))
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _completion_start(a: Attrs, start: datetime) -> datetime | None:
    given = a.take("langfuse.observation.completion_start_time")
    if given is not None:
        return _timestamp(given, "langfuse.observation.completion_start_time")
    ttfc = a.take("gen_ai.response.time_to_first_chunk")
    if ttfc is None:
        return None
    seconds = to_float(ttfc, "gen_ai.response.time_to_first_chunk")
    if seconds is None or not 0 <= seconds < 86400 * 365:
        raise ValueError(f"gen_ai.response.time_to_first_chunk: out of range: {ttfc!r}")
    return start + timedelta(seconds=seconds)


def _status(a: Attrs, span: Span, exception: Mapping[str, Any] | None) -> tuple[str, str | None]:
    level = a.take("langfuse.observation.level")
    if level is not None:
        level = str(level).upper()
        if level not in _LEVELS:
            raise ValueError(f"langfuse.observation.level: unknown level {level!r}")
    elif span.status_code == "ERROR" or exception is not None:
        level = "ERROR"
    else:
        level = "DEFAULT"
    message = to_text(a.take("langfuse.observation.status_message")) or span.status_message
    if message is None and exception is not None:
        kind, text = exception.get("exception.type"), exception.get("exception.message")
        message = ": ".join(str(p) for p in (kind, text) if p not in (None, "")) or None
    if message is None and level == "ERROR":
        message = to_text(a.take("error.type"))
    return level, message


def _tool(a: Attrs, span: Span) -> tuple[str | None, str | None, Any]:
    name = to_text(a.take("gen_ai.tool.name", "tool.name")) or span.name
    call_id = to_text(a.take("gen_ai.tool.call.id", "tool_call.id"))
    arguments = a.take("gen_ai.tool.call.arguments", "tool_call.function.arguments")
    return name, call_id, None if arguments is None else json_value(arguments)


def _metadata(a: Attrs, span: Span, events: list[dict[str, Any]]) -> dict[str, Any]:
    md = {k: json_value(v) for k, v in a.prefixed("langfuse.observation.metadata.").items()}
    md.update(mapping(a.take("metadata"), "metadata"))
    for key in TRACE_KEYS:
        a.take(key)
    for prefix in TRACE_PREFIXES:
        a.prefixed(prefix)
    rest = a.rest()
    if rest:
        md["attributes"] = rest
    otel = {
        "span_kind": span.kind,
        "status_code": span.status_code if span.status_code != "UNSET" else None,
        "resource": span.resource,
        "scope": span.scope,
        "events": events,
    }
    md["otel"] = {k: v for k, v in otel.items() if v}
    return md


def map_span(span: Span, *, source_format: str, rollup: bool = False) -> dict[str, Any]:
    """Map one span to an ``observations`` row (without ``row_hash``, added by the pipeline).

    ``rollup`` says an LLM span sits below this one in the same file, so any usage this span
    reports is its children's sum: the token and cost columns stay empty.
    """
    a = Attrs(span.attributes)
    obs_type = observation_type(span.attributes)
    for key in (
        "langfuse.observation.type",
        "openinference.span.kind",
        "gen_ai.operation.name",
        "traceloop.span.kind",
        "llm.request.type",
    ):
        a.take(key)
    message_events = [(e.name, e.attributes) for e in span.events if e.name.startswith("gen_ai.")]
    in_events, out_events = msgs.event_messages(message_events)
    exception = next((e.attributes for e in span.events if e.name == "exception"), None)
    unmapped = [
        {"name": e.name, "time": e.time.isoformat() if e.time else None, **e.attributes}
        for e in span.events
        if not e.name.startswith("gen_ai.") and e.name != "exception"
    ]
    model = to_text(a.take("langfuse.observation.model.name", "gen_ai.response.model"))
    # The requested model is only kept apart (in metadata) when the response names another.
    if model is None or a.attrs.get("gen_ai.request.model") == model:
        requested = to_text(a.take("gen_ai.request.model"))
        model = model or requested
    model = model or to_text(
        a.take("llm.response.model_name", "llm.model_name", "llm.request.model_name")
    )
    provider_keys = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    provider = None
    if model:
        provider = infer_provider(model, {k: a.attrs.get(k) for k in provider_keys})
        a.take(*provider_keys)
    tool_name = tool_call_id = tool_arguments = None
    if obs_type == "TOOL":
        tool_name, tool_call_id, tool_arguments = _tool(a, span)
    counts, usage_details = tokens(a)
    reported_cost, cost_details = cost(a)
    if obs_type not in LLM_TYPES or rollup:
        counts = dict.fromkeys(counts)
        reported_cost = None
    level, status_message = _status(a, span, exception)
    input_value = _input(a, obs_type, in_events)
    row: dict[str, Any] = {
        "observation_id": span.span_id,
        "trace_id": span.trace_id,
        "parent_observation_id": span.parent_id,
        "type": obs_type,
        "name": span.name,
        "start_time": span.start,
        "end_time": span.end,
        "completion_start_time": _completion_start(a, span.start),
        "level": level,
        "status_message": status_message,
        "model": model,
        "provider": provider,
        "model_parameters": json_text(model_parameters(a)),
        "input": json_text(input_value),
        "output": json_text(_output(a, obs_type, out_events)),
        "metadata": None,
        "input_tokens": counts["input"],
        "output_tokens": counts["output"],
        "total_tokens": counts["total"],
        "cache_read_tokens": counts["cache_read"],
        "cache_write_tokens": counts["cache_write"],
        "reasoning_tokens": counts["reasoning"],
        "usage_details": json_text(usage_details or None),
        "reported_cost_usd": reported_cost,
        "cost_details": json_text(cost_details),
        "tool_name": tool_name,
        "tool_call_id": tool_call_id,
        "tool_arguments": json_text(tool_arguments),
        "source_format": source_format,
        "source_updated_at": None,
    }
    if obs_type == "TOOL" and row["tool_arguments"] is None:
        row["tool_arguments"] = row["input"]
    row["metadata"] = json_text(_metadata(a, span, unmapped))
    check_text(row.items())
    return row


def check_text(items: Iterable[tuple[str, Any]]) -> None:
    """Reject text that is not valid Unicode (lone surrogates from ``\\ud800`` escapes).

    DuckDB stores UTF-8; such a string would fail at write time and abort the whole file.
    """
    for column, value in items:
        values = value if isinstance(value, list) else [value]
        for one in values:
            if isinstance(one, str):
                try:
                    one.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError(f"{column}: invalid Unicode (a lone surrogate)") from None
