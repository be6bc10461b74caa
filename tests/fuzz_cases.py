"""Mutating seed files and checking what a load of the result did to the database.

Owns the fuzzer's two halves, shared by ``tests/test_fuzz.py`` (hypothesis, a few dozen cases
per format) and ``bench/fuzz.py`` (a seeded random run of 10,000+ cases):

- :func:`mutate` writes a damaged copy of a seed: record-level changes (a dropped field, a
  wrong-typed value, NaN / negative / fractional / huge token counts, a huge string, deep
  nesting, hostile text, a duplicate record with conflicting content, the same instant spelt in
  another time zone) and byte-level ones (truncation, invalid UTF-8, an empty file, a dropped
  or repeated line). Every choice goes through a ``choose(n) -> int`` callback, so hypothesis
  can draw (and shrink) them and the bench can use a ``random.Random``.
- :func:`run_case` loads the copy (strict or lenient) into a fresh database and checks the
  contract: the load succeeds or raises a ``SessionlensError`` naming the file (and position);
  lenient rejects are ``load_errors`` rows with file, position and reason; a failed strict load
  leaves the database as it was; no orphan observations; sessions count their traces; token
  counts are whole, non-negative and keep their parts inside their totals; and every record the
  mutation did not touch is loaded with the same token counts as from the intact seed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import sessionlens as sl
from sessionlens.loaders._normalize import parse_timestamp

from .conftest import SHARED, snapshot
from .fuzz_corpus import TABLE_MAPPING, Seed

__all__ = ["Baseline", "Case", "baseline", "mutate", "run_case"]

Choose = Callable[[int], int]
_DEEP = "\u0000deep\u0000"  # placeholder swapped for raw nested brackets after json.dumps
HOSTILE = [
    "'); DROP TABLE traces; --",
    'a"b\\c',
    "semi;colon",
    "nul\x00byte",
    "ünïcödé 😀 \u202e",
    "",
    " ",
]
VALUES: list[Any] = [
    None, True, 0, -1, -(10**15), 1.5, math.nan, math.inf, 10**30, "x", "12", [], {},
    [1, "a"], {"a": {"b": 1}}, "y" * 200_000, _DEEP, *HOSTILE,
]  # fmt: skip
COUNTS: list[Any] = [math.nan, -1, -0.5, 1.5, 3.0, "7", "7.5", 10**20, -(10**12), "nan", None]
TOKEN_WORDS = ("token", "usage", "input", "output", "prompt", "completion", "total")
RECORD_OPS = ("drop", "retype", "tokens", "duplicate", "retime", "hostile")
BYTE_OPS = ("truncate", "bad-utf8", "empty", "drop-line", "repeat-line")
NEUTRAL = {"retime", "repeat-line"}


@dataclass
class Case:
    """One mutated input: what was done, to which records, and where the copy is."""

    seed: Seed
    op: str
    path: Path  # what to load: the copy of the file or of the mixed folder
    target: Path  # the mutated file inside it
    touched: set[str] = field(default_factory=set)  # strings of the records changed
    whole: bool = False  # the change may reach every record (a document, a cut)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nodes(v, (*path, i))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if len(value) >= 3 else set()
    if isinstance(value, dict):
        return set().union(*(_strings(v) | _strings(k) for k, v in value.items()), set())
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value), set())
    return set()


_SPELLINGS: list[Callable[[datetime], str]] = [
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    lambda d: d.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
    lambda d: d.astimezone(timezone(timedelta(hours=-11))).isoformat(),
    lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"),
    lambda d: d.isoformat(),
]


def _as_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 19 or value[4] != "-" or value[10] not in "T ":
        return None
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed else None


def _mutate_record(record: Any, op: str, choose: Choose) -> Any:
    """Return a changed copy of a JSON-like record (dict, list or scalar)."""
    record = json.loads(json.dumps(record, default=str))
    nodes = _nodes(record)[1:] or [()]
    if op == "retime":
        times = [p for p in nodes if _as_instant(_get(record, p)) is not None]
        spell = _SPELLINGS[choose(len(_SPELLINGS))]
        for p in times:  # every timestamp of the record: the same instants, other spellings
            instant = _as_instant(_get(record, p))
            assert instant is not None
            _get(record, p[:-1])[p[-1]] = spell(instant)
        return record
    if op == "tokens":
        counts = [
            p
            for p in nodes
            if p and isinstance(p[-1], str) and any(w in p[-1].lower() for w in TOKEN_WORDS)
        ]
        nodes = counts or nodes
    path = nodes[choose(len(nodes))]
    if not path:
        return VALUES[choose(len(VALUES))]
    parent = _get(record, path[:-1])
    if op == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif op == "drop" and isinstance(parent, list):
        parent.pop(path[-1])
    elif op == "tokens":
        parent[path[-1]] = COUNTS[choose(len(COUNTS))]
    elif op == "hostile":
        if isinstance(parent, dict) and choose(2):  # a hostile key as well as a value
            parent[HOSTILE[choose(len(HOSTILE))] or "k"] = parent.pop(path[-1])
        else:
            parent[path[-1]] = HOSTILE[choose(len(HOSTILE))]
    else:
        parent[path[-1]] = VALUES[choose(len(VALUES))]
    return record


def _dumps(value: Any) -> str:
    text = json.dumps(value, allow_nan=True, default=str)
    return text.replace(json.dumps(_DEEP), "[" * 3000 + "]" * 3000)


def _records(seed: Seed, data: bytes) -> tuple[str, Any]:
    """The seed's records: ('lines', [docs]), ('array', [docs]), ('doc', doc) or ('rows', ...)."""
    if seed.container == "jsonl":
        return "lines", [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    if seed.container == "json":
        doc = json.loads(data)
        return ("array", doc) if isinstance(doc, list) else ("doc", doc)
    if seed.container == "csv":
        return "rows", list(csv.DictReader(io.StringIO(data.decode())))
    return "rows", pq.read_table(seed.target).to_pylist(maps_as_pydicts="strict")


def _encode(case: Case, shape: str, records: Any) -> bytes:
    seed = case.seed
    if shape == "lines":
        return "".join(_dumps(r) + "\n" for r in records).encode("utf-8", "surrogatepass")
    if shape in ("array", "doc"):
        return _dumps(records).encode("utf-8", "surrogatepass")
    names = list(dict.fromkeys(k for r in records for k in r))
    if seed.container == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=names)
        writer.writeheader()
        for r in records:
            writer.writerow(
                {k: v if isinstance(v, str) or v is None else _dumps(v) for k, v in r.items()}
            )
        return out.getvalue().encode("utf-8", "surrogatepass")
    arrays = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # mixed types in one column: Parquet needs one type, so the column becomes text
            case.whole = True  # ... and every record of it changed
            arrays[name] = pa.array(
                [v if v is None or isinstance(v, str) else _dumps(v) for v in values]
            )
    table = pa.table(arrays)
    sink = io.BytesIO()
    try:
        pq.write_table(table, sink)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        # e.g. a struct left with no fields: nested columns go to Parquet as JSON text
        case.whole = True
        sink = io.BytesIO()
        pq.write_table(table.from_pylist(_texts(table.to_pylist())), sink)
    return sink.getvalue()


def _texts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v if v is None or isinstance(v, (str, int, float)) else _dumps(v) for k, v in r.items()}
        for r in rows
    ]


def _byte_mutation(case: Case, data: bytes, choose: Choose) -> bytes:
    lines = data.splitlines(keepends=True)
    case.whole = True
    if case.op == "truncate":
        return data[: choose(len(data))]
    if case.op == "empty":
        return b""
    if case.op == "bad-utf8":
        at = choose(len(data) + 1)
        return data[:at] + [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"][choose(4)] + data[at:]
    if not lines:
        return data
    i = choose(len(lines))
    if case.op == "repeat-line":
        case.whole = case.seed.container != "jsonl"  # elsewhere a line is not a record
        return b"".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    return b"".join(lines[:i] + lines[i + 1 :])  # drop-line


def mutate(seed: Seed, out: Path, choose: Choose) -> Case:
    """Copy ``seed`` under ``out`` with one mutation chosen through ``choose``."""
    import shutil

    if seed.path.is_dir():
        path = Path(shutil.copytree(seed.path, out / seed.path.name))
        target = path / seed.target.relative_to(seed.path)
    else:
        target = path = out / seed.target.parent.name / seed.target.name
        target.parent.mkdir(parents=True, exist_ok=True)
    data = seed.target.read_bytes()
    gz = seed.target.name.endswith(".gz")
    if gz:
        import gzip

        data = gzip.decompress(data)
    ops = [*RECORD_OPS, *BYTE_OPS]
    case = Case(seed, ops[choose(len(ops))], path, target)
    if case.op in BYTE_OPS and (seed.container != "parquet" or case.op == "truncate"):
        data = _byte_mutation(case, data, choose)
    else:
        if case.op in BYTE_OPS:
            case.op = "retype"
        shape, records = _records(seed, data)
        if shape == "doc" or not records:
            case.whole = case.op not in NEUTRAL
            records = _mutate_record(records, case.op, choose)
        else:
            i = choose(len(records))
            case.touched |= _strings(records[i])
            if case.op == "duplicate":  # the same id twice, the copy's content changed
                copy = _mutate_record(records[i], "retype", choose)
                records.insert(choose(len(records) + 1), copy)
                case.touched |= _strings(copy)
            else:
                records[i] = _mutate_record(records[i], case.op, choose)
                case.touched |= _strings(records[i])
        data = _encode(case, shape, records)
        if seed.container == "json" and b"[[[[[[" in data:
            case.whole = True  # a JSON document nested too deeply is rejected whole
    if gz:
        import gzip

        data = gzip.compress(data, mtime=0)
    target.write_bytes(data)
    return case


@dataclass(frozen=True)
class Baseline:
    """What the intact seed loads as: token counts per observation id, and trace ids."""

    observations: dict[str, tuple[Any, ...]]
    traces: frozenset[str]
    trace_of: dict[str, str]  # observation id -> trace id


_TOKENS = (
    "input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, "
    "reasoning_tokens"
)


def _load(con: duckdb.DuckDBPyConnection, seed: Seed, path: Path, strict: bool) -> Any:
    if seed.fmt == "table":
        return sl.load_table(con, path, mapping=TABLE_MAPPING, strict=strict)
    return sl.load(con, path, strict=strict, progress=False)


def baseline(seed: Seed) -> Baseline:
    """Load the intact seed into a fresh database and record what it holds."""
    con = sl.connect()
    try:
        _load(con, seed, seed.path, strict=True)
        obs = con.execute(f"SELECT observation_id, {_TOKENS} FROM observations").fetchall()
        parents = con.execute("SELECT observation_id, trace_id FROM observations").fetchall()
        traces = con.execute("SELECT trace_id FROM traces").fetchall()
    finally:
        con.close()
    return Baseline(
        {r[0]: tuple(r[1:]) for r in obs}, frozenset(r[0] for r in traces), dict(parents)
    )


# A trace no seed contains, loaded before each case: a failed load must leave it as it was.
_PRELOADED = str(SHARED / "langfuse-framework-traces" / "autogen-2025-06-06.trace.json")


def run_case(case: Case, base: Baseline, *, strict: bool) -> str:
    """Load ``case`` into a fresh database (holding one other trace) and check the contract.

    Returns the outcome (``loaded``, ``rejected-records`` or the error class name); raises
    ``AssertionError`` when the contract is broken, and lets unexpected exceptions through.
    """
    con = sl.connect()
    try:
        if strict:  # something a failed load must keep (lenient loads do not fail that way)
            sl.load(con, _PRELOADED, strict=True, progress=False)
        before = snapshot(con)
        try:
            result = _load(con, case.seed, case.path, strict)
        except sl.SessionlensError as exc:
            _check_error(exc, case, strict)
            if case.path.is_dir():  # files before the bad one committed; it added nothing
                _check_nothing_from(con, Path(getattr(exc, "path", "")))
            else:
                assert snapshot(con) == before, "a failed load changed the database"
            outcome = type(exc).__name__
        else:
            outcome = "rejected-records" if result.rejected else "loaded"
            _check_rejects(con, case)
            _check_untouched(con, case, base, strict)
        _check_invariants(con)
        return outcome
    finally:
        con.close()


def _check_error(exc: sl.SessionlensError, case: Case, strict: bool) -> None:
    if isinstance(exc, sl.ConfigError) and case.seed.fmt == "table":
        # the header lost a mapped column: the mapping no longer fits, and the error says where
        assert str(case.target) in str(exc), f"the error does not name the file: {exc}"
        return
    path = getattr(exc, "path", None)
    assert path is not None, f"{type(exc).__name__} without a path: {exc}"
    assert Path(path).is_relative_to(case.path), f"error names {path}, not the input"
    assert str(path) in str(exc)
    if isinstance(exc, sl.TraceFormatError):
        assert exc.locator and exc.reason, f"no position or reason: {exc}"
    elif isinstance(exc, sl.UnknownFormatError):
        pass  # detection gave up on the damaged file: the message names it and the formats
    else:
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc}")
    if not strict:
        assert isinstance(exc, sl.UnknownFormatError), f"lenient load raised {exc!r}"


def _check_nothing_from(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    for table in ("traces", "observations", "load_errors"):
        row = con.execute(
            f"SELECT count(*) FROM {table} WHERE source_file = ?", [str(path)]
        ).fetchone()
        assert row == (0,), f"the failed file {path} left rows in {table}"


def _check_rejects(con: duckdb.DuckDBPyConnection, case: Case) -> None:
    for source, locator, error in con.execute(
        "SELECT source_file, locator, error FROM load_errors"
    ).fetchall():
        assert Path(source).is_relative_to(case.path), source
        assert locator and error, (source, locator, error)


def _check_untouched(
    con: duckdb.DuckDBPyConnection, case: Case, base: Baseline, strict: bool
) -> None:
    if case.whole:
        return
    mine = "WHERE source_file <> ?"  # not the trace loaded before the case
    got = {
        r[0]: tuple(r[1:])
        for r in con.execute(
            f"SELECT observation_id, {_TOKENS} FROM observations {mine}", [_PRELOADED]
        ).fetchall()
    }
    traces = {
        r[0] for r in con.execute(f"SELECT trace_id FROM traces {mine}", [_PRELOADED]).fetchall()
    }

    def touched(key: str) -> bool:
        return any(s in key or key in s for s in case.touched)

    # Transcripts without an id are named by a hash of their messages: the changed record
    # may reappear under a new id. One record's trace (two for a duplicate) may go missing.
    lost = {t for t in base.traces if t not in traces and not touched(t)}
    if case.op in NEUTRAL:
        assert not lost, f"traces lost: {sorted(lost)[:3]}"
    assert len(lost) <= (2 if case.op == "duplicate" else 1), f"traces lost: {sorted(lost)[:3]}"
    parent = dict(base.trace_of)
    for obs_id, tokens in base.observations.items():
        exempt = touched(obs_id) or parent.get(obs_id) in lost or touched(parent.get(obs_id, ""))
        if case.op in NEUTRAL or not exempt:
            assert got.get(obs_id) == tokens, f"observation {obs_id}: {got.get(obs_id)} != {tokens}"
    if case.op in NEUTRAL:
        assert set(got) == set(base.observations), "a neutral change added or lost rows"


def _check_invariants(con: duckdb.DuckDBPyConnection) -> None:
    def one(sql: str) -> Any:
        row = con.execute(sql).fetchone()
        assert row is not None
        return row[0]

    assert (
        one("SELECT count(*) FROM observations WHERE trace_id NOT IN (SELECT trace_id FROM traces)")
        == 0
    ), "orphan observations"
    assert (
        one(
            "SELECT count(*) FROM traces WHERE session_id IS NULL "
            "OR session_id NOT IN (SELECT session_id FROM sessions)"
        )
        == 0
    ), "traces outside any session"
    assert (
        one(
            "SELECT count(*) FROM sessions s WHERE trace_count IS DISTINCT FROM "
            "(SELECT count(*) FROM traces t WHERE t.session_id = s.session_id)"
        )
        == 0
    ), "sessions.trace_count is not the number of their traces"
    for table in ("tool_calls", "conversation_turns"):
        assert (
            one(
                f"SELECT count(*) FROM {table} "
                "WHERE session_id NOT IN (SELECT session_id FROM sessions)"
            )
            == 0
        ), f"{table} of unknown sessions"
    for col in _TOKENS.split(", "):
        assert one(f"SELECT count(*) FROM observations WHERE {col} < 0") == 0, f"negative {col}"
    assert (
        one(
            "SELECT count(*) FROM observations WHERE input_tokens < "
            "coalesce(cache_read_tokens, 0) + coalesce(cache_write_tokens, 0) "
            "OR output_tokens < coalesce(reasoning_tokens, 0)"
        )
        == 0
    ), "token parts larger than their totals"
    assert math.isfinite(one("SELECT coalesce(sum(reported_cost_usd), 0) FROM observations"))
