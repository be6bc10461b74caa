"""model_prices: genai-prices conversion, Langfuse's file, user tables, errors, fingerprint."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pandas as pd
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data import providers

import sessionlens as sl
from sessionlens.analysis import _cost_match
from sessionlens.analysis._ibis import backend
from sessionlens.analysis._price_sources import clause_regexes, dated_prices, search_to_whole
from sessionlens.analysis.prices import (
    build_model_prices,
    ensure_model_prices,
    prices_fingerprint,
    read_user_prices,
)
from sessionlens.errors import ConfigError
from tests.conftest import SHARED

LANGFUSE_PRICES = SHARED / "prices" / "langfuse-default-model-prices.json"
USAGE = {
    "input_tokens": 1000,
    "cache_read_tokens": 200,
    "cache_write_tokens": 100,
    "output_tokens": 500,
}


def _pick(
    con: duckdb.DuckDBPyConnection, names: list[tuple[str, str | None, datetime]]
) -> pd.DataFrame:
    """The price row the cost analysis picks for each (model, provider, start_time)."""
    obs = ibis.memtable(
        {
            "observation_id": [str(i) for i in range(len(names))],
            "model": [n[0] for n in names],
            "provider": [n[1] for n in names],
            "start_time": [n[2] for n in names],
        },
        schema={
            "observation_id": "string",
            "model": "string",
            "provider": "string",
            "start_time": "timestamp",
        },
    )
    picked = _cost_match.pick_prices(obs, backend(con).table("model_prices"))
    return picked.to_pandas().set_index("observation_id").loc[[str(i) for i in range(len(names))]]


def _ours(row: pd.Series) -> float:
    """Our pricing rule on USAGE with the picked row (same formula as computed_cost)."""

    def p(col: str, *fallbacks: str) -> float:
        for c in (col, *fallbacks):
            if pd.notna(row[c]):
                return float(row[c])
        return 0.0

    uncached = USAGE["input_tokens"] - USAGE["cache_read_tokens"] - USAGE["cache_write_tokens"]
    return (
        uncached * p("input_usd_per_mtok")
        + USAGE["cache_read_tokens"] * p("cache_read_usd_per_mtok", "input_usd_per_mtok")
        + USAGE["cache_write_tokens"] * p("cache_write_usd_per_mtok", "input_usd_per_mtok")
        + USAGE["output_tokens"] * p("output_usd_per_mtok")
    ) / 1e6


def _example_name(model: Any) -> str | None:
    """A name the model's own match clause accepts: its id, else a literal of its clause."""
    literals = [model.id]
    stack = [model.match]
    while stack:
        clause = stack.pop()
        stack += getattr(clause, "or_", None) or getattr(clause, "and_", None) or []
        literals += [getattr(clause, k) for k in ("equals", "starts_with") if hasattr(clause, k)]
    return next((n for n in literals if model.is_match(n)), None)


def test_defaults_are_genai_prices_only_and_every_pattern_compiles_in_duckdb(con):
    rows = build_model_prices(con)
    assert rows == con.sql("SELECT count(*) FROM model_prices").fetchone()[0]
    assert con.sql("SELECT DISTINCT source, priority FROM model_prices").fetchall() == [
        ("genai-prices", 100)
    ]
    models = sum(len(p.models) for p in providers)
    assert rows > models  # or-clauses become one row per alternative, dated prices add rows
    # A pattern RE2 cannot compile would make the cost query fail: compile them all.
    con.sql(
        "SELECT count(*) FROM model_prices "
        "WHERE regexp_matches('x', '(?i)^(?:' || model_match || ')$')"
    ).fetchall()
    assert con.sql(
        "SELECT count(*) FROM model_prices WHERE input_usd_per_mtok IS NULL "
        "AND output_usd_per_mtok IS NULL"
    ).fetchone() == (0,)


@pytest.mark.parametrize(
    ("provider_id", "names_from"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("google", "google"),
        ("mistral", "mistral"),
        ("x-ai", "x-ai"),
        ("aws", "aws"),
        ("azure", "azure"),
        ("azure", "openai"),  # Azure serves OpenAI's models at OpenAI's prices (fallback)
        ("google", "anthropic"),  # Claude on Vertex
    ],
)
def test_picked_prices_equal_genai_prices_own_lookup(con, provider_id, names_from):
    """For every model of these providers, at two dates, our pick prices like calc_price."""
    build_model_prices(con)
    provider = next(p for p in providers if p.id == names_from)
    ours_id = {"x-ai": "xai"}.get(provider_id, provider_id)
    cases: list[tuple[str, str | None, datetime]] = []
    for model in provider.models:
        name = _example_name(model)
        if name is None:
            continue
        for when in (datetime(2025, 3, 1), datetime(2026, 9, 1)):
            price = model.get_prices(when)
            if (
                getattr(price, "input_mtok", None) is None
                and getattr(price, "output_mtok", None) is None
            ):
                continue
            cases.append((name, ours_id, when))
    picked = _pick(con, cases)
    mismatches = []
    for (name, _, when), (_, row) in zip(cases, picked.iterrows(), strict=True):
        try:
            want = calc_price(
                Usage(**USAGE),
                name,
                provider_id=provider_id,
                genai_request_timestamp=when.replace(tzinfo=UTC),
            )
        except LookupError:  # genai-prices cannot price it for this provider either
            assert pd.isna(row.price_model_match) or provider_id != names_from, name
            continue
        if abs(_ours(row) - float(want.total_price)) > 1e-12:
            mismatches.append((name, when, _ours(row), float(want.total_price)))
    assert len(cases) > 20
    assert mismatches == []


def test_dated_prices_become_intervals_picked_by_start_time(con):
    build_model_prices(con)
    changed = next(
        (p.id, m)
        for p in providers
        if p.id in ("openai", "anthropic", "google")
        for m in p.models
        if len(dated_prices(m)) > 1
    )
    provider_id, model = changed
    boundary = dated_prices(model)[1][0]
    assert boundary is not None
    before, after = boundary - timedelta(seconds=1), boundary
    picked = _pick(con, [(model.id, provider_id, before), (model.id, provider_id, after)])
    for (_, row), when in zip(picked.iterrows(), (before, after), strict=True):
        want = model.get_prices(when)
        base = getattr(want.input_mtok, "base", want.input_mtok)  # tiered: the base tier
        assert row.input_usd_per_mtok == pytest.approx(float(base))
    intervals = con.sql(
        "SELECT valid_from, valid_to FROM model_prices WHERE model_name = ? AND provider = ? "
        "ORDER BY valid_from NULLS FIRST",
        params=[model.id, provider_id],
    ).fetchall()
    assert (None, boundary) in intervals


def test_or_clauses_become_alternatives_and_lookaheads_are_dropped():
    from genai_prices.types import ClauseAnd, ClauseRegex, ClauseStartsWith

    clause = ClauseAnd([ClauseStartsWith("gemini-2.5-pro"), ClauseRegex("^(?!.*-tts(?:$|-))")])
    assert clause_regexes(clause) == ["gemini-2\\.5-pro.*"]
    assert search_to_whole("claude") == ".*claude.*"
    assert (
        search_to_whole("^(typesafe/)?jev-1\\.13(-\\d{8})?$") == "(typesafe/)?jev-1\\.13(-\\d{8})?"
    )
    assert search_to_whole("\\$") == ".*\\$.*"  # an escaped dollar is not an anchor


def test_tts_variant_is_not_priced_as_its_base_model(con):
    """The dropped look-ahead excluded '-tts' names; the TTS entries' own patterns win."""
    build_model_prices(con)
    when = datetime(2026, 9, 1)
    picked = _pick(con, [("gemini-2.5-pro-preview-tts", "google", when)])
    assert picked.iloc[0].price_model_name == "gemini-2.5-pro-tts"


def test_langfuse_file_rows_use_the_default_tier_per_million(con):
    build_model_prices(con, langfuse=LANGFUSE_PRICES, genai_prices=False)
    row = con.sql(
        "SELECT model_match, input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok, "
        "priority, provider FROM model_prices WHERE model_name = 'gpt-4o'"
    ).fetchone()
    # Langfuse's file: "(?i)^(openai/)?(gpt-4o)$", 2.5e-06 / 1e-05 / 1.25e-06 per token.
    assert row == (
        "(openai/)?(gpt-4o)",
        pytest.approx(2.5),
        pytest.approx(10.0),
        pytest.approx(1.25),
        200,
        None,
    )
    claude = con.sql(
        "SELECT cache_write_usd_per_mtok FROM model_prices WHERE model_name = "
        "'claude-sonnet-4-5-20250929'"
    ).fetchone()
    assert claude == (pytest.approx(3.75),)  # input_cache_creation (5 minutes)
    total_only = con.sql(
        "SELECT input_usd_per_mtok, output_usd_per_mtok FROM model_prices "
        "WHERE model_name = 'text-embedding-3-small'"
    ).fetchone()
    assert total_only == (pytest.approx(0.02), pytest.approx(0.02))


def test_langfuse_dated_entries_close_each_other(con):
    models = json.loads(LANGFUSE_PRICES.read_text())[:1]
    newer = {**models[0], "startDate": "2026-01-01T00:00:00Z"}
    newer["pricingTiers"] = [{"isDefault": True, "prices": {"input": 1e-06, "output": 2e-06}}]
    build_model_prices(con, langfuse=[models[0], newer], genai_prices=False)
    assert con.sql(
        "SELECT valid_from, valid_to, input_usd_per_mtok FROM model_prices ORDER BY 1 NULLS FIRST"
    ).fetchall() == [
        (None, datetime(2026, 1, 1), pytest.approx(2.5)),
        (datetime(2026, 1, 1), None, pytest.approx(1.0)),
    ]


def _write_tables(tmp: Path) -> list[Path]:
    rows = [
        {"model": "acme-1", "input": 1.5, "output": 6, "cache_read": 0.15},
        {
            "model_match": "acme-2.*",
            "provider": "acme",
            "input": 2,
            "output": 8,
            "valid_from": "2026-01-01",
        },
    ]
    csv_path = tmp / "p.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    (tmp / "p.json").write_text(json.dumps({"prices": rows}))
    (tmp / "p.yaml").write_text(
        "- {model: acme-1, input: 1.5, output: 6, cache_read: 0.15}\n"
        "- {model_match: 'acme-2.*', provider: acme, input: 2, output: 8, valid_from: 2026-01-01}\n"
    )
    (tmp / "p.toml").write_text(
        '[[prices]]\nmodel = "acme-1"\ninput = 1.5\noutput = 6\ncache_read = 0.15\n'
        '[[prices]]\nmodel_match = "acme-2.*"\nprovider = "acme"\ninput = 2\noutput = 8\n'
        "valid_from = 2026-01-01\n"
    )
    return [csv_path, tmp / "p.json", tmp / "p.yaml", tmp / "p.toml"]


def test_user_tables_read_alike_from_every_form(tmp_path):
    frame = pd.DataFrame(
        [
            {"model": "acme-1", "input": 1.5, "output": 6, "cache_read": 0.15},
            {
                "model_match": "acme-2.*",
                "provider": "acme",
                "input": 2,
                "output": 8,
                "valid_from": "2026-01-01",
            },
        ]
    )
    want = read_user_prices(frame)
    assert want[0]["model_match"] == "acme-1" and want[0]["cache_read_usd_per_mtok"] == 0.15
    assert want[1]["valid_from"] == datetime(2026, 1, 1) and want[1]["provider"] == "acme"
    for path in _write_tables(tmp_path):
        assert read_user_prices(path) == want, path.suffix
        assert read_user_prices(str(path)) == want
    assert read_user_prices(frame.to_dict("records")) == want


@pytest.mark.parametrize(
    ("user", "match"),
    [
        ([{"model": "m", "input": 1, "inptu": 2}], r"row 0: unknown column 'inptu'; use "),
        ([{"input": 1}], r"row 0: give 'model'"),
        ([{"model": "m"}], r"row 0: no 'input' or 'output' price"),
        ([{"model": "m", "input": -1}], r"row 0, input_usd_per_mtok: -1 must be a finite price"),
        ([{"model": "m", "input": "cheap"}], r"'cheap' is not a number"),
        ([{"model_match": "gpt-(4", "input": 1}], r"is not a regular expression"),
        (
            [{"model": "m", "input": 1, "valid_from": "2026-02-01", "valid_to": "2026-01-01"}],
            r"valid_to 2026-01-01 00:00:00 is not after valid_from",
        ),
        ([{"model": "m", "input": 1, "valid_from": "June"}], r"'June' is not an ISO date"),
        ([{"model": "m", "input": 1}, "oops"], r"row 1: expected a mapping"),
        (42, r"expected rows, a \{model: prices\} dict"),
    ],
)
def test_invalid_user_prices_name_the_row_and_the_fix(con, user, match):
    with pytest.raises(ConfigError, match=match):
        build_model_prices(con, user=user)


def test_a_lookahead_python_accepts_but_re2_does_not_is_rejected(con):
    with pytest.raises(ConfigError, match=r"not valid RE2 syntax.*look-arounds"):
        build_model_prices(con, user=[{"model_match": "gpt-(?!4)", "input": 1}])


def test_invalid_files_are_config_errors(con, tmp_path):
    with pytest.raises(ConfigError, match=r"no such file; pass the path of a CSV"):
        build_model_prices(con, user=tmp_path / "missing.csv")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad.json: cannot parse"):
        build_model_prices(con, user=bad)
    odd = tmp_path / "prices.xlsx"
    odd.write_text("x")
    with pytest.raises(ConfigError, match=r"unknown price file type '.xlsx'"):
        build_model_prices(con, user=odd)
    with pytest.raises(ConfigError, match=r"no such file; pass the path of Langfuse"):
        build_model_prices(con, langfuse=tmp_path / "nope.json")
    with pytest.raises(ConfigError, match=r"expected a JSON list of models"):
        build_model_prices(con, langfuse={"data": []})
    with pytest.raises(ConfigError, match=r"model 0: no matchPattern"):
        build_model_prices(con, langfuse=[{"modelName": "x"}])
    with pytest.raises(ConfigError, match=r"DuckDB connection"):
        build_model_prices("traces.duckdb")  # a path, not a connection


def test_failed_build_leaves_the_table_as_it_was(con):
    build_model_prices(con, genai_prices=False, user={"keep-me": {"input": 1}})
    before = prices_fingerprint(con)
    with pytest.raises(ConfigError):
        build_model_prices(con, user=[{"model": "m", "input": -5}])
    assert prices_fingerprint(con) == before


def test_fingerprint_is_stable_and_follows_content(con):
    user: list[dict[str, Any]] = [
        {"model": "a", "input": 1, "output": 2},
        {"model": "b", "input": 3, "output": 4},
    ]
    build_model_prices(con, genai_prices=False, user=user)
    first = prices_fingerprint(con)
    build_model_prices(con, genai_prices=False, user=list(reversed(user)))
    assert prices_fingerprint(con) == first  # row order does not matter
    build_model_prices(con, genai_prices=False, user=[*user[:1], {**user[1], "output": 5}])
    assert prices_fingerprint(con) != first
    other = sl.connect()
    build_model_prices(other, genai_prices=False, user=user)
    assert prices_fingerprint(other) == first  # same content, same hash, any database


def test_ensure_builds_once(con):
    assert ensure_model_prices(con) > 1000
    build_model_prices(con, genai_prices=False, user={"only": {"input": 1}})
    assert ensure_model_prices(con) == 1  # not empty: left alone
