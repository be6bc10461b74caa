"""Writers that put a :class:`~sessionlens.datasets.SyntheticDataset` on disk as Langfuse files.

This module owns the on-disk shape of the synthetic data: Langfuse's legacy blob-storage export
(``traces/``, ``observations/``, ``scores/`` as JSONL, JSON, CSV or Parquet, optionally gzipped,
split into time windows that may overlap) and the UI's one-file-per-trace "download" JSON. It is
kept apart from the generator so the generator only decides *what* happened and this module only
decides *how Langfuse would have written it*; the layout follows ``docs/langfuse-formats.md``.

Records arrive as Python values (naive UTC ``datetime`` objects, dicts for metadata and usage);
every format-specific encoding (timestamp strings, JSON text in CSV, Arrow map types) happens
here and nowhere else.
"""

from __future__ import annotations

import csv
import gzip as gzip_module
import io
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from .datasets import SyntheticDataset

__all__ = [
    "OBSERVATION_COLUMNS",
    "SCORE_COLUMNS",
    "TRACE_COLUMNS",
    "write_langfuse_blob_export",
    "write_langfuse_trace_downloads",
]

Format = Literal["jsonl", "json", "csv", "parquet"]


def _cols(names: str) -> tuple[str, ...]:
    return tuple(names.split())


# Column order of Langfuse's legacy export (LEGACY_OBSERVATION_EXPORT_FIELDS and friends).
TRACE_COLUMNS = _cols(
    "id timestamp name environment project_id metadata user_id session_id release version "
    "public bookmarked tags input output created_at updated_at"
)
OBSERVATION_COLUMNS = _cols(
    "id trace_id project_id environment type parent_observation_id start_time end_time name "
    "metadata level status_message version input output provided_model_name "
    "model_parameters usage_details cost_details completion_start_time prompt_name "
    "prompt_version total_cost latency time_to_first_token model_id created_at updated_at "
    "prompt_id tool_calls tool_call_names tool_definitions usage_pricing_tier_name"
)
SCORE_COLUMNS = _cols(
    "id project_id environment timestamp created_at updated_at trace_id observation_id "
    "session_id dataset_run_id name value source comment data_type string_value"
)

_COLUMNS = {"traces": TRACE_COLUMNS, "observations": OBSERVATION_COLUMNS, "scores": SCORE_COLUMNS}
_TIME_KEY = {"traces": "timestamp", "observations": "start_time", "scores": "timestamp"}

_STR = pa.string()
_MAP_STR = pa.map_(pa.string(), pa.string())
_ARROW_TYPES: dict[str, pa.DataType] = {
    "metadata": _MAP_STR,
    "tool_definitions": _MAP_STR,
    "usage_details": pa.map_(pa.string(), pa.int64()),
    "cost_details": pa.map_(pa.string(), pa.float64()),
    "tags": pa.list_(pa.string()),
    "tool_calls": pa.list_(pa.string()),
    "tool_call_names": pa.list_(pa.string()),
    "public": pa.bool_(),
    "bookmarked": pa.bool_(),
    "prompt_version": pa.int64(),
    "total_cost": pa.float64(),
    "latency": pa.float64(),
    "time_to_first_token": pa.float64(),
    "value": pa.float64(),
}


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _iso(value: datetime | None) -> str | None:
    return (
        None
        if value is None
        else value.strftime("%Y-%m-%dT%H:%M:%S.") + (f"{value.microsecond // 1000:03d}Z")
    )


def _export_row(record: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    return {c: _ts(v) if isinstance(v, datetime) else v for c, v in _pick(record, columns)}


def _pick(record: Mapping[str, Any], columns: Sequence[str]) -> Iterable[tuple[str, Any]]:
    return ((c, record.get(c)) for c in columns)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _encode(rows: list[dict[str, Any]], columns: Sequence[str], fmt: Format) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False).encode()
    if fmt == "csv":
        buf = io.StringIO()
        # Langfuse's transformStreamToCsv quotes every field.
        writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_csv_cell(r[c]) for c in columns] for r in rows)
        return buf.getvalue().encode()
    arrays = []
    for c in columns:
        kind = _ARROW_TYPES.get(c, _STR)
        values = [r[c] for r in rows]
        if pa.types.is_map(kind):
            values = [None if v is None else list(v.items()) for v in values]
        elif kind == _STR:
            values = [None if v is None else str(v) for v in values]
        arrays.append(pa.array(values, type=kind))
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), sink)
    return sink.getvalue()


def _late_copy(record: Mapping[str, Any], hops: int) -> dict[str, Any]:
    """The version of ``record`` a later, overlapping export window saw.

    The record was updated in between (a late SDK flush): ``updated_at`` moves forward and, for
    about half of the records (picked by a hash of the id, so the choice is reproducible), a
    harmless metadata value changes, so "newest ``updated_at`` wins" is observable.
    """
    copy = dict(record)
    digest = zlib.crc32(str(record["id"]).encode())
    copy["updated_at"] = record["updated_at"] + timedelta(seconds=hops * (1 + digest % 9))
    if digest % 2 == 0 and isinstance(record.get("metadata"), dict):
        copy["metadata"] = {**record["metadata"], "export_revision": str(hops + 1)}
    return copy


def write_langfuse_blob_export(
    ds: SyntheticDataset,
    out_dir: str | Path,
    *,
    fmt: Format = "jsonl",
    gzip: bool = False,
    window: timedelta | None = None,
    overlap: timedelta = timedelta(0),
) -> list[Path]:
    """Write ``ds`` as a Langfuse legacy blob-storage export.

    Files are ``out_dir/{traces,observations,scores}/<window-max>.<ext>[.gz]``, named like
    Langfuse names them: the window's upper bound as ``YYYY-MM-DDTHH-MM-SS``. Columns follow the
    legacy export (``TRACE_COLUMNS``, ``OBSERVATION_COLUMNS``, ``SCORE_COLUMNS``); timestamps
    are ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC strings, ``input``/``output``/``model_parameters``
    are JSON text, ``metadata`` and the usage/cost details are objects (JSON text in CSV, maps
    in Parquet).

    Parameters
    ----------
    ds : SyntheticDataset
        What to write.
    out_dir : str or Path
        Export root; created if missing.
    fmt : {'jsonl', 'json', 'csv', 'parquet'}
        File format. ``json`` is one array per file.
    gzip : bool
        Gzip the text formats (``.gz`` suffix). Parquet is never gzipped, as in Langfuse.
    window : timedelta, optional
        Split each table into files by record time (trace ``timestamp``, observation
        ``start_time``, score ``timestamp``), windows aligned to midnight of the first record.
        ``None`` writes one file per table.
    overlap : timedelta
        Each window also re-exports the records of the ``overlap`` before its start, as a newer
        version (later ``updated_at``, sometimes a changed metadata value), the way overlapping
        export runs deliver the same record twice.

    Returns
    -------
    list of Path
        The files written, tables in the order traces, observations, scores.

    Raises
    ------
    ValueError
        ``gzip=True`` with ``fmt='parquet'``, an unknown format, or a non-positive window.

    Examples
    --------
    >>> import tempfile
    >>> from sessionlens.datasets import generate
    >>> out = tempfile.mkdtemp()
    >>> files = write_langfuse_blob_export(generate(3, seed=1), out, window=timedelta(days=1))
    >>> sorted({f.parent.name for f in files})
    ['observations', 'scores', 'traces']
    """
    if fmt not in ("jsonl", "json", "csv", "parquet"):
        raise ValueError(f"fmt must be jsonl, json, csv or parquet, not {fmt!r}")
    if gzip and fmt == "parquet":
        raise ValueError("Parquet files are compressed internally; use gzip=False with parquet")
    if window is not None and window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window}")
    root = Path(out_dir)
    tables = {"traces": ds.traces, "observations": ds.observations, "scores": ds.scores}
    times = [r[_TIME_KEY[k]] for k, recs in tables.items() for r in recs]
    if not times:
        return []
    first = min(times).replace(hour=0, minute=0, second=0, microsecond=0)
    span = window if window is not None else max(times) - first + timedelta(microseconds=1)
    count = int((max(times) - first) // span) + 1
    bounds = [first + span * (i + 1) for i in range(count)]
    written: list[Path] = []
    for kind, records in tables.items():
        buckets: list[list[dict[str, Any]]] = [[] for _ in bounds]
        for rec in records:
            t = rec[_TIME_KEY[kind]]
            home = int((t - first) // span)
            buckets[home].append(dict(rec))
            nxt = home + 1
            while overlap > timedelta(0) and nxt < count and bounds[nxt - 1] - overlap <= t:
                buckets[nxt].append(_late_copy(rec, nxt - home))
                nxt += 1
        suffix = f".{fmt}" + (".gz" if gzip else "")
        for bound, bucket in zip(bounds, buckets, strict=True):
            if not bucket:
                continue
            time_key = _TIME_KEY[kind]
            bucket.sort(key=lambda r: (r[time_key], r["id"]))
            rows = [_export_row(r, _COLUMNS[kind]) for r in bucket]
            data = _encode(rows, _COLUMNS[kind], fmt)
            if gzip:
                # mtime=0 and no file name keep the bytes reproducible.
                data = gzip_module.compress(data, mtime=0)
            path = root / kind / (bound.strftime("%Y-%m-%dT%H-%M-%S") + suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
    return written


def _maybe_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _download_observation(o: Mapping[str, Any]) -> dict[str, Any]:
    usage = o["usage_details"] or {}
    cost = o["cost_details"] or {}
    return {
        "id": o["id"],
        "traceId": o["trace_id"],
        "projectId": o["project_id"],
        "type": o["type"],
        "environment": o["environment"],
        "name": o["name"],
        "startTime": _iso(o["start_time"]),
        "endTime": _iso(o["end_time"]),
        "completionStartTime": _iso(o["completion_start_time"]),
        "parentObservationId": o["parent_observation_id"],
        "level": o["level"],
        "statusMessage": o["status_message"],
        "version": o["version"],
        "createdAt": _iso(o["created_at"]),
        "updatedAt": _iso(o["updated_at"]),
        "model": o["provided_model_name"],
        "internalModelId": o["model_id"],
        "modelParameters": _maybe_json(o["model_parameters"]),
        "promptId": o["prompt_id"],
        "promptName": o["prompt_name"],
        "promptVersion": o["prompt_version"],
        "latency": round(o["latency"] * 1000) if o["latency"] is not None else None,
        "timeToFirstToken": o["time_to_first_token"],
        "usageDetails": usage,
        "costDetails": cost,
        "providedCostDetails": {},
        "inputCost": cost.get("input"),
        "outputCost": cost.get("output"),
        "totalCost": o["total_cost"] or 0,
        "inputUsage": sum(v for k, v in usage.items() if k.startswith("input")),
        "outputUsage": sum(v for k, v in usage.items() if k.startswith("output")),
        "totalUsage": usage.get("total", 0),
        "usagePricingTierName": o["usage_pricing_tier_name"],
        "toolCalls": o["tool_calls"],
        "toolCallNames": o["tool_call_names"],
        "toolDefinitions": o["tool_definitions"],
        "metadata": o["metadata"],
        "input": _maybe_json(o["input"]),
        "output": _maybe_json(o["output"]),
    }


def write_langfuse_trace_downloads(ds: SyntheticDataset, out_dir: str | Path) -> list[Path]:
    """Write one Langfuse UI "download trace" JSON file per trace.

    Each file is ``out_dir/<trace_id>.trace.json`` holding ``{"trace": {...}, "observations":
    [...]}`` with camelCase keys and ISO-8601 ``Z`` timestamps (milliseconds), ``input`` and
    ``output`` decoded to JSON values, as the UI writes them.

    Parameters
    ----------
    ds : SyntheticDataset
        What to write.
    out_dir : str or Path
        Target folder; created if missing.

    Returns
    -------
    list of Path
        One file per trace, in trace order.

    Examples
    --------
    >>> import json, tempfile
    >>> from sessionlens.datasets import generate
    >>> files = write_langfuse_trace_downloads(generate(2, seed=3), tempfile.mkdtemp())
    >>> sorted(json.loads(files[0].read_text()))
    ['observations', 'trace']
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    by_trace: dict[str, list[Mapping[str, Any]]] = {}
    for o in ds.observations:
        by_trace.setdefault(o["trace_id"], []).append(o)
    written = []
    for t in ds.traces:
        observations = by_trace.get(t["id"], [])
        ends = [o["end_time"] for o in observations if o["end_time"] is not None]
        trace = {
            "id": t["id"],
            "projectId": t["project_id"],
            "name": t["name"],
            "timestamp": _iso(t["timestamp"]),
            "environment": t["environment"],
            "tags": t["tags"],
            "bookmarked": t["bookmarked"],
            "public": t["public"],
            "release": t["release"],
            "version": t["version"],
            "userId": t["user_id"],
            "sessionId": t["session_id"],
            "input": _maybe_json(t["input"]),
            "output": _maybe_json(t["output"]),
            "metadata": t["metadata"],
            "createdAt": _iso(t["created_at"]),
            "updatedAt": _iso(t["updated_at"]),
            "scores": [],
            "latency": round((max(ends) - t["timestamp"]).total_seconds(), 3) if ends else 0,
        }
        doc = {"trace": trace, "observations": [_download_observation(o) for o in observations]}
        path = root / f"{t['id']}.trace.json"
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
