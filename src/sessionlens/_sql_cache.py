"""Compiled-SQL cache: skip Ibis's compile when the expression is the one compiled last run.

Compiling the analysis frame (a 50 KB query) costs Ibis and sqlglot about a second, the
largest fixed cost of an incremental ``analyze_sessions`` that recomputes a handful of
sessions. The SQL text is a pure function of the expression graph and of the compiler (Ibis
and sqlglot versions, Ibis options), so this module keys a cached text on exactly those:

- every node of the graph, in breadth-first order, as its class and all its arguments, child
  nodes by position: equal keys mean structurally equal expressions, hence the same SQL;
- leaf values are rendered only for a whitelist of types whose ``repr`` is exact (strings,
  numbers, dates, data types, schemas, ...), and nodes and values only of classes Ibis
  defines at module level; anything else (a Python UDF, whose node class is made at run
  time, an unknown object) makes the expression *unkeyable* and it is simply compiled;
- a memtable is keyed on its schema and a hash of its contents (flows, price links), and its
  random name (one Ibis generated) is kept out of the key: the cached text holds a
  placeholder that is replaced by this run's name (the name is the only thing the SQL takes
  from it, and it is stored only if the name appears nowhere else in the text);
- a database table on its name, namespace and schema (the sliced and the whole tables of an
  incremental run are different names, so different keys).

One entry per *slot* (the staging table it fills) lives in ``settings`` under
``sql_cache:<slot>``, so the cache never grows; a miss compiles and replaces the entry.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import hashlib
import json
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import duckdb
import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot
from ibis.backends import BaseBackend
from ibis.common.graph import Graph, Node
from ibis.common.grounds import Concrete
from ibis.expr.datashape import DataShape

__all__ = ["cache_key", "compile_cached"]

#: Bump when the key or the stored entry changes shape.
_FORMAT = "1"
_PREFIX = "sql_cache:"
#: Stands for the i-th memtable's name in a stored text.
_PLACEHOLDER = "__sessionlens_memtable_{}__"
#: The names Ibis gives memtables (``ibis.util.gen_name``: a random UUID in base 32).
_GENERATED = re.compile(r"ibis_[a-z_]+_memtable_[a-z2-7]{26}")
_EXACT = (str, bool, int, float, bytes, decimal.Decimal, uuid.UUID, type(None))
_TIMES = (_dt.datetime, _dt.date, _dt.time, _dt.timedelta)


class _Unkeyable(Exception):
    """An argument whose rendering this module cannot prove exact."""


def _table_digest(data: Any, schema: Any) -> str:
    table = data.to_pyarrow(schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


_CLASSES: dict[type, str] = {}


def _ibis_class(cls: type) -> str:
    """``module.qualname`` of a class Ibis defines at module level, else :class:`_Unkeyable`.

    Such a class is fixed by the Ibis version; one made at run time (a Python UDF's node,
    which carries its function and name as class attributes, not arguments) is not.
    """
    known = _CLASSES.get(cls)
    if known is not None:
        return known
    module = sys.modules.get(cls.__module__)
    target: Any = module
    for part in cls.__qualname__.split("."):
        target = getattr(target, part, None)
    if not cls.__module__.startswith("ibis.") or target is not cls:
        raise _Unkeyable(f"{cls.__module__}.{cls.__qualname__}")
    _CLASSES[cls] = f"{cls.__module__}.{cls.__qualname__}"
    return _CLASSES[cls]


def _render(value: Any, index: Mapping[Node, int]) -> str:
    """An exact text for one argument (child nodes by their position in ``index``)."""
    if isinstance(value, Node):
        return f"@{index[value]}"
    if isinstance(value, enum.Enum):
        return f"E{_ibis_class(type(value))}.{value.name}"
    if isinstance(value, _EXACT):
        # The type tag keeps 1, 1.0, True and "1" apart.
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, _TIMES):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, DataShape):  # a stateless singleton (scalar, columnar)
        return f"D{_ibis_class(type(value))}"
    if isinstance(value, BaseBackend):
        # The compiled text does not depend on the backend instance, only on the compiler.
        return f"B{type(value).__module__}.{type(value).__qualname__}"
    if isinstance(value, Concrete):  # data types, schemas, other frozen Ibis values
        args = ",".join(_render(a, index) for a in value.__args__)
        return f"C{_ibis_class(type(value))}({args})"
    if isinstance(value, Mapping):  # frozen dicts: their order is the order compiled
        return (
            "{"
            + ",".join(f"{_render(k, index)}:{_render(v, index)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, tuple | list):
        return "(" + ",".join(_render(v, index) for v in value) + ")"
    if isinstance(value, frozenset):
        return "S(" + ",".join(sorted(_render(v, index) for v in value)) + ")"
    raise _Unkeyable(type(value).__qualname__)


def cache_key(expr: ir.Expr) -> tuple[str, list[str]] | None:
    """The cache key of ``expr`` and its memtables' names in key order, or ``None``.

    ``None`` when an argument cannot be rendered exactly (the expression is then compiled
    every time).

    Examples
    --------
    >>> import ibis
    >>> t = ibis.table({"a": "int64"}, name="t")
    >>> k1, _ = cache_key(t.filter(t.a > 1))
    >>> k2, _ = cache_key(t.filter(t.a > 1))
    >>> k3, _ = cache_key(t.filter(t.a > 2))
    >>> k1 == k2, k1 == k3
    (True, False)
    """
    graph = Graph.from_bfs(expr.op())
    index = {node: i for i, node in enumerate(graph)}
    digest = hashlib.sha256()
    names: list[str] = []
    for node in graph:
        try:
            head = _ibis_class(type(node))
            if isinstance(node, ops.InMemoryTable):
                # A generated name is left out (a placeholder stands for it); one a caller
                # chose is part of the key, like any other argument.
                generated = _GENERATED.fullmatch(node.name) is not None
                name = f"#{len(names)}" if generated else _render(node.name, index)
                body = f"{name},{_render(node.schema, index)},"
                body += _table_digest(node.data, node.schema)
                if generated:
                    names.append(node.name)
            else:
                body = ",".join(_render(a, index) for a in node.__args__)
        except _Unkeyable:
            return None
        digest.update(f"{head}({body})\n".encode())
    return digest.hexdigest(), names


def _compiler_identity(db: BaseBackend) -> str:
    compiler = type(getattr(db, "compiler", None))
    return json.dumps(
        [
            _FORMAT,
            ibis.__version__,
            sqlglot.__version__,
            f"{compiler.__module__}.{compiler.__qualname__}",
            repr(ibis.options),
        ]
    )


def compile_cached(
    con: duckdb.DuckDBPyConnection, db: BaseBackend, expr: ir.Expr, *, slot: str
) -> str:
    """``db.compile(expr)``, from the ``settings`` entry ``slot`` when its key matches.

    The entry is written in the caller's transaction, if any. Returns the same text as
    ``db.compile(expr)`` for every expression (memtable names included).

    Examples
    --------
    >>> import ibis
    >>> from sessionlens import connect
    >>> from sessionlens.analysis._ibis import backend
    >>> con = connect()
    >>> db = backend(con)
    >>> t = db.table("traces")
    >>> expr = t.filter(t.name == "x").select("trace_id")
    >>> compile_cached(con, db, expr, slot="doc") == db.compile(expr)  # a miss, stored
    True
    >>> compile_cached(con, db, expr, slot="doc") == db.compile(expr)  # a hit
    True
    """
    keyed = cache_key(expr)
    if keyed is None:
        return db.compile(expr)
    graph_key, names = keyed
    key = hashlib.sha256(f"{_compiler_identity(db)}\n{graph_key}".encode()).hexdigest()
    setting = _PREFIX + slot
    row = con.execute("SELECT value FROM settings WHERE key = ?", [setting]).fetchone()
    if row is not None:
        try:
            entry = json.loads(row[0])
        except (TypeError, ValueError):  # not ours, or damaged: compile and overwrite
            entry = None
        sql = entry.get("sql") if isinstance(entry, dict) else None
        if isinstance(entry, dict) and entry.get("key") == key and isinstance(sql, str):
            for i, name in enumerate(names):
                sql = sql.replace(_PLACEHOLDER.format(i), name)
            return sql
    sql = db.compile(expr)
    template = sql
    for i, name in enumerate(names):
        # Store only when the swap back is exact: each name appears only where the memtable
        # is read (``"name" AS "t3"``), and no placeholder text is already in the query.
        if _PLACEHOLDER.format(i) in sql or sql.count(name) != sql.count(f'"{name}" AS "'):
            return sql
        template = template.replace(name, _PLACEHOLDER.format(i))
    con.execute(
        "INSERT OR REPLACE INTO settings VALUES (?, ?)",
        [setting, json.dumps({"key": key, "sql": template})],
    )
    return sql
