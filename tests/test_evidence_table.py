"""The Python pass's column-wise evidence and GC pause change nothing it computes.

``evidence.evidence_from_table`` must equal ``evidence_from_row`` over ``to_pylist()`` rows
(the plain path, still used by Spark) on real and generated sessions, on tables cut by
``take``/``slice`` as the workers receive them, and on values at the edges of the
timestamp shortcut (nulls, years 1 and 9999, time zones, out of range). ``_pypass`` batches
must equal ``python_row`` over that plain path, and the GC pause must restore the state.
"""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens import _pypass, datasets
from sessionlens.analysis.evidence import (
    _BATCH_QUERY,
    SessionEvidence,
    evidence_from_row,
    evidence_from_table,
)
from sessionlens.analysis.flows import DEFAULT_FLOWS
from sessionlens.analysis.intent import RuleClassifier

from .conftest import FRAMEWORK_TRACES

_TURN = pa.struct([("role", pa.string()), ("content", pa.string()), ("ts", pa.timestamp("us"))])
_CALL = pa.struct(
    [
        ("name", pa.string()),
        ("args", pa.string()),
        ("result", pa.string()),
        ("is_error", pa.bool_()),
        ("t0", pa.timestamp("us")),
        ("t1", pa.timestamp("us")),
    ]
)
SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("start_time", pa.timestamp("us")),
        ("turns", pa.list_(_TURN)),
        ("calls", pa.list_(_CALL)),
    ]
)


def _plain(table: pa.Table) -> list[SessionEvidence | None]:
    return [
        evidence_from_row(r) if r["session_id"] is not None else None for r in table.to_pylist()
    ]


def _fast(table: pa.Table) -> list[SessionEvidence | None]:
    return [ev if ev.session_id is not None else None for ev in evidence_from_table(table)]


@pytest.fixture
def loaded(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    ds = datasets.generate(60, seed=5, repeat_caller_share=0.3)
    datasets.write_langfuse_blob_export(ds, tmp_path / "export")
    sl.load(con, tmp_path / "export", progress=False)
    sl.load(con, FRAMEWORK_TRACES, progress=False)  # real exports: other tools, other shapes
    return con


def _ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [str(r[0]) for r in con.execute("SELECT session_id FROM sessions ORDER BY 1").fetchall()]


def test_real_sessions_equal_the_row_path(loaded: duckdb.DuckDBPyConnection) -> None:
    ids = [*_ids(loaded), "no-such-session"]
    table = loaded.execute(_BATCH_QUERY, [ids]).to_arrow_table()
    assert table.num_rows == len(ids) > 60
    assert _fast(table) == _plain(table)
    # What the workers get: take() with null rows for ids without any, and slices.
    where = pa.array([5, None, 0, 5, table.num_rows - 1, None], pa.int64())
    assert _fast(table.take(where)) == _plain(table.take(where))
    assert _fast(table.slice(7, 11)) == _plain(table.slice(7, 11))
    assert evidence_from_table(table.slice(0, 0)) == []


def test_the_pass_equals_python_row_over_the_row_path(loaded: duckdb.DuckDBPyConnection) -> None:
    ids = [*reversed(_ids(loaded)), "no-such-session", ""]
    got = pa.Table.from_batches(
        list(
            _pypass.python_batches(
                loaded, ids, classifier=RuleClassifier(), flows=DEFAULT_FLOWS, region="US",
                progress=False, batch_size=25,
            )
        )
    )  # fmt: skip
    rows = {
        r["session_id"]: r for r in loaded.execute(_BATCH_QUERY, [ids]).to_arrow_table().to_pylist()
    }
    classify = RuleClassifier()
    want = [
        _pypass.python_row(
            evidence_from_row(rows[sid]) if sid in rows else SessionEvidence(sid),
            classify=classify, flows=DEFAULT_FLOWS, region="US",
        )
        for sid in ids
    ]  # fmt: skip
    assert got.to_pylist() == want
    assert [b.num_rows for b in _pypass.python_batches(
        loaded, ids, classifier=classify, flows=DEFAULT_FLOWS, region="US", progress=False,
        batch_size=25)][:-1] == [25] * (len(ids) // 25)  # fmt: skip


def _row(sid: str | None, start: Any, turns: Any, calls: Any) -> dict[str, Any]:
    return {"session_id": sid, "start_time": start, "turns": turns, "calls": calls}


def _turn(ts: Any, content: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": content, "ts": ts}


def _call(args: Any, t0: Any = None, is_error: bool | None = False) -> dict[str, Any]:
    return {
        "name": "t",
        "args": args,
        "result": "[1, 2]",
        "is_error": is_error,
        "t0": t0,
        "t1": None,
    }


EDGES = [
    _row("a", datetime(1, 1, 1), [_turn(datetime(9999, 12, 31, 23, 59, 59, 999999))], None),
    _row("b", None, [], [_call('{"phone": "+1 415"}'), _call("not json"), _call(None)]),
    _row("c", datetime(2026, 1, 2, 3, 4, 5, 6), None, [_call("7", datetime(2026, 1, 1), None)]),
    _row(None, None, None, None),
    _row("d", None, [_turn(None, ""), _turn(datetime(1970, 1, 1), "٤١٥")], [_call("{}")]),
]


def test_edge_values_equal_the_row_path() -> None:
    table = pa.Table.from_pylist(EDGES, schema=SCHEMA)
    assert _fast(table) == _plain(table)
    got = evidence_from_table(table)
    assert got[0].start_time == datetime(1, 1, 1) and got[2].tool_calls[0].is_error is False
    assert got[1].tool_calls[1].arguments == "not json"


def test_time_zones_and_out_of_range_take_the_plain_conversion() -> None:
    zoned = SCHEMA.set(1, pa.field("start_time", pa.timestamp("us", tz="UTC")))
    table = pa.Table.from_pylist([_row("z", datetime(2026, 1, 1, tzinfo=UTC), [], [])], zoned)
    assert evidence_from_table(table)[0].start_time == datetime(2026, 1, 1, tzinfo=UTC)
    huge = pa.array([253_402_300_800_000_000], pa.int64()).cast(pa.timestamp("us"))
    nulls = {"turns": pa.nulls(1, pa.list_(_TURN)), "calls": pa.nulls(1, pa.list_(_CALL))}
    table = pa.table({"session_id": ["x"], "start_time": huge, **nulls})
    with pytest.raises(OverflowError, match="date value out of range"):
        table.to_pylist()
    with pytest.raises(OverflowError, match="date value out of range"):
        evidence_from_table(table)


_TS = st.one_of(st.none(), st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31)))
_TEXT = st.one_of(st.none(), st.text(max_size=8), st.sampled_from(['{"a": [1]}', "3", "null"]))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.builds(
            _row,
            st.one_of(st.none(), st.text(max_size=3)),
            _TS,
            st.one_of(st.none(), st.lists(st.builds(_turn, _TS, st.text(max_size=5)), max_size=3)),
            st.one_of(st.none(), st.lists(st.builds(_call, _TEXT, _TS, st.booleans()), max_size=3)),
        ),
        max_size=6,
    ),
    st.integers(0, 3),
)
def test_fast_and_plain_agree_on_random_tables(rows: list[dict[str, Any]], cut: int) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    assert _fast(table) == _plain(table)
    assert _fast(table.slice(cut)) == _plain(table.slice(cut))


def test_the_gc_pause_restores_the_state() -> None:
    assert gc.isenabled()
    with _pypass._gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"), _pypass._gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with _pypass._gc_paused():
            pass
        assert not gc.isenabled()  # was off: stays off
    finally:
        gc.enable()


def test_row_json_is_what_json_dumps_writes() -> None:
    details = {
        "children": ["Zoë", "Mia"],
        "requested_dates": ["2026-01-02"],
        "when": datetime(2026, 1, 2),  # not JSON: default=str
        "a": {"z": 1, "b": None},
    }
    plain = json.dumps(details, sort_keys=True, default=str)
    assert _pypass._DETAILS_JSON.encode(details) == plain
    steps = DEFAULT_FLOWS["booking"].steps
    assert _pypass._steps_json(steps) == json.dumps(list(steps))
    assert _pypass._steps_json(()) == "[]"
