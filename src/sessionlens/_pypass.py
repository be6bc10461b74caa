"""The analysis's Python pass (intent, booking details, goals), in this process or on workers.

:mod:`sessionlens.cache` stages everything else of a run in DuckDB; this module owns the
part DuckDB cannot run: :func:`python_row` per session, over the sessions' evidence, yielded
as record batches of :data:`PY_SCHEMA` in the order of the ids given.

With ``workers`` > 1 the rows are computed in a :class:`~concurrent.futures.ProcessPoolExecutor`
of ``spawn`` processes (a forked child would inherit the parent's DuckDB threads and locks
mid-flight). This process keeps the connection: it runs the evidence query, sends each chunk
of :data:`_CHUNK` sessions to a worker as the query's Arrow rows (compact to pickle; the
rows become :class:`~sessionlens.analysis.evidence.SessionEvidence` in the worker, as
:func:`~sessionlens.analysis.evidence.iter_evidence` builds them), keeps at most
``2 x workers`` chunks in flight so memory stays bounded, and yields the results in
submission order. The rows are those of the serial pass, in the same order.

:func:`resolve_workers` decides how many processes a run uses; see
:func:`sessionlens.cache.analyze_sessions` for the rules.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from .analysis.details import extract_booking_details
from .analysis.evidence import (
    _BATCH_QUERY,  # the query iter_evidence runs; its rows are what evidence_from_row reads
    SessionEvidence,
    evidence_from_row,
    iter_evidence,
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
#: A ``spawn`` worker imports sessionlens (about 1.5 CPU s) before its first chunk, and the
#: pass costs ~0.5 ms per session: below ~8,000 sessions the start-up eats the gain.
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
        "booking_details_json": json.dumps(details, sort_keys=True, default=str),
        "expected_flow_json": json.dumps(list(flow.steps)) if flow else None,
        "goals_json": json.dumps(goals),
        "goal_completion": goals["completion"],
        "goal_success": goals["success"],
    }


def _cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _picklable(obj: Any) -> str | None:
    """``None`` if ``obj`` can be sent to a worker, else why not."""
    try:
        pickle.dumps(obj)
    except Exception as exc:  # PicklingError, AttributeError, TypeError: all mean "cannot"
        return f"{type(exc).__name__}: {exc}"
    return None


def _main_guarded() -> bool:
    """Whether a ``spawn`` child can start without re-running the caller's program.

    A child re-imports the parent's ``__main__`` script (or ``-m`` module) as
    ``__mp_main__``: code outside an ``if __name__ == "__main__":`` guard would run again in
    every worker (opening the database, analysing again). Interactive sessions, notebooks
    and packages' ``__main__`` modules are not re-run.
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
        if sessions < AUTO_MIN_SESSIONS or _cpus() < 2 or _picklable(classifier) is not None:
            return 1
        return _cpus() if _main_guarded() else 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(
            "workers",
            f"must be a whole number >= 1, got {workers!r}; pass 1 to compute in this process "
            "or leave it unset to use every CPU on large runs",
        )
    if workers > 1:
        why = _picklable(classifier)
        if why is not None:
            raise ConfigError(
                "workers",
                f"the classifier cannot be sent to worker processes ({why:.120}); define it at "
                "the top level of an importable module, or pass workers=1",
            )
    return workers


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
) -> Iterator[pa.RecordBatch]:
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
            rows = (
                python_row(ev, classify=classify, flows=flows, region=region)
                for ev in iter_evidence(con, ids, batch_size=batch_size)
            )
            yield from _batched(rows, bar, batch_size)
    finally:
        bar.close()


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _batched(rows: Iterator[dict[str, Any]], bar: Any, size: int) -> Iterator[pa.RecordBatch]:
    cols: dict[str, list[Any]] = {name: [] for name in PY_SCHEMA.names}
    for row in rows:
        for name, value in row.items():
            cols[name].append(value)
        bar.update()
        if len(cols["session_id"]) >= size:
            yield pa.RecordBatch.from_pydict(cols, schema=PY_SCHEMA)
            cols = {name: [] for name in PY_SCHEMA.names}
    if cols["session_id"]:
        yield pa.RecordBatch.from_pydict(cols, schema=PY_SCHEMA)


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
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(),
        initializer=_init_worker,
        initargs=(payload,),
    )
    pending: deque[tuple[int, Future[pa.RecordBatch]]] = deque()
    try:
        for chunk_ids, rows in _chunks(con, ids, batch_size):
            pending.append((len(chunk_ids), pool.submit(_compute, chunk_ids, rows)))
            if len(pending) >= 2 * workers:  # bounded: the rest waits in DuckDB
                yield _take(pending, bar)
        while pending:
            yield _take(pending, bar)
    except BaseException:
        # An error, Ctrl-C or an abandoned run: stop the workers now rather than wait for
        # their chunks (a slow custom classifier can take minutes over one).
        _terminate(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    if hasattr(pool, "terminate_workers"):  # Python 3.14+
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _context() -> Any:
    """``forkserver`` where there is one (POSIX), else ``spawn``.

    Never ``fork``: a forked child would inherit this process's DuckDB threads and locks
    mid-flight. The fork server is a fresh interpreter that imports this module once
    (about 1.2 CPU s) and forks every worker from there, now and in later runs of this
    process; with ``spawn`` each worker imports it anew.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def _take(pending: deque[tuple[int, Future[pa.RecordBatch]]], bar: Any) -> pa.RecordBatch:
    n, future = pending.popleft()
    try:
        batch = future.result()
    except BrokenProcessPool as exc:
        raise ConfigError(
            "workers",
            f"a worker process exited unexpectedly ({exc}); a script using workers must "
            'start under `if __name__ == "__main__":`, or pass workers=1',
        ) from exc
    except _Rebuilt as exc:
        raise exc.rebuild() from exc
    bar.update(n)
    return batch


class _Rebuilt(Exception):
    """Carries an exception that does not survive pickling (e.g. a constructor with several
    required arguments, as :class:`~sessionlens.errors.ConfigError`) back to the parent."""

    def __init__(self, kind: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]):
        super().__init__(kind, args, state)
        self.kind, self.exc_args, self.state = kind, args, state

    def rebuild(self) -> BaseException:
        exc = self.kind.__new__(self.kind)
        BaseException.__init__(exc, *self.exc_args)
        exc.__dict__.update(self.state)
        return exc


def _portable(exc: Exception) -> Exception:
    """``exc`` if the parent can unpickle it, else a :class:`_Rebuilt` of the same type."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        state = {k: v for k, v in vars(exc).items() if _picklable(v) is None}
        if _picklable(type(exc)) is not None:  # a class the parent cannot import
            return RuntimeError(f"{type(exc).__qualname__}: {exc}")
        return _Rebuilt(type(exc), tuple(a for a in exc.args if _picklable(a) is None), state)


#: Worker state from :func:`_init_worker`: ``(classify, flows, region)``, or the error that
#: made it impossible, raised with the first chunk so the parent sees what went wrong.
_STATE: tuple[Callable[[Any], Any], Mapping[str, Flow], str] | Exception | None = None


def _init_worker(payload: bytes) -> None:
    """Worker start: unpickle the configuration (here, so a failure has a message)."""
    global _STATE
    # Ctrl-C reaches the whole process group: the parent stops the run, the workers finish
    # their chunk and exit when it shuts the pool down, instead of dying mid-queue.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
        classify, flows, region = state
        out = (
            python_row(
                evidence_from_row(row) if row["session_id"] is not None else SessionEvidence(sid),
                classify=classify,
                flows=flows,
                region=region,
            )
            for sid, row in zip(ids, rows.to_pylist(), strict=True)
        )
        return pa.RecordBatch.from_pylist(list(out), schema=PY_SCHEMA)
    except Exception as exc:
        raise _portable(exc) from None
