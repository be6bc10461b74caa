from __future__ import annotations

import json
import math
import re
from pathlib import Path

import duckdb
import phonenumbers
import pytest

import sessionlens as sl
from sessionlens.cli import main
from sessionlens.errors import ConfigError, NotAnalyzedError
from sessionlens.redact import DEFAULT_SALT, Redactor, token
from sessionlens.report import REPORT_TABLES, _redact_svg


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Seeded generator data loaded and analysed once: (dataset, connection, export dir)."""
    ds = sl.datasets.generate(80, seed=5)
    export = tmp_path_factory.mktemp("export")
    sl.datasets.write_langfuse_blob_export(ds, export)
    con = sl.connect()
    sl.load(con, export)
    sl.analyze_sessions(con)
    yield ds, con, export
    con.close()


def phone_spellings(ds) -> set[str]:
    """Every planted phone as the caller said it, E.164, national, international, digits."""
    out: set[str] = set(ds.planted.phone_raw)
    for e164 in set(ds.planted.phone_e164):
        number = phonenumbers.parse(e164)
        national = str(number.national_number)
        a, x, n = national[:3], national[3:6], national[6:]
        out |= {
            e164,
            e164[1:],
            national,
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
            f"{a}-{x}-{n}",
            f"{a}.{x}.{n}",
            f"{a} {x} {n}",
        }
    return out


def planted_names(ds) -> set[str]:
    parents = set(ds.planted.parent_name)
    parts = {p for name in parents for p in name.split()}
    return parents | parts | {c for kids in ds.planted.children for c in kids}


def output_texts(out: Path) -> dict[str, str]:
    """Every file of a report as text; Parquet read back by DuckDB, every value stringified."""
    texts = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            rows = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()
            texts[str(path)] = "\n".join("\t".join(map(str, row)) for row in rows)
        elif path.suffix == ".png":
            continue  # drawn from the same (redacted) SVG; checked through the SVG
        else:
            texts[str(path)] = path.read_text(encoding="utf-8")
    return texts


def leaks(texts: dict[str, str], ds) -> list[tuple[str, str]]:
    found = []
    for path, text in texts.items():
        found += [(path, p) for p in phone_spellings(ds) if p in text]
        found += [
            (path, n) for n in planted_names(ds) if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text)
        ]
    return found


def same_rows(got: list[tuple], expected: list[tuple]) -> bool:
    """Equal row by row; floats to 1e-12 relative (sums in parallel add in any order)."""

    def same(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-12)
        return a == b

    return len(got) == len(expected) and all(
        len(g) == len(e) and all(map(same, g, e)) for g, e in zip(got, expected, strict=True)
    )


def test_parquet_files_equal_the_tables_they_came_from(world, tmp_path):
    _, con, _ = world
    result = sl.export_report(con, tmp_path, redact=False, charts=False)
    for stem, (_, build) in REPORT_TABLES.items():
        back = duckdb.sql(f"SELECT * FROM read_parquet('{tmp_path / stem}.parquet')")
        if stem == "session_analysis":
            expected = con.execute(
                "SELECT * FROM session_analysis ORDER BY start_time, session_id"
            ).fetchall()
            assert back.columns == con.table("session_analysis").columns
        else:
            expected = [tuple(r.values()) for r in build(con).to_pyarrow().to_pylist()]
        assert same_rows(back.fetchall(), expected), stem
        assert result.row_counts[f"{stem}.parquet"] == len(expected) > 0


def test_manifest_counts_versions_and_time_range(world, tmp_path):
    _, con, _ = world
    result = sl.export_report(con, tmp_path, charts=False, salt="team-secret")
    manifest = json.loads(result.manifest_path.read_text())
    for name, entry in manifest["files"].items():
        rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path / name}')").fetchone()
        assert entry["rows"] == rows[0] == result.row_counts[name]
    assert set(manifest["files"]) == {f"{s}.parquet" for s in REPORT_TABLES}
    start, end = con.execute(
        "SELECT min(start_time), max(end_time) FROM session_analysis"
    ).fetchone()
    assert manifest["time_range"] == {"start": start.isoformat(), "end": end.isoformat()}
    assert manifest["sessions"] == con.table("session_analysis").shape[0]
    assert manifest["sessionlens_version"] == sl.__version__
    assert manifest["analyzer_version"] == sl.ANALYZER_VERSION
    assert manifest["schema_version"] == 2 and manifest["duckdb_version"] == duckdb.__version__
    assert manifest["redacted"] is True and manifest["default_salt"] is False
    assert "team-secret" not in result.manifest_path.read_text()
    assert len(manifest["salt_fingerprint"]) == 16


def test_redacted_report_holds_no_phone_or_name_and_unredacted_does(world, tmp_path):
    ds, con, _ = world
    redacted = output_texts(sl.export_report(con, tmp_path / "r", charts=False).out_dir)
    assert len(redacted) == len(REPORT_TABLES) + 2  # Parquet, report.html, manifest.json
    assert leaks(redacted, ds) == []
    plain = output_texts(sl.export_report(con, tmp_path / "p", redact=False, charts=False).out_dir)
    seen = {what for _, what in leaks(plain, ds)}
    analysed = ds.planted[~ds.planted.is_internal]
    assert set(analysed.phone_raw) | set(analysed.phone_e164) <= seen  # the scan can see them
    assert set(analysed.parent_name) <= seen


def test_tokens_are_stable_across_files_and_runs_and_change_with_the_salt(world, tmp_path):
    ds, con, _ = world
    one = sl.export_report(con, tmp_path / "1", charts=False).out_dir
    two = sl.export_report(con, tmp_path / "2", charts=False).out_dir
    salted = sl.export_report(con, tmp_path / "3", charts=False, salt="other").out_dir

    def read(out: Path, stem: str) -> list[tuple]:
        return duckdb.sql(f"SELECT * FROM read_parquet('{out / stem}.parquet')").fetchall()

    assert read(one, "session_analysis") == read(two, "session_analysis")
    details = dict(
        duckdb.sql(
            "SELECT session_id, booking_details_json "
            f"FROM read_parquet('{one / 'session_analysis.parquet'}')"
        ).fetchall()
    )
    analysed = ds.planted[~ds.planted.is_internal & ds.planted.session_id.isin(details)]
    for row in analysed.itertuples():
        got = json.loads(details[row.session_id])
        # The token computed independently from the planted phone is the one in the file.
        assert got["phone_e164"] == got["phone_raw"] == token("phone", row.phone_e164)
    # A name token in a recent session's summary is one of that session's booking details.
    analysis = {r[0]: "\t".join(map(str, r)) for r in read(one, "session_analysis")}
    recent = duckdb.sql(
        "SELECT session_id, caller_intent_summary "
        f"FROM read_parquet('{one / 'recent_sessions.parquet'}')"
    ).fetchall()
    seen_names = 0
    for sid, summary in recent:
        names = set(re.findall(r"name_[0-9a-f]{12}", summary or ""))
        seen_names += len(names)
        assert names <= set(re.findall(r"name_[0-9a-f]{12}", analysis[sid]))
    assert seen_names > 0
    other = read(salted, "session_analysis")
    tokens = set(re.findall(r"(?:phone|name)_[0-9a-f]{12}", repr(read(one, "session_analysis"))))
    other_tokens = set(re.findall(r"(?:phone|name)_[0-9a-f]{12}", repr(other)))
    assert tokens and other_tokens and not tokens & other_tokens
    assert DEFAULT_SALT not in repr(read(one, "session_analysis"))


def test_html_is_offline_and_escapes_hostile_values(world, tmp_path):
    _, con, _ = world
    html = sl.export_report(con, tmp_path / "clean", charts=False).html_path.read_text()
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(script|link|img|iframe)\b", html, re.IGNORECASE)
    hostile = sl.connect()
    rows = con.execute("SELECT * FROM session_analysis ORDER BY start_time LIMIT 3")
    hostile.register("some_rows", rows.to_arrow_table())
    hostile.execute("INSERT INTO session_analysis SELECT * FROM some_rows")
    evil = '<script>alert(1)</script><img src="x" onerror="alert(2)"> & </td></table>'
    hostile.execute("UPDATE session_analysis SET caller_intent_summary = ?", [evil])
    hostile.execute("UPDATE session_analysis SET caller_intent_type = ?", ["<b>bold</b>"])
    page = sl.export_report(hostile, tmp_path / "evil", charts=False).html_path.read_text()
    assert "<script" not in page and "<img" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert page.count("</table>") == page.count("<table>")


def test_report_needs_an_analysis_and_a_directory(con, tmp_path):
    with pytest.raises(NotAnalyzedError, match=r"memory: session_analysis is empty.*analyze"):
        sl.export_report(con, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    afile = tmp_path / "taken"
    afile.write_text("mine")
    with pytest.raises(ConfigError, match=r"out_dir: .*taken exists and is not a directory"):
        sl.export_report(con, afile)


def test_rewriting_replaces_our_files_and_keeps_others(world, tmp_path):
    _, con, _ = world
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "report.html").write_text("stale")
    result = sl.export_report(con, tmp_path, charts=False)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert result.html_path.read_text().startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob(".*.tmp"))
    assert sorted(p.name for p in result.files) == sorted(
        [f"{s}.parquet" for s in REPORT_TABLES] + ["report.html", "manifest.json"]
    )


def test_charts_are_written_redacted_and_inlined(world, tmp_path):
    ds, con, _ = world
    result = sl.export_report(con, tmp_path)
    assert result.charts
    for name in result.charts:
        svg = tmp_path / "charts" / f"{name}.svg"
        png = tmp_path / "charts" / f"{name}.png"
        assert svg.read_text().lstrip().startswith(("<svg", "<?xml"))
        assert png.read_bytes().startswith(b"\x89PNG")
    html = result.html_path.read_text()
    assert html.count("<svg") == len(result.charts)
    assert "http://" not in html and "https://" not in html
    assert leaks(output_texts(tmp_path), ds) == []


def test_cli_report_reads_only_and_prints_where(world, tmp_path, capsys):
    _, _, export = world
    db = tmp_path / "t.duckdb"
    assert main(["load", str(export), "--db", str(db), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "r"), "--no-charts"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "session_analysis is empty" in err and "sessionlens analyze --db" in err
    out_dir = tmp_path / "r"
    args = ["report", "--db", str(db), "--out", str(out_dir), "--no-charts", "--analyze"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"open          {out_dir / 'report.html'}" in out
    manifest = json.loads((out_dir / "manifest.json").read_text())
    rows = manifest["files"]["session_analysis.parquet"]["rows"]
    assert re.search(rf"session_analysis\.parquet\s+{rows} rows", out)
    assert "redacted" in out
    args = ["report", "--db", str(db), "--out", str(out_dir), "--no-charts", "--no-redact"]
    assert main([*args, "--salt", "x"]) == 0
    assert "NOT redacted" in capsys.readouterr().out
    assert json.loads((out_dir / "manifest.json").read_text())["redacted"] is False


def test_cli_demo_writes_the_report(tmp_path, capsys):
    db, out_dir = tmp_path / "demo.duckdb", tmp_path / "demo-report"
    assert main(["demo", "--db", str(db), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert f"report: {out_dir / 'report.html'}" in out
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["redacted"] is True and manifest["sessions"] > 50


@pytest.mark.parametrize("verb", ["report", "demo"])
def test_help(verb, capsys):
    with pytest.raises(SystemExit) as info:
        main([verb, "--help"])
    assert info.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_chart_svg_text_is_redacted_and_clean_svg_kept_byte_for_byte():
    r = Redactor(names=["Sarah Chen"])
    clean = "<svg><g aria-label=\"Title text 'Caller intent mix'\"><text>booking</text></g></svg>"
    assert _redact_svg(clean, r) == clean
    dirty = '<svg><g aria-label="caller 510.555.0143"><text>Sarah Chen &amp; co</text></g></svg>'
    out = _redact_svg(dirty, r)
    assert "510" not in out and "Sarah" not in out
    assert out.count(r.phone_token("+15105550143")) == 1
    assert f"<text>{r.name_token('Sarah Chen')} &amp; co</text>" in out


def test_manifest_flags_the_public_salt_however_it_was_given(world, tmp_path):
    _, con, _ = world
    for i, salt in enumerate((None, DEFAULT_SALT)):
        result = sl.export_report(con, tmp_path / str(i), charts=False, salt=salt)
        assert json.loads(result.manifest_path.read_text())["default_salt"] is True
