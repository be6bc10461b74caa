"""Resolve the dates people say ("next Tuesday", "the 14th", "March 3") to calendar dates.

Private helper of :mod:`sessionlens.analysis.details`. It owns the English date phrases a
caller uses on the phone and how each resolves against the day of the call; kept apart so the
rules can be read, tested and extended in one place. Only explicit days are resolved: vague
spans ("next week", "sometime in May") are not dates and are left out rather than guessed.

Resolution rules (the reference day is the day of the call):

- ``today``, ``tomorrow``, ``the day after tomorrow``, ``in 3 days``, ``in two weeks``;
- ``next Tuesday``, ``on Tuesday``, ``Tuesday`` = the first Tuesday *after* the reference day;
  ``this Tuesday`` = the reference day if it is a Tuesday, else the next one;
- ``March 3``, ``March 3rd``, ``3 March``, ``the 3rd of March`` (optional year, optional
  weekday before it): that day of the reference year, or of the next year when it lies more
  than 60 days before the reference day (callers ask about the coming months);
- ``the 14th`` = the next 14th on or after the reference day;
- ISO ``2026-03-03`` (a time after it is ignored) and numeric ``3/14`` or ``3/14/2026``
  (month first in the US and Canada, day first elsewhere).
"""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta
from typing import Any

__all__ = ["find_dates"]

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]  # fmt: skip
#: Rules every match of which contains a digit (``\d`` in ``_DAY``, ISO and numeric forms).
_NEEDS_DIGIT = frozenset({"iso", "numeric", "month_day", "day_month", "ordinal"})
_DIGIT = re.compile(r"\d")
_MONTH_ABBR = {m[:3]: i + 1 for i, m in enumerate(_MONTHS)}
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
_PAST_TOLERANCE = timedelta(days=60)
_MEMO_SIZE = 65536  # distinct texts whose rule matches are remembered
_MONTH_FIRST_REGIONS = {"US", "CA", "PH", "FM", "MH", "PW"}

_WD = r"(?P<wd>" + "|".join(_WEEKDAYS) + r")"
_MON = r"(?P<mon>" + "|".join(_MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_OPT_WD = r"(?:(?:" + "|".join(_WEEKDAYS) + r"),?\s+(?:the\s+)?)?"
_RELATIVE = ["the day after tomorrow", "today", "tomorrow", "tonight"]
# Tried in order; a span once matched is not matched again by a later, looser rule. The third
# item lists lower-case words one of which every match contains (the rule's own words); an
# ASCII text that contains none of them cannot match, so the scan is skipped (_candidates).
_RULES: list[tuple[str, re.Pattern[str], tuple[str, ...]]] = [
    ("iso", re.compile(r"(?<![\d-])(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?![\d-])"), ("-",)),
    ("numeric", re.compile(r"(?<![\d/])(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>\d{2}|\d{4}))?"
                           r"(?![\d/])"), ("/",)),
    # every alternative of _MON starts with a month's first three letters ("sept" with "sep")
    ("month_day", re.compile(_OPT_WD + _MON + r"\s+(?:the\s+)?" + _DAY + r"\b" + _YEAR,
                             re.IGNORECASE), tuple(_MONTH_ABBR)),
    ("day_month", re.compile(_OPT_WD + r"(?:the\s+)?" + _DAY + r"\s+(?:of\s+)?" + _MON + r"\b"
                             + _YEAR, re.IGNORECASE), tuple(_MONTH_ABBR)),
    ("relative", re.compile(r"\b(?P<rel>" + "|".join(_RELATIVE) + r")\b", re.IGNORECASE),
     tuple(_RELATIVE)),
    ("in_n", re.compile(r"\bin\s+(?P<n>\d+|" + "|".join(_NUMBER_WORDS) + r")\s+"
                        r"(?P<unit>days?|weeks?)\b", re.IGNORECASE), ("day", "week")),
    ("weekday", re.compile(r"\b(?P<mod>next|this coming|this|coming|on)?\s*" + _WD + r"\b(?!s)",
                           re.IGNORECASE), tuple(_WEEKDAYS)),
    ("ordinal", re.compile(r"\bthe\s+(?P<day>[0-3]?\d)(?:st|nd|rd|th)\b"
                           r"(?!\s+(?:floor|grade|time|one|street|st\b|avenue|ave\b))",
                           re.IGNORECASE), ("the",)),
]  # fmt: skip


# Per rule: one search of the lower-cased text for any of its words (a C loop, not a Python one).
_WORD_CHECKS = [re.compile("|".join(map(re.escape, words))) for _, _, words in _RULES]


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_day(month: int, day: int, year: str | None, ref: date) -> date | None:
    if year:
        return _safe_date(int(year), month, day)
    found = _safe_date(ref.year, month, day)
    if found is not None and found < ref - _PAST_TOLERANCE:
        found = _safe_date(ref.year + 1, month, day)
    return found


#: The four non-ASCII letters case-insensitive matching takes for ASCII ones; a matched word
#: is folded the same way before it is looked up (a long s in "sunday" matched the weekday
#: rule, then the lookup raised).
_ASCII_FOLDS = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def _word(text: str) -> str:
    return text.translate(_ASCII_FOLDS).lower()


def _month_number(name: str) -> int:
    return _MONTH_ABBR[_word(name)[:3]]


def _resolve(kind: str, g: dict[str, Any], ref: date | None, region: str) -> date | None:
    if kind == "iso":
        return _safe_date(int(g["y"]), int(g["m"]), int(g["d"]))
    if ref is None:  # without the day of the call only dates that say their year are known
        if not (g.get("y") or g.get("year")):
            return None
        ref = date.min  # unused: a stated year decides
    if kind == "numeric":
        a, b = int(g["a"]), int(g["b"])
        month, day = (a, b) if region.upper() in _MONTH_FIRST_REGIONS else (b, a)
        if g["y"]:
            year = int(g["y"]) + (2000 if len(g["y"]) == 2 else 0)
            return _safe_date(year, month, day)
        return _month_day(month, day, None, ref) if 1 <= month <= 12 else None
    if kind in ("month_day", "day_month"):
        return _month_day(_month_number(g["mon"]), int(g["day"]), g["year"], ref)
    if kind == "relative":
        rel = _word(g["rel"])
        return ref + timedelta(days={"today": 0, "tonight": 0, "tomorrow": 1}.get(rel, 2))
    if kind == "in_n":
        n = int(g["n"]) if g["n"].isdigit() else _NUMBER_WORDS[_word(g["n"])]
        return ref + timedelta(days=n * (7 if _word(g["unit"]).startswith("week") else 1))
    if kind == "weekday":
        ahead = (_WEEKDAYS.index(_word(g["wd"])) - ref.weekday()) % 7
        is_this = _word(g["mod"] or "") == "this"
        return ref + timedelta(days=ahead if (ahead or is_this) else 7)
    day = int(g["day"])  # "the 14th": this month's if still to come, else next month's
    found = _safe_date(ref.year, ref.month, day)
    if found is None or found < ref:
        nxt = date(ref.year + ref.month // 12, ref.month % 12 + 1, 1)
        found = _safe_date(nxt.year, nxt.month, day)
    return found


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _candidates(text: str) -> tuple[tuple[str, int, int, dict[str, Any]], ...]:
    """Every match of every rule in ``text``: ``(kind, start, end, groups)``, rules in order.

    A pure function of the text (resolving against the day of the call comes after), so it is
    remembered: callers repeat the same sentences across sessions. Rules that cannot match are
    not run: those needing a digit when the text has none, and, in ASCII text, those none of
    whose words it contains (non-ASCII text is scanned in full: case-insensitive matching
    folds a few non-ASCII letters, such as the Kelvin sign, onto ASCII ones).
    """
    has_digit = _DIGIT.search(text) is not None
    lowered = text.lower() if text.isascii() else None
    out = []
    for (kind, rule, _), words in zip(_RULES, _WORD_CHECKS, strict=True):
        if kind in _NEEDS_DIGIT and not has_digit:  # such a rule cannot match: skip the scan
            continue
        if lowered is not None and not words.search(lowered):
            continue
        for m in rule.finditer(text):
            start, end = m.span()
            if kind == "weekday" and m.group("mod"):
                start = m.start("mod")
            out.append((kind, start, end, m.groupdict()))
    return tuple(out)


def find_dates(text: str, reference: date | None, *, region: str = "US") -> list[tuple[int, date]]:
    """Every explicit date said in ``text``, as ``(offset, date)`` in the order said.

    Without a ``reference`` day only dates that carry their year are returned.

    Examples
    --------
    >>> ref = date(2026, 9, 1)  # a Tuesday
    >>> [d.isoformat() for _, d in find_dates("Next Tuesday, or the 14th? Not March 3.", ref)]
    ['2026-09-08', '2026-09-14', '2027-03-03']
    >>> [d.isoformat() for _, d in find_dates("tomorrow at 10:30, or 9/4", ref)]
    ['2026-09-02', '2026-09-04']
    >>> find_dates("We are open Saturdays", ref)
    []
    """
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, date]] = []
    for kind, start, end, groups in _candidates(text):
        # A span a match resolved to a date is taken: later (looser) rules skip it.
        if any(start < e and s < end for s, e in taken):
            continue
        resolved = _resolve(kind, groups, reference, region)
        if resolved is not None:
            taken.append((start, end))
            found.append((start, resolved))
    return sorted(found, key=lambda item: item[0])
