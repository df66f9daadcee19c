"""Readouts solved in closed form: ridge regression on a model's features (an ELM, a
reservoir), and k-means then ridge (an RBF network).

The statistics a solve needs (`HᵀH`, `HᵀY` with a column of ones for the bias, the number
of rows) are added up in `update`, `psum`-ed over devices under pmap, and kept in the state's
`opt_state` (the "optimizer state" of a learner without an optimizer), so they are
checkpointed and resumed with the rest; `finalize` solves. The model gives `features(x)`
and a Dense layer called `readout`, and carries `ridge` (λ).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax.errors import ZooError
from zoo_jax.learners.base import Batch, LearnerDefaults, flat_inputs, sum_over
from zoo_jax.models.shallow import squared_distances
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run


def ridge_solve(hth: jax.Array, hty: jax.Array, count: jax.Array, ridge: float) -> jax.Array:
    """W minimising ‖[H 1] W − Y‖² / n + λ ‖W without its bias row‖², from `hth` = [H 1]ᵀ[H 1],
    `hty` = [H 1]ᵀY and n = `count` (λ is per example, so it does not scale with the data)."""
    penalty = ridge * jnp.ones(len(hth)).at[-1].set(0.0)  # the bias is not shrunk
    a = hth / count + jnp.diag(penalty)
    return jnp.linalg.solve(a, hty / count)  # LU: a Cholesky of a float32 matrix this ill-
    # conditioned (collinear reservoir features, small λ) can fail where LU does not


def with_bias(h: jax.Array) -> jax.Array:
    return jnp.concatenate([h, jnp.ones((len(h), 1), h.dtype)], -1)


@dataclasses.dataclass(frozen=True)
class RidgeLearner(LearnerDefaults):
    """Ridge regression of one-hot targets on `model.features`: one pass adds up the
    statistics, `finalize` solves (`ridge_solve`, λ = `model.ridge`) and writes the
    `readout` kernel and bias. Evaluations before the solve score the zero readout. More
    than one epoch counts every example once per epoch, which leaves the solution unchanged.

    Metrics: `mse` (of the one-hot targets, the quantity minimised) and `accuracy`.
    """

    model: nn.Module
    num_classes: int
    metrics = ("mse", "accuracy")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> RidgeLearner:
        return cls(model=run.model(), num_classes=run.num_classes)

    def _features(self, params, model_state, inputs):
        variables = {"params": params, **model_state}
        return self.model.apply(variables, inputs, method="features")

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        variables = dict(jax.jit(self.model.init)(params_rng, sample_batch["inputs"][:1]))
        params = variables.pop("params")
        d = self._features(params, variables, sample_batch["inputs"][:1]).shape[-1] + 1
        stats = {
            "hth": jnp.zeros((d, d)),
            "hty": jnp.zeros((d, self.num_classes)),
            "count": jnp.zeros(()),
            **self._extra_stats(params),
        }
        return TrainState(jnp.zeros((), jnp.int32), params, stats, variables, run_rng)

    def _extra_stats(self, params) -> dict:
        return {}

    def _accumulate(self, state, batch, axis_name):
        h = with_bias(self._features(state.params, state.model_state, batch["inputs"]))
        y = jax.nn.one_hot(batch["labels"], self.num_classes)
        matmul = functools.partial(jnp.matmul, precision="highest")  # no TF32 in the sums
        stats = state.opt_state
        return state.replace(
            opt_state=stats | {
                "hth": stats["hth"] + sum_over(matmul(h.T, h), axis_name),
                "hty": stats["hty"] + sum_over(matmul(h.T, y), axis_name),
                "count": stats["count"] + sum_over(jnp.float32(len(h)), axis_name),
            }
        )  # fmt: skip

    def update(self, state, batch, rng, *, axis_name=None):
        state = self._accumulate(state, batch, axis_name)
        finite = jnp.isfinite(state.opt_state["hty"]).all()
        return state.replace(step=state.step + 1), {"finite": finite}

    def finalize(self, state: TrainState) -> TrainState:
        stats = state.opt_state
        w = ridge_solve(stats["hth"], stats["hty"], jnp.maximum(stats["count"], 1.0),
                        self.model.ridge)  # fmt: skip
        readout = {"kernel": w[:-1], "bias": w[-1]}
        return state.replace(params=state.params | {"readout": readout})

    def evaluate(self, state, batch, *, axis_name=None):
        variables = {"params": state.params, **state.model_state}
        scores = self.model.apply(variables, batch["inputs"])
        y = jax.nn.one_hot(batch["labels"], self.num_classes)
        weight = batch["weight"]
        right = (jnp.argmax(scores, -1) == batch["labels"]).astype(jnp.float32)
        return {
            "mse": sum_over(jnp.sum(weight * jnp.mean((scores - y) ** 2, -1)), axis_name),
            "accuracy": sum_over(jnp.sum(weight * right), axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }


def nearest_centre_spacing(centres: jax.Array) -> jax.Array:
    """The mean distance from each centre to its nearest other centre."""
    d2 = squared_distances(centres, centres) + jnp.diag(jnp.full(len(centres), jnp.inf))
    return jnp.mean(jnp.sqrt(jnp.min(d2, -1)))


@dataclasses.dataclass(frozen=True)
class KMeansRidgeLearner(RidgeLearner):
    """An RBF network's three stages in one run: k-means for the first `kmeans_steps`
    updates (the card: every epoch but the last), then σ from the centres' spacing, then the
    ridge readout (the last epoch).

    k-means: the first updates fill the centres with the first examples seen (Forgy's
    initialisation); after that each batch moves every centre to the running mean of the
    examples ever assigned to it (mini-batch k-means, Sculley 2010): with n_k examples of
    the batch assigned to centre k, their sum s_k and N_k assigned so far,
    c_k ← c_k + (s_k − n_k c_k) / N_k. Counts and sums are `psum`-ed under pmap.
    σ = `model.width_scale` × `nearest_centre_spacing`, set once when the readout starts.
    """

    kmeans_steps: int = 0

    @classmethod
    def check_config(cls, run: Run) -> None:
        if run.config.epochs < 2:
            raise ZooError(
                f"{run.config.model} needs epochs >= 2 (k-means, then the readout's pass), "
                f"got {run.config.epochs}"
            )

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> KMeansRidgeLearner:
        total = total_steps or 0
        return cls(model=run.model(), num_classes=run.num_classes,
                   kmeans_steps=total - total // run.config.epochs)  # fmt: skip

    def _extra_stats(self, params) -> dict:
        k = len(params["hidden"]["centres"])
        return {"assigned": jnp.zeros((k,)), "filled": jnp.zeros((), jnp.int32)}

    def _kmeans(self, state, x, axis_name):
        centres, stats = state.params["hidden"]["centres"], state.opt_state
        k = len(centres)

        def fill(centres, stats):
            everyone = x if axis_name is None else lax.all_gather(x, axis_name, tiled=True)
            new = everyone[: min(len(everyone), k)]
            at = jnp.minimum(stats["filled"], k - len(new))
            centres = lax.dynamic_update_slice(centres, new, (at, 0))
            assigned = lax.dynamic_update_slice(stats["assigned"], jnp.ones(len(new)), (at,))
            return centres, stats | {"assigned": assigned, "filled": stats["filled"] + len(new)}

        def move(centres, stats):
            nearest = jax.nn.one_hot(jnp.argmin(squared_distances(x, centres), -1), k)
            n = sum_over(nearest.sum(0), axis_name)
            s = sum_over(jnp.matmul(nearest.T, x, precision="highest"), axis_name)
            assigned = stats["assigned"] + n
            centres = centres + (s - n[:, None] * centres) / jnp.maximum(assigned, 1.0)[:, None]
            return centres, stats | {"assigned": assigned}

        centres, stats = lax.cond(stats["filled"] < k, fill, move, centres, stats)
        hidden = state.params["hidden"] | {"centres": centres}
        return state.replace(params=state.params | {"hidden": hidden}, opt_state=stats)

    def update(self, state, batch, rng, *, axis_name=None):
        x = flat_inputs(batch)

        def readout(state):
            def set_width(state):
                sigma = self.model.width_scale * nearest_centre_spacing(
                    state.params["hidden"]["centres"]
                )
                hidden = state.params["hidden"] | {"log_width": jnp.log(sigma)}
                return state.replace(params=state.params | {"hidden": hidden})

            first = state.step == self.kmeans_steps
            state = lax.cond(first, set_width, lambda s: s, state)
            return self._accumulate(state, batch, axis_name)

        state = lax.cond(
            state.step < self.kmeans_steps,
            lambda s: self._kmeans(s, x, axis_name),
            readout,
            state,
        )
        finite = jnp.isfinite(state.params["hidden"]["centres"]).all()
        return state.replace(step=state.step + 1), {"finite": finite}
