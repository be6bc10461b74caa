"""Building canonical rows for the loaders that synthesise them (transcripts, planner, tables).

Langfuse exports arrive as records the Langfuse mappers understand; chat transcripts, planner
logs and user tables do not, so their loaders build ``observations`` rows themselves and hand
traces to the Langfuse trace mapper (which applies the ``InternalRules``). This module owns
what those loaders share:

- ``observation_row``: a complete ``observations`` row from the fields a loader knows, every
  other column NULL, so no loader can forget a column;
- ``trace_record``: a Langfuse-shaped trace record for ``langfuse.map_trace``;
- ``payload`` / ``text``: JSON and text values that DuckDB can store. A value nested too deeply
  to serialise or holding a lone surrogate (invalid Unicode, which JSON text may contain but
  UTF-8 cannot) raises ``ValueError``, so the record is rejected instead of crashing the load;
- ``stable_id``: deterministic ids from content, so re-loading writes nothing;
- ``mapped_items``: one record's rows as pipeline items, or one ``error`` item;
- ``SYNTHETIC_START``: the clock of sources without timestamps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from ._normalize import decode_json, to_text
from .langfuse import OBSERVATION_HASHED

__all__ = [
    "OBSERVATION_COLUMNS",
    "SYNTHETIC_START",
    "error_text",
    "mapped_items",
    "observation_row",
    "payload",
    "stable_id",
    "text",
    "trace_record",
]

#: Where synthetic clocks start (UTC). Transcripts without timestamps get one message per
#: second from here: deterministic (re-loads match) and obviously not a real date.
SYNTHETIC_START = datetime(2000, 1, 1)

#: Every column an observation row carries (the table's, less what the writer adds).
OBSERVATION_COLUMNS = ("observation_id", *OBSERVATION_HASHED, "source_format", "source_updated_at")


def _check_unicode(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what}: lone surrogate {value[exc.start]!r} at character {exc.start} "
            "is not valid Unicode"
        ) from None
    return value


def payload(value: Any, what: str) -> str | None:
    """JSON text of a decoded value for a ``JSON`` column; ``None`` and ``""`` stay NULL.

    >>> payload({"a": [1, "ü"]}, "input")
    '{"a": [1, "ü"]}'
    >>> payload("\\ud800", "input")
    Traceback (most recent call last):
    ...
    ValueError: input: lone surrogate '\\ud800' at character 1 is not valid Unicode
    """
    if value is None or value == "":
        return None
    try:
        out = json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
    except RecursionError:
        raise ValueError(f"{what}: nested too deeply to store") from None
    except ValueError as exc:  # NaN / infinity
        raise ValueError(f"{what}: {exc}") from None
    return _check_unicode(out, what)


def text(value: Any, what: str) -> str | None:
    """A text column value (see ``to_text``) that is valid Unicode.

    >>> text(42, "name"), text("", "name")
    ('42', None)
    """
    try:
        out = to_text(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return None if out is None else _check_unicode(out, what)


def error_text(result: Any) -> str | None:
    """The error a tool result reports, else ``None``.

    A failure is a string starting with ``Error`` (tau-bench, many tool wrappers) or an object
    with a non-empty ``error`` key.

    >>> error_text("Error: flight not found"), error_text({"error": {"code": 404}})
    ('Error: flight not found', '{"code": 404}')
    >>> error_text({"rows": []}) is None and error_text(None) is None
    True
    """
    if isinstance(result, str) and result.lstrip()[:5].lower() == "error":
        return result
    decoded = decode_json(result)
    if isinstance(decoded, Mapping) and decoded.get("error") not in (None, "", False):
        error = decoded["error"]
        return error if isinstance(error, str) else payload(error, "error")
    return None


def stable_id(prefix: str, *parts: Any) -> str:
    """A deterministic id from JSON-serialisable content (key order does not matter).

    >>> stable_id("chat", [{"b": 1, "a": 2}]) == stable_id("chat", [{"a": 2, "b": 1}])
    True
    >>> stable_id("chat", "x")[:5]
    'chat-'
    """
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        # ASCII escapes keep lone surrogates hashable; the record is rejected later anyway.
        try:
            blob = json.dumps(part, sort_keys=True, ensure_ascii=True, default=str)
        except RecursionError:
            raise ValueError("nested too deeply to identify; give the record an id") from None
        digest.update(blob.encode("ascii"))
        digest.update(b"\x1f")
    return f"{prefix}-{digest.hexdigest()}"


def observation_row(**fields: Any) -> dict[str, Any]:
    """A complete ``observations`` row: the given columns, the rest NULL (level DEFAULT).

    >>> row = observation_row(observation_id="o1", trace_id="t1", type="SPAN")
    >>> row["level"], row["model"], len(row) == len(OBSERVATION_COLUMNS)
    ('DEFAULT', None, True)
    """
    unknown = set(fields) - set(OBSERVATION_COLUMNS)
    if unknown:
        raise TypeError(f"not observation columns: {sorted(unknown)}")
    row: dict[str, Any] = dict.fromkeys(OBSERVATION_COLUMNS)
    row["level"] = "DEFAULT"
    row.update(fields)
    return row


def trace_record(
    *,
    trace_id: str,
    start_time: datetime,
    session_id: str | None = None,
    user_id: str | None = None,
    name: str | None = None,
    input: str | None = None,
    output: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    tags: list[str] | None = None,
    environment: str | None = None,
    release: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """A Langfuse-shaped trace record for ``map_items`` (kind ``trace``).

    Going through the Langfuse trace mapper applies the caller's ``InternalRules`` to these
    traces too. ``input``/``output`` are JSON text from ``payload``; ``metadata`` is checked
    here so that the mapper cannot fail after the trace's observations were accepted.
    """
    meta = payload(dict(metadata), "metadata") if metadata else None
    return {
        "id": trace_id,
        "timestamp": start_time,
        "session_id": session_id,
        "user_id": user_id,
        "name": name,
        "input": input,
        "output": output,
        "metadata": meta,
        "tags": list(tags or []),
        "environment": environment,
        "release": release,
        "version": version,
    }


def mapped_items(
    mapper: Callable[[Any], tuple[dict[str, Any], list[dict[str, Any]]]], record: Any, where: str
) -> Iterator[tuple[str, str, Any]]:
    """Items of one record: its trace and observation rows, or one ``error`` item.

    The whole record is mapped before anything is yielded, so a bad part rejects the record
    (a conversation, a planner session), never half of it.

    >>> list(mapped_items(lambda r: ({"id": r}, [{"observation_id": "o"}]), "t1", "line 1"))
    [('trace', 'line 1', {'id': 't1'}), ('observation_row', 'line 1', {'observation_id': 'o'})]
    >>> list(mapped_items(lambda r: int(r), "x", "line 2"))
    [('error', 'line 2', "invalid literal for int() with base 10: 'x'")]
    """
    try:
        trace, observations = mapper(record)
    except ValueError as exc:
        yield "error", where, str(exc)
        return
    except RecursionError:
        # json.loads of a nested payload string: the record's own parse had no depth check.
        yield "error", where, "a JSON value in the record is nested too deeply to decode"
        return
    yield "trace", where, trace
    for row in observations:
        yield "observation_row", where, row
