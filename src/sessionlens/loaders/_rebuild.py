"""Rebuilding a load's derived tables on worker processes (``load(..., workers=N)``).

After a file's rows are merged, ``tool_calls`` and ``conversation_turns`` of the sessions
it changed are rebuilt (:mod:`sessionlens.analysis.derived`). Here the Python pass
(:func:`~sessionlens.analysis.derived.derive`) runs on workers, a slice of sessions per
task, while this process keeps the file's transaction and runs the SQL:

- one events query per *group* of slices (as many as the workers have in flight), cut
  into the slices in this process: each query scans the observations' payload columns
  whole, so one per slice made a big load's rebuild grow with slices x table size;
- each slice's transcript is inserted as it comes back, and the group's tool calls in
  one statement (it too scans the observations) once the group's last slice is back.

Sessions are independent in the rebuild (every step starts over at each session or trace),
so slices and groups of any size give the rows of ``workers=1``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .._pool import ignore_sigint, ordered_map, portable
from ..analysis.derived import clear_derived, derive, events_sql
from ..analysis.tools import insert_tool_calls
from ..analysis.transcript import Transcriber
from . import _gc_paused

__all__ = ["AUTO_MIN_SESSIONS", "REBUILD_MIN_SLICE", "parallel_rebuild"]

#: With ``workers=None``, rebuild the derived tables on workers from this many sessions
#: (about 1 ms of Python each, against ~1.3 s to start the fork server if no file needed it).
AUTO_MIN_SESSIONS = 2000
#: Sessions per rebuild task: at most ``REBUILD_SESSIONS``, at least this, and else a
#: quarter of the sessions per worker, so every worker gets a few.
REBUILD_MIN_SLICE = 50


def parallel_rebuild(
    con: duckdb.DuckDBPyConnection, ids: list[str], *, plan: tuple[int, int], most: int
) -> bool:
    """Rebuild ``tool_calls`` and ``conversation_turns`` of sessions ``ids`` on workers.

    This process clears a group of slices of sessions and runs their events query
    (DuckDB), a worker runs :func:`~sessionlens.analysis.derived.derive` over a slice's
    rows (the Python pass), and this process inserts the results, in order. Returns
    ``False`` (nothing done) when ``plan`` (``loaders._parallel.plan_workers``) keeps the
    rebuild in this process.
    """
    processes, min_bytes = plan
    if processes < 2 or (min_bytes and len(ids) < AUTO_MIN_SESSIONS):
        return False
    size = max(REBUILD_MIN_SLICE, min(most, math.ceil(len(ids) / (4 * processes))))
    group = size * 2 * processes  # the slices ordered_map keeps in flight
    # Per slice sent, in order: its group's scope if it is the group's last slice, else None.
    scopes: deque[tuple[str, dict[str, Any]] | None] = deque()

    def tasks() -> Iterator[tuple[pa.Table]]:
        for start in range(0, len(ids), group):
            members = ids[start : start + group]
            scope, params = clear_derived(con, members)
            events = con.execute(events_sql(scope), params).to_arrow_table()
            sessions = events.column(0)
            for first in range(0, len(members), size):
                wanted = pa.array(members[first : first + size]).cast(sessions.type)
                scopes.append((scope, params) if first + size >= len(members) else None)
                # A filter keeps the query's order: the slice's events as its own query.
                yield (events.filter(pc.is_in(sessions, value_set=wanted)),)

    results = ordered_map(
        _derive_slice,
        tasks(),
        workers=processes,
        initializer=ignore_sigint,
        initargs=(),
        preload=__name__,
    )
    calls: list[pa.Table] = []
    for slice_calls, transcript in results:
        transcript.insert(con)
        calls.append(slice_calls)
        done = scopes.popleft()
        if done is not None:
            insert_tool_calls(con, pa.concat_tables(calls), *done)
            calls = []
    return True


def _derive_slice(events: pa.Table) -> tuple[pa.Table, Transcriber]:
    """Worker side: a slice's events query rows in, its tool calls and transcript out."""
    try:
        with _gc_paused():
            return derive(zip(*(column.to_pylist() for column in events.columns), strict=True))
    except Exception as exc:
        raise portable(exc) from None
