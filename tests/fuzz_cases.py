"""Mutating seed files: the fuzzer's inputs (``fuzz_checks`` runs and checks them).

Shared by ``tests/test_fuzz.py`` (hypothesis, a few dozen cases per format) and
``bench/fuzz.py`` (a seeded random run of 10,000+ cases):

- :func:`mutate` writes a damaged copy of a seed: record-level changes (a dropped field, a
  wrong-typed value, NaN / negative / fractional / huge token counts, a huge string, deep
  nesting, hostile text, a duplicate record with conflicting content, the same instant spelt in
  another time zone) and byte-level ones (truncation, invalid UTF-8, an empty file, a dropped
  or repeated line). Every choice goes through a ``choose(n) -> int`` callback, so hypothesis
  can draw (and shrink) them and the bench can use a ``random.Random``.
- :class:`Case` records what was done and which records it touched (their strings), so the
  checks know which records must load exactly as from the intact seed.
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

import pyarrow as pa
import pyarrow.parquet as pq

from sessionlens.loaders._normalize import parse_timestamp

from .fuzz_corpus import Seed

__all__ = ["NEUTRAL", "Case", "mutate"]

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
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError):
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
