"""Benchmark databases for ``bench/analyze.py``: generate, load once, cache in the workdir.

Not part of the package. ``base_db(workdir, n)`` returns a DuckDB file holding ``n`` loaded
sessions, built once and reused by later runs:

- up to ``GENERATE_MAX`` sessions: seeded ``datasets.generate`` in chunks of ``CHUNK``
  sessions (seed ``1 + chunk``, each chunk's calls spread over its own 14 days, so session
  ids never collide and memory stays bounded), written as a Langfuse JSONL blob export and
  loaded with ``sessionlens.load``;
- above that (generating and loading 1M sessions in Python takes hours on this machine):
  the ``GENERATE_MAX`` database replicated ``k`` times in SQL, copy ``r`` with every id
  suffixed ``~r{r}`` and every time shifted by ``r`` x (the base span + 1 day). The copies
  have the shape of the original (the same texts, tools, models, users per session), which is
  what the analysis cost depends on.

``extra_export(workdir, n)`` writes the incremental step's new sessions (1% of ``n``, seed
``10_000 + n``, starting the day after the base period ends) as an export to load later.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

import sessionlens as sl
from sessionlens import datasets

CHUNK = 20_000
GENERATE_MAX = 100_000
DAYS_PER_CHUNK = 14
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
#: Tables copied when replicating; their id columns get the copy's suffix.
_REPLICATE = {
    "traces": ("trace_id", "session_id", "source_session_id"),
    "observations": ("observation_id", "trace_id", "parent_observation_id", "tool_call_id"),
    "sessions": ("session_id",),
    "tool_calls": ("session_id", "trace_id", "observation_id", "tool_call_id"),
    "conversation_turns": ("session_id", "trace_id", "observation_id"),
    "scores": ("score_id", "trace_id", "observation_id", "session_id"),
}
_TIMES = {
    "traces": ("start_time", "end_time", "source_updated_at"),
    "observations": ("start_time", "end_time", "completion_start_time", "source_updated_at"),
    "sessions": ("start_time", "end_time"),
    "tool_calls": ("start_time", "end_time"),
    "conversation_turns": ("timestamp",),
    "scores": ("timestamp",),
}


def _load_generated(path: Path, n: int, *, seed: int, start: datetime, log: bool) -> None:
    con = sl.connect(str(path))
    con.execute("SET enable_progress_bar = false")
    done = 0
    chunk = 0
    while done < n:
        size = min(CHUNK, n - done)
        t0 = time.perf_counter()
        ds = datasets.generate(
            size,
            seed=seed + chunk,
            start=start + timedelta(days=DAYS_PER_CHUNK * chunk),
            days=DAYS_PER_CHUNK,
        )
        with tempfile.TemporaryDirectory() as tmp:
            datasets.write_langfuse_blob_export(ds, tmp)
            del ds
            sl.load(con, tmp, progress=False)
        done += size
        chunk += 1
        if log:
            print(f"  prepared {done}/{n} sessions ({time.perf_counter() - t0:.0f}s)", flush=True)
    con.close()


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def _replicate(path: Path, source: Path, copies: int) -> None:
    shutil.copy(source, path)
    con = sl.connect(str(path))
    lo, hi = con.execute("SELECT min(start_time), max(end_time) FROM sessions").fetchone()
    span_days = (hi - lo).days + 2
    for r in range(1, copies):
        shift = f"INTERVAL {span_days * r} DAY"
        for table, ids in _REPLICATE.items():
            cols = _columns(con, table)
            exprs = []
            for c in cols:
                if c in ids:
                    exprs.append(f"{c} || '~r{r}'")
                elif c in _TIMES[table]:
                    exprs.append(f"{c} + {shift}")
                else:
                    exprs.append(c)
            # Column names come from DESCRIBE and the suffix is an int: nothing is user data.
            con.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
                f"FROM {table} WHERE NOT contains(trace_id_or_id, '~r')".replace(
                    "trace_id_or_id", ids[0]
                )
            )
    con.execute("CHECKPOINT")
    con.close()


def base_db(workdir: Path, n: int, *, replicate_from: int = GENERATE_MAX, log: bool = True) -> Path:
    """The cached database of ``n`` loaded sessions (built on first use): generated up to
    ``replicate_from`` sessions, above that ``replicate_from`` replicated ``n // it`` times."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"base-{n}.duckdb"
    if path.exists():
        return path
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    if n <= replicate_from:
        if log:
            print(f"generating and loading {n} sessions into {path}", flush=True)
        _load_generated(tmp, n, seed=1, start=START, log=log)
    else:
        if n % replicate_from:
            raise SystemExit(f"sizes above {replicate_from} must be multiples of it, got {n}")
        source = base_db(workdir, replicate_from, log=log)
        if log:
            print(f"replicating {source.name} x{n // replicate_from} into {path}", flush=True)
        _replicate(tmp, source, n // replicate_from)
    tmp.rename(path)
    return path


def extra_export(workdir: Path, n: int) -> Path:
    """A Langfuse export of 1% new sessions for the incremental step (built on first use)."""
    out = workdir / f"extra-{n}"
    if out.exists():
        return out
    chunks = -(-min(n, GENERATE_MAX) // CHUNK)
    after = START + timedelta(days=DAYS_PER_CHUNK * chunks + 1)
    ds = datasets.generate(max(1, n // 100), seed=10_000 + n, start=after, days=1)
    tmp = out.with_suffix(".building")
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.write_langfuse_blob_export(ds, tmp)
    tmp.rename(out)
    return out
