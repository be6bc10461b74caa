"""Expected flows per intent: ordered tool steps, the step that means success, goal indicators.

This module owns the flow configuration users write (TOML/JSON/YAML or a dict) and its
validation; :mod:`sessionlens.analysis.sequences` measures sessions against it. The default
flows are those of the bundled dental voice agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from .._config import read_config
from ..errors import ConfigError

__all__ = ["DEFAULT_FLOWS", "Flow", "Goal", "flow_steps_table", "load_flows"]

_GOAL_KINDS = ("tool_succeeded", "detail_captured", "caller_confirmed")


@dataclass(frozen=True)
class Goal:
    """An indicator that a session met part of its goal.

    ``kind`` is ``tool_succeeded`` (``target`` is a tool name), ``detail_captured``
    (``target`` is a booking-details key) or ``caller_confirmed``; ``success`` marks a
    declared success indicator, the others are completion indicators.
    """

    name: str
    kind: str
    target: str | None = None
    success: bool = False


@dataclass(frozen=True)
class Flow:
    """The tool steps a successful session of ``intent`` goes through, in order."""

    intent: str
    steps: tuple[str, ...]
    success_step: str
    goals: tuple[Goal, ...] = field(default_factory=tuple)


def _goal(intent: str, raw: Any) -> Goal:
    where = f"flows.{intent}.goals"
    if not isinstance(raw, Mapping):
        raise ConfigError(where, f"each goal must be a table, got {raw!r}")
    kinds = [k for k in _GOAL_KINDS if k in raw]
    if len(kinds) != 1:
        raise ConfigError(where, f"goal {raw!r} must have exactly one of {', '.join(_GOAL_KINDS)}")
    kind = kinds[0]
    target = None if kind == "caller_confirmed" else str(raw[kind])
    name = str(raw.get("name") or (f"{kind}:{target}" if target else kind))
    return Goal(name, kind, target, bool(raw.get("success", False)))


def load_flows(source: Mapping[str, Any] | str | Path) -> dict[str, Flow]:
    """Read flows from a TOML/JSON/YAML file or a dict.

    Each intent maps to ``steps`` (tool names in order), an optional ``success`` step (default
    the last) and optional ``goals``. A top-level ``flows`` table is also accepted.

    Raises
    ------
    ConfigError
        An intent without steps, a success step not among the steps, a malformed goal.

    Examples
    --------
    >>> flows = load_flows({"cancellation": {"steps": ["lookup", "cancel"]}})
    >>> flows["cancellation"].success_step
    'cancel'
    >>> load_flows({"booking": {"steps": []}})
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: flows.booking.steps: list at least one tool name
    """
    data = read_config(source, option="flows")
    if isinstance(data.get("flows"), Mapping):
        data = dict(data["flows"])
    flows: dict[str, Flow] = {}
    for intent, spec in data.items():
        if isinstance(spec, Sequence) and not isinstance(spec, str):
            spec = {"steps": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"flows.{intent}", "expected a table with a steps list")
        steps = spec.get("steps")
        if not isinstance(steps, Sequence) or isinstance(steps, str) or not steps:
            raise ConfigError(f"flows.{intent}.steps", "list at least one tool name")
        names = tuple(str(s) for s in steps)
        success = str(spec.get("success", names[-1]))
        if success not in names:
            raise ConfigError(
                f"flows.{intent}.success", f"{success!r} is not one of the steps {list(names)}"
            )
        goals = spec.get("goals", [])
        if not isinstance(goals, Sequence) or isinstance(goals, str):
            raise ConfigError(f"flows.{intent}.goals", "expected a list of goal tables")
        flows[str(intent)] = Flow(
            str(intent), names, success, tuple(_goal(intent, g) for g in goals)
        )
    return flows


_CONFIRM = {"caller_confirmed": True, "name": "caller confirmed"}
#: Flows of the bundled dental voice agent (the same steps ``datasets.FLOWS`` plants).
DEFAULT_FLOWS: dict[str, Flow] = load_flows(
    {
        "booking": {
            "steps": [
                "lookup_patient",
                "check_availability",
                "book_appointment",
                "send_confirmation",
            ],
            "goals": [
                {
                    "name": "appointment booked",
                    "tool_succeeded": "book_appointment",
                    "success": True,
                },
                {"name": "phone captured", "detail_captured": "phone_e164"},
                {"name": "children named", "detail_captured": "children"},
                {"name": "confirmation sent", "tool_succeeded": "send_confirmation"},
                _CONFIRM,
            ],
        },
        "rescheduling": {
            "steps": [
                "lookup_patient",
                "find_appointment",
                "check_availability",
                "reschedule_appointment",
            ],
            "goals": [
                {
                    "name": "appointment moved",
                    "tool_succeeded": "reschedule_appointment",
                    "success": True,
                },
                {"name": "new date requested", "detail_captured": "requested_dates"},
                _CONFIRM,
            ],
        },
        "cancellation": {
            "steps": ["lookup_patient", "find_appointment", "cancel_appointment"],
            "goals": [
                {
                    "name": "appointment cancelled",
                    "tool_succeeded": "cancel_appointment",
                    "success": True,
                },
                {"name": "phone captured", "detail_captured": "phone_e164"},
                _CONFIRM,
            ],
        },
        "info_lookup": {
            "steps": ["get_clinic_info"],
            "goals": [
                {"name": "answer found", "tool_succeeded": "get_clinic_info", "success": True}
            ],
        },
        "other": {
            "steps": ["transfer_to_staff"],
            "goals": [
                {"name": "transferred", "tool_succeeded": "transfer_to_staff", "success": True}
            ],
        },
    }
)


def flow_steps_table(flows: Mapping[str, Flow]) -> ir.Table:
    """The flows as an Ibis table: intent, step_index (0-based), step, is_success, steps."""
    rows = [
        {
            "intent": f.intent,
            "step_index": i,
            "step": step,
            "is_success": step == f.success_step,
            "flow_length": len(f.steps),
        }
        for f in flows.values()
        for i, step in enumerate(f.steps)
    ]
    schema = {
        "intent": "string",
        "step_index": "int64",
        "step": "string",
        "is_success": "boolean",
        "flow_length": "int64",
    }
    return ibis.memtable(rows, schema=schema)
