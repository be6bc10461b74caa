"""Parse LLM message payloads (OpenAI, Anthropic, Gemini, OTel GenAI, ...) into one shape.

This module owns the knowledge of how each SDK and instrumentation writes a conversation into a
trace's ``input``/``output``. The derived tables (``tool_calls``, ``conversation_turns``) are built
from :func:`extract_messages`, so supporting a new framework means teaching this module one more
shape, not touching SQL. It is pure Python with no database access, and it never raises on odd
payloads: traces come from many instrumentations, and a shape we do not know yields no messages.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Message", "Role", "ToolCallRef", "decode_json_value", "extract_messages"]

Role = Literal["system", "user", "assistant", "tool"]

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
}
# LangChain's serialised form names the message class instead of a role.
_LC_CLASSES: dict[str, Role] = {
    "SystemMessage": "system",
    "HumanMessage": "user",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "ToolMessage": "tool",
    "FunctionMessage": "tool",
}
_TEXT_PARTS = {"text", "input_text", "output_text"}
_RESULT_PARTS = {"tool_result", "tool_call_response", "tool-result"}
_RESULT_KEYS = ("content", "response", "result", "output")
_SKIPPED_PARTS = {"thinking", "redacted_thinking", "reasoning", "image", "image_url", "file"}
_FLAT_ROLE = re.compile(r"^(system|developer|user|assistant|tool): ", re.MULTILINE)
_AGNO_REPR = re.compile(r"^role='(\w+)' content=")


@dataclass(frozen=True, slots=True)
class ToolCallRef:
    """A tool call requested by the model; ``arguments`` is JSON text, as the model wrote it."""

    id: str | None
    name: str
    arguments: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message in a provider-neutral form."""

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCallRef, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


def decode_json_value(value: Any) -> Any:
    """Decode JSON text until the value is no longer a JSON-encoded string.

    Exports often encode payloads twice (a JSON string holding JSON text). Plain text that merely
    looks like a number or ``true`` stays text, so only objects, arrays and strings are decoded.

    Parameters
    ----------
    value : Any
        A decoded value or JSON text.

    Returns
    -------
    Any
        The innermost decoded value.

    Examples
    --------
    >>> decode_json_value('"{\\\\"a\\\\": 1}"')
    {'a': 1}
    >>> decode_json_value("42 apples")
    '42 apples'
    """
    for _ in range(8):
        if not isinstance(value, str) or value.strip()[:1] not in ("{", "[", '"'):
            return value
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return value


def extract_messages(payload: Any, *, default_role: Role = "user") -> list[Message]:
    """Turn one observation ``input`` or ``output`` into a list of messages.

    Parameters
    ----------
    payload : Any
        A JSON-decoded value (dict, list, str or None). JSON text is decoded first.
    default_role : {'user', 'assistant', 'system', 'tool'}
        Role for payloads that do not name one: ``'user'`` for inputs, ``'assistant'`` for
        outputs.

    Returns
    -------
    list of Message
        Empty when the shape is not recognised; this function never raises for bad payloads.

    Examples
    --------
    >>> extract_messages("hi")
    [Message(role='user', content='hi', tool_calls=(), tool_call_id=None, name=None)]
    >>> out = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
    ...     {"id": "c1", "type": "function",
    ...      "function": {"name": "get_weather", "arguments": '{"city": "Berlin"}'}}]}}]}
    >>> extract_messages(out, default_role="assistant")[0].tool_calls
    (ToolCallRef(id='c1', name='get_weather', arguments='{"city": "Berlin"}'),)
    """
    try:
        return [m for m in _parse(payload, default_role) if _keep(m)]
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
        return []


def _keep(m: Message) -> bool:
    return (
        bool(m.content) or bool(m.tool_calls) or (m.role == "tool" and m.tool_call_id is not None)
    )


def _parse(value: Any, default_role: Role) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        decoded = decode_json_value(value)
        if not isinstance(decoded, str):
            return _parse(decoded, default_role)
        return _parse_text(decoded, default_role)
    if isinstance(value, list):
        return _parse_list(value, default_role)
    if isinstance(value, dict):
        return _parse_dict(value, default_role)
    return []


def _parse_text(text: str, default_role: Role) -> list[Message]:
    if not text.strip() or text == "None":  # "None": a Python None logged through str()
        return []
    if _AGNO_REPR.match(text):
        return _parse_agno_repr(text)
    # "system: ...\nuser: ..." is how some instrumentations flatten a whole chat into one string.
    if _FLAT_ROLE.match(text):
        pieces = _FLAT_ROLE.split(text)[1:]
        out = []
        for role, body in zip(pieces[::2], pieces[1::2], strict=True):
            body = body.rstrip("\n")
            out.append(Message(_ROLES[role], None if body == "None" else body))
        return out
    return [Message(default_role, text)]


def _parse_list(items: list[Any], default_role: Role) -> list[Message]:
    # Items are kept one message each, never merged: the history a later request re-sends must
    # produce the very same messages, or the transcript cannot recognise it as already seen.
    return [msg for item in items for msg in _parse(item, default_role)]


def _parse_dict(d: dict[str, Any], default_role: Role) -> list[Message]:
    if _looks_like_message(d):
        return _parse_message(d, default_role)
    if isinstance(d.get("choices"), list) and d["choices"]:
        # Further choices are alternatives (n > 1), not later turns of the conversation.
        choice = d["choices"][0]
        msg = (choice.get("message") or choice.get("delta")) if isinstance(choice, dict) else None
        return _parse(msg, "assistant")
    if isinstance(d.get("candidates"), list) and d["candidates"]:
        cand = d["candidates"][0]
        return _parse(cand.get("content") if isinstance(cand, dict) else None, "assistant")
    if isinstance(d.get("output"), list):
        return _parse_list(d["output"], "assistant")
    system = _system_messages(d)
    for key in ("messages", "contents", "input", "prompt", "new_message", "message", "content"):
        value = d.get(key)
        if key == "content" and isinstance(value, list):
            return system + _parse_parts(value, default_role)  # content blocks without a role
        if isinstance(value, str | list | dict):
            return system + _parse(value, default_role)
    if isinstance(d.get("args"), list) and all(isinstance(a, str) for a in d["args"]):
        return [Message(default_role, a) for a in d["args"] if a]
    if isinstance(d.get("text"), str):
        return [*system, Message(default_role, d["text"])]
    return system


def _system_messages(d: dict[str, Any]) -> list[Message]:
    config = d["config"] if isinstance(d.get("config"), dict) else {}
    keys = ("system", "instructions", "system_instruction", "systemInstruction")
    for raw in [d.get(k) for k in keys] + [config.get(k) for k in keys[2:]]:
        text = _text_of(raw.get("parts") if isinstance(raw, dict) else raw)
        if text:
            return [Message("system", text)]
    return []


def _looks_like_message(d: dict[str, Any]) -> bool:
    if "role" in d or "parts" in d or ("toolCallId" in d and "toolName" in d):
        return True
    if "lc" in d and isinstance(d.get("kwargs"), dict):
        return True
    kind = d.get("type")
    return kind in ("function_call", "function_call_output", "message", "reasoning") or (
        kind in _ROLES and "content" in d
    )


def _parse_message(d: dict[str, Any], default_role: Role) -> list[Message]:
    if "lc" in d and isinstance(d.get("kwargs"), dict):
        ids = d.get("id")
        cls = ids[-1] if isinstance(ids, list) and ids else ""
        return _parse_message(d["kwargs"], _LC_CLASSES.get(str(cls), default_role))
    kind = d.get("type")
    if kind == "reasoning":
        return []
    if kind == "function_call":
        call = ToolCallRef(_str(d.get("call_id") or d.get("id")), str(d.get("name")), None)
        return [Message("assistant", None, (_with_args(call, d.get("arguments")),))]
    if kind == "function_call_output":
        return [Message("tool", _text_of(d.get("output")), (), _str(d.get("call_id")))]
    if "toolCallId" in d and "toolName" in d:
        return _parse_parts([{**d, "type": kind or "tool-call"}], "assistant")

    raw_role = d.get("role") or (kind if kind in _ROLES else None)
    role, name = _role(raw_role, default_role), _str(d.get("name"))
    if isinstance(raw_role, str) and raw_role.lower() not in _ROLES:
        name = name or raw_role  # LangGraph JS writes a tool result's tool name as its role.
    content = d.get("parts") if "parts" in d else d.get("content")
    if role == "tool" and _is_tool_definition(content):
        return []  # Some LangChain handlers log the tool schemas as pseudo tool messages.
    tool_call_id = _str(d.get("tool_call_id") or d.get("tool_use_id"))
    if isinstance(content, list):
        messages = _parse_parts(content, role)
        if not messages:
            messages = [Message(role, None, (), tool_call_id, name)]
        elif messages[-1].role == role and (tool_call_id or name):
            last = messages[-1]
            messages[-1] = Message(
                last.role, last.content, last.tool_calls, last.tool_call_id or tool_call_id, name
            )
    else:
        text = _text_of(content) or None
        embedded = _embedded_tool_calls(text)
        if embedded:
            return [Message("assistant", None, embedded)]
        messages = [Message(role, text, (), tool_call_id, name)]
    extra = _tool_calls_of(d)
    if extra:
        last = messages[-1]
        known = {c.id for c in last.tool_calls if c.id}
        calls = last.tool_calls + tuple(c for c in extra if not c.id or c.id not in known)
        messages[-1] = Message(last.role, last.content, calls, last.tool_call_id, last.name)
    return messages


def _parse_parts(parts: list[Any], role: Role) -> list[Message]:
    """Parse a list of content blocks; tool results become their own ``tool`` messages."""
    texts: list[str] = []
    calls: list[ToolCallRef] = []
    results: list[Message] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = str(part.get("type") or "")
        fcall = part.get("functionCall") or part.get("function_call")
        fresp = part.get("functionResponse") or part.get("function_response")
        if part.get("thought") is True or kind in _SKIPPED_PARTS or "Reasoning" in kind:
            continue
        if kind == "tool_use":
            call = ToolCallRef(_str(part.get("id")), str(part.get("name")))
            calls.append(_with_args(call, part.get("input")))
        elif kind in ("tool_call", "tool-call"):
            call_id = _str(part.get("id") or part.get("toolCallId"))
            call = ToolCallRef(call_id, str(part.get("name") or part.get("toolName")))
            args = next((part[k] for k in ("arguments", "input", "args") if k in part), None)
            calls.append(_with_args(call, args))
        elif isinstance(fcall, dict):
            call = ToolCallRef(_str(fcall.get("id")), str(fcall.get("name")))
            calls.append(_with_args(call, fcall.get("args")))
        elif kind in _RESULT_PARTS or isinstance(fresp, dict):
            src = fresp if isinstance(fresp, dict) else part
            body = next((src[k] for k in _RESULT_KEYS if k in src), None)
            call_id = _str(src.get("tool_use_id") or src.get("id") or src.get("toolCallId"))
            name = _str(src.get("name") or src.get("toolName"))
            results.append(Message("tool", _text_of(body), (), call_id, name))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in _TEXT_PARTS and isinstance(part.get("content"), str):
            texts.append(part["content"])  # OTel GenAI semconv puts text in "content".
    main_role: Role = "assistant" if calls and role != "assistant" else role
    out = results
    if texts or calls:
        out = [*results, Message(main_role, "\n".join(texts) or None, tuple(calls))]
    return out


def _tool_calls_of(d: dict[str, Any]) -> tuple[ToolCallRef, ...]:
    raw = d.get("tool_calls")
    if not raw and isinstance(d.get("additional_kwargs"), dict):
        raw = d["additional_kwargs"].get("tool_calls")
    if not raw and isinstance(d.get("function_call"), dict):
        raw = [{"function": d["function_call"]}]
    return tuple(_openai_calls(raw)) if isinstance(raw, list) else ()


def _openai_calls(raw: Iterable[Any]) -> Iterable[ToolCallRef]:
    for item in raw:
        if not isinstance(item, dict):
            continue
        fn = item.get("function")
        if isinstance(fn, dict):  # OpenAI chat format
            yield _with_args(
                ToolCallRef(_str(item.get("id")), str(fn.get("name"))), fn.get("arguments")
            )
        elif "name" in item:  # LangChain format: {"name", "args", "id"}
            args = item.get("args", item.get("arguments"))
            yield _with_args(ToolCallRef(_str(item.get("id")), str(item["name"])), args)


def _embedded_tool_calls(text: str | None) -> tuple[ToolCallRef, ...]:
    # Koog writes an assistant's tool calls as JSON text in "content".
    if not text or not text.startswith("[{"):
        return ()
    decoded = decode_json_value(text)
    if (
        isinstance(decoded, list)
        and decoded
        and all(isinstance(i, dict) and isinstance(i.get("function"), dict) for i in decoded)
    ):
        return tuple(_openai_calls(decoded))
    return ()


def _parse_agno_repr(text: str) -> list[Message]:
    """Parse Agno's ``repr`` of its Message model: ``role='user' content='...' name=None ...``."""
    match = _AGNO_REPR.match(text)
    if match is None:
        return []
    role = _role(match.group(1), "user")
    fields: dict[str, Any] = {}
    for key, nxt in (("content", "name"), ("tool_call_id", "tool_calls"), ("tool_calls", "audio")):
        found = re.search(rf"(?:^|\s){key}=(.*?) {nxt}=", text, re.DOTALL)
        if found:
            try:
                fields[key] = ast.literal_eval(found.group(1))
            except (ValueError, SyntaxError, MemoryError):
                fields[key] = None
    calls = fields.get("tool_calls")
    content = fields.get("content")
    return [
        Message(
            role,
            content if isinstance(content, str) else None,
            tuple(_openai_calls(calls)) if isinstance(calls, list) else (),
            _str(fields.get("tool_call_id")),
        )
    ]


def _is_tool_definition(content: Any) -> bool:
    return (
        isinstance(content, dict)
        and content.get("type") == "function"
        and isinstance(content.get("function"), dict)
        and "parameters" in content["function"]
    )


def _with_args(call: ToolCallRef, args: Any) -> ToolCallRef:
    text = args if isinstance(args, str) or args is None else json.dumps(args, ensure_ascii=False)
    return ToolCallRef(call.id, call.name, text)


def _role(raw: Any, default: Role) -> Role:
    if not isinstance(raw, str):
        return default
    return _ROLES.get(raw.lower(), "tool")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _text_of(value: Any) -> str | None:
    """Render message content (string, list of blocks or object) as plain text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [m.content for m in _parse_parts(value, "user") if m.content]
        if texts:
            return "\n".join(texts)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    return json.dumps(value, ensure_ascii=False)
