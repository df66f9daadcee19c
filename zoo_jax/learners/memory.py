"""How the memory models learn: the NTM on its bit sequences, MemN2N with linear start."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from zoo_jax.errors import ZooError
from zoo_jax.learners.base import Batch, LearnerDefaults, apply_gradients, new_state, sum_over
from zoo_jax.learners.gradient import GradientLearner
from zoo_jax.optim import regularization_penalty
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run


@dataclasses.dataclass(frozen=True)
class BitSequenceLearner(LearnerDefaults):
    """Backpropagation on the sigmoid cross-entropy of the output bits that are asked for
    (targets 0 / 1; −1 elsewhere is left out), each sequence's mean over its bits, the batch's
    mean over sequences; l1 / l2 kernel penalties as the gradient learner's.

    Metrics: `loss` (nats per bit) and `bit_errors`, the bits per sequence on the wrong side
    of 0.5 (the figure Graves et al. and Collier & Beel report)."""

    model: nn.Module
    optimizer: optax.GradientTransformation
    l1: float = 0.0
    l2: float = 0.0
    compute_dtype: str = "float32"  # mixed precision (`apply_in`), set by the run
    mixed_precision: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("loss", "bit_errors")

    @classmethod
    def check_config(cls, run: Run) -> None:
        cfg = run.config
        if cfg.loss != "binary_crossentropy" or cfg.loss_options or cfg.augment:
            raise ZooError(f"{cfg.model} trains on the bits' binary cross-entropy, without "
                           "loss options or augmentation")  # fmt: skip

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> BitSequenceLearner:
        cfg = run.config
        return cls(run.model(), run.optimizer(total_steps), cfg.l1, cfg.l2)

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        x = jnp.asarray(sample_batch["inputs"][:1], jnp.float32)
        return new_state(self.optimizer, jax.jit(self.model.init)(params_rng, x), run_rng)

    def terms(self, params, batch: Batch) -> dict[str, jax.Array]:
        """Per-sequence `loss` and `bit_errors`."""
        logits = self.model_apply({"params": params}, jnp.asarray(batch["inputs"], jnp.float32))
        targets = batch["labels"]
        asked = targets >= 0
        y = jnp.clip(targets, 0, 1).astype(logits.dtype)
        nats = optax.sigmoid_binary_cross_entropy(logits, y) * asked
        wrong = ((logits > 0) != (y > 0.5)) & asked
        per_sequence = lambda v: jnp.sum(v, axis=(1, 2))
        return {
            "loss": per_sequence(nats) / jnp.maximum(per_sequence(asked), 1),
            "bit_errors": per_sequence(wrong).astype(jnp.float32),
        }

    def update(self, state, batch, rng, *, axis_name=None):
        def objective(params):
            terms = self.terms(params, batch)
            loss = jnp.mean(terms["loss"])
            return loss + regularization_penalty(params, self.l1, self.l2), (loss, terms)

        grads, (loss, terms) = jax.grad(objective, has_aux=True)(state.params)
        new, metrics = apply_gradients(self.optimizer, state, grads, loss, {}, axis_name)
        errors = jnp.mean(terms["bit_errors"])
        errors = errors if axis_name is None else lax.pmean(errors, axis_name)
        return new.replace(step=state.step + 1), metrics | {"bit_errors": errors}

    def evaluate(self, state, batch, *, axis_name=None):
        terms, weight = self.terms(state.params, batch), batch["weight"]
        sums = {k: sum_over(jnp.sum(weight * v), axis_name) for k, v in terms.items()}
        return sums | {"count": sum_over(jnp.sum(weight), axis_name)}


@dataclasses.dataclass(frozen=True)
class LinearStartLearner(GradientLearner):
    """The gradient learner with MemN2N's linear start (Sukhbaatar et al. 2015, sec. 4.2):
    the first `linear_steps` steps train without the hops' softmax (`linear=True`), the
    rest with it. The paper puts the softmax back when the validation loss stops falling;
    we put it back after the model's `linear_start_epochs` (20, the reference code's
    `ls_nepochs`), so the switch is a comparison of the step in the graph, not a host
    decision. Evaluation uses the model as it trains at that step."""

    linear_steps: int = 0

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> LinearStartLearner:
        learner = super().from_config(run, total_steps)
        per_epoch = (total_steps or 0) // run.config.epochs
        linear_steps = per_epoch * min(learner.model.linear_start_epochs, run.config.epochs)
        return dataclasses.replace(learner, linear_steps=linear_steps)

    def _forward(self, params, model_state, batch, *, train: bool, rng=None):
        rngs = {"dropout": rng} if rng is not None else None
        variables = {"params": params, **model_state}
        logits = self.model_apply(variables, batch["inputs"], train=train,
                                  linear=batch["linear"], rngs=rngs)  # fmt: skip
        return logits, batch["labels"], model_state

    def update(self, state, batch, rng, *, axis_name=None):
        linear = state.step < self.linear_steps
        return super().update(state, batch | {"linear": linear}, rng, axis_name=axis_name)

    def evaluate(self, state, batch, *, axis_name=None):
        linear = state.step < self.linear_steps
        return super().evaluate(state, batch | {"linear": linear}, axis_name=axis_name)
