"""Incremental analysis gives what a full one gives; the shortcuts behind its speed are exact.

An incremental run recomputes only changed sessions and recounts tags only for their users;
the rule classifier skips the per-sentence scan when one search over the message rules a
pattern out. Each shortcut is checked against the plain computation on real-shaped data.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens import datasets
from sessionlens.analysis.evidence import SessionEvidence, ToolCall, Turn
from sessionlens.analysis.intent import RuleClassifier, _sentences, _text_implied
from sessionlens.analysis.tags import assign_session_tags
from sessionlens.analysis.taxonomy import DEFAULT_TAXONOMY, Pattern
from sessionlens.errors import ConfigError

AS_OF = datetime(2027, 1, 1)
# Bookkeeping that differs between runs by design.
_VOLATILE = {"analyzed_at", "created_at"}


def _subset(ds: datasets.SyntheticDataset, sessions: set[str]) -> datasets.SyntheticDataset:
    traces = [t for t in ds.traces if t["session_id"] in sessions]
    ids = {t["id"] for t in traces}
    return dataclasses.replace(
        ds,
        traces=traces,
        observations=[o for o in ds.observations if o["trace_id"] in ids],
        scores=[s for s in ds.scores if s.get("trace_id") in ids],
        planted=ds.planted[ds.planted.session_id.isin(sessions)],
        planted_traces=ds.planted_traces[ds.planted_traces.trace_id.isin(ids)],
    )


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    cols = [c for c in con.table("session_analysis").columns if c not in _VOLATILE]
    return con.execute(
        f"SELECT {', '.join(cols)} FROM session_analysis ORDER BY session_id"
    ).fetchall()


def _load(con: duckdb.DuckDBPyConnection, ds: datasets.SyntheticDataset, path: Path) -> None:
    datasets.write_langfuse_blob_export(ds, path)
    sl.load(con, path)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Seed 7 (the sample) loaded in two parts: the later part holds each repeat caller's
    earliest session, so its arrival must renumber that caller's earlier-loaded tags."""
    tmp = tmp_path_factory.mktemp("split")
    ds = datasets.generate(80, seed=7, repeat_caller_share=0.4)
    planted = ds.planted.sort_values("start_time")
    agent = planted[~planted.is_internal]
    repeat = agent[agent.user_id.duplicated(keep=False)]
    late = set(repeat.drop_duplicates("user_id").session_id) | set(agent.session_id[-3:])
    early = set(ds.planted.session_id) - late
    inc = sl.connect()
    _load(inc, _subset(ds, early), tmp / "early")
    first = sl.analyze_sessions(inc, as_of=AS_OF)
    _load(inc, _subset(ds, late), tmp / "late")
    second = sl.analyze_sessions(inc, as_of=AS_OF)
    full = sl.connect()
    _load(full, ds, tmp / "all")
    sl.analyze_sessions(full, as_of=AS_OF)
    return {"inc": inc, "full": full, "first": first, "second": second, "late": late}


def test_incremental_rows_equal_a_full_run(split: dict) -> None:
    assert split["second"].recomputed == len(split["late"])
    assert split["second"].skipped == split["first"].sessions
    inc, full = _rows(split["inc"]), _rows(split["full"])
    assert [r[0] for r in inc] == [r[0] for r in full]
    for got, want in zip(inc, full, strict=True):
        for g, w in zip(got, want, strict=True):
            # DuckDB sums costs in parallel: the last bits of a float sum vary between runs.
            assert g == (pytest.approx(w, rel=1e-12) if isinstance(w, float) else w)


def test_earlier_sessions_renumber_tags_of_unchanged_sessions(split: dict) -> None:
    tags = "SELECT session_id, session_tag FROM sessions ORDER BY 1"
    assert split["inc"].execute(tags).fetchall() == split["full"].execute(tags).fetchall()
    moved = (
        split["inc"]
        .execute(
            "SELECT count(*) FROM session_analysis WHERE session_tag LIKE '%_2' "
            "AND session_id NOT IN (SELECT unnest(?::TEXT[]))",
            [sorted(split["late"])],
        )
        .fetchone()
    )
    assert moved is not None and moved[0] > 0  # early sessions that became second ones


def test_tags_recounted_for_some_users_match_the_full_count(split: dict) -> None:
    con = split["full"]
    expected = con.execute("SELECT session_id, session_tag FROM sessions ORDER BY 1").fetchall()
    users = [r[0] for r in con.execute("SELECT DISTINCT user_id FROM sessions LIMIT 5").fetchall()]
    con.execute("UPDATE sessions SET session_tag = NULL")
    changed = assign_session_tags(con, user_ids=users)
    after = dict(con.execute("SELECT session_id, session_tag FROM sessions").fetchall())
    mine = {
        r[0]
        for r in con.execute(
            "SELECT session_id FROM sessions WHERE user_id IN (SELECT unnest(?::TEXT[]))", [users]
        ).fetchall()
    }
    assert changed == sum(1 for s, t in expected if s in mine and t is not None)
    assert all(after[s] == t for s, t in expected if s in mine)
    assert all(after[s] is None for s, _ in expected if s not in mine)
    assign_session_tags(con)
    assert con.execute("SELECT session_id, session_tag FROM sessions ORDER BY 1").fetchall() == (
        expected
    )


def test_a_failing_classifier_leaves_the_cache_and_no_staging(split: dict) -> None:
    con = split["inc"]
    before = _rows(con)

    def broken(ev: SessionEvidence) -> tuple[str, float]:
        return ("booking", 2.0)

    with pytest.raises(ConfigError, match=r"outside 0\.\.1"):
        sl.analyze_sessions(con, as_of=AS_OF, classifier=broken)
    assert _rows(con) == before
    left = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_sl_%'")
    assert left.fetchone() == (0,)


def _reference(evidence: SessionEvidence) -> dict[str, float]:
    """The scores of the rule classifier, every pattern scanned sentence by sentence."""
    scores = dict.fromkeys(DEFAULT_TAXONOMY.names, 0.0)
    for turn in evidence.turns:
        speaker = DEFAULT_TAXONOMY.speakers.get(turn.role, 0.0)
        if speaker <= 0 or not turn.content:
            continue
        sentences = _sentences(turn.content)
        for spec in DEFAULT_TAXONOMY.intents:
            for p in spec.patterns:
                if any(p.regex.search(s) for s in sentences):
                    scores[spec.name] += p.weight * speaker
    return scores


_VOCABULARY = (
    "book booking cancel reschedule move it another day can't make it no longer need "
    "hours open appointment cleaning yes Mia's visit new patient instead call off"
)
_WORDS = st.sampled_from(_VOCABULARY.split(" "))
_GLUE = st.sampled_from([" ", ". ", "? ", "! ", "\n", ", ", "… ", "  ", ".", "'"])


@st.composite
def _messages(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(_WORDS, _GLUE), min_size=1, max_size=12))
    return "".join(w + g for w, g in parts)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), _messages()), max_size=4))
def test_rule_classifier_scores_equal_the_sentence_scan(turns: list[tuple[str, str]]) -> None:
    ev = SessionEvidence(
        "s", turns=tuple(Turn(r, c) for r, c in turns), tool_calls=(ToolCall("book_slot"),)
    )
    got = RuleClassifier()(ev).scores
    want = _reference(ev)
    want["booking"] += 3.0  # book_* tool evidence
    assert got == pytest.approx(want)


def test_anchored_patterns_keep_the_sentence_scan() -> None:
    anchored = Pattern.compile(r"^cancel")
    assert not _text_implied(anchored)
    tax = {"intents": {"cancellation": {"patterns": [{"regex": "^cancel", "weight": 1.0}]}}}
    clf = RuleClassifier({**tax, "fallback": "cancellation"})
    ev = SessionEvidence("s", turns=(Turn("user", "Hello. cancel it"),))
    # "^cancel" matches the second sentence but not the message as a whole.
    assert clf(ev).scores["cancellation"] == 1.0
