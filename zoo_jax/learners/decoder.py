"""A class-conditional decoder trained by regression: the deconvolutional network's learner."""

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
from zoo_jax.data.augment import shift_images
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


@dataclasses.dataclass(frozen=True)
class ClassDecoderLearner(LearnerDefaults):
    """Trains a decoder (the DN) to draw each example's image from its class vector, by
    regression on the pixels.

    The code of an example is its one-hot class followed by a shift `(dy, dx) / max_shift`;
    the target is the image moved by `(dy, dx)` pixels. Training draws the shift uniformly
    from `[-max_shift, max_shift]²` per example, so one class vector stands for a family of
    images and the decoder learns the class and the transformation apart, as Dosovitskiy et
    al. (CVPR 2015) condition theirs on class, view and transformation parameters.
    Evaluation uses no shift. The model maps codes to image logits; the per-pixel loss is
    `losses.for_images`. Metrics: `loss`, and `pixel_agreement`: the fraction of pixels on
    the same side of 0.5 in the drawn and the target image, averaged per image (not a class
    accuracy, so not called one).
    The classifier's judgement of the drawn images is `experiments/deconv_net.py`'s.
    """

    metrics = ("loss", "pixel_agreement")
    model: nn.Module
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    optimizer: optax.GradientTransformation
    num_classes: int
    max_shift: int = 2
    l1: float = 0.0
    l2: float = 0.0
    compute_dtype: str = "float32"  # mixed precision (`apply_in`), set by the run
    mixed_precision: ClassVar[bool] = True

    @classmethod
    def check_config(cls, run: Run) -> None:
        cfg = run.config
        losses.for_images(cfg.loss, **cfg.loss_options)
        if cfg.augment is not None:
            raise ZooError(f"--augment works on image classifiers, not on {cfg.model}")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> ClassDecoderLearner:
        cfg = run.config
        return cls(
            model=run.model(),
            loss=losses.for_images(cfg.loss, **cfg.loss_options),
            optimizer=run.optimizer(total_steps),
            num_classes=run.num_classes,
            l1=cfg.l1,
            l2=cfg.l2,
        )

    def code(self, labels: jax.Array, shifts: jax.Array) -> jax.Array:
        one_hot = jax.nn.one_hot(labels, self.num_classes)
        return jnp.concatenate([one_hot, shifts / max(self.max_shift, 1)], axis=-1)

    def generate(self, params, labels: jax.Array, shifts: jax.Array | None = None) -> jax.Array:
        """Images in [0, 1] for `labels` (and `(dy, dx)` shifts; default none)."""
        shifts = jnp.zeros((len(labels), 2), jnp.int32) if shifts is None else shifts
        return jax.nn.sigmoid(self.model_apply({"params": params}, self.code(labels, shifts)))

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        n = len(sample_batch["inputs"])
        code = self.code(jnp.zeros((n,), jnp.int32), jnp.zeros((n, 2), jnp.int32))
        variables = jax.jit(functools.partial(self.model.init, train=False))(params_rng, code)
        return new_state(self.optimizer, variables, run_rng)

    def _scores(self, params, batch: Batch, shifts: jax.Array):
        targets = shift_images(batch["inputs"], shifts, self.max_shift)
        logits = self.model_apply({"params": params}, self.code(batch["labels"], shifts))
        if logits.shape != targets.shape:
            raise ZooError(
                f"the decoder draws {logits.shape[1:]} images, the data has {targets.shape[1:]}"
            )
        agree = jnp.mean(((logits > 0) == (targets > 0.5)).reshape(len(logits), -1), axis=-1)
        return self.loss(targets, logits), agree

    def update(self, state, batch, rng, *, axis_name=None):
        if axis_name is not None:  # different shifts on every device
            rng = jax.random.fold_in(rng, lax.axis_index(axis_name))
        m = self.max_shift
        shifts = jax.random.randint(rng, (len(batch["labels"]), 2), -m, m + 1)

        def objective(params):
            per_example, agree = self._scores(params, batch, shifts)
            data_loss = jnp.mean(per_example)
            total = data_loss + regularization_penalty(params, self.l1, self.l2)
            return total, (data_loss, agree)

        grads, (data_loss, agree) = jax.grad(objective, has_aux=True)(state.params)
        new, metrics = apply_gradients(
            self.optimizer, state, grads, data_loss, state.model_state, axis_name
        )
        agreement = mean_over(jnp.mean(agree), axis_name)
        return new.replace(step=state.step + 1), metrics | {"pixel_agreement": agreement}

    def evaluate(self, state, batch, *, axis_name=None):
        shifts = jnp.zeros((len(batch["labels"]), 2), jnp.int32)
        per_example, agree = self._scores(state.params, batch, shifts)
        weight = batch["weight"]
        return {
            "loss": sum_over(jnp.sum(weight * per_example), axis_name),
            "pixel_agreement": sum_over(jnp.sum(weight * agree), axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }
