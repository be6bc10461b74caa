"""sessionlens: session-level analytics over LLM/agent traces in DuckDB.

One handle, functions hanging off it::

    import sessionlens as sl
    con = sl.connect("traces.duckdb")
    sl.load(con, "exports/")
    sl.analyze_sessions(con)
    sl.intent_mix(con).to_pandas()
"""

from __future__ import annotations

from . import datasets
from ._redact_db import RedactResult, redact_database
from .analysis.cost import cost_by, observation_costs, session_costs, token_usage, unpriced_models
from .analysis.details import extract_booking_details
from .analysis.evidence import SessionEvidence
from .analysis.flows import DEFAULT_FLOWS, Flow, Goal, load_flows
from .analysis.intent import DEFAULT_TAXONOMY, IntentResult, RuleClassifier, classify, load_taxonomy
from .analysis.prices import build_model_prices, ensure_model_prices
from .analysis.sequences import (
    dropoff_funnel,
    flow_progress,
    sequence_variants,
    tool_sequences,
    tool_transitions,
)
from .analysis.sessions import rebuild_sessions, session_gap
from .analysis.stats import (
    completion_by_intent,
    find_sessions,
    intent_mix,
    recent_sessions,
    session_stats,
)
from .analysis.tags import assign_session_tags, session_tags
from .cache import ANALYZER_VERSION, AnalyzeResult, analyze_sessions, prune
from .errors import (
    ChartInputError,
    ConfigError,
    DatabaseLockedError,
    InputNotFoundError,
    NotAnalyzedError,
    SchemaVersionError,
    SessionlensError,
    TraceFormatError,
    UnknownFormatError,
)
from .loaders import FORMATS, InternalRules, LoadResult, load, load_spans_dataframe
from .loaders.table import load_table
from .parquet import convert, export_parquet
from .report import ReportResult, export_report
from .spark import SparkStore, connect_spark
from .spark_blob import load_langfuse_blob
from .store import connect

__version__ = "0.1.0"

__all__ = [
    "ANALYZER_VERSION",
    "DEFAULT_FLOWS",
    "DEFAULT_TAXONOMY",
    "FORMATS",
    "AnalyzeResult",
    "ChartInputError",
    "ConfigError",
    "DatabaseLockedError",
    "Flow",
    "Goal",
    "InputNotFoundError",
    "IntentResult",
    "InternalRules",
    "LoadResult",
    "NotAnalyzedError",
    "RedactResult",
    "ReportResult",
    "RuleClassifier",
    "SchemaVersionError",
    "SessionEvidence",
    "SessionlensError",
    "SparkStore",
    "TraceFormatError",
    "UnknownFormatError",
    "__version__",
    "analyze_sessions",
    "assign_session_tags",
    "build_model_prices",
    "classify",
    "completion_by_intent",
    "connect",
    "connect_spark",
    "convert",
    "cost_by",
    "datasets",
    "dropoff_funnel",
    "ensure_model_prices",
    "export_parquet",
    "export_report",
    "extract_booking_details",
    "find_sessions",
    "flow_progress",
    "intent_mix",
    "load",
    "load_flows",
    "load_langfuse_blob",
    "load_spans_dataframe",
    "load_table",
    "load_taxonomy",
    "observation_costs",
    "prune",
    "rebuild_sessions",
    "recent_sessions",
    "redact_database",
    "sequence_variants",
    "session_costs",
    "session_gap",
    "session_stats",
    "session_tags",
    "token_usage",
    "tool_sequences",
    "tool_transitions",
    "unpriced_models",
]
