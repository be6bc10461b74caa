"""Every notebook in ``notebooks/`` runs top to bottom on the bundled sample.

The notebooks are jupytext percent ``.py`` files; each is converted to a notebook in memory
and executed by nbclient in a fresh ``python3`` kernel, in a temporary working directory.
A last cell appended here reports the kernel's interpreter, to prove the kernel is the
Python running the tests (the venv's), not a system one found on PATH.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.py"))
#: Each notebook must run in this many seconds on the sample (kernel start included).
BUDGET_SECONDS = 60


def test_there_are_four_notebooks():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_overview",
        "02_tool_sequences",
        "03_costs",
        "04_bring_your_own_export",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    # jupyter_core warns (DeprecationWarning) about its old directory layout unless asked
    # for the platformdirs one; pytest turns warnings into errors.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    # The kernel imports this checkout's sessionlens, whether installed or on PYTHONPATH.
    src = str(Path(__file__).resolve().parents[1] / "src")
    paths = [src, os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    nb = jupytext.read(path)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=BUDGET_SECONDS,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - started
    assert elapsed < BUDGET_SECONDS
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error" or (out.output_type == "stream" and out.name == "stderr")
    ]
    assert errors == []
    printed = nb.cells[-1].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()
    images = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "image/svg+xml" in out.get("data", {})
    ]
    assert images, "every notebook shows at least one chart"
