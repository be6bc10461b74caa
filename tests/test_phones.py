"""The remembered phone matcher (``analysis._phones``) returns exactly ``PhoneNumberMatcher``'s.

Each outcome is remembered per candidate and its neighbouring characters, so the cases here
put the same candidate in different surroundings (letters, currency, time stamps, the ends of
the text), besides the formats callers use (spaces, dots, dashes, brackets, ``+`` country
codes, extensions, Unicode digits) and other regions; a small ``max_tries`` reaches the
fallback to the plain matcher. A hypothesis test compares both on random text.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionlens.analysis import _phones
from sessionlens.analysis._phones import plain_spoken_numbers, spoken_numbers

NUMBER = "415 555 0134"


def _fullwidth(text: str) -> str:
    """``text`` in full-width forms (digits, brackets, hyphen): Unicode digits are ``\\d``."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


CASES = [
    "my cell is (415) 555-0134",
    "call 415.555.0134 or 415-555-0134 or 4155550134",
    "4 1 5 5 5 5 0 1 3 4",
    "+1 415 555 0134, +44 20 7946 0958, +49 30 901820, +91 98765 43210",
    "0044 20 7946 0958 and 011 44 20 7946 0958",
    "415-555-0134 ext. 12; 415 555 0134 x 7; 415 555 0134 extension 99",
    _fullwidth("415-555-0134") + " and " + _fullwidth("(") + "415" + _fullwidth(")") + "555-0134",
    "٤١٥٥٥٥٠١٣٤ and ४१५५५५०१३४",  # Arabic-Indic and Devanagari digits
    f"abc{NUMBER}",  # a Latin letter before: skipped
    f"{NUMBER}def",  # and after
    f"é{NUMBER}",  # Latin-1 letters count as letters too
    f"中{NUMBER}中",  # other scripts do not
    f"${NUMBER} and {NUMBER}% and {NUMBER}€",  # currency and percent neighbours
    f"{NUMBER}",  # the text's own ends
    f"({NUMBER})",
    "2026-01-31 10:30 and 2026-01-31 10 and 2026 01 31 10:61",  # time stamps and near ones
    "on 1/31/2026 or 12/3/26, page 123-45 (2001)",  # slash dates, publication pages
    "415 555 0134 / 0135 and 415 555 0134 \\ x 12",  # a second number after a slash
    "415 555 0134 415 555 0135 415 555 0136",  # numbers run together
    "a1 b22 c333 4444-55555 666666 7777777 88888888 999999999",
    "no number here",
    "",
]


@pytest.mark.parametrize("region", ["US", "GB", "DE", "IN", "BR", "ZZ"])
@pytest.mark.parametrize("text", CASES)
def test_equal_to_the_matcher(text: str, region: str) -> None:
    want = plain_spoken_numbers(text, region)
    assert spoken_numbers(text, region) == want
    assert spoken_numbers(text, region) == want  # now from the memo


def test_the_cases_find_what_callers_say() -> None:
    found = spoken_numbers(CASES[3], "US")
    assert [e for e, _ in found] == [
        "+14155550134",
        "+442079460958",
        "+4930901820",
        "+919876543210",
    ]
    assert spoken_numbers(CASES[6], "US")[0] == ("+14155550134", _fullwidth("415-555-0134"))
    assert spoken_numbers(f"abc{NUMBER}", "US") == ()
    assert spoken_numbers(f"中{NUMBER}中", "US") == (("+14155550134", NUMBER),)


def test_a_remembered_candidate_sees_its_new_neighbours() -> None:
    assert spoken_numbers(f"call {NUMBER} now", "US") == (("+14155550134", NUMBER),)
    assert spoken_numbers(f"call x{NUMBER}y now", "US") == ()
    assert spoken_numbers(f"call {NUMBER}", "US") == (("+14155550134", NUMBER),)
    assert spoken_numbers("2026-01-31 10:30", "US") == plain_spoken_numbers(
        "2026-01-31 10:30", "US"
    )
    assert spoken_numbers("x 2026-01-31 10 h", "US") == plain_spoken_numbers(
        "x 2026-01-31 10 h", "US"
    )


@pytest.mark.parametrize("max_tries", [0, 1, 2, 3, 5])
def test_a_small_budget_falls_back_to_the_matcher(max_tries: int) -> None:
    text = "12 34 5678 999 " * 3 + NUMBER + " 1/2/2020 " + "+1 415 555 0135"
    want = plain_spoken_numbers(text, "US", max_tries=max_tries)
    assert spoken_numbers(text, "US", max_tries=max_tries) == want
    assert spoken_numbers(text, "US", max_tries=max_tries) == want


def test_without_the_library_internals_the_plain_matcher_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_phones, "_LIB", None)
    assert spoken_numbers(CASES[0], "US") == (("+14155550134", "(415) 555-0134"),)


_PIECES = st.sampled_from(
    [
        "415", "555", "0134", "20", "7946", "0958", "1", "44", "+", "(", ")", "-", ".", " ",
        "/", ":", "x", "ext", "a", "é", "$", "%", "2026-01-31", "10:30", "\uff14", "٤", "\n", "00",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_PIECES, max_size=24).map("".join),
    st.sampled_from(["US", "GB", "DE"]),
    st.sampled_from([_phones._MAX_TRIES, 4, 1]),
)
def test_fast_and_plain_agree_on_random_text(text: str, region: str, max_tries: int) -> None:
    assert spoken_numbers(text, region, max_tries=max_tries) == plain_spoken_numbers(
        text, region, max_tries=max_tries
    )
