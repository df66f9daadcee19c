"""Compiled steps: pmap and sharded jit equal the single-device step; no retracing; donation."""

import re
from functools import partial

import chex
import jax
import numpy as np
import pytest

import zoo_jax
from zoo_jax import losses, optim
from zoo_jax.errors import ZooError
from zoo_jax.learners import GradientLearner
from zoo_jax.lowering import backend
from zoo_jax.train.steps import compile_steps, train_step


def _setup(dropout=0.0, batch_size=16, model="cnn"):
    if model == "cnn":
        model, shape = zoo_jax.get_model("cnn", features=(4, 4, 4), dropout=dropout), (28, 28, 1)
    else:  # an LSTM: its own scan and gradient (lowering.linear_recurrence)
        model, shape = zoo_jax.get_model(model, units=8, dropout=dropout), (28, 28)
    learner = GradientLearner(
        model, losses.for_classifier("sparse_categorical_crossentropy"), optim.make("adam"), l2=1e-3
    )
    rng = np.random.default_rng(0)
    batches = [
        {
            "inputs": rng.random((batch_size, *shape), dtype=np.float32),
            "labels": rng.integers(0, 10, batch_size).astype(np.int32),
        }
        for _ in range(3)
    ]
    state = jax.device_get(learner.init(jax.random.PRNGKey(0), batches[0]))
    return learner, state, batches


def _run(learner, state, batches, parallel, devices, max_traces=None):
    chex.clear_trace_counter()
    steps = compile_steps(learner, parallel, devices, max_traces=max_traces)
    s = steps.put_state(state)
    for batch in batches:
        s, metrics = steps.train(s, steps.put_batch(batch))
    return steps.get_state(s), jax.device_get(metrics), steps


@pytest.mark.parametrize("model", ["cnn", "lstm"])
@pytest.mark.parametrize("parallel", ["pmap", "sharded"])
def test_data_parallel_equals_single_device(parallel, model):
    learner, state, batches = _setup(model=model)
    single, m1, _ = _run(learner, state, batches, "none", 1)
    multi, m4, steps = _run(learner, state, batches, parallel, 4)
    assert steps.num_devices == 4
    chex.assert_trees_all_close(multi.params, single.params, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(multi.opt_state, single.opt_state, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(m4["loss"]).reshape(-1)[0], m1["loss"], rtol=1e-5)
    assert int(multi.step) == 3


def test_sharded_equals_single_device_with_dropout():
    """Sharded jit sees the global batch, so even dropout masks agree with one device."""
    learner, state, batches = _setup(dropout=0.5)
    single, _, _ = _run(learner, state, batches, "none", 1)
    sharded, _, _ = _run(learner, state, batches, "sharded", 4)
    chex.assert_trees_all_close(sharded.params, single.params, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("parallel", ["none", "pmap", "sharded"])
def test_no_retrace_across_steps(parallel):
    learner, state, batches = _setup()
    _, _, steps = _run(
        learner, state, batches * 2, parallel, None if parallel != "none" else 1, max_traces=1
    )
    assert steps.traces["train"] == 1


def test_same_seed_is_bitwise_identical():
    learner, state, batches = _setup(dropout=0.3)
    a, _, _ = _run(learner, state, batches, "none", 1)
    b, _, _ = _run(learner, state, batches, "none", 1)
    chex.assert_trees_all_equal(a, b)


def test_state_is_donated():
    learner, state, batches = _setup()
    steps = compile_steps(learner, "none", 1)
    s = steps.put_state(state)
    old_leaf = jax.tree.leaves(s.params)[0]
    s, _ = steps.train(s, steps.put_batch(batches[0]))
    assert old_leaf.is_deleted()


def test_non_finite_step_keeps_the_state_and_copies_nothing():
    """A step with a NaN loss leaves params, Adam's moments and its count bitwise unchanged
    (only `step` advances); the guard (`lax.cond`) lets XLA update the donated state in place,
    where a `jnp.where` between old and new leaves made it copy the optimizer state first."""
    learner, state, batches = _setup()
    steps = compile_steps(learner, "none", 1)
    bad = dict(batches[0], inputs=np.full_like(batches[0]["inputs"], np.nan))
    kept, metrics = steps.train(steps.put_state(state), steps.put_batch(bad))
    assert not bool(metrics["finite"]) and int(kept.step) == int(state.step) + 1
    chex.assert_trees_all_equal((kept.params, kept.opt_state), (state.params, state.opt_state))

    hlo = steps.train.lower(state, batches[0]).compile().as_text()
    entry = hlo[hlo.index("\nENTRY") :]
    assert re.findall(r"= f32\[[\d,]+\]\S* copy\(", entry) == []


def test_bad_device_requests():
    learner, _, _ = _setup()
    with pytest.raises(ZooError, match="--devices 99"):
        compile_steps(learner, "pmap", 99)
    with pytest.raises(ZooError, match="--parallel"):
        compile_steps(learner, "dp", 2)
    steps = compile_steps(learner, "sharded", 4)
    with pytest.raises(ZooError, match="not divisible"):
        steps.put_batch({"inputs": np.zeros((6, 28, 28, 1), np.float32)})


def _ynnpack_convolutions(hlo: str) -> int:
    """Convolutions inside the fusions XLA:CPU hands to YNNPACK, in compiled HLO text."""
    bodies = dict(re.findall(r"^(?:ENTRY )?%?([\w.\-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.S | re.M))
    called = re.findall(r"calls=%([\w.\-]+)[^\n]*__ynn_fusion", hlo)
    return sum(bodies.get(name, "").count(" convolution(") for name in called)


def test_cpu_steps_run_xlas_own_convolutions():
    """On the CPU the engine compiles its steps with `lowering.compiler_options()`: the seed
    CNN's convolutions (and their gradients) stay out of YNNPACK, where XLA's defaults put
    most of them."""
    if not backend.cpu_compiler_options():
        pytest.skip("this jaxlib does not know the YNNPACK fusion option")
    learner = GradientLearner(
        zoo_jax.get_model("cnn"),
        losses.for_classifier("sparse_categorical_crossentropy"),
        optim.make("adam"),
    )
    rng = np.random.default_rng(0)
    batch = {
        "inputs": rng.random((4, 28, 28, 1), dtype=np.float32),
        "labels": rng.integers(0, 10, 4).astype(np.int32),
    }
    state = learner.init(jax.random.PRNGKey(0), batch)
    ours = compile_steps(learner).train.lower(state, batch).compile().as_text()
    default = jax.jit(partial(train_step, learner)).lower(state, batch).compile().as_text()
    assert ours.count(" convolution(") == 8  # 3 forward, 2 input and 3 kernel gradients
    assert _ynnpack_convolutions(ours) == 0
    assert _ynnpack_convolutions(default) > 0  # what the options change
