"""The shallow learners' rules against independent NumPy computations of their equations
(and MiniSom, the peer library, for the self-organising map): the perceptron rule and its
average, the ridge readout, mini-batch k-means and the RBF width, the online and batch maps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo_jax
from zoo_jax import learners
from zoo_jax.errors import ZooError
from zoo_jax.models import shallow
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.steps import compile_steps

D, K = 12, 3


def _integers(n, seed=0):
    """Small integer inputs: every sum of the perceptron rule is exact in float32."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=(n, D)).astype(np.float32)
    y = (x[:, :K] + rng.integers(0, 3, size=(n, K))).argmax(-1).astype(np.int32)
    return x, y


def _run(learner, batches, parallel="none", devices=None, finalize=False):
    steps = compile_steps(learner, parallel, devices)
    state = steps.put_state(jax.device_get(learner.init(jax.random.PRNGKey(0), batches[0])))
    for batch in batches:
        state, _ = steps.train(state, steps.put_batch(batch))
    if finalize:
        state = steps.finalize(state)
    return steps.get_state(state)


def _perceptron_numpy(x, y, w, b, avg_w, avg_b, seen):
    for xi, yi in zip(x, y, strict=True):
        predicted = int(np.argmax(xi @ w + b))
        if predicted != yi:
            w[:, yi] += xi
            w[:, predicted] -= xi
            b[yi] += 1
            b[predicted] -= 1
        seen += 1
        avg_w += (w - avg_w) / seen
        avg_b += (b - avg_b) / seen
    return w, b, avg_w, avg_b, seen


def test_the_perceptron_rule_is_rosenblatts_online_rule_and_its_average():
    x, y = _integers(96)
    batches = [{"inputs": x[i : i + 32], "labels": y[i : i + 32]} for i in range(0, 96, 32)]
    learner = learners.AveragedPerceptronLearner(shallow.Perceptron(K))
    state = _run(learner, batches)
    w, b, avg_w, avg_b, seen = _perceptron_numpy(
        x, y, np.zeros((D, K)), np.zeros(K), np.zeros((D, K)), np.zeros(K), 0
    )
    np.testing.assert_array_equal(state.params["kernel"], w)  # integer sums: exact
    np.testing.assert_array_equal(state.params["bias"], b)
    np.testing.assert_allclose(state.model_state["average"]["kernel"], avg_w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.model_state["average"]["bias"], avg_b, rtol=1e-5, atol=1e-5)
    assert float(state.model_state["seen"]) == seen == 96 and np.abs(w).sum() > 0


def test_the_perceptron_under_pmap_averages_the_devices_online_changes():
    x, y = _integers(64, seed=1)
    learner = learners.PerceptronLearner(shallow.Perceptron(K))
    state = _run(learner, [{"inputs": x, "labels": y}], "pmap", 4)
    shards = [
        _perceptron_numpy(x[i : i + 16], y[i : i + 16], np.zeros((D, K)), np.zeros(K),
                          np.zeros((D, K)), np.zeros(K), 0)
        for i in range(0, 64, 16)
    ]  # fmt: skip
    np.testing.assert_allclose(state.params["kernel"], np.mean([s[0] for s in shards], 0))
    np.testing.assert_allclose(state.params["bias"], np.mean([s[1] for s in shards], 0))


def _regression_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    y = (x[:, :K] + 0.3 * rng.normal(size=(n, K))).argmax(-1).astype(np.int32)
    return x, y


def test_the_ridge_readout_solves_the_normal_equations():
    x, y = _regression_data()
    model = shallow.ExtremeLearningMachine(units=20, num_classes=K, input_scale=3.0, ridge=0.01)
    batches = [{"inputs": x[i : i + 64], "labels": y[i : i + 64]} for i in range(0, 256, 64)]
    state = _run(learners.RidgeLearner(model, K), batches, finalize=True)
    constants = state.model_state["constants"]["hidden"]
    h = 1 / (1 + np.exp(-(x.astype(np.float64) @ constants["kernel"] + constants["bias"])))
    h1 = np.concatenate([h, np.ones((len(h), 1))], 1)
    penalty = 0.01 * np.diag([1.0] * 20 + [0.0])  # the bias is not shrunk
    w = np.linalg.solve(h1.T @ h1 / len(h) + penalty, h1.T @ np.eye(K)[y] / len(h))
    np.testing.assert_allclose(state.params["readout"]["kernel"], w[:-1], rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(state.params["readout"]["bias"], w[-1], rtol=2e-3, atol=2e-4)


def test_a_ridge_readout_trains_through_fit_alike_on_one_and_four_devices(mnist_flat):
    overrides = {"units": 64}
    cfg = lambda parallel: RunConfig(
        "extreme_learning_machine", batch_size=64, parallel=parallel,
        devices=4 if parallel == "pmap" else None, model_overrides=overrides,
    )  # fmt: skip
    quiet = {"progress": False, "log": lambda _: None}
    runs = {p: fit(cfg(p), None, data=mnist_flat, **quiet) for p in ("none", "pmap")}
    # the same statistics summed in another order, then a float32 solve: equal to ~1e-4
    for a, b in zip(*(jax.tree.leaves(r["state"].params) for r in runs.values()), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-3)
    assert runs["none"]["test"]["accuracy"] > 0.5 and runs["none"]["params"] == 65 * 10


def _kmeans_numpy(batches, k):
    """Forgy's fill with the first examples, then mini-batch k-means (running means)."""
    centres, assigned, filled = np.zeros((k, D)), np.zeros(k), 0
    for x in batches:
        if filled < k:
            new = x[: min(len(x), k)]
            at = min(filled, k - len(new))
            centres[at : at + len(new)] = new
            assigned[at : at + len(new)] = 1
            filled += len(new)
            continue
        nearest = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), 1)
        for j in range(k):
            n = (nearest == j).sum()
            assigned[j] += n
            if n:
                centres[j] += (x[nearest == j].sum(0) - n * centres[j]) / assigned[j]
    return centres


def test_kmeans_then_the_width_then_the_readout():
    x, y = _regression_data(320)
    batches = [{"inputs": x[i : i + 32], "labels": y[i : i + 32]} for i in range(0, 320, 32)]
    model = shallow.RBFNetwork(centres=8, num_classes=K, width_scale=1.5, ridge=0.01)
    learner = learners.KMeansRidgeLearner(model, K, kmeans_steps=7)
    state = _run(learner, batches, finalize=True)
    centres = _kmeans_numpy([b["inputs"] for b in batches[:7]], 8)
    np.testing.assert_allclose(state.params["hidden"]["centres"], centres, rtol=1e-4, atol=1e-5)
    d = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1)) + np.diag([np.inf] * 8)
    sigma = 1.5 * d.min(1).mean()
    np.testing.assert_allclose(np.exp(state.params["hidden"]["log_width"]), sigma, rtol=1e-4)
    # the readout saw only the last three batches
    rest = x[7 * 32 :].astype(np.float64)
    h = np.exp(-((rest[:, None] - centres[None]) ** 2).sum(-1) / (2 * sigma**2))
    h1 = np.concatenate([h, np.ones((len(h), 1))], 1)
    w = np.linalg.solve(h1.T @ h1 / len(h) + 0.01 * np.diag([1.0] * 8 + [0.0]),
                        h1.T @ np.eye(K)[y[7 * 32 :]] / len(h))  # fmt: skip
    np.testing.assert_allclose(state.params["readout"]["kernel"], w[:-1], rtol=5e-3, atol=5e-4)


def test_an_rbf_network_needs_an_epoch_of_kmeans():
    with pytest.raises(ZooError, match="needs epochs >= 2"):
        fit(RunConfig("rbf_network", epochs=1), None)


def _som(batch_map=False, rows=3, cols=4, sigma=1.2):
    return shallow.KohonenMap(rows=rows, cols=cols, sigma=sigma, batch_map=batch_map)


def test_the_online_map_is_minisoms():
    minisom = pytest.importorskip("minisom")
    x, y = _regression_data(96, seed=2)
    batches = [{"inputs": x[i : i + 32], "labels": y[i : i + 32]} for i in range(0, 96, 32)]
    learner = learners.SOMLearner(_som(), K, total_examples=96, steps_per_epoch=3,
                                  learning_rate=0.5)  # fmt: skip
    start = jax.device_get(learner.init(jax.random.PRNGKey(0), batches[0]))
    som = minisom.MiniSom(3, 4, D, sigma=1.2, learning_rate=0.5)  # asymptotic decay: its default
    som._weights = np.asarray(start.params["codebook"], np.float64).reshape(3, 4, D).copy()
    som.train(x, 96)  # in order, t = 0 … 95 of 96
    state = _run(learner, batches)
    codebook = np.asarray(state.params["codebook"]).reshape(3, 4, D)
    np.testing.assert_allclose(codebook, som._weights, rtol=1e-4, atol=1e-5)
    steps = compile_steps(learner, "none")
    sums = steps.evaluate(steps.put_state(state), steps.put_batch(
        {"inputs": x, "labels": y, "weight": np.ones(96, np.float32)}))  # fmt: skip
    np.testing.assert_allclose(
        sums["quantization_error"] / 96, som.quantization_error(x), rtol=1e-4
    )
    np.testing.assert_allclose(sums["topographic_error"] / 96, som.topographic_error(x), atol=1e-6)


def test_the_batch_map_sets_each_node_to_its_neighbourhoods_mean():
    x, y = _regression_data(64, seed=3)
    batches = [{"inputs": x[:32], "labels": y[:32]}, {"inputs": x[32:], "labels": y[32:]}]
    learner = learners.SOMLearner(_som(batch_map=True), K, total_examples=128, steps_per_epoch=2)
    start = jax.device_get(learner.init(jax.random.PRNGKey(0), batches[0]))
    state = _run(learner, batches)  # one epoch: one batch-map step, σ at t = 0
    w = np.asarray(start.params["codebook"], np.float64)
    grid = np.array([(r, c) for r in range(3) for c in range(4)], np.float64)
    bmu = np.argmin(((x[:, None] - w[None]) ** 2).sum(-1), 1)
    h = np.exp(-((grid[bmu][:, None] - grid[None]) ** 2).sum(-1) / (2 * 1.2**2))  # (n, nodes)
    np.testing.assert_allclose(state.params["codebook"], h.T @ x / h.sum(0)[:, None], rtol=1e-4)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("kohonen_network", {"rows": 1, "cols": 1}, "map of 2 nodes or more"),
        ("kohonen_network", {"sigma": -1.0}, "sigma must be > 0"),
        ("rbf_network", {"width_scale": 0.0}, "width_scale must be > 0"),
        ("support_vector_machine", {"gamma": 0.0}, "gamma must be > 0"),
        ("extreme_learning_machine", {"units": 0}, "units must be a positive integer"),
    ],
)
def test_bad_sizes_and_widths_are_named(name, overrides, message):
    with pytest.raises(ZooError, match=message):
        fit(RunConfig(name, model_overrides=overrides), None)


def test_the_shallow_cards_count_what_they_learn():
    assert zoo_jax.count_params("perceptron") == 785 * 10
    assert zoo_jax.count_params("feed_forward") == 785 * 800 + 801 * 10  # LeCun's 784-800-10
    assert zoo_jax.count_params("extreme_learning_machine") == 1001 * 10  # the readout only
    assert zoo_jax.count_params("rbf_network") == 1000 * 784 + 1 + 1001 * 10
    assert zoo_jax.count_params("kohonen_network") == 100 * 784
    assert zoo_jax.count_params("support_vector_machine") == 4097 * 10
    model = zoo_jax.get_model("support_vector_machine", features_dim=2048, gamma=0.5)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 784)) * 0.05, jnp.float32)
    variables = model.init(jax.random.PRNGKey(0), x)
    z = model.apply(variables, x, method="features")
    kernel = float(np.exp(-0.5 * np.sum((np.asarray(x[0]) - np.asarray(x[1])) ** 2)))
    assert abs(float(z[0] @ z[1]) - kernel) < 0.05  # random Fourier features: z·z ≈ k(x, y)
