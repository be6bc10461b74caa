"""OTLP/JSON loader: the real proto example, decoding rules, roll-ups, hostile input."""

from __future__ import annotations

import base64
import json
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens import TraceFormatError

from .conftest import SHARED, snapshot

EXAMPLE = SHARED / "otlp" / "opentelemetry-proto-example-trace.json"
TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_767_261_600_000_000_000  # 2026-01-01T10:00:00Z in ns


def any_value(value: Any) -> dict[str, Any]:
    """A Python value as an OTLP AnyValue (the encoding the writer under test must read)."""
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
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"kvlistValue": {"values": kv(value)}}


def kv(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attrs.items()]


def span(
    span_id: str, *, parent: str | None = None, attrs: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": f"span {span_id[-2:]}",
        "startTimeUnixNano": str(T0 + int(span_id[-2:], 16) * 10**9),
        "endTimeUnixNano": str(T0 + (int(span_id[-2:], 16) + 1) * 10**9),
        "attributes": kv(attrs or {}),
    }
    if parent:
        out["parentSpanId"] = parent
    out.update(extra)
    return out


def request(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": kv(resource or {"service.name": "svc"})},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


def write(tmp_path: Path, doc: Any, name: str = "spans.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def obs(con: duckdb.DuckDBPyConnection, span_id: str) -> dict[str, Any]:
    rel = con.sql("SELECT * FROM observations WHERE observation_id = ?", params=[span_id])
    row = rel.fetchone()
    assert row is not None, f"observation {span_id} not loaded"
    return dict(zip(rel.columns, row, strict=True))


def test_the_opentelemetry_proto_example_loads(con: duckdb.DuckDBPyConnection) -> None:
    result = sl.load(con, EXAMPLE, strict=True)
    assert result.files[0].format == "otlp-json"
    assert (result.traces, result.observations, result.rejected) == (1, 1, 0)
    row = obs(con, "eee19b7ec3c1b174")
    assert row["trace_id"] == TRACE  # hex ids are lowercased
    assert row["parent_observation_id"] == "eee19b7ec3c1b173"
    assert (row["type"], row["name"], row["level"]) == ("SPAN", "I'm a server span", "DEFAULT")
    assert row["start_time"] == datetime(2018, 12, 13, 14, 51)
    assert row["end_time"] == datetime(2018, 12, 13, 14, 51, 1)
    assert json.loads(row["metadata"]) == {
        "attributes": {"my.span.attr": "some value"},
        "otel": {
            "span_kind": "SERVER",
            "resource": {"service.name": "my.service"},
            "scope": {
                "name": "my.library",
                "version": "1.0.0",
                "attributes": {"my.scope.attribute": "some scope attribute"},
            },
        },
    }
    # The parent span is not in the file: the trace is a placeholder until its root arrives.
    trace = con.execute(
        "SELECT is_stub, start_time, end_time, session_id FROM traces WHERE trace_id = ?", [TRACE]
    ).fetchone()
    assert trace == (True, datetime(2018, 12, 13, 14, 51), datetime(2018, 12, 13, 14, 51, 1),
                     f"trace:{TRACE}")  # fmt: skip
    assert sl.load(con, EXAMPLE).written == {"traces": 0, "observations": 0, "scores": 0}


def test_hex_and_base64_ids_decode_alike(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    hex_doc = request(span("00000000000000a1"), span("00000000000000a2", parent="00000000000000a1"))
    b64 = lambda h: base64.b64encode(bytes.fromhex(h)).decode()  # noqa: E731
    b64_doc = json.loads(json.dumps(hex_doc))
    for s in b64_doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        s["traceId"] = b64(TRACE)
        s["spanId"] = b64(s["spanId"]).rstrip("=")  # some exporters drop the padding
        if "parentSpanId" in s:
            s["parentSpanId"] = b64(s["parentSpanId"])
    hex_doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = TRACE.upper()
    sl.load(con, write(tmp_path, hex_doc, "hex.json"), strict=True)
    before = snapshot(con)["observations"]
    result = sl.load(con, write(tmp_path, b64_doc, "b64.json"), strict=True)
    ids = con.sql("SELECT observation_id, parent_observation_id FROM observations ORDER BY 1")
    assert ids.fetchall() == [("00000000000000a1", None), ("00000000000000a2", "00000000000000a1")]
    # Same ids, same content: only source_file differs, so the rows are rewritten in place.
    assert result.observations == 2
    strip = [r[:-3] for r in before]
    assert [r[:-3] for r in snapshot(con)["observations"]] == strip


def test_int64_strings_and_numbers_enum_ints_and_names(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1"}
    as_text = span("00000000000000b1", attrs={**attrs, "gen_ai.usage.input_tokens": 7})
    as_text.update(kind=3, status={"code": 2, "message": "boom"})
    as_numbers = span("00000000000000b2", attrs=attrs, kind="SPAN_KIND_CLIENT")
    as_numbers["attributes"].append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": 7}})
    as_numbers.update(status={"code": "STATUS_CODE_ERROR", "message": "boom"})
    as_numbers["startTimeUnixNano"] = int(as_text["startTimeUnixNano"])
    as_numbers["endTimeUnixNano"] = int(as_text["endTimeUnixNano"])
    sl.load(con, write(tmp_path, request(as_text, as_numbers)), strict=True)
    a, b = obs(con, "00000000000000b1"), obs(con, "00000000000000b2")
    for key in ("start_time", "end_time", "input_tokens", "level", "status_message", "type"):
        assert a[key] == b[key]
    assert (b["input_tokens"], b["level"], b["status_message"]) == (7, "ERROR", "boom")
    assert json.loads(b["metadata"])["otel"]["span_kind"] == "CLIENT"


def test_every_anyvalue_kind(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    values = [
        {"key": "s", "value": {"stringValue": "text"}},
        {"key": "b", "value": {"boolValue": False}},
        {"key": "i", "value": {"intValue": "9007199254740993"}},  # beyond double precision
        {"key": "d", "value": {"doubleValue": 2.5}},
        {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "bytes", "value": {"bytesValue": base64.b64encode(b"\x00\xff").decode()}},
        {"key": "empty", "value": {}},
        {
            "key": "arr",
            "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "x"}]}},
        },
        {
            "key": "kv",
            "value": {
                "kvlistValue": {
                    "values": [
                        {"key": "inner", "value": {"arrayValue": {"values": [{"boolValue": True}]}}}
                    ]
                }
            },
        },
    ]
    doc = request(span("00000000000000c1", attributes=values))
    sl.load(con, write(tmp_path, doc), strict=True)
    assert json.loads(obs(con, "00000000000000c1")["metadata"])["attributes"] == {
        "s": "text",
        "b": False,
        "i": 9007199254740993,
        "d": 2.5,
        "nan": "NaN",
        "bytes": "AP8=",
        "empty": None,
        "arr": [1, "x"],
        "kv": {"inner": [True]},
    }


def test_json_lines_one_request_per_line(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    lines = [
        json.dumps(request(span("00000000000000d1"))),
        "",
        "{not json",
        json.dumps(request(span("00000000000000d2", traceId=42))),
        json.dumps(request(span("00000000000000d3", parent="00000000000000d1"))),
    ]
    path = tmp_path / "collector.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = sl.load(con, path)
    assert result.files[0].format == "otlp-json"
    assert (result.observations, result.rejected) == (2, 2)
    assert con.sql("SELECT locator, error FROM load_errors ORDER BY locator").fetchall() == [
        ("line 3", "invalid JSON: Expecting property name enclosed in double quotes"),
        ("line 4 /resourceSpans/0/scopeSpans/0/spans/0", "traceId: expected a hex string, got int"),
    ]
    # The two lines belong to one trace: the root in line 1, a child in line 5.
    assert con.sql("SELECT count(*), bool_or(is_stub) FROM traces").fetchone() == (1, False)
    with pytest.raises(TraceFormatError, match=r"collector\.jsonl, line 3: invalid JSON"):
        sl.load(sl.connect(), path, strict=True)


POINTER = "/resourceSpans/0/scopeSpans/0/spans/1"
BAD_SPANS = {
    "id-number": ({"traceId": 12}, "traceId: expected a hex string, got int"),
    "id-short": ({"spanId": "abc"}, "spanId: expected 16 hex digits"),
    "id-zero": ({"traceId": "0" * 32}, "traceId: an all-zero id is invalid"),
    "time-word": ({"startTimeUnixNano": "yesterday"}, "startTimeUnixNano: expected an integer"),
    "time-bool": ({"endTimeUnixNano": True}, "endTimeUnixNano: expected an integer"),
    "time-huge": (
        {"startTimeUnixNano": "99999999999999999999"},
        "startTimeUnixNano: 99999999999999999999 does not fit in 64 bits",
    ),
    "time-missing": ({"startTimeUnixNano": "0"}, "missing startTimeUnixNano"),
    "kind": ({"kind": 9}, "kind: unknown value 9"),
    "status": ({"status": {"code": "BROKEN"}}, "status.code: unknown value 'BROKEN'"),
    "attr-type": (
        {"attributes": [{"key": "a", "value": {"stringValue": 5}}]},
        "attributes.a: stringValue must be a string",
    ),
    "attr-two-kinds": (
        {"attributes": [{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}]},
        "attributes.a: an AnyValue holds one kind",
    ),
    "attr-float-int": (
        {"attributes": [{"key": "a", "value": {"intValue": "1.5"}}]},
        "attributes.a: expected an integer",
    ),
    "negative-tokens": (
        {"attributes": kv({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": -3})},
        "input tokens: negative count -3",
    ),
    "unknown-type": (
        {"attributes": kv({"langfuse.observation.type": "banana"})},
        "langfuse.observation.type: unknown type 'banana'",
    ),
}


@pytest.mark.parametrize("change", BAD_SPANS.values(), ids=list(BAD_SPANS))
def test_a_bad_span_is_rejected_with_its_pointer(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, change: tuple[dict[str, Any], str]
) -> None:
    fields, reason = change
    doc = request(span("00000000000000e1"), {**span("00000000000000e2"), **fields})
    path = write(tmp_path, doc)
    sl.load(con, EXAMPLE)
    before = snapshot(con)
    with pytest.raises(TraceFormatError, match=re.escape(f"{POINTER}: {reason}")):
        sl.load(con, path, strict=True)
    assert snapshot(con) == before  # strict: the file leaves the database as it was
    result = sl.load(con, path)
    assert result.files[0].observations == 1  # the good span of the same file loads
    errors = con.sql("SELECT locator, error FROM load_errors").fetchall()
    assert len(errors) == 1 and errors[0][0] == POINTER and errors[0][1].startswith(reason)


def test_agent_roll_up_usage_is_not_counted_twice(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "booker"}
    summed = {"gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 30}
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1"}
    doc = request(
        span("00000000000000f1", attrs={**agent, **summed}),
        span("00000000000000f2", parent="00000000000000f1",
             attrs={**chat, "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10}),
        span("00000000000000f3", parent="00000000000000f1",
             attrs={**chat, "gen_ai.usage.input_tokens": 200, "gen_ai.usage.output_tokens": 20}),
    )  # fmt: skip
    sl.load(con, write(tmp_path, doc), strict=True)
    sums = con.sql(
        "SELECT sum(input_tokens), sum(output_tokens), sum(total_tokens) FROM observations"
    )
    assert sums.fetchone() == (300, 30, 330)
    root = obs(con, "00000000000000f1")
    assert (root["type"], root["input_tokens"], root["total_tokens"]) == ("AGENT", None, None)
    assert json.loads(root["usage_details"]) == {
        "gen_ai.usage.input_tokens": 300,
        "gen_ai.usage.output_tokens": 30,
    }


def test_an_llm_span_wrapping_llm_spans_keeps_no_tokens(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # LangChain under OpenInference: the chat model span (LLM) wraps the OpenAI client span
    # (LLM); both report the same call's usage and cost.
    llm = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"}
    usage = {"llm.token_count.prompt": 50, "llm.token_count.completion": 5, "llm.cost.total": 0.25}
    doc = request(
        span("00000000000000a1", attrs={"openinference.span.kind": "CHAIN"}),
        span("00000000000000a2", parent="00000000000000a1", attrs={**llm, **usage}),
        span("00000000000000a3", parent="00000000000000a2", attrs={**llm, **usage}),
    )
    sl.load(con, write(tmp_path, doc), strict=True)
    totals = con.sql("SELECT sum(total_tokens), sum(reported_cost_usd) FROM observations")
    assert totals.fetchone() == (55, 0.25)
    assert obs(con, "00000000000000a2")["total_tokens"] is None


# -- hostile input -------------------------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "bottom"}
    for i in range(depth):
        key = "k" if i % 2 else None
        value = (
            {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
            if key
            else {"arrayValue": {"values": [value]}}
        )
    return value


HOSTILE = {
    "deep-anyvalue": (
        [{"key": "deep", "value": _nested(60)}],
        "attributes.deep: nested deeper than 32 levels",
    ),
    "deep-json-text": (
        kv({"langfuse.observation.input": "[" * 200_000 + "]" * 200_000}),
        "a value is nested too deeply to store",
    ),
    "lone-surrogate-attr": (kv({"note": "a\ud800b"}), "metadata: invalid Unicode"),
    "lone-surrogate-io": (kv({"input.value": "\udfff"}), "input: invalid Unicode"),
}


@pytest.mark.parametrize("case", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_attribute_values_are_rejected(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, case: tuple[list[Any], str]
) -> None:
    attributes, reason = case
    doc = request(span("00000000000000e1"), span("00000000000000e2", attributes=attributes))
    path = write(tmp_path, doc)  # json.dumps escapes lone surrogates as \ud800
    sl.load(con, EXAMPLE)
    before = snapshot(con)
    with pytest.raises(TraceFormatError, match=re.escape(f"{POINTER}: {reason}")):
        sl.load(con, path, strict=True)
    assert snapshot(con) == before
    assert sl.load(con, path).rejected == 1


def test_a_lone_surrogate_in_a_span_name_is_rejected(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = write(tmp_path, request(span("00000000000000e1", name="\ud83d oops")))
    with pytest.raises(TraceFormatError, match="name: invalid Unicode"):
        sl.load(con, path, strict=True)


def test_huge_values_load_whole(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    huge = "x" * 3_000_000
    attrs = {"input.value": huge, "input.mime_type": "text/plain", "big.list": ["y"] * 20_000}
    sl.load(con, write(tmp_path, request(span("00000000000000e1", attrs=attrs))), strict=True)
    row = obs(con, "00000000000000e1")
    assert json.loads(row["input"]) == huge
    assert len(json.loads(row["metadata"])["attributes"]["big.list"]) == 20_000


def test_broken_files_never_half_load(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    sl.load(con, EXAMPLE)
    before = snapshot(con)
    deep = tmp_path / "deep.json"
    deep.write_text('{"resourceSpans": ' + "[" * 100_000 + "]" * 100_000 + "}")
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps(request(span("00000000000000e1"))).encode()[:-2] + b"\xe9}]}")
    for path, reason in ((deep, "JSON nested too deeply"), (latin, "invalid UTF-8")):
        with pytest.raises(TraceFormatError, match=reason):
            sl.load(con, path, strict=True)
        assert snapshot(con) == before
    assert sl.load(con, [deep, latin]).rejected == 2  # one load_errors row per file


def test_a_parent_cycle_does_not_hang(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    chat = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5}
    doc = request(
        span("00000000000000e1", parent="00000000000000e2", attrs=chat),
        span("00000000000000e2", parent="00000000000000e1", attrs=chat),
    )
    result = sl.load(con, write(tmp_path, doc), strict=True)
    assert result.observations == 2
    assert con.sql("SELECT is_stub FROM traces").fetchall() == [(True,)]  # no root span


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ["traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano"]
FIELDS += ["endTimeUnixNano", "status", "attributes", "events"]


@settings(max_examples=40, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES)
def test_any_value_in_any_span_field_loads_or_is_rejected(field: str, value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bad = {**span("00000000000000e2"), field: value}
        path = write(Path(tmp), request(span("00000000000000e1"), bad))
        con = sl.connect()
        sl.load(con, EXAMPLE)
        before = snapshot(con)
        try:
            strict = sl.load(con, path, strict=True)
        except TraceFormatError as exc:
            assert exc.locator == POINTER
            assert snapshot(con) == before
            lenient = sl.load(con, path)
            assert (lenient.files[0].observations, lenient.rejected) == (1, 1)
        else:
            assert strict.files[0].observations == 2
