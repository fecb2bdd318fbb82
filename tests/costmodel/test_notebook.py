"""examples/cost_queries.ipynb runs top to bottom (code cells executed in order, one namespace;
nbclient is not a dependency, so the cells are exec'd directly)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "cost_queries.ipynb"


def test_notebook_executes(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}", "exec"), ns)
    assert (tmp_path / "cost_front.png").read_bytes().startswith(b"\x89PNG")
    assert len(ns["costs"]) == 2 * 6 * len(ns["FORMATS"]) ** 2
    assert 0 < len(ns["front"]) < len(ns["cands"])
