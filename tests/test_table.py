"""Generic span tables (``load_table``): a DataFrame, an Arrow table, Parquet and CSV with a
column mapping load the same rows; mapping mistakes are ``ConfigError``; bad rows go to
``load_errors``. The spans are the real framework traces, flattened the way a warehouse holds
them, with columns named differently."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

import sessionlens as sl
from sessionlens.cli import main

from .conftest import FRAMEWORK_TRACES, snapshot

MAPPING = {
    "observation_id": "span_id",
    "trace_id": "trace",
    "parent_observation_id": "parent_span",
    "type": "kind",
    "name": "operation",
    "start_time": "started",
    "end_time": "ended",
    "model": "llm_model",
    "input_tokens": "prompt_tokens",
    "output_tokens": "completion_tokens",
    "input": "payload_in",
    "output": "payload_out",
    "session_id": "session",
    "user_id": "user",
    "trace_name": "trace_label",
}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


@pytest.fixture(scope="module")
def spans() -> pd.DataFrame:
    rows = []
    for path in sorted(FRAMEWORK_TRACES.glob("*.json")):
        doc = json.loads(path.read_text())
        trace = doc["trace"]
        for obs in doc["observations"]:
            usage = obs.get("usageDetails") or {}
            rows.append(
                {
                    "span_id": obs["id"],
                    "trace": obs["traceId"],
                    "parent_span": obs.get("parentObservationId"),
                    "kind": obs["type"],
                    "operation": obs.get("name"),
                    "started": obs["startTime"],
                    "ended": obs.get("endTime"),
                    "llm_model": obs.get("model"),
                    "prompt_tokens": usage.get("input"),
                    "completion_tokens": usage.get("output"),
                    "payload_in": _json(obs.get("input")),
                    "payload_out": _json(obs.get("output")),
                    "session": trace.get("sessionId"),
                    "user": trace.get("userId"),
                    "trace_label": trace.get("name"),
                    "unmapped": "ignored",
                }
            )
    return pd.DataFrame(rows)


def canonical(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for table in ("traces", "observations", "sessions", "tool_calls", "conversation_turns"):
        cols = [c for c in con.table(table).columns if c not in ("loaded_at", "source_file")]
        out[table] = sorted(
            con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr
        )
    return out


def test_dataframe_arrow_parquet_and_csv_give_the_same_rows(spans, tmp_path):
    parquet = tmp_path / "spans.parquet"
    spans.to_parquet(parquet, index=False)
    csv = tmp_path / "spans.csv"
    spans.to_csv(csv, index=False)
    sources: dict[str, Any] = {
        "dataframe": spans,
        "arrow": pa.Table.from_pandas(spans, preserve_index=False),
        "parquet": parquet,
        "csv": str(csv),
    }
    results = {}
    for name, data in sources.items():
        con = sl.connect()
        result = sl.load_table(con, data, mapping=MAPPING, strict=True)
        assert (result.observations, result.rejected) == (spans["span_id"].nunique(), 0), name
        assert result.traces == spans["trace"].nunique()
        results[name] = canonical(con)
    first = results.pop("dataframe")
    for name, tables in results.items():
        assert tables == first, name


def test_values_are_mapped_and_coerced(con, spans):
    sl.load_table(con, spans, mapping=MAPPING, strict=True)
    # Three span ids occur twice in the real traces; the later row wins.
    spans = spans.drop_duplicates("span_id", keep="last")
    got = con.execute(
        "SELECT sum(input_tokens), sum(output_tokens), count(*) FILTER (type = 'TOOL'), "
        "count(DISTINCT model) FROM observations"
    ).fetchone()
    assert got == (
        int(spans["prompt_tokens"].sum()),
        int(spans["completion_tokens"].sum()),
        int((spans["kind"] == "TOOL").sum()),
        spans["llm_model"].nunique(),
    )
    traces = con.execute(
        "SELECT trace_id, name, source_session_id, user_id, start_time FROM traces ORDER BY 1"
    ).fetchall()
    firsts = spans.sort_values("started").groupby("trace").first()
    for trace_id, name, session, user, start in traces:
        row = firsts.loc[trace_id]
        assert name == row["trace_label"]
        assert session == (row["session"] if isinstance(row["session"], str) else None)
        assert user == (row["user"] if isinstance(row["user"], str) else None)
        want = sl.loaders._normalize.parse_timestamp(row["started"])
        assert start == want
    objects = spans[spans["payload_in"].str.startswith("{", na=False)].iloc[0]
    payload = con.execute(
        "SELECT input FROM observations WHERE observation_id = ?", [objects["span_id"]]
    ).fetchone()
    assert payload is not None
    assert json.loads(payload[0]) == json.loads(objects["payload_in"])


def test_reload_writes_nothing(con, spans, tmp_path):
    sl.load_table(con, spans, mapping=MAPPING)
    before = snapshot(con)
    again = sl.load_table(con, spans, mapping=MAPPING)
    assert again.written == {"traces": 0, "observations": 0, "scores": 0}
    parquet = tmp_path / "spans.parquet"
    spans.to_parquet(parquet, index=False)
    assert sl.load_table(con, parquet, mapping=MAPPING).written["observations"] == 0
    assert snapshot(con) == before


def test_type_is_inferred_when_not_mapped(con):
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "tid": ["t", "t", "t"],
            "at": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 10:01", "2026-01-01 10:02"]),
            "llm": [None, "gpt-4o", None],
            "tool": [None, None, "search"],
            "tokens": [None, 12, None],
        }
    )
    mapping = {
        "observation_id": "id",
        "trace_id": "tid",
        "start_time": "at",
        "model": "llm",
        "tool_name": "tool",
        "input_tokens": "tokens",
    }
    sl.load_table(con, frame, mapping=mapping, strict=True)
    rows = con.execute(
        "SELECT observation_id, type, provider, input_tokens, total_tokens FROM observations "
        "ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("a", "SPAN", None, None, None),
        ("b", "GENERATION", "openai", 12, 12),
        ("c", "TOOL", None, None, None),
    ]
    assert con.execute("SELECT tool_name FROM tool_calls").fetchall() == [("search",)]


def test_internal_rules_apply(con, spans):
    rules = sl.InternalRules(names=(str(spans["trace_label"].dropna().iloc[0]),))
    sl.load_table(con, spans, mapping=MAPPING, internal=rules)
    assert con.execute("SELECT count(*) FROM traces WHERE is_internal").fetchone() != (0,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"trace_id": None},
            r"mapping: required column 'trace_id' is not mapped; map it to one of the table's "
            r"columns: span_id, trace, parent_span, kind, operation, started",
        ),
        (
            {"start_time": "timestamp"},
            r"mapping: 'start_time' maps to column 'timestamp', which the table does not have; "
            r"it has: span_id, trace, parent_span",
        ),
        ({"colour": "kind"}, r"mapping: unknown canonical column 'colour'; use one of: "),
        ({"name": 3}, r"mapping: expected a dict of canonical column name -> table column"),
    ],
    ids=["missing-required", "absent-column", "unknown-name", "not-text"],
)
def test_mapping_mistakes_are_config_errors(con, spans, change, message):
    mapping: dict[str, Any] = {**MAPPING, **change}
    mapping = {k: v for k, v in mapping.items() if v is not None}
    with pytest.raises(sl.ConfigError, match=message):
        sl.load_table(con, spans, mapping=mapping)
    assert con.execute("SELECT count(*) FROM observations").fetchone() == (0,)


def test_unsupported_data_and_missing_files(con, tmp_path):
    with pytest.raises(sl.ConfigError, match=r"data: expected a pandas DataFrame, a pyarrow"):
        sl.load_table(con, [{"a": 1}], mapping=MAPPING)  # type: ignore[arg-type]
    with pytest.raises(sl.InputNotFoundError, match=r"no such file"):
        sl.load_table(con, tmp_path / "none.parquet", mapping=MAPPING)
    text = tmp_path / "spans.txt"
    text.write_text("x")
    with pytest.raises(sl.ConfigError, match=r"\.parquet / \.csv path"):
        sl.load_table(con, text, mapping=MAPPING)


def _bad(spans: pd.DataFrame) -> pd.DataFrame:
    frame = spans.head(8).copy()
    frame["prompt_tokens"] = frame["prompt_tokens"].astype(object)
    frame.loc[2, "started"] = "not a time"
    frame.loc[4, "prompt_tokens"] = "lots"
    frame.loc[5, "kind"] = "BANANA"
    return frame


def test_bad_rows_go_to_load_errors(con, spans):
    result = sl.load_table(con, _bad(spans), mapping=MAPPING, source="warehouse.spans")
    assert (result.rejected, result.observations) == (3, 5)
    errors = con.execute(
        "SELECT source_file, locator, error, excerpt FROM load_errors ORDER BY locator"
    ).fetchall()
    assert [e[:3] for e in errors] == [
        ("warehouse.spans", "row 3", "start_time: not a timestamp: 'not a time'"),
        ("warehouse.spans", "row 5", "input_tokens: expected a count, got 'lots'"),
        ("warehouse.spans", "row 6", "type: unknown observation type 'BANANA'"),
    ]
    assert "'span_id': " in errors[0][3]  # the raw row, to find it in the source


def test_strict_mode_raises_and_loads_nothing(con, spans):
    sl.load(con, FRAMEWORK_TRACES / "openai-agents-2025-09-30.trace.json")
    before = snapshot(con)
    with pytest.raises(
        sl.TraceFormatError, match=r"<DataFrame>, row 3: start_time: not a timestamp"
    ):
        sl.load_table(con, _bad(spans), mapping=MAPPING, strict=True)
    assert snapshot(con) == before


def test_hostile_values_never_crash(con):
    deep: Any = "bottom"
    for _ in range(5000):
        deep = [deep]
    frame = pd.DataFrame(
        {
            "id": pd.Series(
                ["huge", "deep", "surrogate", "list-count", {"nested": "id"}, "fine"],
                dtype=object,
            ),
            "tid": ["t1", "t1", "t1", "t1", "t1", "t1"],
            "at": [f"2026-01-01T00:00:0{i}Z" for i in range(6)],
            "body": ["y" * 4_000_000, deep, "ok", "ok", "ok", '{"a": 1}'],
            "label": pd.Series(["a", "b", "bad \udc80 name", "d", "e", "f"], dtype=object),
            "tokens": [1, 2, 3, [4], 5, 6],
        }
    )
    mapping = {
        "observation_id": "id",
        "trace_id": "tid",
        "start_time": "at",
        "input": "body",
        "name": "label",
        "input_tokens": "tokens",
    }
    before = snapshot(con)
    with pytest.raises(sl.TraceFormatError, match=r"row 2: input: nested too deeply"):
        sl.load_table(con, frame, mapping=mapping, strict=True)
    assert snapshot(con) == before
    result = sl.load_table(con, frame, mapping=mapping)
    errors = con.execute("SELECT locator, error FROM load_errors ORDER BY 1").fetchall()
    assert errors == [
        ("row 2", "input: nested too deeply to store"),
        ("row 3", "name: lone surrogate '\\udc80' at character 4 is not valid Unicode"),
        ("row 4", "input_tokens: expected a count, got list"),
        ("row 5", "observation_id: expected text, got dict"),
    ]
    assert (result.observations, result.traces, result.rejected) == (2, 1, 4)
    size = con.execute("SELECT length(input->>'$') FROM observations WHERE observation_id = 'huge'")
    assert size.fetchone() == (4_000_000,)


def test_cli_loads_a_table_with_a_mapping(spans, tmp_path, capsys):
    parquet = tmp_path / "spans.parquet"
    spans.to_parquet(parquet, index=False)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    db = str(tmp_path / "t.duckdb")
    args = ["load", str(parquet), "--db", db, "--format", "table", "--mapping", str(mapping)]
    assert main(args) == 0
    assert f"observations  {spans['span_id'].nunique():>8}" in capsys.readouterr().out
    assert main(["load", str(parquet), "--db", db, "--format", "table"]) == 1
    assert "error: --mapping: --format table needs --mapping FILE" in capsys.readouterr().err
    assert main(["load", str(parquet), "--db", db, "--mapping", str(mapping)]) == 1
    assert "error: --mapping: only used with --format table" in capsys.readouterr().err
