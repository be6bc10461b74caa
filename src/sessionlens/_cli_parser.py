"""The ``sessionlens`` command line's arguments: verbs, options and their help.

Kept apart from ``cli`` (which runs the verbs and is the only place that prints) so that each
stays a readable size; ``cli.main`` passes its handlers in.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from . import __version__
from .loaders import FORMATS

__all__ = ["build_parser"]


def build_parser(run: Mapping[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The ``sessionlens`` argument parser; ``run[verb]`` handles each verb."""
    parser = argparse.ArgumentParser(
        prog="sessionlens",
        description="Session-level analytics over LLM/agent traces (Langfuse, OpenTelemetry).",
    )
    parser.add_argument("--version", action="version", version=f"sessionlens {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p_load = verbs.add_parser(
        "load",
        help="load trace exports into a database",
        description="Load trace exports (files, directories or globs) into a DuckDB database. "
        "Each file is one transaction; bad records go to load_errors unless --strict.",
    )
    p_load.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or glob")
    p_load.add_argument("--db", required=True, metavar="FILE", help="DuckDB database file")
    p_load.add_argument(
        "--format",
        default="auto",
        choices=["auto", *FORMATS, "table"],
        help="input format (default: detect per file); 'table' reads Parquet / CSV spans "
        "named by --mapping",
    )
    p_load.add_argument(
        "--mapping",
        metavar="FILE",
        help="with --format table: JSON object mapping canonical columns to the table's",
    )
    p_load.add_argument(
        "--strict", action="store_true", help="stop at the first bad record, loading nothing of it"
    )
    p_load.add_argument(
        "--max-record-mb",
        type=float,
        default=64,
        metavar="MB",
        help="reject a record (JSON line, CSV line, Parquet row, JSON document) larger than "
        "this, without reading it whole (default: 64)",
    )
    p_load.add_argument(
        "--gap", type=float, metavar="MINUTES", help="inactivity gap that splits sessions"
    )
    p_load.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB memory limit, e.g. 2GB (default: 80%% of RAM); a big file then loads in "
        "bounded memory, spilling to the database file",
    )
    p_load.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes that map the records of JSON lines files and rebuild the derived "
        "tables (default: one per CPU for files of 8 MB+ on 3+ CPUs, else 1; same rows)",
    )
    p_load.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when interactive)",
    )
    p_load.set_defaults(run=run["load"])

    p_an = verbs.add_parser(
        "analyze",
        help="analyse sessions into the session_analysis table",
        description="Analyse every session (intent, booking details, tool flow, completion, "
        "status, tokens and cost) into session_analysis. Only sessions whose inputs, the "
        "analyzer or the configuration changed are recomputed.",
    )
    p_an.add_argument("--db", required=True, metavar="FILE", help="DuckDB database file")
    p_an.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB memory limit, e.g. 2GB (default: 80%% of RAM)",
    )
    p_an.add_argument("--flows", metavar="FILE", help="expected flows per intent (TOML/JSON/YAML)")
    p_an.add_argument("--intents", metavar="FILE", help="intent taxonomy (TOML/JSON/YAML)")
    p_an.add_argument(
        "--classifier",
        metavar="MODULE:FUNCTION",
        help="a callable replacing the rule classifier (importable from PYTHONPATH)",
    )
    p_an.add_argument(
        "--prices",
        metavar="FILE",
        help="your price table over the bundled prices (CSV/JSON/TOML/YAML)",
    )
    p_an.add_argument(
        "--langfuse-prices",
        metavar="FILE",
        help="Langfuse's model price file (default-model-prices.json format)",
    )
    p_an.add_argument("--force", action="store_true", help="recompute every session")
    p_an.add_argument(
        "--include-internal", action="store_true", help="also analyse eval/experiment sessions"
    )
    p_an.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes for the per-session pass (default: one per CPU on runs of 8,000+ "
        "sessions, else 1)",
    )
    p_an.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when interactive)",
    )
    p_an.set_defaults(run=run["analyze"])

    p_conv = verbs.add_parser(
        "convert",
        help="convert exports into a date-partitioned Parquet root (for Spark)",
        description="Convert each PATH (a file, or a directory loaded as one unit) into "
        "canonical tables under ROOT/<table>/date=YYYY-MM-DD/part-<hash>.parquet, units in "
        "parallel processes. A session must not straddle units. See docs/scale-out.md.",
    )
    p_conv.add_argument("paths", nargs="+", metavar="PATH", help="file or directory (one unit)")
    p_conv.add_argument("--out", required=True, metavar="ROOT", help="Parquet root directory")
    p_conv.add_argument(
        "--workers", type=int, default=None, help="parallel processes (default: CPU count)"
    )
    p_conv.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    p_conv.add_argument("--strict", action="store_true", help="fail on the first bad record")
    p_conv.add_argument(
        "--spark",
        action="store_true",
        help="map ONE Langfuse blob Parquet export (all PATHs together) in Spark instead: "
        "sessions may straddle files (pip install 'sessionlens[spark]')",
    )
    p_conv.add_argument("--master", default="local[*]", help="Spark master URL with --spark")
    p_conv.add_argument(
        "--gap", type=float, default=None, metavar="MINUTES", help="session gap with --spark"
    )
    p_conv.set_defaults(run=run["convert"])

    p_rep = verbs.add_parser(
        "report",
        help="write Parquet tables, charts and an HTML report of an analysed database",
        description="Write the report of an analysed database into a directory: Parquet "
        "tables, manifest.json, charts (SVG/PNG) and a self-contained report.html. Phone "
        "numbers, e-mail addresses and personal names are replaced by stable tokens unless "
        "--no-redact. The database is opened read-only (unless --analyze).",
    )
    p_rep.add_argument("--db", required=True, metavar="FILE", help="DuckDB database file")
    p_rep.add_argument("--out", required=True, metavar="DIR", help="report directory")
    p_rep.add_argument(
        "--no-redact",
        dest="redact",
        action="store_false",
        help="keep phone numbers and names as they are (the report then holds PII)",
    )
    p_rep.add_argument(
        "--salt",
        metavar="S",
        help="secret key of the redaction tokens (default: $SESSIONLENS_SALT, else a public "
        "default salt)",
    )
    p_rep.add_argument("--no-charts", dest="charts", action="store_false", help="skip the charts")
    p_rep.add_argument(
        "--analyze",
        action="store_true",
        help="analyse sessions first (opens the database for writing)",
    )
    p_rep.set_defaults(run=run["report"])

    p_red = verbs.add_parser(
        "redact",
        help="replace phone numbers, e-mail addresses and names stored in the database",
        description="Rewrite the stored text, payloads and user ids of a database with the "
        "same stable tokens a redacted report uses, in one transaction. Names are those "
        "`analyze` extracted plus --name. Run it after each load: new records arrive as they "
        "are in the export.",
    )
    p_red.add_argument("--db", required=True, metavar="FILE", help="DuckDB database file")
    p_red.add_argument(
        "--salt", metavar="S", help="secret key of the tokens (default: $SESSIONLENS_SALT)"
    )
    p_red.add_argument(
        "--name", action="append", default=[], metavar="NAME", help="another name to replace"
    )
    p_red.set_defaults(run=run["redact"])

    p_demo = verbs.add_parser(
        "demo",
        help="load and analyse the bundled sample, print what is in it and write a report",
        description="Load the bundled sample export (a children's dental booking voice agent) "
        "into a fresh database, analyse its sessions, print a summary and write the report.",
    )
    p_demo.add_argument("--db", default="demo.duckdb", metavar="FILE", help="database to create")
    p_demo.add_argument(
        "--out", default="demo-report", metavar="DIR", help="report directory to write"
    )
    p_demo.set_defaults(run=run["demo"])
    return parser
