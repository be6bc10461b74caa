"""Goal indicators: which of an intent's declared success and completion signals a session met.

A flow can declare indicators beyond its tool steps (see :class:`~.flows.Goal`): a tool call
succeeded, a booking detail was captured, the caller confirmed. This module owns evaluating
them for one session from its evidence and extracted details; the result lands in
``session_analysis.goals_json`` and ``goal_completion`` (share of indicators met).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .evidence import SessionEvidence
from .flows import Flow, Goal

__all__ = ["caller_confirmed", "evaluate_goals"]

# Short affirmations a caller gives when the agent reads back a booking or asks "shall I".
_CONFIRM = re.compile(
    r"\b(yes|yeah|yep|yup|correct|that'?s (right|correct|perfect|great)|sounds (good|great)|"
    r"perfect|please do|go ahead|confirm(ed)?|works for me|that works)\b",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"\b(no|not|don'?t|doesn'?t|nope)\b", re.IGNORECASE)


def caller_confirmed(evidence: SessionEvidence) -> bool:
    """Whether the caller affirmed something the agent said (an affirmation after an agent turn).

    Examples
    --------
    >>> from sessionlens.analysis.evidence import SessionEvidence, Turn
    >>> said = (Turn("assistant", "Tuesday at 9?"), Turn("user", "Yes, perfect"))
    >>> ev = SessionEvidence("s", turns=said)
    >>> caller_confirmed(ev)
    True
    >>> caller_confirmed(SessionEvidence("s", turns=(Turn("user", "yes hello"),)))
    False
    """
    agent_spoke = False
    for turn in evidence.turns:
        if turn.role == "assistant":
            agent_spoke = True
        elif turn.role == "user" and agent_spoke:
            text = turn.content
            if _CONFIRM.search(text) and not _NEGATED.search(text[:40]):
                return True
    return False


def _captured(details: Mapping[str, Any], key: str) -> bool:
    value: Any = details
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return value not in (None, "", [], {}, 0)


def _met(goal: Goal, evidence: SessionEvidence, details: Mapping[str, Any]) -> bool:
    if goal.kind == "tool_succeeded":
        return any(c.name == goal.target and not c.is_error for c in evidence.tool_calls)
    if goal.kind == "detail_captured":
        return _captured(details, goal.target or "")
    return caller_confirmed(evidence)


def evaluate_goals(
    flow: Flow | None, evidence: SessionEvidence, details: Mapping[str, Any]
) -> dict[str, Any]:
    """Evaluate ``flow``'s goal indicators for one session.

    Returns
    -------
    dict
        ``met`` and ``unmet`` (indicator names), ``success`` (every declared success
        indicator met; ``None`` when the flow declares none) and ``completion`` (share of
        indicators met; ``None`` without indicators).

    Examples
    --------
    >>> from sessionlens.analysis.flows import DEFAULT_FLOWS
    >>> from sessionlens.analysis.evidence import SessionEvidence, ToolCall
    >>> ev = SessionEvidence("s", tool_calls=(ToolCall("get_clinic_info"),))
    >>> evaluate_goals(DEFAULT_FLOWS["info_lookup"], ev, {})
    {'met': ['answer found'], 'unmet': [], 'success': True, 'completion': 1.0}
    """
    goals = flow.goals if flow is not None else ()
    met = [g.name for g in goals if _met(g, evidence, details)]
    unmet = [g.name for g in goals if g.name not in met]
    declared = [g for g in goals if g.success]
    return {
        "met": met,
        "unmet": unmet,
        "success": all(g.name in met for g in declared) if declared else None,
        "completion": len(met) / len(goals) if goals else None,
    }
