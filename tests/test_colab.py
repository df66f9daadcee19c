"""The Colab notebooks run top to bottom (quick mode, 4 forced CPU devices)."""

import os
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

COLAB = Path(__file__).parents[1] / "colab"


def _execute(name: str, monkeypatch) -> str:
    """Run notebook `name` in quick mode; its code cells' printed output."""
    monkeypatch.setenv("ZOO_JAX_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(COLAB / name, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(COLAB)}}
    ).execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _install_cell(name: str) -> str:
    nb = nbformat.read(COLAB / name, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


def test_every_notebook_installs_from_its_checkout_or_an_uploaded_wheel(tmp_path, monkeypatch):
    """The first cell needs no setting: outside a checkout it installs the wheel uploaded to
    the runtime, with the runtime's jax and jaxlib pinned; with none, it says what to do."""
    import importlib.util
    import subprocess

    import jax
    import jaxlib

    cells = {name.name: _install_cell(name.name) for name in COLAB.glob("*.ipynb")}
    assert len(cells) >= 7 and len(set(cells.values())) == 1
    cell = next(iter(cells.values()))
    calls = []
    monkeypatch.chdir(tmp_path)  # no pyproject.toml above it: not a checkout
    monkeypatch.delenv("ZOO_JAX_SOURCE", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # not installed yet
    monkeypatch.setattr(subprocess, "check_call", lambda cmd: calls.append(cmd))
    with pytest.raises(SystemExit, match="upload the wheel that `python -m build`"):
        exec(cell, {})
    (tmp_path / "zoo_jax-0.1.0-py3-none-any.whl").touch()
    exec(cell, {})
    (command,) = calls
    assert command[-1] == "zoo_jax-0.1.0-py3-none-any.whl[viz]" and "-c" in command
    pins = Path(command[command.index("-c") + 1]).read_text()
    assert pins == f"jax=={jax.__version__}\njaxlib=={jaxlib.__version__}\n"


def test_quickstart_notebook_executes(monkeypatch):
    outputs = _execute("quickstart.ipynb", monkeypatch)
    assert "CpuDevice(id=3)" in outputs  # the kernel saw the 4 forced devices
    assert "test accuracy" in outputs and "on 4 cpu device(s)" in outputs
    assert os.environ["ZOO_JAX_QUICK"] == "1"


def test_reservoir_and_kernels_notebook_executes(monkeypatch):
    outputs = _execute("reservoir_and_kernels.ipynb", monkeypatch)
    nrmse = float(outputs.split("one-step NRMSE on 200 test steps: ")[1].split()[0])
    assert 0 < nrmse < 0.2
    assert "quantization error" in outputs and "test accuracy" in outputs


def test_energy_notebook_executes(monkeypatch):
    outputs = _execute("energy.ipynb", monkeypatch)
    assert "storkey: wrong bits after recall" in outputs
    hebb = outputs.split("hebb wrong bits by load: ")[1].splitlines()[0]
    assert hebb.startswith("{0.05: 0.0")  # a load of 0.05 is recalled without errors
    ll = float(outputs.split("test log-likelihood ≈ ")[1].split()[0])
    assert -400 < ll < 0


def test_adversarial_notebook_executes(monkeypatch):
    outputs = _execute("adversarial.ipynb", monkeypatch)
    assert "epoch 1: D loss" in outputs
    score = float(outputs.split("classifier score of the samples: ")[1].split()[0])
    assert 1 <= score <= 10
    assert "class histogram:" in outputs
    match = float(outputs.split("class match on 20 unseen sentences: ")[1].split()[0])
    assert 0 <= match <= 1  # the text-to-image cell drew and judged them


def test_autoencoders_notebook_executes(monkeypatch):
    outputs = _execute("autoencoders.ipynb", monkeypatch)
    assert "epoch 2: test -ELBO" in outputs
    k1 = float(outputs.split("k = 1: ")[1].split()[0])
    k50 = float(outputs.split("k = 50: ")[1].split()[0])
    assert 0 < k50 < k1 < 600  # the bound tightens with k
    assert "2-D VAE test -ELBO" in outputs


def test_memory_notebook_executes(monkeypatch):
    outputs = _execute("memory.ipynb", monkeypatch)
    assert "epoch 1: test bit errors per sequence" in outputs
    assert "length 80:" in outputs and "task 1 test accuracy" in outputs
    assert outputs.count("| answer:") == 2
    capsnet = float(outputs.split("CapsNet test accuracy ")[1].split()[0])
    assert 0 <= capsnet <= 1  # routing trained, then its reconstructions drawn


def test_recurrent_and_attention_notebook_executes(monkeypatch):
    outputs = _execute("recurrent_and_attention.ipynb", monkeypatch)
    assert "test exact match" in outputs and "test exact captions (greedy)" in outputs
    assert outputs.count("heldout: ") == 4 and outputs.count("test: ") == 4


def test_feedforward_and_seed_tables_notebook_executes(monkeypatch):
    outputs = _execute("feedforward_and_seed_tables.ipynb", monkeypatch)
    assert "on 4 cpu device(s)" in outputs and "test digits wrong" in outputs
    assert outputs.count(": test accuracy ") == 4  # the four rows of the seed's tables


def test_convolutional_notebook_executes(monkeypatch):
    outputs = _execute("convolutional.ipynb", monkeypatch)
    assert "on 4 cpu device(s)" in outputs
    assert "alexnet      61,100,840  reference   61,100,840  equal" in outputs
    assert "DIFFERENT" not in outputs
