"""Seed files for the loader fuzzer: one small valid file per format and container.

Owns what the fuzzer starts from. Real exports from ``../shared/data`` (Langfuse framework
trace downloads, the OTLP proto example, tau-bench chat transcripts, the planner sample) and
generated ones (``datasets.write_langfuse_blob_export`` in every container,
``write_otlp_export``, Phoenix spans and a span table made from the OTLP spans) are written
under one folder, each at a path whose parent folder tells the blob loader its table. Seeds
are kept small (a few KB to 60 KB) because the fuzzer loads each one thousands of times.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sessionlens import datasets
from sessionlens.loaders._otlp_decode import iter_request_spans

from .conftest import FRAMEWORK_TRACES, ROOT, SHARED

__all__ = ["TABLE_MAPPING", "Seed", "build_corpus"]

#: Mapping of the span-table seed's columns for ``sl.load_table``.
TABLE_MAPPING = {
    "observation_id": "span",
    "trace_id": "trace",
    "parent_observation_id": "parent",
    "name": "op",
    "start_time": "ts",
    "end_time": "te",
    "model": "model",
    "input_tokens": "tokens_in",
    "output_tokens": "tokens_out",
    "tool_name": "tool",
    "session_id": "session",
    "user_id": "user",
}


@dataclass(frozen=True)
class Seed:
    """One valid input the fuzzer mutates.

    ``fmt`` is the format ``load`` detects (``table`` means ``load_table`` with
    ``TABLE_MAPPING``); ``path`` is a file, or a folder for the mixed-format seed; ``target``
    is the file inside it that mutations change.
    """

    name: str
    fmt: str
    path: Path
    target: Path

    @property
    def container(self) -> str:
        name = self.target.name.removesuffix(".gz")
        return "jsonl" if name.endswith(".ndjson") else name.rsplit(".", 1)[-1]


def _write_json(path: Path, doc: Any, *, lines: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if lines:
        path.write_text("".join(json.dumps(d) + "\n" for d in doc), encoding="utf-8")
    else:
        path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _api_pages(root: Path) -> tuple[Path, Path]:
    doc = json.loads((FRAMEWORK_TRACES / "pydantic-ai-tools-2025-06-06.trace.json").read_text())
    trace = {k: v for k, v in doc["trace"].items() if k not in ("observations", "scores")}
    v1 = {
        "data": [{**trace, "observations": doc["observations"], "scores": []}],
        "meta": {"page": 1, "limit": 50, "totalItems": 1, "totalPages": 1},
    }
    rows = []
    for obs in doc["observations"]:
        row = {k: v for k, v in obs.items() if k not in ("model", "internalModelId")}
        row.update(
            providedModelName=obs.get("model"),
            traceName=trace["name"],
            userId=trace.get("userId") or "",
            sessionId=trace.get("sessionId") or "",
            tags=trace.get("tags") or [],
        )
        for key in ("input", "output"):  # v2 gives io as raw strings
            value = obs.get(key)
            row[key] = value if isinstance(value, str) or value is None else json.dumps(value)
        rows.append(row)
    v2 = {"data": rows, "meta": {}}
    return _write_json(root / "api-v1.json", v1), _write_json(root / "api-v2.json", v2)


def _phoenix_span(span: Any) -> dict[str, Any]:
    attrs = dict(span.attributes)
    return {
        "name": span.name,
        "context": {"trace_id": span.trace_id, "span_id": span.span_id},
        "span_kind": attrs.pop("openinference.span.kind", "UNKNOWN"),
        "parent_id": span.parent_id,
        "start_time": span.start.isoformat() + "Z",
        "end_time": span.end.isoformat() + "Z",
        "status_code": span.status_code,
        "status_message": span.status_message or "",
        "attributes": attrs,
        "events": [],
    }


def _span_table(spans: list[Any]) -> pa.Table:
    rows = []
    for s in spans:
        attrs = s.attributes
        rows.append(
            {
                "span": s.span_id,
                "trace": s.trace_id,
                "parent": s.parent_id,
                "op": s.name,
                "ts": s.start.isoformat() + "Z",
                "te": s.end.isoformat() + "Z",
                "model": attrs.get("llm.model_name"),
                "tokens_in": attrs.get("llm.token_count.prompt"),
                "tokens_out": attrs.get("llm.token_count.completion"),
                "tool": attrs.get("tool.name"),
                "session": attrs.get("session.id"),
                "user": attrs.get("user.id"),
            }
        )
    return pa.Table.from_pylist(rows)


def build_corpus(root: Path) -> list[Seed]:
    """Write every seed under ``root`` and return them (one per format and container)."""
    seeds: list[Seed] = []
    root.mkdir(parents=True, exist_ok=True)

    def add(name: str, fmt: str, path: Path, target: Path | None = None) -> None:
        seeds.append(Seed(name, fmt, path, target or path))

    for stem in ("openai-agents-2025-09-30", "claude-agent-2025-12-22"):
        src = FRAMEWORK_TRACES / f"{stem}.trace.json"
        add(f"langfuse-trace/{stem}", "langfuse-trace", Path(shutil.copy(src, root)))
    v1, v2 = _api_pages(root / "api")
    add("langfuse-api-v1", "langfuse-api-v1", v1)
    add("langfuse-api-v2", "langfuse-api-v2", v2)

    ds = datasets.generate(2, seed=11)
    for fmt in ("jsonl", "json", "csv", "parquet"):
        files = datasets.write_langfuse_blob_export(ds, root / f"blob-{fmt}", fmt=fmt)  # type: ignore[arg-type]
        traces, observations = files[0], files[1]
        add(f"langfuse-blob-{fmt}/traces", "langfuse-blob", traces)
        add(f"langfuse-blob-{fmt}/observations", "langfuse-blob", observations)
    [gz] = datasets.write_langfuse_blob_export(ds, root / "blob-gz", gzip=True)[1:2]
    add("langfuse-blob-jsonl-gz/observations", "langfuse-blob", gz)

    small = datasets.generate(1, seed=5)
    otlp_files = datasets.write_otlp_export(small, root / "otlp", batch_size=64)
    add("otlp-json/generated", "otlp-json", otlp_files[0])
    [lines] = datasets.write_otlp_export(
        small, root / "otlp-lines", conventions="openinference", lines=True, batch_size=16
    )
    add("otlp-json/lines", "otlp-json", lines)
    real = Path(shutil.copy(SHARED / "otlp" / "opentelemetry-proto-example-trace.json", root))
    add("otlp-json/proto-example", "otlp-json", real)

    spans = [
        span
        for line in lines.read_text().splitlines()
        for _, span in iter_request_spans(json.loads(line))
    ]
    phoenix = [_phoenix_span(s) for s in spans]
    add(
        "phoenix-spans/json", "phoenix-spans", _write_json(root / "phoenix" / "spans.json", phoenix)
    )
    add(
        "phoenix-spans/jsonl",
        "phoenix-spans",
        _write_json(root / "phoenix" / "spans.jsonl", phoenix, lines=True),
    )

    runs = json.loads((SHARED / "tau-bench" / "gpt-4o-airline.json").read_text())[:3]
    add("chat-transcript/json", "chat-transcript", _write_json(root / "tau" / "runs.json", runs))
    add(
        "chat-transcript/jsonl",
        "chat-transcript",
        _write_json(root / "tau" / "runs.jsonl", runs[:2], lines=True),
    )

    planner = ROOT / "tests" / "data" / "planner"
    (root / "planner").mkdir()
    for name in ("sample.jsonl", "sample.parquet"):
        copy = Path(shutil.copy(planner / name, root / "planner"))
        add(f"planner-log/{name.split('.')[1]}", "planner-log", copy)

    table = _span_table(spans)
    (root / "table").mkdir()
    pq.write_table(table, root / "table" / "spans.parquet")
    add("table/parquet", "table", root / "table" / "spans.parquet")
    table.to_pandas().to_csv(root / "table" / "spans.csv", index=False)
    add("table/csv", "table", root / "table" / "spans.csv")

    mixed = root / "mixed"
    for seed in list(seeds):
        if seed.fmt == "table" or seed.name.startswith(
            ("langfuse-blob-json/", "langfuse-blob-csv")
        ):
            continue  # tables need a mapping; one container per blob table keeps ids unique
        if seed.name.startswith(("langfuse-blob-parquet", "langfuse-blob-jsonl-gz")):
            continue
        rel = Path(seed.name.replace("/", "__")) / seed.target.name
        if seed.fmt == "langfuse-blob":
            rel = Path(seed.name.split("/")[0]) / seed.target.parent.name / seed.target.name
        dest = mixed / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(seed.target, dest)
    targets = sorted(p for p in mixed.rglob("*") if p.is_file())
    for target in targets:
        add(f"mixed/{target.relative_to(mixed)}", "mixed", mixed, target)
    return seeds
