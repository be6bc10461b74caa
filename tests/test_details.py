"""Booking details: known answers on generated calls, real phrasing, argument aliases, dates,
sources, JSON output and invariants."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens.analysis.details import DETAIL_KEYS, extract_booking_details
from sessionlens.analysis.evidence import SessionEvidence, ToolCall, Turn, iter_evidence
from sessionlens.errors import ConfigError

from .evidence_data import generated, tau_evidence, tau_runs

START = datetime(2026, 9, 1, 10, 0)  # a Tuesday
FIELDS = ["children", "child_count", "parent_name", "phone_e164", "phone_raw", "requested_dates"]


def _says(
    *lines: str, calls: tuple[ToolCall, ...] = (), start: datetime | None = START
) -> SessionEvidence:
    return SessionEvidence("s", start, tuple(Turn("user", line) for line in lines), calls)


def _expected(row: Any) -> dict[str, Any]:
    return {
        "children": list(row.children),
        "child_count": int(row.child_count),
        "parent_name": row.parent_name,
        "phone_e164": row.phone_e164,
        "phone_raw": row.phone_raw,
        # A caller may say the same day twice ("September 14th? If not, 2026-09-14"); the
        # planted list then repeats it, the extractor lists each requested day once.
        "requested_dates": list(dict.fromkeys(row.requested_dates)),
    }


# --- known answers -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_planted_details_of_every_external_session(seed: int) -> None:
    planted, evidence = generated(300, seed)
    wrong = {}
    for ev in evidence:
        got = extract_booking_details(ev)
        want = _expected(planted.loc[ev.session_id])
        if {k: got[k] for k in FIELDS} != want:
            wrong[ev.session_id] = (want, got)
    assert wrong == {}


def test_planted_details_of_the_bundled_sample() -> None:
    planted = sl.datasets.generate(60, seed=7).planted.set_index("session_id")
    con = sl.connect()
    sl.load(con, sl.datasets.sample_dir())
    external = [s for s in planted.index if not planted.loc[s, "is_internal"]]
    for ev in iter_evidence(con, external):
        got = extract_booking_details(ev)
        assert {k: got[k] for k in FIELDS} == _expected(planted.loc[ev.session_id])
    con.close()


def test_sources_say_where_each_field_came_from() -> None:
    _, evidence = generated(300, 1)
    seen = set()
    for ev in evidence:
        details = extract_booking_details(ev)
        sources = details["sources"]
        has_guardian_arg = any(
            isinstance(c.arguments, dict) and "guardian_name" in c.arguments for c in ev.tool_calls
        )
        assert (sources["parent_name"] == "tool_arguments") == has_guardian_arg
        if not has_guardian_arg:
            assert (
                sources["parent_name"] == "caller_text" and details["parent_name"] in ev.caller_text
            )
        if sources["phone"] == "caller_text":
            assert details["phone_raw"] in ev.caller_text
        assert (sources["children"] is None) == (details["children"] == [])
        assert (sources["requested_dates"] is None) == (details["requested_dates"] == [])
        seen |= {(k, v) for k, v in sources.items()}
    assert {("parent_name", "caller_text"), ("parent_name", "tool_arguments")} <= seen
    assert ("requested_dates", "tool_arguments+caller_text") in seen
    assert ("child_count", "tool_arguments") in seen and ("child_count", "caller_text") in seen


# --- caller phrasing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "children", "count"),
    [
        ("I'd like to bring my twins Mia and Leo in.", ["Mia", "Leo"], 2),
        ("We have three kids who need cleanings.", [], 3),
        ("Both of my boys, Sam and Max, need a checkup.", ["Sam", "Max"], 2),
        ("It's for my son Leo and my daughter Mia.", ["Leo", "Mia"], 2),
        ("My 2 daughters are Ava and Zoe.", ["Ava", "Zoe"], 2),
        ("Can I cancel my kids Zoe and Liam's cleaning?", ["Zoe", "Liam"], 2),
        ("Just for my little one.", [], 1),
        ("Do you see kids? Asking for my kids.", [], None),
        ("What are your hours?", [], 0),
    ],
)
def test_children_as_callers_say_them(text: str, children: list[str], count: int | None) -> None:
    details = extract_booking_details(_says(text))
    assert (details["children"], details["child_count"]) == (children, count)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hi, this is Dana Lee calling about my son.", "Dana Lee"),
        ("My name is Kevin O'Brien.", "Kevin O'Brien"),
        ("It\u2019s Mary-Kate Olsen, hi.", "Mary-Kate Olsen"),
        ("Hi Sam Ortiz here.", "Sam Ortiz"),
        ("It's Tuesday, sorry. I'm Yuki.", "Yuki"),
        ("This is Mia's mom.", None),
        ("I'm calling about a bill.", None),
    ],
)
def test_parent_name_as_callers_say_it(text: str, name: str | None) -> None:
    assert extract_booking_details(_says(text))["parent_name"] == name


@pytest.mark.parametrize(
    ("text", "dates"),
    [
        ("Do you have anything next Tuesday?", ["2026-09-08"]),
        ("Could we do this Tuesday?", ["2026-09-01"]),
        ("How about Friday, or tomorrow?", ["2026-09-04", "2026-09-02"]),
        ("We'd like the 14th.", ["2026-09-14"]),
        ("Is March 3 open? Or the 3rd of March next year, 2028?", ["2027-03-03"]),
        ("The one we had on August 28th.", ["2026-08-28"]),
        ("Friday, September 4th at 10:30 works.", ["2026-09-04"]),
        (
            "Maybe 9/14, or in two weeks, or the day after tomorrow.",
            ["2026-09-14", "2026-09-15", "2026-09-03"],
        ),
        ("We're on the 2nd floor and free on Saturdays.", []),
    ],
)
def test_dates_resolve_against_the_call_day(text: str, dates: list[str]) -> None:
    assert extract_booking_details(_says(text))["requested_dates"] == dates


def test_region_and_missing_reference_date() -> None:
    assert extract_booking_details(_says("On 3/4 please."), region="GB")["requested_dates"] == [
        "2027-04-03"
    ]
    no_day = _says("Next Tuesday, or 3/4/2027, or 2027-05-01.", start=None)
    assert extract_booking_details(no_day)["requested_dates"] == ["2027-03-04", "2027-05-01"]
    given_day = extract_booking_details(no_day, reference_date=date(2026, 9, 1))
    assert given_day["requested_dates"] == ["2026-09-08", "2027-03-04", "2027-05-01"]


def test_unknown_region() -> None:
    with pytest.raises(ConfigError, match=r"region: 'XX' is not a region phonenumbers knows; use"):
        extract_booking_details(_says("hi"), region="XX")


def test_phone_numbers_normalise_to_e164() -> None:
    said = extract_booking_details(_says("You can reach me at 415.555.0152, thanks."))
    assert (said["phone_e164"], said["phone_raw"], said["sources"]["phone"]) == (
        "+14155550152",
        "415.555.0152",
        "caller_text",
    )
    uk = extract_booking_details(_says("My number is 020 7946 0018."), region="GB")
    assert uk["phone_e164"] == "+442079460018"
    assert extract_booking_details(_says("Order 12345, on 2026-09-14."))["phone_e164"] is None


# --- tool arguments first ------------------------------------------------------------------


def test_argument_aliases_win_over_caller_text() -> None:
    calls = (
        ToolCall(
            "lookup", {"guardianName": "Wrong Name", "phoneNumber": "(510) 555-0100"}, is_error=True
        ),
        ToolCall(
            "find_family",
            {
                "guardian": {"first_name": "Ana", "last_name": "Ruiz"},
                "contact": {"mobile": 5105550111},
            },
        ),
        ToolCall(
            "book",
            {
                "children": [{"name": "Mia"}, {"first_name": "Leo"}],
                "preferred_date": "2026-09-10T10:00:00",
            },
        ),
        ToolCall(
            "book", {"child_name": "Ezra", "appointmentDate": "next Friday", "patient_count": 3}
        ),
    )
    ev = _says(
        "Hi, this is Ana. My kids Mia and Leo. Tomorrow? My number is 415 555 0199.", calls=calls
    )
    details = extract_booking_details(ev)
    assert details["parent_name"] == "Ana Ruiz"  # the successful call beats the failed one
    assert (details["phone_e164"], details["phone_raw"]) == ("+15105550111", "5105550111")
    assert details["children"] == ["Mia", "Leo", "Ezra"]
    assert details["child_count"] == 3
    assert details["requested_dates"] == ["2026-09-02", "2026-09-10", "2026-09-04"]
    assert details["sources"] == {
        "children": "tool_arguments",
        "child_count": "tool_arguments",
        "parent_name": "tool_arguments",
        "phone": "tool_arguments",
        "requested_dates": "tool_arguments+caller_text",
    }


def test_phone_raw_is_the_callers_words_for_the_same_number() -> None:
    ev = _says("It's (415) 555-0134.", calls=(ToolCall("lookup", {"phone": "+14155550134"}),))
    details = extract_booking_details(ev)
    assert (details["phone_e164"], details["phone_raw"]) == ("+14155550134", "(415) 555-0134")


def test_ids_and_agent_words_are_not_details() -> None:
    ev = SessionEvidence(
        "s",
        START,
        (
            Turn("assistant", "This is Molly. Is it for your daughter Ava, tomorrow?"),
            Turn("tool", '{"patients": [{"first_name": "Ava"}, {"first_name": "Leo"}]}'),
        ),
        (ToolCall("find", {"patient_ids": ["P-1"], "name": "P-2", "date": "soon"}),),
    )
    details = extract_booking_details(ev)
    assert {k: details[k] for k in FIELDS} == dict.fromkeys(FIELDS) | {
        "children": [],
        "child_count": 0,
        "requested_dates": [],
    }


# --- output shape and invariants -----------------------------------------------------------


def test_output_is_json_with_stable_keys() -> None:
    _, evidence = generated(300, 2)
    for ev in evidence[:50]:
        details = extract_booking_details(ev)
        assert tuple(details) == DETAIL_KEYS
        assert json.loads(json.dumps(details)) == details


def test_tau_bench_runs() -> None:
    """Real airline chats: the customer's dates resolve against the policy's 'current time'."""
    checked = 0
    for i, run in enumerate(tau_runs()):
        ev = tau_evidence(run, i)
        now = re.search(r"current time is (\d{4}-\d{2}-\d{2})", ev.turns[0].content)
        assert now is not None
        details = extract_booking_details(ev, reference_date=date.fromisoformat(now.group(1)))
        assert json.loads(json.dumps(details)) == details
        searched = {
            c.arguments["date"]
            for c in ev.tool_calls
            if c.name.startswith("search_") and "date" in c.arguments
        }
        assert searched <= set(details["requested_dates"])
        said = re.findall(r"\bon (May \d{1,2})(?:st|nd|rd|th)?\b", ev.caller_text)
        for day in said:
            assert f"2024-05-{int(day.split()[1]):02d}" in details["requested_dates"]
            checked += 1
    assert checked >= 20


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
_speech = st.lists(
    st.sampled_from(
        [
            "my",
            "kids",
            "son",
            "twins",
            "Mia",
            "and",
            "Leo",
            ",",
            "this is",
            "here",
            "next",
            "Tuesday",
            "the",
            "14th",
            "March",
            "3",
            "/",
            "415",
            "555-0134",
            "2026-02-30",
            "in",
            "99",
            "days",
            ".",
        ]
    ),
    max_size=40,
).map(" ".join)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["phone", "name", "children", "date", "patient_count", "x", "guardian"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(_text | _speech, max_size=5),
    args=st.lists(_json, max_size=3),
    region=st.sampled_from(["US", "GB", "DE", "in"]),
)
def test_random_input_never_breaks_the_extractor(
    lines: list[str], args: list[Any], region: str
) -> None:
    ev = _says(*lines, calls=tuple(ToolCall("t", a) for a in args))
    details = extract_booking_details(ev, region=region)
    assert tuple(details) == DETAIL_KEYS
    assert json.loads(json.dumps(details)) == details
    assert (
        details["child_count"] is None
        or details["child_count"] >= len(details["children"])
        or (details["sources"]["child_count"] == "tool_arguments")
    )
    assert all(date.fromisoformat(d) for d in details["requested_dates"])
