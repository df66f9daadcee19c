"""Checkpoints: digest verified on restore, a flipped bit detected, SIGKILL mid-save survivable."""

import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest

from zoo_jax.errors import CheckpointError
from zoo_jax.train.checkpoint import Checkpointer, config_difference, state_digest


def _tree(seed=0, size=1000):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(size,)).astype(np.float32), "step": np.int32(seed)}


def test_roundtrip_and_digest(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _tree(1), {"config": {"a": 1}})
    restored, meta = ckpt.restore(jax.tree.map(np.zeros_like, _tree()))
    chex.assert_trees_all_equal(restored, _tree(1))
    assert meta["state_sha256"] == state_digest(_tree(1)) and meta["step"] == 1
    ckpt.close()


def test_flipped_bit_is_detected(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _tree(1), {})
    ckpt.close()
    # Flip one bit in the largest data file orbax wrote for the state.
    files = [p for p in (tmp_path / "1" / "state").rglob("*") if p.is_file()]
    target = max(files, key=lambda p: p.stat().st_size)
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"corrupted|cannot be restored"):
        Checkpointer(tmp_path).restore(jax.tree.map(np.zeros_like, _tree()))


def test_sigkill_during_async_save_leaves_previous_step(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from zoo_jax.train.checkpoint import Checkpointer
        ckpt = Checkpointer({str(tmp_path)!r})
        ckpt.save(1, {{"w": np.ones(1000, np.float32)}}, {{}})
        ckpt.wait()
        big = {{"w": np.random.default_rng(0).normal(size=(64, 1024, 1024)).astype(np.float32)}}
        ckpt.save(2, big, {{}})          # async: returns while the 256 MB write is under way
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    ckpt = Checkpointer(tmp_path)
    assert ckpt.latest_step() == 1
    restored, _ = ckpt.restore({"w": np.zeros(1000, np.float32)})
    np.testing.assert_array_equal(restored["w"], np.ones(1000, np.float32))
    ckpt.close()


def test_config_difference_lists_changed_keys():
    assert config_difference({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == [
        "b: 2 -> 3",
        "c: None -> 4",
    ]


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no finalized checkpoint"):
        Checkpointer(tmp_path).restore({})


def test_a_tree_that_does_not_fit_is_a_short_error(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _tree(1, size=100_000), {})
    other = {"v": np.zeros(100_000, np.float32), "step": np.int32(0)}  # another model's tree
    with pytest.raises(CheckpointError, match=r"step 1 .* cannot be restored") as err:
        ckpt.restore(other)
    message = str(err.value)  # orbax's own message prints both trees, arrays included
    assert "\n" not in message and len(message) < 200 + len(str(ckpt.directory)) + 50
    ckpt.close()
