"""Peak memory of loading one big JSON lines file: it should not grow with the file.

Usage: PYTHONPATH=src .venv/bin/python bench/memory.py --mb 1500 [--mb 150 ...]

For each size, writes a Langfuse blob-export ``observations/*.jsonl`` of about that many MB
(the generated sessions repeated under new ids, so every row is distinct, plus one record
over the record limit), runs ``sessionlens load`` on it in a child process with a file
database, and prints the file size, wall time, rows loaded and the child's peak RSS. Loading
is batched (``loaders.BATCH_ITEMS`` records at a time, one transaction per file) and every
record is read with a bounded ``readline``; what still grows with the file is DuckDB's
uncommitted transaction and the derived-table rebuild (docs/reliability.md, "Limits").
Not a test: numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import resource
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


def measure(path: Path, db: Path) -> tuple[float, float, str]:
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    command = [sys.executable, "-m", "sessionlens.cli", "load", str(path), "--db", str(db)]
    out = subprocess.run(
        [*command, "--max-record-mb", "1", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    # ru_maxrss is the largest child so far (KiB on Linux): run the smallest size first.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if out.returncode:
        raise SystemExit(out.stderr)
    summary = " ".join(out.stdout.split())
    return seconds, max(peak, before) / 1024, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, action="append", help="file size (repeatable)")
    args = parser.parse_args()
    sizes = sorted(args.mb or [50, 500])
    root = Path(tempfile.mkdtemp(prefix="sl-memory-"))
    for mb in sizes:
        path = root / f"{mb:g}" / "observations" / "big.jsonl"
        rows = write_big(path, mb)
        size = path.stat().st_size / 2**20
        seconds, peak, summary = measure(path, root / f"{mb:g}.duckdb")
        print(
            f"{size:8.0f} MB  {rows:>9} rows  {seconds:7.1f} s  "
            f"{size / seconds:5.1f} MB/s  peak RSS {peak:6.0f} MB  | {summary}"
        )
        path.unlink()


if __name__ == "__main__":
    main()
