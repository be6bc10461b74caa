"""The nine chart builders behind :mod:`sessionlens.charts` (one of the two Altair modules).

Each builder takes the table a public analysis returns, keeps the columns it draws (through
``_chart_data.frame``, which raises ``ChartInputError`` for a wrong table) and returns an
Altair chart whose data are those rows unchanged, plus at most a label column. Charts share
one look: a title and subtitle, axis titles in words, a tooltip on every mark, bars sorted by
their value, fixed colours for session statuses, and ``utc`` time units (the tables hold UTC).

An empty table gives a chart with no marks and the subtitle "no data" rather than an error,
so a notebook cell or report never fails because one question has no answer yet.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from ._chart_data import explode_calls, frame, utc
from .errors import ConfigError

__all__ = [
    "completion_by_intent",
    "cost_over_time",
    "cost_per_session",
    "dropoff_funnel",
    "intent_mix",
    "sequence_variants",
    "status_over_time",
    "tool_latency",
    "tool_transitions",
]

#: Session statuses in display order with their colours (completed green ... in_progress grey).
STATUS_COLORS = {
    "completed": "#2ca02c",
    "abandoned": "#ff7f0e",
    "failed": "#d62728",
    "in_progress": "#7f7f7f",
}
_WIDTH = 420
_PCT = ".1%"
_USD = "$,.4f"


def _title(text: str, subtitle: str, df: pd.DataFrame) -> alt.Title:
    return alt.Title(text, subtitle=subtitle if len(df) else "no data", anchor="start")


def intent_mix(table: Any) -> alt.Chart:
    """Sessions per caller intent, most frequent first (from ``sl.intent_mix(con)``).

    Examples
    --------
    >>> import pandas as pd
    >>> mix = pd.DataFrame({"intent": ["booking", "other"], "sessions": [9, 1],
    ...                     "share": [0.9, 0.1], "mean_confidence": [0.8, 0.4]})
    >>> spec = intent_mix(mix).to_dict()
    >>> spec["mark"]["type"], spec["encoding"]["x"]["field"], spec["encoding"]["y"]["sort"]
    ('bar', 'sessions', '-x')
    """
    cols = ["intent", "sessions", "share", "mean_confidence"]
    df = frame(table, chart="intent_mix", columns=cols, source="sl.intent_mix(con)")
    return (
        alt.Chart(df, title=_title("Caller intent mix", "Sessions per classified intent", df))
        .mark_bar()
        .encode(
            x=alt.X("sessions:Q", title="Sessions"),
            y=alt.Y("intent:N", title="Intent", sort="-x"),
            tooltip=[
                alt.Tooltip("intent:N", title="Intent"),
                alt.Tooltip("sessions:Q", title="Sessions"),
                alt.Tooltip("share:Q", title="Share", format=_PCT),
                alt.Tooltip("mean_confidence:Q", title="Mean confidence", format=".2f"),
            ],
        )
        .properties(width=_WIDTH)
    )


def completion_by_intent(table: Any) -> alt.Chart:
    """Share of sessions completed per intent (from ``sl.completion_by_intent(con)``).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"intent": ["booking"], "sessions": [4], "completed": [3],
    ...                   "completed_share": [0.75], "mean_completion_rate": [0.8],
    ...                   "mean_goal_completion": [0.7]})
    >>> completion_by_intent(t).to_dict()["encoding"]["x"]["axis"]
    {'format': '%'}
    """
    cols = ["intent", "sessions", "completed", "completed_share", "mean_completion_rate"]
    cols.append("mean_goal_completion")
    df = frame(
        table, chart="completion_by_intent", columns=cols, source="sl.completion_by_intent(con)"
    )
    title = _title("Completion by intent", "Share of sessions that completed their flow", df)
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            x=alt.X(
                "completed_share:Q",
                title="Completed sessions",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            y=alt.Y("intent:N", title="Intent", sort="-x"),
            tooltip=[
                alt.Tooltip("intent:N", title="Intent"),
                alt.Tooltip("sessions:Q", title="Sessions"),
                alt.Tooltip("completed:Q", title="Completed"),
                alt.Tooltip("completed_share:Q", title="Completed share", format=_PCT),
                alt.Tooltip("mean_completion_rate:Q", title="Mean completion", format=_PCT),
                alt.Tooltip("mean_goal_completion:Q", title="Mean goals met", format=_PCT),
            ],
        )
        .properties(width=_WIDTH)
    )


def dropoff_funnel(table: Any) -> alt.FacetChart:
    """Per intent, the share of sessions reaching each flow step (from ``sl.dropoff_funnel``).

    One row of bars per intent (a facet with its own step axis), steps in flow order; the
    tooltip gives how many sessions stopped at the step.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"intent": ["info_lookup"], "step_index": [0],
    ...                   "step": ["get_clinic_info"], "reached": [5], "dropped_here": [1],
    ...                   "sessions": [6], "reached_share": [5 / 6]})
    >>> spec = dropoff_funnel(f).to_dict()
    >>> spec["facet"]["row"]["field"], spec["spec"]["encoding"]["y"]["field"]
    ('intent', 'step_label')
    """
    cols = ["intent", "step_index", "step", "reached", "dropped_here", "sessions"]
    cols.append("reached_share")
    df = frame(table, chart="dropoff_funnel", columns=cols, source="sl.dropoff_funnel(con)")
    # The numbered label keeps flow order readable even where two intents share a step name.
    labels = [f"{i + 1}. {s}" for i, s in zip(df.step_index, df.step, strict=True)]
    df = df.assign(step_label=labels)
    base = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X(
                "reached_share:Q",
                title="Sessions reaching the step",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            y=alt.Y("step_label:N", title=None, sort=alt.EncodingSortField("step_index")),
            tooltip=[
                alt.Tooltip("intent:N", title="Intent"),
                alt.Tooltip("step:N", title="Step"),
                alt.Tooltip("reached:Q", title="Reached"),
                alt.Tooltip("dropped_here:Q", title="Stopped here"),
                alt.Tooltip("sessions:Q", title="Sessions of the intent"),
                alt.Tooltip("reached_share:Q", title="Reached share", format=_PCT),
            ],
        )
        .properties(width=_WIDTH)
    )
    title = _title("Drop-off funnel", "Share of each intent's sessions reaching each step", df)
    return base.facet(
        row=alt.Row("intent:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        title=title,
    ).resolve_scale(y="independent")


def sequence_variants(table: Any, *, top: int = 10) -> alt.Chart:
    """The ``top`` most frequent tool sequences (from ``sl.sequence_variants(con)``).

    Bars are coloured by the variant's mean completion rate when the table has one.

    Raises
    ------
    ConfigError
        ``top`` is not a positive integer.

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"variant": ["a > b", "a", "b"], "sessions": [5, 3, 1],
    ...                   "share": [5 / 9, 3 / 9, 1 / 9], "mean_completion_rate": [1, 0.5, 0]})
    >>> [r["variant"] for r in sequence_variants(v, top=2).to_dict()["datasets"].popitem()[1]]
    ['a > b', 'a']
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError("top", f"must be a positive integer, got {top!r}")
    cols = ["variant", "sessions", "share", "mean_completion_rate"]
    df = frame(table, chart="sequence_variants", columns=cols, source="sl.sequence_variants(con)")
    df = df.sort_values(["sessions", "variant"], ascending=[False, True], kind="stable")
    df = df.head(top).reset_index(drop=True)
    title = _title(f"Top {top} tool sequences", "Sessions per distinct sequence of tool calls", df)
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            x=alt.X("sessions:Q", title="Sessions"),
            y=alt.Y("variant:N", title=None, sort="-x", axis=alt.Axis(labelLimit=480)),
            color=alt.Color(
                "mean_completion_rate:Q",
                title="Mean completion",
                scale=alt.Scale(domain=[0, 1], scheme="redyellowgreen"),
                legend=alt.Legend(format="%"),
            ),
            tooltip=[
                alt.Tooltip("variant:N", title="Sequence"),
                alt.Tooltip("sessions:Q", title="Sessions"),
                alt.Tooltip("share:Q", title="Share", format=_PCT),
                alt.Tooltip("mean_completion_rate:Q", title="Mean completion", format=_PCT),
            ],
        )
        .properties(width=_WIDTH)
    )


def tool_transitions(table: Any) -> alt.LayerChart:
    """Heatmap of directly-follows transitions between tools (from ``sl.tool_transitions``).

    Rows are the tool called first (``(start)`` on top), columns the next one (``(end)``
    last); each cell shows its count.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"from_tool": ["(start)", "a"], "to_tool": ["a", "(end)"],
    ...                   "transitions": [3, 3], "sessions": [3, 3],
    ...                   "median_latency_seconds": [None, None]})
    >>> spec = tool_transitions(t).to_dict()
    >>> [layer["mark"]["type"] for layer in spec["layer"]]
    ['rect', 'text']
    >>> spec["layer"][0]["encoding"]["y"]["sort"]
    ['(start)', 'a']
    """
    cols = ["from_tool", "to_tool", "transitions", "sessions", "median_latency_seconds"]
    df = frame(table, chart="tool_transitions", columns=cols, source="sl.tool_transitions(con)")
    tools = sorted((set(df.from_tool) | set(df.to_tool)) - {"(start)", "(end)"})
    rows = ["(start)", *tools] if "(start)" in set(df.from_tool) else tools
    columns = [*tools, "(end)"] if "(end)" in set(df.to_tool) else tools
    title = _title("Tool transitions", "How often one tool call directly follows another", df)
    base = alt.Chart(df).encode(
        x=alt.X("to_tool:N", title="Next tool", sort=columns, axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("from_tool:N", title="Tool", sort=rows),
        tooltip=[
            alt.Tooltip("from_tool:N", title="From"),
            alt.Tooltip("to_tool:N", title="To"),
            alt.Tooltip("transitions:Q", title="Transitions"),
            alt.Tooltip("sessions:Q", title="Sessions"),
            alt.Tooltip("median_latency_seconds:Q", title="Median gap (s)", format=".2f"),
        ],
    )
    cells = base.mark_rect().encode(
        color=alt.Color("transitions:Q", title="Transitions", scale=alt.Scale(scheme="blues"))
    )
    # White text on the darker half of the colour scale, black on the lighter half.
    dark = alt.datum.transitions > float(df.transitions.max() if len(df) else 0) / 2
    counts = base.mark_text(fontSize=10).encode(
        text=alt.Text("transitions:Q"),
        color=alt.condition(dark, alt.value("white"), alt.value("black")),
    )
    return alt.LayerChart(layer=[cells, counts], title=title)


def cost_over_time(table: Any) -> alt.Chart:
    """Daily spend stacked by model (from ``sl.cost_by(con, by=["day", "model"])``).

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame({"day": pd.to_datetime(["2026-09-01"]), "model": ["gpt-4.1"],
    ...                   "cost_usd": [0.5], "observations": [3]})
    >>> enc = cost_over_time(c).to_dict()["encoding"]
    >>> enc["x"]["timeUnit"], enc["y"]["aggregate"], enc["color"]["field"]
    ('utcyearmonthdate', 'sum', 'model')
    """
    cols = ["day", "model", "cost_usd", "observations"]
    df = frame(
        table, chart="cost_over_time", columns=cols, source='sl.cost_by(con, by=["day", "model"])'
    )
    df = df.assign(day=utc(df["day"]), model=df["model"].fillna("(no model)"))
    title = _title("Cost over time", "Spend per day (UTC), stacked by model", df)
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            x=alt.X("day:T", timeUnit="utcyearmonthdate", title="Day (UTC)"),
            y=alt.Y("cost_usd:Q", aggregate="sum", title="Cost (USD)"),
            color=alt.Color("model:N", title="Model"),
            tooltip=[
                alt.Tooltip("day:T", timeUnit="utcyearmonthdate", title="Day"),
                alt.Tooltip("model:N", title="Model"),
                alt.Tooltip("cost_usd:Q", aggregate="sum", title="Cost (USD)", format=_USD),
                alt.Tooltip("observations:Q", aggregate="sum", title="Observations"),
            ],
        )
        .properties(width=_WIDTH)
    )


def cost_per_session(table: Any, *, maxbins: int = 40) -> alt.Chart:
    """Histogram of session cost (from ``session_analysis`` or ``sl.session_costs(con)``).

    Sessions without a cost (nothing priced) are left out; the subtitle says how many.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"session_id": ["a", "b", "c"], "cost_usd": [0.01, 0.02, None]})
    >>> chart = cost_per_session(s)
    >>> chart.to_dict()["encoding"]["x"]["bin"], chart.title.subtitle
    ({'maxbins': 40}, '2 sessions; 1 without a cost left out')
    """
    df = frame(
        table,
        chart="cost_per_session",
        columns=["session_id", "cost_usd"],
        source='sl.session_costs(con) or con.table("session_analysis")',
    )
    priced = df[df["cost_usd"].notna()].reset_index(drop=True)
    unpriced = len(df) - len(priced)
    note = f"{len(priced)} sessions" + (f"; {unpriced} without a cost left out" if unpriced else "")
    return (
        alt.Chart(priced, title=_title("Cost per session", note, priced))
        .mark_bar()
        .encode(
            x=alt.X("cost_usd:Q", bin=alt.Bin(maxbins=maxbins), title="Session cost (USD)"),
            y=alt.Y("count():Q", title="Sessions"),
            tooltip=[
                alt.Tooltip("cost_usd:Q", bin=alt.Bin(maxbins=maxbins), title="Cost (USD)"),
                alt.Tooltip("count():Q", title="Sessions"),
            ],
        )
        .properties(width=_WIDTH)
    )


def tool_latency(table: Any) -> alt.Chart:
    """Call duration per tool as boxplots, slowest median first (from ``sl.tool_sequences``).

    ``table`` is ``tool_sequences`` output (a ``calls`` list per session) or a flat table
    with ``tool`` and ``duration_ms`` columns. Calls without an end time are left out.

    Examples
    --------
    >>> import pandas as pd
    >>> flat = pd.DataFrame({"tool": ["a", "a", "b"], "duration_ms": [100, 300, 500]})
    >>> spec = tool_latency(flat).to_dict()
    >>> spec["mark"]["type"], spec["encoding"]["y"]["sort"]
    ('boxplot', ['b', 'a'])
    """
    df = explode_calls(table, chart="tool_latency", source="sl.tool_sequences(con)")
    title = _title("Tool latency", "Duration of each tool call", df)
    # An explicit order: Vega-Lite's boxplot does not apply a sort by the median op.
    medians = df.groupby("tool")["duration_seconds"].median()
    slowest = [str(t) for t in medians.sort_values(ascending=False, kind="stable").index]
    return (
        alt.Chart(df, title=title)
        .mark_boxplot(extent="min-max")
        .encode(
            x=alt.X("duration_seconds:Q", title="Call duration (s)"),
            y=alt.Y("tool:N", title="Tool", sort=slowest),
        )
        .properties(width=_WIDTH)
    )


def status_over_time(table: Any) -> alt.Chart:
    """Sessions started per day (UTC) stacked by status (from ``session_analysis`` rows).

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"session_id": ["a", "b"], "status": ["completed", "failed"],
    ...                   "start_time": pd.to_datetime(["2026-09-01 08:00", "2026-09-01 09:00"])})
    >>> enc = status_over_time(s).to_dict()["encoding"]
    >>> enc["color"]["scale"]["domain"]
    ['completed', 'abandoned', 'failed', 'in_progress']
    """
    df = frame(
        table,
        chart="status_over_time",
        columns=["session_id", "start_time", "status"],
        source='con.table("session_analysis") or sl.find_sessions(con)',
    )
    df = df.assign(start_time=utc(df["start_time"]))
    title = _title("Sessions by status", "Sessions started per day (UTC)", df)
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            x=alt.X("start_time:T", timeUnit="utcyearmonthdate", title="Day (UTC)"),
            y=alt.Y("count():Q", title="Sessions"),
            color=alt.Color(
                "status:N",
                title="Status",
                scale=alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values())),
            ),
            order=alt.Order("status:N"),
            tooltip=[
                alt.Tooltip("start_time:T", timeUnit="utcyearmonthdate", title="Day"),
                alt.Tooltip("status:N", title="Status"),
                alt.Tooltip("count():Q", title="Sessions"),
            ],
        )
        .properties(width=_WIDTH)
    )
