"""Analysis benchmark: full, incremental and scaling runs of ``analyze_sessions``, vs pandas.

Usage (from the repository root, with the project's Python)::

    python bench/analyze.py --sessions 100000 --workdir /tmp/sl-bench
    python bench/analyze.py --sessions 100000 --workdir /tmp/sl-bench --no-pandas
    python bench/analyze.py --scaling 10000,100000,1000000 --workdir /tmp/sl-bench

The first run generates the data (seeded ``sessionlens.datasets.generate``, see
``bench/_prep.py``) and loads it into ``WORKDIR/base-N.duckdb`` once; later runs reuse it.
Every step then runs in a fresh subprocess on its own copy of that file, so its peak RSS is its
own and nothing is warm from an earlier step:

- ``full``: ``analyze_sessions`` on the loaded database (every session computed);
- ``pandas``: ``_pandas_baseline.analyze_pandas``, the same metrics in plain pandas;
- ``incremental``: on the database the full step left, load 1% new sessions (not timed) and
  run ``analyze_sessions`` again (only the new sessions and the tags of their users move).

The agreement of the pandas results with ``session_analysis`` is checked on a sample of
sessions and printed. Wall and CPU seconds are both printed: the machine is shared, CPU time
is the steadier number. CPU includes the Python pass's worker processes (``--workers``, default
``auto``: ``analyze_sessions(workers=None)``). Not a test: numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# DuckDB spills past memory_limit; workers: analyze_sessions(workers=...), "auto" = None
SETTINGS = {"memory_limit": "2GB", "profile": "0", "workers": "auto"}


def _usage() -> dict[str, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)  # the Python pass's worker processes
    return {
        "cpu": r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime,
        "rss_mb": r.ru_maxrss / 1024,
        "child_rss_mb": c.ru_maxrss / 1024,
    }


def _reap_workers() -> None:
    """Stop the fork server the worker pool started, so its workers' CPU is counted as this
    process's children (``RUSAGE_CHILDREN`` counts reaped descendants only)."""
    import multiprocessing.forkserver as fs

    server = getattr(fs, "_forkserver", None)
    if server is not None and hasattr(server, "_stop"):  # CPython's private API, bench only
        server._stop()


def _connect(path: Path, workdir: Path) -> Any:
    import sessionlens as sl

    con = sl.connect(str(path))
    con.execute("SET memory_limit = ?", [SETTINGS["memory_limit"]])
    con.execute("SET temp_directory = ?", [str(workdir / "duckdb-tmp")])
    con.execute("SET enable_progress_bar = false")
    return con


def _step(name: str, db: Path, workdir: Path, sessions: int) -> dict[str, Any]:
    """Run one step in this (fresh) process and return its measurements."""
    import _prep

    con = _connect(db, workdir)
    out: dict[str, Any] = {"step": name}
    if name == "incremental":
        import sessionlens as sl

        sl.load(con, _prep.extra_export(workdir, sessions), progress=False)
        _reap_workers()  # the load's own worker processes: their CPU is not this step's
    if name == "pandas":  # the same price table analyze_sessions fills (not timed)
        from sessionlens.analysis.prices import ensure_model_prices

        ensure_model_prices(con)
    before = _usage()
    started = time.perf_counter()
    if name == "pandas":
        from _pandas_baseline import analyze_pandas

        frame = analyze_pandas(con)
        out["sessions"] = len(frame)
        frame.to_parquet(workdir / f"pandas-{sessions}.parquet")
    else:
        import sessionlens as sl

        profiler = None
        if SETTINGS["profile"] == "1" and name == "incremental":
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        workers = None if SETTINGS["workers"] == "auto" else int(SETTINGS["workers"])
        result = sl.analyze_sessions(con, progress=False, workers=workers)
        if profiler is not None:
            profiler.stop()
            text = profiler.output_text(unicode=False, color=False)
            (workdir / f"profile-incremental-{sessions}.txt").write_text(text)
        out["sessions"], out["recomputed"] = result.sessions, result.recomputed
    out["wall"] = time.perf_counter() - started
    _reap_workers()
    after = _usage()
    out["cpu"] = after["cpu"] - before["cpu"]
    out["peak_rss_mb"] = after["rss_mb"]
    out["worker_peak_rss_mb"] = after["child_rss_mb"]
    con.close()
    return out


def _run(name: str, source: Path, workdir: Path, sessions: int, keep: Path | None) -> dict:
    db = workdir / f"step-{name}.duckdb"
    shutil.copy(source, db)
    cmd = [sys.executable, __file__, "--_step", name, "--_db", str(db), "--sessions",
           str(sessions), "--workdir", str(workdir), "--memory-limit",
           SETTINGS["memory_limit"], "--_profile", SETTINGS["profile"],
           "--workers", SETTINGS["workers"]]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"step {name} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if keep is not None:
        db.replace(keep)
    else:
        db.unlink()
    return result


def _agreement(workdir: Path, analysed: Path, sessions: int, sample: int = 2000) -> str:
    import duckdb
    import pandas as pd

    base = pd.read_parquet(workdir / f"pandas-{sessions}.parquet")
    con = duckdb.connect(str(analysed), read_only=True)
    ours = con.execute(
        "SELECT session_id, caller_intent_type, caller_intent_confidence, caller_intent_summary, "
        "completion_rate, drop_off_step, tool_call_count, input_tokens, output_tokens, cost_usd "
        f"FROM session_analysis USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE (1)"
    ).df()
    m = ours.merge(base, on="session_id", how="left")

    def same(a: pd.Series, b: pd.Series, close: bool = False) -> float:
        both_null = a.isna() & b.isna()
        if close:
            eq = (a - b).abs() <= 1e-9 + 1e-6 * b.abs()
        else:
            eq = a.astype(object) == b.astype(object)
        return float((both_null | eq.fillna(False)).mean())

    checks = {
        "intent": same(m.caller_intent_type, m.intent),
        "confidence": same(m.caller_intent_confidence, m.confidence, close=True),
        "summary": same(m.caller_intent_summary, m.summary),
        "completion": same(m.completion_rate_x, m.completion_rate_y, close=True),
        "drop_off": same(m.drop_off_step_x, m.drop_off_step_y),
        "tool_calls": same(m.tool_call_count_x, m.tool_call_count_y),
        "cost_usd": same(m.cost_usd_x, m.cost_usd_y, close=True),
    }
    return f"{len(m)} sampled sessions agree: " + ", ".join(
        f"{k} {v:.1%}" for k, v in checks.items()
    )


def _line(r: dict[str, Any], sessions: int) -> str:
    return (
        f"  {r['step']:<12} wall {r['wall']:8.1f}s  cpu {r['cpu']:8.1f}s  "
        f"{sessions / r['wall']:9.0f} sessions/s  peak RSS {r['peak_rss_mb']:7.0f} MB"
        + (
            f" (+ workers {r['worker_peak_rss_mb']:.0f} MB each)"
            if r.get("worker_peak_rss_mb")
            else ""
        )
    )


def bench(sessions: int, workdir: Path, *, pandas: bool = True) -> None:
    import _prep

    base = _prep.base_db(workdir, sessions)
    _prep.extra_export(workdir, sessions)
    print(f"analysis benchmark, {sessions} sessions ({base})", flush=True)
    analysed = workdir / f"analysed-{sessions}.duckdb"
    full = _run("full", base, workdir, sessions, keep=analysed)
    print(_line(full, sessions), flush=True)
    if pandas:
        base_run = _run("pandas", base, workdir, sessions, keep=None)
        print(_line(base_run, sessions), flush=True)
    inc = _run("incremental", analysed, workdir, sessions, keep=None)
    print(_line(inc, sessions) + f"  ({inc['recomputed']} recomputed)", flush=True)
    if pandas:
        print(f"  pandas / full: wall {base_run['wall'] / full['wall']:.1f}x, "
              f"cpu {base_run['cpu'] / full['cpu']:.1f}x")  # fmt: skip
    print(f"  incremental / full: wall {inc['wall'] / full['wall']:.1%}, "
          f"cpu {inc['cpu'] / full['cpu']:.1%}")  # fmt: skip
    if (workdir / f"pandas-{sessions}.parquet").exists():  # from this run or an earlier one
        print("  " + _agreement(workdir, analysed, sessions), flush=True)


def scaling(sizes: list[int], workdir: Path, replicate_from: int) -> None:
    import _prep

    rows = []
    for n in sizes:
        base = _prep.base_db(workdir, n, replicate_from=replicate_from)
        r = _run("full", base, workdir, n, keep=None)
        rows.append((n, r))
        print(_line(r, n) + f"  [{n} sessions]", flush=True)
    print("\n| sessions | wall s | cpu s | sessions/s | peak RSS MB | wall per 10k sessions |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, r in rows:
        print(f"| {n} | {r['wall']:.1f} | {r['cpu']:.1f} | {n / r['wall']:.0f} | "
              f"{r['peak_rss_mb']:.0f} | {r['wall'] / n * 1e4:.2f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sessionlens-bench"))
    parser.add_argument("--scaling", help="comma-separated sizes, e.g. 10000,100000,1000000")
    parser.add_argument(
        "--replicate-from",
        type=int,
        default=100_000,
        help="scaling sizes above this are copies of the database of this many sessions",
    )
    parser.add_argument(
        "--memory-limit", default=SETTINGS["memory_limit"], help="DuckDB memory_limit per step"
    )
    parser.add_argument(
        "--no-pandas",
        action="store_true",
        help="skip the pandas baseline (agreement is checked against an earlier run's result)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="pyinstrument the incremental step into WORKDIR/profile-incremental-N.txt "
        "(its CPU time then includes the profiler's overhead)",
    )
    parser.add_argument(
        "--workers",
        default=SETTINGS["workers"],
        help="analyze_sessions(workers=...) of the full and incremental steps: auto or a number",
    )
    parser.add_argument("--_profile", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--_step", help=argparse.SUPPRESS)
    parser.add_argument("--_db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    SETTINGS["memory_limit"] = args.memory_limit
    SETTINGS["workers"] = args.workers
    SETTINGS["profile"] = "1" if args.profile or args._profile == "1" else "0"
    if args._step:
        print(json.dumps(_step(args._step, args._db, args.workdir, args.sessions)))
    elif args.scaling:
        scaling([int(s) for s in args.scaling.split(",")], args.workdir, args.replicate_from)
    else:
        bench(args.sessions, args.workdir, pandas=not args.no_pandas)


if __name__ == "__main__":
    main()
