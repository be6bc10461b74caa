"""Every sessionlens error crosses a process boundary unchanged (worker pools pickle them)."""

from __future__ import annotations

import pickle
import re

import pytest

from sessionlens import errors

CASES = [
    errors.TraceFormatError("t.jsonl", "line 3", "truncated JSON"),
    errors.UnknownFormatError("x.bin", "binary", ["langfuse", "otlp"]),
    errors.SchemaVersionError("db.duckdb", 9, 4),
    errors.DatabaseLockedError("db.duckdb", "held by pid 12"),
    errors.ConfigError("workers", "must be at least 1"),
    errors.InputNotFoundError("data/*.jsonl"),
    errors.ChartInputError("intent_mix", "no rows"),
    errors.NotAnalyzedError("db.duckdb"),
]


@pytest.mark.parametrize("err", CASES, ids=lambda e: type(e).__name__)
def test_errors_pickle_with_type_message_and_fields(err: errors.SessionlensError) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert vars(back) == vars(err)
    with pytest.raises(type(err), match="^" + re.escape(str(err)) + "$"):
        raise back
