"""Backpropagation on a loss: the classifiers and language models of the zoo."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from zoo_jax import losses
from zoo_jax.data import augment as augmentations
from zoo_jax.errors import ZooError
from zoo_jax.learners.base import (
    Batch,
    LearnerDefaults,
    apply_gradients,
    mean_over,
    new_state,
    sum_over,
)
from zoo_jax.optim import regularization_penalty
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run

AUX_WEIGHT = 0.3  # Szegedy et al. 2015: auxiliary classifier losses count 0.3 in training


@dataclasses.dataclass(frozen=True)
class GradientLearner(LearnerDefaults):
    """Backpropagation on `loss(labels, model(inputs))` + kernel penalties, stepped by optax.

    Batches: `inputs` `(batch, *input_shape)`, `labels` `(batch,)` int32 (or `(batch,
    length)` token ids for a language model). `loss` is per-example (per position for a
    language model, whose logits are `(batch, length, vocab)`) and takes logits
    (`from_logits=True` already bound). A model that returns `(logits, *aux_logits)` in
    training adds `AUX_WEIGHT` × each auxiliary loss; the reported loss and accuracy are the
    main head's. A non-finite loss or gradient leaves the state unchanged for that step
    (`apply_gradients`), in the graph, so the step has no host round-trip. `augment`
    (`zoo_jax.data.augment`), when set, transforms the training inputs inside the step with
    a key of its own; evaluation sees the inputs as they are.

    `compute_dtype` "bfloat16" is mixed precision (`learners.base.apply_in`): parameters and
    optimizer state stay float32, every product and activation of the forward pass runs in
    bfloat16, and the outputs come back as float32 before the loss. Normalisation statistics
    stay float32 (Flax's `force_float32_reductions`; BatchNorm's running averages are float32
    state).

    Metrics: `loss` and `accuracy`, per example, or per token for a language model.
    """

    model: nn.Module
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    optimizer: optax.GradientTransformation
    l1: float = 0.0
    l2: float = 0.0
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    compute_dtype: str = "float32"
    mixed_precision: ClassVar[bool] = True

    @classmethod
    def check_config(cls, run: Run) -> None:
        cfg = run.config
        losses.for_classifier(cfg.loss, **cfg.loss_options)
        if cfg.augment is not None:
            augmentations.get(cfg.augment)  # the name
            if run.card.input_kind != "images":
                raise ZooError(f"--augment works on image classifiers, not on {cfg.model}")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> GradientLearner:
        cfg = run.config
        return cls(
            model=run.model(),
            loss=losses.for_classifier(cfg.loss, **cfg.loss_options),
            optimizer=run.optimizer(total_steps),
            l1=cfg.l1,
            l2=cfg.l2,
            augment=augmentations.get(cfg.augment) if cfg.augment else None,
        )

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        init = jax.jit(functools.partial(self.model.init, train=False))  # one compile, not
        variables = init(params_rng, *self.model_args(sample_batch["inputs"]))  # op by op
        return new_state(self.optimizer, variables, run_rng)

    def _apply(self, params, model_state, inputs, *, train: bool, rng=None, extra=()):
        variables = {"params": params, **model_state}
        rngs = {"dropout": rng} if rng is not None else None
        if train and model_state:
            return self.model_apply(variables, inputs, *extra, train=True, rngs=rngs,
                                    mutable=list(model_state))  # fmt: skip
        return self.model_apply(variables, inputs, *extra, train=train, rngs=rngs), model_state

    def _forward(self, params, model_state, batch, *, train: bool, rng=None):
        """`(logits, targets, model_state)`: what the loss compares, per example."""
        logits, model_state = self._apply(
            params, model_state, batch["inputs"], train=train, rng=rng
        )
        return logits, batch["labels"], model_state

    def _target_weights(self, targets) -> jax.Array | None:
        """Per-target weights of the training loss; None: all count alike."""
        return None

    def update(self, state, batch, rng, *, axis_name=None):
        if axis_name is not None:  # a different dropout mask on every device
            rng = jax.random.fold_in(rng, lax.axis_index(axis_name))
        if self.augment is not None:
            rng, augment_rng = jax.random.split(rng)
            batch = batch | {"inputs": self.augment(augment_rng, batch["inputs"])}

        def objective(params):
            logits, targets, model_state = self._forward(
                params, state.model_state, batch, train=True, rng=rng
            )
            aux = ()
            if isinstance(logits, tuple):  # auxiliary classifiers (GoogLeNet), training only
                logits, *aux = logits
            w = self._target_weights(targets)
            average = lambda v: jnp.mean(v) if w is None else jnp.sum(v * w) / jnp.sum(w)
            data_loss = average(self.loss(targets, logits))
            aux_loss = sum(average(self.loss(targets, a)) for a in aux)
            total = data_loss + AUX_WEIGHT * aux_loss
            total = total + regularization_penalty(params, self.l1, self.l2)
            hits = jnp.argmax(logits, -1) == targets
            return total, (data_loss, average(hits), model_state)

        grads, (data_loss, accuracy, model_state) = jax.grad(objective, has_aux=True)(state.params)
        new, metrics = apply_gradients(
            self.optimizer, state, grads, data_loss, model_state, axis_name
        )
        accuracy = mean_over(accuracy, axis_name)
        return new.replace(step=state.step + 1), metrics | {"accuracy": accuracy}

    def evaluate(self, state, batch, *, axis_name=None):
        """Sums over the batch; a model with a label per position (a language model) is
        scored per token: `count` is then the number of tokens, `accuracy` the right ones."""
        logits, targets, _ = self._forward(state.params, state.model_state, batch, train=False)
        losses = self.loss(targets, logits)
        weight = jnp.broadcast_to(
            batch["weight"].reshape(-1, *[1] * (losses.ndim - 1)), losses.shape
        )
        correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
        return {
            "loss": sum_over(jnp.sum(weight * losses), axis_name),
            "accuracy": sum_over(jnp.sum(weight * correct), axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }
