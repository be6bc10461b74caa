"""Spark benchmark: analyze_sessions on local Spark vs DuckDB over the same generated sessions.

Usage::

    .venv/bin/python bench/spark.py --sessions 10000 [--master local[2]]
    .venv/bin/python bench/spark.py --db /tmp/anperf/wd/base-100000.duckdb   # reuse a loaded db
    .venv/bin/python bench/spark.py --blob 10000    # also: a blob Parquet export, both loaders

Generates sessions, loads them into DuckDB (or copies the loaded database ``--db``, which is
never modified), exports the Parquet root, then times ``analyze_sessions`` on DuckDB and on
Spark (first run: everything computed; second run: everything skipped) and one cross-session
analysis on each. ``--blob N`` then writes N generated sessions as a Langfuse blob Parquet
export and times ``sl.load`` + ``export_parquet`` against ``load_langfuse_blob`` on Spark.
Not a test: numbers, not asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import sessionlens as sl
from sessionlens.spark_blob import load_langfuse_blob


def _timed(label: str, fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = fn()
    print(f"{label:<34}{time.perf_counter() - started:>9.1f} s", flush=True)
    return out


def _duck(args: argparse.Namespace, base: Path):  # type: ignore[no-untyped-def]
    if args.db:
        copy = base / "bench.duckdb"
        _timed("copy the loaded database", lambda: shutil.copy(args.db, copy))
        return sl.connect(str(copy))
    ds = _timed("generate", lambda: sl.datasets.generate(args.sessions, seed=args.seed))
    _timed("write blob export", lambda: sl.datasets.write_langfuse_blob_export(ds, base / "x"))
    con = sl.connect()
    _timed("duckdb load", lambda: sl.load(con, base / "x", progress=False))
    return con


def _blob(args: argparse.Namespace, base: Path, store: sl.SparkStore) -> None:
    ds = _timed("generate (blob)", lambda: sl.datasets.generate(args.blob, seed=args.seed))
    export = base / "blob"
    _timed(
        "write blob Parquet export",
        lambda: sl.datasets.write_langfuse_blob_export(ds, export, fmt="parquet"),
    )
    con = sl.connect()
    _timed("duckdb load (blob Parquet)", lambda: sl.load(con, export, progress=False))
    _timed("export_parquet (blob)", lambda: sl.export_parquet(con, base / "blob-duck"))
    r = _timed(
        "spark load_langfuse_blob",
        lambda: load_langfuse_blob(store, export, root=str(base / "blob-spark")),
    )
    print(f"blob: duckdb sessions {con.table('sessions').count('*').fetchone()}, spark {r.rows}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="a loaded sessionlens DuckDB file to copy instead")
    parser.add_argument("--blob", type=int, default=0, help="sessions for the blob timing")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", default="8", help="spark.sql.shuffle.partitions")
    args = parser.parse_args()
    as_of = datetime(2026, 12, 1)
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        con = _duck(args, base)
        _timed("export_parquet", lambda: sl.export_parquet(con, base / "root"))
        r = _timed("duckdb analyze (all)", lambda: sl.analyze_sessions(con, as_of=as_of))
        _timed("duckdb analyze (none changed)", lambda: sl.analyze_sessions(con, as_of=as_of))
        _timed("duckdb cost_by day,model", lambda: sl.cost_by(con, by=["day", "model"]).to_pandas())
        con.close()
        store = _timed(
            "spark start + register",
            lambda: sl.connect_spark(
                root=str(base / "root"),
                master=args.master,
                config={
                    "spark.sql.shuffle.partitions": args.partitions,
                    "spark.ui.showConsoleProgress": "false",
                },
            ),
        )
        s = _timed("spark analyze (all)", lambda: sl.analyze_sessions(store, as_of=as_of))
        _timed("spark analyze (none changed)", lambda: sl.analyze_sessions(store, as_of=as_of))
        _timed(
            "spark cost_by day,model", lambda: sl.cost_by(store, by=["day", "model"]).to_pandas()
        )
        print(
            f"sessions: duckdb {r.sessions}, spark {s.sessions}; statuses equal: "
            f"{r.statuses == s.statuses}",
            flush=True,
        )
        if args.blob:
            _blob(args, base, store)
        store.close()
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
