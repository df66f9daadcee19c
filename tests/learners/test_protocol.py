"""The learner protocol's optional members, shown by two learners written here as a new
family would write them: a closed-form readout (statistics in `update`, a solve in
`finalize`, metrics of its own) trained by `fit`, and a two-player game stepped under pmap
and checkpointed like any state."""

from __future__ import annotations

import dataclasses
import json
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo_jax import learners, registry
from zoo_jax.learners import LearnerDefaults, apply_gradients, init_players, mean_over, sum_over
from zoo_jax.train.checkpoint import Checkpointer
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.state import TrainState
from zoo_jax.train.steps import compile_steps

D, K, L2 = 12, 3, 0.5


@dataclasses.dataclass(frozen=True)
class RidgeReadout(LearnerDefaults):
    """Ridge regression of one-hot targets on the inputs: `update` adds XᵀX and XᵀY (summed
    over devices), `finalize` solves; evaluation sums the squared error and the hits."""

    model: nn.Module
    num_classes: int
    l2: float = L2
    metrics = ("mse", "accuracy")

    @classmethod
    def from_config(cls, run, total_steps=None):
        return cls(model=run.model(), num_classes=run.num_classes)

    def init(self, rng, sample_batch):
        variables = self.model.init(rng, sample_batch["inputs"])
        d = sample_batch["inputs"].shape[-1] + 1
        stats = {"xtx": jnp.zeros((d, d)), "xty": jnp.zeros((d, self.num_classes))}
        return TrainState(jnp.zeros((), jnp.int32), variables["params"], (), stats, rng)

    def _design(self, batch):
        x = batch["inputs"]
        return jnp.concatenate([x, jnp.ones((len(x), 1))], -1), jax.nn.one_hot(
            batch["labels"], self.num_classes
        )

    def update(self, state, batch, rng, *, axis_name=None):
        x, y = self._design(batch)
        stats = state.model_state
        stats = {
            "xtx": stats["xtx"] + sum_over(x.T @ x, axis_name),
            "xty": stats["xty"] + sum_over(x.T @ y, axis_name),
        }
        mse = mean_over(
            jnp.mean((self.model.apply({"params": state.params}, batch["inputs"]) - y) ** 2),
            axis_name,
        )
        new = state.replace(model_state=stats, step=state.step + 1)
        return new, {"mse": mse, "finite": jnp.isfinite(mse)}

    def finalize(self, state):
        xtx, xty = state.model_state["xtx"], state.model_state["xty"]
        w = jnp.linalg.solve(xtx + self.l2 * jnp.eye(len(xtx)), xty)
        return state.replace(params={"kernel": w[:-1], "bias": w[-1]})

    def evaluate(self, state, batch, *, axis_name=None):
        _, y = self._design(batch)
        out = self.model.apply({"params": state.params}, batch["inputs"])
        weight = batch["weight"]
        return {
            "mse": sum_over(jnp.sum(weight * jnp.mean((out - y) ** 2, -1)), axis_name),
            "accuracy": sum_over(jnp.sum(weight * (out.argmax(-1) == batch["labels"])), axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }


@pytest.fixture
def ridge_card(monkeypatch):
    card = registry.ZooCard(
        name="toy_ridge", family="feedforward", chart_node="extreme_learning_machine",
        reference="a test", build=partial(nn.Dense, K), input_shape=(D,),
        input_layout="N,F", num_classes=K, learner="toy_ridge", epochs=2, batch_size=32,
    )  # fmt: skip
    monkeypatch.setitem(registry._collect(), "toy_ridge", card)
    monkeypatch.setitem(learners.LEARNERS, "toy_ridge", RidgeReadout)
    return card


def _data(n=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    y = (x[:, :K] @ np.eye(K) + 0.1 * rng.normal(size=(n, K))).argmax(-1).astype(np.int32)
    return x, y


@pytest.mark.parametrize("parallel", ["none", "pmap"])
def test_a_closed_form_learner_trains_through_fit(ridge_card, tmp_path, parallel):
    x, y = _data()
    x_test, y_test = _data(64, seed=1)
    cfg = RunConfig("toy_ridge", parallel=parallel, devices=None if parallel == "none" else 4)
    summary = fit(cfg, tmp_path, data=(x, y, x_test, y_test), progress=False, log=lambda _: None)
    # the solve of `finalize` over both epochs' statistics (every example counted twice)
    design = np.concatenate([x, np.ones((len(x), 1), np.float32)], -1)
    targets = np.eye(K)[y]
    w = np.linalg.solve(2 * design.T @ design + L2 * np.eye(D + 1), 2 * design.T @ targets)
    params = summary["state"].params
    np.testing.assert_allclose(params["kernel"], w[:-1], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(params["bias"], w[-1], rtol=1e-3, atol=1e-4)
    assert set(summary["test"]) == {"mse", "accuracy"} and summary["test"]["accuracy"] > 0.7
    test_design = np.concatenate([x_test, np.ones((len(x_test), 1), np.float32)], -1)
    mse = np.mean((test_design @ w - np.eye(K)[y_test]) ** 2)
    np.testing.assert_allclose(summary["test"]["mse"], mse, rtol=1e-3)
    assert summary["train"]["accuracy"] is None  # its update reports no accuracy
    epochs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2] and "test_mse" in epochs[-1]


@dataclasses.dataclass(frozen=True)
class TwoPlayers(LearnerDefaults):
    """A toy game: player `a` fits y ≈ a·x, player `b` fits the rest, y - a·x ≈ b·x."""

    metrics = ("loss",)

    def init(self, rng, sample_batch):
        variables = {"a": {"params": {"w": jnp.zeros(D)}}, "b": {"params": {"w": jnp.zeros(D)}}}
        return init_players({"a": optax.adam(0.1), "b": optax.sgd(0.05)}, variables, rng)

    def update(self, state, batch, rng, *, axis_name=None):
        x, y = batch["inputs"], batch["labels"].astype(jnp.float32)
        loss_a = lambda w: jnp.mean((x @ w - y) ** 2)
        grads = jax.grad(loss_a)(state.params["a"]["w"])
        state, metrics = apply_gradients(
            optax.adam(0.1), state, {"w": grads}, loss_a(state.params["a"]["w"]),
            state.model_state["a"], axis_name, player="a",
        )  # fmt: skip
        rest = y - x @ state.params["a"]["w"]
        loss_b = lambda w: jnp.mean((x @ w - rest) ** 2)
        grads = jax.grad(loss_b)(state.params["b"]["w"])
        state, metrics_b = apply_gradients(
            optax.sgd(0.05), state, {"w": grads}, loss_b(state.params["b"]["w"]),
            state.model_state["b"], axis_name, player="b",
        )  # fmt: skip
        finite = metrics["finite"] & metrics_b["finite"]
        return state.replace(step=state.step + 1), {"loss": metrics_b["loss"], "finite": finite}

    def evaluate(self, state, batch, *, axis_name=None):
        raise NotImplementedError


def test_two_players_share_one_state_under_pmap_and_in_a_checkpoint(tmp_path):
    x, y = _data(64)
    batch = {"inputs": x, "labels": y}
    learner = TwoPlayers()
    start = jax.device_get(learner.init(jax.random.PRNGKey(0), batch))  # host: steps donate
    assert set(start.params) == set(start.opt_state) == {"a", "b"}
    states = {}
    for parallel, devices in (("none", None), ("pmap", 4)):
        steps = compile_steps(learner, parallel, devices)
        state = steps.put_state(start)
        for _ in range(3):
            state, _ = steps.train(state, steps.put_batch(batch))
        states[parallel] = steps.get_state(state)
    assert int(states["none"].step) == 3  # one step per update, whatever the players
    for ours, ref in zip(
        jax.tree.leaves(states["pmap"]), jax.tree.leaves(states["none"]), strict=True
    ):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(states["none"].params["b"]["w"], 0)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    ckpt.save(3, states["none"], {"identity": {}})
    ckpt.close()
    ckpt = Checkpointer(tmp_path / "checkpoints")
    restored, _ = ckpt.restore(jax.tree.map(np.asarray, start))
    ckpt.close()
    for ours, ref in zip(jax.tree.leaves(restored), jax.tree.leaves(states["none"]), strict=True):
        np.testing.assert_array_equal(ours, ref)
