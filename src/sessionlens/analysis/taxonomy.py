"""Intent taxonomies: which words and tool calls are evidence of which caller intent.

This module owns the taxonomy a user writes (TOML, JSON, YAML or a dict), its validation and
the compiled form the rule classifier in :mod:`sessionlens.analysis.intent` scores with. It is
kept apart from the classifier so a taxonomy can be loaded, checked and shared without running
anything, and so every mistake in a hand-written file is reported once, up front, with the key
that is wrong and how to fix it, rather than as a confusing result later.

The bundled :data:`DEFAULT_TAXONOMY` (booking / rescheduling / cancellation / info_lookup /
other, for a clinic's appointment line) is read from ``sessionlens/data/taxonomy.toml``, which
users can copy as a starting point (:func:`default_taxonomy_path`).
"""

from __future__ import annotations

import fnmatch
import math
import re
import re._parser as _sre  # to read a regex's literals: required_words
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import read_config
from ..errors import ConfigError

__all__ = [
    "DEFAULT_TAXONOMY",
    "IntentSpec",
    "Pattern",
    "Taxonomy",
    "ToolEvidence",
    "default_taxonomy_path",
    "load_taxonomy",
    "required_words",
]

_TOP_KEYS = {"fallback", "smoothing", "failed_tool_weight", "speakers", "intents"}
_INTENT_KEYS = {"description", "patterns", "tools"}
_DEFAULT_SPEAKERS = {"user": 1.0, "assistant": 0.25, "system": 0.0, "tool": 0.0}
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", _sre.MAX_REPEAT))


@dataclass(frozen=True)
class Pattern:
    """A keyword or regular expression that is evidence of an intent when someone says it.

    ``kind`` is ``"keyword"`` (whole words, case-insensitive, a trailing ``*`` on a word matches
    any ending) or ``"regex"`` (a Python regular expression, matched case-insensitively).

    Examples
    --------
    >>> p = Pattern.keyword("cancel*", 2.0)
    >>> bool(p.regex.search("We have to CANCELLED it")), bool(p.regex.search("uncancel"))
    (True, False)
    """

    kind: str
    text: str
    weight: float
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def keyword(cls, text: str, weight: float = 1.0) -> Pattern:
        """A whole-word phrase; words may be separated by any whitespace."""
        words = text.split()
        if not words:
            raise ValueError("a keyword needs at least one word")
        parts = [
            re.escape(w[:-1]) + "[\\w'\u2019-]*" if w.endswith("*") else re.escape(w) for w in words
        ]
        # \b would not bound keywords that start or end with punctuation; lookarounds do.
        body = r"(?<![\w])" + r"\s+".join(parts) + r"(?![\w])"
        return cls("keyword", text, weight, re.compile(body, re.IGNORECASE))

    @classmethod
    def compile(cls, text: str, weight: float = 1.0) -> Pattern:
        """A Python regular expression, matched case-insensitively."""
        return cls("regex", text, weight, re.compile(text, re.IGNORECASE))


def required_words(regex: re.Pattern[str]) -> tuple[str, ...] | None:
    r"""Lower-case ASCII strings one of which every match of ``regex`` contains, or None.

    The rule classifier's prefilter: an ASCII text whose lower-case form contains none of them
    cannot match, so the regular expression need not run. Worked out from the parsed
    expression, conservatively: runs of ASCII literal characters count, a group or a repeat
    of at least one counts as its body, an alternation as the union of its branches; anything
    else (classes, lookarounds, backreferences, optional parts) is no evidence. Only ASCII
    characters are used: under ``re.IGNORECASE`` a few non-ASCII letters (the Kelvin sign,
    the long s) match ASCII ones, but in ASCII text an ASCII letter matches only itself in
    either case. None when nothing is required (or the expression cannot be analysed).

    Examples
    --------
    >>> required_words(Pattern.keyword("new patient*").regex)
    ('patient',)
    >>> required_words(re.compile(r"\bhow much\b|\bcosts?\b", re.IGNORECASE))
    ('how much', 'cost')
    >>> required_words(re.compile(r"\d+|maybe")) is None
    True
    """
    try:
        return _required(list(_sre.parse(regex.pattern, regex.flags)))
    except Exception:  # an internal parser that changed shape: no prefilter, never wrong
        return None


def _required(seq: list[Any]) -> tuple[str, ...] | None:
    """Best requirement of a parsed sequence: the one whose shortest string is longest."""
    found: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, arg in [*seq, (None, None)]:  # a sentinel flushes the last literal run
        if op == _sre.LITERAL and arg < 128:
            run.append(chr(arg).lower())
            continue
        if run:
            found.append(("".join(run),))
            run = []
        sub: tuple[str, ...] | None = None
        if op == _sre.SUBPATTERN:
            sub = _required(list(arg[-1]))
        elif op in _REPEATS and arg[0] >= 1:
            sub = _required(list(arg[2]))
        elif op == _sre.ATOMIC_GROUP:
            sub = _required(list(arg))
        elif op == _sre.BRANCH:
            branches = [_required(list(b)) for b in arg[1]]
            if all(b is not None for b in branches):
                sub = tuple(dict.fromkeys(w for b in branches for w in b or ()))
        if sub:
            found.append(sub)
    return max(found, key=lambda ws: min(map(len, ws)), default=None)


@dataclass(frozen=True)
class ToolEvidence:
    """A tool whose call implies an intent: ``name`` is an exact name or a glob (``cancel_*``).

    Examples
    --------
    >>> ToolEvidence("cancel_*", 3.0).matches("Cancel_Appointment")
    True
    """

    name: str
    weight: float

    def matches(self, tool_name: str) -> bool:
        """Whether ``tool_name`` is this tool (case-insensitive, glob wildcards allowed)."""
        return fnmatch.fnmatchcase(tool_name.lower(), self.name.lower())


@dataclass(frozen=True)
class IntentSpec:
    """One intent: its name, a description, and the patterns and tools that are its evidence."""

    name: str
    description: str = ""
    patterns: tuple[Pattern, ...] = ()
    tools: tuple[ToolEvidence, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    """A validated intent taxonomy; build it with :func:`load_taxonomy`.

    Attributes
    ----------
    intents : tuple of IntentSpec
        In file order; on a tie the intent listed first wins.
    fallback : str
        The intent of a session with no evidence at all (one of ``intents``).
    speakers : dict of str to float
        Weight of a pattern match by the role of who said it (``user`` is the caller).
    smoothing : float
        ``confidence = (best - runner_up) / (best + smoothing)``; larger asks more evidence.
    failed_tool_weight : float
        Share of a tool's weight that a call which failed still counts (0..1).

    Examples
    --------
    >>> DEFAULT_TAXONOMY.names
    ('booking', 'rescheduling', 'cancellation', 'info_lookup', 'other')
    >>> DEFAULT_TAXONOMY.fallback
    'other'
    """

    intents: tuple[IntentSpec, ...]
    fallback: str = "other"
    speakers: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_SPEAKERS))
    smoothing: float = 1.0
    failed_tool_weight: float = 0.5

    @property
    def names(self) -> tuple[str, ...]:
        """The intent names, in order."""
        return tuple(i.name for i in self.intents)


def default_taxonomy_path() -> Path:
    """The bundled default taxonomy file, to copy and edit.

    Examples
    --------
    >>> default_taxonomy_path().name
    'taxonomy.toml'
    """
    return Path(__file__).resolve().parent.parent / "data" / "taxonomy.toml"


def load_taxonomy(source: str | Path | Mapping[str, Any] | Taxonomy) -> Taxonomy:
    """Read and validate a taxonomy from a TOML, JSON or YAML file, or from a dict.

    Parameters
    ----------
    source : str, Path, dict or Taxonomy
        A file path (format from the suffix: ``.toml``, ``.json``, ``.yaml``/``.yml``), the
        parsed mapping itself, or an already loaded taxonomy (returned unchanged).

    Returns
    -------
    Taxonomy

    Raises
    ------
    ConfigError
        The file is missing or unparsable, or a key is unknown, missing or of the wrong type;
        the message names the file and key, what is wrong and how to fix it.

    Examples
    --------
    >>> tax = load_taxonomy({"intents": {"refund": {"patterns": ["refund*"],
    ...                                             "tools": {"issue_refund": 3}}}})
    >>> tax.names, tax.fallback
    (('refund', 'other'), 'other')
    >>> load_taxonomy({"intents": {"refund": {"paterns": []}}})
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: taxonomy: intents.refund.paterns: unknown key; use one of \
description, patterns, tools
    """
    if isinstance(source, Taxonomy):
        return source
    if isinstance(source, Mapping):
        return _build(source, "taxonomy")
    return _build(_read(Path(source)), str(source))


def _read(path: Path) -> Mapping[str, Any]:
    return read_config(path, option="intents")


def _number(value: Any, where: str, *, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(where, f"{value!r} is not a number; write a number such as 1.5")
    if not low <= value <= high:
        bound = f"between {low:g} and {high:g}" if high < math.inf else f"at least {low:g}"
        raise ConfigError(where, f"{value!r} is out of range; it must be {bound}")
    return float(value)


def _smoothing(value: Any, where: str) -> float:
    number = _number(value, where, low=0)
    if number == 0:  # it divides; 0 would also make one weak match as sure as a strong one
        raise ConfigError(where, "must be greater than 0; 1.0 is a good start")
    return number


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{where}{key}", f"unknown key; use one of {', '.join(sorted(allowed))}"
            )


def _pattern(item: Any, where: str) -> Pattern:
    if isinstance(item, str):
        item = {"keyword": item}
    if not isinstance(item, Mapping):
        raise ConfigError(
            where,
            f"{item!r} is not a pattern; write a keyword string or a table "
            "{ keyword = '...', weight = 1.0 } / { regex = '...', weight = 1.0 }",
        )
    _check_keys(item, {"keyword", "regex", "weight"}, f"{where}.")
    kinds = [k for k in ("keyword", "regex") if k in item]
    if len(kinds) != 1:
        raise ConfigError(where, "a pattern needs exactly one of 'keyword' or 'regex'")
    text, weight = item[kinds[0]], _number(item.get("weight", 1.0), f"{where}.weight", low=0)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}.{kinds[0]}", "must be a non-empty string")
    if kinds[0] == "keyword":
        return Pattern.keyword(text, weight)
    try:
        return Pattern.compile(text, weight)
    except re.error as exc:
        raise ConfigError(
            f"{where}.regex",
            f"{text!r} is not a valid regular expression ({exc}); "
            "fix it or use a plain 'keyword' instead",
        ) from exc


def _intent(name: str, spec: Any, where: str) -> IntentSpec:
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ConfigError(
            where, "must be a table with 'patterns' and/or 'tools' (and an optional description)"
        )
    _check_keys(spec, _INTENT_KEYS, f"{where}.")
    patterns = spec.get("patterns", [])
    if isinstance(patterns, str) or not isinstance(patterns, list):
        raise ConfigError(f"{where}.patterns", "must be a list of keywords or pattern tables")
    tools = spec.get("tools", {})
    if not isinstance(tools, Mapping):
        raise ConfigError(
            f"{where}.tools",
            "must be a table of tool name (or glob) = weight, e.g. { cancel_appointment = 3.0 }",
        )
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}.description", "must be a string")
    return IntentSpec(
        name,
        description,
        tuple(_pattern(p, f"{where}.patterns[{i}]") for i, p in enumerate(patterns)),
        tuple(
            ToolEvidence(str(tool), _number(w, f"{where}.tools.{tool}", low=0))
            for tool, w in tools.items()
        ),
    )


def _build(data: Mapping[str, Any], origin: str) -> Taxonomy:
    where = f"{origin}: "
    _check_keys(data, _TOP_KEYS, where)
    intents = data.get("intents")
    if not isinstance(intents, Mapping) or not intents:
        raise ConfigError(
            f"{where}intents", "missing or empty; add an [intents.<name>] table per intent"
        )
    fallback = data.get("fallback", "other")
    if not isinstance(fallback, str) or not fallback:
        raise ConfigError(f"{where}fallback", "must be the name of an intent, e.g. 'other'")
    specs = [_intent(str(n), s, f"{where}intents.{n}") for n, s in intents.items()]
    if fallback not in intents:  # the fallback needs no evidence of its own
        specs.append(IntentSpec(fallback, "No evidence for any other intent."))
    speakers = data.get("speakers", {})
    if not isinstance(speakers, Mapping):
        raise ConfigError(f"{where}speakers", "must be a table of role = weight, e.g. user = 1.0")
    weights = dict(_DEFAULT_SPEAKERS)
    for role, w in speakers.items():
        weights[str(role)] = _number(w, f"{where}speakers.{role}", low=0)
    return Taxonomy(
        tuple(specs),
        fallback,
        weights,
        _smoothing(data.get("smoothing", 1.0), f"{where}smoothing"),
        _number(data.get("failed_tool_weight", 0.5), f"{where}failed_tool_weight", low=0, high=1),
    )


DEFAULT_TAXONOMY: Taxonomy = load_taxonomy(default_taxonomy_path())
"""The bundled clinic taxonomy (``sessionlens/data/taxonomy.toml``)."""
