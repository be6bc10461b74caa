"""The ``model_prices`` table: what a million tokens of each model cost, from three sources.

This module owns filling ``model_prices`` and fingerprinting it; the cost analysis
(:mod:`sessionlens.analysis.cost`) only reads it. Sources, lowest priority first:

=============== ======== ====================================================================
source          priority where from
=============== ======== ====================================================================
genai-prices    100      the installed ``genai-prices`` package's bundled data (never fetched)
langfuse        200      Langfuse's ``default-model-prices.json`` (a path or the parsed list)
user            300      your table: rows, a ``{model: prices}`` dict, a DataFrame or a file
=============== ======== ====================================================================

``model_match`` is a regular expression matched case-insensitively against the *whole* model
name; prices are USD per million tokens; ``valid_from <= start_time < valid_to`` (``NULL`` is
open). How rows become prices of an observation is described in ``docs/cost.md``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import yaml

from ..errors import ConfigError
from . import _price_sources as src
from ._ibis import backend, duckdb_connection

__all__ = ["build_model_prices", "ensure_model_prices", "prices_fingerprint", "read_user_prices"]

_USER_ALIASES = {
    "model": "model",
    "model_name": "model",
    "model_match": "model_match",
    "provider": "provider",
    "valid_from": "valid_from",
    "valid_to": "valid_to",
    "input": "input_usd_per_mtok",
    "output": "output_usd_per_mtok",
    "cache_read": "cache_read_usd_per_mtok",
    "input_cache_read": "cache_read_usd_per_mtok",
    "cache_write": "cache_write_usd_per_mtok",
    "input_cache_creation": "cache_write_usd_per_mtok",
    "reasoning": "reasoning_usd_per_mtok",
    "output_reasoning": "reasoning_usd_per_mtok",
    **{c: c for c in src.PRICE_COLUMNS},
}


def _user_records(user: Any) -> tuple[list[Mapping[str, Any]], str]:
    """The user's price table as a list of row mappings, and where it came from."""
    if isinstance(user, (str, Path)):
        return _read_file(Path(user)), str(user)
    if isinstance(user, pd.DataFrame):
        return [{str(k): v for k, v in r.items()} for r in user.to_dict("records")], "DataFrame"
    if isinstance(user, Mapping):
        if isinstance(user.get("prices"), list):
            return list(user["prices"]), "dict"
        if user and all(isinstance(v, Mapping) for v in user.values()):
            # {model name: {input: ..., output: ...}}, the shape of datasets.PRICES_PER_MTOK
            return [{"model": k, **v} for k, v in user.items()], "dict"
        return [user], "dict"
    if isinstance(user, Sequence) and not isinstance(user, (bytes, bytearray)):
        return list(user), "list"
    raise ConfigError(
        "user",
        f"expected rows, a {{model: prices}} dict, a DataFrame or a file path, got "
        f"{type(user).__name__}",
    )


def _read_file(path: Path) -> list[Mapping[str, Any]]:
    if not path.is_file():
        raise ConfigError(
            "user", f"{path}: no such file; pass the path of a CSV, JSON, TOML or YAML price table"
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                return list(csv.DictReader(fh))
        text = path.read_text(encoding="utf-8")
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(
                "user",
                f"{path}: unknown price file type {suffix!r}; use .csv, "
                ".json, .toml, .yaml or .yml",
            )
    except (ValueError, yaml.YAMLError) as exc:  # JSON/TOML decode errors are ValueErrors
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError("user", f"{path}: cannot parse ({exc}); fix the file's syntax") from exc
    records, _ = _user_records(data if data is not None else [])
    return records


def read_user_prices(user: Any) -> list[dict[str, Any]]:
    """Validate a user price table and return its ``model_prices`` rows.

    Each row names ``model`` (an exact model name) or ``model_match`` (a regular expression
    matched case-insensitively against the whole name), optionally ``provider``,
    ``valid_from``/``valid_to`` (ISO dates), and USD prices per million tokens ``input``,
    ``output``, ``cache_read``, ``cache_write``, ``reasoning`` (Langfuse's usage keys
    ``input_cache_read``, ``input_cache_creation``, ``output_reasoning`` are accepted too).

    Examples
    --------
    >>> rows = read_user_prices({"my-model": {"input": 1, "output": 2}})
    >>> rows[0]["model_match"], rows[0]["output_usd_per_mtok"], rows[0]["source"]
    ('my-model', 2.0, 'user')
    """
    records, origin = _user_records(user)
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        where = f"{origin}, row {i}"
        if not isinstance(record, Mapping):
            raise ConfigError(
                "user",
                f"{where}: expected a mapping of column to value, got {type(record).__name__}",
            )
        row: dict[str, Any] = {}
        for key, value in record.items():
            column = _USER_ALIASES.get(str(key).strip().lower())
            if column is None:
                raise ConfigError(
                    "user",
                    f"{where}: unknown column {key!r}; use "
                    + ", ".join(sorted(k for k in _USER_ALIASES if "_usd" not in k)),
                )
            row[column] = None if _blank(value) else value
        rows.append(_user_row(row, where))
    return src.close_intervals(rows)


def _blank(value: Any) -> bool:
    """Empty cells: None, blank text, and the NaN/NaT pandas puts in missing cells."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _user_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    model, pattern = row.get("model"), row.get("model_match")
    if not model and not pattern:
        raise ConfigError(
            "user",
            f"{where}: give 'model' (the exact model name) or 'model_match' (a regular expression)",
        )
    if pattern:
        try:
            re.compile(str(pattern), re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(
                "user",
                f"{where}: model_match {pattern!r} is not a regular "
                f"expression ({exc}); fix or use 'model' for an exact name",
            ) from exc
    prices = {c: src.finite_price(row.get(c), "user", f"{where}, {c}") for c in src.PRICE_COLUMNS}
    if prices["input_usd_per_mtok"] is None and prices["output_usd_per_mtok"] is None:
        raise ConfigError(
            "user", f"{where}: no 'input' or 'output' price; give USD per million tokens"
        )
    valid_from = src.parse_time(row["valid_from"], "user", where) if row.get("valid_from") else None
    valid_to = src.parse_time(row["valid_to"], "user", where) if row.get("valid_to") else None
    if valid_from and valid_to and valid_to <= valid_from:
        raise ConfigError(
            "user",
            f"{where}: valid_to {valid_to} is not after valid_from "
            f"{valid_from}; swap or fix the dates",
        )
    provider = str(row["provider"]).strip().lower() if row.get("provider") else None
    return {
        "provider": src.PROVIDER_IDS.get(provider, provider) if provider else None,
        "model_match": str(pattern) if pattern else src.escape(str(model)),
        "model_name": str(model) if model else None,
        "valid_from": valid_from,
        "valid_to": valid_to,
        **prices,
        "priority": src.PRIORITY["user"],
        "source": "user",
    }


def _langfuse_models(langfuse: Any) -> tuple[Any, str]:
    if isinstance(langfuse, (str, Path)):
        path = Path(langfuse)
        if not path.is_file():
            raise ConfigError(
                "langfuse",
                f"{path}: no such file; pass the path of Langfuse's default-model-prices.json",
            )
        try:
            return json.loads(path.read_text(encoding="utf-8")), str(path)
        except ValueError as exc:
            raise ConfigError("langfuse", f"{path}: not JSON ({exc})") from exc
    return langfuse, "langfuse prices"


def _check_patterns(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Every pattern must compile in DuckDB's RE2, or the cost query would fail later."""
    for i, row in enumerate(rows):
        try:
            con.execute("SELECT regexp_matches('', ?)", ["(?i)^(?:" + row["model_match"] + ")$"])
        except duckdb.Error as exc:
            raise ConfigError(
                row["source"],
                f"row {i}: model_match {row['model_match']!r} is not "
                f"valid RE2 syntax ({exc}); look-arounds and back-references are "
                "not supported",
            ) from exc


def build_model_prices(
    con: Any, *, user: Any = None, langfuse: Any = None, genai_prices: bool = True
) -> int:
    """Replace the content of ``model_prices`` with the chosen sources, in one transaction.

    Parameters
    ----------
    con : DuckDBPyConnection or Ibis DuckDB backend
    user : rows, ``{model: prices}`` dict, DataFrame, or path to CSV/JSON/TOML/YAML, optional
        Your prices (priority 300), see :func:`read_user_prices`.
    langfuse : path or parsed list, optional
        Langfuse's ``default-model-prices.json`` (priority 200).
    genai_prices : bool
        Include the bundled genai-prices data (priority 100).

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    ConfigError
        A user or Langfuse row is malformed (the message names the row and the fix).

    Examples
    --------
    >>> from sessionlens import connect
    >>> con = connect()
    >>> build_model_prices(con, genai_prices=False, user={"my-model": {"input": 1, "output": 2}})
    1
    >>> build_model_prices(con) > 1000
    True
    """
    duck = duckdb_connection(con)
    if duck is None:
        raise ConfigError(
            "con",
            "building prices needs the DuckDB connection of sessionlens."
            "connect(); build on DuckDB, then copy the table to other engines",
        )
    rows: list[dict[str, Any]] = list(src.genai_prices_rows()) if genai_prices else []
    if langfuse is not None:
        models, where = _langfuse_models(langfuse)
        langfuse_rows = src.langfuse_rows(models, where)
        _check_patterns(duck, langfuse_rows)
        rows += langfuse_rows
    if user is not None:
        user_rows = read_user_prices(user)
        _check_patterns(duck, user_rows)
        rows += user_rows
    stage = pa.Table.from_pylist(rows, schema=_SCHEMA)
    duck.begin()
    try:
        duck.register("_model_prices_stage", stage)
        duck.execute("DELETE FROM model_prices")
        duck.execute(
            f"INSERT INTO model_prices ({', '.join(src.COLUMNS)}) "
            f"SELECT {', '.join(src.COLUMNS)} FROM _model_prices_stage"
        )
        duck.unregister("_model_prices_stage")
        duck.commit()
    except BaseException:
        duck.rollback()
        raise
    return len(rows)


_SCHEMA = pa.schema(
    [
        ("provider", pa.string()),
        ("model_match", pa.string()),
        ("model_name", pa.string()),
        ("valid_from", pa.timestamp("us")),
        ("valid_to", pa.timestamp("us")),
        *((c, pa.float64()) for c in src.PRICE_COLUMNS),
        ("priority", pa.int32()),
        ("source", pa.string()),
    ]
)


def ensure_model_prices(con: Any) -> int:
    """Fill ``model_prices`` with the defaults (genai-prices) if it is empty; return its rows.

    Examples
    --------
    >>> from sessionlens import connect
    >>> con = connect()
    >>> ensure_model_prices(con) == ensure_model_prices(con) > 0
    True
    """
    duck = duckdb_connection(con)
    if duck is not None:  # skip compiling Ibis for one count
        row = duck.execute("SELECT count(*) FROM model_prices").fetchone()
        count = int(row[0]) if row else 0
    else:
        count = int(backend(con).table("model_prices").count().execute())
    return count if count else build_model_prices(con)


def prices_fingerprint(con: Any) -> str:
    """A stable hash of the content of ``model_prices`` (row order does not matter).

    The analysis cache stores it, so changed prices mean re-computed costs.

    Examples
    --------
    >>> from sessionlens import connect
    >>> con = connect()
    >>> empty = prices_fingerprint(con)
    >>> _ = build_model_prices(con, genai_prices=False, user={"m": {"input": 1}})
    >>> prices_fingerprint(con) != empty, len(empty)
    (True, 32)
    """
    duck = duckdb_connection(con)
    if duck is not None:
        # Straight from DuckDB: the same Python values as via Arrow, without compiling Ibis
        # (this runs on every analyze call, so its fixed cost counts in incremental runs).
        # The column names are constants of this package.
        tuples = duck.execute(f"SELECT {', '.join(src.COLUMNS)} FROM model_prices").fetchall()
    else:
        table = backend(con).table("model_prices").select(*src.COLUMNS)
        tuples = [tuple(r[c] for c in src.COLUMNS) for r in table.to_pyarrow().to_pylist()]
    digest = hashlib.blake2b(digest_size=16)
    for line in sorted(repr(tuple(r)) for r in tuples):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
