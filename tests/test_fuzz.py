"""Fuzzed loader input (hypothesis) and the regressions the fuzzer found.

Every format's seeds (``fuzz_corpus``) are mutated by hypothesis through ``fuzz_cases.mutate``
and loaded strict and lenient; ``fuzz_cases.run_case`` checks the contract (typed errors naming
file and position, rejects in ``load_errors``, a failed load changes nothing, no orphan
observations, sessions count their traces, token counts whole and consistent, untouched
records loaded as from the intact seed). ``SESSIONLENS_FUZZ_EXAMPLES`` sets the cases per
format (default 20); ``bench/fuzz.py`` runs 10,000+.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import sessionlens as sl

from .conftest import FRAMEWORK_TRACES, ROOT, SHARED
from .fuzz_cases import mutate
from .fuzz_checks import Baseline, baseline, run_case
from .fuzz_corpus import TABLE_MAPPING, Seed, build_corpus

EXAMPLES = int(os.environ.get("SESSIONLENS_FUZZ_EXAMPLES", "20"))
FORMATS = [*sl.FORMATS, "table"]


class _Corpus(dict[str, Any]):
    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing case
        return f"<{len(self['seeds'])} seeds>"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    seeds = build_corpus(tmp_path_factory.mktemp("seeds"))
    return _Corpus(seeds=seeds, baselines={}, out=tmp_path_factory.mktemp("cases"))


def test_the_corpus_covers_every_format(corpus: dict[str, Any]) -> None:
    assert {s.fmt for s in corpus["seeds"]} == {*FORMATS, "mixed"}
    containers = {s.container for s in corpus["seeds"] if s.fmt == "langfuse-blob"}
    assert containers == {"json", "jsonl", "csv", "parquet"}


def _run(corpus: dict[str, Any], fmt: str, data: st.DataObject) -> None:
    seeds: list[Seed] = [s for s in corpus["seeds"] if s.fmt == fmt]
    seed = seeds[data.draw(st.integers(0, len(seeds) - 1), label="seed")]
    baselines: dict[str, Baseline] = corpus["baselines"]
    if seed.name not in baselines:
        baselines[seed.name] = baseline(seed)

    def choose(n: int) -> int:
        return data.draw(st.integers(0, max(n - 1, 0)))

    out = Path(corpus["out"]) / str(len(list(Path(corpus["out"]).iterdir())))
    out.mkdir()
    case = mutate(seed, out, choose)
    strict = data.draw(st.booleans(), label="strict")
    note(f"{seed.name}: {case.op}, strict={strict}, copy in {case.path}")
    run_case(case, baselines[seed.name], strict=strict)


_FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("fmt", FORMATS)
@_FUZZ
@given(data=st.data())
def test_mutated_exports_load_or_are_rejected_with_position(
    corpus: dict[str, Any], fmt: str, data: st.DataObject
) -> None:
    _run(corpus, fmt, data)


@settings(_FUZZ, max_examples=max(1, EXAMPLES // 4))
@given(data=st.data())
def test_a_directory_of_mixed_formats_with_one_damaged_file(
    corpus: dict[str, Any], data: st.DataObject
) -> None:
    _run(corpus, "mixed", data)


# -- regressions found by the fuzzer -------------------------------------------------------


def test_a_nested_observation_naming_another_trace_gets_a_placeholder(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    doc = json.loads((FRAMEWORK_TRACES / "openai-agents-2025-09-30.trace.json").read_text())
    trace = {**doc["trace"], "observations": doc["observations"], "scores": []}
    trace["observations"][0]["traceId"] = "elsewhere"
    path = tmp_path / "page.json"
    path.write_text(json.dumps({"data": [trace], "meta": {"page": 1}}))
    sl.load(con, path, strict=True)
    orphans = con.execute(
        "SELECT count(*) FROM observations WHERE trace_id NOT IN (SELECT trace_id FROM traces)"
    ).fetchone()
    assert orphans == (0,)
    assert con.execute("SELECT is_stub FROM traces WHERE trace_id = 'elsewhere'").fetchone() == (
        True,
    )


def test_a_rejected_trace_record_leaves_no_orphan_observations(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    doc = json.loads((FRAMEWORK_TRACES / "openai-agents-2025-09-30.trace.json").read_text())
    doc["trace"]["timestamp"] = "yesterday"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    result = sl.load(con, path)
    assert result.rejected == 1
    assert result.observations == len(doc["observations"])
    assert con.execute("SELECT count(*), bool_and(is_stub) FROM traces").fetchone() == (1, True)


def test_a_token_count_beyond_bigint_rejects_its_record_not_the_file(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "spans.csv"
    path.write_text(
        "span,trace,ts,tokens_in\n"
        "s1,t1,2026-01-01T00:00:00Z,100000000000000000000\n"
        "s2,t1,2026-01-01T00:00:01Z,12\n"
    )
    mapping = {k: v for k, v in TABLE_MAPPING.items() if v in ("span", "trace", "ts", "tokens_in")}
    result = sl.load_table(con, path, mapping=mapping)
    assert (result.observations, result.rejected) == (1, 1)
    error = con.execute("SELECT locator, error FROM load_errors").fetchone()
    assert error == (
        "line 2",
        "input_tokens: count 100000000000000000000 is too large (over 2**63 - 1)",
    )
    with pytest.raises(sl.TraceFormatError, match=r"spans\.csv, line 2: input_tokens: count"):
        sl.load_table(sl.connect(), path, mapping=mapping, strict=True)


def test_invalid_utf8_in_a_csv_row_rejects_that_row(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "traces" / "t.csv"
    path.parent.mkdir()
    path.write_bytes(
        b"id,timestamp,name\nt1,2026-01-01T00:00:00Z,ok\nt2,2026-01-01T00:00:00Z,b\xffd\n"
    )
    result = sl.load(con, path)
    assert (result.traces, result.rejected) == (1, 1)
    assert con.execute("SELECT locator, error FROM load_errors").fetchone() == (
        "line 3",
        "invalid UTF-8",
    )
    header = tmp_path / "traces" / "h.csv"
    header.write_bytes(b"id,na\xffme\nt1,x\n")
    with pytest.raises(sl.TraceFormatError, match=r"h\.csv, line 1: invalid UTF-8 in the header"):
        sl.load(sl.connect(), header, strict=True)


@pytest.mark.parametrize("damage", ["header-utf8", "truncated-parquet"])
def test_a_span_table_that_cannot_be_opened_is_typed(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, damage: str
) -> None:
    if damage == "header-utf8":
        path = tmp_path / "spans.csv"
        path.write_bytes(b"span,tr\xffce,ts\ns1,t1,2026-01-01T00:00:00Z\n")
        message = r"spans\.csv, line 1: invalid UTF-8 in the header row"
    else:
        path = tmp_path / "spans.parquet"
        table = pa.table({"span": ["s1"], "trace": ["t1"], "ts": ["2026-01-01T00:00:00Z"]})
        pq.write_table(table, path)
        path.write_bytes(path.read_bytes()[:40])
        message = r"spans\.parquet, file: cannot read Parquet"
    mapping = {"observation_id": "span", "trace_id": "trace", "start_time": "ts"}
    before = con.execute("SELECT count(*) FROM load_errors").fetchone()
    with pytest.raises(sl.TraceFormatError, match=message):
        sl.load_table(con, path, mapping=mapping, strict=True)
    assert con.execute("SELECT count(*) FROM load_errors").fetchone() == before
    result = sl.load_table(con, path, mapping=mapping)
    assert result.rejected == 1
    assert con.execute("SELECT source_file FROM load_errors").fetchone() == (str(path),)


def test_a_mapped_column_missing_from_a_file_names_the_file(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "spans.csv"
    path.write_text("s1,t1,2026-01-01T00:00:00Z\n")  # the header line was lost
    with pytest.raises(sl.ConfigError, match=r"'span', which .*spans\.csv does not have"):
        sl.load_table(
            con, path, mapping={"observation_id": "span", "trace_id": "t", "start_time": "ts"}
        )


@pytest.mark.parametrize("first", ["[" * 5000 + "]" * 5000, '{"traj": [', "\xff"])
def test_a_bad_first_line_does_not_change_the_detected_format(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, first: str
) -> None:
    runs = json.loads((SHARED / "tau-bench" / "gpt-4o-airline.json").read_text())[:2]
    path = tmp_path / "runs.jsonl"
    path.write_bytes(
        first.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff")
        + b"\n"
        + "".join(json.dumps(r) + "\n" for r in runs).encode()
    )
    result = sl.load(con, path)
    assert result.files[0].format == "chat-transcript"
    assert (result.traces, result.rejected) == (2, 1)
    assert con.execute("SELECT locator FROM load_errors").fetchall() == [("line 1",)]


def test_a_first_record_without_tool_calls_does_not_hide_a_planner_log(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    lines = (ROOT / "tests" / "data" / "planner" / "sample.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    del first["tool_calls"]
    path = tmp_path / "planner.jsonl"
    path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    result = sl.load(con, path, strict=True)
    assert (result.files[0].format, result.traces, result.rejected) == ("planner-log", 4, 0)
