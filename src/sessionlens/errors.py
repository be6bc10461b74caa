"""Exception types: one base, each subclass also a matching built-in.

Library code raises these and never prints; the CLI turns them into one ``error: ...`` line.
Every error stores its fields so callers (and tests) can inspect what, where and the fix.
"""

from __future__ import annotations

import re


def _restore(
    cls: type[SessionlensError], args: tuple[object, ...], state: dict[str, object]
) -> Exception:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class SessionlensError(Exception):
    """Base class of every error sessionlens raises on purpose.

    Errors survive pickling with their type, message and fields, so one raised in a worker
    process (``analyze_sessions(workers=2)``, ``convert``) reaches the caller unchanged: the
    default reduction would call ``__init__`` with the message alone.

    Examples
    --------
    >>> import pickle
    >>> err = pickle.loads(pickle.dumps(ConfigError("workers", "must be at least 1")))
    >>> type(err).__name__, err.option, str(err)
    ('ConfigError', 'workers', 'workers: must be at least 1')
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class TraceFormatError(SessionlensError, ValueError):
    """A record or file does not have the shape its format requires.

    Parameters
    ----------
    path : str
        The file the record came from.
    locator : str
        Where in the file: ``line 12`` for line-based files, a JSON pointer such as
        ``/observations/3/usageDetails`` for JSON documents, ``row 7`` for tables.
    reason : str
        What is wrong, in words a user can act on.

    Examples
    --------
    >>> err = TraceFormatError("t.jsonl", "line 3", "truncated JSON")
    >>> str(err)
    't.jsonl, line 3: truncated JSON'
    >>> isinstance(err, ValueError)
    True
    """

    def __init__(self, path: str, locator: str, reason: str) -> None:
        self.path = str(path)
        self.locator = locator
        self.reason = reason
        super().__init__(f"{self.path}, {locator}: {reason}")


class UnknownFormatError(SessionlensError, ValueError):
    """Format detection gave up on a file; the message lists the supported formats."""

    def __init__(self, path: str, detail: str, supported: list[str]) -> None:
        self.path = str(path)
        self.detail = detail
        self.supported = list(supported)
        super().__init__(
            f"{self.path}: cannot tell the format ({detail}); pass --format with one of: "
            + ", ".join(self.supported)
        )


class SchemaVersionError(SessionlensError, RuntimeError):
    """The database was written by a newer sessionlens than the one reading it."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"{path}: database schema version {found} is newer than this sessionlens "
            f"supports ({supported}); upgrade sessionlens (pip install -U sessionlens)"
        )


class DatabaseLockedError(SessionlensError, RuntimeError):
    """Another process (or connection) holds the database file, so it cannot be opened.

    DuckDB's rule: one process may open a database file for writing, and then no other
    process may open it at all, not even read-only; or any number of processes may open it
    read-only, and then none may write. The message says which case this is and what to do.

    Parameters
    ----------
    path : str
        The database file.
    detail : str
        DuckDB's own message (it names the process holding the lock).
    holder : {'writer', 'reader', 'this-process'}
        Who holds it: a writing process, read-only processes, or a connection of this process
        opened with the other ``read_only`` setting.

    Examples
    --------
    >>> err = DatabaseLockedError("t.duckdb", "Conflicting lock is held in python (PID 7)")
    >>> err.pid, str(err).split(";")[0]
    (7, 't.duckdb: another process (PID 7) is writing to this database')
    """

    def __init__(self, path: str, detail: str, holder: str = "writer") -> None:
        self.path = path
        self.detail = detail
        self.holder = holder
        found = re.search(r"PID (\d+)", detail)
        self.pid = int(found.group(1)) if found else None
        who = f"another process (PID {self.pid})" if self.pid else "another process"
        if holder == "this-process":
            what = (
                "this process already has it open with the other read_only setting; close that "
                "connection first (DuckDB opens a file one way per process)"
            )
        elif holder == "reader":
            what = (
                f"{who} has this database open read-only (a notebook?); close that connection "
                "(con.close() or restart its kernel) before writing, or open it with "
                "connect(path, read_only=True) to read alongside"
            )
        else:
            what = (
                f"{who} is writing to this database; while a process writes, DuckDB lets no "
                "other process open the file, not even read-only: wait for it to finish "
                "(a `sessionlens load` or `analyze`), then open it again, or read a copy"
            )
        super().__init__(f"{path}: {what}")


class ConfigError(SessionlensError, ValueError):
    """An option or configuration value is out of range or malformed."""

    def __init__(self, option: str, reason: str) -> None:
        self.option = option
        self.reason = reason
        super().__init__(f"{option}: {reason}")


class InputNotFoundError(SessionlensError, FileNotFoundError):
    """A path or glob given to a loader matched no file."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(f"{pattern}: no such file, directory or glob match")


class ChartInputError(SessionlensError, ValueError):
    """A table given to a chart function lacks the columns the chart draws.

    Examples
    --------
    >>> str(ChartInputError("intent_mix", "missing column 'sessions'"))
    "intent_mix: missing column 'sessions'"
    """

    def __init__(self, chart: str, reason: str) -> None:
        self.chart = chart
        self.reason = reason
        super().__init__(f"{chart}: {reason}")


class NotAnalyzedError(SessionlensError, RuntimeError):
    """A report needs ``session_analysis`` rows and the database has none."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"{path}: session_analysis is empty, so there is nothing to report; run "
            f"`sessionlens analyze --db {path}` (sl.analyze_sessions(con)) first, or pass "
            "--analyze to `sessionlens report`"
        )
