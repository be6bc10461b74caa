"""Load benchmark: sessionlens.load of a generated Langfuse blob export vs DuckDB's read_json.

Usage: .venv/bin/python bench/load_langfuse.py --sessions 2000

Prints wall time, throughput and peak RSS, and the ratio to DuckDB reading the same JSONL
files into plain tables (the practical lower bound). Not a test: numbers, not assertions.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import duckdb

import sessionlens as sl
from sessionlens import datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    started = time.perf_counter()
    ds = datasets.generate(args.sessions, seed=args.seed)
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        datasets.write_langfuse_blob_export(ds, out)
        files = sorted(out.rglob("*.jsonl"))
        size = sum(f.stat().st_size for f in files)

        raw = duckdb.connect()
        started = time.perf_counter()
        for f in files:
            raw.execute(
                f'CREATE OR REPLACE TABLE "{f.parent.name}" AS SELECT * FROM read_json(?)',
                [str(f)],
            )
        baseline = time.perf_counter() - started

        con = sl.connect()
        started = time.perf_counter()
        result = sl.load(con, out, progress=False)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        sl.load(con, out, progress=False)
        reloaded = time.perf_counter() - started

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sessions {args.sessions}: generated in {generated:.1f}s, export {size / 1e6:.1f} MB")
    print(
        f"  rows: {result.traces} traces, {result.observations} observations, "
        f"{result.tool_calls} tool calls"
    )
    print(f"  duckdb read_json      {baseline:7.2f}s")
    print(
        f"  sessionlens.load      {loaded:7.2f}s  {result.observations / loaded:8.0f} obs/s  "
        f"{loaded / baseline:5.1f}x read_json"
    )
    print(f"  re-load (writes 0)    {reloaded:7.2f}s")
    print(f"  peak RSS (process)    {peak_mb:7.0f} MB")


if __name__ == "__main__":
    main()
