"""Caller intent: the rule classifier on generated calls and real tau-bench runs, taxonomies
from every file format, validation errors, and pluggable classifiers."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens.analysis.evidence import SessionEvidence, ToolCall, Turn, iter_evidence
from sessionlens.analysis.intent import (
    DEFAULT_TAXONOMY,
    IntentResult,
    RuleClassifier,
    as_classifier,
    classify,
    load_taxonomy,
)
from sessionlens.analysis.taxonomy import default_taxonomy_path
from sessionlens.errors import ConfigError

from .evidence_data import generated, tau_evidence, tau_runs

SEEDS = [1, 2]


def _says(*lines: str, calls: tuple[ToolCall, ...] = ()) -> SessionEvidence:
    return SessionEvidence("s", turns=tuple(Turn("user", line) for line in lines), tool_calls=calls)


# --- known answers on the generator --------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_intent_of_every_external_session(seed: int) -> None:
    planted, evidence = generated(300, seed)
    assert len(evidence) >= 280
    got = {ev.session_id: classify(ev).type for ev in evidence}
    wrong = {
        s: (planted.loc[s, "intent"], t) for s, t in got.items() if planted.loc[s, "intent"] != t
    }
    assert wrong == {}
    assert set(got.values()) == set(DEFAULT_TAXONOMY.names)


@pytest.mark.parametrize("seed", SEEDS)
def test_summary_is_one_caller_sentence(seed: int) -> None:
    _, evidence = generated(300, seed)
    for ev in evidence:
        summary = classify(ev).summary
        assert summary is not None, ev.session_id
        assert "\n" not in summary and len(summary) <= 200
        # the caller's own words: a sentence of their text (greeting dropped, first letter raised)
        assert summary[1:] in ev.caller_text
        assert not re.match(r"(?i)(hi|hello|yeah)\b", summary)


def test_confidence_follows_the_evidence() -> None:
    planted, evidence = generated(300, 1)
    results = {ev.session_id: (ev, classify(ev)) for ev in evidence}
    assert all(0.0 <= r.confidence <= 1.0 for _, r in results.values())
    assert len({round(r.confidence, 3) for _, r in results.values()}) >= 10
    # A call that reached the intent's own final tool has words and tool evidence; a caller who
    # hung up before any tool ran has only words.
    strong = [
        r.confidence
        for ev, r in results.values()
        if planted.loc[ev.session_id, "status"] == "completed"
    ]
    words_only = [r.confidence for ev, r in results.values() if not ev.tool_calls]
    assert words_only, "the generator has calls abandoned before the first tool"
    assert statistics.mean(strong) > statistics.mean(words_only) + 0.1
    assert min(strong) >= 0.7


def test_ambiguous_and_strong_sessions() -> None:
    clf = RuleClassifier()
    ambiguous = clf(_says("I want to cancel Tuesday and book Friday instead, or reschedule."))
    strong = clf(
        _says(
            "Hi, I need to cancel my son's appointment.",
            calls=(ToolCall("find_appointment"), ToolCall("cancel_appointment")),
        )
    )
    nothing = clf(_says("Uh, hello?"))
    assert strong.type == "cancellation" and strong.confidence > 0.7
    assert ambiguous.confidence < 0.3 < strong.confidence
    assert (nothing.type, nothing.confidence, nothing.summary) == ("other", 0.0, None)
    assert strong.summary == "I need to cancel my son's appointment."


def test_callers_words_outweigh_the_agents_and_failed_tools_count_less() -> None:
    clf = RuleClassifier()
    mixed = SessionEvidence(
        "s",
        turns=(
            Turn("system", "You help callers book, reschedule or cancel visits."),
            Turn("user", "I'm calling to cancel."),
            Turn("assistant", "Would you like to book a new appointment instead?"),
        ),
    )
    result = clf(mixed)
    assert result.type == "cancellation"
    assert result.scores["cancellation"] > result.scores["booking"] > 0
    ok = clf(_says("Hello", calls=(ToolCall("book_appointment"),)))
    failed = clf(_says("Hello", calls=(ToolCall("book_appointment", is_error=True),) * 2))
    assert ok.scores["booking"] == 2 * failed.scores["booking"]
    assert ok.confidence > failed.confidence > 0


# --- taxonomy files ------------------------------------------------------------------------


def test_taxonomy_from_toml_json_yaml_and_dict_is_the_same(tmp_path: Path) -> None:
    data = tomllib.loads(default_taxonomy_path().read_text(encoding="utf-8"))
    shutil.copy(default_taxonomy_path(), tmp_path / "t.toml")
    (tmp_path / "t.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "t.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    loaded = [load_taxonomy(tmp_path / f"t.{ext}") for ext in ("toml", "json", "yaml")]
    loaded += [load_taxonomy(data), load_taxonomy(str(tmp_path / "t.toml"))]
    assert all(t == DEFAULT_TAXONOMY for t in loaded)
    con = sl.connect()
    sl.load(con, sl.datasets.sample_dir())
    ids = [r[0] for r in con.sql("SELECT session_id FROM sessions ORDER BY 1").fetchall()]
    for ev in iter_evidence(con, ids):
        first, *others = [RuleClassifier(t)(ev) for t in loaded]
        assert all(r == first for r in others)
    con.close()


def test_fallback_is_added_when_not_listed() -> None:
    tax = load_taxonomy({"fallback": "unknown", "intents": {"refund": {"patterns": ["refund*"]}}})
    assert tax.names == ("refund", "unknown")
    assert RuleClassifier(tax)(_says("Where am I?")).type == "unknown"
    assert RuleClassifier(tax)(_says("I want a refund")).type == "refund"


BAD_TAXONOMIES: list[tuple[str, str, str]] = [
    ("t.toml", "intents = [", r"t\.toml is not valid TOML: .*fix the syntax"),
    ("t.json", '{"intents": {', r"t\.json is not valid JSON: .*line 1"),
    ("t.yaml", "intents: [a, b", r"t\.yaml is not valid YAML"),
    ("t.json", "[1, 2]", r"t\.json must hold a table/object at the top, got list"),
    ("t.ini", "[intents]", r"unsupported extension '\.ini'; use \.toml, \.json or \.yaml"),
    ("t.json", '{"intent": {}}', r"t\.json: intent: unknown key; use one of .*intents"),
    ("t.json", '{"intents": {}}', r"intents: missing or empty; add an \[intents\.<name>\]"),
    ("t.json", '{"intents": {"a": {"paterns": []}}}', r"intents\.a\.paterns: unknown key"),
    ("t.json", '{"intents": {"a": []}}', r"intents\.a: must be a table"),
    ("t.json", '{"intents": {"a": {"patterns": "x"}}}', r"intents\.a\.patterns: must be a list"),
    (
        "t.json",
        '{"intents": {"a": {"patterns": [{"regex": "(unclosed"}]}}}',
        r"intents\.a\.patterns\[0\]\.regex: '\(unclosed' is not a valid regular expression",
    ),
    (
        "t.json",
        '{"intents": {"a": {"patterns": [{"keyword": "x", "regex": "y"}]}}}',
        r"patterns\[0\]: a pattern needs exactly one of 'keyword' or 'regex'",
    ),
    ("t.json", '{"intents": {"a": {"patterns": [3]}}}', r"patterns\[0\]: 3 is not a pattern"),
    (
        "t.json",
        '{"intents": {"a": {"patterns": [{"keyword": "x", "weight": -1}]}}}',
        r"patterns\[0\]\.weight: -1 is out of range; it must be at least 0",
    ),
    ("t.json", '{"intents": {"a": {"tools": ["x"]}}}', r"intents\.a\.tools: must be a table"),
    (
        "t.json",
        '{"intents": {"a": {"tools": {"x": "high"}}}}',
        r"intents\.a\.tools\.x: 'high' is not a number",
    ),
    ("t.json", '{"intents": {"a": {}}, "speakers": {"user": "1"}}', r"speakers\.user: '1' is"),
    (
        "t.json",
        '{"intents": {"a": {}}, "failed_tool_weight": 2}',
        r"failed_tool_weight: 2 is out of range; it must be between 0 and 1",
    ),
    ("t.json", '{"intents": {"a": {}}, "fallback": 3}', r"fallback: must be the name of an"),
    ("t.json", '{"intents": {"a": {}}, "smoothing": 0}', r"smoothing: must be greater than 0"),
    ("t.yaml", "intents:\n  a:\n    description: [x]", r"intents\.a\.description: must be a"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_TAXONOMIES)
def test_bad_taxonomy_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_taxonomy(path)


def test_missing_taxonomy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"intents: file .*nope\.toml not found; check the path"):
        load_taxonomy(tmp_path / "nope.toml")


# --- pluggable classifiers -----------------------------------------------------------------


def _by_last_tool(ev: SessionEvidence) -> dict[str, Any]:
    """A deterministic stand-in for an LLM: the intent named by the last tool called."""
    last = ev.tool_calls[-1].name if ev.tool_calls else ""
    intent = {"cancel_appointment": "cancellation", "get_clinic_info": "info_lookup"}
    return {"intent": intent.get(last, "booking"), "confidence": 1.0 if last else 0.2}


def test_custom_callable_replaces_the_default() -> None:
    planted, evidence = generated(300, 1)
    for ev in evidence:
        result = classify(ev, classifier=_by_last_tool)
        expected = _by_last_tool(ev)
        assert (result.type, result.confidence, result.summary) == (
            expected["intent"],
            expected["confidence"],
            None,
        )
    done = [
        ev
        for ev in evidence
        if planted.loc[ev.session_id, "status"] == "completed"
        and planted.loc[ev.session_id, "intent"] == "cancellation"
    ]
    assert done and all(
        classify(ev, classifier=_by_last_tool).type == "cancellation" for ev in done
    )


@pytest.mark.parametrize(
    "output",
    [
        IntentResult("other", 0.5, "hi"),
        ("other", 0.5, "hi"),
        {"type": "other", "confidence": 0.5, "summary": "hi"},
    ],
)
def test_every_output_shape_normalises(output: Any) -> None:
    result = classify(_says("hi"), classifier=lambda ev: output)
    assert (result.type, result.confidence, result.summary) == ("other", 0.5, "hi")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (("booking", 1.2), r"classifier \(session s\): confidence: 1\.2 is outside 0\.\.1"),
        (("booking", -0.1), r"confidence: -0\.1 is outside 0\.\.1"),
        (("booking", float("nan")), r"confidence: nan is not a number"),
        ({"type": "booking"}, r"returned a dict with keys \['type'\]; it needs 'type'"),
        ({"type": "b", "confidence": 1, "why": "x"}, r"keys \['confidence', 'type', 'why'\]"),
        (["booking", 0.5], r"returned list \['booking', 0\.5\]; return an IntentResult"),
        (("", 0.5), r"type: '' is not an intent name"),
        ("booking", r"returned str 'booking'"),
    ],
)
def test_bad_classifier_outputs(output: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        classify(_says("hi"), classifier=lambda ev: output)


def test_classifier_must_be_callable() -> None:
    with pytest.raises(
        ConfigError, match=r"classifier: 'booking' is not callable; pass a function"
    ):
        as_classifier("booking")  # type: ignore[arg-type]


# --- a custom taxonomy on real airline transcripts -----------------------------------------

AIRLINE = {
    "intents": {
        "book_flight": {
            "patterns": ["book*", {"keyword": "new reservation", "weight": 1.5}],
            "tools": {"book_reservation": 3.0, "search_*": 0.5},
        },
        "cancel_trip": {
            "patterns": [
                {"keyword": "cancel*", "weight": 2.0},
                {"keyword": "refund*", "weight": 0.5},
            ],
            "tools": {"cancel_reservation": 3.0},
        },
        "change_flight": {
            "patterns": [
                {
                    "regex": r"\b(?:change|modify|switch|move|push)\w*\b(?:\s+\w+){0,3}?\s+"
                    r"(?:flights?|reservations?|trips?|date|class|cabin|seats?)\b",
                    "weight": 1.5,
                },
                {"keyword": "upgrad*", "weight": 1.5},
                {"keyword": "downgrad*", "weight": 1.5},
                "nonstop",
            ],
            "tools": {"update_reservation_flights": 3.0},
        },
        "baggage": {
            "patterns": ["bag*", "luggage", "suitcase*"],
            "tools": {"update_reservation_baggages": 3.0},
        },
        "passengers": {"patterns": ["passenger*"], "tools": {"update_reservation_passengers": 3.0}},
        "complaint": {
            "patterns": ["delay*", "compensat*", "complain*"],
            "tools": {"send_certificate": 3.0},
        },
        "other": {"tools": {"transfer_to_human_agents": 0.5}},
    }
}
# The intent a task instruction states, when it names exactly one of these verbs.
STATED = {"book": "book_flight", "cancel": "cancel_trip", "change": "change_flight"}


def test_airline_taxonomy_on_tau_bench() -> None:
    clf = RuleClassifier(AIRLINE)
    agree, disagree = [], []
    for i, run in enumerate(tau_runs()):
        verbs = set(re.findall(r"\b(book|cancel|change)\b", run["info"]["task"]["instruction"]))
        result = clf(tau_evidence(run, i))
        assert 0.0 <= result.confidence <= 1.0
        if len(verbs) == 1:
            (agree if result.type == STATED[verbs.pop()] else disagree).append(result.confidence)
    assert len(agree) + len(disagree) >= 100
    assert len(agree) / (len(agree) + len(disagree)) >= 0.9
    # where the rules disagree with the instruction they are less sure
    assert statistics.mean(disagree) < statistics.mean(agree)


def test_tau_bench_summary_quotes_the_customer() -> None:
    run = tau_runs()[0]
    result = RuleClassifier(AIRLINE)(tau_evidence(run, 0))
    assert result.type == "book_flight"
    assert result.summary is not None and result.summary[1:] in tau_evidence(run, 0).caller_text


# --- invariants ----------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
_words = st.lists(
    st.sampled_from(
        ["book", "cancel", "move", "hours", "bill", "Mia", "?", ".", "\n", "it", "the"]
    ),
    max_size=30,
).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(
    turns=st.lists(
        st.tuples(st.sampled_from(["user", "assistant", "tool", "system"]), _text | _words),
        max_size=6,
    ),
    tools=st.lists(
        st.tuples(
            st.sampled_from(["book_appointment", "cancel_x", "", "weird name"]), st.booleans()
        ),
        max_size=4,
    ),
)
def test_random_text_never_breaks_the_classifier(
    turns: list[tuple[str, str]], tools: list[tuple[str, bool]]
) -> None:
    ev = SessionEvidence(
        "h",
        turns=tuple(Turn(role, text) for role, text in turns),
        tool_calls=tuple(ToolCall(name, is_error=err) for name, err in tools),
    )
    result = classify(ev)
    assert result.type in DEFAULT_TAXONOMY.names
    assert 0.0 <= result.confidence <= 1.0
    assert set(result.scores) == set(DEFAULT_TAXONOMY.names)
    assert result.summary is None or (result.summary and "\n" not in result.summary)


def test_the_documented_taxonomy_example_loads() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "intent.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", doc, re.DOTALL)
    assert block is not None
    tax = load_taxonomy(tomllib.loads(block.group(1)))
    assert tax.names == ("cancellation", "other")
    result = RuleClassifier(tax)(_says("Sorry, we can\u2019t make it Friday."))
    assert (result.type, result.confidence) == ("cancellation", 0.6)
