"""Phone numbers in free text: ``PhoneNumberMatcher``'s matches, remembered per candidate.

:func:`spoken_numbers` returns exactly what iterating ``phonenumbers.PhoneNumberMatcher(text,
region)`` (leniency ``VALID``) yields, as ``(E.164, raw string)`` pairs, at a fraction of the
cost on call transcripts. Each caller says their own number, so whole texts rarely repeat,
but the numbers themselves do (a few area codes, a few formats): the expensive step, parsing
and validating a candidate, is remembered per candidate instead of per text.

Why that is exact (phonenumbers' ``phonenumbermatcher.py``, which this module drives):
``_find`` walks ``_PATTERN`` matches over the text and trims each with
``_SECOND_NUMBER_START_PATTERN``: that walk is repeated here verbatim, with the library's own
compiled patterns. For each candidate it calls ``_extract_match(candidate, start)``, whose
outcome reads, besides the candidate and the region, only

- the text after the candidate, through ``_TIME_STAMPS_SUFFIX.match``, and only when
  ``_TIME_STAMPS`` is found in the candidate (recorded in the key as ``stamp``);
- in ``_parse_and_verify`` of the candidate or of a group inside it (the inner matches):
  the character before the group, which is inside the candidate or the one just before it,
  and the character after the group, inside the candidate or the one just after it (or no
  character at either end of the text), recorded as ``before`` and ``after``;
- the matcher's ``_max_tries`` budget, which only ever decreases: a remembered outcome
  records how many tries it used and is reused only while the budget left is larger, else
  the whole text goes through the plain matcher.

A candidate seen for the first time is computed by the library itself (``_extract_match``
on a matcher of the real text), so the remembered outcome is the library's. Should a future
phonenumbers rename these private names, every text takes the plain matcher.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from phonenumbers import phonenumbermatcher as _pm

__all__ = ["plain_spoken_numbers", "spoken_numbers"]

_E164 = phonenumbers.PhoneNumberFormat.E164
_PARTS = ("_PATTERN", "_SECOND_NUMBER_START_PATTERN", "_TIME_STAMPS", "_TIME_STAMPS_SUFFIX")
#: The library's own patterns, or None when this phonenumbers lacks one (then: plain path).
_LIB: tuple[Any, ...] | None = (
    tuple(getattr(_pm, name) for name in _PARTS)
    if all(hasattr(_pm, name) for name in _PARTS)
    and hasattr(_pm.PhoneNumberMatcher, "_extract_match")
    else None
)
#: ``PhoneNumberMatcher``'s default ``max_tries``: invalid candidates tried per text.
_MAX_TRIES = 65535
_MEMO_SIZE = 65536  # distinct (candidate, neighbours) outcomes remembered
#: (candidate, before, after, stamp, region) -> (match or None, tries it used), where a
#: match is (offset in the candidate, raw string, E.164).
_MEMO: dict[tuple[str, str, str, bool, str], tuple[tuple[int, str, str] | None, int]] = {}


def plain_spoken_numbers(
    text: str, region: str, *, max_tries: int = _MAX_TRIES
) -> tuple[tuple[str, str], ...]:
    """``(E.164, as said)`` per match of ``PhoneNumberMatcher(text, region)``, in order.

    ``max_tries`` is the matcher's own: how many invalid candidates it tries before giving up.

    Examples
    --------
    >>> plain_spoken_numbers("Call (415) 555-0134 or +44 20 7946 0958.", "US")
    (('+14155550134', '(415) 555-0134'), ('+442079460958', '+44 20 7946 0958'))
    """
    return tuple(
        (phonenumbers.format_number(m.number, _E164), m.raw_string)
        for m in phonenumbers.PhoneNumberMatcher(text, region, max_tries=max_tries)
    )


def _outcome(
    text: str, start: int, candidate: str, region: str
) -> tuple[tuple[int, str, str] | None, int]:
    """The library's ``_extract_match`` of ``candidate`` at ``start``, and the tries it used."""
    matcher = phonenumbers.PhoneNumberMatcher(text, region)
    found = matcher._extract_match(candidate, start)
    used = _MAX_TRIES - matcher._max_tries
    if found is None:
        return None, used
    e164 = phonenumbers.format_number(found.number, _E164)
    return (found.start - start, found.raw_string, e164), used


def spoken_numbers(
    text: str, region: str, *, max_tries: int = _MAX_TRIES
) -> tuple[tuple[str, str], ...]:
    """What :func:`plain_spoken_numbers` returns, with each candidate's outcome remembered.

    Outcomes are remembered as computed with the full default budget; a smaller
    ``max_tries`` (tests use it to reach the fallback) only changes when the plain matcher
    takes over.

    Examples
    --------
    >>> spoken_numbers("Call (415) 555-0134 or +44 20 7946 0958.", "US")
    (('+14155550134', '(415) 555-0134'), ('+442079460958', '+44 20 7946 0958'))
    >>> spoken_numbers("On 2026-01-31 at 10:30, ext. 12", "US")
    ()
    """
    if _LIB is None:
        return plain_spoken_numbers(text, region, max_tries=max_tries)
    pattern, second_start, stamps, stamps_suffix = _LIB
    out: list[tuple[str, str]] = []
    tries = max_tries
    size = len(text)
    match = pattern.search(text, 0)
    # PhoneNumberMatcher._find, one candidate at a time; a found number resumes the search
    # at its end (has_next), a failed candidate after the candidate.
    while tries > 0 and match is not None:
        start = match.start()
        candidate = text[start : match.end()]
        trailing = second_start.search(candidate)
        if trailing:
            candidate = candidate[: trailing.start()]
        end = start + len(candidate)
        if not candidate:  # below min_candidate_length (1): skipped, no try used
            match = pattern.search(text, end)
            continue
        stamp = bool(stamps.search(candidate)) and bool(stamps_suffix.match(text[end:]))
        key = (candidate, text[start - 1] if start else "", text[end] if end < size else "",
               stamp, region)  # fmt: skip
        memo = _MEMO.get(key)
        if memo is None:
            if len(_MEMO) >= _MEMO_SIZE:  # bounded: numbers that never repeat
                _MEMO.clear()
            memo = _MEMO[key] = _outcome(text, start, candidate, region)
        found, used = memo
        if used >= min(tries, _MAX_TRIES):  # a budget could cut this one short: no shortcut
            return plain_spoken_numbers(text, region, max_tries=max_tries)
        tries -= used
        if found is None:
            tries -= 1
            match = pattern.search(text, end)
            continue
        offset, raw, e164 = found
        out.append((e164, raw))
        match = pattern.search(text, start + offset + len(raw))
    return tuple(out)
