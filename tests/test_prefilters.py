"""The analysis's shortcuts are exact: each fast path equals the plain computation it skips.

Covers the date rules' word prefilter and memo (``_dates._candidates``), the remembered phone
matcher (``details._spoken_numbers``), the words a regular expression requires
(``taxonomy.required_words``) and the rule classifier's prefilter and tool matching. Each is
compared with a plain reimplementation on edge cases the prefilter must not skip (capitals,
Unicode digits, numbers split by spaces or dashes, letters that case folding maps to ASCII)
and on random text built from the patterns' own vocabulary.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionlens.analysis import _dates
from sessionlens.analysis.details import _spoken_numbers
from sessionlens.analysis.evidence import SessionEvidence, ToolCall, Turn
from sessionlens.analysis.intent import RuleClassifier, _sentences
from sessionlens.analysis.taxonomy import DEFAULT_TAXONOMY, Pattern, required_words

from .test_intent import AIRLINE

REF = date(2026, 9, 1)


def _fullwidth(text: str) -> str:
    """``text`` in full-width forms (digits, brackets, hyphen): Unicode digits are ``\\d``."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# --- dates ---------------------------------------------------------------------------------


def _plain_dates(text: str, ref: date | None, region: str = "US") -> list[tuple[int, date]]:
    """find_dates without prefilter or memo: every rule scans the text."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, date]] = []
    for kind, rule, _ in _dates._RULES:
        for m in rule.finditer(text):
            start, end = m.span()
            if kind == "weekday" and m.group("mod"):
                start = m.start("mod")
            if any(start < e and s < end for s, e in taken):
                continue
            resolved = _dates._resolve(kind, m.groupdict(), ref, region)
            if resolved is not None:
                taken.append((start, end))
                found.append((start, resolved))
    return sorted(found, key=lambda item: item[0])


DATE_TEXTS = [
    "NEXT TUESDAY please",
    "MARCH 3RD, 2027 or THE 14TH",
    "the 3rd OF MAY",
    "In TWO WEEKS, or TOMORROW, or TONIGHT",
    "the day after TOMORROW",
    "Sept. 4 or SEP 5",
    "٣/١٤",  # Arabic-Indic digits are \d and int() reads them
    _fullwidth("2026-03-03"),  # full-width ISO date
    _fullwidth("March 3"),
    "\u212a and \u017f: March 3",  # Kelvin sign and long s: non-ASCII, scanned in full
    "in two wee\u212a",  # the Kelvin sign matches "k" case-insensitively
    "9/4/26 and 2026-09-30T10:00",
    "We are open Saturdays",
    "",
]


@pytest.mark.parametrize("text", DATE_TEXTS)
@pytest.mark.parametrize("ref", [REF, None])
def test_date_prefilter_keeps_every_date(text: str, ref: date | None) -> None:
    assert _dates.find_dates(text, ref) == _plain_dates(text, ref)


def test_date_prefilter_edge_cases_find_something() -> None:
    # guards the comparison above from comparing two empty lists only
    assert [d.isoformat() for _, d in _dates.find_dates("in two wee\u212a", REF)] == ["2026-09-15"]
    assert [d.isoformat() for _, d in _dates.find_dates("٣/١٤", REF)] == ["2027-03-14"]
    assert _dates.find_dates("NEXT TUESDAY please", REF)[0][1] == date(2026, 9, 8)


@pytest.mark.parametrize(
    ("folded", "plain"),
    [
        ("on \u017funday", "on sunday"),
        ("\u017fept 4", "sept 4"),
        ("in two wee\u212a\u017f", "in two weeks"),
        ("THI\u017f Friday", "THIS Friday"),
        ("on fr\u0130day", "on friday"),
        ("\u0131n three days", "in three days"),
    ],
)
def test_dates_fold_the_letters_matching_folds(folded: str, plain: str) -> None:
    # case-insensitive matching takes these four letters for ASCII ones; the matched word used
    # to be looked up unfolded and raised (ValueError/KeyError), aborting the analysis
    expected = [d for _, d in _dates.find_dates(plain, REF)]
    assert expected
    assert [d for _, d in _dates.find_dates(folded, REF)] == expected


def test_every_date_rule_lists_its_words() -> None:
    # each rule's words are its own: a rule matching a text contains one of them
    for kind, rule, words in _dates._RULES:
        assert words, kind
        for text in DATE_TEXTS:
            for m in rule.finditer(text):
                if m.group(0).isascii():
                    assert any(w in m.group(0).lower() for w in words), (kind, text)


_DATE_VOCAB = [
    *_dates._MONTHS, *_dates._WEEKDAYS, *_dates._NUMBER_WORDS, *_dates._RELATIVE,
    "jan", "sept", "sep", "dec.", "the", "of", "in", "on", "next", "this", "coming", "days",
    "week", "weeks", "st", "nd", "rd", "th", "3", "14th", "2026", "9/4", "12/31/27",
    "2026-02-29", "-", "/", ",", ".", "٣", _fullwidth("3"), "\u212a", "\u017f", "floor",
    "Saturdays",
]  # fmt: skip


def _cased(word: str, style: int) -> str:
    return (word, word.upper(), word.title())[style]


_vocab_text = st.lists(
    st.tuples(st.sampled_from(_DATE_VOCAB), st.integers(0, 2), st.sampled_from([" ", "", "  "])),
    max_size=12,
).map(lambda parts: "".join(_cased(w, c) + sep for w, c, sep in parts))


@settings(max_examples=300, deadline=None)
@given(text=_vocab_text, ref=st.sampled_from([REF, date(2026, 2, 28), None]))
def test_dates_fast_and_plain_agree_on_random_text(text: str, ref: date | None) -> None:
    assert _dates.find_dates(text, ref) == _plain_dates(text, ref)
    assert _dates.find_dates(text, ref, region="GB") == _plain_dates(text, ref, "GB")


# --- phone numbers -------------------------------------------------------------------------


def _plain_numbers(text: str, region: str) -> tuple[tuple[str, str], ...]:
    e164 = phonenumbers.PhoneNumberFormat.E164
    return tuple(
        (phonenumbers.format_number(m.number, e164), m.raw_string)
        for m in phonenumbers.PhoneNumberMatcher(text, region)
    )


@pytest.mark.parametrize(
    "text",
    [
        "my cell is (415) 555-0134",
        "four one five, 415 555 0134",
        "415-555-0134 or +44 20 7946 0958",
        _fullwidth("(415)555-0134"),  # full-width digits and brackets
        "٤١٥٥٥٥٠١٣٤",  # Arabic-Indic digits
        "4 1 5 5 5 5 0 1 3 4",
        "no number here",
        "",
    ],
)
def test_remembered_phone_numbers_equal_the_matcher(text: str) -> None:
    assert _spoken_numbers(text, "US") == _plain_numbers(text, "US")
    assert _spoken_numbers(text, "US") == _plain_numbers(text, "US")  # from the memo


def test_unicode_digit_numbers_are_found() -> None:
    assert _spoken_numbers(_fullwidth("(415)555-0134"), "US")[0][0] == "+14155550134"
    assert _spoken_numbers("٤١٥٥٥٥٠١٣٤", "US")[0][0] == "+14155550134"


# --- required words and the rule classifier ------------------------------------------------


@pytest.mark.parametrize(
    ("regex", "words"),
    [
        (r"abc", ("abc",)),
        (r"(?-i:ABC)d", ("abc",)),  # a group and a literal: the longer requirement
        (r"(?:ab|cd)e+f", ("ab", "cd")),
        (r"(?:xyz)+", ("xyz",)),
        (r"(?:xyz)*", None),
        (r"(?:ab|)", None),
        (r"(?<=abcdef)g", ("g",)),
        (r"(a)\1", ("a",)),
        (r"\u212aelvin", ("elvin",)),
        (r"[abc]+", None),
        (r"(?>abc)", ("abc",)),
    ],
)
def test_required_words(regex: str, words: tuple[str, ...] | None) -> None:
    assert required_words(re.compile(regex, re.IGNORECASE)) == words


def _plain_hits(clf: RuleClassifier, text: str) -> list[tuple[str, float, int]]:
    """Every pattern against every sentence, no prefilter."""
    sentences = _sentences(text)
    out = []
    for spec in clf.taxonomy.intents:
        for p in spec.patterns:
            idx = next((i for i, s in enumerate(sentences) if p.regex.search(s)), None)
            if idx is not None:
                out.append((spec.name, p.weight, idx))
    return out


def _vocabulary(tax: Any) -> list[str]:
    words = {"\u212a", "\u017f", "\u2019", "'", "-", ".", "?", "\n", "it", "a", "an", "to"}
    for spec in tax.intents:
        for p in spec.patterns:
            words.update(
                re.findall(r"[\w'\u2019-]+", re.sub(r"\\[bsdwB]|\(\?[:<!=]+", " ", p.text))
            )
    return sorted(words)


CLASSIFIERS = {"default": RuleClassifier(), "airline": RuleClassifier(AIRLINE)}
_MSG_VOCAB = sorted(
    set(_vocabulary(DEFAULT_TAXONOMY)) | set(_vocabulary(CLASSIFIERS["airline"].taxonomy))
)
_message = st.lists(
    st.tuples(st.sampled_from(_MSG_VOCAB), st.integers(0, 2), st.sampled_from([" ", "", ". "])),
    max_size=14,
).map(lambda parts: "".join(_cased(w, c) + sep for w, c, sep in parts))


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to BOOK an appointment. Can we MOVE IT?",
        "We \u212aan't make it",  # Kelvin sign: non-ASCII, every pattern tried
        "\u017fchedule a visit",  # long s matches "s" case-insensitively
        "CANCEL the CANCELLATION fee. How MUCH does it COST?",
        "",
    ],
)
def test_classifier_prefilter_edge_cases(text: str) -> None:
    for clf in CLASSIFIERS.values():
        assert list(RuleClassifier(clf.taxonomy)._message_hits(text)) == _plain_hits(clf, text)


def test_long_s_still_counts_as_s() -> None:
    hits = RuleClassifier()._message_hits("\u017fchedule a visit")
    assert ("booking", 1.0, 0) in hits


@settings(max_examples=300, deadline=None)
@given(text=_message, which=st.sampled_from(sorted(CLASSIFIERS)))
def test_classifier_fast_and_plain_agree_on_random_text(text: str, which: str) -> None:
    clf = CLASSIFIERS[which]
    assert list(clf._message_hits(text)) == _plain_hits(clf, text)
    for spec in clf.taxonomy.intents:
        for p in spec.patterns:
            words = required_words(p.regex)
            if words and text.isascii() and p.regex.search(text):
                assert any(w in text.lower() for w in words), (p.text, text)


def _plain_tool_scores(tax: Any, calls: list[ToolCall]) -> dict[str, float]:
    scores = dict.fromkeys(tax.names, 0.0)
    for spec in tax.intents:
        for tool in spec.tools:
            matched = [c for c in calls if tool.matches(c.name)]
            if matched:
                ok = any(not c.is_error for c in matched)
                scores[spec.name] += tool.weight * (1.0 if ok else tax.failed_tool_weight)
    return scores


_TOOL_NAMES = [
    "book_appointment", "Cancel_Appointment", "find_appointments", "get_clinic_info",
    "check_availability", "reschedule", "update_appointment", "lookup_faq", "", "weird name",
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from(_TOOL_NAMES), st.booleans()), max_size=8))
def test_tool_evidence_scores_equal_the_plain_sum(calls: list[tuple[str, bool]]) -> None:
    clf = CLASSIFIERS["default"]
    tool_calls = [ToolCall(name, is_error=err) for name, err in calls]
    result = clf(SessionEvidence("t", tool_calls=tuple(tool_calls)))
    assert result.scores == _plain_tool_scores(clf.taxonomy, tool_calls)


def test_a_turn_hit_keeps_its_sentence_index() -> None:
    clf = RuleClassifier()
    ev = SessionEvidence("s", turns=(Turn("user", "Hello there. Um. I need to cancel."),))
    assert clf(ev).summary == "I need to cancel."
    assert Pattern.keyword("cancel*").regex.search("CANCELLED")
