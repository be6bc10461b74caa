"""Parse a session's re-sent chat history once, not once per request.

This module owns the incremental parse of generation inputs used by the derived-table builders
(``tool_calls``, ``conversation_turns``). Every request of a chat re-sends the whole history plus
the new messages, so its input text is usually the previous input with its closing ``]``
replaced by ``, <new messages>]``. Decoding and parsing every input from scratch is quadratic
in the turns of a session; :class:`HistoryParser` instead parses only the new tail and reuses the
``Message`` objects of the shared prefix.

The shortcut is exact: JSON array elements are parsed independently (a value ends at the same
place whether ``]`` or ``,`` follows it), and
:func:`~sessionlens.analysis.messages.extract_messages` parses list items independently too,
so ``parse(A + B) == parse(A) + parse(B)`` when both halves are non-empty arrays. The one
coupling is failure: a payload whose parse raises yields no messages at all, which the parser
carries over from prefix to whole.
"""

from __future__ import annotations

import json
from typing import Any

from .messages import Message, Role, _keep, _parse, decode_json_value, extract_messages

__all__ = ["HistoryParser"]

# JSON's whitespace; str.strip() would also strip characters json.loads rejects.
_WS = " \t\n\r"
# What extract_messages catches: a payload that raises one of these yields no messages.
_PARSE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, RecursionError)


class HistoryParser:
    """Parse payloads in a session's time order, reusing the parse of re-sent history.

    :meth:`parse` returns exactly ``extract_messages(decode_json_value(raw), default_role=...)``
    and the number of leading messages that are the previous call's messages (the same objects,
    in the same order), so a caller can reuse whatever it derived from them.

    Examples
    --------
    >>> p = HistoryParser()
    >>> msgs, reused = p.parse('[{"role": "user", "content": "Hi"}]')
    >>> [m.content for m in msgs], reused
    (['Hi'], 0)
    >>> msgs, reused = p.parse(
    ...     '[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]'
    ... )
    >>> [m.content for m in msgs], reused
    (['Hi', 'Hello'], 1)
    """

    __slots__ = ("_default_role", "_messages", "_prefix", "_raw")

    def __init__(self, *, default_role: Role = "user") -> None:
        self._default_role: Role = default_role
        # The last input text that was a non-empty JSON array ("" when the last was not), the
        # same without its closing bracket, and its messages: None when its parse raised, so
        # that any extension of it yields no messages either.
        self._raw = ""
        self._prefix = ""
        self._messages: list[Message] | None = None

    def parse(self, raw: Any) -> tuple[list[Message], int]:
        """Messages of ``raw`` (a JSON text or decoded value) and how many are reused.

        The returned list may be shared with later calls: do not modify it.
        """
        if isinstance(raw, str) and self._raw:
            if raw == self._raw:  # nested generations often repeat their parent's input
                previous = self._messages or []
                return previous, len(previous)
            if raw.startswith(self._prefix):
                tail = _array_tail(raw, len(self._prefix))
                if tail:
                    return self._extend(raw, tail)
        if isinstance(raw, str) and raw.lstrip(_WS)[:1] == "[":
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
            if isinstance(decoded, list) and decoded:
                messages = self._items(decoded)
                self._remember(raw, messages)
                return messages or [], 0
        self._raw, self._prefix, self._messages = "", "", None
        return extract_messages(decode_json_value(raw), default_role=self._default_role), 0

    def _extend(self, raw: str, tail: list[Any]) -> tuple[list[Message], int]:
        """Messages of ``raw``: the remembered array's, then those of its new ``tail``."""
        previous = self._messages
        new = self._items(tail)
        if previous is None or new is None:  # the whole payload's parse raises
            self._remember(raw, None)
            return [], 0
        messages = previous + new
        self._remember(raw, messages)
        return messages, len(previous)

    def _items(self, items: list[Any]) -> list[Message] | None:
        """``extract_messages`` of a decoded array, or None where it would swallow an error."""
        try:
            return [m for item in items for m in _parse(item, self._default_role) if _keep(m)]
        except _PARSE_ERRORS:
            return None

    def _remember(self, raw: str, messages: list[Message] | None) -> None:
        self._raw = raw
        self._prefix = raw.rstrip(_WS)[:-1]  # a decoded JSON array ends with "]"
        self._messages = messages


def _array_tail(raw: str, start: int) -> list[Any] | None:
    """The elements after ``raw[:start]`` (a complete, non-empty array prefix), if exact.

    ``raw[start:]`` must be ``, <one or more elements>]`` (JSON whitespace allowed): then ``raw``
    is the prefix's elements followed by these. Anything else returns None and the caller parses
    ``raw`` whole, so malformed text is judged exactly as before.
    """
    rest = raw[start:].lstrip(_WS)
    if not rest.startswith(","):
        return None
    try:
        tail = json.loads("[" + rest[1:])
    except ValueError:
        return None
    # "[a, ]" is not JSON; an empty tail means raw is malformed, so leave it to the full parse.
    return tail if isinstance(tail, list) and tail else None
