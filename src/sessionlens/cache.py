"""``analyze_sessions``: fill the ``session_analysis`` cache, recomputing only what changed.

This module owns the cache: which sessions need (re)analysis, running every per-session
analysis on exactly those, and writing their rows in one transaction. A row carries

- ``input_fingerprint``: a hash over the session's trace and observation rows (their ids and
  content hashes), so any added, removed or changed record changes it;
- ``analyzer_version``: :data:`ANALYZER_VERSION`, bumped when the analysis code changes what
  it computes;
- ``config_fingerprint``: the flows, intent taxonomy or classifier, region, inactivity window
  and the price table in force.

A re-run recomputes a session when any of the three differ, when its status was
``in_progress`` (time alone can end a session), or when ``force=True``; it reports how many it
skipped. Rows of sessions that disappeared (regrouped, deleted) are removed. Only sessions
that may have changed since the previous run are hashed (the observations' ``loaded_at``
watermark, :func:`sessionlens._analyze_stage.stage_fingerprints`), and when those are few
the run reads slices of the tables holding just their rows.

The per-session work is Ibis over the canonical tables (flows, sequences, costs, status) plus
one Python pass over each session's transcript (intent, booking details, goal indicators).
On DuckDB the run's intermediate tables stay in the database (:mod:`._analyze_stage`): the
Python pass streams record batches into a temporary table and the frame is inserted from
SQL, so memory does not grow with the number of sessions; on large runs that pass is computed
on worker processes (:mod:`._pypass`, ``workers``) while this process keeps the connection.
Session tags are recounted only for the users whose sessions changed (a tag depends on its
user's sessions alone). The compiled SQL of the frame, the fingerprints and the tags is kept
in ``settings`` and reused while the expressions stay the same (:mod:`._sql_cache`).

A Spark handle (:func:`sessionlens.connect_spark`) is handed to
:func:`sessionlens._spark_cache.analyze_spark` before any of this: the same Ibis analyses and
:func:`python_row`, with Parquet in and out instead of the staged DuckDB tables.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from . import _analyze_stage as stage
from ._config import config_fingerprint_text
from ._pypass import PY_SCHEMA as _PY_SCHEMA
from ._pypass import python_batches, python_row, resolve_workers
from .analysis._ibis import backend
from .analysis.flows import DEFAULT_FLOWS, Flow, load_flows
from .analysis.intent import DEFAULT_TAXONOMY, RuleClassifier, as_classifier, load_taxonomy
from .analysis.prices import build_model_prices, ensure_model_prices, prices_fingerprint
from .analysis.session_frame import session_frame
from .analysis.tags import assign_session_tags, prepare_session_tags
from .errors import ConfigError

__all__ = ["ANALYZER_VERSION", "AnalyzeResult", "analyze_sessions", "prune", "python_row"]

#: Bump when a change to the analyses changes their output; cached rows are then recomputed.
ANALYZER_VERSION = "1"


@dataclass
class AnalyzeResult:
    """What one ``analyze_sessions`` call did."""

    sessions: int = 0
    recomputed: int = 0
    skipped: int = 0
    removed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    unpriced_models: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _classifier_identity(classifier: Callable[..., Any] | None, taxonomy: Any) -> Any:
    if classifier is None:
        return {"taxonomy": repr(taxonomy)}
    target = getattr(classifier, "__wrapped__", classifier)
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return {"classifier": f"{getattr(target, '__module__', '')}.{name}"}


def _config_fingerprint(con: Any, parts: Mapping[str, Any]) -> str:
    text = config_fingerprint_text({**parts, "prices": prices_fingerprint(con)})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_COLUMNS = [
    "session_id",
    "user_id",
    "start_time",
    "end_time",
    "is_internal",
    "caller_intent_type",
    "caller_intent_confidence",
    "caller_intent_summary",
    "booking_details_json",
    "tool_sequence_json",
    "expected_flow_json",
    "completion_rate",
    "drop_off_step",
    "goals_json",
    "goal_completion",
    "status",
    "turn_count",
    "tool_call_count",
    "failed_tool_calls",
    "error_count",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_source",
    "unpriced_models",
    "internal_cost_usd",
    "models",
    "duration_seconds",
    "session_tag",
    "analyzer_version",
    "config_fingerprint",
    "input_fingerprint",
    "analyzed_at",
    "created_at",
]


def analyze_sessions(
    con: Any,
    *,
    flows: Mapping[str, Any] | str | Path | None = None,
    intents: Mapping[str, Any] | str | Path | None = None,
    classifier: Callable[..., Any] | None = None,
    prices: Any = None,
    langfuse_prices: str | Path | None = None,
    force: bool = False,
    include_internal: bool = False,
    region: str = "US",
    inactivity: timedelta = timedelta(minutes=30),
    as_of: datetime | None = None,
    progress: bool | None = None,
    workers: int | None = None,
) -> AnalyzeResult:
    """Analyse sessions into ``session_analysis``, recomputing only those whose inputs changed.

    Parameters
    ----------
    con : DuckDBPyConnection or SparkStore
        A database from :func:`sessionlens.connect` with loaded traces, or a Parquet root
        from :func:`sessionlens.connect_spark` (``session_analysis`` is then written back as
        Parquet; see ``docs/scale-out.md``).
    flows : dict, Flow mapping or path, optional
        Expected tool flows per intent (TOML/JSON/YAML file or dict; see
        :func:`sessionlens.analysis.flows.load_flows`). Default: the dental agent's flows.
    intents : dict or path, optional
        An intent taxonomy for the default rule classifier (TOML/JSON/YAML file or dict).
    classifier : callable, optional
        Replaces the rule classifier: called with each session's
        :class:`~sessionlens.analysis.evidence.SessionEvidence`, returns an intent result,
        a ``(type, confidence, summary)`` tuple or a dict. Cached rows are keyed on its
        qualified name: after changing its behaviour, pass ``force=True``.
    prices : optional
        A user price table layered over the bundled prices (see
        :func:`sessionlens.analysis.prices.build_model_prices`).
    langfuse_prices : path, optional
        Langfuse's model price file (``default-model-prices.json`` format), between the
        bundled prices and the user table.
    force : bool
        Recompute every session.
    include_internal : bool
        Also analyse sessions made only of internal traces (evals, experiments).
    region : str
        Default region for phone numbers without a country code.
    inactivity : timedelta
        A session not completed whose last activity is more recent than this (before
        ``as_of``) is ``in_progress``.
    as_of : datetime, optional
        "Now" for the inactivity rule (naive UTC). Default: the current time.
    progress : bool, optional
        Show a progress bar. Default: only on a terminal.
    workers : int, optional
        Processes computing the per-session Python pass (intent, booking details, goals);
        this process keeps reading from and writing to the database, and the rows are the
        same as with 1. ``None`` (default) uses one per CPU this process may run on when
        at least :data:`sessionlens._pypass.AUTO_MIN_SESSIONS` sessions are to be computed
        (a worker takes about a second to start), the classifier can be pickled, and a
        calling script starts under ``if __name__ == "__main__":`` (workers re-import it);
        else 1. ``1`` computes in this process. Spark ignores it (its executors parallelise).

    Returns
    -------
    AnalyzeResult
        Counts of sessions, recomputed, skipped and removed rows, statuses, unpriced models.

    Raises
    ------
    ConfigError
        ``workers`` is not a whole number >= 1, or is > 1 with a classifier that cannot be
        pickled (a lambda or nested function); a classifier and ``intents`` both given.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> first = analyze_sessions(con)
    >>> first.recomputed == first.sessions, analyze_sessions(con).recomputed
    (True, 0)
    """
    started = time.perf_counter()
    flow_map: Mapping[str, Flow]
    if flows is None:
        flow_map = DEFAULT_FLOWS
    elif isinstance(flows, Mapping) and all(isinstance(v, Flow) for v in flows.values()):
        flow_map = flows
    else:
        flow_map = load_flows(flows)
    if classifier is not None and intents is not None:
        raise ConfigError("classifier", "pass either a classifier or an intent taxonomy, not both")
    taxonomy = load_taxonomy(intents) if intents is not None else DEFAULT_TAXONOMY
    classify = as_classifier(classifier) if classifier is not None else RuleClassifier(taxonomy)
    # What the Python pass runs (and sends to worker processes): the rule classifier or the
    # user's callable as given, wrapped by as_classifier where it runs.
    shipped = classifier if classifier is not None else classify
    resolve_workers(workers, sessions=0, classifier=None)  # a bad value fails before any work
    now = as_of or datetime.now(UTC).replace(tzinfo=None)
    parts = {
        "flows": {k: asdict(v) for k, v in sorted(flow_map.items())},
        "intent": _classifier_identity(classifier, taxonomy),
        "region": region,
        "inactivity": inactivity.total_seconds(),
        "include_internal": include_internal,
    }
    if getattr(con, "ibis_backend", None) is not None:
        # A Spark handle (sessionlens.connect_spark): the same analyses, Parquet in and out.
        from ._spark_cache import analyze_spark

        return analyze_spark(
            con,
            classify=classify,
            flows=flow_map,
            config_parts=parts,
            prices=prices,
            langfuse_prices=langfuse_prices,
            force=force,
            include_internal=include_internal,
            region=region,
            inactivity=inactivity,
            as_of=now,
            started=started,
        )
    # Spark pickles the classifier its own way; worker processes need plain pickle.
    resolve_workers(workers, sessions=0, classifier=shipped)
    # One Ibis backend for the whole run: creating one per call costs more than small runs.
    db = backend(con)
    if prices is not None or langfuse_prices is not None:
        build_model_prices(con, user=prices, langfuse=langfuse_prices)
    else:
        ensure_model_prices(con)
    config = _config_fingerprint(con, parts)
    con.begin()
    try:
        # ``scoped`` reads slices of the tables when few sessions can have changed.
        n, scoped = stage.stage_fingerprints(
            db, include_internal=include_internal, version=ANALYZER_VERSION, config=config,
            force=force,
        )  # fmt: skip
        result = AnalyzeResult(sessions=n)
        ids, result.removed = stage.stage_todo(
            con, config=config, version=ANALYZER_VERSION, force=force
        )
        # Tags first (the frame reads them); only users with a changed session can move.
        everyone = len(ids) == result.sessions
        users, todo = (scoped.table(t, database=stage.TEMP) for t in ("_sl_users", "_sl_todo"))
        if everyone:
            assign_session_tags(con)
            # The next run is likely incremental: its tag query is compiled now (0.05 s).
            prepare_session_tags(scoped, user_ids=users, fresh=todo)
        else:  # the recomputed sessions are the only ones whose model can have changed;
            # they and the untagged ones are read from the slices (the rest keep their model)
            assign_session_tags(scoped, user_ids=users, fresh=todo)
        if ids:
            batches = python_batches(
                con,
                ids,
                classifier=shipped,
                flows=flow_map,
                region=region,
                workers=resolve_workers(workers, sessions=len(ids), classifier=shipped),
                progress=progress,
            )
            with closing(batches):  # on an error, its worker processes stop at once
                stage.stage_python_rows(con, _PY_SCHEMA, batches)
            py = scoped.table("_sl_py", database=stage.TEMP)
            clock = stage.stage_clock(scoped, cutoff=now - inactivity)
            frame = session_frame(
                scoped, py, flows=flow_map, as_of=now, inactivity=inactivity, clock=clock,
                stage=stage.frame_stager(scoped),
            )  # fmt: skip
            stage.write_rows(
                scoped, frame, columns=_COLUMNS, version=ANALYZER_VERSION, config=config
            )
        # Tags of unchanged sessions can move when an earlier session arrives.
        con.execute(
            "UPDATE session_analysis a SET session_tag = s.session_tag FROM sessions s "
            "WHERE a.session_id = s.session_id AND a.session_tag IS DISTINCT FROM s.session_tag"
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        stage.drop(con)
    result.recomputed = len(ids)
    result.skipped = result.sessions - len(ids)
    result.statuses = dict(
        con.execute(
            "SELECT status, count(*) FROM session_analysis GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    result.unpriced_models = sorted(
        str(r[0])
        for r in con.execute(
            "SELECT DISTINCT unnest(unpriced_models) FROM session_analysis"
        ).fetchall()
    )
    result.seconds = time.perf_counter() - started
    return result


def prune(
    con: duckdb.DuckDBPyConnection, *, older_than: timedelta, as_of: datetime | None = None
) -> int:
    """Delete cached analyses of sessions that ended more than ``older_than`` ago.

    For retention: the canonical tables are untouched, so a later ``analyze_sessions`` would
    analyse those sessions again; delete or stop loading the old traces as well to keep them
    out. Returns the number of rows deleted.

    Raises
    ------
    ConfigError
        ``older_than`` is not a positive duration.

    Examples
    --------
    >>> from datetime import timedelta
    >>> from sessionlens import connect
    >>> prune(connect(), older_than=timedelta(days=90))
    0
    """
    if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
        raise ConfigError("older_than", f"must be a positive timedelta, got {older_than!r}")
    cutoff = (as_of or datetime.now(UTC).replace(tzinfo=None)) - older_than
    row = con.execute(
        "DELETE FROM session_analysis WHERE coalesce(end_time, start_time) < ?", [cutoff]
    ).fetchone()
    return int(row[0]) if row else 0
