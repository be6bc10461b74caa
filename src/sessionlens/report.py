"""``export_report``: Parquet tables, a manifest, charts and a self-contained HTML page.

This module owns the report directory (see ``docs/report.md``). It reads only the analyses'
public functions and the ``session_analysis`` cache, materialises each table once as Arrow,
redacts it (on by default, :mod:`sessionlens.redact`), and writes from those redacted tables
only, so the Parquet files, the HTML page and the manifest cannot disagree about what was
redacted. Steps, in order: tables -> Parquet, charts -> SVG/PNG, HTML, and ``manifest.json``
last (a directory with a manifest is a finished report).

Writing into an existing directory replaces this module's own files (each written to a
temporary name and renamed over the old one) and leaves every other file alone.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ._report_html import render_report
from .analysis.cost import cost_by
from .analysis.sequences import dropoff_funnel, sequence_variants, tool_transitions
from .analysis.stats import (
    RECENT_LIMIT_MAX,
    completion_by_intent,
    intent_mix,
    recent_sessions,
    session_stats,
)
from .cache import ANALYZER_VERSION
from .errors import ConfigError, NotAnalyzedError
from .redact import DEFAULT_SALT, Redactor, known_names, redact_table, salt_fingerprint
from .store import schema_version

__all__ = ["REPORT_TABLES", "ReportResult", "export_report"]


def _session_analysis(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return con.execute(
        "SELECT * FROM session_analysis ORDER BY start_time, session_id"
    ).to_arrow_table()


#: File stem -> (what it holds, how it is computed). Every table becomes ``<stem>.parquet``.
REPORT_TABLES: dict[str, tuple[str, Callable[[duckdb.DuckDBPyConnection], Any]]] = {
    "session_stats": (
        "sessions, completion, tokens, cost per day, intent and status (sl.session_stats)",
        lambda con: session_stats(con, by=["day", "intent", "status"]),
    ),
    "recent_sessions": (
        f"the {RECENT_LIMIT_MAX} most recent sessions (sl.recent_sessions)",
        lambda con: recent_sessions(con, limit=RECENT_LIMIT_MAX),
    ),
    "intent_mix": ("sessions per caller intent (sl.intent_mix)", intent_mix),
    "completion_by_intent": (
        "completion per intent (sl.completion_by_intent)",
        completion_by_intent,
    ),
    "dropoff_funnel": (
        "per intent and flow step, reached / stopped (sl.dropoff_funnel)",
        dropoff_funnel,
    ),
    "sequence_variants": ("distinct tool sequences (sl.sequence_variants)", sequence_variants),
    "tool_transitions": ("directly-follows tool pairs (sl.tool_transitions)", tool_transitions),
    "daily_costs": (
        "tokens and cost per day and model (sl.cost_by(by=['day', 'model']))",
        lambda con: cost_by(con, by=["day", "model"]),
    ),
    "session_analysis": ("the session_analysis table, one row per session", _session_analysis),
}


@dataclass
class ReportResult:
    """What :func:`export_report` wrote.

    Attributes
    ----------
    out_dir : Path
    files : list of Path
        Every file written (Parquet, charts, HTML, manifest).
    manifest_path, html_path : Path
    row_counts : dict of str to int
        Rows per Parquet file name (as in the manifest).
    redacted : bool
    charts : list of str
        Names of the charts drawn (empty when charts were off or unavailable).
    """

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    manifest_path: Path = Path()
    html_path: Path = Path()
    row_counts: dict[str, int] = field(default_factory=dict)
    redacted: bool = True
    charts: list[str] = field(default_factory=list)


def _database_name(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute(
        "SELECT coalesce(path, database_name) FROM duckdb_databases() "
        "WHERE database_name = current_database()"
    ).fetchone()
    return str(row[0]) if row else "the database"


def _check_analysed(con: duckdb.DuckDBPyConnection) -> int:
    where = _database_name(con)
    exists = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_name = 'session_analysis'"
    ).fetchone()
    count = con.execute("SELECT count(*) FROM session_analysis").fetchone() if exists else None
    if not count or not count[0]:
        raise NotAnalyzedError(where)
    return int(count[0])


def _write_atomic(path: Path, data: str | bytes | pa.Table) -> Path:
    """Write to a hidden temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, pa.Table):
        pq.write_table(data, tmp)
    elif isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


_SVG_TEXT = re.compile(r"(>)([^<]+)(<)|(aria-label=\")([^\"]*)(\")")


def _redact_svg(svg: str, redactor: Redactor) -> str:
    """Redact an SVG's text nodes and aria-labels, leaving path data and coordinates alone.

    A piece without PII is kept byte for byte, so an unchanged SVG means nothing was redacted.
    """

    def sub(m: re.Match[str]) -> str:
        head, text, tail = (
            (m.group(1), m.group(2), m.group(3))
            if m.group(2) is not None
            else (m.group(4), m.group(5), m.group(6))
        )
        plain = html.unescape(text)
        clean = redactor.text(plain)
        return m.group(0) if clean == plain else head + html.escape(clean) + tail

    return _SVG_TEXT.sub(sub, svg)


def _write_charts(
    con: duckdb.DuckDBPyConnection, out_dir: Path, *, redactor: Redactor | None
) -> dict[str, str]:
    """Draw every report chart into ``out_dir/charts`` as SVG and PNG; return name -> SVG."""
    # Imported here so that Altair loads only when a report draws charts.
    from . import charts

    chart_dir = out_dir / "charts"
    chart_dir.mkdir(exist_ok=True)
    svgs: dict[str, str] = {}
    for name, chart in charts.report_charts(con).items():
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "chart"
        svg = charts.to_svg(chart)
        clean = _redact_svg(svg, redactor) if redactor is not None else svg
        if clean == svg:
            png = charts.to_png(chart)
        else:
            # A chart showed a redacted value: draw the PNG from the redacted SVG instead.
            import vl_convert

            png = vl_convert.svg_to_png(clean, scale=2)  # the scale charts.to_png uses
        _write_atomic(chart_dir / f"{stem}.svg", clean)
        _write_atomic(chart_dir / f"{stem}.png", png)
        svgs[stem] = clean
    return svgs


def _kpis(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = con.execute(
        "SELECT count(*), avg(CAST(status = 'completed' AS DOUBLE)), avg(completion_rate), "
        "sum(cost_usd), sum(input_tokens), sum(output_tokens), min(start_time), max(end_time), "
        "list(DISTINCT analyzer_version ORDER BY analyzer_version) FROM session_analysis"
    ).fetchone()
    assert row is not None  # an aggregate always returns one row
    keys = [
        "sessions",
        "completed_share",
        "mean_completion_rate",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "start",
        "end",
        "analyzer_versions",
    ]
    return dict(zip(keys, row, strict=True))


def export_report(
    con: duckdb.DuckDBPyConnection,
    out_dir: str | Path,
    *,
    redact: bool = True,
    salt: str | None = None,
    names: Iterable[str] = (),
    region: str = "US",
    charts: bool = True,
) -> ReportResult:
    """Write the report of an analysed database into ``out_dir``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A sessionlens database (read-only is enough) whose ``session_analysis`` is filled.
    out_dir : str or Path
        Created when missing; this function's own files in it are replaced, others kept.
    redact : bool
        Replace phone numbers, e-mail addresses and personal names by stable tokens in every
        file (default). ``False`` writes them as they are: the report then holds PII.
    salt : str, optional
        HMAC key of the tokens; default :data:`sessionlens.redact.DEFAULT_SALT` (public).
        The manifest records a fingerprint of it, never the salt.
    names : iterable of str
        Personal names to redact besides those found in booking details.
    region : str
        Region of phone numbers written without a country code.
    charts : bool
        Draw the charts (``charts/*.svg``, ``charts/*.png``, inline in the HTML).

    Returns
    -------
    ReportResult

    Raises
    ------
    NotAnalyzedError
        ``session_analysis`` is empty: run ``sessionlens analyze`` first.
    ConfigError
        ``out_dir`` exists and is not a directory.

    Examples
    --------
    >>> import tempfile, sessionlens as sl
    >>> con = sl.connect()
    >>> _ = sl.load(con, sl.datasets.sample_dir())
    >>> _ = sl.analyze_sessions(con)
    >>> result = export_report(con, tempfile.mkdtemp(), charts=False)
    >>> result.row_counts["session_analysis.parquet"] == con.table("session_analysis").shape[0]
    True
    """
    from . import __version__  # here, not at import: the package imports this module first

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("out_dir", f"{out} exists and is not a directory; pick another --out")
    sessions = _check_analysed(con)
    out.mkdir(parents=True, exist_ok=True)
    used_salt = DEFAULT_SALT if salt is None else salt
    redactor = (
        Redactor(salt=used_salt, names=[*known_names(con), *names], region=region)
        if redact
        else None
    )
    result = ReportResult(out_dir=out, redacted=redact)
    tables: dict[str, pa.Table] = {}
    for stem, (_, build) in REPORT_TABLES.items():
        table = build(con)
        table = table if isinstance(table, pa.Table) else table.to_pyarrow()
        if redactor is not None:
            table = redact_table(table, redactor=redactor)
        tables[stem] = table
        path = _write_atomic(out / f"{stem}.parquet", table)
        result.files.append(path)
        result.row_counts[path.name] = table.num_rows
    svgs = _write_charts(con, out, redactor=redactor) if charts else {}
    result.charts = list(svgs)
    result.files += [out / "charts" / f"{n}.{ext}" for n in svgs for ext in ("svg", "png")]
    kpis = _kpis(con)
    generated = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    meta = {
        "generated_at": generated,
        "start": kpis["start"],
        "end": kpis["end"],
        "redacted": redact,
        "salt_fingerprint": salt_fingerprint(used_salt) if redact else None,
        "sessionlens_version": __version__,
    }
    page = render_report(tables=tables, kpis=kpis, charts=svgs, meta=meta, files=result.row_counts)
    result.html_path = _write_atomic(out / "report.html", page)
    result.files.append(result.html_path)
    manifest = {
        "format": "sessionlens-report",
        "format_version": 1,
        "generated_at": generated.isoformat() + "Z",
        "sessionlens_version": __version__,
        "analyzer_version": ANALYZER_VERSION,
        "analyzer_versions_in_data": kpis["analyzer_versions"],
        "schema_version": schema_version(con),
        "duckdb_version": duckdb.__version__,
        "pyarrow_version": pa.__version__,
        "time_range": {
            "start": kpis["start"].isoformat() if kpis["start"] else None,
            "end": kpis["end"].isoformat() if kpis["end"] else None,
        },
        "sessions": sessions,
        "redacted": redact,
        "salt_fingerprint": meta["salt_fingerprint"],
        "default_salt": redact and used_salt == DEFAULT_SALT,
        "files": {
            f"{stem}.parquet": {"rows": tables[stem].num_rows, "content": what}
            for stem, (what, _) in REPORT_TABLES.items()
        },
        "charts": {n: {"svg": f"charts/{n}.svg", "png": f"charts/{n}.png"} for n in svgs},
        "html": "report.html",
    }
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    result.manifest_path = _write_atomic(out / "manifest.json", text)
    result.files.append(result.manifest_path)
    return result
