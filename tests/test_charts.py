"""Chart specs, rendering and inputs of ``sessionlens.charts`` on the seeded generator.

Specs are checked through ``chart.to_dict()`` (mark, encodings, embedded rows = analysis rows)
and through ``charts.to_vega`` (VegaFusion's pre-aggregated rows = planted answers).
"""

from __future__ import annotations

import json
import re
from collections import Counter

import altair as alt
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens import charts
from sessionlens.errors import ChartInputError

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ds() -> sl.datasets.SyntheticDataset:
    return sl.datasets.generate(120, seed=11)


@pytest.fixture(scope="module")
def db(ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    sl.datasets.write_langfuse_blob_export(ds, out)
    con = sl.connect()
    sl.load(con, out)
    sl.analyze_sessions(con, progress=False)
    yield con
    con.close()


@pytest.fixture(scope="module")
def agent(ds) -> pd.DataFrame:
    """Planted sessions the analysis covers (internal ones are left out by default)."""
    return ds.planted[~ds.planted["is_internal"]].reset_index(drop=True)


def rows(chart: alt.TopLevelMixin) -> list[dict]:
    """The one inline dataset a chart embeds."""
    datasets = chart.to_dict()["datasets"]
    assert len(datasets) == 1
    return next(iter(datasets.values()))


def vega_rows(chart: alt.TopLevelMixin, *columns: str) -> list[dict]:
    """Rows of the VegaFusion-evaluated data set holding ``columns``."""
    for data in charts.to_vega(chart)["data"]:
        values = data.get("values") or []
        if values and all(c in values[0] for c in columns):
            return values
    raise AssertionError(f"no evaluated data set with {columns}")


def records(table) -> list[dict]:
    return table.to_pyarrow().to_pylist()


def same(chart_rows: list[dict], expected: list[dict]) -> None:
    cols = [c for c in chart_rows[0] if c in expected[0]]
    assert len(cols) >= len(chart_rows[0]) - 1  # at most one label column added
    got = [{c: r[c] for c in cols} for r in chart_rows]
    expected = [{c: r[c] for c in cols} for r in expected]
    assert got == expected


def test_report_charts_builds_every_chart_in_order(db):
    figures = charts.report_charts(db)
    assert list(figures) == list(charts.CHARTS)
    assert all(isinstance(f, alt.TopLevelMixin) for f in figures.values())


def test_intent_mix_bars_are_the_analysis_rows(db, agent):
    chart = charts.intent_mix(sl.intent_mix(db))
    spec = chart.to_dict()
    assert spec["mark"]["type"] == "bar"
    x = {"field": "sessions", "type": "quantitative", "title": "Sessions"}
    assert spec["encoding"]["x"] == x
    assert spec["encoding"]["y"]["sort"] == "-x"
    assert spec["title"]["text"] == "Caller intent mix"
    same(rows(chart), records(sl.intent_mix(db)))
    assert sum(r["sessions"] for r in rows(chart)) == len(agent)


def test_completion_by_intent_counts_completed_sessions(db, agent):
    chart = charts.completion_by_intent(sl.completion_by_intent(db))
    spec = chart.to_dict()
    assert spec["encoding"]["x"]["field"] == "completed_share"
    assert spec["encoding"]["x"]["scale"] == {"domain": [0, 1]}
    same(rows(chart), records(sl.completion_by_intent(db)))
    assert sum(r["completed"] for r in rows(chart)) == int((agent.status == "completed").sum())


def test_dropoff_funnel_facets_intents_in_flow_order(db):
    chart = charts.dropoff_funnel(sl.dropoff_funnel(db))
    spec = chart.to_dict()
    assert isinstance(chart, alt.FacetChart)
    assert spec["facet"]["row"]["field"] == "intent"
    assert spec["resolve"] == {"scale": {"y": "independent"}}
    y = spec["spec"]["encoding"]["y"]
    assert (y["field"], y["sort"]) == ("step_label", {"field": "step_index"})
    same(rows(chart), records(sl.dropoff_funnel(db)))
    booking = [r["step_label"] for r in rows(chart) if r["intent"] == "booking"]
    steps = sl.datasets.FLOWS["booking"]
    assert booking == [f"{i + 1}. {s}" for i, s in enumerate(steps)]


def test_sequence_variants_keeps_the_top_sequences(db, agent):
    chart = charts.sequence_variants(sl.sequence_variants(db), top=3)
    got = rows(chart)
    assert len(got) == 3
    planted = Counter(" > ".join(s) for s in agent.tool_sequence if len(s))
    assert got[0]["variant"] == planted.most_common(1)[0][0]
    assert got[0]["sessions"] == planted.most_common(1)[0][1]
    assert chart.to_dict()["encoding"]["color"]["field"] == "mean_completion_rate"


@pytest.mark.parametrize("top", [0, -1, 2.5, True])
def test_sequence_variants_rejects_a_bad_top(db, top):
    with pytest.raises(sl.ConfigError, match="top: must be a positive integer"):
        charts.sequence_variants(sl.sequence_variants(db), top=top)


def test_tool_transitions_heatmap_starts_and_ends(db):
    chart = charts.tool_transitions(sl.tool_transitions(db))
    spec = chart.to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["rect", "text"]
    enc = spec["layer"][0]["encoding"]
    assert enc["y"]["sort"][0] == "(start)"
    assert enc["x"]["sort"][-1] == "(end)"
    assert enc["color"]["field"] == "transitions"
    same(rows(chart), records(sl.tool_transitions(db)))


def test_cost_over_time_days_are_utc_days(db):
    chart = charts.cost_over_time(sl.cost_by(db, by=["day", "model"]))
    enc = chart.to_dict()["encoding"]
    assert (enc["x"]["timeUnit"], enc["color"]["field"]) == ("utcyearmonthdate", "model")
    got = vega_rows(chart, "utcyearmonthdate_day", "sum_cost_usd")
    per_day = Counter()
    for r in got:
        day = pd.Timestamp(r["utcyearmonthdate_day"], unit="ms").date()
        per_day[day] += r["sum_cost_usd"]
    expected = sl.cost_by(db, by="day").to_pandas()
    assert sorted(per_day) == sorted(expected.day.dt.date)
    for day, cost in zip(expected.day.dt.date, expected.cost_usd, strict=True):
        assert per_day[day] == pytest.approx(cost)


def test_cost_per_session_histogram_counts_priced_sessions(db, agent):
    sa = db.table("session_analysis")
    chart = charts.cost_per_session(sa)
    assert chart.to_dict()["encoding"]["y"]["aggregate"] == "count"
    assert sum(r["cost_usd"] for r in rows(chart)) == pytest.approx(agent.reported_cost_usd.sum())
    counts = vega_rows(chart, "__count")
    assert sum(r["__count"] for r in counts) == len(agent)


def test_cost_per_session_says_how_many_have_no_cost():
    frame = pd.DataFrame({"session_id": ["a", "b"], "cost_usd": [0.5, None]})
    chart = charts.cost_per_session(frame)
    assert chart.title.subtitle == "1 sessions; 1 without a cost left out"
    assert [r["session_id"] for r in rows(chart)] == ["a"]


def test_tool_latency_has_one_row_per_timed_call(db):
    chart = charts.tool_latency(sl.tool_sequences(db))
    spec = chart.to_dict()
    assert spec["mark"]["type"] == "boxplot"
    got = pd.DataFrame(rows(chart))
    calls = db.sql(
        "SELECT tool_name AS tool, epoch_ms(end_time) - epoch_ms(start_time) AS ms "
        "FROM tool_calls WHERE end_time IS NOT NULL"
    ).df()
    assert len(got) == len(calls)
    assert sorted(got.duration_seconds) == pytest.approx(sorted(calls.ms / 1000))
    medians = got.groupby("tool").duration_seconds.median().sort_values(ascending=False)
    assert spec["encoding"]["y"]["sort"] == list(medians.index)


def test_status_over_time_matches_planted_days(db, agent):
    chart = charts.status_over_time(db.table("session_analysis"))
    enc = chart.to_dict()["encoding"]
    assert enc["color"]["scale"]["domain"] == list(charts.STATUS_COLORS)
    got = {
        (pd.Timestamp(r["utcyearmonthdate_start_time"], unit="ms").date(), r["status"]): r[
            "__count"
        ]
        for r in vega_rows(chart, "utcyearmonthdate_start_time", "status", "__count")
    }
    planted = Counter(zip(agent.start_time.dt.date, agent.status, strict=True))
    assert got == dict(planted)


def test_every_input_type_gives_the_same_chart(db):
    ibis_table = sl.intent_mix(db)
    arrow = ibis_table.to_pyarrow()
    db.register("intent_rows", arrow)
    relation = db.sql("SELECT * FROM intent_rows")
    specs = [
        charts.intent_mix(t).to_dict()
        for t in (ibis_table, relation, arrow, ibis_table.to_pandas())
    ]
    assert all(rows_of == specs[0]["datasets"] for rows_of in (s["datasets"] for s in specs))


def test_a_missing_column_names_it_and_the_fix(db):
    table = sl.intent_mix(db).drop("sessions")
    with pytest.raises(ChartInputError, match=r"intent_mix: the table has no column 'sessions'"):
        charts.intent_mix(table)
    with pytest.raises(ValueError, match=r"pass the output of sl.tool_transitions\(con\)"):
        charts.tool_transitions(sl.intent_mix(db))


def test_a_wrong_input_type_is_rejected():
    with pytest.raises(ChartInputError, match=r"expected an Ibis table.*got list"):
        charts.cost_per_session([0.1, 0.2])


def test_empty_database_gives_no_charts_or_empty_ones():
    con = sl.connect()
    assert charts.report_charts(con) == {}
    empty = charts.report_charts(con, include_empty=True)
    assert list(empty) == list(charts.CHARTS)
    for chart in empty.values():
        assert charts.to_svg(chart).startswith("<svg")
        title = chart.to_dict()["title"]
        assert title["subtitle"] == "no data"


def test_render_svg_png_and_save_by_suffix(db, tmp_path):
    chart = charts.status_over_time(db.table("session_analysis"))
    assert charts.to_svg(chart).startswith("<svg")
    assert charts.to_png(chart, scale=1).startswith(PNG)
    written = {s: charts.save(chart, tmp_path / "out" / f"status{s}") for s in charts._SUFFIXES}
    assert written[".svg"].read_text().startswith("<svg")
    assert written[".png"].read_bytes().startswith(PNG)
    assert json.loads(written[".json"].read_text())["$schema"].endswith("vega/v6.json")
    html = written[".html"].read_text()
    assert "<script" in html and "vegaEmbed" in html
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", html)
    assert not re.search(r"<link[^>]+href=[\"']?(https?:)?//", html)


def test_save_and_png_reject_bad_options(tmp_path):
    empty = pd.DataFrame(columns=["intent", "sessions", "share", "mean_confidence"])
    chart = charts.intent_mix(empty)
    with pytest.raises(sl.ConfigError, match=r"use a \.svg, \.png, \.html or \.json suffix"):
        charts.save(chart, tmp_path / "chart.pdf")
    with pytest.raises(sl.ConfigError, match="scale: must be a positive number"):
        charts.to_png(chart, scale=0)


def _big_sessions(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    start = pd.Timestamp("2026-09-01") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), "s")
    return pd.DataFrame(
        {
            "session_id": [f"s{i}" for i in range(n)],
            "cost_usd": rng.lognormal(-6, 1, n),
            "start_time": start,
            "status": rng.choice(list(charts.STATUS_COLORS), n),
        }
    )


def test_more_than_5000_rows_render_through_vegafusion():
    big = _big_sessions(20_000)
    before = alt.data_transformers.active
    hist = charts.cost_per_session(big)
    assert charts.to_svg(hist).startswith("<svg")
    assert sum(r["__count"] for r in vega_rows(hist, "__count")) == 20_000
    status = charts.status_over_time(big)
    assert charts.to_png(status, scale=1).startswith(PNG)
    assert sum(r["__count"] for r in vega_rows(status, "__count")) == 20_000
    # Rendering left the user's Altair state alone: the plain spec still hits the row cap.
    assert alt.data_transformers.active == before
    with pytest.raises(alt.MaxRowsError):
        hist.to_dict()


def test_enable_offline_renders_big_charts_without_a_network():
    big = charts.cost_per_session(_big_sessions(6_000))
    try:
        charts.enable_offline()
        assert (alt.renderers.active, alt.data_transformers.active) == ("svg", "vegafusion")
        bundle = big._repr_mimebundle_()
        assert bundle["image/svg+xml"].startswith("<svg")
        charts.enable_offline(interactive=True)
        html = big._repr_mimebundle_()["text/html"]
        assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", html)
    finally:
        alt.renderers.enable("default")
        alt.data_transformers.enable("default")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(st.none(), st.floats(min_value=0, max_value=5, allow_nan=False)),
        min_size=1,
        max_size=40,
    )
)
def test_histogram_counts_every_priced_session(costs):
    frame = pd.DataFrame(
        {"session_id": [f"s{i}" for i in range(len(costs))], "cost_usd": costs}, dtype=object
    ).astype({"cost_usd": "float64"})
    priced = sum(c is not None for c in costs)
    chart = charts.cost_per_session(frame)
    assert len(rows(chart)) == priced
    if priced:
        assert sum(r["__count"] for r in vega_rows(chart, "__count")) == priced
