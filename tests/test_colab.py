"""The Colab quickstart runs top to bottom (quick mode, 4 forced CPU devices, pmap)."""

import os
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parents[1] / "colab" / "quickstart.ipynb"


def test_quickstart_notebook_executes(monkeypatch):
    monkeypatch.setenv("ZOO_JAX_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "CpuDevice(id=3)" in outputs  # the kernel saw the 4 forced devices
    assert "test accuracy" in outputs and "on 4 cpu device(s)" in outputs
    assert os.environ["ZOO_JAX_QUICK"] == "1"
