"""The spans of one file to loader items: an observation row per span, a trace per trace id.

Owns what needs all spans of a file at once: which LLM spans have LLM spans below them (so a
parent's rolled-up usage is not counted twice), and the trace record of each trace id (name,
session, user, tags, environment from any span; times and input/output from the root span).
A file that holds a trace's root span yields a real trace; one that only holds some of its
children (exporters batch spans as they end, so a trace can straddle files) yields a
placeholder that never overwrites the real one, the same mechanism as Langfuse's
observation-only exports.

Trace records are Langfuse-shaped so that ``langfuse.map_trace`` applies the user's
``InternalRules``; observation rows are canonical already.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ._normalize import decode_json
from ._otel_attrs import check_text, map_span
from ._otel_fields import has_usage, observation_type
from ._otlp_decode import Span

__all__ = ["span_items"]

Item = tuple[str, str, Any]
_LLM_TYPES = ("GENERATION", "EMBEDDING")


def _rollups(spans: list[Span]) -> set[str]:
    """Span ids that have an LLM span with usage below them (in this file)."""
    parents = {s.span_id: s.parent_id for s in spans}
    marked: set[str] = set()
    for span in spans:
        try:
            is_llm = observation_type(span.attributes) in _LLM_TYPES
        except ValueError:
            continue  # reported when the span itself is mapped
        if not (is_llm and has_usage(span.attributes)):
            continue
        seen = {span.span_id}
        parent = span.parent_id
        # ``seen`` stops at a cycle, which a hostile file can make of parent ids.
        while parent is not None and parent in parents and parent not in seen:
            marked.add(parent)
            seen.add(parent)
            parent = parents[parent]
    return marked


def _first(spans: Iterable[Span], *keys: str) -> Any:
    for span in spans:
        for key in keys:
            value = span.attributes.get(key)
            if value not in (None, "", [], {}):
                return value
    return None


def _tags(spans: Iterable[Span]) -> list[Any]:
    tags: list[Any] = []
    for span in spans:
        for key in ("langfuse.trace.tags", "tag.tags"):
            value = span.attributes.get(key)
            value = decode_json(value) if isinstance(value, str) else value
            if isinstance(value, str):
                value = [t.strip() for t in value.split(",") if t.strip()]
            if isinstance(value, list):
                tags += [t for t in value if t not in tags]
            elif value is not None:
                raise ValueError(f"{key}: expected a list of strings, got {value!r:.60}")
    return tags


def _trace_metadata(spans: list[Span], root: Span | None) -> dict[str, Any]:
    md: dict[str, Any] = {}
    for span in spans:
        whole = span.attributes.get("langfuse.trace.metadata")
        whole = decode_json(whole) if isinstance(whole, str) else whole
        if isinstance(whole, Mapping):
            md.update(whole)
        for key, value in span.attributes.items():
            if key.startswith("langfuse.trace.metadata."):
                md[key[len("langfuse.trace.metadata.") :]] = (
                    decode_json(value) if isinstance(value, str) else value
                )
            elif key.startswith("traceloop.association.properties."):
                name = key[len("traceloop.association.properties.") :]
                if name not in ("session_id", "user_id"):
                    md[name] = value
    if root is not None and root.resource:
        md["otel"] = {"resource": root.resource}
    return md


def _trace_record(spans: list[Span], rows: dict[str, dict[str, Any]]) -> tuple[str, Any]:
    roots = sorted((s for s in spans if s.parent_id is None), key=lambda s: s.start)
    root = roots[0] if roots else None
    ordered = ([root] if root else []) + [s for s in spans if s is not root]
    resource = (root or spans[0]).resource
    session = _first(
        ordered,
        "langfuse.session.id",
        "session.id",
        "gen_ai.conversation.id",
        "traceloop.association.properties.session_id",
    )
    user = _first(
        ordered,
        "langfuse.user.id",
        "user.id",
        "enduser.id",
        "traceloop.association.properties.user_id",
    )
    environment = _first(ordered, "langfuse.environment") or resource.get(
        "deployment.environment.name", resource.get("deployment.environment")
    )
    release = _first(ordered, "langfuse.release")
    name = _first(ordered, "langfuse.trace.name")
    tags = _tags(ordered)
    trace_id = spans[0].trace_id
    if root is None:
        stub = {
            "trace_id": trace_id,
            "session_id": session,
            "user_id": user,
            "trace_name": name,
            "tags": tags,
            "environment": environment,
            "release": release,
        }
        return "stub", stub
    row = rows.get(root.span_id, {})
    trace_input = _first(ordered, "langfuse.trace.input")
    trace_output = _first(ordered, "langfuse.trace.output")
    record = {
        "id": trace_id,
        "timestamp": root.start,
        "name": name or root.name,
        "session_id": session,
        "user_id": user,
        "input": trace_input if trace_input is not None else row.get("input"),
        "output": trace_output if trace_output is not None else row.get("output"),
        "metadata": _trace_metadata(spans, root),
        "tags": tags,
        "environment": environment,
        "release": release,
        "version": _first(ordered, "langfuse.version") or resource.get("service.version"),
    }
    return "trace", record


def span_items(
    decoded: Iterable[tuple[str, Span | ValueError]], *, source_format: str
) -> Iterator[Item]:
    """Loader items for the spans of one file (bad spans as ``error`` items)."""
    spans: list[Span] = []
    for where, span in decoded:
        if isinstance(span, ValueError):
            yield "error", where, str(span)
        else:
            spans.append(span)
    rollup = _rollups(spans)
    rows: dict[str, dict[str, Any]] = {}
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
        try:
            row = map_span(span, source_format=source_format, rollup=span.span_id in rollup)
        except ValueError as exc:
            yield "error", span.locator, str(exc)
            continue
        except RecursionError:
            yield "error", span.locator, "a value is nested too deeply to store"
            continue
        rows[span.span_id] = row
        yield "observation_row", span.locator, row
    for trace_spans in by_trace.values():
        where = trace_spans[0].locator
        try:
            kind, record = _trace_record(trace_spans, rows)
            check_text([("trace", json.dumps(record, default=str, ensure_ascii=False))])
        except RecursionError:
            yield "error", where, f"trace {trace_spans[0].trace_id}: nested too deeply to store"
            continue
        except ValueError as exc:
            yield "error", where, f"trace {trace_spans[0].trace_id}: {exc}"
            continue
        yield kind, where, record
