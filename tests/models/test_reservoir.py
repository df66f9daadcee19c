"""The reservoirs against NumPy simulations of their equations, the Mackey-Glass series
against ReservoirPy's, the kernel SVM's dual solution against its optimality conditions and
sklearn's `SVC`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo_jax.data import datasets, series
from zoo_jax.errors import InputError, ZooError
from zoo_jax.learners import kernel
from zoo_jax.models import reservoir
from zoo_jax.train.loop import RunConfig, fit


def test_the_reservoir_is_the_leaky_tanh_recurrence_at_its_spectral_radius():
    model = reservoir.EchoStateNetwork(units=40, spectral_radius=1.25, leak=0.3,
                                       input_scaling=0.5, bias_scaling=0.2, num_classes=2)  # fmt: skip
    u = np.random.default_rng(0).normal(size=(3, 25, 4)).astype(np.float32)
    variables = model.init(jax.random.PRNGKey(0), u)
    c = jax.tree.map(np.asarray, variables["constants"]["reservoir"])
    w, w_in, b = (c[k].astype(np.float64) for k in ("recurrent", "input", "bias"))
    assert np.isclose(np.max(np.abs(np.linalg.eigvals(w))), 1.25, rtol=1e-4)
    assert 0.05 < np.mean(w != 0) < 0.15 and set(np.unique(np.abs(w_in))) <= {0.0, 0.5}
    x, expected = np.zeros((3, 40)), []
    for t in range(25):
        x = 0.7 * x + 0.3 * np.tanh(x @ w.T + u[:, t] @ w_in + b)
        expected.append(x)
    states = jax.jit(lambda v, u: model.apply(v, u, method="states"))(variables, u)
    np.testing.assert_allclose(states, np.stack(expected, 1), rtol=1e-4, atol=1e-5)


def test_generate_feeds_each_prediction_back():
    model = reservoir.EchoStateNetwork(units=16, num_classes=1)
    u = np.random.default_rng(1).normal(size=(2, 5, 1)).astype(np.float32)
    variables = model.init(jax.random.PRNGKey(0), u)
    start = model.apply(variables, u, method="states")[:, -1]
    kernel, bias = np.random.default_rng(2).normal(size=(16, 1)) * 0.3, np.array([0.1])
    ys = model.apply(variables, start, u[:, -1:], 4, kernel, bias, method="generate")
    x, y = start, u[:, -1:]
    for t in range(4):  # by hand: one reservoir step on the last output, then the readout
        x = model.apply(variables, y, x, method="states")[:, -1]
        y = (x @ kernel + bias)[:, None].astype(np.float32)
        np.testing.assert_allclose(ys[:, t], y[:, 0], rtol=1e-5, atol=1e-6)


def _lif_numpy(spikes, wiring):
    """The liquid's equations, step by step (LiquidStateMachine's docstring)."""
    inh = wiring["inhibitory"].astype(np.float64)
    syn, w_in = wiring["synapses"].astype(np.float64), wiring["input"].astype(np.float64)
    b, n = spikes.shape[0], len(inh)
    v, ce, ci, rest, trace = np.full((b, n), 13.5), *(np.zeros((b, n)) for _ in range(4))
    out = []
    for t in range(spikes.shape[1]):
        v = np.where(rest > 0, 13.5, v + (1 - np.exp(-1 / 30)) * (13.5 + ce + ci - v))
        fired = (v >= 15).astype(float)
        v = np.where(fired > 0, 13.5, v)
        rest = np.where(fired > 0, np.where(inh > 0, 2, 3), np.maximum(rest - 1, 0))
        ce = ce * np.exp(-1 / 3) + (fired * (1 - inh)) @ syn + spikes[:, t] @ w_in
        ci = ci * np.exp(-1 / 6) + (fired * inh) @ syn
        trace = np.exp(-1 / 30) * trace + fired
        out.append(trace)
    return np.stack(out, 1)


def test_the_liquid_is_leaky_integrate_and_fire_neurons_in_a_column():
    model = reservoir.LiquidStateMachine(column=(4, 2, 2), steps_per_frame=5, segments=2)
    u = np.random.default_rng(2).uniform(size=(2, 12, 3)).astype(np.float32)
    variables = model.init(jax.random.PRNGKey(3), u)
    wiring = jax.tree.map(np.asarray, variables["constants"]["column_net"]["wiring"])
    spikes = np.asarray(model.apply(variables, u, method="spikes"))
    assert spikes.shape == (2, 60, 3) and set(np.unique(spikes)) <= {0.0, 1.0}
    # integrate-and-fire rate coding: the spikes count the integer crossings of the sum
    np.testing.assert_array_equal(
        spikes.sum(1), np.floor(np.cumsum(np.repeat(u * 0.2, 5, 1), 1)[:, -1] + 1e-6)
    )
    traces = model.apply(variables, u, method="traces")
    np.testing.assert_allclose(traces, _lif_numpy(spikes, wiring), rtol=1e-4, atol=1e-4)
    assert traces.max() > 0  # the column fires
    features = model.apply(variables, u, method="features")
    np.testing.assert_allclose(features[:, :16], np.asarray(traces)[:, :30].mean(1), rtol=1e-5)


def test_the_reservoir_cards_train_on_spoken_digits():
    for name in ("echo_state_network", "liquid_state_machine"):
        overrides = {"units": 32} if name == "echo_state_network" else {"column": (3, 2, 2)}
        cfg = RunConfig(name, train_limit=200, test_limit=50, model_overrides=overrides)
        summary = fit(cfg, None, progress=False, log=lambda _: None)
        assert summary["test"]["accuracy"] > 0.2, (name, summary["test"])  # 10 classes


def test_fsdd_is_the_upstream_split_of_verified_recordings():
    x, y = datasets.load("fsdd", "train", (100, 16))
    x_test, y_test = datasets.load("fsdd", "test", (100, 16))
    assert x.shape == (2700, 100, 16) and x_test.shape == (300, 100, 16)
    assert np.bincount(y_test).tolist() == [30] * 10 and np.bincount(y).tolist() == [270] * 10
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1 and x.mean() > 0.05


@pytest.mark.parametrize("bad", [{"spectral_radius": 0.0}, {"leak": 1.5}, {"units": 0}])
def test_bad_reservoirs_are_named(bad):
    with pytest.raises(ZooError, match=next(iter(bad))):
        fit(RunConfig("echo_state_network", model_overrides=bad), None)


def test_mackey_glass_is_reservoirpys_series():
    rpy = pytest.importorskip("reservoirpy.datasets")
    for kwargs in ({}, {"tau": 30, "seed": 7, "h": 0.5}):
        np.testing.assert_array_equal(
            series.mackey_glass(500, **kwargs), rpy.mackey_glass(500, **kwargs)
        )
    x = series.mackey_glass(3000)[500:, 0]
    assert 0.2 < x.min() < x.max() < 1.5  # the τ = 17 attractor's range
    with pytest.raises(ZooError, match="n_timesteps"):
        series.mackey_glass(0)


def _blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    x = (rng.normal(size=(n, 5)) + 1.5 * np.eye(3, 5)[y]).astype(np.float32)
    return x, y


def test_the_dual_solution_meets_its_optimality_conditions():
    x, y = _blobs(80)
    svm = kernel.fit_kernel_svm(x, y, 3, c=2.0, gamma=0.3, iterations=3000)
    assert svm.gap < 1e-4
    k = np.exp(-0.3 * ((x[:, None] - x[None]) ** 2).sum(-1)) + 1
    signs = 2 * np.eye(3)[y] - 1
    alpha = np.asarray(svm.coef) * signs
    margins = signs * (k @ np.asarray(svm.coef))
    # KKT: α = 0 → margin ≥ 1; α = C → margin ≤ 1; in between → margin = 1
    assert np.all(margins[alpha < 1e-4] > 1 - 2e-2)
    assert np.all(margins[alpha > 2.0 - 1e-4] < 1 + 2e-2)
    free = (alpha > 1e-3) & (alpha < 2.0 - 1e-3)
    assert free.any() and np.allclose(margins[free], 1, atol=2e-2)
    np.testing.assert_allclose(svm.decision_function(x), k @ np.asarray(svm.coef), rtol=1e-4,
                               atol=1e-4)  # fmt: skip


def test_the_kernel_svm_predicts_as_sklearn_svc(mnist_flat):
    svm_module = pytest.importorskip("sklearn.svm")
    x, y, x_test, y_test = mnist_flat
    gamma = float(1 / (784 * x.var()))  # sklearn's gamma="scale"
    ours = kernel.fit_kernel_svm(x, y, 10, c=1.0, gamma=gamma, iterations=500).predict(x_test)
    theirs = svm_module.SVC(C=1.0, gamma=gamma).fit(x, y).predict(x_test)
    assert np.mean(ours == theirs) > 0.9  # 512 training images: one-vs-rest / one-vs-one
    assert abs(np.mean(ours == y_test) - np.mean(theirs == y_test)) < 0.03


def test_the_kernel_svm_refuses_bad_input():
    x, y = _blobs(10)
    with pytest.raises(ZooError, match="gamma must be > 0"):
        kernel.fit_kernel_svm(x, y, 3, gamma=0.0)
    with pytest.raises(InputError, match="labels"):
        kernel.fit_kernel_svm(x, y + 5, 3, gamma=1.0)
    with pytest.raises(InputError, match="non-finite"):
        kernel.fit_kernel_svm(np.full_like(x, np.nan), y, 3, gamma=1.0)
    assert jnp.isfinite(kernel.gaussian_kernel(jnp.asarray(x), jnp.asarray(x), 1.0)).all()
