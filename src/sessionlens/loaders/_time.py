"""Timestamps: raw source values to naive UTC ``datetime`` (microseconds).

Owns ``parse_timestamp``, which every loader calls several times per record (start, end,
completion start, updated at), so it has a fast path: the two spellings that make up nearly
all real exports (Langfuse blob's ``YYYY-MM-DD HH:MM:SS.ffffff`` and ISO-8601 with ``Z``) go
straight to ``datetime.fromisoformat``; everything else, and anything the fast path cannot
parse, takes the general path. The fast path only accepts text on which the general path
would do exactly the same thing, so the result (value or error) never depends on the path.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["parse_timestamp"]

_TS_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
# ASCII digits only (``\d`` would admit other scripts' digits), at most six fraction digits
# (the general path trims longer ones), no surrounding space (it strips), and an optional
# ``Z``: on exactly these strings the general path is ``fromisoformat`` of the same wall time.
_TS_COMMON = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
)


def parse_timestamp(value: Any) -> datetime | None:
    """Parse a timestamp into a naive UTC ``datetime`` (microseconds).

    Accepts ISO-8601 with ``Z`` or an offset, Langfuse's export form
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), epoch seconds / milliseconds / microseconds /
    nanoseconds as numbers or digit strings, and ``datetime`` objects.

    >>> parse_timestamp("2025-12-22T10:46:15.528Z")
    datetime.datetime(2025, 12, 22, 10, 46, 15, 528000)
    >>> parse_timestamp("2024-05-29 13:46:19.963000")
    datetime.datetime(2024, 5, 29, 13, 46, 19, 963000)
    """
    if type(value) is str:
        text = value[:-1] if value[-1:] in ("Z", "z") else value
        if _TS_COMMON.fullmatch(text):
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                pass  # a day or hour out of range: the general path words the error
    return _parse_general(value)


def _parse_general(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got {value!r}")
    elif isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"expected a timestamp, got {value!r}")
        # Pick the unit by magnitude: seconds until 5138, then ms, us, ns.
        for scale in (1, 1e3, 1e6, 1e9):
            if number / scale < 1e11:
                dt = datetime.fromtimestamp(number / scale, UTC)
                break
        else:
            raise ValueError(f"timestamp out of range: {value!r}")
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # Python < 3.11 style fromisoformat quirks are gone, but nanosecond fractions are not
        # accepted: trim the fraction to microseconds.
        text = _LONG_FRACTION.sub(r"\1", text)
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
        if dt.tzinfo is None and not _TS_NAIVE.match(text) and "T" not in text:
            raise ValueError(f"not a timestamp: {value!r}")
    else:
        raise ValueError(f"expected a timestamp, got {type(value).__name__}")
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt
