"""Redacting the database itself: PII in stored traces becomes the same tokens reports use.

:mod:`sessionlens.redact` decides what a token is; this module owns *where* PII lives in the
canonical tables (free text and JSON payloads, user ids, rejected-record excerpts, the analysis
summaries) and rewrites those columns in place, in one transaction. Ids, enums, model names,
timestamps and hashes are left alone, so joins, the analysis cache and idempotent re-loads keep
working: a redacted row keeps its ``row_hash``, so re-loading the original export writes nothing
and does not bring the raw values back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from ._arrow_sql import ARROW, execute_arrow
from .redact import DEFAULT_SALT, Redactor, known_names

__all__ = ["PII_COLUMNS", "RedactResult", "redact_database"]

#: The columns that can carry phone numbers, e-mail addresses or personal names, per table.
PII_COLUMNS: dict[str, tuple[str, ...]] = {
    "traces": ("user_id", "input", "output", "metadata"),
    "observations": ("input", "output", "metadata", "tool_arguments", "status_message"),
    "sessions": ("user_id",),
    "conversation_turns": ("content",),
    "tool_calls": ("arguments", "result"),
    "scores": ("string_value", "comment"),
    "load_errors": ("error", "excerpt"),
    "session_analysis": ("user_id", "caller_intent_summary", "booking_details_json", "goals_json"),
}

_BATCH = 20_000


@dataclass
class RedactResult:
    """What :func:`redact_database` changed: cells rewritten per ``table.column``."""

    changed: dict[str, int] = field(default_factory=dict)
    names: int = 0

    @property
    def total(self) -> int:
        """Cells rewritten in all tables."""
        return sum(self.changed.values())


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def redact_database(
    con: duckdb.DuckDBPyConnection,
    *,
    salt: str = DEFAULT_SALT,
    names: Iterable[str] = (),
    region: str = "US",
) -> RedactResult:
    """Replace phone numbers, e-mail addresses and personal names stored in the database.

    Every column of :data:`PII_COLUMNS` is rewritten with the tokens of
    :class:`~sessionlens.redact.Redactor` (same salt, same tokens as a redacted report), in one
    transaction: an error leaves the database as it was. Personal names are those booking-detail
    extraction found (run :func:`~sessionlens.analyze_sessions` first) plus ``names``. Running it
    again changes nothing; run it after each load, since new records arrive unredacted.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A database opened for writing.
    salt : str
        HMAC key of the tokens; keep your own secret for data that leaves your team.
    names : iterable of str
        More personal names to replace.
    region : str
        Region for phone numbers written without a country code.

    Returns
    -------
    RedactResult
        Cells rewritten per ``table.column`` and how many names were looked for.

    Examples
    --------
    >>> import sessionlens as sl
    >>> con = sl.connect()
    >>> _ = sl.load(con, sl.datasets.sample_dir())
    >>> _ = sl.analyze_sessions(con)
    >>> result = sl.redact_database(con)
    >>> result.changed["conversation_turns.content"] > 0
    True
    >>> sl.redact_database(con).total  # already redacted
    0
    """
    all_names = sorted({*known_names(con), *names})
    redactor = Redactor(salt=salt, names=all_names, region=region)
    result = RedactResult(names=len(all_names))
    con.execute("BEGIN TRANSACTION")
    try:
        for table, columns in PII_COLUMNS.items():
            for column in columns:
                result.changed[f"{table}.{column}"] = _redact_column(con, redactor, table, column)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


def _redact_column(
    con: duckdb.DuckDBPyConnection, redactor: Redactor, table: str, column: str
) -> int:
    """Rewrite one column batch by batch; return how many cells changed."""
    t, c = _quote(table), _quote(column)
    cursor = con.execute(
        f"SELECT rowid AS rid, CAST({c} AS VARCHAR) AS v FROM {t} WHERE {c} IS NOT NULL"
    )
    changed_ids: list[int] = []
    changed_values: list[str] = []
    while rows := cursor.fetchmany(_BATCH):
        for rid, value in rows:
            new = _redacted(redactor, value)
            if new is not None:
                changed_ids.append(rid)
                changed_values.append(new)
    if changed_ids:
        updates = pa.table({"rid": changed_ids, "v": changed_values})
        execute_arrow(
            con,
            f"UPDATE {t} SET {c} = CAST(u.v AS {_column_type(con, table, column)}) "
            f"FROM {ARROW} AS u WHERE {t}.rowid = u.rid",
            updates,
        )
    return len(changed_ids)


def _redacted(redactor: Redactor, value: str) -> str | None:
    """The redacted text, or None when nothing in ``value`` is PII."""
    if value.lstrip()[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        else:
            # Compared as values: re-serialising alone must not count as a change.
            new = redactor.value(parsed)
            return None if new == parsed else json.dumps(new, ensure_ascii=False)
    text = redactor.text(value)
    return None if text == value else text


def _column_type(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
    row = con.execute(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()
    assert row is not None, f"{table}.{column} is in the schema"
    # A type name from the catalogue (VARCHAR, JSON), never from data.
    return str(row[0])
