"""Session scoping shared by the derived-table builders (``tool_calls``,
``conversation_turns``): clear the rows of the sessions being rebuilt and return the SQL filter
and bound parameters that restrict the rebuild to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import duckdb

_FILTER = "AND t.session_id IN (SELECT unnest($session_ids::VARCHAR[]))"


def clear_sessions(
    con: duckdb.DuckDBPyConnection,
    table: Literal["tool_calls", "conversation_turns"],
    session_ids: Sequence[str] | None,
) -> tuple[str, dict[str, Any]]:
    """Delete ``table``'s rows of ``session_ids`` (all rows when None).

    Returns the ``AND ...`` filter on ``t.session_id`` to add to the rebuild query and its
    parameters (empty filter when rebuilding everything).

    >>> from sessionlens import connect
    >>> clear_sessions(connect(), "tool_calls", ["s1"])[1]
    {'session_ids': ['s1']}
    """
    if session_ids is None:
        con.execute(f"DELETE FROM {table}")
        return "", {}
    params: dict[str, Any] = {"session_ids": list(session_ids)}
    con.execute(
        f"DELETE FROM {table} WHERE session_id IN (SELECT unnest($session_ids::VARCHAR[]))",
        params,
    )
    return _FILTER, params
