"""Turn what chart functions are given into the pandas frame a chart embeds.

Chart functions accept an Ibis table (what the analyses return), a DuckDB relation, a pyarrow
table or a pandas DataFrame. This module owns that conversion at the edge, the check that the
columns a chart draws are there (a :class:`~sessionlens.errors.ChartInputError` naming the
missing ones and the analysis that produces them), and the one timestamp rule charts share:
the tables hold naive UTC, so timestamps are marked UTC here and charts use ``utc`` time units;
otherwise a viewer's browser would shift days into its own time zone.

It does not import Altair, so it is cheap to import and test on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from .errors import ChartInputError

__all__ = ["explode_calls", "frame", "utc"]


def frame(table: Any, *, chart: str, columns: Sequence[str], source: str) -> pd.DataFrame:
    """The rows of ``table`` as a pandas frame holding only ``columns``.

    Parameters
    ----------
    table : Ibis table, DuckDB relation, pyarrow Table or pandas DataFrame
    chart : str
        The chart asking, for error messages.
    columns : sequence of str
        The columns the chart draws; any other column is dropped so that list/struct columns
        the chart does not use never reach the Vega data.
    source : str
        The public call that produces a suitable table, quoted in the error's fix.

    Raises
    ------
    ChartInputError
        ``table`` is of another type, or lacks some of ``columns``.

    Examples
    --------
    >>> import pandas as pd
    >>> frame(pd.DataFrame({"a": [1], "b": [2]}), chart="c", columns=["a"], source="x").columns
    Index(['a'], dtype='str')
    >>> frame(pd.DataFrame({"a": [1]}), chart="c", columns=["a", "z"], source="sl.x(con)")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionlens.errors.ChartInputError: c: the table has no column 'z' (it has: a); pass the ...
    """
    if isinstance(table, pd.DataFrame):
        df = table
    elif isinstance(table, ir.Table):
        df = table.select(*[c for c in columns if c in table.columns]).to_pandas()
        _check(list(table.columns), chart, columns, source)
    elif isinstance(table, duckdb.DuckDBPyRelation):
        df = table.df()
    elif isinstance(table, pa.Table):
        df = table.to_pandas()
    else:
        raise ChartInputError(
            chart,
            f"expected an Ibis table, DuckDB relation, pyarrow Table or pandas DataFrame, got "
            f"{type(table).__name__}; pass the output of {source}",
        )
    _check([str(c) for c in df.columns], chart, columns, source)
    return df.loc[:, list(columns)].reset_index(drop=True)


def _check(have: list[str], chart: str, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in have]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise ChartInputError(
            chart,
            f"the table has no column{'s' if len(missing) > 1 else ''} {names} "
            f"(it has: {', '.join(have)}); pass the output of {source}",
        )


def utc(values: pd.Series) -> pd.Series:
    """``values`` as UTC-aware timestamps (naive values are taken as UTC, as stored).

    Examples
    --------
    >>> import pandas as pd
    >>> str(utc(pd.Series(pd.to_datetime(["2026-09-01 08:00"]))).dt.tz)
    'UTC'
    """
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is None:
        return stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC")


def explode_calls(table: Any, *, chart: str, source: str) -> pd.DataFrame:
    """One row per tool call (``session_id``, ``tool``, ``ok``, ``duration_seconds``).

    ``table`` is :func:`sessionlens.tool_sequences` output (a ``calls`` list of structs per
    session) or an already flat table with ``tool`` and ``duration_ms`` columns.

    Examples
    --------
    >>> import pandas as pd
    >>> seqs = pd.DataFrame({"session_id": ["s"], "calls": [[
    ...     {"seq": 1, "tool": "lookup_patient", "ok": True, "duration_ms": 250},
    ...     {"seq": 2, "tool": "book_appointment", "ok": False, "duration_ms": None}]]})
    >>> explode_calls(seqs, chart="c", source="x").to_dict("records")[0]
    {'session_id': 's', 'tool': 'lookup_patient', 'ok': True, 'duration_seconds': 0.25}
    """
    flat = _flat_columns(table)
    if flat:
        extra = [c for c in ("session_id", "ok") if c in flat]
        df = frame(table, chart=chart, columns=["tool", "duration_ms", *extra], source=source)
        for col, default in (("session_id", None), ("ok", True)):
            if col not in df.columns:
                df[col] = default
    else:
        seqs = frame(table, chart=chart, columns=["session_id", "calls"], source=source)
        rows = [
            {
                "session_id": sid,
                "tool": call["tool"],
                "ok": call.get("ok"),
                "duration_ms": call.get("duration_ms"),
            }
            for sid, calls in zip(seqs["session_id"], seqs["calls"], strict=True)
            for call in (calls if calls is not None else [])
        ]
        df = pd.DataFrame(rows, columns=["session_id", "tool", "ok", "duration_ms"])
    seconds = pd.to_numeric(df["duration_ms"], errors="coerce").astype("float64") / 1000.0
    out = df[["session_id", "tool", "ok"]].assign(duration_seconds=seconds)
    # A call without an end time has no duration; it cannot be placed on a latency axis.
    return out[out["duration_seconds"].notna()].reset_index(drop=True)


def _flat_columns(table: Any) -> list[str]:
    cols = [str(c) for c in getattr(table, "columns", [])]
    return cols if "tool" in cols and "calls" not in cols else []
