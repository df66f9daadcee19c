"""Competitive learning: the self-organising map's update, online or as Kohonen's batch map."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax.learners.base import Batch, LearnerDefaults, flat_inputs, mean_over, sum_over
from zoo_jax.models.shallow import KohonenMap, squared_distances
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run

ADJACENT = 1.42  # MiniSom's topographic error: the two best nodes are 8-neighbours


def asymptotic_decay(value: float, t: jax.Array, total: float) -> jax.Array:
    """value / (1 + t / (total / 2)): MiniSom's default schedule for both the learning rate
    and the radius (they end at a third of where they start)."""
    return value / (1 + t / (total / 2))


def neighbourhood(grid: jax.Array, winner: jax.Array, sigma: jax.Array) -> jax.Array:
    """exp(−‖g_k − g_winner‖² / (2σ²)) for every node k (the Gaussian of MiniSom)."""
    return jnp.exp(-jnp.sum((grid - grid[winner]) ** 2, -1) / (2 * sigma**2))


@dataclasses.dataclass(frozen=True)
class SOMLearner(LearnerDefaults):
    """Kohonen's self-organising map (Kohonen 1982; the batch map of Kohonen, *Self-Organizing
    Maps*, 3rd ed. 2001, §3.14).

    Online (`model.batch_map` False): each example in turn moves every node toward it,
    w_k += η(t) h_k(t) (x − w_k), h the Gaussian `neighbourhood` of the best matching unit,
    η and σ on MiniSom's `asymptotic_decay` over t = examples seen of `total_examples`;
    under pmap the devices' maps are averaged after each batch (as the perceptron does).
    Batch map: each epoch adds up Σ h_k(bmu_i) x_i and Σ h_k(bmu_i) over its examples (`psum`
    over devices) and sets w_k to their ratio at its last step, σ from the epoch's start.

    The codebook starts at random examples of the first batch (MiniSom's
    `random_weights_init`). Nodes are labelled by the majority class of the training
    examples they win, counted with a half-life of a twentieth of the run (`total_steps` /
    20 updates), so the labels are those of the map as it ends, not as it began (counted
    over the whole run, the early, unordered map's wins cost 11 points on MNIST);
    evaluation classifies by the best matching unit's label.

    Metrics: `quantization_error` (mean distance to the best matching unit),
    `topographic_error` (share of examples whose two best nodes are not grid neighbours),
    `accuracy`.
    """

    model: KohonenMap
    num_classes: int
    total_examples: int
    steps_per_epoch: int
    learning_rate: float = 0.5
    label_half_life: float = 1.0  # in updates
    metrics = ("quantization_error", "topographic_error", "accuracy")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> SOMLearner:
        total = max(total_steps or 1, 1)
        return cls(
            model=run.model(),
            num_classes=run.num_classes,
            total_examples=total * run.config.batch_size,
            steps_per_epoch=max(total // run.config.epochs, 1),
            learning_rate=run.config.learning_rate or 0.5,
            label_half_life=max(total / 20, 1.0),
        )

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        x = flat_inputs(sample_batch)
        params = self.model.init(rng, x[:1])["params"]
        k = len(params["codebook"])
        pick_rng, run_rng = jax.random.split(rng)
        codebook = x[jax.random.randint(pick_rng, (k,), 0, len(x))]
        stats = {
            "hits": jnp.zeros((k, self.num_classes)),
            "numerator": jnp.zeros_like(codebook),
            "denominator": jnp.zeros((k,)),
        }
        return TrainState(jnp.zeros((), jnp.int32), {"codebook": codebook}, stats, {}, run_rng)

    def update(self, state, batch, rng, *, axis_name=None):
        x = flat_inputs(batch)
        grid = self.model.grid()
        w = state.params["codebook"]
        local = len(x)
        everyone = sum_over(jnp.float32(local), axis_name)
        seen = state.step.astype(jnp.float32) * everyone  # examples before this batch
        d2 = squared_distances(x, w)
        bmu = jnp.argmin(d2, -1)
        quantization = jnp.sqrt(jnp.min(d2, -1))

        if self.model.batch_map:
            epoch_start = seen - (state.step % self.steps_per_epoch) * everyone
            sigma = asymptotic_decay(self.model.radius, epoch_start, self.total_examples)
            h = jax.vmap(neighbourhood, (None, 0, None))(grid, bmu, sigma)  # (n, k)
            stats = state.opt_state
            numerator = stats["numerator"] + sum_over(
                jnp.matmul(h.T, x, precision="highest"), axis_name
            )
            denominator = stats["denominator"] + sum_over(h.sum(0), axis_name)
            end = (state.step + 1) % self.steps_per_epoch == 0
            ratio = numerator / jnp.maximum(denominator, 1e-12)[:, None]
            w = jnp.where(end & (denominator > 0)[:, None], ratio, w)
            numerator = jnp.where(end, 0.0, numerator)
            denominator = jnp.where(end, 0.0, denominator)
            stats = stats | {"numerator": numerator, "denominator": denominator}
        else:
            start = seen
            if axis_name is not None:  # this device's examples follow the previous devices'
                start = start + lax.axis_index(axis_name) * local

            def visit(w, example):
                xi, t = example
                eta = asymptotic_decay(self.learning_rate, t, self.total_examples)
                sigma = asymptotic_decay(self.model.radius, t, self.total_examples)
                # ‖w_k‖² − 2 w_k·x: a matrix-vector product, half the time of ‖w_k − x‖² here
                winner = jnp.argmin(jnp.sum(w * w, -1) - 2 * (w @ xi))
                h = neighbourhood(grid, winner, sigma)
                return w + (eta * h)[:, None] * (xi - w), None

            w, _ = lax.scan(visit, w, (x, start + jnp.arange(local, dtype=jnp.float32)))
            w = mean_over(w, axis_name)
            stats = state.opt_state

        decay = 0.5 ** (1.0 / self.label_half_life)
        won = jnp.matmul(
            jax.nn.one_hot(bmu, len(w)).T, jax.nn.one_hot(batch["labels"], self.num_classes)
        )
        hits = decay * stats["hits"] + sum_over(won, axis_name)
        new = state.replace(
            step=state.step + 1, params={"codebook": w}, opt_state=stats | {"hits": hits}
        )
        error = mean_over(jnp.mean(quantization), axis_name)
        return new, {"quantization_error": error, "finite": jnp.isfinite(w).all()}

    def node_labels(self, state: TrainState) -> jax.Array:
        """Each node's class: the majority of the training examples it won lately (a node
        that won none is class 0)."""
        return jnp.argmax(state.opt_state["hits"], -1)

    def evaluate(self, state, batch, *, axis_name=None):
        x = flat_inputs(batch)
        d2 = squared_distances(x, state.params["codebook"])
        _, best = lax.top_k(-d2, 2)
        grid = self.model.grid()
        apart = jnp.linalg.norm(grid[best[:, 0]] - grid[best[:, 1]], axis=-1) > ADJACENT
        right = self.node_labels(state)[best[:, 0]] == batch["labels"]
        weight = batch["weight"]
        total = lambda v: sum_over(jnp.sum(weight * v.astype(jnp.float32)), axis_name)
        return {
            "quantization_error": total(jnp.sqrt(jnp.min(d2, -1))),
            "topographic_error": total(apart),
            "accuracy": total(right),
            "count": sum_over(jnp.sum(weight), axis_name),
        }
