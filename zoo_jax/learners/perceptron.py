"""The perceptron rule: mistake-driven, one example at a time, no loss and no optimizer."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax.learners.base import Batch, LearnerDefaults, flat_inputs, mean_over, sum_over
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run


@dataclasses.dataclass(frozen=True)
class PerceptronLearner(LearnerDefaults):
    """Rosenblatt's rule, multi-class: for each example in turn, if the top-scoring class ŷ
    is not the label y, add the input to y's weights and subtract it from ŷ's (and ±1 to the
    biases). The examples of a batch are visited in order by a `lax.scan`, so one device
    runs the online rule exactly.

    `averaged` (Freund & Schapire 1999; Collins 2002): predict with the mean of the weights
    after every example seen, kept as a running mean in `model_state["average"]`; the last
    iterate of the plain rule swings by points from epoch to epoch, the average does not.

    Under pmap each device runs its shard online from the same weights and the devices'
    changes are averaged (iterative parameter mixing, McDonald, Hall & Mann 2010): with one
    device it is the online rule. The card's optimizer, learning rate and loss are not used.

    Metrics: `accuracy` (training: the share of examples classified right before their update).
    """

    model: nn.Module
    averaged: bool = False
    metrics = ("accuracy",)

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> PerceptronLearner:
        return cls(model=run.model())

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params = self.model.init(rng, sample_batch["inputs"][:1])["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=(),
            model_state={"average": jax.tree.map(jnp.zeros_like, params), "seen": jnp.zeros(())},
            rng=rng,
        )

    def update(self, state, batch, rng, *, axis_name=None):
        x = flat_inputs(batch)
        k = state.params["bias"].shape[-1]

        def visit(carry, example):
            w, b, avg_w, avg_b, seen = carry
            xi, yi = example
            predicted = jnp.argmax(xi @ w + b)
            change = (jax.nn.one_hot(yi, k) - jax.nn.one_hot(predicted, k)) * (predicted != yi)
            w, b = w + jnp.outer(xi, change), b + change
            seen = seen + 1
            avg_w, avg_b = avg_w + (w - avg_w) / seen, avg_b + (b - avg_b) / seen
            return (w, b, avg_w, avg_b, seen), predicted == yi

        p, avg = state.params, state.model_state["average"]
        start = (p["kernel"], p["bias"], avg["kernel"], avg["bias"], state.model_state["seen"])
        (w, b, avg_w, avg_b, seen), right = lax.scan(visit, start, (x, batch["labels"]))
        # parameter mixing: every device's weights and running mean, averaged
        params = {"kernel": mean_over(w, axis_name), "bias": mean_over(b, axis_name)}
        average = {"kernel": mean_over(avg_w, axis_name), "bias": mean_over(avg_b, axis_name)}
        seen = state.model_state["seen"] + sum_over(jnp.float32(len(x)), axis_name)
        new = state.replace(
            step=state.step + 1, params=params, model_state={"average": average, "seen": seen}
        )
        accuracy = mean_over(jnp.mean(right.astype(jnp.float32)), axis_name)
        return new, {"accuracy": accuracy, "finite": jnp.isfinite(accuracy)}

    def predict_params(self, state: TrainState):
        """The weights that classify: the running mean if `averaged`, else the last iterate."""
        return state.model_state["average"] if self.averaged else state.params

    def evaluate(self, state, batch, *, axis_name=None):
        scores = self.model.apply({"params": self.predict_params(state)}, batch["inputs"])
        right = (jnp.argmax(scores, -1) == batch["labels"]).astype(jnp.float32)
        return {
            "accuracy": sum_over(jnp.sum(batch["weight"] * right), axis_name),
            "count": sum_over(jnp.sum(batch["weight"]), axis_name),
        }


@dataclasses.dataclass(frozen=True)
class AveragedPerceptronLearner(PerceptronLearner):
    """`PerceptronLearner(averaged=True)`, the learner of the `averaged_perceptron` card."""

    averaged: bool = True
