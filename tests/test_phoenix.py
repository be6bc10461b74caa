"""Phoenix spans (JSON, JSON lines, API pages, DataFrame) load like the same spans over OTLP.

The spans are the OpenInference OTLP export of synthetic sessions, reshaped the way Phoenix
gives them back: span JSON with ``context``/``parent_id``/ISO times (attributes flat or nested),
and ``get_spans_dataframe()``'s columns (``attributes.llm.input_messages`` holding a list of
``{"message.role": ...}`` dicts, indexed by ``context.span_id``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sessionlens as sl
from sessionlens import ConfigError, TraceFormatError, datasets
from sessionlens.loaders._otel_messages import unflatten
from sessionlens.loaders._otlp_decode import Span, iter_request_spans

from .test_parity import BOOKKEEPING, _rows


def _iso(value: Any) -> str:
    return value.isoformat() + "Z"


def _phoenix(span: Span, nested: bool) -> dict[str, Any]:
    attrs = dict(span.attributes)
    return {
        "name": span.name,
        "context": {"trace_id": span.trace_id, "span_id": span.span_id},
        "span_kind": attrs.pop("openinference.span.kind", "UNKNOWN"),
        "parent_id": span.parent_id,
        "start_time": _iso(span.start),
        "end_time": _iso(span.end),
        "status_code": span.status_code,
        "status_message": span.status_message or "",
        "attributes": unflatten(attrs) if nested else attrs,
        "events": [
            {"name": e.name, "timestamp": _iso(e.time), "attributes": e.attributes}
            for e in span.events
        ],
    }


def _flat_dict(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat_dict(value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out[prefix + key] = [_flat_dict(v) for v in value]
        else:
            out[prefix + key] = value
    return out


def _frame_row(span: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in span.items() if k not in ("context", "attributes")}
    row["context.trace_id"] = span["context"]["trace_id"]
    row["context.span_id"] = span["context"]["span_id"]
    row["start_time"] = pd.Timestamp(span["start_time"])
    row["end_time"] = pd.Timestamp(span["end_time"])
    for key, value in _flat_dict(unflatten(span["attributes"])).items():
        row[f"attributes.{key}"] = value
    return row


@pytest.fixture(scope="module")
def spans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("phoenix")
    ds = datasets.generate(8, seed=4)
    [path] = datasets.write_otlp_export(ds, root, conventions="openinference", lines=True)
    otlp = sl.connect()
    sl.load(otlp, path, strict=True)
    decoded = [
        span
        for line in path.read_text().splitlines()
        for _, span in iter_request_spans(json.loads(line))
    ]
    assert all(isinstance(s, Span) for s in decoded)
    return {"otlp": otlp, "spans": decoded, "root": root}


def _same_as_otlp(con: Any, otlp: Any) -> None:
    for table in ("observations", "conversation_turns", "tool_calls"):
        skip = BOOKKEEPING | {"source_updated_at"}
        assert _rows(con, table, skip) == _rows(otlp, table, skip), table
    # Phoenix spans carry no resource: environment and version are not known.
    cols = "trace_id, session_id, user_id, name, start_time, end_time, input, output, tags"
    query = f"SELECT {cols} FROM traces ORDER BY trace_id"
    assert con.sql(query).fetchall() == otlp.sql(query).fetchall()


@pytest.mark.parametrize("shape", ["list", "nested", "page", "lines"])
def test_phoenix_span_files(spans: dict[str, Any], tmp_path: Path, shape: str) -> None:
    docs = [_phoenix(s, nested=shape == "nested") for s in spans["spans"]]
    if shape == "lines":
        path = tmp_path / "spans.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    else:
        path = tmp_path / "spans.json"
        body: Any = {"data": docs, "next_cursor": None} if shape == "page" else docs
        path.write_text(json.dumps(body))
    con = sl.connect()
    result = sl.load(con, path, strict=True)
    assert (result.files[0].format, result.rejected) == ("phoenix-spans", 0)
    _same_as_otlp(con, spans["otlp"])
    assert sl.load(con, path).written == {"traces": 0, "observations": 0, "scores": 0}


def test_spans_dataframe(spans: dict[str, Any]) -> None:
    rows = [_frame_row(_phoenix(s, nested=False)) for s in spans["spans"]]
    frame = pd.DataFrame(rows).set_index("context.span_id")
    assert "attributes.llm.input_messages" in frame.columns  # Phoenix's list-of-dicts column
    con = sl.connect()
    result = sl.load_spans_dataframe(con, frame, strict=True)
    assert (result.rejected, result.observations) == (0, len(rows))
    _same_as_otlp(con, spans["otlp"])
    again = sl.load_spans_dataframe(con, frame)
    assert again.written == {"traces": 0, "observations": 0, "scores": 0}


def test_bad_dataframe_rows(spans: dict[str, Any]) -> None:
    rows = [_frame_row(_phoenix(s, nested=False)) for s in spans["spans"][:3]]
    rows[1]["start_time"] = "soon"
    frame = pd.DataFrame(rows)
    con = sl.connect()
    with pytest.raises(TraceFormatError, match="spans-df, row 2: start_time: not a timestamp"):
        sl.load_spans_dataframe(con, frame, source="spans-df", strict=True)
    assert con.sql("SELECT count(*) FROM observations").fetchone() == (0,)
    result = sl.load_spans_dataframe(con, frame, source="spans-df")
    assert (result.observations, result.rejected) == (2, 1)
    with pytest.raises(ConfigError, match="frame: expected a pandas DataFrame, got list"):
        sl.load_spans_dataframe(con, rows)  # type: ignore[arg-type]
