"""PII redaction: phone numbers, e-mail addresses and known personal names become stable tokens.

This module owns what "redacted" means for everything sessionlens writes out (reports now, other
exports later). A value is replaced by a *token* ``<kind>_<12 hex>``: the first 12 hex digits
of HMAC-SHA256(salt, ``"<kind>:<normalised value>"``). Equal values give equal tokens, so joins
and counts still work on redacted data (one caller's phone is the same ``phone_…`` in every file
and every run with the same salt); a different salt gives unrelated tokens.

What is caught:

- **phone numbers** in free text, found by ``phonenumbers.PhoneNumberMatcher`` for a default
  region (``"US"``) plus any ``+``-prefixed E.164 string; normalised to E.164 before hashing,
  so ``(510) 555-0143``, ``510.555.0143`` and ``+15105550143`` share one token;
- **e-mail addresses** (normalised to lower case);
- **personal names** known from the data: parent and children names that booking-detail
  extraction found (:func:`known_names`), each full name and each part of it, matched as whole
  words, case-insensitively (a child called ``Max`` also turns the word "max" into a token:
  over-redaction is preferred to a leak);
- in JSON values, fields whose key says what they hold (``phone*``, ``*_name``, ``children``,
  ``email``) are tokenised whole, whatever their format.

What is *not* caught: names nobody extracted (a name only ever said in a transcript and never
in booking details), street addresses, dates of birth, free-text identifiers. Redaction is
pseudonymisation, not anonymisation: with the salt, a token can be confirmed by hashing a
guessed value, and phone numbers are few enough to enumerate. The default salt
(:data:`DEFAULT_SALT`) is public; pass your own secret ``salt`` for data leaving your team.

``user_id`` is usually an opaque pseudonymous id and is kept as it is, but it goes through
:func:`redact_text` like any text, so a phone number or e-mail used as a user id is tokenised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
import phonenumbers
import pyarrow as pa

from .errors import ConfigError

__all__ = [
    "DEFAULT_SALT",
    "SAFE_COLUMNS",
    "Redactor",
    "known_names",
    "redact_table",
    "redact_text",
    "salt_fingerprint",
    "token",
]

#: The salt used when none is given. Public, so tokens made with it can be confirmed by anyone
#: who guesses the value: pass ``salt=`` (``--salt``) for data that leaves your team.
DEFAULT_SALT = "sessionlens-default-salt-v1"
#: Columns that hold ids, enums, fingerprints or versions sessionlens itself wrote; never PII,
#: and scanning hex fingerprints for phone numbers could only damage them.
SAFE_COLUMNS = frozenset(
    {
        "session_id",
        "trace_id",
        "observation_id",
        "status",
        "intent",
        "caller_intent_type",
        "cost_source",
        "drop_off_step",
        "session_tag",
        "analyzer_version",
        "config_fingerprint",
        "input_fingerprint",
        "model",
        "provider",
        "variant",
        "from_tool",
        "to_tool",
        "step",
        "tool_name",
    }
)
_KINDS = ("phone", "email", "name")
_TOKEN_RE = re.compile(r"\b(?:phone|email|name)_[0-9a-f]{12}\b")
_E164_RE = re.compile(r"(?<![\w+])\+[1-9]\d{6,14}(?!\d)")
_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_PHONE_KEY = re.compile(r"phone|mobile|msisdn|caller_number", re.IGNORECASE)
_NAME_KEY = re.compile(
    r"^(?:(?:parent|guardian|first|last|full|given|family|caller|patient|child|contact|customer)"
    r"_?names?|children|parent|guardian)$",
    re.IGNORECASE,
)
_EMAIL_KEY = re.compile(r"e-?mail", re.IGNORECASE)
_SAFE_KEYS = frozenset({"tool", "sources", "seq", "ok"})

T = TypeVar("T", pa.Table, pd.DataFrame)


def token(kind: str, value: str, *, salt: str = DEFAULT_SALT) -> str:
    """The stable token of ``value`` (already normalised) of a kind: phone, email or name.

    Examples
    --------
    >>> token("phone", "+15105550143") == token("phone", "+15105550143")
    True
    >>> token("phone", "+15105550143").startswith("phone_")
    True
    >>> token("phone", "+15105550143") != token("phone", "+15105550143", salt="other")
    True
    """
    if kind not in _KINDS:
        raise ConfigError("kind", f"must be one of {', '.join(_KINDS)}, got {kind!r}")
    digest = hmac.new(salt.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}_{digest[:12]}"


def salt_fingerprint(salt: str) -> str:
    """A short one-way fingerprint of a salt, to tell which salt a report used without it.

    Examples
    --------
    >>> salt_fingerprint("s3cret") == salt_fingerprint("s3cret") != salt_fingerprint("other")
    True
    """
    return hmac.new(salt.encode(), b"sessionlens-salt-fingerprint", hashlib.sha256).hexdigest()[:16]


def _name_parts(names: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for name in names:
        full = " ".join(str(name).split())
        if len(full) < 2:
            continue
        out.add(full)
        # Single parts too: an agent says "Thanks, Sarah" after hearing "Sarah Chen".
        out.update(part for part in full.split(" ") if len(part) >= 2)
    return out


@dataclass
class Redactor:
    """Redaction settings in one reusable object (salt, phone region, known names).

    Parameters
    ----------
    salt : str
        HMAC key of the tokens; default :data:`DEFAULT_SALT`.
    names : iterable of str
        Personal names to replace wherever they appear (see :func:`known_names`).
    region : str
        Region for phone numbers written without a country code (ISO 3166 code).

    Examples
    --------
    >>> r = Redactor(names=["Sarah Chen", "Milo"])
    >>> r.text("Sarah Chen, (510) 555-0143, about Milo") == r.text(
    ...     "Sarah Chen, +15105550143, about milo")
    True
    >>> r.text("call 510.555.0143")  # doctest: +ELLIPSIS
    'call phone_...'
    """

    salt: str = DEFAULT_SALT
    names: Iterable[str] = ()
    region: str = "US"
    _name_re: re.Pattern[str] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        parts = sorted(_name_parts(self.names), key=lambda s: (-len(s), s))
        self.names = tuple(parts)
        if parts:
            # Longest first, so "Sarah Chen" is one token rather than two.
            alternatives = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in parts)
            self._name_re = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def phone_token(self, value: str) -> str:
        """Token of a phone number in any format (normalised to E.164 when it parses)."""
        try:
            number = phonenumbers.parse(value, self.region)
            normal = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            normal = re.sub(r"\D", "", value)
        return token("phone", normal, salt=self.salt)

    def name_token(self, value: str) -> str:
        """Token of a personal name (case and spacing do not matter)."""
        return token("name", " ".join(value.split()).casefold(), salt=self.salt)

    def email_token(self, value: str) -> str:
        """Token of an e-mail address (case does not matter)."""
        return token("email", value.strip().lower(), salt=self.salt)

    def text(self, text: str) -> str:
        """``text`` with every phone number, e-mail address and known name replaced."""
        if not text:
            return text
        spans: list[tuple[int, int, str]] = []
        for m in _EMAIL_RE.finditer(text):
            spans.append((m.start(), m.end(), self.email_token(m.group())))
        for m in _E164_RE.finditer(text):
            spans.append((m.start(), m.end(), self.phone_token(m.group())))
        for pm in phonenumbers.PhoneNumberMatcher(text, self.region):
            e164 = phonenumbers.format_number(pm.number, phonenumbers.PhoneNumberFormat.E164)
            spans.append((pm.start, pm.end, token("phone", e164, salt=self.salt)))
        if self._name_re is not None:
            for m in self._name_re.finditer(text):
                spans.append((m.start(), m.end(), self.name_token(m.group())))
        # Existing tokens are protected, so redacting twice changes nothing.
        taken = [(m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]
        out, pos = [], 0
        for start, end, tok in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
            if start < pos or any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            out += [text[pos:start], tok]
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def value(self, value: Any, key: str = "") -> Any:
        """Redact a JSON-like value; ``key`` (its field name) picks whole-field tokens."""
        if isinstance(value, Mapping):
            return {k: v if k in _SAFE_KEYS else self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if not isinstance(value, str) or _TOKEN_RE.fullmatch(value):
            return value  # already a token: redacting twice changes nothing
        if _PHONE_KEY.search(key):
            return self.phone_token(value)
        if _EMAIL_KEY.search(key):
            return self.email_token(value)
        if _NAME_KEY.search(key):
            return self.name_token(value)
        return self.text(value)

    def cell(self, value: Any) -> Any:
        """Redact one table cell: JSON text is parsed and redacted field by field."""
        if isinstance(value, list):
            return [self.cell(v) for v in value]
        if not isinstance(value, str):
            return value
        stripped = value.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                parsed = json.loads(value)
            except ValueError:
                return self.text(value)
            return json.dumps(self.value(parsed), ensure_ascii=False, sort_keys=True)
        return self.text(value)


def redact_text(
    text: str, *, salt: str = DEFAULT_SALT, names: Iterable[str] = (), region: str = "US"
) -> str:
    """Replace phone numbers, e-mail addresses and the given names in free text by tokens.

    Parameters
    ----------
    text : str
    salt : str
        HMAC key; the same salt always gives the same token for the same value.
    names : iterable of str
        Personal names to replace (full names and their parts, whole words, any case).
    region : str
        Region of phone numbers written without a country code.

    Examples
    --------
    >>> out = redact_text("Jessica Nguyen, (925) 555-0194, jn@example.org",
    ...                   names=["Jessica Nguyen"])
    >>> out.count("name_"), out.count("phone_"), out.count("email_")
    (1, 1, 1)
    >>> redact_text(out, names=["Jessica Nguyen"]) == out  # idempotent
    True
    """
    return Redactor(salt=salt, names=names, region=region).text(text)


def _string_like(dtype: pa.DataType) -> bool:
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return True
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _string_like(dtype.value_type)
    return False


def redact_table(
    data: T,
    *,
    redactor: Redactor | None = None,
    salt: str = DEFAULT_SALT,
    names: Iterable[str] = (),
    region: str = "US",
    keep: Iterable[str] = SAFE_COLUMNS,
) -> T:
    """Redact every text column of an Arrow table or pandas DataFrame (same type back).

    Every string (and list-of-string) column except those in ``keep`` goes through
    :meth:`Redactor.cell`: JSON text is redacted field by field (``phone_e164``, ``phone_raw``,
    ``parent_name``, ``children`` become tokens), other text by :func:`redact_text`.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"session_id": ["s1"], "booking_details_json":
    ...               ['{"parent_name": "Sarah Chen", "phone_e164": "+15105550143"}']})
    >>> out = redact_table(t).to_pylist()[0]
    >>> out["session_id"], "Sarah" in out["booking_details_json"]
    ('s1', False)
    """
    r = redactor or Redactor(salt=salt, names=names, region=region)
    skip = set(keep)
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
        for col in frame.columns:
            if col not in skip and frame[col].dtype in (object, "string", "str"):
                frame[col] = frame[col].map(r.cell).astype(frame[col].dtype)
        return frame
    columns = []
    for name, col in zip(data.column_names, data.columns, strict=True):
        if name not in skip and _string_like(col.type):
            col = pa.array([r.cell(v) for v in col.to_pylist()], type=col.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=data.schema)


def known_names(con: Any) -> list[str]:
    """Parent and children names found by booking-detail extraction in ``session_analysis``.

    Examples
    --------
    >>> from sessionlens import connect, load, datasets, analyze_sessions
    >>> con = connect()
    >>> _ = load(con, datasets.sample_dir())
    >>> _ = analyze_sessions(con)
    >>> "Sarah Chen" in known_names(con)
    True
    """
    rows = con.execute(
        "SELECT DISTINCT name FROM ("
        "  SELECT booking_details_json ->> '$.parent_name' AS name FROM session_analysis"
        "  UNION ALL"
        "  SELECT unnest(CAST(booking_details_json -> '$.children' AS TEXT[]))"
        "  FROM session_analysis"
        ") WHERE name IS NOT NULL AND trim(name) <> '' ORDER BY name"
    ).fetchall()
    return [row[0] for row in rows]
