"""Sessions: taken from the export, or inferred by grouping a user's traces by inactivity.

Owns the ``sessions`` table and the effective ``traces.session_id``. A trace keeps the session
its export named (``origin = 'source'``). Traces without one are grouped per user: a new
session starts when a trace begins more than ``gap`` after the latest end of the user's
previous traces (a gap exactly equal to ``gap`` stays in the session), and the session is
named ``{user_id}@{first start}`` so the id is stable across re-loads. A trace with neither
user nor session is a session of its own (``trace:{trace_id}``). Internal traces never join a
user's inferred session: an evaluator run must not stretch a caller's conversation.

The gap in force is stored in ``settings`` so that later loads group the same way.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb

from ..errors import ConfigError
from .derived import rebuild_derived

__all__ = ["DEFAULT_GAP", "rebuild_sessions", "session_gap"]

DEFAULT_GAP = timedelta(minutes=30)


def session_gap(con: duckdb.DuckDBPyConnection) -> timedelta:
    """The inactivity gap stored in the database (30 minutes unless changed).

    >>> from sessionlens import connect
    >>> session_gap(connect())
    datetime.timedelta(seconds=1800)
    """
    row = con.execute("SELECT value FROM settings WHERE key = 'session_gap_seconds'").fetchone()
    return timedelta(seconds=float(row[0])) if row else DEFAULT_GAP


def regroup_sessions(con: duckdb.DuckDBPyConnection, gap: timedelta) -> list[str]:
    """Recompute ``traces.session_id`` and the ``sessions`` table inside the caller's transaction.

    Returns the ids of sessions whose membership changed (old and new ids), so derived tables
    can be rebuilt for those only.
    """
    if gap <= timedelta(0):
        raise ConfigError("gap", f"gap must be a positive duration, got {gap}")
    con.execute("DROP TABLE IF EXISTS _session_map")
    con.execute(
        """
        CREATE TEMP TABLE _session_map AS
        WITH candidates AS (
            SELECT trace_id, user_id, start_time, coalesce(end_time, start_time) AS end_time,
                   max(coalesce(end_time, start_time)) OVER (
                       PARTITION BY user_id ORDER BY start_time, trace_id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_end
            FROM traces
            WHERE source_session_id IS NULL AND user_id IS NOT NULL AND NOT is_internal
        ),
        numbered AS (
            SELECT *, sum(CASE WHEN previous_end IS NULL
                               OR start_time - previous_end > to_microseconds(?::BIGINT)
                          THEN 1 ELSE 0 END) OVER (
                       PARTITION BY user_id ORDER BY start_time, trace_id) AS session_no
            FROM candidates
        ),
        grouped AS (
            SELECT trace_id, user_id || '@' || strftime(
                       min(start_time) OVER (PARTITION BY user_id, session_no),
                       '%Y-%m-%dT%H:%M:%S.%fZ') AS session_id
            FROM numbered
        )
        SELECT t.trace_id, t.session_id AS old_session_id,
               coalesce(t.source_session_id, g.session_id, 'trace:' || t.trace_id) AS session_id,
               CASE WHEN t.source_session_id IS NOT NULL THEN 'source'
                    WHEN g.session_id IS NOT NULL THEN 'inferred'
                    ELSE 'single_trace' END AS origin
        FROM traces t LEFT JOIN grouped g USING (trace_id)
        """,
        [int(gap.total_seconds() * 1_000_000)],
    )
    changed = [
        str(r[0])
        for r in con.execute(
            """
            SELECT DISTINCT s FROM (
                SELECT old_session_id AS s FROM _session_map
                WHERE old_session_id IS DISTINCT FROM session_id
                UNION ALL
                SELECT session_id FROM _session_map WHERE old_session_id IS DISTINCT FROM session_id
            ) WHERE s IS NOT NULL
            """
        ).fetchall()
    ]
    con.execute(
        """
        UPDATE traces SET session_id = m.session_id FROM _session_map m
        WHERE traces.trace_id = m.trace_id AND traces.session_id IS DISTINCT FROM m.session_id
        """
    )
    # Tags belong to later analyses; keep them for sessions that still exist.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _session_tags AS SELECT session_id, session_tag "
        "FROM sessions WHERE session_tag IS NOT NULL"
    )
    con.execute("DELETE FROM sessions")
    con.execute(
        """
        INSERT INTO sessions
        SELECT m.session_id,
               arg_min(t.user_id, t.start_time) FILTER (WHERE t.user_id IS NOT NULL),
               min(t.start_time), max(coalesce(t.end_time, t.start_time)), count(*),
               CASE WHEN bool_or(m.origin = 'source') THEN 'source'
                    WHEN bool_or(m.origin = 'inferred') THEN 'inferred'
                    ELSE 'single_trace' END,
               bool_and(t.is_internal),
               any_value(g.session_tag)
        FROM _session_map m JOIN traces t USING (trace_id)
        LEFT JOIN _session_tags g ON g.session_id = m.session_id
        GROUP BY m.session_id
        """
    )
    con.execute("DROP TABLE _session_tags")
    con.execute("DROP TABLE _session_map")
    return changed


def rebuild_sessions(
    con: duckdb.DuckDBPyConnection, *, gap: timedelta | None = None
) -> duckdb.DuckDBPyRelation:
    """Regroup traces into sessions and rebuild the derived tables of sessions that changed.

    Parameters
    ----------
    con : DuckDBPyConnection
        A sessionlens database (see ``sessionlens.connect``).
    gap : timedelta, optional
        Inactivity gap that splits a user's traces into sessions. Stored, so later loads use
        it too. Default: the stored gap, else 30 minutes.

    Returns
    -------
    DuckDBPyRelation
        The ``sessions`` table.

    Examples
    --------
    >>> from datetime import timedelta
    >>> from sessionlens import connect
    >>> con = connect()
    >>> rebuild_sessions(con, gap=timedelta(minutes=10)).count("*").fetchone()
    (0,)
    """
    if gap is not None and gap <= timedelta(0):
        raise ConfigError("gap", f"gap must be a positive duration, got {gap}")
    con.begin()
    try:
        if gap is not None:
            con.execute(
                "INSERT OR REPLACE INTO settings VALUES ('session_gap_seconds', ?)",
                [str(gap.total_seconds())],
            )
        changed = regroup_sessions(con, gap or session_gap(con))
        if changed:
            rebuild_derived(con, session_ids=changed)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return con.table("sessions")
