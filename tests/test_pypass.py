"""The Python pass on worker processes: same rows, same order, errors and Ctrl-C surface.

``analyze_sessions(workers=N)`` computes intent, booking details and goals per session on
``N`` processes (:mod:`sessionlens._pypass`). Every test here compares against the
single-process pass on generated, real-shaped data; chunks and evidence batches are made
small so a few dozen sessions cross many chunk and batch boundaries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import sessionlens as sl
from sessionlens import _pypass, datasets
from sessionlens.analysis.evidence import SessionEvidence
from sessionlens.analysis.flows import DEFAULT_FLOWS
from sessionlens.analysis.intent import RuleClassifier
from sessionlens.cli import main
from sessionlens.errors import ConfigError

from .conftest import ROOT, analysis_rows, assert_same_analysis

AS_OF = datetime(2027, 1, 1)


def bad_confidence(ev: SessionEvidence) -> dict[str, object]:
    """A classifier breaking the contract on one session: a ConfigError in the worker."""
    return {"type": "other", "confidence": 2 if ev.session_id.endswith("7") else 0.5}


def raises_value_error(ev: SessionEvidence) -> tuple[str, float]:
    raise ValueError(f"cannot classify {ev.session_id}")


def first_tool(ev: SessionEvidence) -> tuple[str, float, str]:
    first = ev.tool_calls[0].name if ev.tool_calls else "none"
    return ("tool:" + first, 0.5, ev.caller_text[:40])


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """7 sessions per chunk, 30 per evidence query: many boundaries on little data."""
    monkeypatch.setattr(_pypass, "_CHUNK", 7)
    monkeypatch.setattr(_pypass, "BATCH", 30)


@pytest.fixture
def loaded(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    ds = datasets.generate(90, seed=21, repeat_caller_share=0.3)
    datasets.write_langfuse_blob_export(ds, tmp_path / "export")
    sl.load(con, tmp_path / "export", progress=False)
    return con


def _pass(con: duckdb.DuckDBPyConnection, ids: list[str], workers: int) -> pa.Table:
    batches = _pypass.python_batches(
        con,
        ids,
        classifier=RuleClassifier(),
        flows=DEFAULT_FLOWS,
        region="US",
        workers=workers,
        progress=False,
    )
    return pa.Table.from_batches(list(batches), schema=_pypass.PY_SCHEMA)


@pytest.mark.usefixtures("small_chunks")
def test_two_workers_write_the_rows_of_one(loaded: duckdb.DuckDBPyConnection) -> None:
    one = sl.analyze_sessions(loaded, as_of=AS_OF, workers=1)
    want = analysis_rows(loaded)
    two = sl.analyze_sessions(loaded, as_of=AS_OF, workers=2, force=True)
    assert two.recomputed == one.recomputed == one.sessions > 60
    assert two.statuses == one.statuses
    assert_same_analysis(analysis_rows(loaded), want)


@pytest.mark.usefixtures("small_chunks")
def test_rows_come_back_in_the_order_asked(loaded: duckdb.DuckDBPyConnection) -> None:
    ids = [str(r[0]) for r in loaded.execute("SELECT session_id FROM sessions").fetchall()]
    # Unsorted, with a repeat and ids without any rows: what iter_evidence yields for them.
    ids = [*reversed(ids), "no-such-session", ids[3], ""]
    serial, pooled = _pass(loaded, ids, 1), _pass(loaded, ids, 2)
    assert pooled.column("session_id").to_pylist() == ids
    assert pooled.equals(serial)
    missing = pooled.slice(len(ids) - 3, 1).to_pylist()[0]
    assert missing["intent"] == RuleClassifier()(SessionEvidence("x")).type


@pytest.mark.usefixtures("small_chunks")
def test_progress_counts_sessions(
    loaded: duckdb.DuckDBPyConnection, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [str(r[0]) for r in loaded.execute("SELECT session_id FROM sessions").fetchall()]
    batches = _pypass.python_batches(
        loaded, ids, classifier=RuleClassifier(), flows=DEFAULT_FLOWS, region="US", workers=2,
        progress=True,
    )  # fmt: skip
    assert sum(b.num_rows for b in batches) == len(ids)
    assert f"{len(ids)}/{len(ids)}" in capsys.readouterr().err


def test_no_sessions_start_no_workers(con: duckdb.DuckDBPyConnection) -> None:
    assert _pass(con, [], 2).num_rows == 0


@pytest.mark.usefixtures("small_chunks")
def test_a_custom_classifier_runs_in_the_workers(loaded: duckdb.DuckDBPyConnection) -> None:
    sl.analyze_sessions(loaded, as_of=AS_OF, classifier=first_tool, workers=1)
    want = analysis_rows(loaded)
    sl.analyze_sessions(loaded, as_of=AS_OF, classifier=first_tool, workers=2, force=True)
    assert_same_analysis(analysis_rows(loaded), want)
    assert all(str(r[5]).startswith("tool:") for r in want)


@pytest.mark.usefixtures("small_chunks")
def test_errors_in_a_worker_keep_their_type_and_message(
    loaded: duckdb.DuckDBPyConnection,
) -> None:
    # ConfigError cannot be unpickled as is (two required arguments): it is rebuilt.
    with pytest.raises(ConfigError, match=r"classifier \(session \S+7\): confidence: 2 is outside"):
        sl.analyze_sessions(loaded, classifier=bad_confidence, workers=2)
    with pytest.raises(ValueError, match=r"cannot classify \S+"):
        sl.analyze_sessions(loaded, classifier=raises_value_error, workers=2)
    # The failed runs rolled back: nothing was written, and a later run works.
    assert loaded.execute("SELECT count(*) FROM session_analysis").fetchone() == (0,)
    assert sl.analyze_sessions(loaded, as_of=AS_OF, workers=2).recomputed > 60


def test_a_classifier_the_workers_cannot_import(loaded: duckdb.DuckDBPyConnection) -> None:
    # Picklable here (by reference), but the module exists only in this process.
    module = types.ModuleType("parpass_only_here")

    def classify(ev: SessionEvidence) -> tuple[str, float]:
        return ("other", 0.5)

    classify.__module__, classify.__qualname__ = module.__name__, "classify"
    module.classify = classify  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(ConfigError, match=r"could not load the classifier.*parpass_only_here"):
            sl.analyze_sessions(loaded, classifier=classify, workers=2)
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize("workers", [0, -2, True, 1.5, "2"])
def test_workers_must_be_a_whole_number(con: duckdb.DuckDBPyConnection, workers: object) -> None:
    with pytest.raises(ConfigError, match=r"workers: must be a whole number >= 1, got"):
        sl.analyze_sessions(con, workers=workers)  # type: ignore[arg-type]


def test_an_unpicklable_classifier_needs_one_worker(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ConfigError, match=r"cannot be sent to worker processes.*workers=1"):
        sl.analyze_sessions(con, classifier=lambda ev: ("other", 0.5), workers=2)
    # Automatic: the same classifier quietly stays in this process.
    n = _pypass.AUTO_MIN_SESSIONS * 10
    assert _pypass.resolve_workers(None, sessions=n, classifier=lambda ev: ("x", 1)) == 1


def test_automatic_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    clf, enough = RuleClassifier(), _pypass.AUTO_MIN_SESSIONS
    monkeypatch.setattr(_pypass, "_main_guarded", lambda: True)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert _pypass.resolve_workers(None, sessions=enough, classifier=clf) == 3
    assert _pypass.resolve_workers(None, sessions=enough - 1, classifier=clf) == 1
    assert _pypass.resolve_workers(5, sessions=1, classifier=clf) == 5  # asked: as asked
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert _pypass.resolve_workers(None, sessions=enough, classifier=clf) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(_pypass, "_main_guarded", lambda: False)
    assert _pypass.resolve_workers(None, sessions=enough, classifier=clf) == 1


@pytest.mark.parametrize(
    ("source", "guarded"),
    [
        ('import sessionlens\nif __name__ == "__main__":\n    main()\n', True),
        ("if '__main__' == __name__: run()\n", True),
        ("import sessionlens as sl\nsl.analyze_sessions(sl.connect('x.duckdb'))\n", False),
    ],
)
def test_scripts_without_a_main_guard_get_no_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, guarded: bool
) -> None:
    script = tmp_path / "job.py"
    script.write_text(source)
    main_module = types.ModuleType("__main__")
    main_module.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main_module)
    assert _pypass._main_guarded() is guarded
    del main_module.__file__  # an interactive session: nothing is re-run
    assert _pypass._main_guarded() is True


def test_cli_workers_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.duckdb"
    assert main(["load", str(datasets.sample_dir()), "--db", str(db), "--no-progress"]) == 0
    assert main(["analyze", "--db", str(db), "--workers", "0"]) == 1
    assert "error: workers: must be a whole number >= 1, got 0" in capsys.readouterr().err
    assert main(["analyze", "--db", str(db), "--workers", "2", "--no-progress"]) == 0
    assert "recomputed" in capsys.readouterr().out


_INTERRUPTED = """
import sys, time
import sessionlens as sl
from sessionlens import datasets

def slow(ev):
    open(sys.argv[1], "a").close()  # tell the test the workers are busy
    time.sleep(0.3)
    return ("other", 0.5)

if __name__ == "__main__":
    con = sl.connect()
    datasets.write_langfuse_blob_export(datasets.generate(200, seed=3), sys.argv[2])
    sl.load(con, sys.argv[2], progress=False)
    sl.analyze_sessions(con, classifier=slow, workers=2, progress=False)
    print("finished")
"""


def test_ctrl_c_stops_a_pooled_run_without_waiting(tmp_path: Path) -> None:
    script, busy = tmp_path / "job.py", tmp_path / "busy"
    script.write_text(textwrap.dedent(_INTERRUPTED))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(busy), str(tmp_path / "export")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not busy.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert busy.exists(), proc.communicate()[1] if proc.poll() is not None else "no start"
        proc.send_signal(signal.SIGINT)  # as a notebook's "interrupt kernel": parent only
        out, err = proc.communicate(timeout=30)  # the work left is ~60 s
    finally:
        proc.kill()
    assert proc.returncode != 0 and "finished" not in out
    assert "KeyboardInterrupt" in err


def test_python_row_is_still_exported_by_cache() -> None:
    # _spark_cache imports python_row and the schema from sessionlens.cache.
    from sessionlens import cache

    assert cache.python_row is _pypass.python_row and cache._PY_SCHEMA is _pypass.PY_SCHEMA
