"""Every notebook runs top to bottom (nbclient, a real Jupyter kernel) with the CI budget.

The notebooks read ``os.environ.get("CI")`` and then train for a few dozen steps only, so
these tests check that the tutorials run and produce their figures, not the numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
TUTORIALS = [p for p in ALL if p.name[:2].isdigit()]


def test_the_tutorials_are_numbered_and_complete():
    numbers = [int(p.name[:2]) for p in TUTORIALS]
    assert numbers == list(range(1, 7)), [p.name for p in TUTORIALS]
    assert (NOTEBOOKS / "dashboard.ipynb").exists()


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: clear the outputs before committing"
            )


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    # The kernel inherits this environment: the CI budget and one thread per kernel.
    monkeypatch.setenv("CI", os.environ.get("CI") or "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if path in TUTORIALS:
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        assert images, f"{path.name} produced no figure"
    else:  # the dashboard notebook displays the widget
        views = [
            o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        assert views, "the dashboard notebook displayed no widget"
