"""The loader's fast paths give exactly what the general paths give.

Each speed-up of the per-record mapping (issue 6) has a general path it must agree with, value
for value and error for error: the timestamp fast path, the one-shot row hash (stored, so
byte-identical to the piece-by-piece digest), the ASCII shortcut of the lone-surrogate check,
reused placeholder traces, records used as they are when their keys are snake_case already,
and the column-wise Arrow build.
"""

from __future__ import annotations

import gc
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens.loaders import _gc_paused, _write, langfuse, map_items
from sessionlens.loaders._normalize import InternalRules, row_hash
from sessionlens.loaders._time import _parse_general, parse_timestamp

from .conftest import SHARED


def _outcome(parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        return f"error: {exc}"


_INSTANTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30))
_SPELLINGS = [
    "{:%Y-%m-%d %H:%M:%S.%f}",
    "{:%Y-%m-%dT%H:%M:%S.%f}Z",
    "{:%Y-%m-%dT%H:%M:%S}z",
    "{:%Y-%m-%d %H:%M:%S}",
    "{:%Y-%m-%dT%H:%M:%S.%f}789Z",
    " {:%Y-%m-%d %H:%M:%S} ",
    "{:%Y-%m-%dT%H:%M:%S}+05:30",
    "{:%Y-%m-%d %H:%M}",
    "{:%Y-%m-%d}",
]


@given(_INSTANTS, st.sampled_from(_SPELLINGS), st.integers(0, 6))
def test_timestamp_fast_path_agrees_with_the_general_path(
    when: datetime, spelling: str, cut: int
) -> None:
    text = spelling.format(when)
    if ".%f" in spelling and cut:  # shorter fractions: 1 to 5 digits
        head, _, tail = text.partition(".")
        text = f"{head}.{tail[: 6 - cut]}{tail[6:]}"
    assert _outcome(parse_timestamp, text) == _outcome(_parse_general, text), text


@pytest.mark.parametrize(
    "text",
    [
        "2026-13-01 08:10:15",  # matches the fast pattern, not a date: the general error
        "2026-09-01 24:00:00.5",
        "٢٠٢٦-09-01 08:10:15",  # other scripts' digits never take the fast path
        "2026-09-01 08:10:15.1234567",
        "Z",
        "",
        "2026-09-01T08:10:15.123Zz",
    ],
)
def test_timestamp_edge_spellings_agree(text: str) -> None:
    assert _outcome(parse_timestamp, text) == _outcome(_parse_general, text)


def test_timestamp_fast_path_reads_utc() -> None:
    assert parse_timestamp("2026-09-01T08:10:15.5Z") == datetime(2026, 9, 1, 8, 10, 15, 500000)
    with pytest.raises(ValueError, match="not a timestamp: '2026-13-01 08:10:15'"):
        parse_timestamp("2026-13-01 08:10:15")


def _row_hash_reference(values: Any) -> str:
    # The digest as main computed it before issue 6: one update per piece.
    digest = hashlib.blake2b(digest_size=16)
    for value in values:
        digest.update(repr(value).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),  # includes lone surrogates
    st.datetimes(),
    st.lists(st.text(max_size=5), max_size=3),
)


@given(st.lists(_VALUES, max_size=30))
def test_row_hash_is_byte_identical_to_the_stored_digest(values: list[Any]) -> None:
    assert row_hash(values) == _row_hash_reference(values)
    assert row_hash(iter(values)) == _row_hash_reference(values)


def _lines(tmp_path: Path, records: list[str], folder: str = "observations") -> Path:
    path = tmp_path / folder / "part.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(records) + "\n", encoding="utf-8")
    return path


def _obs(**fields: Any) -> dict[str, Any]:
    base = {"id": "o1", "trace_id": "t1", "type": "SPAN", "start_time": "2026-09-01 08:10:15"}
    return {**base, **fields}


@pytest.mark.parametrize(
    "raw",
    ['"\\ud800"', '"\\"\\\\udfff\\""', '["ok", "\\udbff"]', '"caf\\u00e9 \\ud800"'],
    ids=["escaped", "double-encoded", "in-a-list", "after-non-ascii"],
)
def test_a_lone_surrogate_is_still_rejected(con: Any, tmp_path: Path, raw: str) -> None:
    record = json.dumps(_obs(id="bad")).replace('"SPAN"', '"SPAN", "output": ' + raw)
    path = _lines(tmp_path, [record, json.dumps(_obs(id="good"))])
    result = sl.load(con, path, progress=False)
    assert result.rejected == 1
    error = con.execute("SELECT locator, error FROM load_errors").fetchone()
    assert error == ("line 1", "output: contains a lone surrogate, not valid text")
    with pytest.raises(sl.TraceFormatError, match="line 1: output: contains a lone surrogate"):
        sl.load(sl.connect(), path, strict=True, progress=False)


def test_valid_non_ascii_text_is_kept(con: Any, tmp_path: Path) -> None:
    text = "Zoë 😀 \u202e"
    path = _lines(tmp_path, [json.dumps(_obs(name=text, output=text), ensure_ascii=False)])
    assert sl.load(con, path, progress=False).rejected == 0
    assert con.execute("SELECT name FROM observations").fetchone() == (text,)


_STUB_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", "s", "1", "True", "langfuse-eval", "sdk-experiment"]),
    st.sampled_from([1, True, 1.0, 0, False]),
    st.lists(st.sampled_from(["a", "b", "eval"]), max_size=2),
    st.lists(st.integers(0, 1), max_size=1),
)
_STUB_FIELDS = ["session_id", "user_id", "trace_name", "tags", "environment", "release"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from(_STUB_FIELDS), _STUB_VALUES),
        max_size=12,
    )
)
def test_reused_placeholder_traces_equal_mapping_each_row(
    changes: list[tuple[str, str, Any]],
) -> None:
    rules = InternalRules(tags=("eval",))
    records = [_obs(id=f"o{i}", trace_id=t, **{k: v}) for i, (t, k, v) in enumerate(changes)]
    items = [("stub", f"line {i}", r) for i, r in enumerate(records)]
    rows, rejected = map_items("p", "langfuse-blob", items, rules=rules, strict=False)
    expected = []
    for record in records:
        try:
            stub = langfuse.map_stub_trace(record, rules=rules, source_format="langfuse-blob")
        except ValueError:
            continue
        if stub is not None:
            expected.append(stub)
    assert rows["traces"] == expected and rejected == []


def test_camel_and_snake_records_map_alike() -> None:
    snake = _obs(parent_observation_id="p", status_message="m", updated_at="2026-09-02 10:00:00")
    camel = {
        "id": "o1",
        "traceId": "t1",
        "type": "SPAN",
        "startTime": "2026-09-01 08:10:15",
        "parentObservationId": "p",
        "statusMessage": "m",
        "updatedAt": "2026-09-02 10:00:00",
    }
    for _ in range(2):  # the second time from the cache of key layouts
        mapped = [langfuse.map_observation(r, source_format="x") for r in (snake, camel)]
        assert mapped[0] == mapped[1]


def test_arrow_columns_do_not_depend_on_key_order(con: Any) -> None:
    columns = _write._columns(con, "observations")
    trace = SHARED / "langfuse-framework-traces" / "openai-agents-2025-09-30.trace.json"
    doc = json.loads(trace.read_text())
    rows = [langfuse.map_observation(o, source_format="x") for o in doc["observations"]]
    together = _write.to_arrow(columns, rows, source_file="f")
    assert _write._column_values(rows) is not None
    shuffled = [dict(reversed(row.items())) for row in rows[:1]] + rows[1:]
    assert _write._column_values(shuffled) is None
    assert _write.to_arrow(columns, shuffled, source_file="f").equals(together)
    missing = [{k: v for k, v in row.items() if k != "model"} for row in rows]
    table = _write.to_arrow(columns, missing, source_file="f")
    assert table.column("model").null_count == len(rows)
    assert table.column("source_file").to_pylist() == ["f"] * len(rows)
    assert table.column("loaded_at").null_count == len(rows)  # set by the merge
    assert _write.to_arrow(columns, [], source_file="f").num_rows == 0
    assert table.schema.field("start_time").type == pa.timestamp("us")


def test_gc_is_paused_only_inside_and_restored_after_errors() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"), _gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with _gc_paused():
            pass
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


def test_a_reload_of_a_blob_export_writes_nothing(con: Any, tmp_path: Path) -> None:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    records = [
        _obs(
            id=f"o{i}",
            trace_id=f"t{i % 3}",
            start_time=(start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            end_time=(start + timedelta(seconds=i + 1))
            .astimezone(timezone(timedelta(hours=2)))
            .isoformat(),
            updated_at=f"2026-09-0{1 + i % 2} 10:00:00.{i:06d}",
        )
        for i in range(9)
    ]
    path = _lines(tmp_path, [json.dumps(r) for r in records])
    assert sl.load(con, path, progress=False).written["observations"] == 9
    assert sl.load(con, path, progress=False).written == {
        "traces": 0,
        "observations": 0,
        "scores": 0,
    }


def test_newest_version_of_an_id_wins_within_a_batch(con: Any) -> None:
    """Repeated ids in one batch: a real trace beats a placeholder whatever its age, then
    the newest ``source_updated_at``, then the later position; other ids keep their order."""
    old, new = datetime(2025, 1, 1), datetime(2025, 6, 1)
    rows = [
        {"trace_id": "t1", "name": "stub-new", "is_stub": True, "source_updated_at": new},
        {"trace_id": "t2", "name": "first", "is_stub": False, "source_updated_at": old},
        {"trace_id": "t1", "name": "real-old", "is_stub": False, "source_updated_at": old},
        {"trace_id": "t3", "name": "none", "is_stub": False, "source_updated_at": None},
        {"trace_id": "t2", "name": "second", "is_stub": False, "source_updated_at": old},
        {"trace_id": "t3", "name": "dated", "is_stub": False, "source_updated_at": old},
    ]
    rows = [dict(row, is_internal=False) for row in rows]
    stage = _write.Stage()
    assert _write.merge_rows(con, "traces", rows, source_file="f", stage=stage) == 3
    assert stage.tables["traces"].column("name").to_pylist() == ["real-old", "second", "dated"]
    got = con.execute("SELECT trace_id, name, loaded_at IS NOT NULL FROM traces ORDER BY 1")
    assert got.fetchall() == [
        ("t1", "real-old", True),
        ("t2", "second", True),
        ("t3", "dated", True),
    ]
    unique = [dict(row, trace_id=f"u{i}") for i, row in enumerate(rows)]
    _write.merge_rows(con, "traces", unique, source_file="f", stage=stage)
    assert stage.tables["traces"].column("trace_id").to_pylist() == [f"u{i}" for i in range(6)]
