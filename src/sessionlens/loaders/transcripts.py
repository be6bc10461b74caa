"""Chat transcripts (OpenAI chat messages, tau-bench runs) as traces: format ``chat-transcript``.

A transcript is a list of OpenAI chat messages: ``system``, ``user``, ``assistant`` (with
``tool_calls`` whose ``function.arguments`` are JSON strings) and ``tool`` results (with
``tool_call_id``). Accepted files:

- a JSON array of conversations, each a bare list of messages or a record holding the list
  under ``messages``, ``traj`` (tau-bench), ``trajectory`` or ``conversation``;
- JSON lines (or Parquet / CSV rows) with one such conversation per line;
- one conversation as the whole document (a list of messages, or one record).

Each conversation becomes one trace and one session, recorded the way an instrumented agent
would have been, so ``tool_calls`` and ``conversation_turns`` derive from it unchanged:

- a ``GENERATION`` per assistant message: ``input`` is every message before it, ``output`` the
  message itself (``model`` from the record's ``model`` field, usage from a message ``usage``);
- a ``TOOL`` per requested tool call (child of its generation) with name, ``tool_call_id``,
  arguments and the result of the ``tool`` message answering it (matched by ``tool_call_id``,
  else by name, else in order). A result that is a string starting with ``Error`` or an object
  with an ``error`` key marks the call ``level = 'ERROR'``. A tool message answering no call is
  a ``TOOL`` of its own;
- the trace: ``input`` the first user message, ``output`` the last assistant message,
  ``metadata`` every record field except the messages (tau-bench's ``reward``, ``task_id``,
  ``trial``, ``info.task.actions`` ...) plus ``_sessionlens`` notes: ``messages_key``,
  ``synthetic_times`` and ``after_last_reply``, the messages after the last assistant message
  (tau-bench's closing user line). No LLM call saw those, so they are not generation inputs
  and do not appear in ``conversation_turns``; a final tool result is still in its ``TOOL``.

Ids are deterministic, so a re-load writes nothing: the session (and trace) id is the record's
``session_id``, ``conversation_id`` or ``id``, else ``chat-<hash>`` of the messages together
with ``task_id`` and ``trial`` (tau-bench runs of one task differ in ``trial``).

Times: a message's ``timestamp`` / ``created_at`` when it has one; otherwise one second after
the previous message, starting from the record's ``timestamp`` / ``created_at`` /
``start_time`` or, without any, from ``SYNTHETIC_START`` (2000-01-01 UTC). A generation spans
from the message before it to its own message; the i-th tool call of a message starts i+1
microseconds after it (so calls keep the order the agent made them) and ends at its result.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ._normalize import decode_json, infer_provider, normalize_usage, parse_timestamp
from ._rows import (
    SYNTHETIC_START,
    error_text,
    mapped_items,
    observation_row,
    payload,
    stable_id,
    text,
    trace_record,
)
from .files import Reader, SourceFile, register
from .langfuse import Item

__all__ = ["FORMAT", "MESSAGE_KEYS", "map_conversation"]

FORMAT = "chat-transcript"
#: Record keys that may hold the message list, in order of preference.
MESSAGE_KEYS = ("messages", "traj", "trajectory", "conversation")
_ID_KEYS = ("session_id", "conversation_id", "id")
_RECORD_TIME_KEYS = ("timestamp", "created_at", "start_time")
_MESSAGE_TIME_KEYS = ("timestamp", "created_at")
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_LANGFUSE_KEYS = {"trace", "observations", "trace_id", "traceId", "data"}
_STEP = timedelta(seconds=1)


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("role"), str)


def _messages_of(record: Mapping[str, Any]) -> tuple[str, Any] | None:
    for key in MESSAGE_KEYS:
        value = record.get(key)
        if isinstance(value, str):  # CSV / Parquet hold the list as JSON text
            value = decode_json(value)
        if isinstance(value, list):
            return key, value
    return None


def _is_conversation(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and _is_message(value[0])
    if isinstance(value, Mapping) and not _LANGFUSE_KEYS & set(value):
        found = _messages_of(value)
        return found is not None and (not found[1] or _is_message(found[1][0]))
    return False


def _sniff(src: SourceFile, head: Any) -> bool:
    if src.container == "json" and isinstance(head, list) and head and not _is_message(head[0]):
        return _is_conversation(head[0])  # an array of conversations
    return _is_conversation(head)


def _conversations(doc: Any) -> Iterator[tuple[str, Any]]:
    if doc is None:
        return
    if isinstance(doc, list) and not (doc and _is_message(doc[0])):
        for i, conversation in enumerate(doc):
            yield f"/{i}", conversation
    else:
        yield "/", doc


def _read_document(src: SourceFile, doc: Any) -> Iterator[Item]:
    for where, conversation in _conversations(doc):
        yield from mapped_items(map_conversation, conversation, where)


def _read_rows(src: SourceFile, rows: Iterator[tuple[str, Any]]) -> Iterator[Item]:
    for where, record in rows:
        if isinstance(record, ValueError):
            yield "error", where, str(record)
        else:
            yield from mapped_items(map_conversation, record, where)


def _time(record: Mapping[str, Any], keys: Sequence[str], where: str) -> datetime | None:
    for key in keys:
        if record.get(key) not in (None, ""):
            try:
                return parse_timestamp(record[key])
            except ValueError as exc:
                raise ValueError(f"{where}{key}: {exc}") from None
    return None


def _split(conversation: Any) -> tuple[str | None, list[Any], dict[str, Any]]:
    if isinstance(conversation, list):
        return None, conversation, {}
    if not isinstance(conversation, Mapping):
        raise ValueError(
            f"expected a list of chat messages or a record with one of "
            f"{', '.join(MESSAGE_KEYS)}, got {type(conversation).__name__}"
        )
    found = _messages_of(conversation)
    if found is None:
        raise ValueError(
            f"no message list: expected one of {', '.join(MESSAGE_KEYS)} holding a list "
            f"of chat messages; the record has {', '.join(map(str, list(conversation)[:8]))}"
        )
    key, messages = found
    return key, messages, {str(k): v for k, v in conversation.items() if k != key}


def _tool_calls(msg: Mapping[str, Any], where: str) -> list[tuple[str | None, str, Any]]:
    """``(id, name, decoded arguments)`` of an assistant message's tool calls."""
    raw = msg.get("tool_calls")
    if raw is None and isinstance(msg.get("function_call"), Mapping):
        raw = [msg["function_call"]]  # the legacy single function call
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError(f"{where}tool_calls: expected a list, got {type(raw).__name__}")
    calls = []
    for i, call in enumerate(raw):
        at = f"{where}tool_calls/{i}"
        if not isinstance(call, Mapping):
            raise ValueError(f"{at}: expected an object, got {type(call).__name__}")
        nested = call.get("function")
        function: Mapping[str, Any] = nested if isinstance(nested, Mapping) else call
        name = text(function.get("name"), f"{at}/function/name")
        if name is None:
            raise ValueError(f"{at}: the tool call has no function name")
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            arguments = decode_json(arguments)
        elif arguments is not None and not isinstance(arguments, (Mapping, list)):
            raise ValueError(
                f"{at}/function/arguments: expected JSON text or an object, "
                f"got {type(arguments).__name__}"
            )
        calls.append((text(call.get("id"), f"{at}/id"), name, arguments))
    return calls


def map_conversation(conversation: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Map one conversation to a Langfuse-shaped trace record and canonical observation rows.

    Parameters
    ----------
    conversation : list or dict
        A list of chat messages, or a record holding one under a ``MESSAGE_KEYS`` key.

    Returns
    -------
    (dict, list of dict)
        The trace record (for ``langfuse.map_trace``) and the ``observations`` rows.

    Raises
    ------
    ValueError
        The conversation is malformed; the message names the field (``traj/3/role: ...``).

    Examples
    --------
    >>> trace, rows = map_conversation({"id": "c1", "messages": [
    ...     {"role": "user", "content": "Weather in Paris?"},
    ...     {"role": "assistant", "content": None, "tool_calls": [{"id": "k1", "type":
    ...      "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
    ...     {"role": "tool", "tool_call_id": "k1", "content": "sunny"},
    ...     {"role": "assistant", "content": "It is sunny."}]})
    >>> trace["session_id"], [(r["type"], r["tool_name"]) for r in rows]
    ('c1', [('GENERATION', None), ('TOOL', 'weather'), ('GENERATION', None)])
    >>> rows[1]["tool_arguments"], rows[1]["output"]
    ('{"city": "Paris"}', '"sunny"')
    >>> rows[1]["start_time"], rows[1]["end_time"]
    (datetime.datetime(2000, 1, 1, 0, 0, 1, 1), datetime.datetime(2000, 1, 1, 0, 0, 2))
    """
    key, messages, fields = _split(conversation)
    prefix = f"{key}/" if key else ""
    for k, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise ValueError(f"{prefix}{k}: expected a message object, got {type(msg).__name__}")
        role = msg.get("role")
        if not isinstance(role, str) or role.lower() not in _ROLES:
            raise ValueError(f"{prefix}{k}/role: expected one of {sorted(_ROLES)}, got {role!r}")
        content = msg.get("content")
        if content is not None and not isinstance(content, (str, list, Mapping)):
            raise ValueError(
                f"{prefix}{k}/content: expected text or content parts, got {type(content).__name__}"
            )
        payload(dict(msg), f"{prefix}{k}")  # names the message holding invalid Unicode

    found_id = next((fields[k] for k in _ID_KEYS if fields.get(k) not in (None, "")), None)
    if isinstance(found_id, (Mapping, list, bool, float)):
        raise ValueError(f"id: expected a string id, got {found_id!r:.60}")
    session_id = text(found_id, "id") or stable_id(
        "chat", messages, fields.get("task_id"), fields.get("trial")
    )
    model = text(fields.get("model"), "model")
    start = _time(fields, _RECORD_TIME_KEYS, "")
    synthetic = start is None
    times: list[datetime] = []
    for k, msg in enumerate(messages):
        given = _time(msg, _MESSAGE_TIME_KEYS, f"{prefix}{k}/")
        synthetic = synthetic or given is None
        previous = times[-1] if times else None
        times.append(
            given or (previous + _STEP if previous else start or SYNTHETIC_START),
        )

    rows: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # tool calls not answered yet
    for k, msg in enumerate(messages):
        at = f"{prefix}{k}/"
        role = str(msg["role"]).lower()
        if role == "assistant":
            gen_id = f"{session_id}:gen:{k}"
            try:
                usage = normalize_usage(msg.get("usage"))
            except ValueError as exc:
                raise ValueError(f"{at}usage: {exc}") from None
            msg_model = text(msg.get("model"), f"{at}model") or model
            rows.append(
                observation_row(
                    observation_id=gen_id,
                    trace_id=session_id,
                    type="GENERATION",
                    name="assistant",
                    start_time=times[k - 1] if k else times[k],
                    end_time=times[k],
                    model=msg_model,
                    provider=infer_provider(msg_model) if msg_model else None,
                    input=payload(list(messages[:k]), f"{prefix}0..{k - 1}") if k else None,
                    output=payload(dict(msg), f"{at[:-1]}"),
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    total_tokens=usage.total_tokens,
                    cache_read_tokens=usage.cache_read_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                    reasoning_tokens=usage.reasoning_tokens,
                    usage_details=payload(usage.details or None, f"{at}usage"),
                    source_format=FORMAT,
                )
            )
            for i, (call_id, name, arguments) in enumerate(_tool_calls(msg, at)):
                args = payload(arguments, f"{at}tool_calls/{i}/function/arguments")
                row = observation_row(
                    observation_id=f"{session_id}:call:{k}:{i}",
                    trace_id=session_id,
                    parent_observation_id=gen_id,
                    type="TOOL",
                    name=name,
                    start_time=times[k] + timedelta(microseconds=i + 1),
                    end_time=times[k] + timedelta(microseconds=i + 1),
                    input=args,
                    tool_name=name,
                    tool_call_id=call_id,
                    tool_arguments=args,
                    source_format=FORMAT,
                )
                rows.append(row)
                pending.append(row)
        elif role in ("tool", "function"):
            result_id = text(msg.get("tool_call_id"), f"{at}tool_call_id")
            result_name = text(msg.get("name"), f"{at}name")
            answered = _answered(pending, result_id, result_name)
            if answered is not None:
                row = answered
            else:  # a result for no call we saw: keep it as a tool call of its own
                row = observation_row(
                    observation_id=f"{session_id}:tool:{k}",
                    trace_id=session_id,
                    type="TOOL",
                    name=result_name,
                    start_time=times[k],
                    tool_name=result_name,
                    tool_call_id=result_id,
                    source_format=FORMAT,
                )
                rows.append(row)
            content = msg.get("content")
            row["output"] = payload(decode_json(content), f"{at}content")
            row["end_time"] = max(row["start_time"], times[k])
            error = error_text(content)
            if error is not None:
                row["level"], row["status_message"] = "ERROR", text(error, f"{at}content")

    first_user = next((m for m in messages if str(m["role"]).lower() == "user"), None)
    last_assistant = next(
        (m for m in reversed(messages) if str(m["role"]).lower() == "assistant"), None
    )
    notes: dict[str, Any] = {"messages_key": key, "synthetic_times": synthetic}
    last = max(
        (k for k, m in enumerate(messages) if str(m["role"]).lower() == "assistant"), default=-1
    )
    if last < len(messages) - 1:
        # No generation ever saw these (tau-bench's closing "###STOP###"): kept here.
        notes["after_last_reply"] = list(messages[last + 1 :])
    metadata = {**fields, "_sessionlens": notes}
    trace = trace_record(
        trace_id=session_id,
        session_id=session_id,
        start_time=times[0] if times else start or SYNTHETIC_START,
        user_id=_user_id(fields),
        name=text(fields.get("name"), "name"),
        input=payload(first_user, "input"),
        output=payload(last_assistant, "output"),
        metadata=metadata,
    )
    return trace, rows


def _answered(
    pending: list[dict[str, Any]], call_id: str | None, name: str | None
) -> dict[str, Any] | None:
    """Take the pending call a tool result answers: by id, else by name, else the oldest."""
    for test in (
        lambda r: call_id is not None and r["tool_call_id"] == call_id,
        lambda r: call_id is None and name is not None and r["tool_name"] == name,
        lambda r: call_id is None and name is None,
    ):
        for i, row in enumerate(pending):
            if test(row):
                return pending.pop(i)
    return None


def _user_id(fields: Mapping[str, Any]) -> str | None:
    for key in ("user_id", "user"):
        if not isinstance(fields.get(key), (Mapping, list)):
            found = text(fields.get(key), key)
            if found:
                return found
    # tau-bench names the simulated customer in info.task.user_id.
    info = fields.get("info")
    task = info.get("task") if isinstance(info, Mapping) else None
    if isinstance(task, Mapping) and isinstance(task.get("user_id"), str):
        return text(task["user_id"], "info/task/user_id")
    return None


register(
    Reader(
        name=FORMAT,
        description="Chat transcripts: OpenAI chat messages per conversation (tau-bench runs), "
        "as a JSON array, one document, or one conversation per JSONL line",
        sniff=_sniff,
        read_document=_read_document,
        read_rows=_read_rows,
    )
)
