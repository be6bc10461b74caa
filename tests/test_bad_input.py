"""Bad input: strict mode raises with file, position and reason; lenient mode records it in
``load_errors``; either way the database is otherwise unchanged."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

import sessionlens as sl

from .conftest import FRAMEWORK_TRACES, snapshot


def trace_row(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"t{i}",
        "timestamp": f"2026-09-01 08:{i:02d}:00.000000",
        "name": "call",
        "environment": "default",
        "tags": [],
        "user_id": "u1",
        "session_id": f"s{i}",
        "input": json.dumps({"text": "hi"}),
        "output": None,
        "metadata": {},
        "created_at": "2026-09-01 08:00:00.000000",
        "updated_at": "2026-09-01 09:00:00.000000",
        **extra,
    }


def obs_row(i: int, trace: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"o{i}",
        "trace_id": f"t{trace}",
        "type": "GENERATION",
        "name": "llm",
        "start_time": f"2026-09-01 08:{trace:02d}:01.000000",
        "end_time": f"2026-09-01 08:{trace:02d}:02.000000",
        "provided_model_name": "gpt-4o-mini",
        "usage_details": {"input": 10, "output": 5},
        "cost_details": {"total": 0.0001},
        "level": "DEFAULT",
        "updated_at": "2026-09-01 09:00:00.000000",
        **extra,
    }


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def loaded(con):
    sl.load(con, FRAMEWORK_TRACES / "openai-agents-2025-09-30.trace.json")
    return con


CASES = {
    "truncated line": ('{"id": "o9", "trace_id": "t1", "type": "GENER', "line 2", "invalid JSON"),
    "wrong type": (
        obs_row(9, 1, usage_details={"input": "lots"}),
        "line 2",
        "usage_details: usage.input: expected a count",
    ),
    "missing id": ({k: v for k, v in obs_row(9, 1).items() if k != "id"}, "line 2", "missing id"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_strict_mode_names_file_line_and_reason_and_loads_nothing(loaded, tmp_path, case):
    bad, line, reason = CASES[case]
    path = write_jsonl(tmp_path / "observations" / "w.jsonl", [obs_row(1, 1), bad, obs_row(2, 1)])
    before = snapshot(loaded)
    with pytest.raises(sl.TraceFormatError, match=rf"w\.jsonl, {line}: {reason}") as info:
        sl.load(loaded, path, strict=True)
    assert (info.value.locator, info.value.path) == (line, str(path))
    assert snapshot(loaded) == before


@pytest.mark.parametrize("case", list(CASES))
def test_lenient_mode_loads_the_rest_and_records_the_reject(loaded, tmp_path, case):
    bad, line, reason = CASES[case]
    path = write_jsonl(tmp_path / "observations" / "w.jsonl", [obs_row(1, 1), bad, obs_row(2, 1)])
    before = snapshot(loaded)
    result = sl.load(loaded, path)
    assert result.rejected == 1
    errors = loaded.execute("SELECT source_file, locator, error FROM load_errors").fetchall()
    assert len(errors) == 1
    assert errors[0][:2] == (str(path), line)
    assert reason in errors[0][2]
    new_obs = loaded.execute(
        "SELECT observation_id FROM observations WHERE observation_id IN ('o1', 'o2', 'o9') "
        "ORDER BY 1"
    ).fetchall()
    assert new_obs == [("o1",), ("o2",)]
    # nothing that was there before changed
    after = snapshot(loaded)
    for table in ("observations",):
        assert set(before[table]) <= set(after[table])


def test_a_failure_while_writing_rolls_the_whole_file_back(loaded, tmp_path, monkeypatch):
    from sessionlens.loaders import _write

    path = write_jsonl(tmp_path / "observations" / "w.jsonl", [obs_row(1, 1), obs_row(2, 1)])
    before = snapshot(loaded)

    def boom(con: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(_write, "fill_trace_times", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        sl.load(loaded, path)
    assert snapshot(loaded) == before


def test_truncated_json_document(con, tmp_path):
    text = (FRAMEWORK_TRACES / "autogen-2025-06-06.trace.json").read_text()
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(sl.TraceFormatError, match=r"cut\.json, line \d+ column \d+: invalid JSON"):
        sl.load(con, path, strict=True)
    result = sl.load(con, path)
    assert (result.rejected, result.traces) == (1, 0)
    assert con.execute("SELECT locator LIKE 'line % column %' FROM load_errors").fetchone() == (
        True,
    )


def test_invalid_utf8_line_is_rejected_not_crashing(con, tmp_path):
    path = tmp_path / "traces" / "w.jsonl"
    path.parent.mkdir()
    path.write_bytes(json.dumps(trace_row(1)).encode() + b"\n" + b'{"id": "\xff\xfe"}\n')
    with pytest.raises(sl.TraceFormatError, match=r"line 2: invalid UTF-8"):
        sl.load(con, path, strict=True)
    assert sl.load(con, path).rejected == 1


def test_damaged_gzip_is_one_error(con, tmp_path):
    path = tmp_path / "traces" / "w.jsonl.gz"
    path.parent.mkdir()
    rows = "".join(json.dumps(trace_row(i)) + "\n" for i in range(50)).encode()
    path.write_bytes(gzip.compress(rows)[:200])
    with pytest.raises(sl.TraceFormatError, match=r"w\.jsonl\.gz, file: cannot read"):
        sl.load(con, path, strict=True)
    result = sl.load(con, path)
    assert (result.rejected, result.traces) == (1, 0)


def test_unknown_format_lists_the_supported_ones(con, tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(sl.UnknownFormatError, match=r"langfuse-trace, langfuse-api-v1"):
        sl.load(con, path)
    other = tmp_path / "notes.txt"
    other.write_text("hi")
    with pytest.raises(sl.UnknownFormatError, match=r"unknown file extension '\.txt'"):
        sl.load(con, other)
    with pytest.raises(sl.UnknownFormatError, match=r"unknown format 'otlp'"):
        sl.load(con, path, format="otlp")


def test_missing_path(con, tmp_path):
    with pytest.raises(sl.InputNotFoundError, match=r"no such file"):
        sl.load(con, tmp_path / "nope" / "*.jsonl")


def test_empty_export_window_loads_nothing(con, tmp_path):
    path = tmp_path / "observations" / "2026-09-01T00-00-00.jsonl"
    path.parent.mkdir()
    path.write_text("")
    result = sl.load(con, path, strict=True)
    assert (result.traces, result.observations, result.rejected) == (0, 0, 0)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "observations/w.jsonl",
            json.dumps(obs_row(1, 1, type="BANANA")) + "\n",
            r"w\.jsonl, line 1: type: unknown observation type 'BANANA'",
        ),
        (
            "observations/w.jsonl",
            json.dumps(obs_row(1, 1, level="LOUD")) + "\n",
            r"w\.jsonl, line 1: level: unknown level 'LOUD'",
        ),
        (
            "traces/w.json",
            json.dumps({"id": "t1", "rows": []}),
            r"w\.json, /: a blob-export JSON file must be an array of rows",
        ),
        (
            "page.json",
            json.dumps([{"data": []}, {"meta": {}}]),
            r"page\.json, /1: expected an API page with a 'data' list",
        ),
        (
            "traces/w.csv",
            "id,timestamp\nt1,2026-09-01 08:00:00,extra\n",
            r"w\.csv, line 2: more fields than the header has",
        ),
    ],
    ids=["observation-type", "level", "blob-json-object", "api-page", "csv-extra-field"],
)
def test_malformed_records_name_their_position(con, tmp_path, name, content, message):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    # a JSON object in a blob folder is only read as a blob file when the user says so
    fmt = "langfuse-blob" if name.endswith("w.json") else "auto"
    with pytest.raises(sl.TraceFormatError, match=message):
        sl.load(con, path, strict=True, format=fmt)
    assert con.execute("SELECT count(*) FROM traces").fetchone() == (0,)
    assert sl.load(con, path, format=fmt).rejected == 1


def test_a_lone_surrogate_rejects_its_record_not_the_file(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "t.jsonl").write_text(
        '{"id": "t1", "timestamp": "2026-01-01T00:00:00Z", "name": "a\\ud800b"}\n'
        '{"id": "t2", "timestamp": "2026-01-01T00:00:00Z", "name": "fine"}\n'
    )
    result = sl.load(con, tmp_path)
    assert (result.traces, result.rejected) == (1, 1)
    where, error = con.execute("SELECT locator, error FROM load_errors").fetchone()  # type: ignore[misc]
    assert where == "line 1" and "name: contains a lone surrogate" in error
    with pytest.raises(sl.TraceFormatError, match=r"line 1: name: contains a lone surrogate"):
        sl.load(sl.connect(), tmp_path, strict=True)
