"""Loading a mutated seed and checking what the load did to the database.

Owns the fuzzer's contract (shared by ``tests/test_fuzz.py`` and ``bench/fuzz.py``):
:func:`run_case` loads a :class:`fuzz_cases.Case` (strict or lenient) into a fresh database
and checks that the load succeeded or raised a ``SessionlensError`` naming the file (and
position); that lenient rejects are ``load_errors`` rows with file, position and reason; that a
failed strict load left the database as it was; that no observation lacks its trace, sessions
count their traces, token counts are whole, non-negative and keep their parts inside their
totals; and that every record the mutation did not touch loaded with the same token counts as
from the intact seed (:func:`baseline`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

import sessionlens as sl

from .conftest import SHARED, snapshot
from .fuzz_cases import NEUTRAL, Case
from .fuzz_corpus import TABLE_MAPPING, Seed

__all__ = ["Baseline", "baseline", "run_case"]


@dataclass(frozen=True)
class Baseline:
    """What the intact seed loads as: token counts per observation id, and trace ids."""

    observations: dict[str, tuple[Any, ...]]
    traces: frozenset[str]
    trace_of: dict[str, str]  # observation id -> trace id


_TOKENS = (
    "input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, "
    "reasoning_tokens"
)


def _load(con: duckdb.DuckDBPyConnection, seed: Seed, path: Path, strict: bool) -> Any:
    if seed.fmt == "table":
        return sl.load_table(con, path, mapping=TABLE_MAPPING, strict=strict)
    return sl.load(con, path, strict=strict, progress=False)


def baseline(seed: Seed) -> Baseline:
    """Load the intact seed into a fresh database and record what it holds."""
    con = sl.connect()
    try:
        _load(con, seed, seed.path, strict=True)
        obs = con.execute(f"SELECT observation_id, {_TOKENS} FROM observations").fetchall()
        parents = con.execute("SELECT observation_id, trace_id FROM observations").fetchall()
        traces = con.execute("SELECT trace_id FROM traces").fetchall()
    finally:
        con.close()
    return Baseline(
        {r[0]: tuple(r[1:]) for r in obs}, frozenset(r[0] for r in traces), dict(parents)
    )


# A trace no seed contains, loaded before each case: a failed load must leave it as it was.
_PRELOADED = str(SHARED / "langfuse-framework-traces" / "autogen-2025-06-06.trace.json")


def run_case(case: Case, base: Baseline, *, strict: bool) -> str:
    """Load ``case`` into a fresh database (holding one other trace) and check the contract.

    Returns the outcome (``loaded``, ``rejected-records`` or the error class name); raises
    ``AssertionError`` when the contract is broken, and lets unexpected exceptions through.
    """
    con = sl.connect()
    try:
        if strict:  # something a failed load must keep (lenient loads do not fail that way)
            sl.load(con, _PRELOADED, strict=True, progress=False)
        before = snapshot(con)
        try:
            result = _load(con, case.seed, case.path, strict)
        except sl.SessionlensError as exc:
            _check_error(exc, case, strict)
            if case.path.is_dir():  # files before the bad one committed; it added nothing
                _check_nothing_from(con, Path(getattr(exc, "path", "")))
            else:
                assert snapshot(con) == before, "a failed load changed the database"
            outcome = type(exc).__name__
        else:
            outcome = "rejected-records" if result.rejected else "loaded"
            _check_rejects(con, case)
            _check_untouched(con, case, base, strict)
        _check_invariants(con)
        return outcome
    finally:
        con.close()


def _check_error(exc: sl.SessionlensError, case: Case, strict: bool) -> None:
    if isinstance(exc, sl.ConfigError) and case.seed.fmt == "table":
        # the header lost a mapped column: the mapping no longer fits, and the error says where
        assert str(case.target) in str(exc), f"the error does not name the file: {exc}"
        return
    path = getattr(exc, "path", None)
    assert path is not None, f"{type(exc).__name__} without a path: {exc}"
    assert Path(path).is_relative_to(case.path), f"error names {path}, not the input"
    assert str(path) in str(exc)
    if isinstance(exc, sl.TraceFormatError):
        assert exc.locator and exc.reason, f"no position or reason: {exc}"
    elif isinstance(exc, sl.UnknownFormatError):
        pass  # detection gave up on the damaged file: the message names it and the formats
    else:
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc}")
    if not strict:
        assert isinstance(exc, sl.UnknownFormatError), f"lenient load raised {exc!r}"


def _check_nothing_from(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    for table in ("traces", "observations", "load_errors"):
        row = con.execute(
            f"SELECT count(*) FROM {table} WHERE source_file = ?", [str(path)]
        ).fetchone()
        assert row == (0,), f"the failed file {path} left rows in {table}"


def _check_rejects(con: duckdb.DuckDBPyConnection, case: Case) -> None:
    for source, locator, error in con.execute(
        "SELECT source_file, locator, error FROM load_errors"
    ).fetchall():
        assert Path(source).is_relative_to(case.path), source
        assert locator and error, (source, locator, error)


def _check_untouched(
    con: duckdb.DuckDBPyConnection, case: Case, base: Baseline, strict: bool
) -> None:
    if case.whole:
        return
    mine = "WHERE source_file <> ?"  # not the trace loaded before the case
    got = {
        r[0]: tuple(r[1:])
        for r in con.execute(
            f"SELECT observation_id, {_TOKENS} FROM observations {mine}", [_PRELOADED]
        ).fetchall()
    }
    traces = {
        r[0] for r in con.execute(f"SELECT trace_id FROM traces {mine}", [_PRELOADED]).fetchall()
    }

    def touched(key: str) -> bool:
        return any(s in key or key in s for s in case.touched)

    # Transcripts without an id are named by a hash of their messages: the changed record
    # may reappear under a new id. One record's trace (two for a duplicate) may go missing.
    lost = {t for t in base.traces if t not in traces and not touched(t)}
    if case.op in NEUTRAL:
        assert not lost, f"traces lost: {sorted(lost)[:3]}"
    assert len(lost) <= (2 if case.op == "duplicate" else 1), f"traces lost: {sorted(lost)[:3]}"
    parent = dict(base.trace_of)
    for obs_id, tokens in base.observations.items():
        exempt = touched(obs_id) or parent.get(obs_id) in lost or touched(parent.get(obs_id, ""))
        if case.op in NEUTRAL or not exempt:
            assert got.get(obs_id) == tokens, f"observation {obs_id}: {got.get(obs_id)} != {tokens}"
    if case.op in NEUTRAL:
        assert set(got) == set(base.observations), "a neutral change added or lost rows"


def _check_invariants(con: duckdb.DuckDBPyConnection) -> None:
    def one(sql: str) -> Any:
        row = con.execute(sql).fetchone()
        assert row is not None
        return row[0]

    assert (
        one("SELECT count(*) FROM observations WHERE trace_id NOT IN (SELECT trace_id FROM traces)")
        == 0
    ), "orphan observations"
    assert (
        one(
            "SELECT count(*) FROM traces WHERE session_id IS NULL "
            "OR session_id NOT IN (SELECT session_id FROM sessions)"
        )
        == 0
    ), "traces outside any session"
    assert (
        one(
            "SELECT count(*) FROM sessions s WHERE trace_count IS DISTINCT FROM "
            "(SELECT count(*) FROM traces t WHERE t.session_id = s.session_id)"
        )
        == 0
    ), "sessions.trace_count is not the number of their traces"
    for table in ("tool_calls", "conversation_turns"):
        assert (
            one(
                f"SELECT count(*) FROM {table} "
                "WHERE session_id NOT IN (SELECT session_id FROM sessions)"
            )
            == 0
        ), f"{table} of unknown sessions"
    for col in _TOKENS.split(", "):
        assert one(f"SELECT count(*) FROM observations WHERE {col} < 0") == 0, f"negative {col}"
    assert (
        one(
            "SELECT count(*) FROM observations WHERE input_tokens < "
            "coalesce(cache_read_tokens, 0) + coalesce(cache_write_tokens, 0) "
            "OR output_tokens < coalesce(reasoning_tokens, 0)"
        )
        == 0
    ), "token parts larger than their totals"
    assert math.isfinite(one("SELECT coalesce(sum(reported_cost_usd), 0) FROM observations"))
