"""The ``otlp-json`` format: OTLP/JSON trace exports, as one document or as JSON lines.

Owns the file shapes and their registration with the loader: an ``ExportTraceServiceRequest``
(``{"resourceSpans": [...]}``) as one ``.json`` document (also a JSON array of them), or one
request per line as the OpenTelemetry Collector's file exporter writes it (``.jsonl``). Spans
are decoded by ``_otlp_decode`` and mapped by ``_otel_attrs`` / ``_otel_spans``; a bad span is
rejected with its position (``/resourceSpans/0/scopeSpans/1/spans/4``, prefixed by ``line N``
in JSON lines) and the rest of the file loads.

Importing this module registers the format (``sessionlens.loaders`` does on import).

Examples
--------
>>> import sessionlens as sl
>>> "otlp-json" in sl.FORMATS
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from . import files
from ._otel_spans import span_items
from ._otlp_decode import Span, iter_request_spans
from .langfuse import Item

__all__ = ["FORMAT", "read_document", "read_rows", "sniff"]

FORMAT = "otlp-json"


def sniff(src: files.SourceFile, head: Any) -> bool:
    """An OTLP request: an object with ``resourceSpans`` (or a list starting with one)."""
    if isinstance(head, list) and head:
        head = head[0]
    return isinstance(head, Mapping) and "resourceSpans" in head


def read_document(src: files.SourceFile, doc: Any) -> Iterator[Item]:
    """Items of a ``.json`` file: one request, or a JSON array of requests."""
    if doc is None:
        return iter(())
    requests = doc if isinstance(doc, list) else [doc]
    prefix = isinstance(doc, list)

    def decoded() -> Iterator[tuple[str, Span | ValueError]]:
        for i, request in enumerate(requests):
            yield from iter_request_spans(request, f"/{i}" if prefix else "")

    return span_items(decoded(), source_format=FORMAT)


def read_rows(src: files.SourceFile, rows: Iterator[tuple[str, Any]]) -> Iterator[Item]:
    """Items of a JSON lines file: one request per line."""

    def decoded() -> Iterator[tuple[str, Span | ValueError]]:
        for where, request in rows:
            if isinstance(request, ValueError):
                yield where, request
                continue
            for pointer, span in iter_request_spans(request):
                if isinstance(span, Span):
                    span.locator = f"{where} {pointer}"
                yield f"{where} {pointer}", span

    return span_items(decoded(), source_format=FORMAT)


files.register(
    files.Reader(
        name=FORMAT,
        description="OTLP/JSON trace export (ExportTraceServiceRequest; Collector file "
        "exporter JSON lines): OTel GenAI, OpenInference, OpenLLMetry, Langfuse attributes",
        sniff=sniff,
        read_document=read_document,
        read_rows=read_rows,
    )
)
