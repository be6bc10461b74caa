"""Altair charts of the analyses, rendered offline (SVG, PNG, self-contained HTML).

This module (with its helper ``_chart_specs``) is the only place sessionlens imports Altair.
Chart functions take the table a public analysis returns (Ibis table, DuckDB relation,
pyarrow Table or pandas DataFrame) and return an Altair chart; :func:`report_charts` builds
all of them from a database. :func:`to_svg`, :func:`to_png` and :func:`save` render through
vl-convert, which bundles Vega, so nothing is fetched from a CDN.

Large data: Altair refuses to embed more than 5,000 rows. The rendering functions here run
inside ``alt.data_transformers.enable("vegafusion")`` as a context manager: VegaFusion
evaluates the chart's transforms (bins, aggregates, time units) in Python and hands vl-convert
a Vega spec holding only the aggregated rows. The user's data transformer is restored on exit,
so calling these functions changes no global Altair state. Only :func:`enable_offline`, which
a notebook calls on purpose, switches the renderer and the transformer globally.

Chart functions never raise for an empty table: the chart has no marks and the subtitle "no
data". :func:`report_charts` leaves such charts out unless ``include_empty=True``.

Examples
--------
>>> import sessionlens as sl
>>> con = sl.connect()
>>> _ = sl.load(con, sl.datasets.sample_dir())
>>> _ = sl.analyze_sessions(con, progress=False)
>>> figures = report_charts(con)
>>> list(figures) == list(CHARTS)
True
>>> to_svg(figures["intent_mix"]).startswith("<svg")
True
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import altair as alt
import vl_convert as vlc

from ._chart_specs import (
    STATUS_COLORS,
    completion_by_intent,
    cost_over_time,
    cost_per_session,
    dropoff_funnel,
    intent_mix,
    sequence_variants,
    status_over_time,
    tool_latency,
    tool_transitions,
)
from .analysis._ibis import backend
from .analysis.cost import cost_by
from .analysis.sequences import dropoff_funnel as _dropoff_funnel
from .analysis.sequences import sequence_variants as _sequence_variants
from .analysis.sequences import tool_sequences as _tool_sequences
from .analysis.sequences import tool_transitions as _tool_transitions
from .analysis.stats import completion_by_intent as _completion_by_intent
from .analysis.stats import intent_mix as _intent_mix
from .errors import ConfigError

__all__ = [
    "CHARTS",
    "STATUS_COLORS",
    "completion_by_intent",
    "cost_over_time",
    "cost_per_session",
    "dropoff_funnel",
    "enable_offline",
    "intent_mix",
    "report_charts",
    "save",
    "sequence_variants",
    "status_over_time",
    "to_png",
    "to_svg",
    "to_vega",
    "tool_latency",
    "tool_transitions",
]


def _session_rows(con: Any) -> Any:
    sa = backend(con).table("session_analysis")
    return sa.select("session_id", "start_time", "status", "cost_usd")


#: Name -> (the analysis that feeds the chart, the chart function), in report order.
CHARTS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], alt.TopLevelMixin]]] = {
    "intent_mix": (_intent_mix, intent_mix),
    "completion_by_intent": (_completion_by_intent, completion_by_intent),
    "status_over_time": (_session_rows, status_over_time),
    "dropoff_funnel": (_dropoff_funnel, dropoff_funnel),
    "sequence_variants": (_sequence_variants, sequence_variants),
    "tool_transitions": (_tool_transitions, tool_transitions),
    "tool_latency": (_tool_sequences, tool_latency),
    "cost_over_time": (lambda con: cost_by(con, by=["day", "model"]), cost_over_time),
    "cost_per_session": (_session_rows, cost_per_session),
}


def report_charts(con: Any, *, include_empty: bool = False) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the analysed database, keyed by the stable names of :data:`CHARTS`.

    Reads ``session_analysis`` (run :func:`sessionlens.analyze_sessions` first) and the
    canonical tables through the public analyses; writes nothing.

    Parameters
    ----------
    con : DuckDB connection or Ibis backend
    include_empty : bool
        Keep charts whose input has no rows (drawn empty, subtitle "no data"). By default
        they are left out, so a report shows only charts with something to see.

    Returns
    -------
    dict of str to Altair chart
        In :data:`CHARTS` order.

    Examples
    --------
    >>> import sessionlens as sl
    >>> report_charts(sl.connect())
    {}
    >>> len(report_charts(sl.connect(), include_empty=True)) == len(CHARTS)
    True
    """
    out: dict[str, alt.TopLevelMixin] = {}
    for name, (analysis, draw) in CHARTS.items():
        table = analysis(con).to_pyarrow()
        if table.num_rows or include_empty:
            out[name] = draw(table)
    return out


def to_vega(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The chart as a Vega spec with transforms pre-evaluated by VegaFusion (any row count).

    Examples
    --------
    >>> import pandas as pd
    >>> mix = pd.DataFrame({"intent": ["booking"], "sessions": [3], "share": [1.0],
    ...                     "mean_confidence": [0.9]})
    >>> to_vega(intent_mix(mix))["$schema"]
    'https://vega.github.io/schema/vega/v6.json'
    """
    with alt.data_transformers.enable("vegafusion"):
        spec: dict[str, Any] = chart.to_dict(format="vega")
    return spec


def to_svg(chart: alt.TopLevelMixin) -> str:
    """Render ``chart`` to an SVG document, offline.

    Examples
    --------
    >>> import pandas as pd
    >>> flat = pd.DataFrame({"tool": ["a", "b"], "duration_ms": [120, 80]})
    >>> to_svg(tool_latency(flat))[:4]
    '<svg'
    """
    svg: str = vlc.vega_to_svg(to_vega(chart))
    return svg


def to_png(chart: alt.TopLevelMixin, *, scale: float = 2) -> bytes:
    """Render ``chart`` to PNG bytes, offline; ``scale`` 2 suits high-density screens.

    Raises
    ------
    ConfigError
        ``scale`` is not a positive number.

    Examples
    --------
    >>> import pandas as pd
    >>> flat = pd.DataFrame({"tool": ["a", "b"], "duration_ms": [120, 80]})
    >>> to_png(tool_latency(flat), scale=1)[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ConfigError("scale", f"must be a positive number, got {scale!r}")
    png: bytes = vlc.vega_to_png(to_vega(chart), scale=float(scale))
    return png


_SUFFIXES = (".svg", ".png", ".html", ".json")


def save(chart: alt.TopLevelMixin, path: str | Path) -> Path:
    """Write ``chart`` to ``path``, the format chosen by its suffix; return the path.

    ``.svg`` and ``.png`` are images; ``.html`` is one self-contained page with Vega bundled
    in (no CDN, opens offline, tooltips work); ``.json`` is the pre-evaluated Vega spec (see
    :func:`to_vega`). Parent folders are created.

    Raises
    ------
    ConfigError
        The suffix is none of ``.svg``, ``.png``, ``.html``, ``.json``.

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> flat = pd.DataFrame({"tool": ["a"], "duration_ms": [120]})
    >>> save(tool_latency(flat), Path(tempfile.mkdtemp()) / "latency.svg").suffix
    '.svg'
    >>> save(tool_latency(flat), "latency.pdf")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: path: cannot write 'latency.pdf': use a .svg, .png, ...
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(
            "path", f"cannot write {str(path)!r}: use a .svg, .png, .html or .json suffix"
        )
    spec = to_vega(chart)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        target.write_bytes(vlc.vega_to_png(spec, scale=2.0))
    elif suffix == ".svg":
        target.write_text(vlc.vega_to_svg(spec), encoding="utf-8")
    elif suffix == ".html":
        target.write_text(vlc.vega_to_html(spec, bundle=True), encoding="utf-8")
    else:
        target.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return target


def enable_offline(*, interactive: bool = False) -> None:
    """Show charts in Jupyter without a network: call once at the top of a notebook.

    Switches Altair's data transformer to ``"vegafusion"`` (no 5,000-row limit) and its
    renderer, globally for the session:

    - ``interactive=False`` (default): the ``"svg"`` renderer. vl-convert draws each chart
      to SVG in the kernel; it shows in JupyterLab, classic Notebook, VS Code and on GitHub
      with no JavaScript, but has no tooltips.
    - ``interactive=True``: the ``"html"`` renderer with Altair's ``"inline"`` template, which
      embeds vl-convert's Vega bundle (about 0.9 MB) in each output. Tooltips work; JupyterLab
      runs the output's script only in a trusted notebook (one whose outputs you made).

    Altair's ``"mimetype"`` renderer is not used: it emits Vega-Lite 6, which JupyterLab 4's
    built-in Vega extension (Vega 5, Vega-Lite up to 5) does not render. ``"jupyter"``
    needs ``anywidget``, which sessionlens does not install.

    Examples
    --------
    >>> import altair as alt
    >>> enable_offline()
    >>> alt.renderers.active, alt.data_transformers.active
    ('svg', 'vegafusion')
    >>> _ = alt.renderers.enable("default"), alt.data_transformers.enable("default")
    """
    alt.data_transformers.enable("vegafusion")
    if interactive:
        alt.renderers.enable("html", template="inline")
    else:
        alt.renderers.enable("svg")
