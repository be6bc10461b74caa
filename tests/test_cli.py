from __future__ import annotations

import json

import pytest

from sessionlens.cli import main

from .conftest import FRAMEWORK_TRACES


def test_load_prints_what_it_loaded(tmp_path, capsys):
    db = tmp_path / "t.duckdb"
    assert main(["load", str(FRAMEWORK_TRACES), "--db", str(db), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "loaded 20 file(s)" in out
    assert "traces              19" in out
    assert "observations       135" in out
    assert "rejected             0" in out


def test_bad_file_in_strict_mode_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "traces" / "w.jsonl"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"id": "t1", "timestamp": "yesterday"}) + "\n")
    code = main(["load", str(bad), "--db", str(tmp_path / "t.duckdb"), "--strict"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "w.jsonl, line 1: timestamp: not a timestamp: 'yesterday'" in err


def test_lenient_load_reports_rejects(tmp_path, capsys):
    bad = tmp_path / "traces" / "w.jsonl"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"id": "t1", "timestamp": "yesterday"}) + "\n")
    assert main(["load", str(bad), "--db", str(tmp_path / "t.duckdb")]) == 0
    assert "see the load_errors table" in capsys.readouterr().out


def test_missing_input_is_an_error_not_a_traceback(tmp_path, capsys):
    assert main(["load", str(tmp_path / "none*.json"), "--db", str(tmp_path / "t.db")]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("verb", [[], ["load"], ["demo"]])
def test_help_on_every_verb(verb, capsys):
    with pytest.raises(SystemExit) as info:
        main([*verb, "--help"])
    assert info.value.code == 0
    assert "usage: sessionlens" in capsys.readouterr().out
