"""Session evidence for the intent and details tests: generated calls and tau-bench runs.

Built once per test process (``lru_cache``) because loading 300 generated sessions through the
Langfuse blob export takes a few seconds and both test modules use them.
"""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from typing import Any

import pandas as pd

import sessionlens as sl
from sessionlens import datasets
from sessionlens.analysis.evidence import SessionEvidence, ToolCall, Turn, iter_evidence

from .conftest import SHARED

TAU_AIRLINE = SHARED / "tau-bench" / "gpt-4o-airline.json"


@lru_cache(maxsize=4)
def generated(n: int, seed: int) -> tuple[pd.DataFrame, tuple[SessionEvidence, ...]]:
    """Planted answers (indexed by session id) and the evidence of every external session,
    read back from a real Langfuse blob export of ``datasets.generate(n, seed=seed)``."""
    ds = datasets.generate(n, seed=seed)
    planted = ds.planted.set_index("session_id")
    with tempfile.TemporaryDirectory() as tmp:
        datasets.write_langfuse_blob_export(ds, tmp)
        con = sl.connect()
        try:
            sl.load(con, tmp)
            external = [s for s in planted.index if not planted.loc[s, "is_internal"]]
            evidence = tuple(iter_evidence(con, external))
        finally:
            con.close()
    return planted, evidence


@lru_cache(maxsize=1)
def tau_runs() -> list[dict[str, Any]]:
    """The 200 tau-bench airline runs (OpenAI chat messages in ``traj``)."""
    runs: list[dict[str, Any]] = json.loads(TAU_AIRLINE.read_text(encoding="utf-8"))
    return runs


def tau_evidence(run: dict[str, Any], index: int) -> SessionEvidence:
    """A run as SessionEvidence: its messages as turns, its tool calls with their results.

    tau-bench tools report failures as a result text starting with ``Error``.
    """
    results = {m.get("tool_call_id"): m.get("content") for m in run["traj"] if m["role"] == "tool"}
    turns, calls = [], []
    for message in run["traj"]:
        if message.get("content"):
            turns.append(Turn(message["role"], message["content"]))
        for call in message.get("tool_calls") or []:
            result = results.get(call["id"])
            failed = isinstance(result, str) and result.startswith("Error")
            args = json.loads(call["function"]["arguments"] or "{}")
            calls.append(ToolCall(call["function"]["name"], args, result, failed))
    return SessionEvidence(f"tau-{index}", turns=tuple(turns), tool_calls=tuple(calls))
