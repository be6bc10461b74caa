"""The self-contained ``report.html`` of :func:`sessionlens.report.export_report`.

This private module owns the page: inline CSS, inline SVG charts and the summary tables,
rendered with ``string.Template`` and ``html.escape`` (no template engine, no JavaScript, no
external URL, so it opens offline and from an e-mail attachment). It only formats what it is
given: the report module has already redacted every table it passes in. Every data value goes
through :func:`html.escape`; only SVG produced by the chart renderer is inlined as markup,
after :func:`inline_svg` removed its XML prolog and namespace URLs.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from string import Template
from typing import Any

import pyarrow as pa

__all__ = ["inline_svg", "render_report"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2933;
background:#f5f7fa}
header,main,footer{max-width:1100px;margin:0 auto;padding:16px 24px}
header{background:#1f2933;color:#fff;max-width:none}
header div{max-width:1100px;margin:0 auto}
h1{margin:0 0 4px;font-size:22px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#cbd2d9;font-size:12px}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.kpi{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:10px 16px;min-width:140px}
.kpi b{display:block;font-size:22px}.kpi span{color:#52606d;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#e4e7eb}td.n{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{background:#fff;border:1px solid #d9e2ec;border-radius:6px;margin:0;padding:8px;
overflow:auto;max-width:100%}
figcaption{font-weight:600;margin-bottom:4px}
.note{background:#fffbea;border:1px solid #f0b429;padding:8px 12px;border-radius:6px}
footer{color:#52606d;font-size:12px}
"""

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sessionlens report</title>
<style>$css</style>
</head>
<body>
<header><div>
<h1>sessionlens report</h1>
<div class="meta">$meta</div>
</div></header>
<main>
<p class="note">$redaction</p>
<div class="kpis">$kpis</div>
$sections
</main>
<footer>$footer</footer>
</body>
</html>
""")

_PROLOG = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*", re.IGNORECASE)
_XMLNS = re.compile(r"\s+xmlns(?::\w+)?=(\"[^\"]*\"|'[^']*')")


def inline_svg(svg: str) -> str:
    """SVG text ready to sit inside HTML5: no XML prolog, no ``xmlns`` namespace URLs.

    The HTML parser puts ``<svg>`` in the SVG namespace by itself, so the namespace
    attributes (the only URLs a rendered chart contains) are not needed offline.

    Examples
    --------
    >>> inline_svg('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="2"/>')
    '<svg width="2"/>'
    """
    return _XMLNS.sub("", _PROLOG.sub("", svg)).strip()


def fmt(value: Any, kind: str = "") -> str:
    """A cell value as escaped text: numbers rounded, shares as percent, cost as USD."""
    if value is None or (isinstance(value, float) and value != value):
        return "&ndash;"
    if kind == "pct" and isinstance(value, int | float):
        return f"{100 * value:.1f}%"
    if kind == "usd" and isinstance(value, int | float):
        return f"${value:,.4f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, datetime):
        return html.escape(value.strftime("%Y-%m-%d %H:%M"))
    if isinstance(value, date):
        return html.escape(value.isoformat())
    return html.escape(str(value))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """``columns`` are (key, heading, kind) with kind '', 'pct', 'usd' or 'text'."""
    if not rows:
        return "<p>No rows.</p>"
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, kind in columns:
            value = row.get(key)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cls = ' class="n"' if numeric and kind != "text" else ""
            cells.append(f"<td{cls}>{fmt(value, kind)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _kpi(label: str, value: str) -> str:
    return f'<div class="kpi"><b>{value}</b><span>{html.escape(label)}</span></div>'


def render_report(
    *,
    tables: Mapping[str, pa.Table],
    kpis: Mapping[str, Any],
    charts: Mapping[str, str],
    meta: Mapping[str, Any],
    files: Mapping[str, int],
    recent: int = 20,
) -> str:
    """The whole page as text.

    Parameters
    ----------
    tables : mapping of name to Arrow table
        The (already redacted) report tables, by file stem.
    kpis : mapping
        sessions, completed_share, mean_completion_rate, cost_usd, input_tokens, output_tokens.
    charts : mapping of name to SVG text
    meta : mapping
        generated_at, start, end, redacted, salt_fingerprint, sessionlens_version.
    files : mapping of file name to row count
    recent : int
        How many recent sessions the page lists.
    """
    rows = {name: t.to_pylist() for name, t in tables.items()}
    completion = {r["intent"]: r for r in rows.get("completion_by_intent", [])}
    intents = [
        {**r, **{k: v for k, v in completion.get(r["intent"], {}).items() if k != "sessions"}}
        for r in rows.get("intent_mix", [])
    ]
    drops = sorted(
        (r for r in rows.get("dropoff_funnel", []) if r["dropped_here"]),
        key=lambda r: (-r["dropped_here"], str(r["intent"]), r["step_index"]),
    )[:10]
    by_model: dict[str, dict[str, Any]] = {}
    for r in rows.get("daily_costs", []):
        m = by_model.setdefault(
            str(r["model"]), {"model": r["model"], "observations": 0, "cost_usd": None}
        )
        m["observations"] += r["observations"]
        if r["cost_usd"] is not None:
            m["cost_usd"] = (m["cost_usd"] or 0.0) + r["cost_usd"]
    sections = []
    if charts:
        figures = "".join(
            f"<figure><figcaption>{html.escape(name.replace('_', ' '))}</figcaption>"
            f"{inline_svg(svg)}</figure>"
            for name, svg in charts.items()
        )
        sections.append(_section("Charts", f'<div class="charts">{figures}</div>'))
    sections += [
        _section(
            "Intents",
            _table(
                intents,
                [
                    ("intent", "intent", "text"),
                    ("sessions", "sessions", ""),
                    ("share", "share", "pct"),
                    ("completed_share", "completed", "pct"),
                    ("mean_completion_rate", "mean completion", "pct"),
                    ("mean_confidence", "mean confidence", ""),
                ],
            ),
        ),
        _section(
            "Where sessions stop (drop-off steps)",
            _table(
                drops,
                [
                    ("intent", "intent", "text"),
                    ("step", "step", "text"),
                    ("dropped_here", "stopped here", ""),
                    ("sessions", "sessions of intent", ""),
                    ("reached_share", "reached", "pct"),
                ],
            ),
        ),
        _section(
            "Top tool sequences",
            _table(
                rows.get("sequence_variants", [])[:10],
                [
                    ("variant", "variant", "text"),
                    ("sessions", "sessions", ""),
                    ("share", "share", "pct"),
                    ("mean_completion_rate", "mean completion", "pct"),
                ],
            ),
        ),
        _section(
            "Cost by model",
            _table(
                sorted(by_model.values(), key=lambda r: -(r["cost_usd"] or 0.0)),
                [
                    ("model", "model", "text"),
                    ("observations", "LLM calls", ""),
                    ("cost_usd", "cost", "usd"),
                ],
            ),
        ),
        _section(
            "Recent sessions",
            _table(
                rows.get("recent_sessions", [])[:recent],
                [
                    ("start_time", "start (UTC)", "text"),
                    ("session_id", "session", "text"),
                    ("caller_intent_type", "intent", "text"),
                    ("status", "status", "text"),
                    ("completion_rate", "completion", "pct"),
                    ("drop_off_step", "drop-off", "text"),
                    ("cost_usd", "cost", "usd"),
                    ("caller_intent_summary", "summary", "text"),
                ],
            ),
        ),
    ]
    kpi_html = "".join(
        [
            _kpi("sessions", fmt(kpis.get("sessions"))),
            _kpi("completed", fmt(kpis.get("completed_share"), "pct")),
            _kpi("mean completion rate", fmt(kpis.get("mean_completion_rate"), "pct")),
            _kpi("cost", fmt(kpis.get("cost_usd"), "usd")),
            _kpi("input tokens", fmt(kpis.get("input_tokens"))),
            _kpi("output tokens", fmt(kpis.get("output_tokens"))),
        ]
    )
    if meta.get("redacted"):
        redaction = (
            "Phone numbers, e-mail addresses and known personal names are replaced by stable "
            f"tokens (salt fingerprint {fmt(meta.get('salt_fingerprint'))})."
        )
    else:
        redaction = "Not redacted: this report contains phone numbers and personal names."
    listing = ", ".join(
        f'<a href="{html.escape(name)}">{html.escape(name)}</a> ({n:,} rows)'
        for name, n in files.items()
    )
    return _PAGE.substitute(
        css=_CSS,
        meta=(
            f"sessions from {fmt(meta.get('start'))} to {fmt(meta.get('end'))} UTC "
            f"&middot; generated {fmt(meta.get('generated_at'))} UTC "
            f"&middot; sessionlens {fmt(meta.get('sessionlens_version'))}"
        ),
        redaction=redaction,
        kpis=kpi_html,
        sections="\n".join(sections),
        footer=f"Files: {listing}, manifest.json.",
    )
