"""Arize Phoenix spans: the ``phoenix-spans`` file format and ``load_spans_dataframe``.

Owns Phoenix's span shapes, which carry OpenInference attributes:

- span JSON (Phoenix's REST API, ``px.Client().get_spans``, the OpenInference docs): ``name``,
  ``context.trace_id`` / ``context.span_id``, ``parent_id``, ``span_kind``, ``start_time`` /
  ``end_time`` as ISO strings, ``status_code``, ``status_message``, ``events``, and
  ``attributes`` either flat (``"llm.model_name"``) or nested (``{"llm": {"model_name": ...}}``,
  lists of messages as lists of objects); as a ``.json`` list (or ``{"data": [...]}`` page) or
  one span per line in ``.jsonl``;
- the spans DataFrame of ``px.Client().get_spans_dataframe()``: the same fields as columns,
  attributes as ``attributes.llm.model_name``-style columns (lists of messages as lists of
  ``{"message.role": ...}`` dicts), indexed by ``context.span_id``.

Both become :class:`~sessionlens.loaders._otlp_decode.Span` values mapped like OTLP spans.
Importing this module registers the file format.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import files
from ._normalize import InternalRules, parse_timestamp
from ._otel_spans import span_items
from ._otlp_decode import MAX_DEPTH, Span, SpanEvent
from .langfuse import Item

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from . import LoadResult

__all__ = ["FORMAT", "load_spans_dataframe", "phoenix_span"]

FORMAT = "phoenix-spans"
_OPENINFERENCE_KINDS = frozenset(
    {"LLM", "EMBEDDING", "CHAIN", "RETRIEVER", "RERANKER", "TOOL", "AGENT", "GUARDRAIL"}
    | {"EVALUATOR", "PROMPT", "UNKNOWN"}
)


def _plain(value: Any) -> Any:
    """numpy/pandas cell values as plain Python (NaN and NaT as ``None``)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    tolist = getattr(value, "tolist", None)
    if tolist is not None and type(value).__module__.startswith("numpy"):
        return _plain(tolist())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _flatten(value: Any, prefix: str, out: dict[str, Any], depth: int = 0) -> None:
    # Nested attribute objects become dotted keys, lists of objects indexed keys, exactly the
    # flat OpenInference names; ``metadata`` stays one object and lists of scalars stay lists.
    if depth > MAX_DEPTH:
        raise ValueError(f"attributes.{prefix}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping) and value and prefix != "metadata":
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out, depth + 1)
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for i, inner in enumerate(value):
            _flatten(inner, f"{prefix}.{i}", out, depth + 1)
    else:
        out[prefix] = value


def _id(value: Any, what: str, required: bool = True) -> str | None:
    if value in (None, ""):
        if required:
            raise ValueError(f"missing {what}")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a string id, got {type(value).__name__}")
    return value


def _time(value: Any, what: str) -> Any:
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def phoenix_span(raw: Any, locator: str) -> Span:
    """One Phoenix span (JSON object or DataFrame row as a dict) as a :class:`Span`."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a span object, got {type(raw).__name__}")
    raw = _plain(raw)
    context = raw.get("context") if isinstance(raw.get("context"), Mapping) else {}
    attributes: dict[str, Any] = {}
    nested = raw.get("attributes")
    if nested is not None and not isinstance(nested, Mapping):
        raise ValueError("attributes: expected an object")
    _flatten(nested or {}, "", attributes)
    for key, value in raw.items():
        if key.startswith("attributes.") and value is not None:
            _flatten(value, key[len("attributes.") :], attributes)
    attributes.pop("", None)
    kind = raw.get("span_kind")
    span_kind = None
    if isinstance(kind, str) and kind.upper() in _OPENINFERENCE_KINDS:
        attributes.setdefault("openinference.span.kind", kind.upper())
    elif isinstance(kind, str) and kind:
        span_kind = kind.upper().removeprefix("SPAN_KIND_")
    status = str(raw.get("status_code") or "UNSET").upper().removeprefix("STATUS_CODE_")
    if status not in ("UNSET", "OK", "ERROR"):
        raise ValueError(f"status_code: unknown value {raw.get('status_code')!r:.40}")
    start = _time(raw.get("start_time"), "start_time")
    if start is None:
        raise ValueError("missing start_time")
    name, message = raw.get("name"), raw.get("status_message")
    for what, text in (("name", name), ("status_message", message)):
        if text is not None and not isinstance(text, str):
            raise ValueError(f"{what}: expected a string, got {type(text).__name__}")
    return Span(
        trace_id=str(_id(raw.get("context.trace_id", context.get("trace_id")), "trace_id")),
        span_id=str(_id(raw.get("context.span_id", context.get("span_id")), "span_id")),
        parent_id=_id(raw.get("parent_id"), "parent_id", required=False),
        name=name or None,
        kind=span_kind,
        start=start,
        end=_time(raw.get("end_time"), "end_time"),
        status_code=status,
        status_message=message or None,
        attributes=attributes,
        events=_events(raw.get("events")),
        locator=locator,
    )


def _events(raw: Any) -> list[SpanEvent]:
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise ValueError("events: expected a list")
    out = []
    for i, event in enumerate(raw):
        if not isinstance(event, Mapping) or not isinstance(event.get("name"), str):
            raise ValueError(f"events[{i}]: expected an object with a name")
        attrs: dict[str, Any] = {}
        _flatten(event.get("attributes") or {}, "", attrs)
        attrs.pop("", None)
        when = _time(event.get("timestamp"), f"events[{i}].timestamp")
        out.append(SpanEvent(event["name"], when, attrs))
    return out


def _decoded(records: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Span | ValueError]]:
    for where, record in records:
        if isinstance(record, ValueError):
            yield where, record
            continue
        try:
            yield where, phoenix_span(record, where)
        except ValueError as exc:
            yield where, exc
        except RecursionError:
            yield where, ValueError("span nested too deeply to decode")


def _is_span(head: Any) -> bool:
    if not isinstance(head, Mapping):
        return False
    context = head.get("context")
    return (isinstance(context, Mapping) and "span_id" in context) or "context.span_id" in head


def sniff(src: files.SourceFile, head: Any) -> bool:
    """Phoenix span JSON: a span, a list of spans, or an API page ``{"data": [spans]}``."""
    if isinstance(head, Mapping) and isinstance(head.get("data"), list):
        head = head["data"]
    if isinstance(head, list):
        head = head[0] if head else None
    return _is_span(head)


def read_document(src: files.SourceFile, doc: Any) -> Iterator[Item]:
    """Items of a ``.json`` file of Phoenix spans."""
    base = ""
    if isinstance(doc, Mapping) and isinstance(doc.get("data"), list):
        doc, base = doc["data"], "/data"
    spans = doc if isinstance(doc, list) else [doc]
    where = (f"{base}/{i}" if isinstance(doc, list) else "/" for i in range(len(spans)))
    return span_items(_decoded(zip(where, spans, strict=False)), source_format=FORMAT)


def read_rows(src: files.SourceFile, rows: Iterator[tuple[str, Any]]) -> Iterator[Item]:
    """Items of a JSON lines file, one Phoenix span per line."""
    return span_items(_decoded(rows), source_format=FORMAT)


def load_spans_dataframe(
    con: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame,
    *,
    source: str = "dataframe",
    strict: bool = False,
    internal: InternalRules | None = None,
) -> LoadResult:
    """Load a Phoenix spans DataFrame (``px.Client().get_spans_dataframe()``).

    Parameters
    ----------
    con : DuckDBPyConnection
        A database from ``sessionlens.connect``.
    frame : pandas.DataFrame
        One span per row: ``context.trace_id``, ``context.span_id`` (or as the index),
        ``parent_id``, ``name``, ``span_kind``, ``start_time``, ``end_time``, ``status_code``,
        ``status_message``, ``events`` and ``attributes.*`` columns.
    source : str
        Name recorded as ``source_file`` (and in ``load_errors``). Re-loading the same rows
        under the same name writes nothing.
    strict : bool
        Raise ``TraceFormatError`` (source, ``row N``, reason) on the first bad span and load
        nothing; default: load the good spans, reject the others into ``load_errors``.
    internal : InternalRules, optional
        Extra rules that flag traces as internal.

    Returns
    -------
    LoadResult

    Examples
    --------
    >>> import pandas as pd, sessionlens as sl
    >>> frame = pd.DataFrame([{"context.trace_id": "t1", "context.span_id": "s1",
    ...     "parent_id": None, "name": "ChatCompletion", "span_kind": "LLM",
    ...     "start_time": pd.Timestamp("2026-01-05T10:00:00Z"),
    ...     "end_time": pd.Timestamp("2026-01-05T10:00:02Z"), "status_code": "OK",
    ...     "attributes.llm.model_name": "gpt-4o-mini",
    ...     "attributes.llm.token_count.prompt": 12.0,
    ...     "attributes.llm.token_count.completion": 3.0}]).set_index("context.span_id")
    >>> con = sl.connect()
    >>> sl.load_spans_dataframe(con, frame).observations
    1
    >>> con.sql("SELECT type, model, input_tokens, total_tokens FROM observations").fetchall()
    [('GENERATION', 'gpt-4o-mini', 12, 15)]
    """
    import pandas as pd

    from ..errors import ConfigError
    from . import FileResult, map_items, write_file
    from . import LoadResult as Result

    if not isinstance(frame, pd.DataFrame):
        raise ConfigError("frame", f"expected a pandas DataFrame, got {type(frame).__name__}")
    if "context.span_id" not in frame.columns and frame.index.name == "context.span_id":
        frame = frame.reset_index()
    records = ((f"row {i + 1}", row) for i, row in enumerate(frame.to_dict("records")))
    items = span_items(_decoded(records), source_format=FORMAT)
    rules = internal or InternalRules()
    rows, rejected = map_items(source, FORMAT, items, rules=rules, strict=strict)
    file_result = FileResult(source, FORMAT, rejected=len(rejected))
    write_file(con, source, rows, rejected, file_result)
    result = Result(files=[file_result], rejected=len(rejected))
    totals = con.execute(
        "SELECT (SELECT count(*) FROM traces), (SELECT count(*) FROM observations), "
        "(SELECT count(*) FROM sessions), (SELECT count(*) FROM tool_calls)"
    ).fetchone()
    assert totals is not None
    result.traces, result.observations, result.sessions, result.tool_calls = map(int, totals)
    return result


files.register(
    files.Reader(
        name=FORMAT,
        description="Arize Phoenix span JSON (context.trace_id/span_id, OpenInference "
        "attributes, flat or nested) as a list, an API page or JSON lines",
        sniff=sniff,
        read_document=read_document,
        read_rows=read_rows,
    )
)
