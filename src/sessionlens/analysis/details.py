"""Booking details: the children, guardian, phone number and dates a caller gave.

This module owns :func:`extract_booking_details`, which reads one session's
:class:`~sessionlens.analysis.evidence.SessionEvidence` and returns a JSON-serialisable dict the
analysis cache stores as ``booking_details_json``. Every field is taken from the arguments the
agent passed to its tools first (they are what the agent acted on, already structured), and
from the caller's own words second; the agent's spoken replies and tool results are not used
(a patient lookup lists every child on file, not the ones this call is about). Where each
field came from is recorded under ``sources``.

Argument keys are matched by alias, case- and style-insensitively (``guardianName`` is
``guardian_name``), at any depth of the arguments: see :data:`ARGUMENT_ALIASES`. Phone numbers
are parsed with ``phonenumbers`` (its matcher's results remembered per number by
:mod:`sessionlens.analysis._phones`); spoken dates are resolved against the day of the call by
:mod:`sessionlens.analysis._dates`.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import phonenumbers

from ..errors import ConfigError
from ._dates import find_dates
from ._phones import spoken_numbers
from .evidence import SessionEvidence, ToolCall

__all__ = ["ARGUMENT_ALIASES", "DETAIL_KEYS", "extract_booking_details"]

#: The keys of the returned dict, always all present.
DETAIL_KEYS = (
    "children",
    "child_count",
    "parent_name",
    "phone_e164",
    "phone_raw",
    "requested_dates",
    "sources",
)
#: Tool-argument keys (normalised to snake_case) that carry each field.
ARGUMENT_ALIASES: dict[str, tuple[str, ...]] = {
    "parent_name": (
        "guardian_name", "parent_name", "caller_name", "customer_name", "contact_name",
        "account_holder", "guardian", "parent", "caller", "name",
    ),
    "phone": (
        "phone", "phone_number", "guardian_phone", "parent_phone", "caller_phone",
        "contact_phone", "callback_number", "mobile", "mobile_number", "cell", "telephone",
        "tel",
    ),
    "children": (
        "children", "child_names", "child_name", "child", "patient_names", "patient_name",
        "patients", "patient", "kids", "kid_names", "dependents",
    ),
    "child_count": (
        "child_count", "children_count", "num_children", "number_of_children", "patient_count",
        "num_patients", "number_of_patients", "kids_count",
    ),
    "dates": (
        "date", "dates", "preferred_date", "preferred_dates", "requested_date",
        "requested_dates", "appointment_date", "new_date", "start_date", "day", "datetime",
        "start", "start_time",
    ),
}  # fmt: skip
_KEY_FIELD = {key: f for f, keys in ARGUMENT_ALIASES.items() for key in keys}

# A capitalised word; "O'Brien" and "Mary-Kate" are one name, "Mia's" is the name "Mia".
_Q = "['\u2019]"  # an apostrophe, straight or typographic
_NAME = r"[A-Z][a-z]*(?:" + _Q + r"[A-Z][a-z]+|-[A-Z]?[a-z]+)*"
_STOP_WORDS = (
    "I A Hi Hello Hey Yes Yeah No Ok Okay Sure Thanks Thank Great Well So Oh Um Uh Please Sorry "
    "Maybe The This That It My We Our You Your And Or But Just Also Actually Dr Mr Mrs Ms Here "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May "
    "June July August September October November December Today Tomorrow"
)
_STOP = set(_STOP_WORDS.split())
_NUM = r"two|three|four|five|six|[1-9]"
_DIGIT = re.compile(r"\d")
_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_SINGULAR = (
    r"kid|child|son|daughter|boy|girl|little one|baby|toddler|grandkid|grandchild|grandson|"
    r"granddaughter|stepson|stepdaughter|little"
)
_PLURAL = (
    r"kids|children|sons|daughters|boys|girls|little ones|babies|toddlers|grandkids|"
    r"grandchildren|grandsons|granddaughters|stepsons|stepdaughters|twins|triplets"
)
_MEMO_SIZE = 65536  # distinct texts whose phone numbers are remembered
_PARTS = {"@Q": _Q, "@NAME": _NAME, "@NUM": _NUM, "@PLURAL": _PLURAL, "@SINGULAR": _SINGULAR}


def _rx(template: str) -> re.Pattern[str]:
    """Compile ``template`` with its ``@NAME``-style parts filled in."""
    for token, part in _PARTS.items():
        template = template.replace(token, part)
    return re.compile(template)


# "my twins Mia and Leo", "our three kids", "both of my boys, Sam and Max", "my son is Eli":
# the words around the names are case-insensitive, the names themselves must be capitalised.
_CHILDREN = _rx(
    r"(?i:\b(?:(?:my|our)\s+(?:(?P<num>@NUM)\s+)?|(?P<both>both)\s+(?:of\s+)?"
    r"(?:(?:my|our)\s+)?|(?P<bare>@NUM)\s+)(?:little\s+)?"
    r"(?:(?P<plural>@PLURAL)|(?P<singular>@SINGULAR))\b)"
    r"(?:\s*[,:]?\s*(?i:(?:are|is|named|called)\s+)?"
    r"(?P<names>@NAME(?:\s*,\s*(?:(?i:and)\s+)?@NAME)*(?:\s*,?\s+(?i:and|&)\s+@NAME)?))?"
)
# "this is Sarah Chen", "my name's Kevin O'Brien" (not "this is Mia's mom"); "Tom Becker here".
_PARENT = [
    _rx(
        r"(?i:\b(?:this is|it@Qs|it is|my name is|my name@Qs|name@Qs|the name is|i@Qm|i am)\s+)"
        r"(?P<name>@NAME(?:\s+@NAME){0,2})(?!@Qs\b)(?![\w'\u2019])"
    ),
    _rx(r"(?<![\w'\u2019])(?P<name>@NAME(?:\s+@NAME){0,2})\s+here\b"),
]


@functools.lru_cache(maxsize=4096)  # argument keys repeat across every call of a tool
def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).replace("-", "_").lower()


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """``(field, value)`` for every aliased key, at any depth; a matched value is not entered.

    A bare ``name`` only counts at the top of the arguments: deeper down it may name anything.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop(0)
        if isinstance(item, dict):
            for key, sub in item.items():
                f = _KEY_FIELD.get(_snake(str(key)))
                if f is not None and not (key == "name" and depth > 0):
                    yield f, sub
                elif isinstance(sub, dict | list):
                    stack.append((sub, depth + 1))
        elif isinstance(item, list):
            stack += [(sub, depth + 1) for sub in item]


def _person(value: Any) -> str | None:
    """A person's name from a string or a ``{name | first_name [+ last_name]}`` object."""
    if isinstance(value, dict):
        low = {_snake(str(k)): v for k, v in value.items()}
        value = (
            low.get("name")
            or low.get("full_name")
            or " ".join(
                str(low[k]) for k in ("first_name", "last_name") if isinstance(low.get(k), str)
            )
        )
    if isinstance(value, str):
        text = " ".join(value.split())
        if re.search(r"[^\W\d_]", text) and not re.search(r"\d", text):
            return text
    return None


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [n for item in value for n in _names(item)]
    if isinstance(value, str):
        parts = re.split(r"\s*,\s*(?:and\s+)?|\s+(?:and|&)\s+", value)
        return [n for n in (_person(p) for p in parts) if n]
    name = _person(value)
    return [name] if name else []


@functools.lru_cache(maxsize=_MEMO_SIZE)  # a pure function; the same numbers recur
def _parse_phone(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _spoken_numbers(text: str, region: str) -> tuple[tuple[str, str], ...]:
    """``(E.164, as said)`` per phone number ``PhoneNumberMatcher`` finds in ``text``.

    A pure function of its arguments, so remembered: callers repeat the same sentences across
    sessions, and the matcher costs more than the rest of the extraction.
    """
    # The matcher's every candidate is a run of (Unicode) digits: without one it finds
    # nothing, and building it is not free.
    if not _DIGIT.search(text):
        return ()
    return spoken_numbers(text, region)  # the matcher's results, remembered per number


def _arg_dates(value: Any, ref: date | None, region: str) -> list[date]:
    if isinstance(value, list):
        return [d for item in value for d in _arg_dates(item, ref, region)]
    if not isinstance(value, str):
        return []
    try:  # ISO date or datetime, the usual tool format
        return [date.fromisoformat(value.strip()[:10])]
    except ValueError:
        return [d for _, d in find_dates(value, ref, region=region)]


def _dedupe(items: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return out


def _not_stop(word: str) -> bool:
    return word not in _STOP


def _from_arguments(calls: Sequence[ToolCall], ref: date | None, region: str) -> dict[str, Any]:
    """Name and phone from the latest successful call that has them (the agent's corrected
    view), else the latest failed one; the largest child count any call gave; children and
    dates from every call, in session order."""
    found: dict[str, Any] = {"children": [], "dates": []}
    walked = [list(_walk(call.arguments)) for call in calls]  # both passes read them
    ordered = [w for c, w in zip(calls, walked, strict=True) if c.is_error] + [
        w for c, w in zip(calls, walked, strict=True) if not c.is_error
    ]
    for fields in ordered:
        for f, value in fields:
            if f == "parent_name" and (name := _person(value)):
                found["parent_name"] = name
            elif f == "phone" and isinstance(value, str | int) and not isinstance(value, bool):
                if e164 := _parse_phone(str(value), region):
                    found["phone"] = (e164, str(value))
            elif f == "child_count" and type(value) is int and value >= 0:
                found["child_count"] = max(value, found.get("child_count", 0))
    for fields in walked:  # lists keep session order
        for f, value in fields:
            if f == "children":
                found["children"] += _names(value)
            elif f == "dates":
                found["dates"] += _arg_dates(value, ref, region)
    return found


def _children_from_text(text: str) -> tuple[list[str], int | None]:
    names: list[str] = []
    counts: list[int] = []
    mentions = 0
    for m in _CHILDREN.finditer(text):
        mentions += 1
        said = list(itertools.takewhile(_not_stop, re.findall(_NAME, m.group("names") or "")))
        said = said[:1] if m.group("singular") else said
        names += said
        plural = (m.group("plural") or "").lower()
        if m.group("singular"):
            counts.append(1)
        elif num := (m.group("num") or m.group("bare")):
            counts.append(int(num) if num.isdigit() else _NUMBERS[num.lower()])
        elif m.group("both") or plural == "twins":
            counts.append(2)
        elif plural == "triplets":
            counts.append(3)
    names = _dedupe(names)
    if not counts and not names:
        return names, (None if mentions else 0)  # "my kids" alone: how many is unknown
    return names, max([len(names), *counts])


def _parent_from_text(text: str) -> str | None:
    """The first name introduced as the caller's own ("this is ...", "... here")."""
    hits: list[tuple[int, str]] = []
    for anchored_end, rule in enumerate(_PARENT):
        for m in rule.finditer(text):
            words = m.group("name").split()
            if anchored_end:  # "Hi Sarah Chen here": the name is what precedes "here"
                words = list(itertools.takewhile(_not_stop, reversed(words)))[::-1]
            else:  # "it's Sarah Chen Tuesday": the name stops at the first non-name
                words = list(itertools.takewhile(_not_stop, words))
            if words:
                hits.append((m.start("name"), " ".join(words)))
                break
    return min(hits)[1] if hits else None


def extract_booking_details(
    evidence: SessionEvidence, *, region: str = "US", reference_date: date | None = None
) -> dict[str, Any]:
    """The booking details a session's caller gave, with where each came from.

    Parameters
    ----------
    evidence : SessionEvidence
        One session (:func:`~sessionlens.analysis.evidence.iter_evidence`).
    region : str
        ISO country code for phone numbers without a country code and for numeric dates
        (month first in ``US``/``CA``, day first elsewhere).
    reference_date : date, optional
        The day spoken dates are relative to; defaults to the session's start date (UTC), or
        its first turn's. Without either, only dates that state their year are resolved.

    Returns
    -------
    dict
        ``children`` (names, in the order first given), ``child_count`` (int; 0 when no child
        is mentioned, None when children are mentioned but not how many), ``parent_name``,
        ``phone_e164`` and ``phone_raw`` (the number as the caller said it when they said the
        same number, else as the tool argument had it), ``requested_dates`` (ISO dates, caller's
        order first, then any only the tools used), and ``sources``: per field
        (``children``, ``child_count``, ``parent_name``, ``phone``, ``requested_dates``) one of
        ``"tool_arguments"``, ``"caller_text"``, ``"tool_arguments+caller_text"`` or None.

    Raises
    ------
    ConfigError
        ``region`` is not a region code ``phonenumbers`` knows.

    Examples
    --------
    >>> from datetime import datetime
    >>> from sessionlens.analysis.evidence import SessionEvidence, ToolCall, Turn
    >>> ev = SessionEvidence("s1", datetime(2026, 9, 1, 9, 30), turns=(
    ...     Turn("user", "Hi, this is Ana Ruiz. I'd like to book my twins Mia and Leo in "
    ...                  "next Tuesday, my cell is (415) 555-0134."),),
    ...     tool_calls=(ToolCall("lookup_patient", {"guardianName": "Ana Ruiz"}),))
    >>> d = extract_booking_details(ev)
    >>> d["children"], d["child_count"], d["parent_name"], d["phone_e164"], d["phone_raw"]
    (['Mia', 'Leo'], 2, 'Ana Ruiz', '+14155550134', '(415) 555-0134')
    >>> d["requested_dates"], d["sources"]["parent_name"], d["sources"]["phone"]
    (['2026-09-08'], 'tool_arguments', 'caller_text')
    """
    if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            "region",
            f"{region!r} is not a region phonenumbers knows; use an ISO 3166 "
            "country code such as 'US' or 'GB'",
        )
    region = region.upper()
    ref = reference_date
    if ref is None:
        first = evidence.start_time or next(
            (t.timestamp for t in evidence.turns if t.timestamp), None
        )
        ref = first.date() if isinstance(first, datetime) else None
    args = _from_arguments(evidence.tool_calls, ref, region)
    caller = [t.content for t in evidence.caller_turns if t.content]
    sources: dict[str, str | None] = dict.fromkeys(
        ("children", "child_count", "parent_name", "phone", "requested_dates")
    )

    text_names, text_count = _children_from_text("\n".join(caller))
    children = _dedupe(args["children"]) or text_names
    if children:
        sources["children"] = "tool_arguments" if args["children"] else "caller_text"
    if "child_count" in args:
        child_count: int | None = args["child_count"]
        sources["child_count"] = "tool_arguments"
    elif args["children"]:
        child_count, sources["child_count"] = len(children), "tool_arguments"
    else:
        child_count = text_count
        sources["child_count"] = "caller_text" if text_count != 0 else None

    parent = args.get("parent_name")
    if parent:
        sources["parent_name"] = "tool_arguments"
    elif parent := next((p for p in map(_parent_from_text, caller) if p), None):
        sources["parent_name"] = "caller_text"

    spoken = [number for text in caller for number in _spoken_numbers(text, region)]
    phone_e164 = phone_raw = None
    if "phone" in args:
        phone_e164, phone_raw = args["phone"]
        sources["phone"] = "tool_arguments"
        phone_raw = next((raw for e, raw in spoken if e == phone_e164), phone_raw)
    elif spoken:
        (phone_e164, phone_raw), sources["phone"] = spoken[0], "caller_text"

    said = [d for text in caller for _, d in find_dates(text, ref, region=region)]
    dates = _dedupe([d.isoformat() for d in [*said, *args["dates"]]])
    if dates:
        kinds = [k for k, v in (("tool_arguments", args["dates"]), ("caller_text", said)) if v]
        sources["requested_dates"] = "+".join(kinds)
    return {
        "children": children,
        "child_count": child_count,
        "parent_name": parent,
        "phone_e164": phone_e164,
        "phone_raw": phone_raw,
        "requested_dates": dates,
        "sources": sources,
    }
