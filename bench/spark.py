"""Spark benchmark: analyze_sessions on local Spark vs DuckDB over the same generated sessions.

Usage: .venv/bin/python bench/spark.py --sessions 10000 [--master local[2]]

Generates sessions, loads them into DuckDB, exports the Parquet root, then times
``analyze_sessions`` on DuckDB and on Spark (first run: everything computed; second run:
everything skipped) and one cross-session analysis on each. Not a test: numbers, not asserts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

import sessionlens as sl


def _timed(label: str, fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = fn()
    print(f"{label:<34}{time.perf_counter() - started:>9.1f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", default="8", help="spark.sql.shuffle.partitions")
    args = parser.parse_args()
    as_of = datetime(2026, 12, 1)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ds = _timed("generate", lambda: sl.datasets.generate(args.sessions, seed=args.seed))
        _timed("write blob export", lambda: sl.datasets.write_langfuse_blob_export(ds, base / "x"))
        con = sl.connect()
        _timed("duckdb load", lambda: sl.load(con, base / "x", progress=False))
        _timed("export_parquet", lambda: sl.export_parquet(con, base / "root"))
        r = _timed("duckdb analyze (all)", lambda: sl.analyze_sessions(con, as_of=as_of))
        _timed("duckdb analyze (none changed)", lambda: sl.analyze_sessions(con, as_of=as_of))
        _timed("duckdb cost_by day,model", lambda: sl.cost_by(con, by=["day", "model"]).to_pandas())
        store = _timed(
            "spark start + register",
            lambda: sl.connect_spark(
                root=str(base / "root"),
                master=args.master,
                config={"spark.sql.shuffle.partitions": args.partitions},
            ),
        )
        s = _timed("spark analyze (all)", lambda: sl.analyze_sessions(store, as_of=as_of))
        _timed("spark analyze (none changed)", lambda: sl.analyze_sessions(store, as_of=as_of))
        _timed(
            "spark cost_by day,model", lambda: sl.cost_by(store, by=["day", "model"]).to_pandas()
        )
        print(
            f"sessions: duckdb {r.sessions}, spark {s.sessions}; statuses equal: "
            f"{r.statuses == s.statuses}"
        )
        store.close()


if __name__ == "__main__":
    main()
