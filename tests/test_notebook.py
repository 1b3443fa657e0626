"""The quickstart notebook runs in a real Jupyter kernel on a small real run and shows numbers and figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "analyses" / "quickstart.ipynb"


def test_quickstart_notebook_executes(small_judged_run, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SELFBIAS_RUN", str(small_judged_run.path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs for c in code), "every code cell shows something"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    texts = [str(o.get("data", {}).get("text/html", "")) + str(o.get("data", {}).get("text/plain", ""))
             for c in code for o in c.outputs]
    tables = [t for t in texts if "<table" in t]
    assert len(tables) >= 4 and all(re.search(r"\d\.\d", t) for t in tables)  # tables hold numbers
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3
