"""Caller intent: what the caller of a session wanted, with a confidence and their own words.

This module owns the classifier contract and the offline default. A classifier is any callable
taking a :class:`~sessionlens.analysis.evidence.SessionEvidence` and returning an
:class:`IntentResult`, a ``(type, confidence[, summary])`` tuple or a dict; :func:`as_classifier`
turns such a callable into one that always returns a validated :class:`IntentResult`, so an
LLM-backed classifier plugs in without touching the rest of the analysis.

:class:`RuleClassifier` is the default: it scores every intent of a
:class:`~sessionlens.analysis.taxonomy.Taxonomy` from the words said (weighted by who said
them) and the tools called (a failed call counts less), and turns the margin between the best
and the runner-up into a confidence. Rules run anywhere, cost nothing and explain themselves
through ``scores``; docs/intent.md describes the taxonomy format and the confidence formula.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .evidence import SessionEvidence
from .taxonomy import (
    DEFAULT_TAXONOMY,
    Pattern,
    Taxonomy,
    load_taxonomy,
    required_words,
)

__all__ = [
    "DEFAULT_TAXONOMY",
    "Classifier",
    "IntentResult",
    "RuleClassifier",
    "Taxonomy",
    "as_classifier",
    "classify",
    "load_taxonomy",
]

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
# Openers that carry no request; dropped from the front of a summary.
_GREETING = re.compile(
    r"^(?:(?:hi|hello|hey|yeah|yes|ok(?:ay)?|so|um+|uh+|good (?:morning|afternoon|evening))"
    r"(?:\s+there)?\s*[,.!]*\s+)+",
    re.IGNORECASE,
)
_SUMMARY_MAX = 200
_MEMO_SIZE = 100_000  # remembered messages / tool names per classifier


@dataclass(frozen=True)
class IntentResult:
    """What a classifier decided about one session.

    Attributes
    ----------
    type : str
        The intent name.
    confidence : float
        0..1; how clearly the evidence favours ``type`` over the alternatives.
    summary : str or None
        The caller's request in their own words (one sentence), when known.
    scores : dict of str to float
        Per-intent evidence, in the classifier's own units (the rule classifier: weighted sums).

    Examples
    --------
    >>> IntentResult("booking", 0.8, "I'd like to book a cleaning.").type
    'booking'
    >>> IntentResult("booking", 1.5)
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: confidence: 1.5 is outside 0..1; a classifier must return \
a confidence between 0 and 1
    """

    type: str
    confidence: float
    summary: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise ConfigError("type", f"{self.type!r} is not an intent name; return a string")
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, int | float) or math.isnan(c):
            raise ConfigError("confidence", f"{c!r} is not a number; return a float in 0..1")
        if not 0.0 <= c <= 1.0:
            raise ConfigError(
                "confidence",
                f"{c!r} is outside 0..1; a classifier must return a confidence between 0 and 1",
            )
        if self.summary is not None and not isinstance(self.summary, str):
            raise ConfigError("summary", f"{self.summary!r} is not a string or None")
        object.__setattr__(self, "confidence", float(c))


Classifier = Callable[[SessionEvidence], Any]
"""Any callable ``(SessionEvidence) -> IntentResult | (type, confidence[, summary]) | dict``."""


def _normalise(out: Any, session_id: str) -> IntentResult:
    if isinstance(out, IntentResult):
        return out
    where = f"classifier (session {session_id})"
    try:
        if isinstance(out, tuple) and len(out) in (2, 3):
            return IntentResult(*out)
        if isinstance(out, Mapping):
            unknown = set(out) - {"type", "intent", "confidence", "summary", "scores"}
            if unknown or not ({"type", "intent"} & set(out)) or "confidence" not in out:
                raise ConfigError(
                    where,
                    f"returned a dict with keys {sorted(out)}; it needs 'type' (or "
                    "'intent') and 'confidence', optionally 'summary' and 'scores'",
                )
            scores = {str(k): float(v) for k, v in dict(out.get("scores") or {}).items()}
            return IntentResult(
                out.get("type", out.get("intent")), out["confidence"], out.get("summary"), scores
            )
    except ConfigError as exc:
        if exc.option.startswith("classifier"):
            raise
        raise ConfigError(where, f"{exc.option}: {exc.reason}") from exc
    raise ConfigError(
        where,
        f"returned {type(out).__name__} {out!r:.80}; return an IntentResult, a "
        "(type, confidence[, summary]) tuple or a dict with 'type' and 'confidence'",
    )


def as_classifier(fn: Classifier) -> Callable[[SessionEvidence], IntentResult]:
    """Wrap a classifier so it always returns a validated :class:`IntentResult`.

    Raises
    ------
    ConfigError
        ``fn`` is not callable; or, when called, it returns an unknown shape or a confidence
        outside 0..1 (the message names the session).

    Examples
    --------
    >>> from sessionlens.analysis.evidence import SessionEvidence
    >>> clf = as_classifier(lambda ev: ("booking", 0.9, "book me in"))
    >>> clf(SessionEvidence("s1"))
    IntentResult(type='booking', confidence=0.9, summary='book me in', scores={})
    >>> as_classifier(lambda ev: {"intent": "other", "confidence": 2})(SessionEvidence("s1"))
    Traceback (most recent call last):
    ...
    sessionlens.errors.ConfigError: classifier (session s1): confidence: 2 is outside 0..1; \
a classifier must return a confidence between 0 and 1
    """
    if isinstance(fn, RuleClassifier):
        return fn
    if not callable(fn):
        raise ConfigError(
            "classifier",
            f"{fn!r:.80} is not callable; pass a function (SessionEvidence) -> IntentResult",
        )

    def classifier(evidence: SessionEvidence) -> IntentResult:
        return _normalise(fn(evidence), evidence.session_id)

    return classifier


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _summary(sentence: str) -> str:
    text = _GREETING.sub("", sentence).strip() or sentence.strip()
    text = text[0].upper() + text[1:]
    return text if len(text) <= _SUMMARY_MAX else text[: _SUMMARY_MAX - 1].rstrip() + "…"


# Assertions whose outcome can differ between a sentence and the whole message around it.
_CONTEXT = re.compile(r"\^|\$|\\[AZBGz]|\(\?<?[=!]|\(\?[a-zA-Z]*[mx]")


def _text_implied(pattern: Pattern) -> bool:
    """Whether a match in a sentence implies a match in the whole message.

    Sentences are cut from a message at whitespace only, so a match inside a sentence is
    also a substring of the message, bordered there by whitespace or the message's ends.
    Literal characters, classes, quantifiers and ``\\b`` see the same thing either way
    (whitespace is a non-word character, like a string end). Anchors, ``\\B``, lookarounds
    and the multiline/verbose flags may not, so such a regular expression always takes the
    sentence scan. Keywords are built with ``(?<![\\w])``/``(?![\\w])`` lookarounds, which
    test for word characters only: a whitespace neighbour passes them like a string end.

    Examples
    --------
    >>> _text_implied(Pattern.keyword("book*")), _text_implied(Pattern.compile(r"^yes"))
    (True, False)
    """
    return pattern.kind == "keyword" or not _CONTEXT.search(pattern.text)


class RuleClassifier:
    """The offline classifier: weighted keyword, regex and tool evidence from a taxonomy.

    Each intent's score is the sum of

    - every pattern that matches a message: ``pattern weight x speaker weight`` (the role of
      who said it, from ``taxonomy.speakers``), counted once per message;
    - every tool of the intent called in the session: its weight, or ``failed_tool_weight``
      of it if every call of that tool failed; counted once however often it was retried.

    The best-scoring intent wins (the first listed on a tie); with no evidence at all the
    fallback wins with confidence 0. Confidence is the smoothed margin
    ``(best - runner_up) / (best + smoothing)``: 0 on a tie, near 1 when one intent has
    much evidence and the others none. The summary is the caller sentence that carried the most
    evidence for the winner, greeting stripped.

    Examples
    --------
    >>> from sessionlens.analysis.evidence import SessionEvidence, ToolCall, Turn
    >>> ev = SessionEvidence("s1", turns=(Turn("user", "Hi, I need to cancel Mia's visit."),),
    ...                      tool_calls=(ToolCall("cancel_appointment", {"id": "A1"}),))
    >>> r = RuleClassifier()(ev)
    >>> r.type, round(r.confidence, 2), r.summary
    ('cancellation', 0.83, "I need to cancel Mia's visit.")
    >>> RuleClassifier()(SessionEvidence("s2")).confidence
    0.0
    """

    def __init__(self, taxonomy: Taxonomy | Mapping[str, Any] | str | Path | None = None) -> None:
        self.taxonomy = DEFAULT_TAXONOMY if taxonomy is None else load_taxonomy(taxonomy)
        self._names = self.taxonomy.names  # a property that builds a tuple on each read
        # Per pattern, in taxonomy order: what _message_hits needs, worked out once.
        self._plan = [
            (spec.name, p.weight, p.regex, _text_implied(p))
            for spec in self.taxonomy.intents
            for p in spec.patterns
        ]
        # The prefilter of ASCII text: per required word, the patterns (plan indices) that
        # need it (one of their words must be in the lower-cased text to match at all);
        # patterns that need nothing are always tried.
        self._by_word: dict[str, list[int]] = {}
        self._always: list[int] = []
        for i, (_, _, regex, _) in enumerate(self._plan):
            words = required_words(regex)
            for word in words or ():
                self._by_word.setdefault(word, []).append(i)
            if not words:
                self._always.append(i)
        # Per (intent, tool evidence) pair in taxonomy order, the intent and the evidence.
        self._tools = [(spec.name, tool) for spec in self.taxonomy.intents for tool in spec.tools]
        self._hits: dict[str, tuple[tuple[str, float, int], ...]] = {}
        # Tool names repeat across sessions: remember which pairs each name matches (globs).
        self._tool_hits: dict[str, tuple[int, ...]] = {}

    def _tool_pairs(self, name: str) -> tuple[int, ...]:
        """Indices into ``self._tools`` of the tool evidence that ``name`` is."""
        hit = self._tool_hits.get(name)
        if hit is None:
            if len(self._tool_hits) > _MEMO_SIZE:  # bounded for tool names that never repeat
                self._tool_hits.clear()
            hit = tuple(j for j, (_, tool) in enumerate(self._tools) if tool.matches(name))
            self._tool_hits[name] = hit
        return hit

    def __repr__(self) -> str:
        return f"RuleClassifier(intents={list(self.taxonomy.names)})"

    def _message_hits(self, text: str) -> tuple[tuple[str, float, int], ...]:
        """``(intent, pattern weight, first matching sentence)`` per pattern that matches
        ``text``, in taxonomy order. A pure function of the text, so remembered: agents and
        callers repeat the same messages ("Let me check that for you.") across sessions."""
        found = self._hits.get(text)
        if found is not None:
            return found
        if text.isascii():  # only the patterns one of whose required words it contains
            lowered = text.lower()
            tried = set(self._always)
            for word, indices in self._by_word.items():
                if word in lowered:
                    tried.update(indices)
            plan = [self._plan[i] for i in sorted(tried)]  # taxonomy order, as without
        else:  # case folding maps a few non-ASCII letters to ASCII ones: try every pattern
            plan = self._plan
        sentences: list[str] | None = None
        out = []
        for name, weight, regex, text_first in plan:
            # One search over the message rules most patterns out; only a hit needs the
            # per-sentence scan (see _text_implied for why this is exact).
            if text_first and not regex.search(text):
                continue
            if sentences is None:
                sentences = _sentences(text)
            s_idx = next((i for i, s in enumerate(sentences) if regex.search(s)), None)
            if s_idx is not None:
                out.append((name, weight, s_idx))
        if len(self._hits) > _MEMO_SIZE:  # bounded: most texts never repeat
            self._hits.clear()
        found = self._hits[text] = tuple(out)
        return found

    def __call__(self, evidence: SessionEvidence) -> IntentResult:
        tax = self.taxonomy
        names = self._names
        scores = dict.fromkeys(names, 0.0)
        # (intent, turn, sentence) -> weight the caller's sentence carried for that intent
        caller_hits: dict[tuple[str, int, int], float] = {}
        for t_idx, turn in enumerate(evidence.turns):
            speaker = tax.speakers.get(turn.role, 0.0)
            if speaker <= 0 or not turn.content:
                continue
            for name, weight, s_idx in self._message_hits(turn.content):
                scores[name] += weight * speaker
                if turn.role == "user":
                    key = (name, t_idx, s_idx)
                    caller_hits[key] = caller_hits.get(key, 0.0) + weight
        # Per tool evidence a call matched: whether any such call succeeded.
        called: dict[int, bool] = {}
        for call in evidence.tool_calls:
            for j in self._tool_pairs(call.name):
                called[j] = called.get(j, False) or not call.is_error
        for j in sorted(called):  # taxonomy order: the same sums, added in the same order
            name, tool = self._tools[j]
            scores[name] += tool.weight * (1.0 if called[j] else tax.failed_tool_weight)
        ranked = sorted(names, key=lambda n: -scores[n])  # stable: file order on ties
        best = ranked[0]
        runner_up = scores[ranked[1]] if len(ranked) > 1 else 0.0
        if scores[best] <= 0:
            best, confidence = tax.fallback, 0.0
        else:
            confidence = (scores[best] - runner_up) / (scores[best] + tax.smoothing)
        summary = None
        hits = {k: w for k, w in caller_hits.items() if k[0] == best}
        if hits:  # the most telling sentence; the earliest on a tie
            _, t_idx, s_idx = max(hits, key=lambda k: (hits[k], -k[1], -k[2]))
            summary = _summary(_sentences(evidence.turns[t_idx].content)[s_idx])
        return IntentResult(best, min(1.0, max(0.0, confidence)), summary, scores)


def classify(evidence: SessionEvidence, *, classifier: Classifier | None = None) -> IntentResult:
    """Classify one session's caller intent (the rule classifier unless one is given).

    Parameters
    ----------
    evidence : SessionEvidence
        The session's turns and tool calls (:func:`~sessionlens.analysis.evidence.iter_evidence`).
    classifier : callable, optional
        Any :data:`Classifier`; its output is normalised and validated by :func:`as_classifier`.

    Returns
    -------
    IntentResult

    Examples
    --------
    >>> from sessionlens.analysis.evidence import SessionEvidence, Turn
    >>> ev = SessionEvidence("s1", turns=(Turn("user", "What are your hours on Saturday?"),))
    >>> classify(ev).type
    'info_lookup'
    >>> classify(ev, classifier=lambda e: ("other", 1.0)).type
    'other'
    """
    fn = as_classifier(classifier) if classifier is not None else _DEFAULT
    return fn(evidence)


_DEFAULT = RuleClassifier()
