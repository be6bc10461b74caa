"""Load benchmark: sessionlens.load of a generated Langfuse blob export vs its baselines.

Usage::

    PYTHONPATH=src .venv/bin/python bench/load.py --sessions 2000 --workdir /tmp/sl-bench [--json]

The export is generated once per ``--sessions`` in ``--workdir`` (in chunks of 10,000 sessions,
chunk ``i`` with seed ``seed + i``, one file per chunk and table: ids are random per seed, so
chunks never collide) and reused by later runs. Each measured step runs in a fresh subprocess
that reports its own wall time and peak RSS (``ru_maxrss``), so peaks are per step:

- ``duckdb``: ``CREATE TABLE t AS SELECT * FROM read_json(...)`` per blob table (the floor);
- ``pandas``: ``pd.read_json(lines=True)`` per file, flattening of the usage map, timestamps
  parsed, written to DuckDB;
- ``sessionlens``: ``sl.load`` of the same export (mapping, validation, upserts, sessions and
  the derived ``tool_calls`` / ``conversation_turns``).

Not a test: numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHUNK = 10_000
TABLES = ("traces", "observations", "scores")


def generate(root: Path, sessions: int, seed: int) -> Path:
    """The export for ``sessions`` under ``root`` (made once, then reused)."""
    from sessionlens import datasets

    out = root / f"export-{sessions}-{seed}"
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    for i, start in enumerate(range(0, sessions, CHUNK)):
        ds = datasets.generate(min(CHUNK, sessions - start), seed=seed + i)
        tmp = out / f"_chunk{i}"
        for path in datasets.write_langfuse_blob_export(ds, tmp):
            target = out / path.parent.name / f"chunk{i:04d}-{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        shutil.rmtree(tmp)
    (out / "done").write_text("")
    return out


def step_duckdb(export: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect()
    counts = {}
    for table in TABLES:
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_json(?)", [str(export / table / "*.jsonl")]
        )
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    return counts


def step_pandas(export: Path) -> dict[str, int]:
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    counts = {}
    for table in TABLES:
        frames = [pd.read_json(f, lines=True) for f in sorted((export / table).glob("*.jsonl"))]
        df = pd.concat(frames, ignore_index=True)
        for col in ("timestamp", "start_time", "end_time", "updated_at"):
            if col in df:
                df[col] = pd.to_datetime(df[col])
        if "usage_details" in df:
            usage = pd.json_normalize(df["usage_details"].tolist()).add_prefix("usage_")
            df = pd.concat([df.drop(columns=["usage_details"]), usage], axis=1)
        for col in df.columns:
            if df[col].dtype == object:
                df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, (dict, list)) else v)
        con.register("frame", df)
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM frame")
        counts[table] = len(df)
    return counts


def step_sessionlens(export: Path) -> dict[str, int]:
    import sessionlens as sl

    con = sl.connect()
    result = sl.load(con, export, progress=False)
    return {
        "traces": result.traces,
        "observations": result.observations,
        "sessions": result.sessions,
        "rejected": result.rejected,
    }


STEPS = {
    "duckdb": step_duckdb,
    "pandas": step_pandas,
    "sessionlens": step_sessionlens,
}


def child(step: str, export: Path) -> None:
    started = time.perf_counter()
    counts = STEPS[step](export)
    wall = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step": step, "wall_s": wall, "peak_rss_mb": rss_mb, "counts": counts}))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sessionlens-bench"))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--export", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.export)
        return
    started = time.perf_counter()
    export = generate(args.workdir, args.sessions, args.seed)
    prepared = time.perf_counter() - started
    files = sorted(export.rglob("*.jsonl"))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    steps = ["duckdb", "pandas", "sessionlens"]
    results = []
    for step in steps:
        out = subprocess.run(
            [sys.executable, __file__, "--child", step, "--export", str(export)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]
    rows = results[-1]["counts"].get("observations") or base["counts"]["observations"]
    for r in results:
        r["obs_per_s"] = rows / r["wall_s"]
        r["mb_per_s"] = size_mb / r["wall_s"]
        r["time_ratio"] = r["wall_s"] / base["wall_s"]
        r["rss_ratio"] = r["peak_rss_mb"] / base["peak_rss_mb"]
    summary = {
        "sessions": args.sessions,
        "observations": base["counts"]["observations"],
        "export_mb": size_mb,
        "prepare_s": prepared,
        "steps": results,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{args.sessions} sessions, {summary['observations']} observations, "
        f"{size_mb:.0f} MB JSONL (prepared in {prepared:.0f}s)"
    )
    head = ("step", "wall s", "obs/s", "MB/s", "peak MB", "x time", "x RSS")
    print(f"{head[0]:20} " + " ".join(f"{h:>8}" for h in head[1:]))
    for r in results:
        print(
            f"{r['step']:20} {r['wall_s']:8.2f} {r['obs_per_s']:9.0f} {r['mb_per_s']:7.1f} "
            f"{r['peak_rss_mb']:8.0f} {r['time_ratio']:7.2f} {r['rss_ratio']:6.2f}"
        )


if __name__ == "__main__":
    main()
