"""`zoo-jax bench`: time a model's compiled train step, and count its FLOPs.

    info, time_steps = prepare_bench("resnet18", batch_size=32)   # compiled, run once
    seconds = time_steps(20)                                       # 20 more steps, timed
    bench("cnn", 128, steps=50)                                    # the CLI's JSON row

The step is the engine's (`compile_steps`, one device), on one batch of random data (the
real first batch of a token dataset), so it is what `zoo-jax train` runs. `lowering="plain"`
compiles it inside `lowering.plain_lowering()` (XLA's and JAX's own forms of every fast
path), the other side of the A/Bs in `docs/performance.md`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from zoo_jax.data import datasets
from zoo_jax.errors import UnknownNameError, ZooError
from zoo_jax.lowering import plain_lowering
from zoo_jax.train.run import RunConfig, resolve
from zoo_jax.train.steps import compile_steps

LOWERINGS = ("auto", "plain")
INPUTS = ("dataset", "reference")
PEERS = {"flax": "resnet50"}  # peer name -> the one model it is written for
# Dense (no sparsity) peak TFLOP/s of one device per compute dtype, from the vendors' data
# sheets. On these GPUs JAX's default precision computes float32 products as TF32, so
# float32's peak is the TF32 tensor cores'. TPUs have no float32 matrix unit: no entry.
PEAK_TFLOPS = {
    "H100 PCIe": {"bfloat16": 756.0, "float32": 378.0},
    "H100": {"bfloat16": 989.4, "float32": 494.7},  # SXM5 ("NVIDIA H100 80GB HBM3")
    "H200": {"bfloat16": 989.4, "float32": 494.7},
    "A100": {"bfloat16": 312.0, "float32": 156.0},
    "L4": {"bfloat16": 121.0, "float32": 60.0},
    "TPU v4": {"bfloat16": 275.0},
    "TPU v5 lite": {"bfloat16": 197.0},  # v5e
    "TPU v5p": {"bfloat16": 459.0},
    "TPU v6 lite": {"bfloat16": 918.0},  # v6e (Trillium)
}


def device_peak(device_kind: str, dtype: str) -> float | None:
    """The dense peak FLOP/s of a device kind for `dtype` (`PEAK_TFLOPS`, the longest name
    that `device_kind` contains), or None where the table does not know it."""
    for name in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if name in device_kind:
            peak = PEAK_TFLOPS[name].get(dtype)
            return peak and peak * 1e12
    return None


def prepare_bench(
    model: str,
    batch_size: int = 128,
    optimizer: str | None = None,
    overrides: dict | None = None,
    lowering: str = "auto",
    dtype: str = "float32",
    input: str = "dataset",
) -> tuple[dict, Callable[[int], list[float]]]:
    """Compile the train step of `model` on one batch (random data, or the real first batch
    of a token dataset) and run it once. Returns what is known before timing (params,
    compile seconds, XLA's FLOPs) and `time_steps(n)`, which runs n more steps on the same
    batch and returns each step's seconds, the state carried from call to call. `lowering`:
    "auto" (the engine's), or "plain" (compiled inside `plain_lowering`). `dtype`: the
    compute dtype (`RunConfig.dtype`). `input`: "dataset" (the shape training uses: the
    small-image configuration on 28×28 data) or "reference" (the card's own input and
    classes, e.g. 224×224×3 and 1,000 for ResNet-50: the size accelerators are built for)."""
    if lowering not in LOWERINGS:
        raise UnknownNameError("lowering", lowering, LOWERINGS)
    if input not in INPUTS:
        raise UnknownNameError("input", input, INPUTS)
    run = resolve(
        RunConfig(
            model=model,
            optimizer=optimizer,
            batch_size=batch_size,
            model_overrides=overrides or {},
            dtype=dtype,
        )
    )
    if input == "reference":
        if run.card.input_kind != "images":
            raise ZooError(f"--input reference times image models at their size; {model} "
                           f"reads {run.card.input_kind}: leave --input out")  # fmt: skip
        run = dataclasses.replace(
            run,
            model_overrides=dict(overrides or {}),  # not the small-image configuration
            input_shape=tuple(run.card.input_shape),
            num_classes=run.card.num_classes,
        )
    cfg, input_shape, num_classes = run.config, run.input_shape, run.num_classes
    rng = np.random.default_rng(0)
    tokens = datasets.is_tokens(cfg.dataset)
    if datasets.kind(cfg.dataset) != "images":  # made offline: time the real first batch
        x, y = datasets.load(cfg.dataset, "train", input_shape)
        batch = {"inputs": x[:batch_size], "labels": y[:batch_size]}
    else:  # the configuration training uses (the small-image one where a card has it)
        batch = {
            "inputs": rng.random((batch_size, *input_shape), dtype=np.float32),
            "labels": rng.integers(0, num_classes, batch_size).astype(np.int32),
        }
    learner = run.learner()
    # the step is traced and compiled at its first call: that is what `plain` must enclose
    with plain_lowering() if lowering == "plain" else contextlib.nullcontext():
        state = learner.init(jax.random.PRNGKey(0), batch)
        num_params = sum(math.prod(p.shape) for p in jax.tree.leaves(state.params))
        compiled = compile_steps(learner, "none", 1)
        state = compiled.put_state(state)
        labels, batch = batch["labels"], compiled.put_batch(batch)
        t = time.perf_counter()
        state, metrics = compiled.train(state, batch)
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - t
    # XLA's count for the model's programs (a multiply-add is 2 FLOPs), traced again in
    # `plain_lowering`: the CPU's block-diagonal lowering of grouped convolutions
    # multiplies zeros too, which is the lowering's cost, not the model's, and a scan's body
    # counts once (the LSTM's own gradient would count its products after the loop in full).
    # The lowered HLO gives it without a compile. The eval step is the forward pass plus the
    # loss.
    with plain_lowering():
        counted = compile_steps(learner, "none", 1)
        train_flops = _flops(counted.train, state, batch)
        forward_flops = _flops(counted.evaluate, state, batch | {"weight": np.ones(batch_size)})
    carried = {"state": state}

    def time_steps(n: int) -> list[float]:
        state, times = carried["state"], []
        for _ in range(n):
            t = time.perf_counter()
            state, metrics = compiled.train(state, batch)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - t)
        carried["state"] = state
        if compiled.traces["train"] != 1:
            raise ZooError(f"the train step of {model} recompiled while timed")
        return times

    info = {
        "model": model,
        "optimizer": cfg.optimizer,
        "batch_size": batch_size,
        "params": num_params,
        # target tokens per step: a language model's or translation's unit of throughput
        "target_tokens": run.learner_class.predicted_tokens(labels) if tokens else None,
        "compile_s": round(compile_s, 3),
        "train_flops": train_flops,
        "forward_flops": forward_flops,
        "input_shape": tuple(input_shape),
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "traces": compiled.traces,  # live: how often each step was traced (compiled) so far
    }
    return info, time_steps


def bench(
    model: str,
    batch_size: int = 128,
    steps: int = 50,
    optimizer: str | None = None,
    overrides: dict | None = None,
    lowering: str = "auto",
    dtype: str = "float32",
    input: str = "dataset",
    peer: str | None = None,
) -> dict:
    """Time the compiled train step of `model` on random data: median ms / step, images/s,
    XLA's FLOPs per image and the share of the device's dense peak for `dtype` that they
    reach (`peak_fraction`, None where `PEAK_TFLOPS` does not know the device). `peer`
    "flax" times a plain Flax ResNet-50 step (`flax_resnet50_step`) in alternating turns in
    the same process (model resnet50 only): `peer_step_ms`, `vs_peer` (its time ÷ ours)."""
    if steps < 3:
        raise ZooError("--steps must be >= 3")
    if peer is not None and PEERS.get(peer) != model:
        raise ZooError(f"--peer {peer} is written for {PEERS.get(peer, 'no model')}, not {model}")
    info, time_steps = prepare_bench(
        model, batch_size, optimizer, overrides, lowering, dtype, input
    )
    times, peer_times = [], []
    if peer is None:
        times = time_steps(steps)
    else:  # alternating turns: a slow spell of a shared machine falls on both alike
        peer_info, peer_steps = flax_resnet50_step(batch_size, info["input_shape"], dtype)
        per_turn = -(-steps // 4) + 1  # four turns each; a turn's first step is not counted
        for turn in range(4):  # (after the other's turn, caches and threads are cold)
            order = ((time_steps, times), (peer_steps, peer_times))[:: 1 - 2 * (turn % 2)]
            for timed, out in order:
                out += timed(per_turn)[1:]
    step_s = statistics.median(times)
    train_flops, tokens = info.pop("train_flops"), info.pop("target_tokens")
    achieved = train_flops and train_flops / step_s
    peak = device_peak(info["device_kind"], dtype)
    result = {
        "model": model,
        "optimizer": info["optimizer"],
        "batch_size": batch_size,
        "dtype": dtype,
        "input_shape": list(info["input_shape"]),
        "params": info["params"],
        "steps": steps,
        "step_ms": round(step_s * 1e3, 3),
        "images_per_s": round(batch_size / step_s, 1),  # examples (sequences) per second
        "tokens_per_s": round(tokens / step_s, 1) if tokens else None,
        "compile_s": info["compile_s"],
        "forward_flops_per_image": _per_image(info["forward_flops"], batch_size),
        "train_flops_per_image": _per_image(train_flops, batch_size),
        "flops_per_image": _per_image(train_flops, batch_size),  # of a train step
        "train_tflops_per_s": achieved and round(achieved / 1e12, 4),
        "peak_tflops": peak and peak / 1e12,
        "peak_fraction": round(achieved / peak, 4) if achieved and peak else None,
        "backend": info["backend"],
        "device_kind": info["device_kind"],
        "train_step_compiles": info["traces"]["train"],
    }
    if peak is None:
        result["peak_note"] = f"no dense {dtype} peak known for {info['device_kind']!r}"
    if peer is not None:
        peer_s = statistics.median(peer_times)
        result |= {
            "peer": "plain Flax ResNet-50 (the Flax ImageNet example's model and step)",
            "peer_params": peer_info["params"],
            "peer_step_ms": round(peer_s * 1e3, 3),
            "peer_images_per_s": round(batch_size / peer_s, 1),
            "vs_peer": round(peer_s / step_s, 3),
        }
    return result


def flax_resnet50_step(
    batch_size: int, input_shape: tuple[int, ...] = (224, 224, 3), dtype: str = "float32"
) -> tuple[dict, Callable[[int], list[float]]]:
    """ResNet-50 trained the way the Flax ImageNet example writes it (`examples/imagenet`:
    `models.py` and `train.py`): linen `Conv` without bias and `BatchNorm` (momentum 0.9,
    ε 1e-5) in `dtype`, bottleneck blocks with the stride on the 3×3 convolution (v1.5), the
    last BatchNorm of each block initialised to zero, a dense head of 1,000 classes;
    cross-entropy plus weight decay 1e-4 on the kernels; optax SGD with Nesterov momentum
    0.9; one `jax.jit` of the step with the state donated. None of zoo_jax's layers, engine
    or compiler options. Returns its parameter count and `time_steps(n)`, compiled and run
    once already."""
    import flax.linen as nn
    import jax.numpy as jnp
    import optax
    from flax.training import train_state

    class Bottleneck(nn.Module):
        filters: int
        strides: tuple[int, int]
        conv: Callable
        norm: Callable

        @nn.compact
        def __call__(self, x):
            y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
            y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), self.strides)(y)))
            y = self.norm(scale_init=nn.initializers.zeros_init())(
                self.conv(self.filters * 4, (1, 1))(y)
            )
            if x.shape != y.shape:
                x = self.conv(self.filters * 4, (1, 1), self.strides, name="conv_proj")(x)
                x = self.norm(name="norm_proj")(x)
            return nn.relu(x + y)

    class ResNet50(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = True):
            conv = functools.partial(nn.Conv, use_bias=False, dtype=dtype)
            norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                                     momentum=0.9, epsilon=1e-5, dtype=dtype)  # fmt: skip
            x = conv(64, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="conv_init")(x)
            x = nn.relu(norm(name="bn_init")(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            for i, blocks in enumerate((3, 4, 6, 3)):
                for j in range(blocks):
                    strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                    x = Bottleneck(64 * 2**i, strides, conv, norm)(x)
            x = nn.Dense(1000, dtype=dtype)(jnp.mean(x, axis=(1, 2)))
            return jnp.asarray(x, jnp.float32)

    class State(train_state.TrainState):
        batch_stats: Any

    model = ResNet50()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((batch_size, *input_shape), dtype=np.float32), dtype)
    labels = jnp.asarray(rng.integers(0, 1000, batch_size), jnp.int32)
    variables = jax.jit(lambda key: model.init(key, images[:1], train=False))(jax.random.PRNGKey(0))
    tx = optax.sgd(0.1, momentum=0.9, nesterov=True)
    state = State.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                         batch_stats=variables["batch_stats"])  # fmt: skip

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state, images, labels):
        def loss_fn(params):
            logits, new_model_state = state.apply_fn(
                {"params": params, "batch_stats": state.batch_stats}, images,
                mutable=["batch_stats"],
            )  # fmt: skip
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            l2 = sum(jnp.sum(w**2) for w in jax.tree.leaves(params) if w.ndim > 1)
            return loss + 1e-4 * 0.5 * l2, new_model_state

        (loss, new_model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads=grads, batch_stats=new_model_state["batch_stats"])
        return state, loss

    carried = {"state": state}

    def time_steps(n: int) -> list[float]:
        state, times = carried["state"], []
        for _ in range(n):
            t = time.perf_counter()
            state, loss = train_step(state, images, labels)
            jax.block_until_ready(loss)
            times.append(time.perf_counter() - t)
        carried["state"] = state
        return times

    time_steps(1)  # compile
    return {"params": sum(p.size for p in jax.tree.leaves(variables["params"]))}, time_steps


def _flops(step, *args) -> float | None:
    """FLOPs of one call of a jitted step, from XLA's cost analysis (None where the backend
    gives none). XLA counts the body of a loop once: for a recurrent model (a `lax.scan`
    over time) that is one time step's work, not the sequence's. CUDA's PJRT plugin has no
    count before compiling (jax 0.11.2 on an H100 gave None). The compiled program's count
    is not used instead: it counts the backend's rewrites (on the CPU, Xception's compiled
    train step counts 2.5 times its HLO's FLOPs); where the backend gives none, the program
    is lowered for the CPU and counted there (`cpu_flops`)."""
    flops = _counted(step.lower(*args))
    if flops is None and jax.default_backend() != "cpu":
        flops = cpu_flops(step, *args)  # CUDA's plugin counts nothing before compiling
    return flops


def cpu_flops(step, *args) -> float | None:
    """XLA:CPU's count of the same program, lowered for the CPU from any backend: a GPU
    step's FLOPs where the GPU's cost analysis gives none (the count is of the program, so
    it does not depend on where it would run)."""
    return _counted(step.trace(*args).lower(lowering_platforms=("cpu",)))


def _counted(lowered) -> float | None:
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older jax: one dict per program
    return (cost or {}).get("flops") or None


def _per_image(flops: float | None, batch_size: int) -> float | None:
    return flops and round(flops / batch_size)
