"""The analysis's Python pass (intent, booking details, goals), in this process or on workers.

:mod:`sessionlens.cache` stages everything else of a run in DuckDB; this module owns the
part DuckDB cannot run: :func:`python_row` per session, over the sessions' evidence, yielded
as record batches of :data:`PY_SCHEMA` in the order of the ids given.

With ``workers`` > 1 the rows are computed on worker processes
(:func:`sessionlens._pool.ordered_map`: ``forkserver`` or ``spawn``, never ``fork``). This
process keeps the connection: it runs the evidence query and sends each chunk of
:data:`_CHUNK` sessions to a worker as the query's Arrow rows (compact to pickle; the rows
become :class:`~sessionlens.analysis.evidence.SessionEvidence` in the worker, as
:func:`~sessionlens.analysis.evidence.iter_evidence` builds them); the results come back in
submission order, so the rows and their order are those of the serial pass, which computes
the same chunks in this process. A chunk is computed with the cyclic garbage collector
paused (:func:`_gc_paused`).

:func:`resolve_workers` decides how many processes a run uses; see
:func:`sessionlens.cache.analyze_sessions` for the rules.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import sys
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from ._pool import check_workers, ignore_sigint, ordered_map, picklable, portable
from ._pool import gc_paused as _gc_paused
from .analysis.details import extract_booking_details
from .analysis.evidence import (
    _BATCH_QUERY,  # the query iter_evidence runs; its rows are what evidence_from_table reads
    SessionEvidence,
    evidence_from_table,
)
from .analysis.flows import Flow
from .analysis.goals import evaluate_goals
from .analysis.intent import as_classifier
from .errors import ConfigError

__all__ = ["AUTO_MIN_SESSIONS", "PY_SCHEMA", "python_batches", "python_row", "resolve_workers"]

#: Sessions per evidence query and per record batch of the serial pass.
BATCH = 5000
#: Sessions per chunk sent to a worker: ~0.3 s of work, ~1 MB of Arrow rows.
_CHUNK = 500
#: With ``workers=None``, run on worker processes only from this many sessions to compute.
#: The fork server imports sessionlens (about 1.2 CPU s) before the first chunk, and the
#: pass costs ~0.5 ms per session: below a few thousand sessions the start-up eats the gain.
AUTO_MIN_SESSIONS = 8000
PY_SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("intent", pa.string()),
        ("confidence", pa.float64()),
        ("summary", pa.string()),
        ("booking_details_json", pa.string()),
        ("expected_flow_json", pa.string()),
        ("goals_json", pa.string()),
        ("goal_completion", pa.float64()),
        ("goal_success", pa.bool_()),
    ]
)
_GUARD = re.compile(r"""__name__\s*==\s*['"]__main__['"]|['"]__main__['"]\s*==\s*__name__""")


def python_row(
    ev: SessionEvidence,
    *,
    classify: Callable[[Any], Any],
    flows: Mapping[str, Flow],
    region: str,
) -> dict[str, Any]:
    """The Python pass over one session (intent, details, goals): a row of ``PY_SCHEMA``.

    Shared by the DuckDB pass below and the Spark executors (``sessionlens._spark_cache``).

    Examples
    --------
    >>> from sessionlens.analysis.flows import DEFAULT_FLOWS
    >>> from sessionlens.analysis.intent import RuleClassifier
    >>> row = python_row(SessionEvidence("s1"), classify=RuleClassifier(),
    ...                  flows=DEFAULT_FLOWS, region="US")
    >>> row["session_id"], row["confidence"], list(row) == PY_SCHEMA.names
    ('s1', 0.0, True)
    """
    result = classify(ev)
    details = extract_booking_details(ev, region=region)
    flow = flows.get(result.type)
    goals = evaluate_goals(flow, ev, details)
    return {
        "session_id": ev.session_id,
        "intent": result.type,
        "confidence": result.confidence,
        "summary": result.summary,
        "booking_details_json": _DETAILS_JSON.encode(details),
        "expected_flow_json": _steps_json(tuple(flow.steps)) if flow else None,
        "goals_json": json.dumps(goals),
        "goal_completion": goals["completion"],
        "goal_success": goals["success"],
    }


#: ``json.dumps(details, sort_keys=True, default=str)``, without building an encoder per row.
_DETAILS_JSON = json.JSONEncoder(sort_keys=True, default=str)


@functools.lru_cache(maxsize=256)  # a few flows, the same steps for every session of one
def _steps_json(steps: tuple[str, ...]) -> str:
    return json.dumps(list(steps))


def _cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _main_guarded() -> bool:
    """Whether a worker process can start without re-running the caller's program.

    A ``spawn`` or ``forkserver`` child re-imports the parent's ``__main__`` script (or
    ``-m`` module) as ``__mp_main__``: code outside an ``if __name__ == "__main__":`` guard
    would run again in every worker (opening the database, analysing again). Interactive
    sessions, notebooks and packages' ``__main__`` modules are not re-run.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return True
    path = getattr(spec, "origin", None) if name is not None else getattr(main, "__file__", None)
    if not path:
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return _GUARD.search(fh.read()) is not None
    except OSError:
        return False


def resolve_workers(workers: int | None, *, sessions: int, classifier: Any) -> int:
    """How many processes compute ``sessions`` rows: ``workers``, or chosen when ``None``.

    ``None`` picks one per CPU this process may use when there are at least
    :data:`AUTO_MIN_SESSIONS` sessions, ``classifier`` can be pickled and the calling script
    (if any) guards its entry point; otherwise 1.

    Raises
    ------
    ConfigError
        ``workers`` is not a whole number >= 1, or is > 1 and ``classifier`` cannot be pickled.

    Examples
    --------
    >>> from sessionlens.analysis.intent import RuleClassifier
    >>> resolve_workers(None, sessions=10, classifier=RuleClassifier())
    1
    >>> resolve_workers(3, sessions=10, classifier=RuleClassifier())
    3
    >>> resolve_workers(2, sessions=10, classifier=lambda ev: ("other", 0.5))
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: workers: the classifier cannot be sent to worker \
processes (PicklingError: ...); define it at the top level of an importable module, or pass \
workers=1
    """
    if workers is None:
        if sessions < AUTO_MIN_SESSIONS or _cpus() < 2 or picklable(classifier) is not None:
            return 1
        return _cpus() if _main_guarded() else 1
    return check_workers(
        workers,
        sent=classifier,
        what="the classifier",
        fix="define it at the top level of an importable module",
        work="compute",
        scope="runs",
    )


def python_batches(
    con: duckdb.DuckDBPyConnection,
    ids: Sequence[str],
    *,
    classifier: Callable[[Any], Any],
    flows: Mapping[str, Flow],
    region: str,
    workers: int = 1,
    progress: bool | None = None,
    batch_size: int | None = None,
) -> Generator[pa.RecordBatch, None, None]:
    """The Python pass over ``ids``: record batches of ``PY_SCHEMA`` rows, in ``ids`` order.

    ``classifier`` is a :class:`~sessionlens.analysis.intent.RuleClassifier` or the user's
    callable (wrapped by :func:`~sessionlens.analysis.intent.as_classifier` here and in each
    worker). ``workers`` > 1 computes on that many processes (see the module docstring).
    ``batch_size`` sessions (default :data:`BATCH`) are read per evidence query.

    Raises
    ------
    ConfigError
        A worker process died (the message says how to run without workers); errors of the
        analyses themselves are raised here as their own type and message.

    Examples
    --------
    >>> from sessionlens import connect
    >>> from sessionlens.analysis.flows import DEFAULT_FLOWS
    >>> from sessionlens.analysis.intent import RuleClassifier
    >>> batches = python_batches(connect(), ["s1", "s2"], classifier=RuleClassifier(),
    ...                          flows=DEFAULT_FLOWS, region="US", progress=False)
    >>> [b.column("session_id").to_pylist() for b in batches]
    [['s1', 's2']]
    """
    batch_size = batch_size or BATCH
    bar = tqdm(total=len(ids), desc="analysing", unit="session", disable=_disable(progress))
    try:
        if workers > 1:
            payload = pickle.dumps((classifier, flows, region))
            yield from _pooled(con, ids, payload, workers, bar, batch_size)
        else:
            classify = as_classifier(classifier)
            yield from _serial(con, ids, (classify, flows, region), bar, batch_size)
    finally:
        bar.close()


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _serial(
    con: duckdb.DuckDBPyConnection,
    ids: Sequence[str],
    state: tuple[Callable[[Any], Any], Mapping[str, Flow], str],
    bar: Any,
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    """The pass in this process: the workers' chunks, one record batch per evidence query."""
    rows: list[dict[str, Any]] = []
    for chunk, table in _chunks(con, ids, batch_size):  # chunks do not cross query batches
        rows += _rows(chunk, table, *state)
        bar.update(len(chunk))
        if len(rows) >= batch_size:
            yield pa.RecordBatch.from_pylist(rows, schema=PY_SCHEMA)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=PY_SCHEMA)


def _rows(
    ids: list[str],
    table: pa.Table,
    classify: Callable[[Any], Any],
    flows: Mapping[str, Flow],
    region: str,
) -> list[dict[str, Any]]:
    """``PY_SCHEMA`` rows of ``ids``, from their evidence query rows (null: no rows)."""
    with _gc_paused():
        return [
            python_row(
                SessionEvidence(sid) if ev.session_id is None else ev,
                classify=classify,
                flows=flows,
                region=region,
            )
            for sid, ev in zip(ids, evidence_from_table(table), strict=True)
        ]


def _chunks(
    con: duckdb.DuckDBPyConnection, ids: Sequence[str], batch_size: int
) -> Iterator[tuple[list[str], pa.Table]]:
    """``(ids, rows)`` per :data:`_CHUNK` sessions: the evidence query's rows of those ids,
    in their order (an all-null row for an id the query did not return)."""
    for start in range(0, len(ids), batch_size):
        batch = list(ids[start : start + batch_size])
        table = con.execute(_BATCH_QUERY, [batch]).to_arrow_table()
        found = table["session_id"].combine_chunks()
        where = pc.index_in(pa.array(batch, type=found.type), value_set=found)
        for i in range(0, len(batch), _CHUNK):
            # take() copies: a chunk pickles its own rows, not the whole batch's buffers.
            yield batch[i : i + _CHUNK], table.take(where[i : i + _CHUNK])


def _pooled(
    con: duckdb.DuckDBPyConnection,
    ids: Sequence[str],
    payload: bytes,
    workers: int,
    bar: Any,
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    tasks = _chunks(con, ids, batch_size)
    for batch in ordered_map(
        _compute,
        tasks,
        workers=workers,
        initializer=_init_worker,
        initargs=(payload,),
        preload=__name__,
    ):
        bar.update(batch.num_rows)
        yield batch


#: Worker state from :func:`_init_worker`: ``(classify, flows, region)``, or the error that
#: made it impossible, raised with the first chunk so the parent sees what went wrong.
_STATE: tuple[Callable[[Any], Any], Mapping[str, Flow], str] | Exception | None = None


def _init_worker(payload: bytes) -> None:
    """Worker start: unpickle the configuration (here, so a failure has a message)."""
    global _STATE
    ignore_sigint()
    try:
        classifier, flows, region = pickle.loads(payload)
        _STATE = (as_classifier(classifier), flows, region)
    except Exception as exc:
        _STATE = ConfigError(
            "workers",
            f"a worker process could not load the classifier ({type(exc).__name__}: {exc}); "
            "define it in a module importable from PYTHONPATH, or pass workers=1",
        )


def _compute(ids: list[str], rows: pa.Table) -> pa.RecordBatch:
    """Worker side: one chunk's evidence rows in, its ``PY_SCHEMA`` batch out."""
    state = _STATE
    try:
        if not isinstance(state, tuple):
            raise state or RuntimeError("worker not initialised")
        return pa.RecordBatch.from_pylist(_rows(ids, rows, *state), schema=PY_SCHEMA)
    except Exception as exc:
        raise portable(exc) from None
