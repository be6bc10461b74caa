"""Seeded synthetic sessions of a children's dental booking voice agent, with planted answers.

This module owns the project's synthetic data: :func:`generate` simulates callers phoning a
pediatric dental clinic's voice agent (booking, rescheduling, cancelling, asking questions),
the agent's LLM calls with re-sent chat history and tool calls, failing and retried tools,
callers who hang up, and a few internal evaluation/experiment runs. Every fact an analysis
should recover (intent, children, phone, dates, tool sequence, completion, tokens, cost) is
*planted*: recorded in :attr:`SyntheticDataset.planted` from the generated records themselves,
so tests compare an analysis with the truth instead of with a second formula.

The writers (:func:`write_langfuse_blob_export`, :func:`write_langfuse_trace_downloads`, in
``_export_writer``) put the records on disk as real Langfuse export files; the bundled sample
(:func:`sample_dir`, :func:`make_sample`) is 60 sessions of seed 7 as a JSONL blob export.
This module is the public face; the session mechanics (ids, timing, tokens, cost, planting)
live in ``_synthetic`` and the words callers and the agent say in ``_voice_script``.

Generation uses one ``random.Random(seed)`` and no clock, so a seed always gives the same bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ._export_writer import write_langfuse_blob_export, write_langfuse_trace_downloads
from ._otlp_writer import write_otlp_export
from ._synthetic import _Builder
from ._voice_script import _family

__all__ = [
    "FLOWS",
    "INTENT_WEIGHTS",
    "PRICES_PER_MTOK",
    "SyntheticDataset",
    "generate",
    "make_sample",
    "sample_dir",
    "write_langfuse_blob_export",
    "write_langfuse_trace_downloads",
    "write_otlp_export",
]

INTENT_WEIGHTS = {
    "booking": 0.45,
    "rescheduling": 0.20,
    "cancellation": 0.15,
    "info_lookup": 0.15,
    "other": 0.05,
}
#: The tool steps a successful session of each intent goes through, in order.
FLOWS = {
    "booking": ["lookup_patient", "check_availability", "book_appointment", "send_confirmation"],
    "rescheduling": [
        "lookup_patient",
        "find_appointment",
        "check_availability",
        "reschedule_appointment",
    ],
    "cancellation": ["lookup_patient", "find_appointment", "cancel_appointment"],
    "info_lookup": ["get_clinic_info"],
    "other": ["transfer_to_staff"],
}
#: The generator's own USD prices per million tokens, used only to plant reported costs (the
#: ``cost_details`` Langfuse would have computed); not a source of truth for real prices.
PRICES_PER_MTOK: dict[str, dict[str, float]] = {
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4.1": {"input": 2.00, "output": 8.00},
    "claude-sonnet-4-5-20250929": {
        "input": 3.00,
        "output": 15.00,
        "input_cache_read": 0.30,
        "input_cache_creation": 3.75,
    },
    "gemini-2.5-flash": {"input": 0.30, "output": 2.50, "output_reasoning": 2.50},
    "o4-mini": {"input": 1.10, "output": 4.40, "output_reasoning": 4.40},
}

_DEFAULT_START = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
_SAMPLE = {"n_sessions": 60, "seed": 7}


@dataclass
class SyntheticDataset:
    """Generated Langfuse records and the answers planted in them.

    Attributes
    ----------
    traces, observations, scores : list of dict
        Records in Langfuse's legacy export columns (``_export_writer.TRACE_COLUMNS`` etc.),
        timestamps as naive UTC ``datetime``; the writers encode them per format.
    planted : pandas.DataFrame
        One row per session with the true intent, entities, tool sequence, completion,
        status, tokens (OTel convention) and cost.
    planted_traces : pandas.DataFrame
        One row per trace: trace_id, session_id, user_id, environment, is_internal,
        observation_count, tool_count.
    seed : int
        The seed that produced the data.
    project_id : str
        The Langfuse project id on every record.
    """

    traces: list[dict[str, Any]]
    observations: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    planted: pd.DataFrame
    planted_traces: pd.DataFrame
    seed: int = 0
    project_id: str = "bright-smiles-voice"


def generate(
    n_sessions: int = 200,
    *,
    seed: int = 0,
    start: datetime = _DEFAULT_START,
    days: int = 14,
    internal_share: float = 0.03,
    repeat_caller_share: float = 0.15,
    project_id: str = "bright-smiles-voice",
) -> SyntheticDataset:
    """Generate voice-agent sessions of a pediatric dental clinic, with planted answers.

    Each session is one phone call (1-4 traces, one per caller turn) with intent mix
    booking 45%, rescheduling 20%, cancellation 15%, info_lookup 15%, other 5%. About 74% of
    sessions complete their flow (:data:`FLOWS`), 18% are abandoned (the caller hangs up
    before a planted step) and 8% fail (a tool keeps erroring). About 8% of tool calls fail
    once and are retried. Generations re-send the whole chat history; usage follows
    Langfuse's convention (``input`` excludes cache tokens, ``output`` excludes reasoning).

    Parameters
    ----------
    n_sessions : int
        Number of sessions (calls).
    seed : int
        Seed of the single ``random.Random`` used; equal seeds give equal datasets.
    start : datetime
        Earliest call time; calls spread over ``days`` days, 11 hours a day from ``start``'s
        time of day. A naive ``start`` is taken as UTC.
    days : int
        Length of the period the sessions spread over.
    internal_share : float
        Share of sessions run by evaluators/experiments (environment ``sdk-experiment`` or
        ``langfuse-evaluation``); at least one when ``n_sessions >= 10``.
    repeat_caller_share : float
        Chance that a call comes from an earlier caller's family (same ``user_id``).
    project_id : str
        Langfuse project id written on every record.

    Returns
    -------
    SyntheticDataset

    Examples
    --------
    >>> ds = generate(20, seed=1)
    >>> len(ds.planted), int(ds.planted["trace_count"].sum()) == len(ds.traces)
    (20, True)
    >>> set(ds.planted["status"]) <= {"completed", "abandoned", "failed"}
    True
    """
    if n_sessions < 1:
        raise ValueError(f"n_sessions must be at least 1, got {n_sessions}")
    rng = random.Random(seed)
    t0 = start.astimezone(UTC).replace(tzinfo=None) if start.tzinfo else start
    starts = sorted(
        t0 + timedelta(days=rng.randrange(days), milliseconds=rng.randrange(11 * 3600 * 1000))
        for _ in range(n_sessions)
    )
    n_internal = max(1, round(internal_share * n_sessions)) if n_sessions >= 10 else 0
    internal = set(rng.sample(range(n_sessions), n_internal))
    builder = _Builder(
        rng,
        project_id,
        intent_weights=INTENT_WEIGHTS,
        flows=FLOWS,
        prices=PRICES_PER_MTOK,
    )
    families: list[dict[str, Any]] = []
    for i, when in enumerate(starts):
        if families and rng.random() < repeat_caller_share:
            fam = rng.choice(families)
        else:
            fam = _family(rng)
            families.append(fam)
        env = rng.choice(["sdk-experiment", "langfuse-evaluation"]) if i in internal else "default"
        builder.session(when, fam, env)
    planted = pd.DataFrame(builder.planted)
    # pandas would turn None into NaN in an inferred string column; a missing step is None.
    planted["drop_off_step"] = pd.Series(
        [row["drop_off_step"] for row in builder.planted], dtype=object
    )
    obs = pd.DataFrame(
        {
            "trace_id": [o["trace_id"] for o in builder.observations],
            "is_tool": [o["type"] == "TOOL" for o in builder.observations],
        }
    )
    counts = obs.groupby("trace_id")["is_tool"].agg(["size", "sum"])
    planted_traces = pd.DataFrame(
        {
            "trace_id": [t["id"] for t in builder.traces],
            "session_id": [t["session_id"] for t in builder.traces],
            "user_id": [t["user_id"] for t in builder.traces],
            "environment": [t["environment"] for t in builder.traces],
            "is_internal": [t["environment"] != "default" for t in builder.traces],
        }
    )
    planted_traces["observation_count"] = planted_traces["trace_id"].map(counts["size"])
    planted_traces["tool_count"] = planted_traces["trace_id"].map(counts["sum"]).astype(int)
    return SyntheticDataset(
        builder.traces,
        builder.observations,
        builder.scores,
        planted,
        planted_traces,
        seed=seed,
        project_id=project_id,
    )


def sample_dir() -> Path:
    """The bundled sample: a gzipped Langfuse JSONL blob export of 60 sessions (seed 7).

    Examples
    --------
    >>> sorted(p.name for p in sample_dir().iterdir() if p.is_dir())
    ['observations', 'scores', 'traces']
    """
    return Path(__file__).parent / "data" / "sample"


def make_sample(out_dir: str | Path | None = None) -> list[Path]:
    """Regenerate the bundled sample (into ``out_dir``, default :func:`sample_dir`).

    The planted answers of the sample are ``generate(60, seed=7).planted``.

    Examples
    --------
    >>> import tempfile
    >>> [p.parent.name for p in make_sample(tempfile.mkdtemp())]
    ['traces', 'observations', 'scores']
    """
    ds = generate(_SAMPLE["n_sessions"], seed=_SAMPLE["seed"])
    # Re-sent chat history makes the JSONL about 1.5 MB; gzip brings it to a few hundred KB.
    target = out_dir if out_dir is not None else sample_dir()
    return write_langfuse_blob_export(ds, target, gzip=True)
