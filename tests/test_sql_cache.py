"""The compiled-SQL cache never hands back SQL for a different expression, and pays off.

Every cached text must equal what Ibis compiles for the expression at hand (this run's
memtable names included); anything the SQL depends on (flows, literals of any type, table
names) must miss; an incremental run after a full one reads the analysis frame's SQL from
the cache, and its rows are those of a run without any cache.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ibis.backends.sql import SQLBackend

import sessionlens as sl
from sessionlens import _analyze_stage as stage
from sessionlens import datasets
from sessionlens._pypass import PY_SCHEMA
from sessionlens._sql_cache import cache_key, compile_cached
from sessionlens.analysis._ibis import backend
from sessionlens.analysis.flows import DEFAULT_FLOWS
from sessionlens.analysis.session_frame import session_frame
from tests.conftest import analysis_rows, assert_same_analysis
from tests.test_incremental import AS_OF, _load, _subset

_PARTS = 3


def _py_rows(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """A Python pass result for every session: ids, the rest NULL (the SQL side is tested)."""
    ids = [str(r[0]) for r in con.execute("SELECT session_id FROM sessions").fetchall()]
    return pa.table(
        {
            f.name: pa.array(ids if f.name == "session_id" else [None] * len(ids), f.type)
            for f in PY_SCHEMA
        }
    )


@pytest.fixture(scope="module")
def sample() -> duckdb.DuckDBPyConnection:
    con = sl.connect()
    sl.load(con, datasets.sample_dir(), progress=False)
    return con


def _frame(con: duckdb.DuckDBPyConnection, flows: Any = DEFAULT_FLOWS) -> Any:
    db = backend(con)
    clock = stage.stage_clock(db, cutoff=AS_OF - timedelta(minutes=30))
    py = ibis.memtable(_py_rows(con))  # a fresh memtable name on every call
    return db, session_frame(
        db, py, flows=flows, as_of=AS_OF, inactivity=timedelta(minutes=30), clock=clock
    )


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every SQL text Ibis compiles (the real compile runs)."""
    compiled: list[str] = []
    original = SQLBackend.compile

    def compile(self: SQLBackend, expr: Any, /, **kwargs: Any) -> str:
        sql = original(self, expr, **kwargs)
        compiled.append(sql)
        return sql

    monkeypatch.setattr(SQLBackend, "compile", compile)
    return compiled


def test_a_hit_is_the_compiled_sql_with_this_runs_memtable_names(
    sample: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, first = _frame(sample)
    stored = compile_cached(sample, db, first, slot="t-hit")
    assert stored == db.compile(first)
    db, second = _frame(sample)
    fresh = db.compile(second)
    assert fresh != stored  # other memtable names, same expression otherwise
    compiled = _spy(monkeypatch)
    assert compile_cached(sample, db, second, slot="t-hit") == fresh
    assert compiled == []  # read from the cache, not compiled


def test_the_clock_gives_the_statuses_of_the_literal(sample: duckdb.DuckDBPyConnection) -> None:
    # as_of just after the last activity: some sessions are in progress, the rest are not.
    last = sample.execute("SELECT max(end_time) FROM sessions").fetchone()
    assert last is not None
    as_of, gap = last[0] + timedelta(minutes=5), timedelta(hours=2)
    db = backend(sample)
    py = ibis.memtable(_py_rows(sample))
    clock = stage.stage_clock(db, cutoff=as_of - gap)
    with_clock = session_frame(
        db, py, flows=DEFAULT_FLOWS, as_of=as_of, inactivity=gap, clock=clock
    )
    literal = session_frame(db, py, flows=DEFAULT_FLOWS, as_of=as_of, inactivity=gap)
    got = with_clock.select("session_id", "status").order_by("session_id").to_pyarrow()
    want = literal.select("session_id", "status").order_by("session_id").to_pyarrow()
    assert got == want
    assert {"in_progress", "abandoned"} <= set(got.column("status").to_pylist())


def test_other_flows_miss(sample: duckdb.DuckDBPyConnection) -> None:
    db, expr = _frame(sample)
    compile_cached(sample, db, expr, slot="t-flows")
    name, flow = sorted(DEFAULT_FLOWS.items())[0]
    changed = {
        **DEFAULT_FLOWS,
        name: dataclasses.replace(flow, steps=(*flow.steps, "another_tool")),
    }
    db, other = _frame(sample, flows=changed)
    assert cache_key(other) != cache_key(expr)
    assert compile_cached(sample, db, other, slot="t-flows") == db.compile(other)


_VALUES = st.one_of(
    st.integers(-3, 3),
    st.floats(-2, 2, allow_nan=False, width=32),
    st.booleans(),
    st.text(alphabet="1.Tru'e\"", max_size=3),
    st.dates(),
    st.datetimes(),
    st.decimals(-2, 2, places=1, allow_nan=False),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(_VALUES, min_size=2, max_size=6))
def test_any_sequence_of_expressions_gets_its_own_sql(
    con: duckdb.DuckDBPyConnection, values: list[Any]
) -> None:
    # 1, 1.0, True, "1", a date and a datetime compile differently: each must miss the others.
    db = backend(con)
    traces = db.table("traces")
    for value in values:
        expr = traces.select("trace_id", x=ibis.literal(value))
        assert compile_cached(con, db, expr, slot="t-prop") == db.compile(expr)


def test_an_unkeyable_expression_is_compiled_and_not_stored(
    con: duckdb.DuckDBPyConnection,
) -> None:
    @ibis.udf.scalar.python
    def shout(s: str) -> str:
        return s.upper()

    db = backend(con)
    traces = db.table("traces")
    expr = traces.select(x=shout(traces.name))
    assert cache_key(expr) is None
    assert compile_cached(con, db, expr, slot="t-udf") == db.compile(expr)
    assert con.execute(
        "SELECT count(*) FROM settings WHERE key LIKE 'sql_cache:t-udf'"
    ).fetchone() == (0,)


@pytest.mark.parametrize("damage", ["not json", json.dumps(["a", "list"]), json.dumps({"sql": 1})])
def test_a_damaged_entry_is_recompiled_and_replaced(
    con: duckdb.DuckDBPyConnection, damage: str
) -> None:
    db = backend(con)
    traces = db.table("traces")
    expr = traces.filter(traces.name == "x")
    con.execute("INSERT INTO settings VALUES ('sql_cache:t-bad', ?)", [damage])
    assert compile_cached(con, db, expr, slot="t-bad") == db.compile(expr)
    row = con.execute("SELECT value FROM settings WHERE key = 'sql_cache:t-bad'").fetchone()
    assert row is not None and "key" in json.loads(row[0])


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[datasets.SyntheticDataset]:
    ds = datasets.generate(60, seed=11, repeat_caller_share=0.4)
    ids = list(ds.planted.sort_values("start_time").session_id)
    return [_subset(ds, set(ids[i::_PARTS])) for i in range(_PARTS)]


def _runs(
    tmp: Path, parts: list[datasets.SyntheticDataset], monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> tuple[duckdb.DuckDBPyConnection, list[list[str]]]:
    """Load the parts one by one, analysing after each; the SQL each run compiled."""
    con = sl.connect()
    compiled = []
    for i, part in enumerate(parts):
        _load(con, part, tmp / f"part{i}")
        with monkeypatch.context() as m:
            compiled.append(_spy(m))
            sl.analyze_sessions(con, as_of=AS_OF, workers=1, **kw)
    return con, compiled


def test_incremental_runs_read_the_frame_from_the_cache_and_match_a_cacheless_run(
    parts: list[datasets.SyntheticDataset], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Incremental runs copy their slices (not views of the whole tables), however many.
    monkeypatch.setattr(stage, "_SLICE_SHARE", 1.0)
    con, compiled = _runs(tmp_path, parts, monkeypatch)
    # The first run compiles everything; the first incremental one reuses the frame of the
    # full run (the only query reading _sl_clock); later ones compile nothing.
    assert any("_sl_clock" in sql for sql in compiled[0])
    assert not any("_sl_clock" in sql for sql in compiled[1])
    # The full run also compiled the incremental run's tag and trace-summary queries: only
    # the candidates' fingerprints (which need this run's candidates table) are compiled.
    assert len(compiled[1]) == 1 and "_sl_cand" in compiled[1][0]
    assert compiled[2] == []
    staged = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE view_name LIKE '\\_sl\\_%' ESCAPE '\\' "
        "UNION ALL SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '\\_sl\\_%' "
        "ESCAPE '\\'"
    ).fetchall()
    assert staged == []  # the slices' views are dropped with the staging tables
    plain = sl.connect()
    _load(plain, dataclasses.replace(parts[0], traces=[t for p in parts for t in p.traces],
                                     observations=[o for p in parts for o in p.observations],
                                     scores=[s for p in parts for s in p.scores]),
          tmp_path / "all")  # fmt: skip
    monkeypatch.setattr("sessionlens._sql_cache.cache_key", lambda expr: None)  # no cache
    sl.analyze_sessions(plain, as_of=AS_OF, workers=1)
    assert plain.execute(
        "SELECT count(*) FROM settings WHERE key LIKE 'sql_cache:%'"
    ).fetchone() == (0,)
    assert_same_analysis(analysis_rows(con), analysis_rows(plain))


def test_other_prices_give_the_rows_of_a_cacheless_run(
    parts: list[datasets.SyntheticDataset], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prices are a table the SQL reads, not part of it: the cached text stays right.
    prices = {"gpt-4.1": {"input": 9.0, "output": 9.0}}
    con, _ = _runs(tmp_path, parts[:2], monkeypatch)
    sl.analyze_sessions(con, as_of=AS_OF, workers=1, prices=prices)
    plain = sl.connect()
    for i, part in enumerate(parts[:2]):
        _load(plain, part, tmp_path / f"plain{i}")
    monkeypatch.setattr("sessionlens._sql_cache.cache_key", lambda expr: None)
    sl.analyze_sessions(plain, as_of=AS_OF, workers=1, prices=prices)
    assert_same_analysis(analysis_rows(con), analysis_rows(plain))


def _tags(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute("SELECT session_id, session_tag FROM sessions ORDER BY 1").fetchall()


def test_tags_read_from_the_slices_include_unchanged_untagged_sessions(
    parts: list[datasets.SyntheticDataset], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An incremental run recounts tags from the slices: a session whose tag was wiped in SQL
    # is no candidate (its rows did not change), yet its tag must come back.
    monkeypatch.setattr(stage, "_SLICE_SHARE", 1.0)
    con = sl.connect()
    _load(con, parts[0], tmp_path / "p0")
    sl.analyze_sessions(con, as_of=AS_OF, workers=1)
    wiped = con.execute(
        "UPDATE sessions SET session_tag = NULL WHERE session_id IN (SELECT session_id "
        "FROM sessions WHERE session_tag IS NOT NULL ORDER BY session_id LIMIT 3)"
    ).fetchone()
    assert wiped == (3,)
    _load(con, parts[1], tmp_path / "p1")
    assert stage._SLICE_SHARE == 1.0
    result = sl.analyze_sessions(con, as_of=AS_OF, workers=1)
    assert 0 < result.recomputed < result.sessions  # incremental, from slices
    full = sl.connect()
    for i, part in enumerate(parts[:2]):
        _load(full, part, tmp_path / f"full{i}")
    sl.analyze_sessions(full, as_of=AS_OF, workers=1)
    assert _tags(con) == _tags(full)
    assert_same_analysis(analysis_rows(con), analysis_rows(full))


def test_a_chosen_memtable_name_is_part_of_the_key(con: duckdb.DuckDBPyConnection) -> None:
    db = backend(con)
    table = ibis.memtable({"x": [1, 2]}).op()  # Ibis 12 names memtables itself
    first = table.copy(name="sl_first").to_expr().select("x")
    second = table.copy(name="sl_second").to_expr().select("x")
    assert cache_key(first) != cache_key(second)
    for expr in (first, second, first):
        assert compile_cached(con, db, expr, slot="t-named") == db.compile(expr)


def test_a_generated_name_used_elsewhere_in_the_query_is_not_stored(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # The placeholder swap would also rename the column: such a text is never stored.
    db = backend(con)
    table = ibis.memtable({"x": [1, 2]})
    expr = table.select(**{table.op().name: table.x})
    keyed = cache_key(expr)
    assert keyed is not None and keyed[1] == [table.op().name]
    assert compile_cached(con, db, expr, slot="t-alias") == db.compile(expr)
    stored = con.execute("SELECT count(*) FROM settings WHERE key = 'sql_cache:t-alias'")
    assert stored.fetchone() == (0,)
