"""How the capsule network learns: the margin loss plus the scaled-down reconstruction."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax import losses
from zoo_jax.data import augment
from zoo_jax.errors import ZooError
from zoo_jax.learners.base import apply_gradients, mean_over, sum_over
from zoo_jax.learners.gradient import GradientLearner
from zoo_jax.models.capsules import RECONSTRUCTION_WEIGHT
from zoo_jax.optim import regularization_penalty

if TYPE_CHECKING:
    from zoo_jax.train.run import Run


@dataclasses.dataclass(frozen=True)
class CapsuleLearner(GradientLearner):
    """Sabour et al. 2017, sec. 3–4.1: the margin loss (`losses.margin_loss`: m⁺ 0.9, m⁻
    0.1, λ 0.5) on the digit capsules' lengths, plus 0.0005 × the sum of squared pixel
    errors of the reconstruction, whose decoder reads the true class's capsule in training
    and the longest capsule at test. Augmentation (`--augment shift`, the paper's) as the
    gradient learner's.

    Metrics: `loss` (the total), `accuracy` (the longest capsule), `margin` and
    `reconstruction` (the summed squared error per image, unscaled)."""

    metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "margin", "reconstruction")

    @classmethod
    def check_config(cls, run: Run) -> None:
        cfg = run.config
        if cfg.loss != "margin" or cfg.loss_options:
            raise ZooError(f"{cfg.model} trains on the margin loss and its reconstruction, not "
                           f"--loss {cfg.loss}")  # fmt: skip
        if cfg.augment is not None:
            augment.get(cfg.augment)  # the name

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> CapsuleLearner:
        cfg = run.config
        return cls(model=run.model(), loss=None, optimizer=run.optimizer(total_steps),
                   l1=cfg.l1, l2=cfg.l2,
                   augment=augment.get(cfg.augment) if cfg.augment else None)  # fmt: skip

    def terms(self, params, x, labels, *, train: bool) -> dict[str, jax.Array]:
        """Per-example `loss`, `margin`, `reconstruction` and `accuracy`."""
        lengths, images = self.model_apply({"params": params}, x, labels if train else None,
                                           method="outputs")  # fmt: skip
        margin = losses.margin_loss(labels, lengths)
        terms = {"margin": margin, "accuracy": (jnp.argmax(lengths, -1) == labels) * 1.0}
        if images is None:
            return terms | {"loss": margin, "reconstruction": jnp.zeros_like(margin)}
        sse = jnp.sum(jnp.square(images - x).reshape(len(x), -1), -1)
        return terms | {"loss": margin + RECONSTRUCTION_WEIGHT * sse, "reconstruction": sse}

    def update(self, state, batch, rng, *, axis_name=None):
        x, labels = batch["inputs"], batch["labels"]
        if self.augment is not None:
            if axis_name is not None:
                rng = jax.random.fold_in(rng, lax.axis_index(axis_name))
            x = self.augment(rng, x)

        def objective(params):
            terms = self.terms(params, x, labels, train=True)
            means = {k: jnp.mean(v) for k, v in terms.items()}
            return means["loss"] + regularization_penalty(params, self.l1, self.l2), means

        grads, means = jax.grad(objective, has_aux=True)(state.params)
        new, metrics = apply_gradients(self.optimizer, state, grads, means["loss"], {}, axis_name)
        extra = {
            k: mean_over(means[k], axis_name) for k in ("accuracy", "margin", "reconstruction")
        }
        return new.replace(step=state.step + 1), metrics | extra

    def evaluate(self, state, batch, *, axis_name=None):
        terms = self.terms(state.params, batch["inputs"], batch["labels"], train=False)
        weight = batch["weight"]
        sums = {k: sum_over(jnp.sum(weight * v), axis_name) for k, v in terms.items()}
        return sums | {"count": sum_over(jnp.sum(weight), axis_name)}
