"""Crash safety and concurrency with real processes: SIGKILL in the middle of a load, and a
second process opening the database while a load holds it.

A load runs in a child process (the ``sessionlens`` CLI, or ``sl.load`` with a hook that says
when the file's transaction has written its rows and then waits), the test kills it with
SIGKILL, reopens the database and checks that each file is in it whole or not at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import sessionlens as sl
from sessionlens import datasets

from .conftest import FRAMEWORK_TRACES, ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# Runs sl.load in a child; after the file's rows are merged (inside its transaction) it
# creates the marker file and sleeps, so the parent can kill it mid-transaction.
_HOLD_IN_TRANSACTION = """
import sys, time
from pathlib import Path
import sessionlens as sl
from sessionlens.loaders import _write

db, path, marker = sys.argv[1:4]
original = _write.fill_trace_times

def fill_then_wait(con):
    original(con)
    Path(marker).write_text("in transaction")
    time.sleep(120)

_write.fill_trace_times = fill_then_wait
sl.load(sl.connect(db), path, progress=False)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _wait_for(predicate: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("the child process never got there")
        time.sleep(0.05)


@pytest.fixture
def holding(tmp_path: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes]]]:
    """A child process inside a load's transaction on ``tmp_path/t.duckdb``."""
    db = tmp_path / "t.duckdb"
    first = FRAMEWORK_TRACES / "openai-agents-2025-09-30.trace.json"
    con = sl.connect(db)
    sl.load(con, first)  # what was there before must survive
    con.close()
    export = datasets.write_langfuse_blob_export(datasets.generate(30, seed=3), tmp_path / "x")
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_IN_TRANSACTION, str(db), str(export[1]), str(marker)],
        env=_env(),
    )
    try:
        _wait_for(lambda: marker.exists() or child.poll() is not None)
        assert child.poll() is None, "the load finished before the test could stop it"
        yield db, export[1], child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_sigkill_inside_the_transaction_leaves_none_of_the_file(
    holding: tuple[Path, Path, subprocess.Popen[bytes]],
) -> None:
    db, path, child = holding
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    con = sl.connect(db)  # opens: DuckDB replays its WAL up to the last commit
    assert con.execute("SELECT count(*) FROM traces").fetchone() == (1,)
    assert con.execute(
        "SELECT count(*) FROM observations WHERE source_file = ?", [str(path)]
    ).fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM observations").fetchone() == (5,)
    # ... and the same file then loads whole
    result = sl.load(con, path, strict=True)
    assert result.written["observations"] > 0
    con.close()


def test_a_second_process_gets_a_clear_error_while_a_load_runs(
    holding: tuple[Path, Path, subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, path, child = holding
    with pytest.raises(
        sl.DatabaseLockedError,
        match=rf"{db}: another process \(PID {child.pid}\) is writing to this database",
    ) as info:
        sl.connect(db)
    assert "wait for it to finish" in str(info.value)
    # a notebook cannot read alongside either: DuckDB refuses read-only opens while a
    # process writes, and the error says so
    with pytest.raises(sl.DatabaseLockedError, match=r"not even read-only"):
        sl.connect(db, read_only=True)
    # the CLI prints one line naming the file and exits 1
    out = subprocess.run(
        [sys.executable, "-m", "sessionlens.cli", "load", str(path), "--db", str(db)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: {db}: another process (PID {child.pid}) is writing")
    assert len(out.stderr.strip().splitlines()) == 1


def test_readers_share_a_finished_database_and_block_a_writer(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    con = sl.connect(db)
    sl.load(con, FRAMEWORK_TRACES / "openai-agents-2025-09-30.trace.json")
    con.close()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, sessionlens as sl\n"
            "con = sl.connect(sys.argv[1], read_only=True)\n"
            "print(con.execute('SELECT count(*) FROM traces').fetchone()[0], flush=True)\n"
            "time.sleep(120)\n",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "1"
        ours = sl.connect(db, read_only=True)  # a second reader is fine
        assert ours.execute("SELECT count(*) FROM observations").fetchone() == (5,)
        ours.close()
        with pytest.raises(sl.DatabaseLockedError, match=r"has this database open read-only"):
            sl.connect(db)
    finally:
        reader.kill()
        reader.wait()
        if reader.stdout is not None:
            reader.stdout.close()
    sl.connect(db).close()  # once the reader is gone, writing works again


def test_one_process_cannot_mix_read_only_and_writing_connections(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    con = sl.connect(db)
    with pytest.raises(sl.DatabaseLockedError, match=r"this process already has it open"):
        sl.connect(db, read_only=True)
    con.close()


def test_sigkill_at_random_moments_of_a_cli_load_keeps_every_file_whole(tmp_path: Path) -> None:
    ds = datasets.generate(40, seed=8)
    files = datasets.write_langfuse_blob_export(ds, tmp_path / "x", window=timedelta(days=2))
    reference = sl.connect()
    sl.load(reference, tmp_path / "x", strict=True, progress=False)
    expected = dict(
        reference.execute(
            "SELECT source_file, count(*) FROM (SELECT source_file FROM traces UNION ALL "
            "SELECT source_file FROM observations) GROUP BY ALL"
        ).fetchall()
    )
    assert len(expected) == len(files) - sum(f.parent.name == "scores" for f in files)
    for attempt, delay in enumerate((0.5, 1.5, 3.0)):
        db = tmp_path / f"kill-{attempt}.duckdb"
        sl.connect(db).close()  # created and migrated: the kill lands in the load
        child = subprocess.Popen(
            [sys.executable, "-m", "sessionlens.cli", "load", str(tmp_path / "x"), "--db", str(db)],
            env=_env(),
            stdout=subprocess.DEVNULL,
        )
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        con = sl.connect(db)
        got = dict(
            con.execute(
                "SELECT source_file, count(*) FROM (SELECT source_file FROM traces "
                "WHERE NOT is_stub UNION ALL SELECT source_file FROM observations) GROUP BY ALL"
            ).fetchall()
        )
        for name, count in got.items():
            assert count == expected[name], f"{name}: {count} of {expected[name]} rows"
        orphans = con.execute(
            "SELECT count(*) FROM observations WHERE trace_id NOT IN (SELECT trace_id FROM traces)"
        ).fetchone()
        assert orphans == (0,)
        sl.load(con, tmp_path / "x", strict=True, progress=False)  # the rest loads after
        assert con.execute("SELECT count(*) FROM observations").fetchone() == (
            reference.execute("SELECT count(*) FROM observations").fetchone()
        )
        con.close()
