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

Generation uses one ``random.Random(seed)`` and no clock, so a seed always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ._export_writer import (
    OBSERVATION_COLUMNS,
    SCORE_COLUMNS,
    write_langfuse_blob_export,
    write_langfuse_trace_downloads,
)

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
_MODELS = {  # model -> (provider, share of sessions)
    "gpt-4o-mini": ("openai", 0.35),
    "gpt-4.1": ("openai", 0.20),
    "claude-sonnet-4-5-20250929": ("anthropic", 0.20),
    "gemini-2.5-flash": ("google", 0.15),
    "o4-mini": ("openai", 0.10),
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


def _words(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


_DEFAULT_START = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
_SAMPLE = {"n_sessions": 60, "seed": 7}
_VERSION = "1.4.2"
_TOOL_SCHEMA_TOKENS = 640  # the tool definitions sent with every request
_USAGE_KEYS = ("input", "output", "input_cache_read", "input_cache_creation", "output_reasoning")
_PARAMS: dict[str, dict[str, Any]] = {
    "": {"temperature": 0.3, "max_tokens": 400},
    "o4-mini": {"reasoning_effort": "low", "max_completion_tokens": 2048},
}
_PROMPT = {"prompt_name": "dental-receptionist", "prompt_version": 3, "prompt_id": "pr-dental-3"}

_GIRLS = _words("Mia Ava Zoe Lily Emma Sofia Chloe Nora Isla Maya Hazel Ruby Aria Layla")
_BOYS = _words("Leo Noah Eli Sam Max Owen Liam Theo Jack Milo Ezra Finn Mateo Kai")
_PARENTS = _words(
    "Sarah Chen|Michael Johnson|Priya Patel|Carlos Ramirez|Jessica Nguyen|David Kim|"
    "Aisha Mohammed|Emily Brooks|Jamal Washington|Laura Schmidt|Daniel Okafor|Hannah Levi|"
    "Marisol Torres|Kevin O'Brien|Yuki Tanaka|Rachel Goldberg|Tom Becker|Fatima Ali",
    sep="|",
)
_AREAS = ["415", "510", "650", "408", "707", "925"]
_PHONE_FORMATS = [
    "({a}) 555-{n}",
    "{a}-555-{n}",
    "+1 {a} 555 {n}",
    "{a}.555.{n}",
    "{a} 555 {n}",
]
_WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
_MONTHS = _words(
    "January February March April May June July August September October November December"
)
_NUMBERS = {2: "two", 3: "three"}
_OPENERS = {
    "booking": [
        "Hi, I'd like to book a cleaning for {kids}.",
        "Hello, I need to make a dentist appointment for {kids}.",
        "Hi there, can I schedule checkups for {kids}?",
        "Yeah hi, I'm calling to set up a visit for {kids}.",
    ],
    "rescheduling": [
        "Hi, I need to move the appointment for {kids}.",
        "Hello, can we reschedule the checkup for {kids}?",
        "Something came up and I have to change the visit for {kids}.",
    ],
    "cancellation": [
        "Hi, I need to cancel the appointment for {kids}.",
        "Hello, we have to cancel {kids}'s cleaning, sorry.",
        "Hi, I'm calling to cancel a visit for {kids}.",
    ],
}
_INFO = {  # topic -> (caller question, clinic answer); {kids} only in some
    "hours": ("Hi, what are your hours on Saturdays?", "We're open Saturdays 9am to 1pm."),
    "location": (
        "Where exactly are you located, and is there parking?",
        "We're at 1200 Valencia Street, with free parking behind the building.",
    ),
    "insurance": (
        "Do you take Delta Dental for {kids}?",
        "Yes, we're in network with Delta Dental PPO and most Medi-Cal plans.",
    ),
    "age_policy": (
        "At what age do you start seeing kids? I'm asking for {kids}.",
        "We see children from their first tooth, usually around age one.",
    ),
}
_OTHER = [
    "Hi, I have a question about a bill I got last week.",
    "I think I was charged twice for the last visit.",
    "Can I talk to someone about a payment plan?",
]
_IDENTITY = [
    "This is {parent}, my number is {phone}.",
    "My name's {parent}, you can reach me at {phone}.",
    "It's {parent}. Phone number {phone}.",
    "{parent} here, the number on file should be {phone}.",
]
_DATE_ASKS = {
    "booking": ["Do you have anything {d}?", "We're hoping for {d}.", "Could we come in {d}?"],
    "rescheduling": ["Can we move it to {d}?", "Maybe {d} instead?"],
    "cancellation": ["It's the appointment {d}.", "The one we had {d}."],
}
_FILLERS = ["Yes, that works.", "Okay, sure.", "Yes please, go ahead.", "Great, thank you."]
_SYSTEM = (
    "You are Molly, the phone assistant of Bright Smiles Pediatric Dentistry in San Francisco. "
    "Callers are parents booking, moving or cancelling visits for their children, or asking "
    "about the clinic. Confirm the guardian's name and phone number, use the tools to look up "
    "patients and appointments, never invent availability, keep answers short and friendly "
    "because they are read aloud, and offer a transfer to the front desk when you cannot help."
)
_ERRORS = [
    ("TimeoutError", "scheduling API did not respond within 5s"),
    ("HTTPError", "503 Service Unavailable from practice management system"),
    ("ConnectionResetError", "connection to pms.brightsmiles.internal reset by peer"),
]


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


def _tokens(text: str) -> int:
    return max(1, round(len(text) / 3.8))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class _Builder:
    """Appends one session at a time to the record lists; holds the only ``Random``.

    The state of the session being built (ids, environment, chat history, the context its
    tool arguments and results are drawn from) lives on the builder, so the per-record
    methods only take what changes per record.
    """

    def __init__(self, rng: random.Random, project_id: str) -> None:
        self.rng, self.project = rng, project_id
        self.traces: list[dict[str, Any]] = []
        self.observations: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []
        self.planted: list[dict[str, Any]] = []
        self.sid = self.user = self.env = self.tid = self.root = ""
        self.ctx: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.prev_prompt = 0

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def ms(self, lo: float, hi: float) -> timedelta:
        return timedelta(milliseconds=self.rng.randint(int(lo * 1000), int(hi * 1000)))

    def family(self) -> dict[str, Any]:
        rng, kids = self.rng, {}
        for _ in range(rng.choices([1, 2, 3], [0.55, 0.3, 0.15])[0]):
            g = rng.choice("fm")
            kids[rng.choice([n for n in (_GIRLS if g == "f" else _BOYS) if n not in kids])] = g
        area, line = rng.choice(_AREAS), f"01{rng.randrange(100):02d}"
        return {"parent": rng.choice(_PARENTS), "kids": kids, "area": area, "line": line}

    def kids_phrase(self, kids: dict[str, str]) -> str:
        (*head, tail), genders = list(kids), set(kids.values())
        if not head:
            word = "daughter" if "f" in genders else "son"
            return self.rng.choice([f"my {word} {tail}", f"my kid, {tail}", f"my little {tail}"])
        joined = f"{', '.join(head)} and {tail}"
        options = [f"my {_NUMBERS[len(kids)]} kids, {joined}", f"my kids {joined}"]
        if len(genders) == 1:
            options.append(f"my {'girls' if 'f' in genders else 'boys'}, {joined}")
        return self.rng.choice(options)

    def date_phrase(self, day0: date) -> tuple[str, date]:
        delta = self.rng.randint(1, 7) if self.rng.random() < 0.4 else self.rng.randint(8, 30)
        d = day0 + timedelta(days=delta)
        forms = [f"on {d.isoformat()}", f"on {_MONTHS[d.month - 1]} {_ordinal(d.day)}"]
        if delta <= 7:  # "next <weekday>" = the first such weekday after the call's date
            forms += [f"next {_WEEKDAYS[d.weekday()]}"] * 2
        if delta == 1:
            forms.append("tomorrow")
        return self.rng.choice(forms), d

    def session(self, start: datetime, fam: dict[str, Any], env: str) -> None:
        rng = self.rng
        intent = rng.choices(list(INTENT_WEIGHTS), list(INTENT_WEIGHTS.values()))[0]
        flow, r = FLOWS[intent], rng.random()
        status = "completed" if r < 0.74 else "abandoned" if r < 0.92 else "failed"
        stop = len(flow) if status == "completed" else rng.randrange(len(flow))
        calls: list[tuple[str, bool]] = []
        for step in flow[:stop]:
            calls += [(step, False), (step, True)] if rng.random() < 0.08 else [(step, True)]
        if status == "failed":  # the step errors, and so does the agent's retry, if any
            calls += [(flow[stop], False)] * rng.choice([1, 2])
        phone = rng.choice(_PHONE_FORMATS).format(a=fam["area"], n=fam["line"])
        e164, kids, dates, topic = f"+1{fam['area']}555{fam['line']}", fam["kids"], [], ""
        if intent in _OPENERS:
            opener = rng.choice(_OPENERS[intent]).format(kids=self.kids_phrase(kids))
        elif intent == "info_lookup":
            topic = rng.choice(list(_INFO))
            opener, kids = _INFO[topic][0], kids if "{kids}" in _INFO[topic][0] else {}
            opener = opener.format(kids=self.kids_phrase(kids)) if kids else opener
        else:
            opener, kids = rng.choice(_OTHER), {}
        fragments = [opener, rng.choice(_IDENTITY).format(parent=fam["parent"], phone=phone)]
        if intent in _DATE_ASKS:
            phrase, day = self.date_phrase(start.date())
            ask, dates = rng.choice(_DATE_ASKS[intent]).format(d=phrase), [day]
            if intent == "booking" and rng.random() < 0.3:
                phrase, day = self.date_phrase(start.date())
                ask, dates = f"{ask} If not, {phrase} works too.", [*dates, day]
            fragments.append(ask)
        n_traces = rng.choices([1, 2, 3, 4], [0.2, 0.35, 0.3, 0.15])[0]
        while len(fragments) > n_traces:
            fragments[:2] = [f"{fragments[0]} {fragments[1]}"]
        fragments += rng.sample(_FILLERS, n_traces - len(fragments))
        cuts = sorted(rng.choices(range(len(calls) + 1), k=n_traces - 1))
        chunks = [calls[a:b] for a, b in zip([0, *cuts], [*cuts, len(calls)], strict=True)]
        model = rng.choices(list(_MODELS), [s for _, s in _MODELS.values()])[0]
        # Some deployments answer the caller with a cheaper model than the one routing tools.
        reply_model = "gpt-4o-mini" if rng.random() < 0.15 else model
        self.sid, self.env = f"sess-{self.hex(12)}", env
        self.user = "caller-" + hashlib.sha256(e164.encode()).hexdigest()[:10]
        self.ctx = {
            "e164": e164,
            "parent": fam["parent"],
            "kids": list(fam["kids"]),
            "pids": [f"P-{self.hex(6)}" for _ in fam["kids"]],
            "apt": f"APT-{self.hex(8)}",
            "dates": [d.isoformat() for d in dates] or [(start.date() + timedelta(3)).isoformat()],
            "slot": rng.choice(["08:30", "09:15", "10:45", "13:30", "15:00", "16:15"]),
            "topic": topic,
        }
        self.history, self.prev_prompt = [{"role": "system", "content": _SYSTEM}], 0
        first, t = len(self.observations), start
        for turn, (text, chunk) in enumerate(zip(fragments, chunks, strict=True)):
            closing = status if turn == n_traces - 1 else ""
            t = self.trace(t, turn, text, chunk, model, reply_model, closing) + self.ms(3, 120)
        self.plant(intent, status, flow, kids, fam, phone, dates, self.observations[first:])
        self.score_session(status)

    def trace(
        self,
        t: datetime,
        turn: int,
        text: str,
        chunk: list[tuple[str, bool]],
        model: str,
        reply_model: str,
        closing: str,
    ) -> datetime:
        self.tid, self.root = self.hex(32), self.hex(16)
        self.history.append({"role": "user", "content": text})
        cursor, rows = t + self.ms(0.01, 0.05), []
        for tool, ok in chunk:
            call_id, args = "call_" + self.hex(24), _tool_args(tool, self.ctx)
            function = {"name": tool, "arguments": json.dumps(args)}
            call = {"id": call_id, "type": "function", "function": function}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            gen, cursor = self.generation(cursor, message, model)
            end, level, error = cursor + self.ms(0.05, 1.2), "DEFAULT", None
            if ok:
                result = _tool_result(tool, self.ctx)
            else:
                kind, msg = self.rng.choice(_ERRORS)
                result, level = {"error": {"type": kind, "message": msg}}, "ERROR"
                error = f"{kind}: {msg}"
            tool_obs = self.obs("TOOL", tool, cursor, end, input=json.dumps(args))
            tool_obs.update(output=json.dumps(result), level=level, status_message=error)
            tool_obs["metadata"] = {"tool_call_id": call_id}
            rows += [gen, tool_obs]
            self.history.append(
                {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}
            )
            cursor = end + self.ms(0.005, 0.03)
        message = {"role": "assistant", "content": _reply(chunk, self.ctx, closing, self.rng)}
        gen, cursor = self.generation(cursor, message, reply_model)
        end = cursor + self.ms(0.005, 0.02)
        span = self.obs(
            "SPAN", "agent-turn", t, end, input=json.dumps({"role": "user", "content": text})
        )
        span.update(id=self.root, parent_observation_id=None, output=json.dumps(message))
        if closing == "failed":
            span.update(level="ERROR", status_message="turn ended after a tool failure")
        self.observations += [span, *rows, gen]
        created = end + self.ms(0.5, 3)
        meta = {"channel": "voice", "call_sid": f"CA{self.sid[5:]}", "turn": str(turn)}
        tags = ["voice", "pediatric-dental"] + (["experiment"] if self.env != "default" else [])
        self.traces.append(
            {
                "id": self.tid,
                "timestamp": t,
                "name": "dental-voice-agent",
                "environment": self.env,
                "project_id": self.project,
                "metadata": meta,
                "user_id": self.user,
                "session_id": self.sid,
                "release": "agent-2026.09",
                "version": _VERSION,
                "public": False,
                "bookmarked": False,
                "tags": tags,
                "input": span["input"],
                "output": span["output"],
                "created_at": created,
                "updated_at": created + self.ms(0.01, 0.5),
            }
        )
        return end

    def generation(
        self, start: datetime, message: dict[str, Any], model: str
    ) -> tuple[dict[str, Any], datetime]:
        """A chat-completion call that re-sends the history; appends ``message`` to it."""
        size = sum(
            4 + _tokens(json.dumps(m.get("content") or m.get("tool_calls"))) for m in self.history
        )
        prompt = _TOOL_SCHEMA_TOKENS + size
        usage: dict[str, int] = {}
        if model.startswith("claude"):  # the previous prompt is cached, the new part written
            if self.prev_prompt:
                usage["input_cache_read"] = self.prev_prompt
            usage["input_cache_creation"] = int((prompt - self.prev_prompt) * 0.8)
            self.prev_prompt = prompt
        usage["input"] = prompt - sum(usage.values())
        usage["output"] = 8 + _tokens(json.dumps(message["content"] or message["tool_calls"]))
        if model == "o4-mini":
            usage["output_reasoning"] = 64 * self.rng.randint(1, 12)
        elif model == "gemini-2.5-flash":
            usage["output_reasoning"] = self.rng.randint(40, 700)
        usage["total"] = sum(usage.values())
        price = PRICES_PER_MTOK[model]
        cost = {k: round(n * price[k] / 1e6, 12) for k, n in usage.items() if k != "total"}
        cost["total"] = round(sum(cost.values()), 12)
        ttft = self.ms(0.25, 0.9)
        end = start + ttft + self.ms(0.2, 0.5 + usage["total"] / 600)
        row = self.obs("GENERATION", f"chat {model}", start, end, input=json.dumps(self.history))
        self.history.append(message)
        calls = message.get("tool_calls") or []
        row.update(
            output=json.dumps(message),
            metadata={"gen_ai.system": _MODELS[model][0]},
            provided_model_name=model,
            model_parameters=json.dumps(_PARAMS.get(model, _PARAMS[""])),
            usage_details=usage,
            cost_details=cost,
            total_cost=cost["total"],
            completion_start_time=start + ttft,
            time_to_first_token=ttft.total_seconds(),
            model_id="m-" + hashlib.sha1(model.encode()).hexdigest()[:22],
            usage_pricing_tier_name="Standard",
            tool_calls=[json.dumps(c) for c in calls],
            tool_call_names=[c["function"]["name"] for c in calls],
            **_PROMPT,
        )
        return row, end + self.ms(0.002, 0.01)

    def obs(
        self, kind: str, name: str, start: datetime, end: datetime, input: str
    ) -> dict[str, Any]:
        """An observation row of the current trace, every legacy export column present."""
        created = end + self.ms(0.3, 2)
        row: dict[str, Any] = dict.fromkeys(OBSERVATION_COLUMNS)
        row.update(
            id=self.hex(16),
            trace_id=self.tid,
            project_id=self.project,
            environment=self.env,
            type=kind,
            parent_observation_id=self.root,
            start_time=start,
            end_time=end,
            name=name,
            metadata={},
            level="DEFAULT",
            version=_VERSION,
            input=input,
            usage_details={},
            cost_details={},
            latency=(end - start).total_seconds(),
            created_at=created,
            updated_at=created + self.ms(0, 0.2),
            tool_calls=[],
            tool_call_names=[],
            tool_definitions={},
        )
        return row

    def plant(
        self,
        intent: str,
        status: str,
        flow: list[str],
        kids: dict[str, str],
        fam: dict[str, Any],
        phone: str,
        dates: list[date],
        obs: list[dict[str, Any]],
    ) -> None:
        """Record the session's answers, counted from its records."""
        tools = sorted((o for o in obs if o["type"] == "TOOL"), key=lambda o: o["start_time"])
        reached: list[str] = []
        for o in tools:  # the longest prefix of the flow whose steps succeeded in order
            if (
                len(reached) < len(flow)
                and o["level"] != "ERROR"
                and o["name"] == flow[len(reached)]
            ):
                reached.append(o["name"])
        gens = [o for o in obs if o["type"] == "GENERATION"]
        tok = {k: sum(o["usage_details"].get(k, 0) for o in gens) for k in _USAGE_KEYS}
        self.planted.append(
            {
                "session_id": self.sid,
                "user_id": self.user,
                "intent": intent,
                "children": list(kids),
                "child_count": len(kids),
                "parent_name": fam["parent"],
                "phone_raw": phone,
                "phone_e164": self.ctx["e164"],
                "requested_dates": [d.isoformat() for d in dates],
                "tool_sequence": [o["name"] for o in tools],
                "expected_flow": list(flow),
                "reached_steps": reached,
                "completion_rate": len(reached) / len(flow),
                "drop_off_step": flow[len(reached)] if len(reached) < len(flow) else None,
                "status": status,
                "trace_count": len({o["trace_id"] for o in obs}),
                "observation_count": len(obs),
                "tool_call_count": len(tools),
                "failed_tool_calls": sum(o["level"] == "ERROR" for o in tools),
                "models": sorted({o["provided_model_name"] for o in gens}),
                "input_tokens": tok["input"]
                + tok["input_cache_read"]
                + tok["input_cache_creation"],
                "output_tokens": tok["output"] + tok["output_reasoning"],
                "cache_read_tokens": tok["input_cache_read"],
                "cache_write_tokens": tok["input_cache_creation"],
                "reasoning_tokens": tok["output_reasoning"],
                "reported_cost_usd": sum(o["total_cost"] for o in gens),
                "is_internal": self.env != "default",
                "start_time": min(o["start_time"] for o in obs),
                "end_time": max(o["end_time"] for o in obs),
            }
        )

    def score_session(self, status: str) -> None:
        """Scores people attach to calls: a resolved flag, caller CSAT, evaluator grades."""
        rng, last, good = self.rng, self.traces[-1], status == "completed"
        when = last["created_at"] + self.ms(30, 900)
        base = dict.fromkeys(SCORE_COLUMNS)
        base.update(
            project_id=self.project,
            environment=self.env,
            timestamp=when,
            created_at=when,
            updated_at=when + self.ms(0, 1),
            trace_id=last["id"],
            source="API",
            data_type="NUMERIC",
        )
        if self.env != "default":
            grade = round(rng.uniform(0.6, 1.0) if good else rng.uniform(0.0, 0.5), 2)
            comment = "Tool sequence matches the expected flow." if good else "Flow unfinished."
            self.scores.append(
                {
                    **base,
                    "id": self.hex(32),
                    "name": "booking-correctness",
                    "value": grade,
                    "source": "EVAL",
                    "comment": comment,
                }
            )
            return
        if rng.random() < 0.4:
            self.scores.append(
                {
                    **base,
                    "id": self.hex(32),
                    "name": "call_resolved",
                    "value": float(good),
                    "data_type": "BOOLEAN",
                    "string_value": str(good),
                }
            )
        if rng.random() < 0.25:  # a session score: no trace, named by session id
            csat = rng.choice([4, 5, 5]) if good else rng.choice([1, 2, 3])
            self.scores.append(
                {
                    **base,
                    "id": self.hex(32),
                    "trace_id": None,
                    "session_id": self.sid,
                    "name": "csat",
                    "value": float(csat),
                    "source": "ANNOTATION",
                }
            )


def _tool_args(tool: str, ctx: dict[str, Any]) -> dict[str, Any]:
    return {
        "lookup_patient": {"phone": ctx["e164"], "guardian_name": ctx["parent"]},
        "check_availability": {"date": ctx["dates"][-1], "patient_count": len(ctx["pids"])},
        "book_appointment": {
            "patient_ids": ctx["pids"],
            "date": ctx["dates"][0],
            "time": ctx["slot"],
            "visit_type": "cleaning",
        },
        "send_confirmation": {"phone": ctx["e164"], "channel": "sms", "appointment_id": ctx["apt"]},
        "find_appointment": {"patient_ids": ctx["pids"]},
        "reschedule_appointment": {
            "appointment_id": ctx["apt"],
            "new_date": ctx["dates"][-1],
            "new_time": ctx["slot"],
        },
        "cancel_appointment": {"appointment_id": ctx["apt"], "reason": "caller_request"},
        "get_clinic_info": {"topic": ctx["topic"]},
        "transfer_to_staff": {"queue": "billing", "reason": "billing question"},
    }[tool]


def _tool_result(tool: str, ctx: dict[str, Any]) -> dict[str, Any]:
    patients = [
        {"patient_id": p, "first_name": n} for p, n in zip(ctx["pids"], ctx["kids"], strict=True)
    ]
    return {
        "lookup_patient": {"guardian_id": "G-" + ctx["e164"][-4:], "patients": patients},
        "check_availability": {"date": ctx["dates"][-1], "slots": [ctx["slot"], "16:45"]},
        "book_appointment": {
            "appointment_id": ctx["apt"],
            "status": "booked",
            "date": ctx["dates"][0],
            "time": ctx["slot"],
        },
        "send_confirmation": {"sent": True, "channel": "sms"},
        "find_appointment": {
            "appointment_id": ctx["apt"],
            "date": ctx["dates"][0],
            "time": "10:30",
            "patient_ids": ctx["pids"],
        },
        "reschedule_appointment": {
            "appointment_id": ctx["apt"],
            "status": "rescheduled",
            "date": ctx["dates"][-1],
            "time": ctx["slot"],
        },
        "cancel_appointment": {"appointment_id": ctx["apt"], "status": "cancelled"},
        "get_clinic_info": {"topic": ctx["topic"], "answer": _INFO.get(ctx["topic"], ("", ""))[1]},
        "transfer_to_staff": {"transferred": True, "queue": "billing", "wait_minutes": 4},
    }[tool]


def _reply(
    chunk: list[tuple[str, bool]], ctx: dict[str, Any], closing: str, rng: random.Random
) -> str:
    if closing == "failed":
        return (
            "I'm sorry, our scheduling system isn't responding right now. Please call back "
            "in a little while or I can have the front desk call you."
        )
    if not chunk:
        return rng.choice(
            [
                "Sure, I can help with that. Can I have your name and the phone "
                "number on the account?",
                "Of course! Which day works best for you?",
                "Got it, one moment while I pull that up.",
            ]
        )
    tool = chunk[-1][0]
    if tool == "get_clinic_info":
        return str(_tool_result(tool, ctx)["answer"])
    return {
        "lookup_patient": f"Thanks, I found {', '.join(ctx['kids'])} in our system.",
        "check_availability": f"I have {ctx['slot']} or 16:45 available. Which works better?",
        "book_appointment": f"You're booked for {ctx['dates'][0]} at {ctx['slot']}.",
        "send_confirmation": "I've texted you a confirmation. Anything else I can help with?",
        "find_appointment": f"I see the appointment on {ctx['dates'][0]} at 10:30.",
        "reschedule_appointment": f"Done, it's now {ctx['dates'][-1]} at {ctx['slot']}.",
        "cancel_appointment": "That appointment is cancelled. Would you like to rebook later?",
        "transfer_to_staff": "I'm transferring you to our billing team now, please hold.",
    }[tool]


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
    builder, families = _Builder(rng, project_id), list[dict[str, Any]]()
    for i, when in enumerate(starts):
        if families and rng.random() < repeat_caller_share:
            fam = rng.choice(families)
        else:
            fam = builder.family()
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
