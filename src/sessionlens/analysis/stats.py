"""Questions across analysed sessions: intent mix, completion by intent, stats, lookups.

This module owns the read side of ``session_analysis``: small Ibis expressions a notebook or
report asks most often (what callers wanted, how often the agent got them there, what happened
recently, which sessions carry a tag). They read only the cache, so they are cheap; run
:func:`sessionlens.analyze_sessions` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from ..errors import ConfigError
from ._ibis import backend

__all__ = [
    "RECENT_LIMIT_MAX",
    "completion_by_intent",
    "find_sessions",
    "intent_mix",
    "recent_sessions",
    "session_stats",
]

#: ``recent_sessions`` never returns more rows than this.
RECENT_LIMIT_MAX = 100
_STAT_DIMENSIONS = ("status", "intent", "day", "user", "tag")


def _analysis(con: Any) -> ir.Table:
    sa = backend(con).table("session_analysis")
    return sa.mutate(
        intent=sa.caller_intent_type, day=sa.start_time.date(), user=sa.user_id, tag=sa.session_tag
    )


def intent_mix(con: Any) -> ir.Table:
    """Sessions per caller intent with share and mean confidence.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets, analyze_sessions
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> _ = analyze_sessions(con)
    >>> mix = intent_mix(con).to_pyarrow()
    >>> round(sum(mix.column("share").to_pylist()), 6)
    1.0
    """
    sa = _analysis(con)
    total = sa.count().as_scalar().cast("float64")
    out = sa.group_by("intent").aggregate(
        sessions=sa.count(), mean_confidence=sa.caller_intent_confidence.mean()
    )
    return out.mutate(share=out.sessions.cast("float64") / total).order_by(
        [ibis.desc("sessions"), "intent"]
    )


def completion_by_intent(con: Any) -> ir.Table:
    """Per intent: sessions, completed sessions, their share, mean completion rate and goals."""
    sa = _analysis(con)
    out = sa.group_by("intent").aggregate(
        sessions=sa.count(),
        completed=(sa.status == "completed").sum(),
        mean_completion_rate=sa.completion_rate.mean(),
        mean_goal_completion=sa.goal_completion.mean(),
    )
    return out.mutate(
        completed_share=out.completed.cast("float64") / out.sessions.cast("float64")
    ).order_by([ibis.desc("sessions"), "intent"])


def session_stats(con: Any, *, by: str | Sequence[str] = "status") -> ir.Table:
    """Session counts, completion, tokens, cost and duration grouped by status/intent/day/user/tag.

    Raises
    ------
    ConfigError
        ``by`` names an unknown dimension.

    Examples
    --------
    >>> from sessionlens import connect
    >>> session_stats(connect(), by="weekday")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: by: unknown dimension 'weekday'; use one of status, ...
    """
    keys = [by] if isinstance(by, str) else list(by)
    for key in keys:
        if key not in _STAT_DIMENSIONS:
            raise ConfigError(
                "by", f"unknown dimension {key!r}; use one of {', '.join(_STAT_DIMENSIONS)}"
            )
    sa = _analysis(con)
    return (
        sa.group_by(keys)
        .aggregate(
            sessions=sa.count(),
            completed=(sa.status == "completed").sum(),
            mean_completion_rate=sa.completion_rate.mean(),
            input_tokens=sa.input_tokens.sum(),
            output_tokens=sa.output_tokens.sum(),
            cost_usd=sa.cost_usd.sum(),
            median_duration_seconds=sa.duration_seconds.median(),
        )
        .order_by(keys)
    )


def recent_sessions(con: Any, *, limit: int = 20) -> ir.Table:
    """The most recently started analysed sessions, newest first.

    ``limit`` is capped at :data:`RECENT_LIMIT_MAX` (100) so a dashboard cannot ask for the
    whole table by accident; page with :func:`find_sessions` for more.

    Raises
    ------
    ConfigError
        ``limit`` is not a positive integer.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError("limit", f"must be a positive integer, got {limit!r}")
    sa = _analysis(con)
    cols = [
        "session_id",
        "user_id",
        "start_time",
        "caller_intent_type",
        "caller_intent_summary",
        "status",
        "completion_rate",
        "drop_off_step",
        "cost_usd",
        "session_tag",
    ]
    return (
        sa.select(cols)
        .order_by([ibis.desc("start_time"), "session_id"])
        .limit(min(limit, RECENT_LIMIT_MAX))
    )


def find_sessions(
    con: Any,
    *,
    tag: str | None = None,
    user_id: str | None = None,
    intent: str | None = None,
    status: str | None = None,
    since: str | date | datetime | None = None,
) -> ir.Table:
    """Analysed sessions matching every given filter, oldest first.

    ``tag`` matches exactly, or as a prefix when it ends with ``*``
    (``chat_model_gpt-4.1_*`` finds every gpt-4.1 session). Counters in tags are per user, so
    every caller has a ``..._1``: add ``user_id`` to find one session.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets, analyze_sessions
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> _ = analyze_sessions(con)
    >>> first = find_sessions(con).to_pyarrow().to_pylist()[0]
    >>> first["session_tag"]  # the caller's first session answered by gpt-4.1
    'chat_model_gpt-4.1_1'
    >>> find_sessions(con, tag="chat_model_gpt-4.1_1", user_id=first["user_id"]).count().execute()
    1
    """
    sa = _analysis(con)
    if tag is not None:
        if tag.endswith("*"):
            sa = sa.filter(sa.session_tag.startswith(_value(tag[:-1])))
        else:
            sa = sa.filter(sa.session_tag == _value(tag))
    if user_id is not None:
        sa = sa.filter(sa.user_id == _value(user_id))
    if intent is not None:
        sa = sa.filter(sa.caller_intent_type == _value(intent))
    if status is not None:
        sa = sa.filter(sa.status == _value(status))
    if since is not None:
        sa = sa.filter(sa.start_time >= _timestamp(since))
    return sa.drop("intent", "day", "user", "tag").order_by(["start_time", "session_id"])


def _value(text: str) -> ir.StringValue:
    """``text`` as a one-row table's scalar, not as a literal in the SQL.

    Ibis writes literals into the query text; a filter value taken from the data (a user id
    with a NUL byte ends DuckDB's string literal early) must not be able to change the query,
    so it travels as data (an Arrow table) instead.
    """
    if not isinstance(text, str):
        raise ConfigError("filter", f"expected text, got {type(text).__name__} {text!r}")
    return ibis.memtable({"value": [text]}, schema={"value": "string"}).value.as_scalar()


def _timestamp(value: str | date | datetime) -> ir.TimestampValue:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError("since", f"{value!r} is not an ISO date or datetime") from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:  # the tables hold naive UTC
        value = value.astimezone(UTC).replace(tzinfo=None)
    return ibis.literal(value, "timestamp")
