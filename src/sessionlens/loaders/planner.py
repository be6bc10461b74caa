"""AI-planner tool-call logs as traces: format ``planner-log``.

An analysis planner (an LLM that plans, then calls tools) logs one record per analysis
session: the endpoint or job that ran, the tool calls ``[{tool, args, result}]``, the model's
reasoning, token usage, duration and creation time. Files: JSON lines, Parquet, CSV or a JSON
array (or one record as the whole document).

Field names vary between loggers; the first alias present wins (``FIELD_ALIASES``,
``CALL_ALIASES``):

==============  ==========================================================================
field           aliases
==============  ==========================================================================
id              session_id, job_id, run_id, analysis_id, request_id, id
endpoint        endpoint, route, path, api, job, name
tool calls      tool_calls, tools, calls, steps, actions
reasoning       reasoning, thoughts, thinking, plan, rationale
usage           usage, token_usage, tokens (an object; or top-level input_tokens /
                prompt_tokens, output_tokens / completion_tokens, total_tokens)
model           model, model_name, llm (also ``usage.model``)
cost (USD)      cost_usd, total_cost, cost (also inside usage)
created         created_at, created, timestamp, start_time, started_at, time
duration        duration_ms, latency_ms, elapsed_ms (milliseconds); duration_s,
                duration_seconds, duration, elapsed, latency (seconds)
user            user_id, user
query           query, question, prompt, input, request
answer          answer, final_answer, response, output, summary
call: name      tool, tool_name, name, function
call: args      args, arguments, input, params, parameters, kwargs
call: result    result, output, response, return, observation
call: id        id, call_id, tool_call_id
==============  ==========================================================================

Each record is one session and one trace (id: the record's id, else ``planner-<hash>`` of
the record), named after the endpoint. Its ``metadata`` holds every non-null field that has no
column of its own (all but the calls, reasoning, usage and creation time) plus ``endpoint``.
Inside: one ``GENERATION`` (input the query, output the reasoning, model, usage, cost) and one
``TOOL`` per call in order (arguments, result; other call fields in its metadata). A call whose
result is an error object, a string starting with ``Error``, or that has an ``error`` field is
``level = 'ERROR'``; a null result is fine.

Times are spread deterministically: the duration is cut into ``1 + calls`` equal slots, the
generation takes the first and each call the next. Without a duration a slot is one second;
without a creation time the clock starts at ``SYNTHETIC_START`` (noted in
``metadata._sessionlens.synthetic_times``). Parquet and CSV cannot hold values of mixed type, so
string arguments and results there are decoded as JSON text when they parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from ._normalize import (
    decode_json,
    infer_provider,
    normalize_usage,
    parse_timestamp,
    to_float,
)
from ._rows import (
    SYNTHETIC_START,
    error_text,
    mapped_items,
    observation_row,
    payload,
    stable_id,
    text,
    trace_record,
)
from .files import Reader, SourceFile, register
from .langfuse import Item

__all__ = ["CALL_ALIASES", "FIELD_ALIASES", "FORMAT", "map_planner_record"]

FORMAT = "planner-log"
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("session_id", "job_id", "run_id", "analysis_id", "request_id", "id"),
    "endpoint": ("endpoint", "route", "path", "api", "job", "name"),
    "tool_calls": ("tool_calls", "tools", "calls", "steps", "actions"),
    "reasoning": ("reasoning", "thoughts", "thinking", "plan", "rationale"),
    "usage": ("usage", "token_usage", "tokens"),
    "model": ("model", "model_name", "llm"),
    "cost": ("cost_usd", "total_cost", "cost"),
    "created": ("created_at", "created", "timestamp", "start_time", "started_at", "time"),
    "duration_ms": ("duration_ms", "latency_ms", "elapsed_ms"),
    "duration_s": ("duration_s", "duration_seconds", "duration", "elapsed", "latency"),
    "user": ("user_id", "user"),
    "query": ("query", "question", "prompt", "input", "request"),
    "answer": ("answer", "final_answer", "response", "output", "summary"),
}
CALL_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("tool", "tool_name", "name", "function"),
    "args": ("args", "arguments", "input", "params", "parameters", "kwargs"),
    "result": ("result", "output", "response", "return", "observation"),
    "id": ("id", "call_id", "tool_call_id"),
}
_TOKEN_KEYS = ("input_tokens", "prompt_tokens", "output_tokens", "completion_tokens")
_NOT_PLANNER = {"role", "trace", "observations", "trace_id", "traceId", "messages", "traj"}
_SLOT = timedelta(seconds=1)


def _pick(record: Mapping[str, Any], aliases: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in aliases:
        if record.get(key) is not None:
            return key, record[key]
    return None, None


def _calls_value(record: Mapping[str, Any]) -> tuple[str | None, Any]:
    key, value = _pick(record, FIELD_ALIASES["tool_calls"])
    if isinstance(value, str):  # CSV holds the list as JSON text
        value = decode_json(value)
    return key, value


def _sniff(src: SourceFile, head: Any) -> bool:
    if src.container == "json" and isinstance(head, list):
        head = head[0] if head else None
    if not isinstance(head, Mapping) or _NOT_PLANNER & set(head):
        return False
    _, calls = _calls_value(head)
    if not isinstance(calls, list):
        return False
    # OpenAI-style tool calls nest a ``function`` object; planner calls name the tool directly.
    first = calls[0] if calls else None
    if first is not None and not (
        isinstance(first, Mapping)
        and "function" not in first
        and any(k in first for k in CALL_ALIASES["name"])
    ):
        return False
    described = ("reasoning", "usage", "endpoint", "model", "duration_ms", "duration_s")
    return any(_pick(head, FIELD_ALIASES[f])[0] for f in described) or any(
        k in head for k in _TOKEN_KEYS
    )


def _read_document(src: SourceFile, doc: Any) -> Iterator[Item]:
    if doc is None:
        return
    records = doc if isinstance(doc, list) else [doc]
    for i, record in enumerate(records):
        yield from mapped_items(
            map_planner_record, record, f"/{i}" if isinstance(doc, list) else "/"
        )


def _read_rows(src: SourceFile, rows: Iterator[tuple[str, Any]]) -> Iterator[Item]:
    tabular = src.container in ("csv", "parquet")
    mapper = partial(map_planner_record, tabular=tabular)
    for where, record in rows:
        if isinstance(record, ValueError):
            yield "error", where, str(record)
        else:
            yield from mapped_items(mapper, record, where)


def _decode(value: Any, *, tabular: bool) -> Any:
    if tabular and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return decode_json(value)


def _usage(record: Mapping[str, Any]) -> tuple[str | None, dict[str, Any], str | None, Any]:
    """The usage key, its counts, a model named inside them, and a cost named inside them."""
    key, raw = _pick(record, FIELD_ALIASES["usage"])
    raw = decode_json(raw)
    if raw is not None and not isinstance(raw, Mapping):
        raise ValueError(f"{key}: expected an object of token counts, got {type(raw).__name__}")
    usage = {str(k): v for k, v in (raw or {}).items() if v is not None}
    if not usage:
        usage = {k: record[k] for k in (*_TOKEN_KEYS, "total_tokens") if k in record}
    model = usage.pop("model", None)
    cost = next((usage.pop(k) for k in FIELD_ALIASES["cost"] if k in usage), None)
    return key, usage, text(model, f"{key}.model"), cost


def _duration(record: Mapping[str, Any]) -> timedelta | None:
    for field, scale in (("duration_ms", 1e-3), ("duration_s", 1.0)):
        key, value = _pick(record, FIELD_ALIASES[field])
        if key is not None:
            seconds = to_float(value, key)
            if seconds is None or seconds < 0:
                raise ValueError(f"{key}: expected a non-negative duration, got {value!r}")
            return timedelta(seconds=seconds * scale)
    return None


def map_planner_record(
    record: Any, *, tabular: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Map one planner log record to a Langfuse-shaped trace record and observation rows.

    Parameters
    ----------
    record : dict
        One analysis session (field aliases: ``FIELD_ALIASES``, ``CALL_ALIASES``).
    tabular : bool
        The record came from Parquet or CSV: string arguments and results are JSON text.

    Returns
    -------
    (dict, list of dict)
        The trace record (for ``langfuse.map_trace``) and the ``observations`` rows.

    Raises
    ------
    ValueError
        A field has the wrong type; the message names it.

    Examples
    --------
    >>> trace, rows = map_planner_record({
    ...     "job_id": "job-7", "endpoint": "/analyze/churn", "created_at": "2026-03-02T10:00:00Z",
    ...     "duration_ms": 3000, "reasoning": "Load, then aggregate.",
    ...     "usage": {"input_tokens": 900, "output_tokens": 120, "model": "gpt-4.1"},
    ...     "tool_calls": [{"tool": "sql", "args": {"q": "select 1"}, "result": None}]})
    >>> trace["name"], [(r["type"], r["name"], r["start_time"].second) for r in rows]
    ('/analyze/churn', [('GENERATION', 'planner', 0), ('TOOL', 'sql', 1)])
    >>> rows[0]["model"], rows[0]["input_tokens"], rows[1]["output"]
    ('gpt-4.1', 900, None)
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"expected a planner log record (an object), got {type(record).__name__}")
    calls_key, calls = _calls_value(record)
    if calls is None:
        calls = []
    if not isinstance(calls, list):
        raise ValueError(f"{calls_key}: expected a list of tool calls, got {type(calls).__name__}")
    id_key, found_id = _pick(record, FIELD_ALIASES["id"])
    if isinstance(found_id, (Mapping, list, bool, float)):
        raise ValueError(f"{id_key}: expected a string id, got {found_id!r:.60}")
    session_id = text(found_id, str(id_key)) or stable_id("planner", dict(record))
    endpoint_key, endpoint = _pick(record, FIELD_ALIASES["endpoint"])
    endpoint = text(endpoint, str(endpoint_key))
    reasoning_key, reasoning = _pick(record, FIELD_ALIASES["reasoning"])
    usage_key, usage_raw, usage_model, usage_cost = _usage(record)
    try:
        usage = normalize_usage(usage_raw)
    except ValueError as exc:
        raise ValueError(f"usage: {exc}") from None
    model_key, model = _pick(record, FIELD_ALIASES["model"])
    model = text(model, str(model_key)) or usage_model
    cost_key, cost = _pick(record, FIELD_ALIASES["cost"])
    cost = to_float(cost if cost is not None else usage_cost, cost_key or "usage.cost")
    created_key, created = _pick(record, FIELD_ALIASES["created"])
    try:
        start = parse_timestamp(created)
    except ValueError as exc:
        raise ValueError(f"{created_key}: {exc}") from None
    duration = _duration(record)
    slot = duration / (1 + len(calls)) if duration is not None else _SLOT
    origin = start or SYNTHETIC_START

    def at(i: int) -> datetime:
        return origin + slot * i

    _, query = _pick(record, FIELD_ALIASES["query"])
    _, answer = _pick(record, FIELD_ALIASES["answer"])
    rows = [
        observation_row(
            observation_id=f"{session_id}:generation",
            trace_id=session_id,
            type="GENERATION",
            name="planner",
            start_time=at(0),
            end_time=at(1),
            model=model,
            provider=infer_provider(model) if model else None,
            input=payload([{"role": "user", "content": query}], "query") if query else None,
            output=payload({"role": "assistant", "content": reasoning}, str(reasoning_key))
            if reasoning not in (None, "")
            else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            usage_details=payload(usage.details or None, "usage"),
            reported_cost_usd=cost,
            source_format=FORMAT,
        )
    ]
    for i, call in enumerate(calls):
        rows.append(_call_row(call, i, session_id, at(i + 1), at(i + 2), tabular=tabular))
    # Fields with a column of their own are not repeated; null fields say nothing (Parquet
    # has a null for every field a record lacks), so JSONL and Parquet give the same metadata.
    own = {calls_key, reasoning_key, usage_key, created_key}
    metadata = {str(k): v for k, v in record.items() if k not in own and v is not None}
    metadata["endpoint"] = endpoint
    metadata["_sessionlens"] = {
        "synthetic_times": start is None,
        "slot_seconds": slot.total_seconds(),
    }
    trace = trace_record(
        trace_id=session_id,
        session_id=session_id,
        start_time=origin,
        user_id=text(_pick(record, FIELD_ALIASES["user"])[1], "user"),
        name=endpoint,
        input=payload(query, "query"),
        output=payload(answer, "answer"),
        metadata=metadata,
    )
    return trace, rows


def _call_row(
    call: Any, i: int, session_id: str, start: datetime, end: datetime, *, tabular: bool
) -> dict[str, Any]:
    where = f"tool_calls/{i}"
    if not isinstance(call, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(call).__name__}")
    name_key, name = _pick(call, CALL_ALIASES["name"])
    if isinstance(name, Mapping):  # {"function": {"name": ...}}
        name = name.get("name")
    name = text(name, f"{where}/{name_key}")
    if name is None:
        raise ValueError(
            f"{where}: the call names no tool (expected one of {', '.join(CALL_ALIASES['name'])})"
        )
    args_key, args = _pick(call, CALL_ALIASES["args"])
    result_key, result = _pick(call, CALL_ALIASES["result"])
    result = _decode(result, tabular=tabular)
    error = error_text(result)
    if error is None and call.get("error") not in (None, "", False):
        error = (
            text(call["error"], f"{where}/error")
            if isinstance(call["error"], str)
            else (payload(call["error"], f"{where}/error"))
        )
    arguments = payload(_decode(args, tabular=tabular), f"{where}/{args_key}")
    id_key, call_id = _pick(call, CALL_ALIASES["id"])
    used = {name_key, args_key, result_key, id_key}
    extra = {str(k): v for k, v in call.items() if k not in used and v is not None}
    return observation_row(
        observation_id=f"{session_id}:tool:{i}",
        trace_id=session_id,
        parent_observation_id=f"{session_id}:generation",
        type="TOOL",
        name=name,
        start_time=start,
        end_time=end,
        level="ERROR" if error is not None else "DEFAULT",
        status_message=error,
        input=arguments,
        output=payload(result, f"{where}/{result_key}"),
        metadata=payload(extra or None, f"{where}"),
        tool_name=name,
        tool_call_id=text(call_id, f"{where}/{id_key}"),
        tool_arguments=arguments,
        source_format=FORMAT,
    )


register(
    Reader(
        name=FORMAT,
        description="AI-planner tool-call logs: one record per analysis session "
        "(endpoint or job id, tool_calls [{tool, args, result}], reasoning, usage) as JSONL, "
        "Parquet, CSV or a JSON array",
        sniff=_sniff,
        read_document=_read_document,
        read_rows=_read_rows,
    )
)
