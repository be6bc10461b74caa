"""How a synthetic call becomes Langfuse records: the session builder behind ``datasets.generate``.

This private module owns the mechanics of :func:`sessionlens.datasets.generate`: ids, timing,
the re-sent chat history, token usage and cost per model, tool calls that fail and are
retried, traces, observations, scores, and the planted answers counted from those records.
What the caller and the agent *say* lives in ``_voice_script``; the public constants that
define the scenario (intent mix, flows, prices) stay in ``datasets`` and are handed to
:class:`_Builder`, so this module imports neither ``datasets`` nor anything that does.

The builder draws from the generator's single ``random.Random`` in a fixed order; changing
that order changes every record of every seed (and the bundled sample).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from ._export_writer import OBSERVATION_COLUMNS, SCORE_COLUMNS
from ._voice_script import (
    _ERRORS,
    _FILLERS,
    _SYSTEM,
    _reply,
    _tool_args,
    _tool_result,
    _utterances,
)

_MODELS = {  # model -> (provider, share of sessions)
    "gpt-4o-mini": ("openai", 0.35),
    "gpt-4.1": ("openai", 0.20),
    "claude-sonnet-4-5-20250929": ("anthropic", 0.20),
    "gemini-2.5-flash": ("google", 0.15),
    "o4-mini": ("openai", 0.10),
}
_VERSION = "1.4.2"
_TOOL_SCHEMA_TOKENS = 640  # the tool definitions sent with every request
_USAGE_KEYS = ("input", "output", "input_cache_read", "input_cache_creation", "output_reasoning")
_PARAMS: dict[str, dict[str, Any]] = {
    "": {"temperature": 0.3, "max_tokens": 400},
    "o4-mini": {"reasoning_effort": "low", "max_completion_tokens": 2048},
}
_PROMPT = {"prompt_name": "dental-receptionist", "prompt_version": 3, "prompt_id": "pr-dental-3"}


def _tokens(text: str) -> int:
    return max(1, round(len(text) / 3.8))


class _Builder:
    """Appends one session at a time to the record lists; holds the only ``Random``.

    The state of the session being built (ids, environment, chat history, the context its
    tool arguments and results are drawn from) lives on the builder, so the per-record
    methods only take what changes per record.
    """

    def __init__(
        self,
        rng: random.Random,
        project_id: str,
        *,
        intent_weights: Mapping[str, float],
        flows: Mapping[str, list[str]],
        prices: Mapping[str, Mapping[str, float]],
    ) -> None:
        self.rng, self.project = rng, project_id
        self.intent_weights, self.flows, self.prices = intent_weights, flows, prices
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

    def session(self, start: datetime, fam: dict[str, Any], env: str) -> None:
        rng = self.rng
        intent = rng.choices(list(self.intent_weights), list(self.intent_weights.values()))[0]
        flow, r = self.flows[intent], rng.random()
        status = "completed" if r < 0.74 else "abandoned" if r < 0.92 else "failed"
        stop = len(flow) if status == "completed" else rng.randrange(len(flow))
        calls: list[tuple[str, bool]] = []
        for step in flow[:stop]:
            calls += [(step, False), (step, True)] if rng.random() < 0.08 else [(step, True)]
        if status == "failed":  # the step errors, and so does the agent's retry, if any
            calls += [(flow[stop], False)] * rng.choice([1, 2])
        phone, kids, dates, topic, fragments = _utterances(rng, intent, fam, start.date())
        e164 = f"+1{fam['area']}555{fam['line']}"
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
        price = self.prices[model]
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
                # A caller may name the same day twice; the request is the distinct days.
                "requested_dates": list(dict.fromkeys(d.isoformat() for d in dates)),
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
