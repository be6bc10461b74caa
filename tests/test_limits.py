"""The record size limit: a record over ``max_record_bytes`` is rejected with file, position,
size and the option to raise, and the records around it still load.

Memory on multi-GB input is measured by ``bench/memory.py`` (not a test: it writes ~1.5 GB).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sessionlens as sl
from sessionlens.cli import main
from sessionlens.loaders._limits import bounded_lines

from .test_bad_input import obs_row, trace_row

LIMIT = 4096
TOO_LARGE = r"larger than max_record_bytes \(4096 bytes\); raise the limit with load\(\.\.\., "


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_huge_json_line_is_rejected_and_the_next_lines_load(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    big = trace_row(2, input=json.dumps({"text": "x" * 50_000}))
    path = _jsonl(tmp_path / "traces" / "t.jsonl", [trace_row(1), big, trace_row(3)])
    size = len(json.dumps(big))
    with pytest.raises(sl.TraceFormatError, match=rf"t\.jsonl, line 2: record of {size} bytes is "):
        sl.load(con, path, strict=True, max_record_bytes=LIMIT)
    result = sl.load(con, path, max_record_bytes=LIMIT)
    assert (result.traces, result.rejected) == (2, 1)
    locator, error = con.execute("SELECT locator, error FROM load_errors").fetchone()  # type: ignore[misc]
    assert locator == "line 2"
    assert f"record of {size} bytes" in error and "--max-record-mb" in error
    # the default limit takes it
    assert sl.load(sl.connect(), path, strict=True).traces == 3


def test_a_huge_first_line_does_not_break_detection(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows = [obs_row(1, 1, input="y" * 10_000), obs_row(2, 1)]
    path = tmp_path / "observations" / "o.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    result = sl.load(con, path, max_record_bytes=LIMIT)
    assert (result.observations, result.rejected) == (1, 1)
    assert result.files[0].format == "langfuse-blob"


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_json_document_over_the_limit_is_refused_before_parsing(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, gzipped: bool
) -> None:
    doc = json.dumps([trace_row(i, input="z" * 1000) for i in range(10)]).encode()
    path = tmp_path / "traces" / ("t.json.gz" if gzipped else "t.json")
    path.parent.mkdir()
    path.write_bytes(gzip.compress(doc) if gzipped else doc)
    size = "more than 4096" if gzipped else str(len(doc))
    message = rf"t\.json(\.gz)?, file: JSON document of {size} bytes is {TOO_LARGE}"
    with pytest.raises(sl.TraceFormatError, match=message):
        sl.load(con, path, strict=True, max_record_bytes=LIMIT)
    result = sl.load(con, path, max_record_bytes=LIMIT)
    assert (result.traces, result.rejected) == (0, 1)
    assert (
        "or export it as JSON lines" in con.execute("SELECT error FROM load_errors").fetchone()[0]
    )  # type: ignore[index]


def test_a_csv_field_over_the_limit_stops_the_file_with_its_line(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "traces" / "t.csv"
    path.parent.mkdir()
    quoted = '"' + "a,\n" * 3000 + '"'  # one quoted field over many lines
    path.write_text(f"id,timestamp,name\nt1,2026-01-01T00:00:00Z,ok\nt2,2026-01-01,{quoted}\n")
    with pytest.raises(sl.TraceFormatError, match=r"t\.csv, line \d+: CSV field of more than"):
        sl.load(con, path, strict=True, max_record_bytes=LIMIT)
    long_line = tmp_path / "traces" / "u.csv"
    long_line.write_text("id,timestamp,name\nt1,2026-01-01T00:00:00Z," + "b" * 9000 + "\n")
    with pytest.raises(sl.TraceFormatError, match=r"u\.csv, line 2: line of more than 4096"):
        sl.load(con, long_line, strict=True, max_record_bytes=LIMIT)
    assert sl.load(con, long_line, max_record_bytes=LIMIT).rejected == 1
    assert con.execute("SELECT count(*) FROM traces").fetchone() == (0,)


def test_parquet_rows_and_row_groups_over_the_limit(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    rows = [trace_row(i) for i in range(4)]
    rows[2]["input"] = json.dumps({"text": "w" * 8000})
    for row in rows:
        row["metadata"] = json.dumps(row["metadata"])
    pq.write_table(pa.Table.from_pylist(rows), folder / "t.parquet", row_group_size=4)
    with pytest.raises(sl.TraceFormatError, match=r"t\.parquet, row 3: row of \d+ bytes is "):
        sl.load(con, folder / "t.parquet", strict=True, max_record_bytes=LIMIT)
    result = sl.load(con, folder / "t.parquet", max_record_bytes=LIMIT)
    assert (result.traces, result.rejected) == (3, 1)
    # a row group whose rows average over the limit is refused unread, as one error
    pq.write_table(pa.Table.from_pylist(rows[2:3]), folder / "one.parquet")
    with pytest.raises(
        sl.TraceFormatError,
        match=r"one\.parquet, rows 1-1: row group 0 \(1 rows, \d+ bytes\) holds a row that is ",
    ):
        sl.load(sl.connect(), folder / "one.parquet", strict=True, max_record_bytes=1000)


def test_the_limit_on_load_table_and_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "spans.csv"
    path.write_text("span,trace,ts,note\ns1,t1,2026-01-01T00:00:00Z," + "n" * 3_000_000 + "\n")
    mapping = {"observation_id": "span", "trace_id": "trace", "start_time": "ts"}
    with pytest.raises(sl.TraceFormatError, match=r"spans\.csv, line 2: line of more than"):
        sl.load_table(sl.connect(), path, mapping=mapping, strict=True, max_record_bytes=LIMIT)
    db = tmp_path / "x.duckdb"
    jsonl = _jsonl(tmp_path / "traces" / "t.jsonl", [trace_row(1, input="q" * 3_000_000)])
    assert main(["load", str(jsonl), "--db", str(db), "--strict", "--max-record-mb", "2"]) == 1
    assert main(["load", str(jsonl), "--db", str(db), "--strict", "--max-record-mb", "4"]) == 0


def test_cli_limit_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jsonl = _jsonl(tmp_path / "traces" / "t.jsonl", [trace_row(1)])
    db = str(tmp_path / "x.duckdb")
    assert main(["load", str(jsonl), "--db", db, "--strict", "--max-record-mb", "0.0001"]) == 1
    assert "line 1: record of" in capsys.readouterr().err
    assert main(["load", str(jsonl), "--db", db, "--max-record-mb", "0"]) == 1
    assert "error: --max-record-mb: must be a positive size" in capsys.readouterr().err
    with pytest.raises(sl.ConfigError, match=r"max_record_bytes: must be a positive number"):
        sl.load(sl.connect(), jsonl, max_record_bytes=-5)


def test_bounded_lines_never_returns_more_than_the_limit() -> None:
    import io

    data = b"".join(b"x" * n + b"\n" for n in (0, 3, 4, 5, 100)) + b"tail"
    got = list(bounded_lines(io.BytesIO(data), 4))
    assert got == [(1, b"\n"), (2, b"xxx\n"), (3, b"xxxx\n"), (4, 5), (5, 100), (6, b"tail")]


def test_a_file_written_in_many_batches_equals_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from sessionlens import datasets, loaders

    from .conftest import snapshot

    ds = datasets.generate(12, seed=4)
    root = tmp_path / "x"
    datasets.write_langfuse_blob_export(
        ds, root, window=timedelta(days=3), overlap=timedelta(days=1)
    )
    # observations before their traces: placeholders, then real traces, across batches
    (tmp_path / "y" / "observations").mkdir(parents=True)
    for f in (root / "observations").iterdir():
        (tmp_path / "y" / "observations" / f.name).write_bytes(f.read_bytes())
    whole = sl.connect()
    for path in (tmp_path / "y", root):
        sl.load(whole, path, strict=True, progress=False)
    monkeypatch.setattr(loaders, "BATCH_ITEMS", 7)
    monkeypatch.setattr(loaders, "REBUILD_SESSIONS", 3)  # derived tables in slices of sessions
    batched = sl.connect()
    for path in (tmp_path / "y", root):
        sl.load(batched, path, strict=True, progress=False)
    assert snapshot(batched) == snapshot(whole)
    assert sl.load(batched, root, progress=False).written == {
        "traces": 0,
        "observations": 0,
        "scores": 0,
    }
    # a strict reject in a late batch rolls the earlier batches of the file back
    bad = root / "observations" / "zz-bad.jsonl"
    rows = [json.dumps(obs_row(i, 1, id=f"new{i}")) for i in range(30)] + ['{"id": ']
    bad.write_text("\n".join(rows) + "\n")
    before = snapshot(batched)
    with pytest.raises(sl.TraceFormatError, match=r"zz-bad\.jsonl, line 31: invalid JSON"):
        sl.load(batched, bad, strict=True, progress=False)
    assert snapshot(batched) == before


def test_a_registered_view_keeps_its_batch_until_commit_and_execute_arrow_does_not() -> None:
    """Why batches are read through replacement scans: a view dropped inside a transaction
    stays in its undo log with its Arrow table, so a file of many batches held them all."""
    from sessionlens._arrow_sql import ARROW, execute_arrow

    con = duckdb.connect()
    con.execute("CREATE TABLE t (a TEXT)")
    base = pa.total_allocated_bytes()

    def batch() -> pa.Table:
        return pa.table({"a": ["x" * 1000] * 2000})

    con.begin()
    for _ in range(3):
        con.register("b", batch())
        con.execute("INSERT INTO t SELECT * FROM b")
        con.unregister("b")
    held = pa.total_allocated_bytes() - base
    con.commit()
    assert held > 3 * 2_000_000  # three dead batches, freed only by the commit
    con.begin()
    for _ in range(3):
        execute_arrow(con, f"INSERT INTO t SELECT * FROM {ARROW}", batch())
    assert pa.total_allocated_bytes() - base < 2_000_000
    con.commit()
    assert con.execute("SELECT count(*) FROM t").fetchone() == (12_000,)


def test_a_file_of_many_batches_holds_one_batch_of_arrow_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionlens import datasets, loaders
    from sessionlens.loaders import _write

    ds = datasets.generate(60, seed=2)
    files = datasets.write_langfuse_blob_export(ds, tmp_path / "x")
    observations = next(f for f in files if f.parent.name == "observations")
    monkeypatch.setattr(loaders, "BATCH_ITEMS", 40)
    seen: list[int] = []
    touched = _write.touched_trace_ids

    def after_batch(con: duckdb.DuckDBPyConnection, stage: Any = None) -> None:
        touched(con, stage)
        if stage is not None:
            seen.append(pa.total_allocated_bytes())

    monkeypatch.setattr(_write, "touched_trace_ids", after_batch)
    con = sl.connect(tmp_path / "db.duckdb", memory_limit="256MB")
    result = sl.load(con, observations, strict=True, progress=False)
    assert len(seen) > 10 and result.observations > 400
    # The stage of the running batch only: before the fix this grew by a batch per batch.
    assert max(seen[len(seen) // 2 :]) <= 2 * max(seen[:3])
    assert con.execute("SELECT current_setting('memory_limit')").fetchone() == ("244.1 MiB",)


def test_a_bad_memory_limit_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(sl.ConfigError, match=r"memory_limit: 'lots' is not a size .*'2GB'"):
        sl.connect(memory_limit="lots")
    db = tmp_path / "a.duckdb"
    assert main(["load", "--db", str(db), "--memory-limit", "a lot", str(tmp_path)]) == 1
    assert "error: memory_limit: 'a lot' is not a size" in capsys.readouterr().err
    assert not db.exists()
