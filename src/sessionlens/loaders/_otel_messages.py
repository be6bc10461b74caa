"""Chat messages carried by OTel spans, rebuilt in OpenAI chat shape.

Each instrumentation family writes the conversation of an LLM call its own way:

- OpenInference flattens it into indexed attributes
  (``llm.input_messages.0.message.role``, ``...message.tool_calls.0.tool_call.function.name``);
- OTel GenAI (1.37+) writes ``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
  ``gen_ai.system_instructions`` as lists of ``{role, parts: [...]}``; before that, one span
  event per message (``gen_ai.user.message``, ``gen_ai.choice``, ...);
- OpenLLMetry flattens ``gen_ai.prompt.N.role`` / ``gen_ai.completion.N.content``.

This module turns all of them into the OpenAI chat shape (``{"role", "content",
"tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}],
"tool_call_id"}``), the shape a Langfuse export of the same call holds, so the transcript and
tool-call parsers (``analysis.messages``) read every source alike. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "chat_from_flat",
    "chat_from_genai",
    "event_messages",
    "indexed",
    "single_or_list",
    "unflatten",
]


def _index(part: str) -> int | None:
    return int(part) if part.isdigit() and len(part) < 7 else None


def unflatten(flat: Mapping[str, Any]) -> Any:
    """Dotted keys with numeric parts to nested dicts and lists.

    >>> unflatten({"0.message.role": "user", "0.message.tool_calls.0.tool_call.id": "c1"})
    [{'message': {'role': 'user', 'tool_calls': [{'tool_call': {'id': 'c1'}}]}}]
    """
    root: dict[Any, Any] = {}
    for key, value in flat.items():
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            slot = _index(part)
            name: Any = part if slot is None else slot
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
            node = child
        last = _index(parts[-1])
        node[parts[-1] if last is None else last] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _lists(v) for k, v in node.items()}
    if items and all(isinstance(k, int) for k in items):
        return [items[k] for k in sorted(items)]
    return {str(k): v for k, v in items.items()}


def indexed(attrs: Mapping[str, Any], prefix: str) -> tuple[list[Any], set[str]]:
    """The list flattened under ``prefix`` (``prefix.0.x``, ``prefix.1.x``) and its keys."""
    dotted = prefix + "."
    keys = {
        k
        for k in attrs
        if k.startswith(dotted) and _index(k[len(dotted) :].split(".")[0]) is not None
    }
    if not keys:
        return [], set()
    value = unflatten({k[len(dotted) :]: attrs[k] for k in keys})
    return (value if isinstance(value, list) else [value]), keys


def _arguments(value: Any) -> Any:
    # OpenAI chat keeps arguments as the JSON text the model wrote; structured ones are
    # serialised back with json.dumps' defaults, the commonest way they were written.
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _openai_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    if isinstance(function, Mapping):
        name, arguments = function.get("name"), function.get("arguments")
    else:
        name, arguments = call.get("name"), call.get("arguments")
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": name, "arguments": _arguments(arguments)},
    }


def _oi_content(parts: Any) -> list[Any] | None:
    if not isinstance(parts, list):
        return None
    out: list[Any] = []
    for part in parts:
        body = part.get("message_content", part) if isinstance(part, Mapping) else part
        if not isinstance(body, Mapping):
            continue
        if body.get("type") == "image" or "image" in body:
            image = body.get("image")
            url = image.get("image", image).get("url") if isinstance(image, Mapping) else None
            out.append({"type": "image_url", "image_url": {"url": url}})
        else:
            out.append({"type": body.get("type") or "text", "text": body.get("text")})
    return out


def chat_from_flat(items: Iterable[Any]) -> list[dict[str, Any]]:
    """OpenInference (``{"message": {...}}``) or OpenLLMetry (``{role, content}``) messages.

    >>> chat_from_flat([{"message": {"role": "assistant", "tool_calls": [{"tool_call": {
    ...     "id": "c1", "function": {"name": "f", "arguments": "{}"}}}]}}])
    [{'role': 'assistant', 'content': None, 'tool_calls': [{'id': 'c1', 'type': 'function', \
'function': {'name': 'f', 'arguments': '{}'}}]}]
    """
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        msg = item.get("message", item)
        if not isinstance(msg, Mapping):
            continue
        content = msg.get("content")
        if content is None:
            content = _oi_content(msg.get("contents"))
        chat: dict[str, Any] = {"role": msg.get("role"), "content": content}
        calls = msg.get("tool_calls")
        if isinstance(calls, list) and calls:
            chat["tool_calls"] = [
                _openai_call(c.get("tool_call", c)) for c in calls if isinstance(c, Mapping)
            ]
        for key in ("tool_call_id", "name"):
            if msg.get(key) not in (None, ""):
                chat[key] = msg[key]
        out.append(chat)
    return out


def _genai_one(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts = message.get("parts")
    if not isinstance(parts, list):
        return [dict(message)]  # already chat-shaped, or unknown: kept as given
    role = message.get("role")
    content: list[Any] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for part in parts:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part, Mapping):
            content.append({"type": "text", "text": part.get("content")})
        elif kind == "tool_call" and isinstance(part, Mapping):
            calls.append(_openai_call(part))
        elif kind == "tool_call_response" and isinstance(part, Mapping):
            result = part.get("response", part.get("result"))
            text = result if isinstance(result, str) or result is None else _arguments(result)
            results.append({"role": "tool", "tool_call_id": part.get("id"), "content": text})
        else:
            content.append(part)
    out: list[dict[str, Any]] = []
    if content or calls or not results:
        only_text = len(content) == 1 and content[0].get("type") == "text"
        body = content[0]["text"] if only_text else (content or None)
        chat: dict[str, Any] = {"role": role, "content": body}
        if calls:
            chat["tool_calls"] = calls
        if message.get("name"):
            chat["name"] = message["name"]
        out.append(chat)
    return out + results


def chat_from_genai(messages: Any, system: Any = None) -> list[dict[str, Any]]:
    """GenAI ``{role, parts}`` messages (and ``gen_ai.system_instructions``) as chat messages.

    ``finish_reason`` is left out: it is not part of a chat message (the span keeps it in
    ``gen_ai.response.finish_reasons``).

    >>> tool = {"type": "tool_call_response", "id": "c1", "response": "ok"}
    >>> system = [{"type": "text", "content": "Be kind"}]
    >>> chat_from_genai([{"role": "tool", "parts": [tool]}], system)
    [{'role': 'system', 'content': 'Be kind'}, {'role': 'tool', 'tool_call_id': 'c1', \
'content': 'ok'}]
    """
    out: list[dict[str, Any]] = []
    if isinstance(system, list) and system:
        out += _genai_one({"role": "system", "parts": system})
    elif isinstance(system, str) and system:
        out.append({"role": "system", "content": system})
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, Mapping):
            out += _genai_one(message)
    return out


def single_or_list(messages: list[dict[str, Any]]) -> Any:
    """One output message as itself (a chat completion's ``choices[0].message``), else the list."""
    if not messages:
        return None
    return messages[0] if len(messages) == 1 else messages


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_body(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    # Some SDKs put the event body, as JSON text, in ``gen_ai.event.content``.
    raw = attrs.get("gen_ai.event.content")
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = None
        if isinstance(decoded, Mapping):
            return {**attrs, **decoded}
    return attrs


def event_messages(events: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[list[Any], list[Any]]:
    """Input and output chat messages from the deprecated GenAI per-message span events.

    >>> event_messages([("gen_ai.user.message", {"content": "hi"}),
    ...                 ("gen_ai.choice", {"message": {"content": "hello"}})])
    ([{'role': 'user', 'content': 'hi'}], [{'role': 'assistant', 'content': 'hello'}])
    """
    inputs: list[Any] = []
    outputs: list[Any] = []
    for name, attrs in events:
        body = _event_body(attrs)
        if name in _EVENT_ROLES:
            chat: dict[str, Any] = {
                "role": body.get("role") or _EVENT_ROLES[name],
                "content": body.get("content"),
            }
            calls = body.get("tool_calls")
            if isinstance(calls, list) and calls:
                chat["tool_calls"] = [_openai_call(c) for c in calls if isinstance(c, Mapping)]
            if name == "gen_ai.tool.message" and body.get("id"):
                chat["tool_call_id"] = body["id"]
            inputs.append(chat)
        elif name == "gen_ai.choice":
            message = body.get("message")
            if isinstance(message, str):
                try:
                    message = json.loads(message)
                except ValueError:
                    message = {"content": message}
            message = message if isinstance(message, Mapping) else body
            chat = {"role": message.get("role") or "assistant", "content": message.get("content")}
            calls = message.get("tool_calls")
            if isinstance(calls, list) and calls:
                chat["tool_calls"] = [_openai_call(c) for c in calls if isinstance(c, Mapping)]
            outputs.append(chat)
    return inputs, outputs
