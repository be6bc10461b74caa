"""``load(workers=N)``: records mapped on worker processes give the tables of ``workers=1``.

Every comparison loads the same files twice, on the ``con`` fixture with ``workers=2`` and on
a fresh database with ``workers=1`` (today's path), and compares every canonical table and
``load_errors`` row for row, the written counts and, in strict mode, the exception. Small
batches, chunks and reads make a few records cross many batch and chunk boundaries.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import pickle
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens import datasets, loaders
from sessionlens.loaders import _mapping, _parallel, _rebuild
from sessionlens.loaders._limits import block_lines, bounded_blocks, bounded_lines
from sessionlens.loaders._write import table_columns, to_arrow
from sessionlens.loaders.files import expand_paths
from tests.conftest import FRAMEWORK_TRACES, SHARED, snapshot


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated Langfuse blob export (JSON lines) of 40 sessions."""
    out = tmp_path_factory.mktemp("export")
    datasets.write_langfuse_blob_export(datasets.generate(40, seed=3), out)
    return out


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 97 items, chunks of 13 lines and derived tables rebuilt 3 sessions at a
    time on the workers (1000 in the serial path): boundaries fall everywhere."""
    monkeypatch.setattr(loaders, "BATCH_ITEMS", 97)
    monkeypatch.setattr(_parallel, "CHUNK_LINES", 13)
    monkeypatch.setattr(_parallel, "READ_BYTES", 1000)
    monkeypatch.setattr(_rebuild, "REBUILD_MIN_SLICE", 3)


def _load_both(
    con: duckdb.DuckDBPyConnection, paths: Any, **kw: Any
) -> tuple[sl.LoadResult, sl.LoadResult]:
    """Load ``paths`` with workers=2 into ``con`` and with workers=1 into a fresh database;
    assert the tables are the same."""
    serial_con = sl.connect()
    try:
        serial = sl.load(serial_con, paths, progress=False, workers=1, **kw)
        parallel = sl.load(con, paths, progress=False, workers=2, **kw)
        assert snapshot(con) == snapshot(serial_con)
        # snapshot() sorts; load_errors must also come in the same order.
        order = "SELECT * EXCLUDE (loaded_at) FROM load_errors ORDER BY rowid"
        assert con.execute(order).fetchall() == serial_con.execute(order).fetchall()
    finally:
        serial_con.close()
    assert [vars(f) for f in parallel.files] == [vars(f) for f in serial.files]
    assert parallel.written == serial.written
    return parallel, serial


def test_generated_export_is_identical(con, export, small):
    parallel, _ = _load_both(con, export)
    assert parallel.observations > 300 and parallel.tool_calls > 0
    again = sl.load(con, export, progress=False, workers=2)  # a re-load writes nothing
    assert again.written == {"traces": 0, "observations": 0, "scores": 0}


def test_gzipped_export_and_default_batches(con, tmp_path):
    datasets.write_langfuse_blob_export(datasets.generate(15, seed=5), tmp_path, gzip=True)
    parallel, _ = _load_both(con, tmp_path)
    assert parallel.sessions == 15


def _as_lines(docs: list[Any], path: Path) -> Path:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return path


def test_real_files_as_json_lines(con, tmp_path, small):
    """The real framework traces (one download per line) and tau-bench runs (one
    conversation per line) go through the worker path; the JSON files as they are do not."""
    traces = [json.loads(p.read_text()) for p in sorted(FRAMEWORK_TRACES.glob("*.json"))]
    runs = json.loads((SHARED / "tau-bench" / "gpt-4o-airline.json").read_text())[:60]
    lines = [
        _as_lines(traces, tmp_path / "framework.jsonl"),
        _as_lines(runs, tmp_path / "tau.jsonl"),
    ]
    for path in lines:
        fmt = loaders.read_items(expand_paths([path])[0])[0]
        assert _parallel.pooled(expand_paths([path])[0], fmt, (2, 0)), fmt
    parallel, _ = _load_both(con, lines)
    assert parallel.traces > len(runs) and parallel.observations > 1000
    documents = sl.connect()  # the JSON files as they are, into a database of their own
    _load_both(documents, [*sorted(FRAMEWORK_TRACES.glob("*.json")), SHARED / "otlp"])
    documents.close()


#: Record limit of the bad-lines file: above every generated line, below its long one.
_LIMIT = 60_000


def _bad_lines(path: Path, export: Path) -> Path:
    """Observations with every kind of bad line, and one id repeated across batches."""
    good = (export / "observations").glob("*.jsonl").__next__().read_text().splitlines()
    assert max(map(len, good)) < _LIMIT
    first = json.loads(good[0])
    newer = dict(first, updated_at="2030-01-01 00:00:00.000000", name="renamed")
    older = dict(first, updated_at="2000-01-01 00:00:00.000000", name="stale")
    lines: list[str | bytes] = [
        *good[:30],
        '{"id": "o-trunc", "trace_id": "t1", "type": "GENER',
        "",
        "   ",
        json.dumps(newer),
        b'{"id": "\xff"}',  # invalid UTF-8
        '["not", "an", "object"]',
        json.dumps(dict(first, id="o-surrogate", name="\ud800")),  # a lone surrogate
        "x" * (_LIMIT + 1),
        *good[30:80],
        json.dumps(older),
        json.dumps(dict(first, start_time="not a time", id="o-badtime")),
        *good[80:],
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def test_rejects_and_dedup_order_are_identical(con, tmp_path, export, small):
    path = _bad_lines(tmp_path / "observations" / "bad.jsonl", export)
    parallel, serial = _load_both(con, path, max_record_bytes=_LIMIT)
    assert parallel.rejected == serial.rejected >= 6
    name = con.execute(
        "SELECT name FROM observations WHERE observation_id = ?",
        [json.loads(path.read_bytes().splitlines()[0])["id"]],
    ).fetchone()
    assert name == ("renamed",)  # the newest of three versions, in different batches


@pytest.mark.parametrize("batch", [5, 20_000])
def test_strict_raises_what_workers_1_raises(con, tmp_path, export, monkeypatch, batch):
    monkeypatch.setattr(loaders, "BATCH_ITEMS", batch)
    monkeypatch.setattr(_parallel, "CHUNK_LINES", 3)
    monkeypatch.setattr(_parallel, "READ_BYTES", 1000)
    path = _bad_lines(tmp_path / "observations" / "bad.jsonl", export)
    errors = []
    con.execute("SET threads = 3")  # merging on workers runs on one; the setting comes back
    for workers, target in ((1, sl.connect()), (2, con)):
        with pytest.raises(sl.TraceFormatError, match=r"bad\.jsonl, line 31: invalid JSON") as e:
            sl.load(target, path, strict=True, workers=workers)
        errors.append(str(e.value))
        assert target.execute("SELECT count(*) FROM observations").fetchone() == (0,)
    assert errors[0] == errors[1]
    assert con.execute("SELECT current_setting('threads')").fetchone() == (3,)


@pytest.mark.parametrize(
    ("batch", "expected"), [(4, r"line 3: invalid JSON"), (500, "cannot read")]
)
def test_strict_reject_or_read_error_first_as_serially(
    con, tmp_path, export, monkeypatch, batch, expected
):
    """A bad line 3 and a gzip cut off further on: the serial path reads a whole batch
    before mapping it, so the read error wins when both fall in one batch."""
    monkeypatch.setattr(loaders, "BATCH_ITEMS", batch)
    monkeypatch.setattr(_parallel, "CHUNK_LINES", 2)
    monkeypatch.setattr(_parallel, "READ_BYTES", 1000)
    rows = (export / "traces").glob("*.jsonl").__next__().read_text().splitlines()
    data = "\n".join([*rows[:2], "{oops", *rows[2:]]).encode()
    path = tmp_path / "traces" / "cut.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) // 2])
    messages = []
    for workers, target in ((1, sl.connect()), (2, con)):
        with pytest.raises(sl.TraceFormatError, match=expected) as e:
            sl.load(target, path, strict=True, workers=workers)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    _load_both(con, path)  # not strict: the whole file is one error row


@pytest.mark.parametrize("workers", [0, -1, True, 1.5, "2"])
def test_workers_must_be_a_whole_number(con, export, workers):
    with pytest.raises(sl.ConfigError, match=r"workers: must be a whole number >= 1"):
        sl.load(con, export, workers=workers)


def test_unpicklable_rules_are_refused_or_loaded_here(con, export):
    rules = sl.InternalRules(metadata=MappingProxyType({"purpose": "test"}))
    with pytest.raises(sl.ConfigError, match=r"internal rules cannot be sent.*workers=1"):
        sl.load(con, export, workers=2, internal=rules)
    assert _parallel.plan_workers(None, rules=rules) == (1, 0)


def test_auto_maps_only_big_json_lines_files_on_workers(export):
    _, min_bytes = _parallel.plan_workers(None, rules=sl.InternalRules())
    assert min_bytes in (0, _parallel.AUTO_MIN_BYTES)
    src = next(s for s in expand_paths([export]) if s.table_hint == "observations")
    assert src.path.stat().st_size < _parallel.AUTO_MIN_BYTES
    assert not _parallel.pooled(src, "langfuse-blob", (2, _parallel.AUTO_MIN_BYTES))
    assert _parallel.pooled(src, "langfuse-blob", (2, 0))
    assert not _parallel.pooled(src, "otlp-json", (2, 0))  # spans roll up across lines
    assert not _parallel.pooled(src, "langfuse-blob", (1, 0))


_KINDS = st.sampled_from(["error", "trace_row", "observation_row", "score_row", "stub", "zzz"])


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(_KINDS, max_size=60),
    cuts=st.lists(st.integers(1, 60), max_size=8),
    size=st.integers(1, 25),
)
def test_recut_chunks_equal_batches_mapped_alone(kinds, cuts, size):
    """Mapping chunks with tags and re-cutting them gives the batches of the serial path."""
    items = [(kind, f"line {i}", {"trace_id": f"t{i % 3}", "n": i}) for i, kind in enumerate(kinds)]
    rules = sl.InternalRules()
    want = [
        _as_lists(
            *loaders.map_items(
                "p", "langfuse-blob", items[i : i + size], rules=rules, strict=False
            ),
            arrow=False,
        )
        for i in range(0, len(items), size)
    ]
    cutter = _mapping.Cutter(size)
    got = []
    bounds = sorted({0, len(items), *(c for c in cuts if c < len(items))})
    for start, end in itertools.pairwise(bounds):
        tags = bytearray()
        rows, rejected = loaders.map_tagged(
            "p", "langfuse-blob", items[start:end], rules=rules, strict=False, tags=tags
        )
        assert len(tags) == end - start
        tables = {t: to_arrow(_COLUMNS[t], rows[t], source_file="p") for t in rows}
        # What a worker sends back: pickled, as across the process boundary.
        got.extend(cutter.add(*pickle.loads(pickle.dumps((bytes(tags), tables, rejected)))))
    got.extend(cutter.flush())
    assert [_as_lists(*batch) for batch in got] == want


#: Each canonical table's columns, as the load passes them to workers.
_COLUMNS = {t: table_columns(sl.connect(), t) for t in ("traces", "observations", "scores")}


def _as_lists(rows: dict[str, Any], rejected: Any, *, arrow: bool = True) -> Any:
    """A batch's tables as lists of row dicts (``arrow=False``: its rows as Arrow first)."""
    if not arrow:
        rows = {t: to_arrow(_COLUMNS[t], r, source_file="p") for t, r in rows.items()}
    return {t: table.to_pylist() for t, table in rows.items()}, rejected


def test_rebuild_on_workers_gives_the_same_rows(con, export, monkeypatch):
    sl.load(con, export, progress=False, workers=1)
    before = snapshot(con)
    ids = [r[0] for r in con.execute("SELECT session_id FROM sessions ORDER BY 1").fetchall()]
    monkeypatch.setattr(_rebuild, "REBUILD_MIN_SLICE", 7)
    assert not _parallel.parallel_rebuild(con, ids, plan=(1, 0), most=1000)
    assert not _parallel.parallel_rebuild(con, ids, plan=(2, _parallel.AUTO_MIN_BYTES), most=1000)
    con.execute("DELETE FROM tool_calls; DELETE FROM conversation_turns")
    assert _parallel.parallel_rebuild(con, ids, plan=(2, 0), most=1000)
    assert snapshot(con) == before and before["conversation_turns"]


def test_cli_load_workers(tmp_path, export, capsys):
    from sessionlens.cli import main

    outs = []
    for workers in ("1", "2"):
        db = tmp_path / f"w{workers}.duckdb"
        argv = ["load", str(export), "--db", str(db), "--no-progress", "--workers", workers]
        assert main(argv) == 0
        outs.append(capsys.readouterr().out.replace(str(db), "DB"))
    assert outs[0] == outs[1] and "rejected             0" in outs[0]
    assert main(["load", str(export), "--db", str(tmp_path / "x.duckdb"), "--workers", "0"]) == 1
    assert "workers: must be a whole number >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("batch", [6, 20_000])
def test_strict_reject_wins_over_a_later_mapping_error(con, tmp_path, export, monkeypatch, batch):
    """A strict reject on line 3 and, further on in the same batch, a record whose mapping
    raises a non-``ValueError`` (here: a ``TypeError`` from an environment rule that is not
    text): ``workers=1`` maps the batch in order and raises the reject; so must workers."""
    monkeypatch.setattr(loaders, "BATCH_ITEMS", batch)
    monkeypatch.setattr(_parallel, "CHUNK_LINES", 2)
    monkeypatch.setattr(_parallel, "READ_BYTES", 1000)
    rules = sl.InternalRules(environments=("default",), environment_prefixes=(1,))  # type: ignore[arg-type]
    rows = [
        json.loads(r)
        for r in (export / "traces").glob("*.jsonl").__next__().read_text().splitlines()
    ]
    lines = [json.dumps(dict(r, environment="default")) for r in rows[:12]]
    lines.insert(2, "{oops")
    lines.insert(5, json.dumps(dict(rows[20], environment="production")))  # raises TypeError
    path = tmp_path / "traces" / "mixed.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    messages = []
    for workers, target in ((1, sl.connect()), (2, con)):
        with pytest.raises(sl.TraceFormatError, match=r"mixed\.jsonl, line 3: invalid JSON") as e:
            sl.load(target, path, strict=True, workers=workers, internal=rules)
        messages.append(str(e.value))
        assert target.execute("SELECT count(*) FROM traces").fetchone() == (0,)
    assert messages[0] == messages[1]
    # Not strict, both paths raise the mapping error itself and leave nothing behind.
    for workers, target in ((1, sl.connect()), (2, con)):
        with pytest.raises(TypeError, match=r"startswith"):
            sl.load(target, path, workers=workers, internal=rules)
        assert target.execute("SELECT count(*) FROM traces").fetchone() == (0,)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"\n", b"\r\n", b"a", b"xyz" * 7, b" ", b"\xff", b"{}"]), max_size=40
    ).map(b"".join),
    limit=st.integers(1, 30),
    size=st.integers(1, 40),
)
def test_blocks_split_into_the_bounded_lines(data, limit, size):
    """What this process reads by blocks and a worker splits is ``bounded_lines`` exactly:
    every line, blank and last lines, over-long lines as their size, the same numbers."""
    got = []
    for first, block in bounded_blocks(io.BytesIO(data), limit, size):
        assert isinstance(block, int) or b"\n" not in block[:-1] or block.endswith(b"\n")
        got.extend(
            block_lines(first, block, limit) if isinstance(block, bytes) else [(first, block)]
        )
    assert got == list(bounded_lines(io.BytesIO(data), limit))
