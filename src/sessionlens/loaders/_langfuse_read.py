"""Langfuse export shapes to ``(kind, locator, record)`` items, before any mapping.

Owns how a parsed Langfuse document or row stream is cut into records and which kind each is
(``trace``, ``observation``, ``stub``, ``score`` or ``error``), with its position in the file;
``langfuse`` maps the records and re-exports these readers. Kept apart from the mappers so
each module stays one concern (and under the size the project aims for).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Item", "blob_kind", "iter_api_pages", "iter_blob_rows", "iter_trace_download"]

Item = tuple[str, str, Any]  # (kind, locator, raw record)


def iter_trace_download(doc: Any, pointer: str = "") -> Iterator[Item]:
    """Items of a UI trace download, or of the API's single trace with nested observations."""
    if isinstance(doc, Mapping) and "trace" in doc:
        yield "trace", f"{pointer}/trace", doc["trace"]
        observations = doc.get("observations")
        base = f"{pointer}/observations"
    else:
        yield "trace", pointer or "/", doc
        observations = doc.get("observations") if isinstance(doc, Mapping) else None
        base = f"{pointer}/observations"
    if observations is not None and not isinstance(observations, list):
        yield "error", base, "observations: expected a list"
        return
    for i, obs in enumerate(observations or []):
        if isinstance(obs, str):
            continue  # the trace list endpoint gives ids only
        yield "observation", f"{base}/{i}", obs
    if isinstance(doc, Mapping) and "trace" not in doc:
        for i, score in enumerate(doc.get("scores") or []):
            if isinstance(score, Mapping):
                yield "score", f"{pointer}/scores/{i}", score


def _is_observation(item: Mapping[str, Any]) -> bool:
    return ("traceId" in item or "trace_id" in item) and (
        "startTime" in item or "start_time" in item or "type" in item
    )


def iter_api_pages(doc: Any) -> Iterator[Item]:
    """Items of one API page ``{"data", "meta"}``, or of a list of pages (v1 or v2)."""
    pages = doc if isinstance(doc, list) else [doc]
    for p, page in enumerate(pages):
        prefix = f"/{p}" if isinstance(doc, list) else ""
        if not isinstance(page, Mapping) or not isinstance(page.get("data"), list):
            yield "error", prefix or "/", "expected an API page with a 'data' list"
            continue
        for i, item in enumerate(page["data"]):
            where = f"{prefix}/data/{i}"
            if not isinstance(item, Mapping):
                yield "error", where, f"expected an object, got {type(item).__name__}"
            elif _is_observation(item):
                yield "observation", where, item
                yield "stub", where, item
            elif "value" in item and ("traceId" in item or "dataType" in item):
                yield "score", where, item
            else:
                yield from iter_trace_download(item, where)


def blob_kind(record: Mapping[str, Any], hint: str | None) -> str:
    """Which blob-export table a row belongs to (folder name first, then its columns)."""
    if hint in ("traces", "observations", "observations_v2", "scores"):
        return {"traces": "trace", "scores": "score"}.get(hint, "observation")
    if "trace_id" in record and ("start_time" in record or "type" in record):
        return "observation"
    if "trace_id" in record and "value" in record:
        return "score"
    return "trace"


def iter_blob_rows(rows: Iterator[tuple[str, Any]], hint: str | None) -> Iterator[Item]:
    """Items of a blob-export table, one per row, kind from the folder or the columns."""
    for where, row in rows:
        if isinstance(row, ValueError):
            yield "error", where, str(row)
            continue
        if not isinstance(row, Mapping):
            yield "error", where, f"expected an object, got {type(row).__name__}"
            continue
        kind = blob_kind(row, hint)
        yield kind, where, row
        if kind == "observation":
            yield "stub", where, row
