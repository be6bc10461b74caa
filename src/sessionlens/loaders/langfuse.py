"""Langfuse records to canonical rows, for every Langfuse export shape.

Shapes (see ``docs/langfuse-formats.md`` for the field references):

- ``langfuse-trace``: the UI "download trace" JSON ``{"trace": {...}, "observations": [...]}``
  and the API's single-trace response (a trace with nested observation objects);
- ``langfuse-api-v1``: pages ``{"data": [...], "meta": {"page": ...}}`` of traces (nested
  observations as objects or ids) or of observations;
- ``langfuse-api-v2``: cursor pages ``{"data": [...], "meta": {"cursor": ...}}`` of flat
  camelCase observation rows carrying trace fields, input/output as raw strings;
- ``langfuse-blob``: scheduled blob-storage exports (``traces/``, ``observations/``,
  ``observations_v2/``, ``scores/``) as JSON, JSONL, CSV (gzipped or not) or Parquet,
  snake_case columns.

camelCase and snake_case records go through the same mappers after their keys are converted,
so a quirk is fixed once for all shapes. Readers yield ``(kind, locator, record)``; mapping
errors are ``ValueError`` and become rejected records upstream.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from ._langfuse_read import Item, blob_kind, iter_api_pages, iter_blob_rows, iter_trace_download
from ._normalize import (
    InternalRules,
    camel_to_snake,
    decode_json,
    infer_provider,
    json_text,
    normalize_usage,
    parse_timestamp,
    row_hash,
    to_float,
    to_text,
)

__all__ = [
    "OBSERVATION_TYPES",
    "Item",
    "blob_kind",
    "iter_api_pages",
    "iter_blob_rows",
    "iter_trace_download",
    "map_observation",
    "map_score",
    "map_stub_trace",
    "map_trace",
    "stub_key",
]

OBSERVATION_TYPES = frozenset(
    [
        "GENERATION",
        "SPAN",
        "EVENT",
        "TOOL",
        "AGENT",
        "CHAIN",
        "RETRIEVER",
        "EMBEDDING",
        "GUARDRAIL",
        "EVALUATOR",
    ]
)
_LEVELS = frozenset({"DEBUG", "DEFAULT", "WARNING", "ERROR"})

TRACE_HASHED = [
    "source_session_id",
    "user_id",
    "name",
    "start_time",
    "end_time",
    "input",
    "output",
    "metadata",
    "tags",
    "environment",
    "release",
    "version",
    "is_internal",
    "is_stub",
]
OBSERVATION_HASHED = [
    "trace_id",
    "parent_observation_id",
    "type",
    "name",
    "start_time",
    "end_time",
    "completion_start_time",
    "level",
    "status_message",
    "model",
    "provider",
    "model_parameters",
    "input",
    "output",
    "metadata",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "usage_details",
    "reported_cost_usd",
    "cost_details",
    "tool_name",
    "tool_call_id",
    "tool_arguments",
]


#: Key layouts already seen, and whether every key is snake_case already. An export repeats
#: one layout on every row, so most records are used as they are instead of being copied.
_SNAKE_LAYOUTS: dict[tuple[Any, ...], bool] = {}
_MAX_LAYOUTS = 256

# The hashed values of a row, in order, in one C call.
_TRACE_VALUES = operator.itemgetter(*TRACE_HASHED)
_OBSERVATION_VALUES = operator.itemgetter(*OBSERVATION_HASHED)


def _snake(record: Mapping[str, Any]) -> Mapping[str, Any]:
    keys = tuple(record)
    is_snake = _SNAKE_LAYOUTS.get(keys)
    if is_snake is None:
        is_snake = all(type(k) is str and camel_to_snake(k) == k for k in keys)
        if len(_SNAKE_LAYOUTS) < _MAX_LAYOUTS:  # bounded: a hostile file cannot grow it
            _SNAKE_LAYOUTS[keys] = is_snake
    if is_snake:
        return record  # read only below: the mappers never change a record
    return {camel_to_snake(str(k)): v for k, v in record.items()}


def _require_mapping(record: Any) -> Mapping[str, Any]:
    if not isinstance(record, Mapping):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    return record


def _required_id(rec: Mapping[str, Any], key: str) -> str:
    value = rec.get(key)
    if isinstance(value, (dict, list, bool)):
        raise ValueError(f"{key}: expected a string id, got {type(value).__name__}")
    text = to_text(value)
    if text is None:
        raise ValueError(f"missing {key}")
    return text


def _field(rec: Mapping[str, Any], key: str, parse: Any) -> Any:
    try:
        return parse(rec.get(key))
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def _tags(value: Any) -> list[str]:
    value = decode_json(value)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"tags: expected a list of strings, got {value!r:.80}")
    return value


def _payload(value: Any) -> str | None:
    return json_text(decode_json(value))


def _attr(metadata: Any, *keys: str) -> Any:
    """First value of ``keys`` in metadata or its OTel ``attributes`` map."""
    if not isinstance(metadata, Mapping):
        return None
    attrs = metadata.get("attributes")
    for source in (metadata, attrs if isinstance(attrs, Mapping) else {}):
        for key in keys:
            value = source.get(key)
            if value not in (None, ""):
                return value
    return None


def map_trace(record: Any, *, rules: InternalRules, source_format: str) -> dict[str, Any]:
    """Map one Langfuse trace record (camelCase or snake_case) to a ``traces`` row."""
    rec = _snake(_require_mapping(record))
    metadata = decode_json(rec.get("metadata"))
    tags = _tags(rec.get("tags"))
    environment = to_text(rec.get("environment"))
    name = to_text(rec.get("name"))
    row: dict[str, Any] = {
        "trace_id": _required_id(rec, "id"),
        "source_session_id": to_text(rec.get("session_id")),
        "user_id": to_text(rec.get("user_id")),
        "name": name,
        "start_time": _field(rec, "timestamp", parse_timestamp),
        "end_time": None,
        "input": _payload(rec.get("input")),
        "output": _payload(rec.get("output")),
        "metadata": json_text(metadata),
        "tags": tags,
        "environment": environment,
        "release": to_text(rec.get("release")),
        "version": to_text(rec.get("version")),
        "is_internal": rules.matches(
            environment=environment, name=name, tags=tags, metadata=metadata
        ),
        "is_stub": False,
        "source_format": source_format,
        "source_updated_at": _field(rec, "updated_at", parse_timestamp),
    }
    if row["start_time"] is None:
        raise ValueError("missing timestamp")
    row["row_hash"] = row_hash(_TRACE_VALUES(row))
    return row


def map_stub_trace(
    record: Any, *, rules: InternalRules, source_format: str
) -> dict[str, Any] | None:
    """A placeholder ``traces`` row from an observation row's trace fields.

    Observation-only exports (API v2, ``observations_v2/``) name the trace's user, session,
    name and tags on every row; the legacy ``observations/`` table names only the trace id.
    The placeholder keeps every observation attached to a trace until the real trace record
    arrives, and never overwrites one.
    """
    rec = _snake(_require_mapping(record))
    trace_id = to_text(rec.get("trace_id"))
    if trace_id is None:
        return None
    tags = _tags(rec.get("tags"))
    environment = to_text(rec.get("environment"))
    name = to_text(rec.get("trace_name"))
    row: dict[str, Any] = {
        "trace_id": trace_id,
        "source_session_id": to_text(rec.get("session_id")),
        "user_id": to_text(rec.get("user_id")),
        "name": name,
        "start_time": None,
        "end_time": None,
        "input": None,
        "output": None,
        "metadata": None,
        "tags": tags,
        "environment": environment,
        "release": to_text(rec.get("release")),
        "version": None,
        "is_internal": rules.matches(environment=environment, name=name, tags=tags, metadata={}),
        "is_stub": True,
        "source_format": source_format,
        "source_updated_at": None,
    }
    row["row_hash"] = row_hash(_TRACE_VALUES(row))
    return row


#: The fields ``map_stub_trace`` reads (after ``_snake``).
_STUB_FIELDS = ("trace_id", "session_id", "user_id", "trace_name", "tags", "environment", "release")


def stub_key(record: Any) -> tuple[Any, ...] | None:
    """What ``map_stub_trace`` depends on, as a hashable key, when it is plain text.

    Every observation row of a trace carries the same trace fields, so ``map_items`` maps
    one placeholder per distinct key and reuses it. ``None`` (do not reuse) unless each
    field is a ``str``, ``None`` or a list of ``str``: those compare equal only when
    ``map_stub_trace`` would give equal rows (``1 == True`` would not be safe).

    >>> stub_key({"traceId": "t1", "tags": ["a"]})
    ('t1', None, None, None, ('a',), None, None)
    >>> stub_key({"trace_id": 7}) is None
    True
    """
    if not isinstance(record, Mapping):
        return None
    rec = _snake(record)
    key: list[Any] = []
    for name in _STUB_FIELDS:
        value = rec.get(name)
        if value is None or type(value) is str:
            key.append(value)
        elif type(value) is list and all(type(v) is str for v in value):
            key.append(tuple(value))
        else:
            return None
    return tuple(key)


def _reported_cost(rec: Mapping[str, Any], cost_details: Any) -> float | None:
    if isinstance(cost_details, Mapping) and cost_details:
        if "total" in cost_details:
            return to_float(cost_details["total"], "cost_details.total")
        parts = [to_float(v, f"cost_details.{k}") for k, v in cost_details.items()]
        return sum(p for p in parts if p is not None)
    for key in ("total_cost", "calculated_total_cost"):
        value = _field(rec, key, lambda v, k=key: to_float(v, k))
        # Langfuse reports 0 for unpriced observations and -1 for "metrics not requested".
        if value is not None and value > 0:
            return value
    usage = rec.get("usage")
    if isinstance(usage, Mapping):
        value = to_float(usage.get("totalCost"), "usage.totalCost")
        if value is not None and value > 0:
            return value
    return None


def map_observation(record: Any, *, source_format: str) -> dict[str, Any]:
    """Map one Langfuse observation record (camelCase or snake_case) to an ``observations`` row."""
    rec = _snake(_require_mapping(record))
    obs_type = to_text(rec.get("type"))
    if obs_type is None:
        raise ValueError("missing type")
    obs_type = obs_type.upper()
    if obs_type not in OBSERVATION_TYPES:
        raise ValueError(f"type: unknown observation type {obs_type!r}")
    level = (to_text(rec.get("level")) or "DEFAULT").upper()
    if level not in _LEVELS:
        raise ValueError(f"level: unknown level {level!r}")
    metadata = decode_json(rec.get("metadata"))
    model = to_text(rec.get("model") or rec.get("provided_model_name"))
    usage_raw = decode_json(rec.get("usage_details"))
    if not usage_raw:
        usage_raw = decode_json(rec.get("provided_usage_details"))
    if not usage_raw and isinstance(rec.get("usage"), Mapping):
        # API v1's deprecated ``usage`` object: {input, output, total, unit, *Cost}.
        usage_raw = {k: v for k, v in rec["usage"].items() if k in ("input", "output", "total")}
    try:
        usage = normalize_usage(usage_raw or None)
    except ValueError as exc:
        raise ValueError(f"usage_details: {exc}") from None
    cost_details = decode_json(rec.get("cost_details")) or decode_json(
        rec.get("provided_cost_details")
    )
    if cost_details is not None and not isinstance(cost_details, Mapping):
        raise ValueError(f"cost_details: expected an object, got {type(cost_details).__name__}")
    input_value = decode_json(rec.get("input"))
    tool_name = tool_call_id = tool_arguments = None
    if obs_type == "TOOL":
        tool_name = to_text(
            _attr(metadata, "gen_ai.tool.name", "tool.name", "ai.toolCall.name", "tool_name")
        )
        tool_name = tool_name or to_text(rec.get("name"))
        tool_call_id = to_text(
            _attr(
                metadata,
                "gen_ai.tool.call.id",
                "ai.toolCall.id",
                "tool_call_id",
                "tool.call.id",
                "toolCallId",
            )
        )
        arguments = _attr(metadata, "gen_ai.tool.call.arguments", "tool.parameters")
        tool_arguments = json_text(decode_json(arguments)) if arguments is not None else None
    row: dict[str, Any] = {
        "observation_id": _required_id(rec, "id"),
        "trace_id": _required_id(rec, "trace_id"),
        "parent_observation_id": to_text(rec.get("parent_observation_id")),
        "type": obs_type,
        "name": to_text(rec.get("name")),
        "start_time": _field(rec, "start_time", parse_timestamp),
        "end_time": _field(rec, "end_time", parse_timestamp),
        "completion_start_time": _field(rec, "completion_start_time", parse_timestamp),
        "level": level,
        "status_message": to_text(rec.get("status_message")),
        "model": model,
        "provider": infer_provider(model, metadata) if model else None,
        "model_parameters": json_text(decode_json(rec.get("model_parameters")) or None),
        "input": json_text(input_value),
        "output": _payload(rec.get("output")),
        "metadata": json_text(metadata),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_details": json_text(usage.details or None),
        "reported_cost_usd": _reported_cost(rec, cost_details),
        "cost_details": json_text(cost_details or None),
        "tool_name": tool_name,
        "tool_call_id": tool_call_id,
        "tool_arguments": tool_arguments,
        "source_format": source_format,
        "source_updated_at": _field(rec, "updated_at", parse_timestamp),
    }
    if row["start_time"] is None:
        raise ValueError("missing start_time")
    if row["tool_arguments"] is None and obs_type == "TOOL":
        row["tool_arguments"] = row["input"]
    row["row_hash"] = row_hash(_OBSERVATION_VALUES(row))
    return row


def map_score(record: Any) -> dict[str, Any]:
    """Map one Langfuse score record to a ``scores`` row."""
    rec = _snake(_require_mapping(record))
    value = _field(rec, "value", lambda v: to_float(v, "value"))
    return {
        "score_id": _required_id(rec, "id"),
        "trace_id": to_text(rec.get("trace_id")),
        "observation_id": to_text(rec.get("observation_id")),
        "session_id": to_text(rec.get("session_id")),
        "name": to_text(rec.get("name")),
        "value": value,
        "string_value": to_text(rec.get("string_value")),
        "data_type": to_text(rec.get("data_type")),
        "source": to_text(rec.get("source")),
        "comment": to_text(rec.get("comment")),
        "timestamp": _field(rec, "timestamp", parse_timestamp),
        "environment": to_text(rec.get("environment")),
        "source_updated_at": _field(rec, "updated_at", parse_timestamp),
    }
