"""OTLP/JSON decoding: ``ExportTraceServiceRequest`` documents into plain :class:`Span` values.

This module owns the wire format and nothing else: the OTLP/JSON encoding rules (hex ids, also
base64 ids as some exporters emit them; 64-bit integers as decimal strings or numbers; enums as
integers or names; every ``AnyValue`` kind; resource and scope attributes). What the attributes
*mean* (GenAI, OpenInference, OpenLLMetry, Langfuse) is ``_otel_attrs``' business, so the
Phoenix reader can hand its spans to the same mapping.

Every problem is a ``ValueError`` naming the field; the reader adds the file and the JSON
pointer of the span.

Spec: https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding and
``opentelemetry/proto/trace/v1/trace.proto``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "Span",
    "SpanEvent",
    "decode_any",
    "decode_attributes",
    "decode_id",
    "decode_int",
    "decode_time",
    "iter_request_spans",
]

#: Deepest nesting of arrays/kvlists accepted in one attribute value. Real payloads nest a few
#: levels; a value nested deeper is hostile or broken and would exhaust the stack later.
MAX_DEPTH = 32

_EPOCH = datetime(1970, 1, 1)
_MAX_NANOS = 253402300799 * 10**9  # 9999-12-31T23:59:59Z, the last instant datetime can hold
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")
_ANY_KINDS = frozenset(
    [
        "stringValue",
        "boolValue",
        "intValue",
        "doubleValue",
        "bytesValue",
        "arrayValue",
        "kvlistValue",
    ]
)


@dataclass
class SpanEvent:
    """A span event (``exception``, ``gen_ai.choice``, ...): name, time, attributes."""

    name: str
    time: datetime | None
    attributes: dict[str, Any]


@dataclass
class Span:
    """One span, source-neutral: OTLP and Phoenix spans both become this.

    ``attributes`` maps each key to a plain Python value (str, bool, int, float, None, list,
    dict); ``scope`` holds ``name``, ``version`` and ``attributes`` of the instrumentation scope.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str | None
    kind: str | None
    start: datetime
    end: datetime | None
    status_code: str
    status_message: str | None
    attributes: dict[str, Any]
    events: list[SpanEvent] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    locator: str = ""


def decode_id(value: Any, size: int, what: str) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as lowercase hex; ``None`` when empty.

    OTLP/JSON writes ids as hex; some exporters write the protobuf JSON default, base64.

    >>> decode_id("5B8EFFF798038103D269B633813FC60C", 16, "traceId")
    '5b8efff798038103d269b633813fc60c'
    >>> decode_id("7uGbfsPBsXQ=", 8, "spanId")
    'eee19b7ec3c1b174'
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a hex string, got {type(value).__name__}")
    if len(value) == 2 * size and _HEX.match(value):
        text = value.lower()
    else:
        try:
            text = value.replace("-", "+").replace("_", "/")  # base64url too
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != size:
            raise ValueError(
                f"{what}: expected {2 * size} hex digits (or base64 of {size} bytes), "
                f"got {value[:60]!r}"
            )
        text = raw.hex()
    if not text.strip("0"):
        raise ValueError(f"{what}: an all-zero id is invalid")
    return text


def decode_int(value: Any, what: str) -> int:
    """A 64-bit integer written as a JSON number or a decimal string.

    >>> decode_int("1544712660000000000", "t"), decode_int(42, "n")
    (1544712660000000000, 42)
    """
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value.strip()):
        number = int(value.strip())
    else:
        shown = value if isinstance(value, (int, float)) else str(value)[:40]
        raise ValueError(f"{what}: expected an integer, got {shown!r}")
    if not -(2**63) <= number < 2**64:
        raise ValueError(f"{what}: {number} does not fit in 64 bits")
    return number


def decode_time(value: Any, what: str) -> datetime | None:
    """Nanoseconds since the epoch (``fixed64``) as naive UTC; 0 or absent means unset.

    >>> decode_time("1544712660000000000", "startTimeUnixNano")
    datetime.datetime(2018, 12, 13, 14, 51)
    """
    if value is None or value == "" or value == 0 or value == "0":
        return None
    nanos = decode_int(value, what)
    if not 0 < nanos <= _MAX_NANOS:
        raise ValueError(f"{what}: {nanos} ns is outside the years 1970-9999")
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def decode_any(value: Any, what: str, depth: int = 0) -> Any:
    """An ``AnyValue`` as a plain Python value (``{}`` is an empty value: ``None``).

    >>> decode_any({"kvlistValue": {"values": [{"key": "n", "value": {"intValue": "3"}}]}}, "a")
    {'n': 3}
    """
    if depth > MAX_DEPTH:
        raise ValueError(f"{what}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: expected an AnyValue object, got {type(value).__name__}")
    kinds = [k for k in value if k in _ANY_KINDS]
    if not kinds:
        if value:
            raise ValueError(f"{what}: unknown AnyValue kind {', '.join(map(str, value))[:60]}")
        return None
    if len(kinds) > 1:
        raise ValueError(f"{what}: an AnyValue holds one kind, got {', '.join(kinds)}")
    kind = kinds[0]
    inner = value[kind]
    if kind == "stringValue":
        if not isinstance(inner, str):
            raise ValueError(f"{what}: stringValue must be a string")
        return inner
    if kind == "boolValue":
        if not isinstance(inner, bool):
            raise ValueError(f"{what}: boolValue must be true or false")
        return inner
    if kind == "intValue":
        return decode_int(inner, what)
    if kind == "doubleValue":
        return _double(inner, what)
    if kind == "bytesValue":
        if not isinstance(inner, str):
            raise ValueError(f"{what}: bytesValue must be a base64 string")
        try:
            base64.b64decode(inner, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{what}: bytesValue is not valid base64") from None
        return inner  # kept as base64 text: JSON columns cannot hold raw bytes
    values = inner.get("values", []) if isinstance(inner, Mapping) else None
    if not isinstance(values, list):
        raise ValueError(f"{what}: {kind} must be an object with a 'values' list")
    # Nested values report the attribute they belong to: a path a hundred levels long helps
    # nobody find the problem.
    if kind == "arrayValue":
        return [decode_any(v, what, depth + 1) for v in values]
    return decode_attributes(values, what, depth + 1, nested=True)


def _double(inner: Any, what: str) -> float | str:
    if isinstance(inner, bool):
        raise ValueError(f"{what}: doubleValue must be a number")
    if isinstance(inner, (int, float)):
        return float(inner)
    # Protobuf JSON spells the non-finite doubles as strings; JSON text cannot hold them as
    # numbers, so they stay strings.
    if inner in ("NaN", "Infinity", "-Infinity"):
        return str(inner)
    if isinstance(inner, str):
        try:
            return float(inner)
        except ValueError:
            pass
    raise ValueError(f"{what}: doubleValue must be a number, got {str(inner)[:40]!r}")


def decode_attributes(
    values: Any, what: str, depth: int = 0, *, nested: bool = False
) -> dict[str, Any]:
    """A ``KeyValue`` list as a dict (a repeated key keeps its last value)."""
    if values is None:
        return {}
    if not isinstance(values, list):
        raise ValueError(f"{what}: expected a list of key/value objects")
    out: dict[str, Any] = {}
    for i, item in enumerate(values):
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise ValueError(f"{what}[{i}]: expected {{'key': string, 'value': AnyValue}}")
        key = item["key"]
        out[key] = decode_any(item.get("value") or {}, what if nested else f"{what}.{key}", depth)
    return out


def _enum(value: Any, names: tuple[str, ...], prefix: str, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str):
        name = value.upper().removeprefix(prefix)
        if name in names:
            return name
    raise ValueError(f"{what}: unknown value {repr(value)[:40]}")


def _events(raw: Any) -> list[SpanEvent]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("events: expected a list")
    events = []
    for i, event in enumerate(raw):
        if not isinstance(event, Mapping):
            raise ValueError(f"events[{i}]: expected an object")
        name = event.get("name")
        if not isinstance(name, str):
            raise ValueError(f"events[{i}].name: expected a string")
        events.append(
            SpanEvent(
                name,
                decode_time(event.get("timeUnixNano"), f"events[{i}].timeUnixNano"),
                decode_attributes(event.get("attributes"), f"events[{i}].attributes"),
            )
        )
    return events


def decode_span(raw: Any, resource: dict[str, Any], scope: dict[str, Any], locator: str) -> Span:
    """One OTLP ``Span`` object."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a span object, got {type(raw).__name__}")
    trace_id = decode_id(raw.get("traceId"), 16, "traceId")
    span_id = decode_id(raw.get("spanId"), 8, "spanId")
    if trace_id is None or span_id is None:
        raise ValueError("missing " + ("traceId" if trace_id is None else "spanId"))
    start = decode_time(raw.get("startTimeUnixNano"), "startTimeUnixNano")
    if start is None:
        raise ValueError("missing startTimeUnixNano")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name: expected a string, got {type(name).__name__}")
    status = raw.get("status") or {}
    if not isinstance(status, Mapping):
        raise ValueError("status: expected an object")
    message = status.get("message")
    if message is not None and not isinstance(message, str):
        raise ValueError("status.message: expected a string")
    kind = raw.get("kind")
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=decode_id(raw.get("parentSpanId"), 8, "parentSpanId"),
        name=name or None,
        kind=None if kind is None else _enum(kind, _SPAN_KINDS, "SPAN_KIND_", "kind"),
        start=start,
        end=decode_time(raw.get("endTimeUnixNano"), "endTimeUnixNano"),
        status_code=_enum(status.get("code", 0), _STATUS_CODES, "STATUS_CODE_", "status.code"),
        status_message=message or None,
        attributes=decode_attributes(raw.get("attributes"), "attributes"),
        events=_events(raw.get("events")),
        resource=resource,
        scope=scope,
        locator=locator,
    )


def _scope(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError("scope: expected an object")
    out: dict[str, Any] = {}
    for key in ("name", "version"):
        if raw.get(key) not in (None, ""):
            if not isinstance(raw[key], str):
                raise ValueError(f"scope.{key}: expected a string")
            out[key] = raw[key]
    attrs = decode_attributes(raw.get("attributes"), "scope.attributes")
    if attrs:
        out["attributes"] = attrs
    return out


def iter_request_spans(doc: Any, base: str = "") -> Iterator[tuple[str, Span | ValueError]]:
    """Every span of one ``ExportTraceServiceRequest`` with its JSON pointer.

    A malformed span (or resource, or scope) comes out as a ``ValueError`` at its position,
    so the rest of the request still loads.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("resourceSpans", []), list):
        yield base or "/", ValueError("expected an object with a 'resourceSpans' list")
        return
    for r, resource_spans in enumerate(doc.get("resourceSpans", [])):
        where = f"{base}/resourceSpans/{r}"
        try:
            if not isinstance(resource_spans, Mapping):
                raise ValueError("expected a resourceSpans object")
            resource_obj = resource_spans.get("resource") or {}
            if not isinstance(resource_obj, Mapping):
                raise ValueError("resource: expected an object")
            resource = decode_attributes(resource_obj.get("attributes"), "resource.attributes")
            # ``instrumentationLibrarySpans`` is the pre-1.0 name of ``scopeSpans``.
            scopes = resource_spans.get(
                "scopeSpans", resource_spans.get("instrumentationLibrarySpans")
            )
            if not isinstance(scopes, list | None):
                raise ValueError("scopeSpans: expected a list")
        except ValueError as exc:
            yield where, exc
            continue
        for s, scope_spans in enumerate(scopes or []):
            at = f"{where}/scopeSpans/{s}"
            try:
                if not isinstance(scope_spans, Mapping):
                    raise ValueError("expected a scopeSpans object")
                scope = _scope(scope_spans.get("scope", scope_spans.get("instrumentationLibrary")))
                spans = scope_spans.get("spans") or []
                if not isinstance(spans, list):
                    raise ValueError("spans: expected a list")
            except ValueError as exc:
                yield at, exc
                continue
            for i, raw in enumerate(spans):
                locator = f"{at}/spans/{i}"
                try:
                    yield locator, decode_span(raw, resource, scope, locator)
                except ValueError as exc:
                    yield locator, exc
                except RecursionError:
                    yield locator, ValueError("span nested too deeply to decode")
