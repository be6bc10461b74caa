"""Token usage and cost per observation, session, model, day, intent... as Ibis expressions.

This module owns the public cost tables. Each function takes a DuckDB connection or an Ibis
backend and returns an *unexecuted* Ibis table, so it runs on the embedded DuckDB or, unchanged,
on Spark; call ``.to_pandas()`` / ``.execute()`` to get rows. Prices come from
``model_prices`` (see :mod:`sessionlens.analysis.prices`; fill it first, e.g. with
``ensure_model_prices``). The roll-up rule and the price pick live in ``_cost_match`` and are
described in ``docs/cost.md``.

An observation's ``cost_usd`` is the cost its source reported when positive (Langfuse writes 0
when it had no price, so 0 is not taken as a price), else the cost computed from its usage;
``cost_source`` says which, or ``'unpriced'`` when neither exists: an unknown model is never
priced at zero silently, it is listed by :func:`unpriced_models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from ..errors import ConfigError
from . import _cost_match as m
from ._ibis import backend, checkpoint

__all__ = [
    "DIMENSIONS",
    "cost_by",
    "observation_costs",
    "session_costs",
    "token_usage",
    "unpriced_models",
]

#: ``by`` values of :func:`cost_by` / :func:`token_usage` and the column each one gives.
DIMENSIONS = {
    "model": "model",
    "provider": "provider",
    "day": "day",
    "user": "user_id",
    "endpoint": "endpoint",
    "session": "session_id",
    "intent": "intent",
}
_OBSERVATION_COLUMNS = (
    "observation_id",
    "trace_id",
    "session_id",
    "user_id",
    "trace_name",
    "is_internal",
    "type",
    "model",
    "provider",
    "start_time",
    "day",
    *m.TOKENS,
    "reported_cost_usd",
    "computed_cost_usd",
    "cost_usd",
    "cost_source",
    "price_source",
    "price_model_match",
    "price_model_name",
)


def _session_filter(session_ids: Any) -> ir.Table:
    if isinstance(session_ids, ir.Table):
        if "session_id" not in session_ids.columns:
            raise ConfigError("session_ids", "the table has no session_id column")
        return session_ids.select(session_id=session_ids.session_id.cast("string"))
    if isinstance(session_ids, (str, bytes)) or not isinstance(session_ids, Sequence):
        raise ConfigError(
            "session_ids",
            f"expected a list of session ids or an Ibis table, got {type(session_ids).__name__}",
        )
    return ibis.memtable(
        {"session_id": [str(s) for s in session_ids]}, schema={"session_id": "string"}
    )


def observation_costs(
    con: Any, *, session_ids: Any = None, include_internal: bool = True
) -> ir.Table:
    """One row per observation that carries usage or a reported cost, roll-ups excluded.

    Parameters
    ----------
    con : DuckDBPyConnection or Ibis backend
    session_ids : list of str or Ibis table with ``session_id``, optional
        Only these sessions (a semi-join applied first, so re-analysing a few is cheap).
    include_internal : bool
        Keep observations of internal traces (evaluators, experiments); ``is_internal`` says.

    Returns
    -------
    ibis.Table
        observation_id, trace_id, session_id, user_id, trace_name, is_internal, type, model,
        provider, start_time, day, input/output/total/cache_read/cache_write/reasoning tokens,
        reported_cost_usd, computed_cost_usd, cost_usd, cost_source ('reported', 'computed',
        'unpriced'), price_source, price_model_match, price_model_name.

    Examples
    --------
    >>> import sessionlens as sl
    >>> from sessionlens.analysis.prices import ensure_model_prices
    >>> con = sl.connect()
    >>> _ = sl.load(con, sl.datasets.sample_dir())
    >>> _ = ensure_model_prices(con)
    >>> oc = observation_costs(con).to_pandas()
    >>> bool((oc.cost_source == "reported").all()), bool((oc.computed_cost_usd > 0).all())
    (True, True)
    """
    b = backend(con)
    traces = b.table("traces")
    scope = traces.select(
        "trace_id", "session_id", "user_id", "is_internal", trace_name=traces.name
    )
    if session_ids is not None:
        ids = _session_filter(session_ids)
        scope = scope.semi_join(ids, scope.session_id == ids.session_id)
    if not include_internal:
        scope = scope.filter(~scope.is_internal)
    obs = b.table("observations")
    # Read four times below (links, usage, price pairs, the price join): computed once on
    # Spark, where a repeated sub-query is planned and run again (no-op on DuckDB).
    obs = obs.join(scope, "trace_id").select(
        "observation_id",
        "trace_id",
        "parent_observation_id",
        "session_id",
        "user_id",
        "trace_name",
        "is_internal",
        "type",
        "model",
        "provider",
        "start_time",
        *m.TOKENS,
        "reported_cost_usd",
    )
    obs = checkpoint(obs)
    links = obs.select("observation_id", "parent_observation_id")
    counted = m.drop_rollups(obs.filter(m.carries_usage(obs)), links)
    priced = m.pick_prices(counted.drop("parent_observation_id"), b.table("model_prices"))
    computed = m.computed_cost(priced)
    reported = ibis.ifelse(
        priced.reported_cost_usd > 0, priced.reported_cost_usd, ibis.null("float64")
    )
    out = priced.mutate(computed_cost_usd=computed, _reported=reported)
    cost = ibis.coalesce(out._reported, out.computed_cost_usd)
    source = ibis.cases(
        (out._reported.notnull(), "reported"),
        (out.computed_cost_usd.notnull(), "computed"),
        else_="unpriced",
    )
    out = out.mutate(day=out.start_time.date(), _cost=cost, _source=source).rename(
        cost_usd="_cost", cost_source="_source"
    )
    # Callers split it (agent and internal spend): the same cut on Spark.
    return checkpoint(out.select(*_OBSERVATION_COLUMNS))


def _sorted_models(model: ir.StringColumn, where: ir.BooleanValue | None = None) -> ir.ArrayValue:
    return model.collect(where=where, distinct=True).sort()


def session_costs(con: Any, *, session_ids: Any = None) -> ir.Table:
    """One row per session (all of ``sessions``, with or without usage): tokens and spend.

    Token columns and ``cost_usd`` count **agent** traces only; the spend of internal traces
    filed under the same session id (evaluators, simulators, experiment runs) is
    ``internal_cost_usd``. A session whose every trace is internal has 0 agent tokens,
    ``cost_usd`` NULL and its spend in ``internal_cost_usd``.

    ``cost_source`` over the agent observations with usage: ``'reported'`` (every one had a
    reported cost), ``'computed'`` (every one computed), ``'mixed'`` (some reported and some
    computed, or some unpriced among priced ones: ``cost_usd`` is then the priced part and
    ``unpriced_models`` names the rest), ``'unpriced'`` (usage but nothing priced;
    ``cost_usd`` NULL), NULL (no usage recorded: tokens 0, ``cost_usd`` NULL, since an
    unrecorded cost is unknown, not zero).

    Returns
    -------
    ibis.Table
        session_id, input_tokens, output_tokens, total_tokens, cache_read_tokens,
        cache_write_tokens, reasoning_tokens, cost_usd, cost_source, unpriced_models (sorted),
        internal_cost_usd, models (sorted).

    Examples
    --------
    >>> import sessionlens as sl
    >>> from sessionlens.analysis.prices import ensure_model_prices
    >>> con = sl.connect()
    >>> _ = sl.load(con, sl.datasets.sample_dir())
    >>> _ = ensure_model_prices(con)
    >>> sc = session_costs(con).to_pandas()
    >>> len(sc) == con.sql("SELECT count(*) FROM sessions").fetchone()[0]
    True
    """
    b = backend(con)
    oc = observation_costs(b, session_ids=session_ids, include_internal=True)
    agent = oc.filter(~oc.is_internal)

    def count(source: str) -> ir.IntegerValue:
        return ibis.ifelse(agent.cost_source == source, 1, 0).sum()

    per = agent.group_by("session_id").aggregate(
        **{c: agent[c].fill_null(0).sum() for c in m.TOKENS},
        cost_usd=agent.cost_usd.sum(),
        _reported=count("reported"),
        _computed=count("computed"),
        _unpriced=count("unpriced"),
        unpriced_models=_sorted_models(agent.model, agent.cost_source == "unpriced"),
        models=_sorted_models(agent.model),
    )
    internal = oc.filter(oc.is_internal)
    spent = internal.group_by("session_id").aggregate(internal_cost_usd=internal.cost_usd.sum())
    sessions = b.table("sessions").select("session_id")
    if session_ids is not None:
        ids = _session_filter(session_ids)
        sessions = sessions.semi_join(ids, sessions.session_id == ids.session_id)
    j = sessions.left_join(per, "session_id").left_join(spent, "session_id")
    priced = j._reported.fill_null(0) + j._computed.fill_null(0)
    source = ibis.cases(
        (priced + j._unpriced.fill_null(0) == 0, ibis.null("string")),
        (priced == 0, "unpriced"),
        ((j._unpriced == 0) & (j._computed == 0), "reported"),
        ((j._unpriced == 0) & (j._reported == 0), "computed"),
        else_="mixed",
    )
    empty = ibis.literal([], type="array<string>")
    return j.select(
        sessions.session_id,
        **{c: j[c].fill_null(0) for c in m.TOKENS},
        cost_usd=j.cost_usd,
        cost_source=source,
        unpriced_models=ibis.coalesce(j.unpriced_models, empty),
        internal_cost_usd=j.internal_cost_usd,
        models=ibis.coalesce(j.models, empty),
    )


def _since(since: Any) -> datetime:
    if isinstance(since, datetime):
        moment = since
    elif isinstance(since, date):
        moment = datetime(since.year, since.month, since.day)
    elif isinstance(since, str):
        try:
            moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                "since",
                f"{since!r} is not an ISO date or time; write e.g. "
                "2026-09-01 or 2026-09-01T08:00:00Z",
            ) from None
    else:
        raise ConfigError(
            "since", f"expected a date, datetime or ISO string, got {type(since).__name__}"
        )
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _dimensions(by: str | Sequence[str]) -> list[str]:
    names = [by] if isinstance(by, str) else list(by)
    bad = [n for n in names if n not in DIMENSIONS]
    if bad or not names:
        raise ConfigError(
            "by",
            f"unknown dimension {bad[0] if bad else '(none)'!r}; use one or "
            "a list of: " + ", ".join(DIMENSIONS),
        )
    return names


def _grouped(
    con: Any, by: str | Sequence[str], since: Any, include_internal: bool
) -> tuple[ir.Table, list[str]]:
    names = _dimensions(by)
    b = backend(con)
    oc = observation_costs(b, include_internal=include_internal)
    if since is not None:
        oc = oc.filter(oc.start_time >= _since(since))
    oc = oc.mutate(endpoint=oc.trace_name)
    if "intent" in names:
        sa = b.table("session_analysis")
        intents = sa.select("session_id", intent=sa.caller_intent_type)
        oc = oc.left_join(intents, "session_id").drop("session_id_right")
    return oc, [DIMENSIONS[n] for n in names]


def token_usage(
    con: Any,
    *,
    by: str | Sequence[str] = "model",
    since: Any = None,
    include_internal: bool = False,
) -> ir.Table:
    """Tokens per ``by`` (a dimension of :data:`DIMENSIONS` or a list of them), roll-ups excluded.

    Returns
    -------
    ibis.Table
        the dimension columns, observations, and the sums of input, output, total,
        cache_read, cache_write and reasoning tokens; sorted by the dimensions.

    Examples
    --------
    >>> import sessionlens as sl
    >>> con = sl.connect()
    >>> _ = sl.load(con, sl.datasets.sample_dir())
    >>> sorted(token_usage(con, by="model").to_pandas().model)[:2]
    ['claude-sonnet-4-5-20250929', 'gemini-2.5-flash']
    """
    oc, cols = _grouped(con, by, since, include_internal)
    return (
        oc.group_by(cols)
        .aggregate(observations=oc.count(), **{c: oc[c].fill_null(0).sum() for c in m.TOKENS})
        .order_by(cols)
    )


def cost_by(
    con: Any,
    *,
    by: str | Sequence[str] = "model",
    since: Any = None,
    include_internal: bool = False,
) -> ir.Table:
    """Spend per ``by`` (``"model"``, ``"day"``, ``"intent"``, ``"provider"``, ``"user"``,
    ``"endpoint"`` (trace name), ``"session"``, or a list of them).

    ``intent`` comes from ``session_analysis.caller_intent_type`` (NULL until analysed).
    ``since`` (date, datetime or ISO string; naive means UTC) keeps observations starting at
    or after it. Internal traces are left out unless ``include_internal``.

    Returns
    -------
    ibis.Table
        the dimension columns, observations, the token sums, cost_usd (NULL when nothing in
        the group could be priced) and unpriced_observations; sorted by the dimensions.

    Raises
    ------
    ConfigError
        ``by`` names an unknown dimension, or ``since`` is not a date.

    Examples
    --------
    >>> import sessionlens as sl
    >>> from sessionlens.analysis.prices import ensure_model_prices
    >>> con = sl.connect()
    >>> _ = sl.load(con, sl.datasets.sample_dir())
    >>> _ = ensure_model_prices(con)
    >>> list(cost_by(con, by=["day", "model"]).columns[:3])
    ['day', 'model', 'observations']
    """
    oc, cols = _grouped(con, by, since, include_internal)
    return (
        oc.group_by(cols)
        .aggregate(
            observations=oc.count(),
            **{c: oc[c].fill_null(0).sum() for c in m.TOKENS},
            cost_usd=oc.cost_usd.sum(),
            unpriced_observations=ibis.ifelse(oc.cost_source == "unpriced", 1, 0).sum(),
        )
        .order_by(cols)
    )


def unpriced_models(con: Any, *, include_internal: bool = True) -> ir.Table:
    """Models whose usage could not be priced (no reported cost, no price row), most used first.

    Returns
    -------
    ibis.Table
        model (NULL for usage without a model name), provider, observations, tokens (input
        plus output), first_seen, last_seen.

    Examples
    --------
    >>> import sessionlens as sl
    >>> con = sl.connect()
    >>> unpriced_models(con).to_pandas().empty
    True
    """
    oc = observation_costs(con, include_internal=include_internal)
    oc = oc.filter(oc.cost_source == "unpriced")
    tokens = oc.input_tokens.fill_null(0) + oc.output_tokens.fill_null(0)
    return (
        oc.group_by(["model", "provider"])
        .aggregate(
            observations=oc.count(),
            tokens=tokens.sum(),
            first_seen=oc.start_time.min(),
            last_seen=oc.start_time.max(),
        )
        .order_by([ibis.desc("observations"), "model", "provider"])
    )
