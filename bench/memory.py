"""Peak memory of loading one big JSON lines file: it should not grow with the file.

Usage: PYTHONPATH=src .venv/bin/python bench/memory.py --mb 100 --mb 800 [--memory-limit 1GB]

For each size, writes a Langfuse blob-export ``observations/*.jsonl`` of about that many MB
(the generated sessions repeated under new ids, so every row is distinct, plus one record
over the record limit), then in fresh child processes with file databases:

- ``read_json``: DuckDB's own ``CREATE TABLE AS SELECT * FROM read_json(file)``, the baseline;
- ``sessionlens load``: the whole pipeline, the file in one transaction.

Each prints wall time, throughput and that child's own peak RSS (``os.wait4``), with the same
``--memory-limit`` given to both (DuckDB's default is 80% of RAM: below it DuckDB keeps the
pages it wrote cached, so peak RSS then tracks free memory rather than need). Loading is
batched (``loaders.BATCH_ITEMS`` records at a time); batches are staged as Arrow tables
read by replacement scans, and new rows are plain inserts that DuckDB writes to the database
file as row groups fill (docs/reliability.md, "Limits"). Not a test: numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sessionlens import datasets


def write_big(path: Path, megabytes: float) -> int:
    """Write about ``megabytes`` MB of distinct observation rows to ``path``; return rows."""
    seed_dir = Path(tempfile.mkdtemp())
    files = datasets.write_langfuse_blob_export(datasets.generate(40, seed=1), seed_dir)
    lines = [json.loads(line) for line in files[1].read_text().splitlines()]
    path.parent.mkdir(parents=True, exist_ok=True)
    target = int(megabytes * 2**20)
    written = rows = copy = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            for row in lines:
                text = json.dumps(
                    {**row, "id": f"{row['id']}-{copy}", "trace_id": f"{row['trace_id']}-{copy}"}
                )
                out.write(text + "\n")
                written += len(text) + 1
                rows += 1
            copy += 1
        # one record over the 1 MiB limit used below: rejected without being held whole
        out.write(json.dumps({**lines[0], "id": "huge", "input": "x" * (3 * 2**20)}) + "\n")
    return rows


def _child(command: list[str]) -> tuple[float, float, str]:
    """Run ``command``; return its wall seconds, its own peak RSS in MB and its stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(err.read())
        return seconds, usage.ru_maxrss / 1024, " ".join(out.read().split())


_READ_JSON = """
import duckdb, sys
con = duckdb.connect(sys.argv[2])
if sys.argv[3]:
    con.execute("SET memory_limit = ?", [sys.argv[3]])
sql = "CREATE TABLE o AS SELECT * FROM read_json(?, maximum_object_size = 2**26)"
con.execute(sql, [sys.argv[1]])
print(con.execute("SELECT count(*) FROM o").fetchone()[0], "rows")
"""


def measure(path: Path, db: Path, limit: str | None) -> dict[str, tuple[float, float, str]]:
    """Each step in a fresh process: DuckDB's read_json, then sessionlens load."""
    steps = {
        "read_json": [sys.executable, "-c", _READ_JSON, str(path), str(db) + ".raw", limit or ""],
        "sessionlens": [
            *(sys.executable, "-m", "sessionlens.cli", "load", str(path), "--db", str(db)),
            *("--max-record-mb", "1", "--no-progress"),
            *(("--memory-limit", limit) if limit else ()),
        ],
    }
    return {name: _child(command) for name, command in steps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, action="append", help="file size (repeatable)")
    parser.add_argument("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 1GB")
    args = parser.parse_args()
    sizes = sorted(args.mb or [50, 500])
    root = Path(tempfile.mkdtemp(prefix="sl-memory-"))
    print(f"memory_limit: {args.memory_limit or 'DuckDB default (80% of RAM)'}")
    for mb in sizes:
        path = root / f"{mb:g}" / "observations" / "big.jsonl"
        rows = write_big(path, mb)
        size = path.stat().st_size / 2**20
        results = measure(path, root / f"{mb:g}.duckdb", args.memory_limit)
        base = results["read_json"]
        for name, (seconds, peak, summary) in results.items():
            print(
                f"{size:8.0f} MB {rows:>9} rows  {name:<11} {seconds:7.1f} s "
                f"{size / seconds:6.1f} MB/s  peak RSS {peak:6.0f} MB "
                f"({seconds / base[0]:4.1f}x time, {peak / base[1]:4.1f}x RSS)  | {summary[:90]}"
            )
        path.unlink()


if __name__ == "__main__":
    main()
