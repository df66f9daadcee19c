"""Pure train / eval steps and the wrappers that compile them for one or many devices.

    steps = compile_steps(learner, parallel="sharded", devices=4)
    state = steps.put_state(state)                 # replicate / place
    state, metrics = steps.train(state, steps.put_batch(batch))
    host_state = steps.get_state(state)            # unreplicated, for checkpoints

* `none`: `jax.jit` on the default device.
* `pmap`: `jax.pmap` over `devices` local devices; the global batch is split along axis 0,
  gradients are averaged with `lax.pmean` inside the learner, the state is replicated.
* `sharded`: `jax.jit` over a 1-D `Mesh(('data',))`; the batch is sharded with
  `NamedSharding(mesh, P('data'))`, the state replicated. XLA inserts the all-reduce. On a
  multi-host slice call `jax.distributed.initialize()` first; the mesh then spans every
  process's devices (`devices=None`) and each process feeds its own slice of the global
  batch (`jax.make_array_from_process_local_data`).

In all three the state argument is donated, and the step key is `fold_in(state.rng,
state.step)`, so the same seed gives the same run wherever it is compiled. Wrapping the
step function with `max_traces` (chex.assert_max_traces) turns any recompile into an error.
On the CPU the jitted steps (`none`, `sharded`) are compiled with
`lowering.compiler_options()`: XLA's own convolutions instead of YNNPACK's, the faster ones
here (`docs/performance.md` has the measurements). `jax.pmap` takes no compiler options;
its CPU steps keep XLA's defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import chex
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from zoo_jax import lowering
from zoo_jax.errors import ZooError
from zoo_jax.learners.base import Learner
from zoo_jax.train.state import TrainState

PARALLEL = ("none", "pmap", "sharded")


def train_step(learner: Learner, state: TrainState, batch, *, axis_name=None):
    """One update. Pure: the key comes from the state, nothing from the host."""
    rng = jax.random.fold_in(state.rng, state.step)
    return learner.update(state, batch, rng, axis_name=axis_name)


def eval_step(learner: Learner, state: TrainState, batch, *, axis_name=None):
    return learner.evaluate(state, batch, axis_name=axis_name)


@dataclasses.dataclass
class CompiledSteps:
    train: Callable[[Any, Any], tuple[Any, dict]]
    evaluate: Callable[[Any, Any], dict]
    finalize: Callable[[Any], Any]  # the learner's `finalize`, on the placed state
    put_state: Callable[[TrainState], Any]
    put_batch: Callable[[dict], Any]
    get_state: Callable[[Any], TrainState]
    num_devices: int
    parallel: str
    traces: dict[str, int]  # how often each step was traced (compiled): 1 each in a good run


def _check_devices(devices: int | None, parallel: str) -> list:
    available = jax.devices() if parallel == "sharded" else jax.local_devices()
    n = len(available) if devices is None else devices
    if n < 1 or n > len(available):
        raise ZooError(
            f"--devices {n} asked for, but {len(available)} {jax.default_backend()} device(s) "
            "are available"
        )
    return available[:n]


def _first_replica(tree):
    return jax.tree.map(lambda x: x[0], tree)


def compile_steps(
    learner: Learner,
    parallel: str = "none",
    devices: int | None = None,
    max_traces: int | None = None,
) -> CompiledSteps:
    """Compile the learner's train and eval steps for `parallel` over `devices` devices."""
    if parallel not in PARALLEL:
        raise ZooError(f"--parallel must be one of {', '.join(PARALLEL)}, got {parallel!r}")
    if jax.process_count() > 1 and parallel != "sharded":
        raise ZooError(f"a run of {jax.process_count()} processes trains with --parallel "
                       f"sharded (one mesh over every process's devices), not {parallel}")  # fmt: skip
    traces = {"train": 0, "evaluate": 0}
    jit = partial(jax.jit, compiler_options=lowering.compiler_options())

    def guard(fn, name):
        def traced(*args, **kwargs):
            traces[name] += 1  # runs only while JAX traces, i.e. once per compile
            return fn(*args, **kwargs)

        return chex.assert_max_traces(traced, n=max_traces) if max_traces else traced

    if parallel == "none":
        if devices not in (None, 1):
            raise ZooError(f"--devices {devices} needs --parallel pmap or --parallel sharded")
        device = _check_devices(1, parallel)[0]
        train = jit(guard(partial(train_step, learner), "train"), donate_argnums=0)
        evaluate = jit(guard(partial(eval_step, learner), "evaluate"))
        finalize = jit(learner.finalize, donate_argnums=0)
        put = lambda tree: jax.device_put(tree, device)
        return CompiledSteps(
            train, evaluate, finalize, put, put, jax.device_get, 1, parallel, traces
        )

    devs = _check_devices(devices, parallel)
    k = len(devs)

    def check_divisible(batch):
        n = len(next(iter(batch.values())))
        if n % k:
            raise ZooError(f"batch size {n} is not divisible by the {k} devices")

    if parallel == "pmap":
        axis = "devices"
        train = jax.pmap(
            guard(partial(train_step, learner, axis_name=axis), "train"),
            axis_name=axis,
            devices=devs,
            donate_argnums=0,
        )
        evaluate = jax.pmap(
            guard(partial(eval_step, learner, axis_name=axis), "evaluate"),
            axis_name=axis,
            devices=devs,
        )
        evaluate_first = lambda state, batch: _first_replica(evaluate(state, batch))
        finalize = jax.pmap(learner.finalize, axis_name=axis, devices=devs, donate_argnums=0)

        # A pmapped identity places host arrays whose leading axis is the device axis; the
        # same axis name gives the same sharding as the step's outputs (else: a retrace).
        place = jax.pmap(lambda tree: tree, axis_name=axis, devices=devs)

        def put_batch(batch):
            check_divisible(batch)
            return place({name: np.reshape(x, (k, -1, *x.shape[1:])) for name, x in batch.items()})

        put_state = lambda state: place(
            jax.tree.map(lambda x: np.broadcast_to(x, (k, *np.shape(x))), jax.device_get(state))
        )
        get_state = lambda state: jax.device_get(_first_replica(state))
        return CompiledSteps(
            train, evaluate_first, finalize, put_state, put_batch, get_state, k, parallel, traces
        )

    mesh = Mesh(np.array(devs), ("data",))
    replicated = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P("data"))
    train = jit(
        guard(partial(train_step, learner), "train"),
        in_shardings=(replicated, data),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )
    evaluate = jit(
        guard(partial(eval_step, learner), "evaluate"),
        in_shardings=(replicated, data),
        out_shardings=replicated,
    )

    processes, index = jax.process_count(), jax.process_index()

    def put_batch(batch):
        # Every process holds the same global batch and feeds its own contiguous slice of it
        # (one process: all of it); the mesh lays the slices out in process order.
        check_divisible(batch)
        local = lambda x: x[index * len(x) // processes : (index + 1) * len(x) // processes]
        return {
            name: jax.make_array_from_process_local_data(data, np.asarray(local(x)))
            for name, x in batch.items()
        }

    finalize = jit(
        learner.finalize,
        in_shardings=(replicated,),
        out_shardings=replicated,
        donate_argnums=0,
    )
    return CompiledSteps(
        train,
        evaluate,
        finalize,
        lambda state: jax.device_put(state, replicated),
        put_batch,
        jax.device_get,
        k,
        parallel,
        traces,
    )
