"""Tests for the one-pass derived-table rebuild: the incremental history parser
(analysis._history), the transcript walk that skips re-sent history (analysis.transcript) and
rebuild_derived (analysis.derived). Each shortcut is checked against the plain computation it
replaces: ``extract_messages`` of every payload, and the per-message walk of every request."""

from __future__ import annotations

import functools
import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens.analysis._history import HistoryParser
from sessionlens.analysis.derived import Rebuilt, rebuild_derived
from sessionlens.analysis.messages import Message, decode_json_value, extract_messages
from sessionlens.analysis.tools import rebuild_tool_calls
from sessionlens.analysis.transcript import Transcriber, rebuild_conversation_turns, render_message
from tests.conftest import FRAMEWORK_TRACES, SHARED, snapshot

T0 = datetime(2025, 1, 1, 12, 0, 0)
USER_A = {"role": "user", "content": "a"}
DEEP: Any = "x"
for _ in range(600):  # deep enough that parsing it raises RecursionError (no messages at all)
    DEEP = [DEEP]


def reference(raw: Any) -> list[Message]:
    return extract_messages(decode_json_value(raw), default_role="user")


def check_sequence(raws: list[Any]) -> list[int]:
    """Parse ``raws`` in order; each result must equal the plain parse. Returns the reuse."""
    parser = HistoryParser()
    previous: list[Message] = []
    reused_counts = []
    for raw in raws:
        messages, reused = parser.parse(raw)
        assert messages == reference(raw), raw
        assert all(a is b for a, b in zip(messages[:reused], previous[:reused], strict=True))
        previous = messages
        reused_counts.append(reused)
    return reused_counts


# --- HistoryParser ----------------------------------------------------------------------------


def test_history_growing_by_one_message_is_parsed_once() -> None:
    history = [USER_A, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    raws = [json.dumps(history[:n]) for n in (1, 2, 3, 3)]
    assert check_sequence(raws) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("raws", "reused"),
    [
        # Not an extension: the "element" after the prefix would be invalid JSON.
        (["[]", '[, {"role": "user", "content": "a"}]'], [0, 0]),
        (['["a"]', '["a", ]'], [0, 0]),
        (['["a"]', '["a", "b"] trailing'], [0, 0]),
        (['["a"]  \n', '["a"] , "b"]'], [0, 0]),
        # A number continues across the old closing bracket: "[1" + "5]" is [15], not [1, 5].
        (['["a", 1]', '["a", 15]', '["a", 15, "b"]'], [0, 0, 1]),
        (['["x", 1]', '["x", 15, "y"]'], [0, 0]),
        # JSON whitespace around the seam, inside the array.
        (['[ "a" ]', '[ "a" ,\n\t"b" ]\r\n', '[ "a" ,\n\t"b" , "c"]'], [0, 1, 2]),
        # A double-encoded payload, a dict and None are parsed the plain way.
        ([json.dumps(json.dumps(["a"])), json.dumps(json.dumps(["a", "b"]))], [0, 0]),
        ([{"messages": [USER_A]}, None, '["a"]', 5], [0, 0, 0, 0]),
        # Text that merely starts with "[" is text.
        (["[draft] hello", "[draft] hello, world]"], [0, 0]),
        # Unicode whitespace is not JSON whitespace: the plain parse keeps such input as text.
        (['["a"]', '["a"]\u00a0', '["a"]', '["a"\u00a0, "b"]'], [0, 0, 0, 0]),
    ],
)
def test_history_edge_cases_parse_as_the_plain_parse_does(
    raws: list[Any], reused: list[int]
) -> None:
    assert check_sequence(raws) == reused


def test_history_payload_whose_parse_raises_has_no_messages_however_it_grows() -> None:
    deep = json.dumps(DEEP)
    raws = [
        f"[{json.dumps(USER_A)}, {deep}]",
        f'[{json.dumps(USER_A)}, {deep}, "more"]',  # the failing prefix fails the whole
        f"[{json.dumps(USER_A)}]",
        f'[{json.dumps(USER_A)}, "b", {deep}]',  # a failing tail fails the whole
        f'[{json.dumps(USER_A)}, "b", {deep}, "c"]',
    ]
    assert reference(raws[0]) == [] and reference(raws[4]) == []
    assert check_sequence(raws) == [0, 0, 0, 0, 0]


_text = st.text(alphabet='ab \n{}[]",:1', max_size=6)
_element = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool"]), "content": _text}
    ),
    st.fixed_dictionaries(
        {
            "role": st.just("assistant"),
            "content": st.none(),
            "tool_calls": st.lists(
                st.fixed_dictionaries(
                    {
                        "id": st.sampled_from(["c1", "c2"]),
                        "function": st.fixed_dictionaries(
                            {"name": st.just("f"), "arguments": _text}
                        ),
                    }
                ),
                max_size=2,
            ),
        }
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "tool_call_id": st.sampled_from(["c1", "c2"]), "content": _text}
    ),
    _text,
    st.integers(-20, 20),
    st.none(),
    st.just(DEEP),
)
_separators = st.sampled_from([(",", ":"), (", ", ": "), (" ,  ", ":")])


@settings(max_examples=150, deadline=None)
@given(
    elements=st.lists(_element, min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 8), min_size=1, max_size=8),
    separators=st.lists(_separators, min_size=1, max_size=3),
    pad=st.sampled_from(["", " ", "\n"]),
)
def test_history_matches_the_plain_parse_on_any_growing_history(
    elements: list[Any], cuts: list[int], separators: list[tuple[str, str]], pad: str
) -> None:
    raws = [
        pad + json.dumps(elements[:cut], separators=separators[i % len(separators)]) + pad
        for i, cut in enumerate(sorted(cuts))
    ]
    check_sequence(raws)


# --- Transcriber --------------------------------------------------------------------------------


def reference_turns(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The transcript walk without shortcuts: every message of every request is counted."""

    def identity(m: Message) -> tuple[Any, ...]:
        def canonical(text: str | None) -> str:
            if text is None:
                return ""
            try:
                return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
            except ValueError:
                return text.strip()

        calls = tuple((c.name, canonical(c.arguments)) for c in m.tool_calls)
        return m.role, (m.content or "").strip(), m.tool_call_id, calls

    rows: list[tuple[Any, ...]] = []
    current: object = object()
    said: Counter[Any] = Counter()
    seq = 0
    for session_id, trace_id, observation_id, raw_in, raw_out in events:
        group = session_id if session_id is not None else ("trace", trace_id)
        if group != current:
            current, said, seq = group, Counter(), 0
        in_request: Counter[Any] = Counter()
        outputs = extract_messages(decode_json_value(raw_out), default_role="assistant")
        for msg in reference(raw_in) + outputs:
            key = identity(msg)
            in_request[key] += 1
            if in_request[key] <= said[key]:
                continue
            said[key] += 1
            content = render_message(msg)
            if content is not None:
                seq += 1
                rows.append((session_id, trace_id, observation_id, seq, msg.role, content))
    return rows


_chat = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "assistant"]),
                "content": st.sampled_from(["yes", " yes", "no", "", "ok"]),
            }
        ),
        st.fixed_dictionaries(
            {
                "role": st.just("assistant"),
                "tool_calls": st.lists(
                    st.fixed_dictionaries(
                        {
                            "id": st.sampled_from(["c1", "c2"]),
                            "function": st.fixed_dictionaries(
                                {
                                    "name": st.just("f"),
                                    "arguments": st.sampled_from(['{"a":1}', '{"a": 1}', "x"]),
                                }
                            ),
                        }
                    ),
                    min_size=1,
                    max_size=2,
                ),
            }
        ),
        st.fixed_dictionaries(
            {"role": st.just("tool"), "tool_call_id": st.just("c1"), "content": st.just("42")}
        ),
    ),
    min_size=1,
    max_size=7,
)


@functools.cache
def _scratch() -> duckdb.DuckDBPyConnection:
    # One database for all examples: creating the schema per example would dominate the test.
    return sl.connect()


@settings(max_examples=150, deadline=None)
@given(
    chat=_chat,
    requests=st.lists(
        st.tuples(st.sampled_from(["s1", "s2", None]), st.integers(0, 7), st.booleans()),
        min_size=1,
        max_size=8,
    ),
)
def test_transcriber_matches_the_plain_walk(
    chat: list[dict[str, Any]], requests: list[tuple[str | None, int, bool]]
) -> None:
    events = []
    for i, (session_id, cut, answered) in enumerate(requests):
        raw_out = json.dumps(chat[cut]) if answered and cut < len(chat) else None
        events.append((session_id, f"t{i % 3}", f"o{i}", json.dumps(chat[:cut]), raw_out))
    parser, transcript = HistoryParser(), Transcriber()
    for session_id, trace_id, observation_id, raw_in, raw_out in events:
        inputs, reused = parser.parse(raw_in)
        outputs = extract_messages(decode_json_value(raw_out), default_role="assistant")
        transcript.add(session_id, trace_id, observation_id, T0, T0, inputs, reused, outputs)
    con = _scratch()
    con.execute("DELETE FROM conversation_turns")
    transcript.insert(con)
    rows = con.execute(
        "SELECT session_id, trace_id, observation_id, seq, role, content "
        "FROM conversation_turns ORDER BY rowid"
    ).fetchall()
    assert rows == reference_turns(events)


# --- rebuild_derived ----------------------------------------------------------------------------


def rebuild_separately(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    rebuild_tool_calls(con)
    rebuild_conversation_turns(con)
    return snapshot(con)


@pytest.mark.parametrize(
    "paths",
    [
        [SHARED / "tau-bench" / "gpt-4o-airline.json"],
        sorted(FRAMEWORK_TRACES.glob("*.json")),
    ],
    ids=["tau-bench", "frameworks"],
)
def test_rebuild_derived_equals_the_two_rebuilds_on_real_data(
    con: duckdb.DuckDBPyConnection, paths: list[Any]
) -> None:
    sl.load(con, paths, progress=False)  # the loader runs rebuild_derived
    loaded = snapshot(con)
    assert loaded["tool_calls"] and loaded["conversation_turns"]
    assert rebuild_separately(con) == loaded


def test_rebuild_derived_reads_tool_calls_in_their_own_order(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # Two generations start together and repeat one call id. tool_calls keeps the first by
    # (start, id): "a"; the transcript walks by (start, end): "b" first. Each keeps its order.
    con.execute(
        "INSERT INTO traces (trace_id, session_id, start_time) VALUES ('t1', 's1', ?)", [T0]
    )
    for obs_id, end, args in (("a", 5, '{"x": 1}'), ("b", 1, '{"x": 2}')):
        output = {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": args}}],
        }
        con.execute(
            "INSERT INTO observations (observation_id, trace_id, type, start_time, end_time, "
            "input, output) VALUES (?, 't1', 'GENERATION', ?, ?, ?, ?)",
            [obs_id, T0, T0 + timedelta(seconds=end), json.dumps([USER_A]), json.dumps(output)],
        )
    assert rebuild_derived(con) == Rebuilt(tool_calls=1, conversation_turns=3)
    assert con.sql("SELECT observation_id, arguments FROM tool_calls").fetchall() == [
        ("a", '{"x": 1}')
    ]
    turns = con.sql("SELECT observation_id, content FROM conversation_turns ORDER BY seq")
    assert turns.fetchall() == [("b", "a"), ("b", 'f({"x": 2})'), ("a", 'f({"x": 1})')]
    assert rebuild_separately(con) == snapshot(con)


def test_rebuild_derived_only_touches_the_sessions_it_is_given(
    con: duckdb.DuckDBPyConnection,
) -> None:
    sl.load(con, sorted(FRAMEWORK_TRACES.glob("*.json")), progress=False)
    before = snapshot(con)
    sessions = [
        r[0]
        for r in con.sql(
            "SELECT DISTINCT session_id FROM conversation_turns "
            "WHERE session_id IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    con.execute(
        "UPDATE conversation_turns SET content = 'kept' WHERE session_id = ?", [sessions[1]]
    )
    con.execute("UPDATE tool_calls SET tool_name = 'kept' WHERE session_id = ?", [sessions[1]])
    rebuilt = rebuild_derived(con, session_ids=[sessions[0]])
    assert rebuilt.conversation_turns == sum(
        r[0] == sessions[0] for r in before["conversation_turns"]
    )
    after = snapshot(con)
    assert {r[-2] for r in after["conversation_turns"] if r[0] == sessions[1]} == {"kept"}
    assert [r for r in after["conversation_turns"] if r[0] != sessions[1]] == [
        r for r in before["conversation_turns"] if r[0] != sessions[1]
    ]
    assert rebuild_derived(con, session_ids=[]) == Rebuilt(0, 0)
