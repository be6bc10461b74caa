"""Session tags: ``chat_model_{short_model_id}_{counter}`` per user and model.

A tag names a session by the model that answered it and its place among that user's sessions
with the same model (``chat_model_gpt-4.1_3`` is the caller's third gpt-4.1 session), so people
can refer to and search for sessions in a stable, readable way. This module owns the rule and
writing it to ``sessions.session_tag``.

The session's model is the one behind most of its agent generations (ties go to the
alphabetically first); the short id drops a provider prefix and a date suffix. Counters follow
session start order (then session id), and the whole table is assigned by one ``UPDATE``
statement, so two writers can never hand out the same counter and the result depends only on
the data. Internal sessions and sessions without a model get no tag.

A session's tag depends only on the sessions of the same user, so both functions take
``user_ids`` to recount just those users (``None`` in it stands for the sessions without a
user): re-analysing a few new sessions then touches a few users instead of the whole table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa

from .._sql_cache import compile_cached
from ._ibis import backend, duckdb_connection

__all__ = ["assign_session_tags", "prepare_session_tags", "session_tags", "short_model_id"]

_DATE_SUFFIX = r"([-@]20[0-9]{2}-?[0-9]{2}-?[0-9]{2})$"
#: A tag, its short model id captured (which never holds "_").
_TAG = r"^chat_model_(.*)_[0-9]+$"


def short_model_id(model: ir.StringValue) -> ir.StringValue:
    """The short form of a model name used in tags, as an Ibis expression.

    Lower-cased, without a provider prefix (``openai/``, ``models/``) or a date suffix, and
    with characters other than letters, digits, ``.`` and ``-`` replaced by ``-``.

    Examples
    --------
    >>> import ibis
    >>> m = ibis.literal("anthropic/Claude-Sonnet-4-5-20250929")
    >>> ibis.duckdb.connect().execute(short_model_id(m))
    'claude-sonnet-4-5'
    """
    short = model.lower().re_replace(r"^.*/", "").re_replace(_DATE_SUFFIX, "")
    return short.re_replace(r"[^a-z0-9.\-]+", "-")


def _user_scope(sessions: ir.Table, user_ids: Sequence[str | None] | ir.Table) -> ir.Table:
    """The sessions of ``user_ids`` (a list, or an Ibis table with a ``user_id`` column)."""
    if isinstance(user_ids, ir.Table):
        users = user_ids.select(user_id=user_ids.user_id.cast("string"))
    else:
        users = ibis.memtable(
            {"user_id": [None if u is None else str(u) for u in user_ids]},
            schema={"user_id": "string"},
        )
    # NULL users share one counter group, so a NULL in the list means all of them.
    return sessions.filter(
        sessions.user_id.isin(users.user_id)
        | (sessions.user_id.isnull() & users.user_id.isnull().any())
    )


def session_tags(con: Any, *, user_ids: Sequence[str | None] | ir.Table | None = None) -> ir.Table:
    """Every session's tag (NULL when it has none), as an Ibis table.

    ``user_ids`` (a list, or an Ibis table with ``user_id``) restricts the result to the
    sessions of those users (``None`` for the sessions without one); their tags are the same
    as in the full table, since counters never cross users.

    Returns
    -------
    Ibis table
        session_id, user_id, model (the session's model), session_tag.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> tags = session_tags(con).to_pyarrow().column("session_tag").to_pylist()
    >>> sorted(t for t in tags if t)[0].startswith("chat_model_")
    True
    """
    return _tags(backend(con), user_ids=user_ids, fresh=None)


def _top_models(db: Any, sessions: ir.Table | None) -> ir.Table:
    """session_id, model, short: the model behind most agent generations of each session
    (of ``sessions`` only, if given)."""
    obs, traces = db.table("observations"), db.table("traces")
    if sessions is not None:
        traces = traces.semi_join(sessions.select("session_id"), "session_id")
    agent = traces.filter(~traces.is_internal).select("trace_id", "session_id")
    gens = obs.filter((obs.type == "GENERATION") & obs.model.notnull())
    gens = gens.join(agent, "trace_id")
    counts = gens.group_by(["session_id", "model"]).aggregate(n=gens.count())
    rank = ibis.row_number().over(
        group_by=counts.session_id, order_by=[ibis.desc(counts.n), counts.model]
    )
    top = counts.mutate(r=rank).filter(lambda t: t.r == 0).select("session_id", "model")
    return top.mutate(short=short_model_id(top.model))


def _tags(
    db: Any,
    *,
    user_ids: Sequence[str | None] | ir.Table | None,
    fresh: ir.Table | None,
) -> ir.Table:
    sessions = db.table("sessions")
    if user_ids is not None:
        sessions = _user_scope(sessions, user_ids)
    if fresh is None:
        top = _top_models(db, sessions if user_ids is not None else None)
    else:
        # A tagged session that is not fresh still has the model its tag names (the short
        # id holds no "_"): only fresh and untagged sessions read their observations.
        is_fresh = sessions.session_id.isin(fresh.session_id)
        read = sessions.filter(is_fresh | sessions.session_tag.isnull())
        kept = sessions.filter(~is_fresh & sessions.session_tag.notnull())
        kept = kept.select(
            session_id=kept.session_id.cast("string"),  # the key is NOT NULL in ``sessions``
            model=ibis.null("string"),
            short=kept.session_tag.re_extract(_TAG, 1),
        )
        top = _top_models(db, read).union(kept)
    s = sessions.filter(~sessions.is_internal).select("session_id", "user_id", "start_time")
    s = s.join(top, "session_id")
    counter = ibis.row_number().over(
        group_by=[s.user_id, s.short], order_by=[s.start_time, s.session_id]
    )
    tagged = s.mutate(
        session_tag=ibis.literal("chat_model_")
        .concat(s.short)
        .concat("_")
        .concat((counter + 1).cast("string"))
    )
    return (
        sessions.select("session_id", "user_id")
        .left_join(tagged.select("session_id", "model", "session_tag"), "session_id")
        .select("session_id", "user_id", "model", "session_tag")
    )


def _duckdb(con: Any) -> duckdb.DuckDBPyConnection:
    duck = duckdb_connection(con)
    if duck is None:
        raise TypeError(f"session tags are written on DuckDB, got {type(con).__name__}")
    return duck


def _tag_query(
    con: Any,
    users: Sequence[str | None] | ir.Table | None,
    fresh: ir.Table | None,
) -> str:
    """The SQL of :func:`_tags`; the expression is the same every run (users and fresh
    sessions are tables), so it is compiled once and then read from the cache."""
    db = backend(con)
    slot = "tags" if users is None else "tags:users" if fresh is None else "tags:fresh"
    return compile_cached(_duckdb(con), db, _tags(db, user_ids=users, fresh=fresh), slot=slot)


def prepare_session_tags(con: Any, *, user_ids: ir.Table, fresh: ir.Table) -> None:
    """Compile and cache the query ``assign_session_tags(con, user_ids=..., fresh=...)``
    runs, without running it.

    A full analysis calls it so that the next, incremental run finds its tag query compiled
    (the compile costs more than the query on a few changed sessions).

    Examples
    --------
    >>> from sessionlens import connect
    >>> from sessionlens.analysis._ibis import backend
    >>> con = connect()
    >>> sessions = backend(con).table("sessions")
    >>> prepare_session_tags(con, user_ids=sessions, fresh=sessions)
    >>> con.sql("SELECT count(*) FROM settings WHERE key = 'sql_cache:tags:fresh'").fetchone()
    (1,)
    """
    _tag_query(con, user_ids, fresh)


def assign_session_tags(
    con: Any,
    *,
    user_ids: Sequence[str | None] | ir.Table | None = None,
    fresh: ir.Table | None = None,
) -> int:
    """Write every session's tag into ``sessions.session_tag`` in one statement.

    ``user_ids`` recounts only those users' sessions (see :func:`session_tags`); the others
    keep their tags. ``fresh`` (an Ibis table with ``session_id``, used with ``user_ids``)
    names the sessions whose traces changed since their tags were assigned: the model of
    every other tagged session is then read from its tag instead of its observations, so a
    recount reads the observations of the changed sessions only. Returns the number of
    sessions whose tag changed.

    ``con`` is a DuckDB connection or an Ibis backend over one: its ``traces`` and
    ``observations`` are read, so an analysis run passes one over its slices of the tables,
    which must then hold every session of ``fresh`` and every untagged session. The
    compiled query is cached in ``settings`` (:mod:`sessionlens._sql_cache`).

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> assign_session_tags(con) > 0, assign_session_tags(con)
    (True, 0)
    >>> con.execute("UPDATE sessions SET session_tag = NULL")  # doctest: +ELLIPSIS
    <...>
    >>> user = con.sql("SELECT min(user_id) FROM sessions").fetchone()[0]
    >>> n = con.sql("SELECT count(*) FROM sessions WHERE user_id = ?", params=[user]).fetchone()
    >>> assign_session_tags(con, user_ids=[user]) == n[0]
    True
    """
    users = user_ids
    if user_ids is not None and not isinstance(user_ids, ir.Table):
        # A memtable is not part of compiled SQL: hand the list to DuckDB as a view.
        listed = pa.table({"user_id": pa.array([u for u in user_ids], pa.string())})
        _duckdb(con).register("_sl_tag_users", listed)
        users = backend(con).table("_sl_tag_users")
    try:
        fresh_only = fresh if user_ids is not None else None
        query = _tag_query(con, users, fresh_only)
        # The query is compiled from constants and column references only; no data is pasted.
        row = (
            _duckdb(con)
            .execute(
                f"UPDATE sessions SET session_tag = t.session_tag FROM ({query}) AS t "
                "WHERE sessions.session_id = t.session_id "
                "AND sessions.session_tag IS DISTINCT FROM t.session_tag"
            )
            .fetchone()
        )
    finally:
        if users is not user_ids:
            _duckdb(con).unregister("_sl_tag_users")
    return int(row[0]) if row else 0
