"""Session inference known answers: gaps just under, at and over the threshold."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import sessionlens as sl

T0 = datetime(2026, 9, 1, 8, 0, 0)


def _traces(tmp_path: Path, rows: list[tuple[str, str | None, str | None, datetime]]) -> Path:
    path = tmp_path / "traces" / "w.jsonl"
    path.parent.mkdir(exist_ok=True)
    lines = []
    for trace_id, user, session, start in rows:
        lines.append(
            json.dumps(
                {
                    "id": trace_id,
                    "timestamp": start.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    "name": "turn",
                    "environment": "default",
                    "user_id": user,
                    "session_id": session,
                    "tags": [],
                    "metadata": {},
                    "updated_at": "2026-09-02 00:00:00.000000",
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _grouping(con) -> dict[str, tuple[str, str]]:
    return {
        t: (s, o)
        for t, s, o in con.execute(
            "SELECT trace_id, session_id, origin FROM traces JOIN sessions USING (session_id)"
        ).fetchall()
    }


def test_gap_just_under_and_just_over_thirty_minutes(con, tmp_path):
    minute = timedelta(minutes=1)
    sl.load(
        con,
        _traces(
            tmp_path,
            [
                ("a", "u1", None, T0),
                ("b", "u1", None, T0 + 30 * minute - timedelta(seconds=1)),  # under: same session
                ("c", "u1", None, T0 + 60 * minute),  # exactly 30 min after b? no
                (
                    "d",
                    "u1",
                    None,
                    T0 + 90 * minute - timedelta(seconds=1),
                ),  # exactly 30 min after c-1s
                ("e", "u2", None, T0 + 5 * minute),  # another user
                ("f", None, None, T0),  # nobody: its own session
                ("g", "u1", "given", T0 + 10 * minute),  # exported session wins
            ],
        ),
        strict=True,
    )
    got = _grouping(con)
    # a and b are 29:59 apart; c starts 30:01 after b; d starts 29:59 after c
    assert got["a"][0] == got["b"][0] == "u1@2026-09-01T08:00:00.000000Z"
    assert got["c"][0] == got["d"][0] == "u1@2026-09-01T09:00:00.000000Z"
    assert got["a"][1] == got["c"][1] == "inferred"
    assert got["e"] == ("u2@2026-09-01T08:05:00.000000Z", "inferred")
    assert got["f"] == ("trace:f", "single_trace")
    assert got["g"] == ("given", "source")
    sessions = dict(con.execute("SELECT session_id, trace_count FROM sessions").fetchall())
    assert sessions["u1@2026-09-01T08:00:00.000000Z"] == 2
    assert len(sessions) == 5


def test_a_gap_equal_to_the_threshold_stays_in_the_session(con, tmp_path):
    sl.load(
        con,
        _traces(
            tmp_path,
            [
                ("a", "u1", None, T0),
                ("b", "u1", None, T0 + timedelta(minutes=30)),
                ("c", "u1", None, T0 + timedelta(minutes=60, microseconds=1)),
            ],
        ),
    )
    got = _grouping(con)
    assert got["a"][0] == got["b"][0] != got["c"][0]


def test_regrouping_with_another_gap_is_stored_and_used_by_later_loads(con, tmp_path):
    sl.load(
        con,
        _traces(tmp_path, [("a", "u1", None, T0), ("b", "u1", None, T0 + timedelta(minutes=12))]),
    )
    assert len(set(s for s, _ in _grouping(con).values())) == 1
    sl.rebuild_sessions(con, gap=timedelta(minutes=10))
    assert sl.session_gap(con) == timedelta(minutes=10)
    assert len(set(s for s, _ in _grouping(con).values())) == 2
    later = tmp_path / "later"
    later.mkdir()
    sl.load(con, _traces(later, [("c", "u1", None, T0 + timedelta(minutes=20))]))
    got = _grouping(con)
    assert got["b"][0] == got["c"][0] != got["a"][0]


def test_a_late_trace_bridging_two_sessions_merges_them(con, tmp_path):
    sl.load(
        con,
        _traces(tmp_path, [("a", "u1", None, T0), ("c", "u1", None, T0 + timedelta(minutes=50))]),
    )
    assert len({s for s, _ in _grouping(con).values()}) == 2
    bridge = tmp_path / "bridge"
    bridge.mkdir()
    sl.load(con, _traces(bridge, [("b", "u1", None, T0 + timedelta(minutes=25))]))
    assert len({s for s, _ in _grouping(con).values()}) == 1
    assert con.execute("SELECT count(*), max(trace_count) FROM sessions").fetchone() == (1, 3)


def test_internal_traces_are_flagged_kept_and_not_merged_into_user_sessions(con, tmp_path):
    path = _traces(
        tmp_path,
        [
            ("a", "u1", None, T0),
            ("b", "u1", None, T0 + timedelta(minutes=1)),
            ("c", "u1", None, T0 + timedelta(minutes=2)),
        ],
    )
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["environment"] = "langfuse-evaluation"
    rows[2]["name"] = "user-simulator"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    sl.load(con, path, internal=sl.InternalRules(names=("user-simulator",)))
    flags = dict(con.execute("SELECT trace_id, is_internal FROM traces").fetchall())
    assert flags == {"a": False, "b": True, "c": True}
    got = _grouping(con)
    assert got["b"] == ("trace:b", "single_trace")
    internal = dict(con.execute("SELECT session_id, is_internal FROM sessions").fetchall())
    assert internal == {got["a"][0]: False, "trace:b": True, "trace:c": True}


def test_gap_must_be_positive(con):
    with pytest.raises(sl.ConfigError, match="gap must be a positive duration"):
        sl.rebuild_sessions(con, gap=timedelta(0))
