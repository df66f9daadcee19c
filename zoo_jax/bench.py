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
import math
import statistics
import time
from collections.abc import Callable

import jax
import numpy as np

from zoo_jax.data import datasets
from zoo_jax.errors import UnknownNameError, ZooError
from zoo_jax.lowering import plain_lowering
from zoo_jax.train.run import RunConfig, resolve
from zoo_jax.train.steps import compile_steps

LOWERINGS = ("auto", "plain")


def prepare_bench(
    model: str,
    batch_size: int = 128,
    optimizer: str | None = None,
    overrides: dict | None = None,
    lowering: str = "auto",
) -> tuple[dict, Callable[[int], list[float]]]:
    """Compile the train step of `model` on one batch (random data, or the real first batch
    of a token dataset) and run it once. Returns what is known before timing (params,
    compile seconds, XLA's FLOPs) and `time_steps(n)`, which runs n more steps on the same
    batch and returns each step's seconds, the state carried from call to call. `lowering`:
    "auto" (the engine's), or "plain" (compiled inside `plain_lowering`)."""
    if lowering not in LOWERINGS:
        raise UnknownNameError("lowering", lowering, LOWERINGS)
    run = resolve(
        RunConfig(
            model=model, optimizer=optimizer, batch_size=batch_size, model_overrides=overrides or {}
        )
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
) -> dict:
    """Time the compiled train step of `model` on random data: median ms / step, images/s."""
    if steps < 3:
        raise ZooError("--steps must be >= 3")
    info, time_steps = prepare_bench(model, batch_size, optimizer, overrides, lowering)
    step_s = statistics.median(time_steps(steps))
    train_flops, tokens = info.pop("train_flops"), info.pop("target_tokens")
    return {
        "model": model,
        "optimizer": info["optimizer"],
        "batch_size": batch_size,
        "params": info["params"],
        "steps": steps,
        "step_ms": round(step_s * 1e3, 3),
        "images_per_s": round(batch_size / step_s, 1),  # examples (sequences) per second
        "tokens_per_s": round(tokens / step_s, 1) if tokens else None,
        "compile_s": info["compile_s"],
        "forward_flops_per_image": _per_image(info["forward_flops"], batch_size),
        "train_flops_per_image": _per_image(train_flops, batch_size),
        "train_tflops_per_s": train_flops and round(train_flops / step_s / 1e12, 4),
        "backend": info["backend"],
        "device_kind": info["device_kind"],
        "train_step_compiles": info["traces"]["train"],
    }


def _flops(step, *args) -> float | None:
    """FLOPs of one call of a jitted step, from XLA's cost analysis (None where the backend
    gives none). XLA counts the body of a loop once: for a recurrent model (a `lax.scan`
    over time) that is one time step's work, not the sequence's. CUDA's PJRT plugin has no
    count before compiling (jax 0.11.2 on an H100 gave None). The compiled program's count
    is not used instead: it counts the backend's rewrites (on the CPU, Xception's compiled
    train step counts 2.5 times its HLO's FLOPs). `experiments.report` puts the CPU's count
    of the same step beside GPU timings."""
    cost = step.lower(*args).cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older jax: one dict per program
    return (cost or {}).get("flops") or None


def _per_image(flops: float | None, batch_size: int) -> float | None:
    return flops and round(flops / batch_size)
