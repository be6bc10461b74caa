"""Rows of ``model_prices`` from each price source: genai-prices, Langfuse's file, the user.

This private module owns turning each source's own shape into rows of the price table (USD per
million tokens, a regular expression matched case-insensitively against the *whole* model
name, a validity interval); :mod:`sessionlens.analysis.prices` owns writing them.

- **genai-prices** (bundled data, never fetched): its match clauses become regular expressions
  in the common subset of RE2 (DuckDB) and Java (Spark) syntax. An ``or`` clause becomes one row
  per alternative, so the cost lookup can rank alternatives by how specific each is. The only
  ``and`` clauses in the data pair a ``starts_with`` with a negative look-ahead excluding
  ``-tts`` variants; look-aheads exist in neither RE2 nor our table, so the look-ahead is
  dropped and the TTS models' own, longer patterns win by specificity. Dated prices become
  ``valid_from``/``valid_to`` intervals resolved exactly as genai-prices resolves them;
  time-of-day (off-peak) prices and request-context variants (batch, flex, priority tiers) are
  not represented: the standard price applies. Tiered prices (for example above 200k prompt
  tokens) use the base tier. Only token prices are kept (input, output, cache read, cache write
  for 5 minutes, reasoning); models priced by none of input/output are left out so their
  usage shows as unpriced rather than free.
- **Langfuse** (``default-model-prices.json``): the default pricing tier; usage keys map to
  our columns by :data:`_LANGFUSE_KEYS`; a ``total`` price (old completion models) prices
  input and output alike.
- **user** tables: see :func:`user_rows`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ..errors import ConfigError

PRICE_COLUMNS = (
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cache_read_usd_per_mtok",
    "cache_write_usd_per_mtok",
    "reasoning_usd_per_mtok",
)
COLUMNS = (
    "provider",
    "model_match",
    "model_name",
    "valid_from",
    "valid_to",
    *PRICE_COLUMNS,
    "priority",
    "source",
)
PRIORITY = {"genai-prices": 100, "langfuse": 200, "user": 300}
#: genai-prices provider ids spelled as the loaders spell providers.
PROVIDER_IDS = {"x-ai": "xai"}

_META = re.compile(r"([\\.^$|?*+()\[\]{}])")
_LOOKAROUND = re.compile(r"^\^?\(\?<?[!=]")


def escape(text: str) -> str:
    """A literal as a regular expression valid in RE2 and Java (only metacharacters escaped).

    >>> escape("gpt-4.1")
    'gpt-4\\\\.1'
    """
    return _META.sub(r"\\\1", text.lower())


def _has_top_level_alternation(regex: str) -> bool:
    depth, i = 0, 0
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":  # skip a character class, where | and ( are literal
            i += 2 if regex[i + 1 : i + 2] == "]" else 1
            while i < len(regex) and regex[i] != "]":
                i += 2 if regex[i] == "\\" else 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        i += 1
    return False


def search_to_whole(regex: str) -> str:
    """Turn a *search* pattern (matches anywhere) into one matching the whole name.

    ``.*(?:R).*`` keeps the meaning of any ``R`` (``^``/``$`` still anchor at the ends); a
    single-branch pattern anchored at either end drops the anchor and its ``.*``.

    >>> search_to_whole("^gpt-5\\\\.4-\\\\d{4}$"), search_to_whole("^o[134]")
    ('gpt-5\\\\.4-\\\\d{4}', 'o[134].*')
    >>> search_to_whole("a|b")
    '.*(?:a|b).*'
    """
    if _has_top_level_alternation(regex):
        return f".*(?:{regex}).*"
    head, body = ("", regex[1:]) if regex.startswith("^") else (".*", regex)
    trailing_backslashes = len(body[:-1]) - len(body[:-1].rstrip("\\"))
    if body.endswith("$") and trailing_backslashes % 2 == 0:
        return head + body[:-1]
    return head + body + ".*"


def clause_regexes(clause: Any) -> list[str] | None:
    """Regular expressions (alternatives) equivalent to a genai-prices match clause.

    Returns ``None`` for a clause that can only be a look-around (dropped inside ``and``).

    >>> from genai_prices.types import ClauseOr, ClauseEquals, ClauseStartsWith
    >>> clause_regexes(ClauseOr([ClauseEquals("gpt-4o"), ClauseStartsWith("gpt-4o-2024")]))
    ['gpt-4o', 'gpt-4o-2024.*']
    """
    kind = type(clause).__name__
    if kind == "ClauseEquals":
        return [escape(clause.equals)]
    if kind == "ClauseStartsWith":
        return [escape(clause.starts_with) + ".*"]
    if kind == "ClauseEndsWith":
        return [".*" + escape(clause.ends_with)]
    if kind == "ClauseContains":
        return [".*" + escape(clause.contains) + ".*"]
    if kind == "ClauseRegex":
        return None if _LOOKAROUND.match(clause.regex) else [search_to_whole(clause.regex)]
    if kind == "ClauseOr":
        out: list[str] = []
        for part in clause.or_:
            sub = clause_regexes(part)
            if sub is None:
                raise ValueError(f"look-around alternative in {clause!r}")
            out += sub
        return out
    if kind == "ClauseAnd":
        parts = [p for p in (clause_regexes(c) for c in clause.and_) if p is not None]
        if len(parts) != 1:
            raise ValueError(f"cannot express {clause!r} as one regular expression")
        return parts[0]
    raise ValueError(f"unknown match clause {clause!r}")


def _mtok(value: Any) -> float | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # TieredPrices: the base tier
    return float(base) if isinstance(base, (Decimal, int, float)) else None


def _genai_price_values(price: Any) -> dict[str, float | None]:
    return {
        "input_usd_per_mtok": _mtok(getattr(price, "input_mtok", None)),
        "output_usd_per_mtok": _mtok(getattr(price, "output_mtok", None)),
        "cache_read_usd_per_mtok": _mtok(getattr(price, "cache_read_mtok", None)),
        "cache_write_usd_per_mtok": _mtok(getattr(price, "cache_write_mtok", None)),
        "reasoning_usd_per_mtok": _mtok(getattr(price, "output_reasoning_mtok", None)),
    }


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def dated_prices(model: Any) -> list[tuple[datetime | None, datetime | None, Any]]:
    """``(valid_from, valid_to, ModelPrice)`` intervals of a genai-prices model.

    genai-prices uses the *last* conditional price whose start date has passed, else the first
    one; evaluating that rule at each start date gives exact intervals (UTC midnights).
    """
    prices = model.prices
    if not isinstance(prices, list):
        return [(None, None, prices)]
    dated = [
        c
        for c in prices
        if c.constraint is None or type(c.constraint).__name__ == "StartDateConstraint"
    ]
    if not dated:  # only time-of-day prices: fall back to the first, as genai-prices does
        return [(None, None, prices[0].prices)]

    def at(moment: date | None) -> Any:
        for cond in reversed(dated):
            if cond.constraint is None or (
                moment is not None and moment >= cond.constraint.start_date
            ):
                return cond.prices
        return dated[0].prices

    starts = sorted({c.constraint.start_date for c in dated if c.constraint is not None})
    bounds: list[date | None] = [None, *starts]
    out: list[tuple[datetime | None, datetime | None, Any]] = []
    for i, start in enumerate(bounds):
        price = at(start)
        begin = _midnight(start) if start is not None else None
        end = _midnight(bounds[i + 1]) if i + 1 < len(bounds) else None  # type: ignore[arg-type]
        if out and out[-1][2] is price:
            out[-1] = (out[-1][0], end, price)  # same entry as before: extend the interval
        else:
            out.append((begin, end, price))
    return out


def genai_prices_rows() -> Iterator[dict[str, Any]]:
    """Every provider/model of the installed genai-prices snapshot as price rows."""
    from genai_prices.data import providers  # bundled data: importing it never fetches

    for provider in providers:
        provider_id = PROVIDER_IDS.get(provider.id, provider.id)
        for model in provider.models:
            regexes = clause_regexes(model.match) or []
            for valid_from, valid_to, price in dated_prices(model):
                values = _genai_price_values(price)
                if values["input_usd_per_mtok"] is None and values["output_usd_per_mtok"] is None:
                    continue
                for regex in dict.fromkeys(regexes):
                    yield {
                        "provider": provider_id,
                        "model_match": regex,
                        "model_name": model.id,
                        "valid_from": valid_from,
                        "valid_to": valid_to,
                        **values,
                        "priority": PRIORITY["genai-prices"],
                        "source": "genai-prices",
                    }


#: Langfuse usage keys for each of our price columns, first present wins.
_LANGFUSE_KEYS = {
    "input_usd_per_mtok": ("input", "input_tokens", "prompt_tokens", "promptTokenCount"),
    "output_usd_per_mtok": ("output", "output_tokens", "completion_tokens", "candidatesTokenCount"),
    "cache_read_usd_per_mtok": (
        "input_cache_read",
        "input_cached_tokens",
        "cache_read_input_tokens",
        "cached_content_token_count",
    ),
    "cache_write_usd_per_mtok": (
        "input_cache_creation",
        "cache_creation_input_tokens",
        "input_cache_creation_5m",
        "cache_write_tokens",
    ),
    "reasoning_usd_per_mtok": (
        "output_reasoning",
        "output_reasoning_tokens",
        "reasoning_tokens",
        "thoughtsTokenCount",
    ),
}


def _first_price(prices: Mapping[str, Any], keys: Iterable[str]) -> float | None:
    for key in keys:
        value = prices.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) * 1e6
    return None


def langfuse_rows(models: Any, where: str) -> list[dict[str, Any]]:
    """Price rows from Langfuse's model price list (USD per token, default tier)."""
    if not isinstance(models, list):
        raise ConfigError(
            "langfuse",
            f"{where}: expected a JSON list of models, got "
            f"{type(models).__name__}; pass Langfuse's default-model-prices.json",
        )
    rows: list[dict[str, Any]] = []
    for i, model in enumerate(models):
        pattern = model.get("matchPattern") if isinstance(model, Mapping) else None
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(
                "langfuse",
                f"{where}, model {i}: no matchPattern; every entry "
                "needs the regular expression Langfuse matches model names with",
            )
        tiers = model.get("pricingTiers") or []
        default = next((t for t in tiers if isinstance(t, Mapping) and t.get("isDefault")), None)
        prices = (default or {}).get("prices") or model.get("prices") or {}
        values = {col: _first_price(prices, keys) for col, keys in _LANGFUSE_KEYS.items()}
        total = _first_price(prices, ("total",))
        if values["input_usd_per_mtok"] is None and values["output_usd_per_mtok"] is None:
            if total is None:
                continue
            values["input_usd_per_mtok"] = values["output_usd_per_mtok"] = total
        start = model.get("startDate")
        rows.append(
            {
                "provider": None,
                "model_match": search_to_whole(re.sub(r"^\(\?i\)", "", pattern)),
                "model_name": model.get("modelName"),
                "valid_from": parse_time(start, "langfuse", f"{where}, model {i}")
                if start
                else None,
                "valid_to": None,
                **values,
                "priority": PRIORITY["langfuse"],
                "source": "langfuse",
            }
        )
    return close_intervals(rows)


def close_intervals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set an open ``valid_to`` to the next ``valid_from`` of the same provider and pattern."""
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["provider"], row["model_match"]), []).append(row)
    for group in groups.values():
        group.sort(key=lambda r: r["valid_from"] or datetime.min)
        for this, following in itertools.pairwise(group):
            if this["valid_to"] is None and following["valid_from"] is not None:
                this["valid_to"] = following["valid_from"]
    return rows


def parse_time(value: Any, option: str, where: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = _midnight(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                option,
                f"{where}: {value!r} is not an ISO date or time; write "
                "e.g. 2025-06-01 or 2025-06-01T00:00:00Z",
            ) from None
    else:
        raise ConfigError(option, f"{where}: expected an ISO date, got {type(value).__name__}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def finite_price(value: Any, option: str, where: str) -> float | None:
    """A non-negative finite price, ``None`` for a blank one; else ``ConfigError``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            option,
            f"{where}: {value!r} is not a number; write the price in "
            "USD per million tokens, e.g. 2.5",
        ) from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(
            option, f"{where}: {value!r} must be a finite price >= 0 (USD per million tokens)"
        )
    return number
