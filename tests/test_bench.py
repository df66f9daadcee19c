"""`zoo-jax bench` at the size accelerators are built for: the reference input, the device's
peak, the plain Flax ResNet-50 beside ours, and the compute dtype."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo_jax import bench, cli
from zoo_jax.errors import ZooError
from zoo_jax.train.run import RunConfig, build_learner


def test_device_peaks_are_the_data_sheets_dense_figures():
    assert bench.device_peak("NVIDIA H100 80GB HBM3", "bfloat16") == pytest.approx(989.4e12)
    assert bench.device_peak("NVIDIA H100 80GB HBM3", "float32") == pytest.approx(494.7e12)
    assert bench.device_peak("NVIDIA H100 PCIe", "bfloat16") == pytest.approx(756e12)
    assert bench.device_peak("TPU v5 lite", "bfloat16") == pytest.approx(197e12)
    assert bench.device_peak("TPU v5 lite", "float32") is None  # no float32 matrix unit
    assert bench.device_peak("cpu", "float32") is None


def test_resnet50_at_its_reference_size(capsys):
    argv = ["bench", "--model", "resnet50", "--input", "reference", "--batch-size", "1",
            "--steps", "3"]  # fmt: skip
    assert cli.main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["input_shape"] == [224, 224, 3] and r["params"] == 25_557_032  # torchvision's
    # XLA's count of the forward pass: 4.1 G multiply-adds (He et al. 2016 give 3.8 G
    # for v1; v1.5 moves the stride to the 3×3 convolutions) plus the element-wise work
    assert 7.8e9 < r["forward_flops_per_image"] < 8.4e9
    assert r["flops_per_image"] == r["train_flops_per_image"] > 2.5 * r["forward_flops_per_image"]
    assert r["images_per_s"] > 0 and r["train_step_compiles"] == 1
    assert r["peak_fraction"] is None and r["peak_note"] == "no dense float32 peak known for 'cpu'"


def test_the_flax_peer_is_the_same_resnet50():
    info, time_steps = bench.flax_resnet50_step(2, (32, 32, 3))
    assert info["params"] == 25_557_032 and len(time_steps(1)) == 1
    with pytest.raises(ZooError, match="--peer flax is written for resnet50, not mlp"):
        bench.bench("mlp", 8, 3, peer="flax")


def test_a_gpu_step_is_counted_by_lowering_it_for_the_cpu():
    step = jax.jit(lambda a, b: a @ b)
    a, b = np.ones((8, 16), np.float32), np.ones((16, 4), np.float32)
    assert bench.cpu_flops(step, a, b) == bench._flops(step, a, b) == 2 * 8 * 16 * 4


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state():
    overrides = {"features": [4, 4, 4]}
    batch = {"inputs": np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32),
             "labels": np.arange(8, dtype=np.int32)}  # fmt: skip
    learners = {
        d: build_learner(RunConfig("cnn", model_overrides=overrides, dtype=d))
        for d in ("float32", "bfloat16")
    }
    state = learners["float32"].init(jax.random.PRNGKey(0), batch)
    key = jax.random.PRNGKey(1)
    text = str(jax.make_jaxpr(learners["bfloat16"].update)(state, batch, key))
    assert "conv_general_dilated" in text and "bf16[8,26,26,4]" in text
    assert "bf16" not in str(jax.make_jaxpr(learners["float32"].update)(state, batch, key))
    out = {d: jax.jit(learner.update)(state, batch, key) for d, learner in learners.items()}
    new, metrics = out["bfloat16"]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(new.params))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(new.opt_state)
               if jnp.issubdtype(leaf.dtype, jnp.floating))  # fmt: skip
    # one step from the same state: bfloat16's 8 bits of mantissa, not another computation
    assert metrics["loss"] == pytest.approx(float(out["float32"][1]["loss"]), rel=2e-2)
