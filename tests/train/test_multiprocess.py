"""A multi-process run (`jax.distributed`, two CPU processes of two devices each) equals one
process with four devices, and resumes across the two layouts."""

import json
import os
import socket
import subprocess
import sys

import pytest

from zoo_jax.errors import ZooError
from zoo_jax.train import distributed
from zoo_jax.train.loop import RunConfig, fit

TRAIN = ["train", "--model", "mlp", "--set", "hidden=[32]", "--batch-size", "64",
         "--train-limit", "512", "--test-limit", "256", "--parallel", "sharded"]  # fmt: skip


def _env(devices: int) -> dict:
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]  # fmt: skip
    flags.append(f"--xla_force_host_platform_device_count={devices}")
    return os.environ | {"XLA_FLAGS": " ".join(flags)}


def _cli(argv, devices):
    cmd = [sys.executable, "-m", "zoo_jax.cli", *argv]
    return subprocess.Popen(cmd, env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _finish(process):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _epochs(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_of_two_devices_equal_one_of_four_and_resume_across(tmp_path):
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pair = [
        _cli([*TRAIN, "--epochs", "1", "--run-dir", str(tmp_path / "two"), "--coordinator",
              f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)], 2)
        for i in (0, 1)
    ]  # fmt: skip
    # meanwhile, the same run in this process, on its four devices
    one = RunConfig(model="mlp", model_overrides={"hidden": (32,)}, batch_size=64, epochs=2,
                    train_limit=512, test_limit=256, parallel="sharded")  # fmt: skip
    fit(one, tmp_path / "one", progress=False)
    printed = [_finish(p) for p in pair]
    assert len(printed[0]) == 1 and printed[1] == []  # process 0 alone reports
    # the two-process run, resumed here by one process of four devices
    fit(one, tmp_path / "two", resume=True, progress=False)
    two, four = _epochs(tmp_path / "two"), _epochs(tmp_path / "one")
    assert [e["epoch"] for e in two] == [e["epoch"] for e in four] == [1, 2]
    for a, b in zip(two, four, strict=True):
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            assert a[key] == pytest.approx(b[key], abs=1e-5), (a["epoch"], key)
    assert not (tmp_path / "two" / ".lock").exists()


def test_the_three_values_are_checked_before_joining(monkeypatch):
    for name in distributed.ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ZooError, match="missing: --num-processes, --process-id"):
        distributed.initialize("127.0.0.1:1234")
    with pytest.raises(ZooError, match="HOST:PORT"):
        distributed.initialize("localhost", 2, 0)
    with pytest.raises(ZooError, match=r"--process-id must be in \[0, 2\)"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    with pytest.raises(ZooError, match="missing: --num-processes, --process-id"):
        distributed.initialize()
    assert distributed.initialize("127.0.0.1:1234", 1, 0) == 1  # one process: nothing to join
