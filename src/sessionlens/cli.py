"""The ``sessionlens`` command line: ``load``, ``analyze``, ``convert``, ``report``, ``redact``
and ``demo``.

The only place that prints. Every ``SessionlensError`` becomes one line ``error: ...`` on
stderr and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from duckdb import DuckDBPyConnection

from . import datasets
from ._cli_parser import build_parser
from ._redact_db import redact_database
from .analysis.sessions import DEFAULT_GAP, rebuild_sessions
from .cache import AnalyzeResult, analyze_sessions
from .errors import ConfigError, InputNotFoundError, SessionlensError
from .loaders import LoadResult, load
from .loaders.files import expand_paths
from .loaders.table import load_table
from .redact import DEFAULT_SALT
from .report import ReportResult, export_report
from .store import connect

__all__ = ["main"]


def _summary(result: LoadResult, db: str) -> str:
    written = result.written
    lines = [
        f"loaded {len(result.files)} file(s) into {db}",
        f"  traces        {result.traces:>8}  ({written['traces']} written by this load)",
        f"  observations  {result.observations:>8}  ({written['observations']} written)",
        f"  sessions      {result.sessions:>8}",
        f"  tool calls    {result.tool_calls:>8}",
        f"  rejected      {result.rejected:>8}"
        + ("  (see the load_errors table)" if result.rejected else ""),
    ]
    return "\n".join(lines)


def _mapping(path: str | None) -> dict[str, str]:
    if path is None:
        raise ConfigError(
            "--mapping",
            "--format table needs --mapping FILE, a JSON object of canonical "
            'column -> table column, e.g. {"trace_id": "trace", "observation_id": "span_id", '
            '"start_time": "ts"}',
        )
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("--mapping", f"cannot read {path} as JSON: {exc}") from exc
    if not isinstance(mapping, dict):
        raise ConfigError("--mapping", f"{path} must hold a JSON object")
    return mapping


def _load_tables(con: DuckDBPyConnection, args: argparse.Namespace) -> LoadResult:
    mapping = _mapping(args.mapping)
    result = LoadResult()
    for src in expand_paths(args.paths):
        one = load_table(
            con, src.path, mapping=mapping, strict=args.strict, max_record_bytes=_limit(args)
        )
        result.files += one.files
        result.traces, result.observations = one.traces, one.observations
        result.sessions, result.tool_calls = one.sessions, one.tool_calls
    result.rejected = sum(f.rejected for f in result.files)
    return result


def _limit(args: argparse.Namespace) -> int:
    if not args.max_record_mb > 0:
        raise ConfigError("--max-record-mb", f"must be a positive size, got {args.max_record_mb}")
    return max(1, int(args.max_record_mb * 2**20))


def _cmd_load(args: argparse.Namespace) -> int:
    if args.mapping is not None and args.format != "table":
        raise ConfigError("--mapping", "only used with --format table")
    con = connect(args.db, memory_limit=args.memory_limit)
    try:
        if args.gap is not None:
            rebuild_sessions(con, gap=timedelta(minutes=args.gap))
        if args.format == "table":
            result = _load_tables(con, args)
        else:
            result = load(
                con,
                args.paths,
                format=args.format,
                strict=args.strict,
                progress=args.progress,
                max_record_bytes=_limit(args),
                workers=args.workers,
            )
        print(_summary(result, args.db))
    finally:
        con.close()
    return 0


def _import_callable(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError("--classifier", f"{spec!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            "--classifier", f"cannot import {module_name!r} ({exc}); is it on PYTHONPATH?"
        ) from None
    target = getattr(module, attr, None)
    if not callable(target):
        raise ConfigError("--classifier", f"{module_name} has no callable {attr!r}")
    return target


def _analysis_summary(result: AnalyzeResult, db: str) -> str:
    lines = [
        f"analysed {result.sessions} session(s) in {db} in {result.seconds:.1f} s",
        f"  recomputed    {result.recomputed:>8}",
        f"  unchanged     {result.skipped:>8}  (skipped: inputs, analyzer and config unchanged)",
    ]
    if result.removed:
        lines.append(f"  removed       {result.removed:>8}  (sessions no longer in the data)")
    lines.append("status:")
    lines += [f"  {status:<14}{count:>8}" for status, count in result.statuses.items()]
    if result.unpriced_models:
        lines.append(
            "unpriced models (no price found; pass --prices): " + ", ".join(result.unpriced_models)
        )
    return "\n".join(lines)


def _cmd_analyze(args: argparse.Namespace) -> int:
    classifier = _import_callable(args.classifier) if args.classifier else None
    con = connect(args.db, memory_limit=args.memory_limit)
    try:
        result = analyze_sessions(
            con,
            flows=args.flows,
            intents=args.intents,
            classifier=classifier,
            prices=args.prices,
            langfuse_prices=args.langfuse_prices,
            force=args.force,
            include_internal=args.include_internal,
            progress=args.progress,
            workers=args.workers,
        )
        print(_analysis_summary(result, args.db))
    finally:
        con.close()
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .parquet import convert

    if args.spark:
        return _convert_blob_in_spark(args)
    if args.gap is not None:
        raise ConfigError("--gap", "applies only with --spark; convert units keep the 30 minutes")
    results = convert(
        args.paths, out=args.out, workers=args.workers, format=args.format, strict=args.strict
    )
    for r in results:
        rows = ", ".join(f"{t} {n}" for t, n in r.rows.items() if n)
        print(f"{r.path} -> part-{r.part}: {rows or 'nothing'}")
    print(f"converted {len(results)} unit(s) into {args.out}")
    return 0


def _convert_blob_in_spark(args: argparse.Namespace) -> int:
    from .spark import connect_spark
    from .spark_blob import load_langfuse_blob

    gap = timedelta(minutes=args.gap) if args.gap is not None else DEFAULT_GAP
    from pyspark.sql import SparkSession

    # A session already running in this process (a notebook, a test) is used and left open.
    running = SparkSession.getActiveSession()
    store = connect_spark(running, root=args.out, master=args.master)
    try:
        r = load_langfuse_blob(store, args.paths, strict=args.strict, gap=gap)
    finally:
        if running is None:
            store.close()
    rows = ", ".join(f"{t} {n}" for t, n in r.rows.items() if n)
    print(f"{r.files} file(s) -> part-{r.part}: {rows or 'nothing'}; rejected {r.rejected}")
    print(f"mapped the Langfuse blob export into {args.out} in {r.seconds:.1f} s")
    return 0


def _salt(args: argparse.Namespace) -> str:
    """``--salt``, else ``$SESSIONLENS_SALT``, else the public default salt."""
    return str(args.salt or os.environ.get("SESSIONLENS_SALT") or DEFAULT_SALT)


def _cmd_redact(args: argparse.Namespace) -> int:
    if not Path(args.db).is_file():
        raise InputNotFoundError(args.db)  # never create an empty database just to redact it
    con = connect(args.db)
    try:
        result = redact_database(
            con,
            salt=_salt(args),
            names=args.name,
        )
    finally:
        con.close()
    print(f"redacted {result.total} value(s) in {args.db} ({result.names} known name(s))")
    for column, count in result.changed.items():
        if count:
            print(f"  {column:<40}{count:>8}")
    return 0


def _report_summary(result: ReportResult) -> str:
    lines = [f"report written to {result.out_dir}/", f"  open          {result.html_path}"]
    lines += [f"  {name:<28}{rows:>8} rows" for name, rows in result.row_counts.items()]
    lines.append(
        f"  charts        {len(result.charts):>8}" + ("" if result.charts else "  (none drawn)")
    )
    lines.append(
        "  redacted: phone numbers, e-mail addresses and names are tokens"
        if result.redacted
        else "  NOT redacted: the files hold phone numbers and personal names"
    )
    return "\n".join(lines)


def _cmd_report(args: argparse.Namespace) -> int:
    # Read-only unless asked to analyse first: a report never changes the database.
    con = connect(args.db, read_only=not args.analyze)
    try:
        if args.analyze:
            analyze_sessions(con, progress=False)
        result = export_report(
            con,
            args.out,
            redact=args.redact,
            salt=_salt(args),
            charts=args.charts,
        )
        print(_report_summary(result))
    finally:
        con.close()
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    db = Path(args.db)
    if db.exists():
        db.unlink()  # the demo always starts from the bundled sample alone
    con = connect(db)
    try:
        result = load(con, datasets.sample_dir(), progress=False)
        print(_summary(result, str(db)))
        print()
        print(_analysis_summary(analyze_sessions(con, progress=False), str(db)))
        print("\nintents (sessions, completed):")
        for intent, n, done in con.execute(
            "SELECT caller_intent_type, count(*), count(*) FILTER (status = 'completed') "
            "FROM session_analysis GROUP BY ALL ORDER BY 2 DESC, 1"
        ).fetchall():
            print(f"  {intent:<14}{n:>6}{done:>6}")
        print("\nsessions by origin:")
        for origin, count in con.execute(
            "SELECT origin, count(*) FROM sessions GROUP BY ALL ORDER BY 2 DESC"
        ).fetchall():
            print(f"  {origin:<14}{count:>6}")
        print("\nmost called tools:")
        for name, count in con.execute(
            "SELECT tool_name, count(*) FROM tool_calls GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 8"
        ).fetchall():
            print(f"  {name:<24}{count:>6}")
        report = export_report(con, args.out)
        print(
            f"\nreport: {report.html_path} (Parquet, charts and manifest.json beside it)"
            f'\nexplore it: python -c "import sessionlens as sl; '
            f"print(sl.connect('{db}', read_only=True).table('session_analysis').df())\""
        )
    finally:
        con.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    handlers = {
        "load": _cmd_load,
        "analyze": _cmd_analyze,
        "convert": _cmd_convert,
        "report": _cmd_report,
        "redact": _cmd_redact,
        "demo": _cmd_demo,
    }
    args = build_parser(handlers).parse_args(argv)
    try:
        return int(args.run(args))
    except SessionlensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
