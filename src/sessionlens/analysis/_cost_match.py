"""The two hard parts of cost, as Ibis expressions: which observations count, and their price.

This private module owns (1) the roll-up rule, (2) picking one ``model_prices`` row per
observation, and (3) the pricing formula. :mod:`sessionlens.analysis.cost` builds the public
tables on top. Everything here is portable Ibis (joins, ``row_number`` windows, ``CASE``): no
recursive CTE, ASOF join or ordered aggregate, so it runs on DuckDB and Spark alike.

**Roll-ups.** Some frameworks (Vercel AI SDK, Agno, Microsoft Agent Framework) record one
model call twice: the framework's own GENERATION/AGENT observation and, nested in it, the
provider call. An observation *carries usage* when it has a positive token count or a positive
reported cost; one that carries usage and has a descendant (up to :data:`MAX_DEPTH` levels
below) that also carries usage is a **roll-up** and is not counted: the innermost observations
with usage are the real calls. Ancestors are found by :data:`MAX_DEPTH` self-joins instead of
recursion so the expression stays portable.

**Price pick.** Distinct ``(model, provider)`` pairs are matched against ``model_prices``
(``model_match`` case-insensitive over the whole name), then observations join their pair's
candidates on the validity interval and a ``row_number`` window keeps, in order: the highest
``priority`` (user over Langfuse over genai-prices), the best provider agreement, the most
specific pattern (most literal characters, then fewest wildcards), the latest ``valid_from``.

Provider agreement: provider names are normalised (:data:`PROVIDER_ALIASES`). When the
observation's provider is one the price table knows, a row must be for that provider, for
no provider (user and Langfuse rows), or for a provider it resells (:data:`PROVIDER_FALLBACKS`:
Azure serves OpenAI's models, Vertex serves Anthropic's, as in genai-prices). A provider the
table does not know (``microsoft``, ``alibaba``) counts as unknown: any row may price it,
first-party providers first (:data:`PREFERRED_PROVIDERS`).
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from ._ibis import checkpoint

#: How far below a roll-up its usage-carrying descendant may be.
MAX_DEPTH = 8
PROVIDER_ALIASES = {
    "x-ai": "xai",
    "x_ai": "xai",
    "bedrock": "aws",
    "amazon": "aws",
    "amazon-bedrock": "aws",
    "aws-bedrock": "aws",
    "vertex": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google-genai": "google",
    "azure-openai": "azure",
    "azure_openai": "azure",
    "mistralai": "mistral",
    "together-ai": "together",
    "together_ai": "together",
    "moonshot": "moonshotai",
    "fireworks-ai": "fireworks",
    "fireworks_ai": "fireworks",
}
PROVIDER_FALLBACKS = {
    "azure": ("openai", "anthropic", "deepseek", "xai", "moonshotai"),
    "google": ("anthropic",),
}
PREFERRED_PROVIDERS = (
    "openai",
    "anthropic",
    "google",
    "mistral",
    "cohere",
    "deepseek",
    "xai",
    "meta",
    "moonshotai",
    "zai",
    "aws",
    "azure",
)
TOKENS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_PRICES = (
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cache_read_usd_per_mtok",
    "cache_write_usd_per_mtok",
    "reasoning_usd_per_mtok",
)


def normalized_provider(provider: ir.StringValue) -> ir.StringValue:
    """Lower-case provider with aliases resolved (``x-ai`` -> ``xai``, ``bedrock`` -> ``aws``)."""
    lowered = provider.lower()
    return lowered.substitute(PROVIDER_ALIASES, else_=lowered)


def carries_usage(t: ir.Table) -> ir.BooleanValue:
    """Whether an observation row has a positive token count or a positive reported cost."""
    return (
        (t.input_tokens.fill_null(0) > 0)
        | (t.output_tokens.fill_null(0) > 0)
        | (t.total_tokens.fill_null(0) > 0)
        | (t.reported_cost_usd.fill_null(0) > 0)
    )


def drop_rollups(usage: ir.Table, links: ir.Table) -> ir.Table:
    """``usage`` (observations carrying usage) without the roll-ups among them.

    ``links`` has ``observation_id`` and ``parent_observation_id`` of every observation in
    scope, so the ancestor chain can pass through spans without usage.
    """
    level = usage.select(ancestor=usage.parent_observation_id).filter(
        lambda t: t.ancestor.notnull()
    )
    levels = [level]
    for _ in range(MAX_DEPTH - 1):
        step = level.join(links, level.ancestor == links.observation_id)
        # Each level feeds the next and the union: cut the plan on Spark (no-op on DuckDB).
        level = checkpoint(
            step.select(ancestor=step.parent_observation_id).filter(lambda t: t.ancestor.notnull())
        )
        levels.append(level)
    ancestors = ibis.union(*levels, distinct=True)
    return usage.anti_join(ancestors, usage.observation_id == ancestors.ancestor)


def _literal_prefix(pattern: ir.StringValue) -> ir.StringValue:
    """Up to three leading characters every name the pattern matches must start with (lower
    case), or ``''`` when that is not certain (alternation, a quantified character)."""
    plain = "[A-Za-z0-9_/:-]"

    def take(n: int) -> ir.StringValue:
        return pattern.re_extract(f"^({plain}{{{n}}})(?:[^?*{{]|$)", 1)

    prefix = ibis.coalesce(take(3).nullif(""), take(2).nullif(""), take(1))
    return ibis.ifelse(pattern.contains("|"), "", prefix.fill_null("").lower())


def _candidates(pairs: ir.Table, prices: ir.Table) -> ir.Table:
    """Every price row that may price each ``(model, match_provider)`` pair, with its rank."""
    known = prices.filter(prices.provider.notnull()).select(known=prices.provider).distinct()
    pairs = pairs.left_join(known, pairs.match_provider == known.known).select(
        "model", "match_provider", effective=known.known
    )
    fallback_keys = [f"{k}>{v}" for k, vs in PROVIDER_FALLBACKS.items() for v in vs]
    eff, row_provider = pairs.effective, prices.provider
    agrees = (
        row_provider.isnull()
        | eff.isnull()
        | (eff == row_provider)
        | (eff.concat(">", row_provider)).isin(fallback_keys)
    )
    # Vertex AI names a model by its resource path; prices know the last segment.
    pairs = pairs.mutate(match_name=pairs.model.re_replace(r"^projects/.+/models/", "").lower())
    prices = prices.mutate(_prefix=_literal_prefix(prices.model_match))
    # A regular expression that is not a constant compiles once per row: test the cheap
    # literal prefix first so only a few patterns per model name are compiled.
    cheap = (prices._prefix == "") | pairs.match_name.startswith(prices._prefix)
    matches = pairs.match_name.re_search(ibis.literal("(?i)^(?:") + prices.model_match + ")$")
    joined = pairs.join(prices, [cheap, agrees, matches])
    preferred = {p: i for i, p in enumerate(PREFERRED_PROVIDERS)}
    rank = ibis.cases(
        (joined.provider.notnull() & (joined.effective == joined.provider), 0),
        (joined.provider.isnull(), 1),
        (joined.effective.notnull(), 2),
        else_=3 + joined.provider.substitute(preferred, else_=len(preferred)),
    )
    literal = joined.model_match.re_replace(r"\.\*|\\", "").length()
    wildcards = joined.model_match.length() - joined.model_match.replace(".*", "").length()
    return joined.select(
        "model",
        *_PRICES,
        pair_provider=joined.match_provider.fill_null(""),
        price_priority=joined.priority,
        price_rank=rank,
        price_literal=literal,
        price_wildcards=wildcards,
        valid_from=joined.valid_from,
        valid_to=joined.valid_to,
        price_source=joined.source,
        price_model_match=joined.model_match,
        price_model_name=joined.model_name,
    )


def pick_prices(obs: ir.Table, prices: ir.Table) -> ir.Table:
    """``obs`` (one row per observation, with ``model``, ``provider``, ``start_time``) plus the
    best price row's columns (NULL where nothing matches)."""
    obs = obs.mutate(match_provider=normalized_provider(obs.provider))
    pairs = obs.filter(obs.model.notnull()).select("model", "match_provider").distinct()
    cand = _candidates(pairs, prices)
    start = obs.start_time
    joined = obs.left_join(
        cand,
        [
            obs.model == cand.model,
            obs.match_provider.fill_null("") == cand.pair_provider,
            cand.valid_from.isnull() | (start >= cand.valid_from),
            cand.valid_to.isnull() | (start < cand.valid_to),
        ],
    )
    keep = [c for c in obs.columns if c != "match_provider"]
    picked = joined.select(
        *keep,
        *_PRICES,
        "price_priority",
        "price_rank",
        "price_literal",
        "price_wildcards",
        "price_source",
        "price_model_match",
        "price_model_name",
        price_valid_from=joined.valid_from,
    )
    order = [
        picked.price_priority.desc(),
        picked.price_rank.asc(),
        picked.price_literal.desc(),
        picked.price_wildcards.asc(),
        picked.price_valid_from.desc(),
        picked.price_model_match.asc(),
    ]
    best = picked.mutate(_n=ibis.row_number().over(group_by=picked.observation_id, order_by=order))
    return best.filter(best._n == 0).drop(
        "_n",
        "price_priority",
        "price_rank",
        "price_literal",
        "price_wildcards",
        "price_valid_from",
    )


def computed_cost(t: ir.Table) -> ir.FloatingValue:
    """USD of one observation's usage at its picked prices (NULL without a price or tokens).

    Tokens follow the OTel convention: ``input_tokens`` includes cache reads and writes,
    ``reasoning_tokens`` is part of ``output_tokens``. Cache and reasoning tokens fall back to
    the input / output price when the row has none; inconsistent counts (more cache than input)
    never make a negative part.
    """

    def n(col: str) -> Any:
        return t[col].fill_null(0).cast("float64")

    inp, out = t.input_usd_per_mtok.fill_null(0), t.output_usd_per_mtok.fill_null(0)
    cache_read = ibis.coalesce(t.cache_read_usd_per_mtok, t.input_usd_per_mtok, 0)
    cache_write = ibis.coalesce(t.cache_write_usd_per_mtok, t.input_usd_per_mtok, 0)
    reasoning = ibis.coalesce(t.reasoning_usd_per_mtok, t.output_usd_per_mtok, 0)
    uncached = ibis.greatest(
        n("input_tokens") - n("cache_read_tokens") - n("cache_write_tokens"), 0
    )
    answer = ibis.greatest(n("output_tokens") - n("reasoning_tokens"), 0)
    usd = (
        uncached * inp
        + n("cache_read_tokens") * cache_read
        + n("cache_write_tokens") * cache_write
        + answer * out
        + n("reasoning_tokens") * reasoning
    ) / 1e6
    priceable = t.price_model_match.notnull() & (
        t.input_tokens.notnull() | t.output_tokens.notnull()
    )
    return ibis.ifelse(priceable, usd, ibis.null("float64"))
