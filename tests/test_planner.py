"""AI-planner tool-call logs (format ``planner-log``): JSONL and Parquet give the same tables,
calls keep their order and results (null or error), bad records are rejected with their
position, and aliases of field names are understood."""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sessionlens as sl
from sessionlens.loaders._paths import _source
from sessionlens.loaders.files import detect

from .conftest import FRAMEWORK_TRACES, ROOT, SHARED, snapshot

SAMPLE = ROOT / "tests" / "data" / "planner"
JSONL = SAMPLE / "sample.jsonl"
PARQUET = SAMPLE / "sample.parquet"


def records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in JSONL.read_text().splitlines()]


def canonical(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    """Every canonical table without the columns that name the file."""
    out = {}
    for table in ("traces", "observations", "sessions", "tool_calls", "conversation_turns"):
        cols = [c for c in con.table(table).columns if c not in ("loaded_at", "source_file")]
        out[table] = sorted(
            con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr
        )
    return out


def loaded(path: Path, **kwargs: Any) -> duckdb.DuckDBPyConnection:
    con = sl.connect()
    result = sl.load(con, path, strict=True, **kwargs)
    assert result.files[0].format == "planner-log"
    return con


def test_jsonl_and_parquet_give_the_same_tables():
    from_jsonl = canonical(loaded(JSONL))
    from_parquet = canonical(loaded(PARQUET))
    assert from_jsonl == from_parquet
    assert len(from_jsonl["traces"]) == len(records())


def test_each_record_is_a_session_with_calls_in_order():
    con = loaded(JSONL)
    for record in records():
        calls = con.execute(
            "SELECT tool_name, arguments::VARCHAR, result::VARCHAR, is_error FROM tool_calls "
            "WHERE session_id = ? ORDER BY seq",
            [record["job_id"]],
        ).fetchall()
        want = [
            (
                c["tool"],
                json.dumps(c["args"]),
                None if c["result"] is None else json.dumps(c["result"]),
                (isinstance(c["result"], dict) and "error" in c["result"])
                or (isinstance(c["result"], str) and c["result"].startswith("Error")),
            )
            for c in record["tool_calls"]
        ]
        assert calls == want
    # null results are fine: the call is there, its result is NULL
    nulls = con.execute("SELECT count(*) FROM tool_calls WHERE result IS NULL").fetchone()
    assert nulls == (sum(c["result"] is None for r in records() for c in r["tool_calls"]),)


def test_the_generation_carries_usage_model_and_reasoning():
    con = loaded(JSONL)
    for record in records():
        row = con.execute(
            "SELECT o.model, o.provider, o.input_tokens, o.output_tokens, o.total_tokens, "
            "o.output->>'$.content', t.name, json_extract_string(t.metadata, '$.endpoint'), "
            "t.user_id FROM observations o JOIN traces t USING (trace_id) "
            "WHERE o.type = 'GENERATION' AND t.trace_id = ?",
            [record["job_id"]],
        ).fetchone()
        usage = record["usage"]
        assert row == (
            record["model"],
            "openai",
            usage["input_tokens"],
            usage["output_tokens"],
            usage["total_tokens"],
            record["reasoning"],
            record["endpoint"],
            record["endpoint"],
            record["user_id"],
        )


def test_times_are_spread_over_the_duration():
    con = loaded(JSONL)
    for record in records():
        spans = con.execute(
            "SELECT type, start_time, end_time FROM observations WHERE trace_id = ? "
            "ORDER BY start_time",
            [record["job_id"]],
        ).fetchall()
        created = sl.loaders._normalize.parse_timestamp(record["created_at"])
        duration = timedelta(milliseconds=record["duration_ms"])
        assert spans[0][:2] == ("GENERATION", created)
        assert spans[-1][2] == created + duration
        for (_, _, end), (_, start, _) in pairwise(spans):
            assert end == start  # back to back, in order
        trace = con.execute(
            "SELECT start_time, end_time FROM traces WHERE trace_id = ?", [record["job_id"]]
        ).fetchone()
        assert trace == (created, created + duration)


def test_reload_writes_nothing():
    con = loaded(JSONL)
    before = snapshot(con)
    assert sl.load(con, JSONL).written == {"traces": 0, "observations": 0, "scores": 0}
    # the Parquet copy holds the same sessions: nothing new either
    assert sl.load(con, PARQUET).written == {"traces": 0, "observations": 0, "scores": 0}
    assert snapshot(con) == before


def test_aliases_are_understood(con, tmp_path):
    record = {
        "run_id": "r-1",
        "route": "/jobs/forecast",
        "timestamp": 1772445600,  # epoch seconds
        "duration_s": 4,
        "thoughts": "Forecast with the last 90 days.",
        "prompt_tokens": 300,
        "completion_tokens": 40,
        "model_name": "claude-sonnet-4-5",
        "cost_usd": 0.0021,
        "question": "Forecast next month's signups",
        "answer": "About 12,400.",
        "steps": [
            {"name": "load_series", "arguments": '{"days": 90}', "output": [1, 2, 3]},
            {"tool_name": "fit", "params": {"model": "ets"}, "error": "did not converge"},
            {"function": {"name": "fit"}, "kwargs": {"model": "naive"}, "return": 12400},
        ],
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps([record]))
    assert detect(_source(path), [record]) == "planner-log"
    sl.load(con, path, strict=True)
    trace = con.execute(
        "SELECT trace_id, name, start_time, end_time, input, output FROM traces"
    ).fetchone()
    assert trace is not None
    assert trace[:2] == ("r-1", "/jobs/forecast")
    assert (str(trace[2]), str(trace[3])) == ("2026-03-02 10:00:00", "2026-03-02 10:00:04")
    assert [json.loads(v) for v in trace[4:]] == [record["question"], record["answer"]]
    gen = con.execute(
        "SELECT model, provider, input_tokens, output_tokens, reported_cost_usd, "
        "output->>'$.content' FROM observations WHERE type = 'GENERATION'"
    ).fetchone()
    assert gen == ("claude-sonnet-4-5", "anthropic", 300, 40, 0.0021, record["thoughts"])
    calls = con.execute(
        "SELECT tool_name, arguments::VARCHAR, result::VARCHAR, is_error FROM tool_calls "
        "ORDER BY seq"
    ).fetchall()
    assert calls == [
        ("load_series", '{"days": 90}', "[1, 2, 3]", False),
        ("fit", '{"model": "ets"}', None, True),
        ("fit", '{"model": "naive"}', "12400", False),
    ]
    status = con.execute(
        "SELECT status_message, metadata::VARCHAR FROM observations WHERE level = 'ERROR'"
    ).fetchall()
    assert status == [("did not converge", '{"error": "did not converge"}')]


def test_without_time_or_duration_the_clock_is_synthetic(con, tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(
        json.dumps({"endpoint": "/x", "tool_calls": [{"tool": "a"}, {"tool": "b"}]}) + "\n"
    )
    sl.load(con, path, strict=True)
    rows = con.execute("SELECT start_time FROM observations ORDER BY start_time").fetchall()
    assert [str(r[0]) for r in rows] == [
        "2000-01-01 00:00:00",
        "2000-01-01 00:00:01",
        "2000-01-01 00:00:02",
    ]
    note = con.execute(
        "SELECT trace_id LIKE 'planner-%', "
        "json_extract(metadata, '$._sessionlens.synthetic_times') FROM traces"
    ).fetchone()
    assert note == (True, "true")


BAD = {
    "calls not a list": ({"tool_calls": "run_sql"}, r"tool_calls: expected a list of tool calls"),
    "call without a tool": ({"tool_calls": [{"args": {}}]}, r"tool_calls/0: the call names no"),
    "negative tokens": (
        {"usage": {"input_tokens": -5}},
        r"usage: usage.input_tokens: negative count",
    ),
    "bad time": ({"created_at": "soon"}, r"created_at: not a timestamp"),
    "bad duration": ({"duration_ms": "long"}, r"duration_ms: expected a number"),
    "lone surrogate": ({"reasoning": "\ud83d"}, r"reasoning: lone surrogate"),
    "id object": ({"job_id": {"a": 1}}, r"job_id: expected a string id"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_jsonl_records_are_rejected_with_their_line(con, tmp_path, case):
    change, reason = BAD[case]
    rows = records()
    rows[2] = {**rows[2], **change}
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sl.load(con, FRAMEWORK_TRACES / "pydantic-ai-tools-2025-12-04.trace.json")
    before = snapshot(con)
    with pytest.raises(sl.TraceFormatError, match=rf"log\.jsonl, line 3: {reason}"):
        sl.load(con, path, strict=True)
    assert snapshot(con) == before
    result = sl.load(con, path)
    assert result.rejected == 1
    assert con.execute("SELECT locator FROM load_errors").fetchall() == [("line 3",)]
    kept = con.execute("SELECT count(*) FROM traces WHERE source_format = 'planner-log'").fetchone()
    assert kept == (len(rows) - 1,)
    assert con.execute(
        "SELECT count(*) FROM observations WHERE trace_id = ?", [records()[2]["job_id"]]
    ).fetchone() == (0,)


def test_bad_parquet_rows_are_rejected_with_their_row(con, tmp_path):
    table = pq.read_table(PARQUET)
    usage = table.column("usage").to_pylist()
    usage[1] = {"input_tokens": -1, "output_tokens": 2, "total_tokens": 1}
    bad = table.set_column(
        table.column_names.index("usage"),
        "usage",
        pa.array(usage, table.schema.field("usage").type),
    )
    path = tmp_path / "log.parquet"
    pq.write_table(bad, path)
    with pytest.raises(sl.TraceFormatError, match=r"log\.parquet, row 2: usage: .*negative"):
        sl.load(con, path, strict=True)
    result = sl.load(con, path)
    assert (result.rejected, result.traces) == (1, table.num_rows - 1)
    assert con.execute("SELECT locator FROM load_errors").fetchall() == [("row 2",)]


def test_hostile_values_never_crash(con, tmp_path):
    huge = "r" * 3_000_000
    deep = "[" * 3000 + "]" * 3000
    lines = [
        json.dumps({"job_id": "huge", "endpoint": "/e", "reasoning": huge, "tool_calls": []}),
        '{"job_id": "deep", "endpoint": "/e", "tool_calls": [{"tool": "t", "args": ' + deep + "}]}",
        json.dumps({"job_id": "types", "endpoint": 5, "tool_calls": [None], "reasoning": 1}),
        json.dumps({"job_id": "ok", "endpoint": "/e", "tool_calls": [{"tool": "t"}]}),
    ]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    before = snapshot(con)
    with pytest.raises(sl.TraceFormatError, match=r"line 2: JSON nested too deeply"):
        sl.load(con, path, strict=True)
    assert snapshot(con) == before
    result = sl.load(con, path)
    errors = con.execute("SELECT locator, error FROM load_errors ORDER BY 1").fetchall()
    assert errors == [
        ("line 2", "JSON nested too deeply to read (over about 1000 levels)"),
        ("line 3", "tool_calls/0: expected an object, got NoneType"),
    ]
    assert result.rejected == 2
    got = con.execute("SELECT trace_id, name FROM traces ORDER BY 1").fetchall()
    assert got == [("huge", "/e"), ("ok", "/e")]
    size = con.execute(
        "SELECT length(output->>'$.content') FROM observations WHERE trace_id = 'huge'"
    ).fetchone()
    assert size == (len(huge),)


def test_other_formats_are_not_claimed():
    tau = SHARED / "tau-bench" / "gpt-4o-airline.json"
    assert detect(_source(tau), json.loads(tau.read_text())) == "chat-transcript"
    assert detect(_source(JSONL)) == "planner-log"
    assert detect(_source(PARQUET)) == "planner-log"


def test_a_usage_string_nested_too_deeply_rejects_its_record_only(con, tmp_path):
    """Found by the fuzzer: json.loads of a deeply nested payload string raised RecursionError
    out of the loader instead of rejecting the record."""
    rows = records()
    rows[0]["usage"] = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "planner.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = sl.load(con, path, progress=False)
    assert result.rejected == 1
    assert con.execute("SELECT locator, error FROM load_errors").fetchall() == [
        ("line 1", "a JSON value in the record is nested too deeply to decode")
    ]
    assert result.traces == len(rows) - 1
    with pytest.raises(sl.TraceFormatError, match=r"line 1: a JSON value .* nested too deeply"):
        sl.load(sl.connect(), path, strict=True, progress=False)
