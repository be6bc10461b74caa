"""Invariants under generated input (hypothesis): tokens survive the load, re-loads add nothing,
and a timestamp means the same instant whatever its spelling."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionlens as sl
from sessionlens.loaders._normalize import parse_timestamp

counts = st.integers(min_value=0, max_value=10**7)
usage = st.fixed_dictionaries(
    {"input": counts, "output": counts},
    optional={
        "input_cache_read": counts,
        "input_cache_creation": counts,
        "output_reasoning": counts,
        "input_audio": counts,
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usages=st.lists(usage, min_size=1, max_size=12), split=st.integers(0, 12))
def test_langfuse_tokens_are_preserved_and_reloads_add_nothing(usages, split):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "observations"
        folder.mkdir()
        rows = [
            {
                "id": f"o{i}",
                "trace_id": f"t{i % 3}",
                "type": "GENERATION",
                "start_time": f"2026-09-01 08:00:{i:02d}.000000",
                "usage_details": u,
                "provided_model_name": "gpt-4o-mini",
                "updated_at": "2026-09-01 09:00:00.000000",
            }
            for i, u in enumerate(usages)
        ]
        # two overlapping windows: every row once or twice
        (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[: split + 1]))
        (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[split // 2 :]))
        con = sl.connect()
        sl.load(con, folder, strict=True)
        want_in = sum(v for u in usages for k, v in u.items() if k.startswith("input"))
        want_out = sum(v for u in usages for k, v in u.items() if k.startswith("output"))
        want_cache = sum(u.get("input_cache_read", 0) for u in usages)
        got = con.execute(
            "SELECT count(*), sum(input_tokens), sum(output_tokens), "
            "coalesce(sum(cache_read_tokens), 0) FROM observations"
        ).fetchone()
        assert got == (len(usages), want_in, want_out, want_cache)
        again = sl.load(con, folder, strict=True)
        assert again.written == {"traces": 0, "observations": 0, "scores": 0}


@given(
    instant=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
)
def test_every_timestamp_spelling_means_the_same_instant(instant, offset_minutes):
    expected = instant.replace(tzinfo=None)
    local = instant.astimezone(timezone(timedelta(minutes=offset_minutes)))
    spellings = [
        instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        instant.strftime("%Y-%m-%d %H:%M:%S.%f"),
        local.isoformat(),
        instant,
    ]
    for spelling in spellings:
        assert parse_timestamp(spelling) == expected, spelling
    micros = int(instant.timestamp()) * 1_000_000 + instant.microsecond
    assert parse_timestamp(micros) == expected
