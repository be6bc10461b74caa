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
"""

from __future__ import annotations

from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir

from ._ibis import backend

__all__ = ["assign_session_tags", "session_tags", "short_model_id"]

_DATE_SUFFIX = r"([-@]20[0-9]{2}-?[0-9]{2}-?[0-9]{2})$"


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


def session_tags(con: Any) -> ir.Table:
    """Every session's tag (NULL when it has none), as an Ibis table.

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
    db = backend(con)
    obs, traces, sessions = db.table("observations"), db.table("traces"), db.table("sessions")
    agent = traces.filter(~traces.is_internal).select("trace_id", "session_id")
    gens = obs.filter((obs.type == "GENERATION") & obs.model.notnull())
    gens = gens.join(agent, "trace_id")
    counts = gens.group_by(["session_id", "model"]).aggregate(n=gens.count())
    rank = ibis.row_number().over(
        group_by=counts.session_id, order_by=[ibis.desc(counts.n), counts.model]
    )
    top = counts.mutate(r=rank).filter(lambda t: t.r == 0).select("session_id", "model")
    top = top.mutate(short=short_model_id(top.model))
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


def assign_session_tags(con: duckdb.DuckDBPyConnection) -> int:
    """Write every session's tag into ``sessions.session_tag`` in one statement.

    Returns the number of sessions whose tag changed.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> assign_session_tags(con) > 0, assign_session_tags(con)
    (True, 0)
    """
    query = ibis.to_sql(session_tags(con), dialect="duckdb")
    # The query is compiled from constants and column references only; no data is pasted.
    row = con.execute(
        f"UPDATE sessions SET session_tag = t.session_tag FROM ({query}) AS t "
        "WHERE sessions.session_id = t.session_id "
        "AND sessions.session_tag IS DISTINCT FROM t.session_tag"
    ).fetchone()
    return int(row[0]) if row else 0
