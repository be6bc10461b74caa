"""An ordered, bounded map over worker processes, for the analysis's Python pass.

:mod:`sessionlens._pypass` decides what each worker computes; this module owns the process
mechanics, so that they are the same wherever a pass is spread over processes:

- the start method: ``forkserver`` where there is one, else ``spawn``; never ``fork``, since
  a forked child would inherit the parent's DuckDB threads and locks mid-flight;
- at most ``2 x workers`` tasks in flight (the caller's iterator is not read ahead further,
  so memory stays bounded) and results in submission order;
- errors raised in a worker come back as their own type and message, even those whose
  constructor pickling cannot call (:class:`~sessionlens.errors.ConfigError` takes two
  arguments) and a dead worker becomes a :class:`~sessionlens.errors.ConfigError` saying
  what to do;
- on an error, Ctrl-C or an abandoned iterator the workers are terminated, not awaited.

:func:`gc_paused` lives here too: the load and the Python pass, in this process or in a worker,
pause the cyclic collector around their batches the same way.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import pickle
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import ConfigError

__all__ = [
    "check_workers",
    "gc_paused",
    "ignore_sigint",
    "ordered_map",
    "picklable",
    "portable",
    "restore",
    "warm_up",
]


def picklable(obj: Any) -> str | None:
    """``None`` if ``obj`` can be sent to a worker, else why not.

    Examples
    --------
    >>> picklable(len) is None, picklable(lambda: 1)[:13]
    (True, 'PicklingError')
    """
    try:
        pickle.dumps(obj)
    except Exception as exc:  # PicklingError, AttributeError, TypeError: all mean "cannot"
        return f"{type(exc).__name__}: {exc}"
    return None


def check_workers(workers: Any, *, sent: Any, what: str, fix: str, work: str, scope: str) -> int:
    """``workers`` as asked by a caller, checked: a whole number >= 1, and when > 1, ``sent``
    (named ``what``, what every worker receives) must pickle; else :class:`ConfigError`,
    whose message ends with ``fix`` or ``workers=1`` (``work`` in this process) as the way out.

    Examples
    --------
    >>> check_workers(2, sent=(), what="the rules", fix="", work="load", scope="files")
    2
    >>> check_workers(0, sent=(), what="the rules", fix="", work="load", scope="files")
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: workers: must be a whole number >= 1, got 0; pass 1 to \
load in this process or leave it unset to use every CPU on large files
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(
            "workers",
            f"must be a whole number >= 1, got {workers!r}; pass 1 to {work} in this process "
            f"or leave it unset to use every CPU on large {scope}",
        )
    why = picklable(sent) if workers > 1 else None
    if why is not None:
        raise ConfigError(
            "workers",
            f"{what} cannot be sent to worker processes ({why:.120}); {fix}, or pass workers=1",
        )
    return workers


def ordered_map(
    fn: Callable[..., Any],
    tasks: Iterable[tuple[Any, ...]],
    *,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    preload: str,
    ahead: int | None = None,
) -> Iterator[Any]:
    """``fn(*task)`` for each task on ``workers`` processes, yielded in the order of ``tasks``.

    ``fn`` and ``initializer`` must be top-level functions of the module ``preload``, which
    the fork server imports once for all its workers. ``initializer`` should call
    :func:`ignore_sigint`, and ``fn`` raise :func:`portable` errors. At most ``ahead`` tasks
    (default ``2 x workers``) are submitted and not yet yielded: more keeps the workers busy
    while the caller spends a while on each of a few results (the loader merging a batch).

    Raises
    ------
    ConfigError
        A worker process died (for example a script without a ``__main__`` guard).

    Examples
    --------
    >>> list(ordered_map(abs, [(-2,), (3,), (-1,)], workers=2, initializer=ignore_sigint,
    ...                  initargs=(), preload="operator"))
    [2, 3, 1]
    """
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(preload),
        initializer=initializer,
        initargs=initargs,
    )
    pending: deque[Future[Any]] = deque()
    bound = max(1, ahead or 2 * workers)
    try:
        for task in tasks:
            pending.append(pool.submit(fn, *task))
            if len(pending) >= bound:  # bounded: the rest waits in the caller
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    except BaseException:
        # An error, Ctrl-C or an abandoned run: stop the workers now rather than wait for
        # their tasks (a slow custom classifier can take minutes over one chunk).
        _terminate(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def warm_up(preload: str) -> None:
    """Start the fork server now, so that it imports ``preload`` while this process works.

    :func:`ordered_map` starts it otherwise, and its first task then waits for that import
    (about 1.2 CPU s); a caller that knows it will need workers soon calls this first.
    Nothing happens where there is no fork server (``spawn``) or it already runs.

    Examples
    --------
    >>> warm_up("operator")
    """
    if _context(preload).get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def ignore_sigint() -> None:
    """For worker initializers: Ctrl-C in a terminal reaches the whole process group; only
    the parent acts on it (it terminates the workers), so workers print no tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def portable(exc: Exception) -> Exception:
    """What a worker raises for ``exc``: itself if the parent can unpickle it, else a carrier
    :func:`ordered_map` turns back into the same type with the same message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        if picklable(type(exc)) is not None:  # a class the parent cannot import
            return RuntimeError(f"{type(exc).__qualname__}: {exc}")
        state = {k: v for k, v in vars(exc).items() if picklable(v) is None}
        return _Rebuilt(type(exc), tuple(a for a in exc.args if picklable(a) is None), state)


def restore(exc: Exception) -> BaseException:
    """The error a worker passed back as :func:`portable` made it, as its own type again (for
    a worker that returns an error as a value rather than raising it).

    Examples
    --------
    >>> from sessionlens.errors import ConfigError
    >>> restore(portable(ConfigError("workers", "bad")))
    ConfigError('workers: bad')
    """
    return exc.rebuild() if isinstance(exc, _Rebuilt) else exc


class _Rebuilt(Exception):
    """Carries an exception that does not survive pickling back to the parent."""

    def __init__(self, kind: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]):
        super().__init__(kind, args, state)
        self.kind, self.exc_args, self.state = kind, args, state

    def rebuild(self) -> BaseException:
        exc = self.kind.__new__(self.kind)
        BaseException.__init__(exc, *self.exc_args)
        exc.__dict__.update(self.state)
        return exc


def _result(future: Future[Any]) -> Any:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise ConfigError(
            "workers",
            f"a worker process exited unexpectedly ({exc}); a script using workers must "
            'start under `if __name__ == "__main__":`, or pass workers=1',
        ) from exc
    except _Rebuilt as exc:
        raise exc.rebuild() from exc


def _terminate(pool: ProcessPoolExecutor) -> None:
    if hasattr(pool, "terminate_workers"):  # Python 3.14+
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _context(preload: str) -> Any:
    """``forkserver`` where there is one (POSIX), else ``spawn``.

    The fork server is a fresh interpreter that imports ``preload`` once (sessionlens: about
    1.2 CPU s) and forks every worker from there, in this run and later ones of this
    process; with ``spawn`` each worker imports it anew.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([preload])
    return ctx


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a block, then as it was (also on an error).

    Mapping records and the analysis's Python pass allocate hundreds of thousands of dicts,
    lists and strings per batch, none in reference cycles (reference counting frees them),
    yet each burst triggers collections that walk the whole heap (pandas, Ibis, ...): 13% of
    a load's CPU, 14% of the pass's. Cyclic garbage made meanwhile (a custom classifier's) is
    collected once the block ends. Use only around work that does not yield to the caller.

    Examples
    --------
    >>> import gc
    >>> with gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
