"""sessionlens: session-level analytics over LLM/agent traces in DuckDB.

One handle, functions hanging off it::

    import sessionlens as sl
    con = sl.connect("traces.duckdb")
    sl.load(con, "exports/")
    con.table("sessions").df()
"""

from __future__ import annotations

from . import datasets
from .analysis.sessions import rebuild_sessions, session_gap
from .errors import (
    ConfigError,
    DatabaseLockedError,
    InputNotFoundError,
    SchemaVersionError,
    SessionlensError,
    TraceFormatError,
    UnknownFormatError,
)
from .loaders import FORMATS, InternalRules, LoadResult, load, load_spans_dataframe
from .store import connect

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "ConfigError",
    "DatabaseLockedError",
    "InputNotFoundError",
    "InternalRules",
    "LoadResult",
    "SchemaVersionError",
    "SessionlensError",
    "TraceFormatError",
    "UnknownFormatError",
    "__version__",
    "connect",
    "datasets",
    "load",
    "load_spans_dataframe",
    "rebuild_sessions",
    "session_gap",
]
