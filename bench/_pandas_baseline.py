"""The baseline of ``bench/analyze.py``: the same session metrics, written plainly in pandas.

Not part of the package. What an analyst would write with pandas over the same database:
read the canonical tables into DataFrames, then per session

- intent by the rules of the default taxonomy (sentences exploded into rows, one
  ``str.contains`` per pattern, weights summed per session, tools counted once, confidence
  ``(best - runner_up) / (best + smoothing)``, the summary from the caller sentence with the
  most evidence);
- the tool sequence (calls in ``seq`` order), tool and failed-call counts;
- completion against the expected flow of the intent (greedy in-order scan over successful
  calls) and the drop-off step;
- tokens and cost: observations with usage, roll-ups dropped, each priced by the best
  ``model_prices`` row (priority, provider agreement, most literal pattern, latest validity),
  a positive reported cost taking precedence.

Internal sessions are left out, as in ``analyze_sessions``. It returns one row per session.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from sessionlens.analysis import _cost_match as cm
from sessionlens.analysis.flows import DEFAULT_FLOWS
from sessionlens.analysis.intent import _SENTENCE_END, _summary
from sessionlens.analysis.taxonomy import DEFAULT_TAXONOMY


def _read(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    q = {
        "sessions": "SELECT session_id FROM sessions WHERE NOT is_internal",
        "traces": "SELECT trace_id, session_id, is_internal FROM traces",
        "obs": "SELECT observation_id, trace_id, parent_observation_id, model, provider, "
        "start_time, input_tokens, output_tokens, total_tokens, cache_read_tokens, "
        "cache_write_tokens, reasoning_tokens, reported_cost_usd FROM observations",
        "calls": "SELECT session_id, seq, tool_name, is_error FROM tool_calls",
        "turns": "SELECT session_id, seq, role, content FROM conversation_turns "
        "WHERE content IS NOT NULL",
        "prices": "SELECT * FROM model_prices",
    }
    return {k: con.execute(v).df() for k, v in q.items()}


def _intent(turns: pd.DataFrame, calls: pd.DataFrame, sessions: pd.Series) -> pd.DataFrame:
    tax = DEFAULT_TAXONOMY
    turns = turns[turns.session_id.isin(sessions)].copy()
    turns["speaker"] = turns.role.map(tax.speakers).fillna(0.0)
    turns = turns[turns.speaker > 0]
    turns["turn"] = turns.groupby("session_id").cumcount()  # index among spoken turns
    sent = turns.assign(text=turns.content.str.split(_SENTENCE_END)).explode("text")
    sent["text"] = sent.text.str.strip()
    sent = sent[sent.text.notna() & (sent.text != "")]
    sent["sent"] = sent.groupby(["session_id", "turn"]).cumcount()
    hits = []
    for spec in tax.intents:
        for p in spec.patterns:
            m = sent[sent.text.str.contains(p.regex)]
            first = m.groupby(["session_id", "turn"], as_index=False).agg(
                sent=("sent", "min"), speaker=("speaker", "first"), role=("role", "first")
            )
            hits.append(first.assign(intent=spec.name, weight=p.weight))
    h = pd.concat(hits, ignore_index=True)
    h["score"] = h.weight * h.speaker
    scores = h.pivot_table(index="session_id", columns="intent", values="score", aggfunc="sum")
    scores = scores.reindex(index=sessions, columns=list(tax.names)).fillna(0.0)
    c = calls[calls.session_id.isin(sessions)]
    names = pd.Series(c.tool_name.unique())
    for spec in tax.intents:
        for tool in spec.tools:
            glob = tool.name.lower()
            hit = set(names[names.map(lambda n, g=glob: fnmatch.fnmatchcase(n.lower(), g))])
            tc = c[c.tool_name.isin(hit)]
            ok = tc.groupby("session_id").is_error.apply(lambda e: (~e.fillna(False)).any())
            w = ok.map({True: tool.weight, False: tool.weight * tax.failed_tool_weight})
            scores[spec.name] = scores[spec.name].add(w, fill_value=0.0)
    arr = scores.to_numpy()
    order = np.argsort(-arr, axis=1, kind="stable")
    best_v = np.take_along_axis(arr, order[:, :1], axis=1)[:, 0]
    second = np.take_along_axis(arr, order[:, 1:2], axis=1)[:, 0]
    names_arr = np.array(tax.names)
    best = np.where(best_v > 0, names_arr[order[:, 0]], tax.fallback)
    conf = np.where(best_v > 0, (best_v - second) / (best_v + tax.smoothing), 0.0)
    out = pd.DataFrame(
        {"session_id": scores.index, "intent": best, "confidence": np.clip(conf, 0.0, 1.0)}
    )
    caller = h[h.role == "user"].merge(out[["session_id", "intent"]], on=["session_id", "intent"])
    caller = caller.groupby(["session_id", "turn", "sent"], as_index=False).weight.sum()
    caller = caller.sort_values(["session_id", "weight", "turn", "sent"], ascending=[1, 0, 1, 1])
    top = caller.drop_duplicates("session_id").merge(
        sent[["session_id", "turn", "sent", "text"]], on=["session_id", "turn", "sent"]
    )
    top["summary"] = top.text.map(_summary)
    return out.merge(top[["session_id", "summary"]], on="session_id", how="left")


def _progress(calls: pd.DataFrame, intents: pd.DataFrame) -> pd.DataFrame:
    calls = calls.sort_values(["session_id", "seq"])
    seqs = calls.groupby("session_id").agg(
        tools=("tool_name", list),
        tool_call_count=("tool_name", "size"),
        failed_tool_calls=("is_error", lambda e: int(e.fillna(False).sum())),
        ok=("is_error", lambda e: list(~e.fillna(False))),
    )
    df = intents.merge(seqs, left_on="session_id", right_index=True, how="left")

    def scan(row: Any) -> pd.Series:
        flow = DEFAULT_FLOWS.get(row.intent)
        if flow is None:
            return pd.Series({"completion_rate": np.nan, "drop_off_step": None})
        pos, reached = -1, 0
        tools = row.tools if isinstance(row.tools, list) else []
        oks = row.ok if isinstance(row.ok, list) else []
        for step in flow.steps:
            nxt = next((i for i in range(pos + 1, len(tools)) if tools[i] == step and oks[i]), None)
            if nxt is None:
                break
            pos, reached = nxt, reached + 1
        drop = flow.steps[reached] if reached < len(flow.steps) else None
        return pd.Series({"completion_rate": reached / len(flow.steps), "drop_off_step": drop})

    df[["completion_rate", "drop_off_step"]] = df.apply(scan, axis=1)
    df["tool_call_count"] = df.tool_call_count.fillna(0).astype(int)
    return df.drop(columns=["ok"])


def _price_candidates(pairs: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    known = set(prices.provider.dropna())
    fallback = {(k, v) for k, vs in cm.PROVIDER_FALLBACKS.items() for v in vs}
    preferred = {p: i for i, p in enumerate(cm.PREFERRED_PROVIDERS)}
    compiled = [re.compile("(?i)^(?:" + m + ")$") for m in prices.model_match]
    rows = []
    for model, prov in pairs.itertuples(index=False):
        eff = prov if prov in known else None
        name = re.sub(r"^projects/.+/models/", "", model).lower()
        for i, rx in enumerate(compiled):
            rp = prices.provider.iat[i]
            rp = None if pd.isna(rp) else rp
            if not (rp is None or eff is None or eff == rp or (eff, rp) in fallback):
                continue
            if not rx.search(name):
                continue
            if rp is not None and eff == rp:
                rank = 0
            elif rp is None:
                rank = 1
            elif eff is not None:
                rank = 2
            else:
                rank = 3 + preferred.get(rp, len(preferred))
            mm = prices.model_match.iat[i]
            rows.append(
                {
                    "model": model,
                    "match_provider": prov,
                    "price_row": i,
                    "priority": prices.priority.iat[i],
                    "rank": rank,
                    "literal": len(re.sub(r"\.\*|\\", "", mm)),
                    "wild": mm.count(".*"),
                    "valid_from": prices.valid_from.iat[i],
                    "valid_to": prices.valid_to.iat[i],
                    "model_match": mm,
                }
            )
    return pd.DataFrame(rows)


def _costs(t: dict[str, pd.DataFrame], sessions: pd.Series) -> pd.DataFrame:
    tr = t["traces"]
    tr = tr[~tr.is_internal & tr.session_id.isin(sessions)]
    obs = t["obs"].merge(tr[["trace_id", "session_id"]], on="trace_id")
    tok = obs[["input_tokens", "output_tokens", "total_tokens"]].fillna(0)
    usage = obs[(tok > 0).any(axis=1) | (obs.reported_cost_usd.fillna(0) > 0)]
    links = obs.set_index("observation_id").parent_observation_id
    ancestors = set()
    level = usage.parent_observation_id.dropna()
    for _ in range(cm.MAX_DEPTH):
        ancestors |= set(level)
        level = links.reindex(level.to_numpy()).dropna()
    usage = usage[~usage.observation_id.isin(ancestors)].copy()
    prov = usage.provider.str.lower()
    usage["match_provider"] = prov.map(lambda p: cm.PROVIDER_ALIASES.get(p, p), na_action="ignore")
    pairs = usage[usage.model.notna()][["model", "match_provider"]].drop_duplicates()
    cand = _price_candidates(pairs, t["prices"])
    j = usage.merge(cand, on=["model", "match_provider"], how="left")
    valid = (j.valid_from.isna() | (j.start_time >= j.valid_from)) & (
        j.valid_to.isna() | (j.start_time < j.valid_to)
    )
    j = j[valid | j.price_row.isna()]
    j = j.sort_values(
        ["observation_id", "priority", "rank", "literal", "wild", "valid_from", "model_match"],
        ascending=[True, False, True, False, True, False, True],
        na_position="last",
    ).drop_duplicates("observation_id")
    p = t["prices"]
    for col in ("input", "output", "cache_read", "cache_write", "reasoning"):
        j[col] = j.price_row.map(
            lambda i, c=col: p[f"{c}_usd_per_mtok"].iat[int(i)] if pd.notna(i) else np.nan
        )
    n = {c: j[c].fillna(0).astype(float) for c in cm.TOKENS}
    cr = j.cache_read.fillna(j.input).fillna(0)
    cw = j.cache_write.fillna(j.input).fillna(0)
    rs = j.reasoning.fillna(j.output).fillna(0)
    uncached = (n["input_tokens"] - n["cache_read_tokens"] - n["cache_write_tokens"]).clip(0)
    answer = (n["output_tokens"] - n["reasoning_tokens"]).clip(0)
    usd = (
        uncached * j.input.fillna(0)
        + n["cache_read_tokens"] * cr
        + n["cache_write_tokens"] * cw
        + answer * j.output.fillna(0)
        + n["reasoning_tokens"] * rs
    ) / 1e6
    priceable = j.price_row.notna() & (j.input_tokens.notna() | j.output_tokens.notna())
    computed = usd.where(priceable)
    reported = j.reported_cost_usd.where(j.reported_cost_usd > 0)
    j["cost_usd"] = reported.fillna(computed)
    return j.groupby("session_id", as_index=False).agg(
        input_tokens=("input_tokens", "sum"),
        output_tokens=("output_tokens", "sum"),
        cost_usd=("cost_usd", lambda s: s.sum(min_count=1)),
    )


def analyze_pandas(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per (non-internal) session: intent, confidence, summary, tools, counts,
    completion_rate, drop_off_step, tokens and cost_usd."""
    t = _read(con)
    sessions = t["sessions"].session_id
    intents = _intent(t["turns"], t["calls"], sessions)
    prog = _progress(t["calls"][t["calls"].session_id.isin(sessions)], intents)
    return prog.merge(_costs(t, sessions), on="session_id", how="left")
