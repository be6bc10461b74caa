"""The DuckDB store: ``connect`` and the ordered list of schema migrations.

This module owns the canonical table definitions (see ``DESIGN.md``). A database records which
migrations it has had in ``schema_migrations``; ``connect`` applies the missing ones in order and
refuses a database written by a newer sessionlens, so an old install never corrupts new data.

Columns beyond DESIGN.md, and why:

- ``traces.source_session_id``: the session id the export gave (``session_id`` holds the
  effective one, inferred when the export had none);
- ``traces.is_stub``: a trace row made from observation rows alone (an observations-only
  export); a real trace record always replaces it;
- ``source_updated_at`` and ``row_hash`` on traces and observations: newest-wins merging of
  overlapping exports, and an unchanged re-load writes nothing;
- ``observations.source_file``: where each row came from, as on traces;
- ``sessions.is_internal``: every trace of the session is internal (evals, experiments);
- ``scores`` (Langfuse scores exports) and ``settings`` (the session gap in force);
- ``model_prices.model_match`` is a regular expression matched against the whole model name
  (case-insensitive); ``priority`` orders overlapping sources (user over Langfuse over
  genai-prices) and ``model_name`` is the price entry's own name;
- ``session_analysis`` adds, beyond DESIGN.md: the session's user, times and internal flag
  (so reports need no join), the expected flow and goal indicators, failed tool calls, every
  token kind, unpriced models, the spend of internal traces (evaluators) kept apart from
  ``cost_usd``, the models used, and ``config_fingerprint`` (flows, taxonomy, prices in force).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb

from .errors import ConfigError, DatabaseLockedError, SchemaVersionError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "connect", "schema_markdown", "schema_version"]

_M1_CANONICAL = """
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY,
    session_id TEXT,
    source_session_id TEXT,
    user_id TEXT,
    name TEXT,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    input JSON,
    output JSON,
    metadata JSON,
    tags TEXT[],
    environment TEXT,
    release TEXT,
    version TEXT,
    is_internal BOOLEAN NOT NULL DEFAULT FALSE,
    is_stub BOOLEAN NOT NULL DEFAULT FALSE,
    source_format TEXT,
    source_file TEXT,
    source_updated_at TIMESTAMP,
    row_hash TEXT,
    loaded_at TIMESTAMP
);
CREATE TABLE observations (
    observation_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    parent_observation_id TEXT,
    type TEXT NOT NULL,
    name TEXT,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    completion_start_time TIMESTAMP,
    level TEXT,
    status_message TEXT,
    model TEXT,
    provider TEXT,
    model_parameters JSON,
    input JSON,
    output JSON,
    metadata JSON,
    input_tokens BIGINT,
    output_tokens BIGINT,
    total_tokens BIGINT,
    cache_read_tokens BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens BIGINT,
    usage_details JSON,
    reported_cost_usd DOUBLE,
    cost_details JSON,
    tool_name TEXT,
    tool_call_id TEXT,
    tool_arguments JSON,
    source_format TEXT,
    source_file TEXT,
    source_updated_at TIMESTAMP,
    row_hash TEXT,
    loaded_at TIMESTAMP
);
CREATE INDEX observations_trace ON observations (trace_id);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    trace_count INTEGER,
    origin TEXT,
    is_internal BOOLEAN NOT NULL DEFAULT FALSE,
    session_tag TEXT
);
CREATE TABLE tool_calls (
    session_id TEXT,
    trace_id TEXT,
    observation_id TEXT,
    seq INTEGER,
    tool_name TEXT,
    tool_call_id TEXT,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    arguments JSON,
    result JSON,
    is_error BOOLEAN,
    origin TEXT
);
CREATE TABLE conversation_turns (
    session_id TEXT,
    trace_id TEXT,
    observation_id TEXT,
    seq INTEGER,
    role TEXT,
    content TEXT,
    timestamp TIMESTAMP
);
CREATE TABLE scores (
    score_id TEXT PRIMARY KEY,
    trace_id TEXT,
    observation_id TEXT,
    session_id TEXT,
    name TEXT,
    value DOUBLE,
    string_value TEXT,
    data_type TEXT,
    source TEXT,
    comment TEXT,
    timestamp TIMESTAMP,
    environment TEXT,
    source_file TEXT,
    source_updated_at TIMESTAMP,
    loaded_at TIMESTAMP
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE load_errors (
    source_file TEXT,
    locator TEXT,
    error TEXT,
    excerpt TEXT,
    loaded_at TIMESTAMP
);
"""


def _exec(sql: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def apply(con: duckdb.DuckDBPyConnection) -> None:
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            con.execute(statement)

    return apply


_M2_ANALYSIS = """
CREATE TABLE model_prices (
    provider TEXT,
    model_match TEXT NOT NULL,
    model_name TEXT,
    valid_from TIMESTAMP,
    valid_to TIMESTAMP,
    input_usd_per_mtok DOUBLE,
    output_usd_per_mtok DOUBLE,
    cache_read_usd_per_mtok DOUBLE,
    cache_write_usd_per_mtok DOUBLE,
    reasoning_usd_per_mtok DOUBLE,
    priority INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE session_analysis (
    session_id TEXT PRIMARY KEY,
    user_id TEXT,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    is_internal BOOLEAN,
    caller_intent_type TEXT,
    caller_intent_confidence DOUBLE,
    caller_intent_summary TEXT,
    booking_details_json JSON,
    tool_sequence_json JSON,
    expected_flow_json JSON,
    completion_rate DOUBLE,
    drop_off_step TEXT,
    goals_json JSON,
    goal_completion DOUBLE,
    status TEXT,
    turn_count INTEGER,
    tool_call_count INTEGER,
    failed_tool_calls INTEGER,
    error_count INTEGER,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cache_read_tokens BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens BIGINT,
    cost_usd DOUBLE,
    cost_source TEXT,
    unpriced_models TEXT[],
    internal_cost_usd DOUBLE,
    models TEXT[],
    duration_seconds DOUBLE,
    session_tag TEXT,
    analyzer_version TEXT,
    config_fingerprint TEXT,
    input_fingerprint TEXT,
    analyzed_at TIMESTAMP,
    created_at TIMESTAMP
)
"""

#: Ordered ``(name, apply)`` pairs. Append only: a released migration never changes.
MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("canonical_tables", _exec(_M1_CANONICAL)),
    ("analysis_tables", _exec(_M2_ANALYSIS)),
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Return the number of migrations recorded in the database (0 for a new one).

    Examples
    --------
    >>> from sessionlens import connect
    >>> schema_version(connect()) == SCHEMA_VERSION
    True
    """
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def _check_memory_limit(memory_limit: str) -> None:
    """Refuse a limit DuckDB cannot parse before a database file is created."""
    try:
        duckdb.connect(config={"memory_limit": memory_limit}).close()
    except (duckdb.ParserException, duckdb.InvalidInputException) as exc:
        raise ConfigError(
            "memory_limit", f"{memory_limit!r} is not a size ({exc}); give e.g. '2GB'"
        ) from exc


def connect(
    path: str | Path | None = None, *, read_only: bool = False, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open (or create) a sessionlens database and bring its schema up to date.

    Parameters
    ----------
    path : str or Path, optional
        Database file. ``None`` (default) opens an in-memory database.
    read_only : bool
        Open without the write lock: any number of processes may read a database this way
        at once, but not while a process writes to it (a running ``sessionlens load``).
        Migrations are not applied to a read-only database.
    memory_limit : str, optional
        DuckDB's memory limit for this database, e.g. ``"2GB"`` (default: DuckDB's, 80% of
        RAM). A load keeps at most about a row group per table of its open transaction in
        memory and spills the rest to the database file, so with a limit a multi-GB file
        loads in bounded memory; see ``docs/reliability.md``.

    Returns
    -------
    duckdb.DuckDBPyConnection

    Raises
    ------
    SchemaVersionError
        The file was written by a newer sessionlens.
    ConfigError
        ``memory_limit`` is not a size DuckDB understands.
    DatabaseLockedError
        Another process has the file open for writing (then it cannot be opened at all, not
        even read-only), or read-only (then it cannot be opened for writing); or this process
        has it open with the other ``read_only`` setting.

    Examples
    --------
    >>> con = connect()
    >>> con.sql("SELECT count(*) FROM traces").fetchone()
    (0,)
    """
    where = ":memory:" if path is None else str(path)
    if memory_limit is not None:
        _check_memory_limit(memory_limit)
    try:
        con = duckdb.connect(where, read_only=read_only)
    except duckdb.IOException as exc:
        if re.search(r"lock", str(exc), re.IGNORECASE):
            detail = str(exc).splitlines()[0]
            # DuckDB adds this hint only when the holder itself opened the file read-only.
            holder = (
                "reader"
                if "would be able to open this database in read-only" in detail
                else "writer"
            )
            raise DatabaseLockedError(where, detail, holder) from exc
        raise
    except duckdb.ConnectionException as exc:
        if "different configuration" in str(exc):
            raise DatabaseLockedError(where, str(exc), "this-process") from exc
        raise
    if memory_limit is not None:
        con.execute("SET memory_limit = ?", [memory_limit])
    found = schema_version(con)
    if found > SCHEMA_VERSION:
        con.close()
        raise SchemaVersionError(where, found, SCHEMA_VERSION)
    if read_only or found == SCHEMA_VERSION:
        return con
    con.begin()
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        for version, (name, apply) in enumerate(MIGRATIONS, start=1):
            if version <= found:
                continue
            apply(con)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)", [version, name]
            )
        con.commit()
    except BaseException:
        con.rollback()
        con.close()
        raise
    return con


def schema_markdown(con: duckdb.DuckDBPyConnection) -> str:
    """The canonical tables as Markdown (the source of ``docs/tables.md``).

    ``make docs`` regenerates the page and a test checks that it matches the code.

    Examples
    --------
    >>> print(schema_markdown(connect()).splitlines()[0])
    # Tables
    """
    lines = [
        "# Tables",
        "",
        "Generated from `sessionlens.store` by `make docs`; a test keeps it in step with the "
        "code. Column meanings: `../shared/DESIGN.md` and the `store` module docstring.",
    ]
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND schema_name = 'main' "
        "ORDER BY table_name"
    ).fetchall()
    for (table,) in tables:
        lines += ["", f"## `{table}`", "", "| column | type |", "|---|---|"]
        for name, dtype in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE table_name = ? AND schema_name = 'main' ORDER BY column_index",
            [table],
        ).fetchall():
            lines.append(f"| {name} | {dtype} |")
    return "\n".join(lines) + "\n"
