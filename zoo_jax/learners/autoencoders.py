"""How the autoencoders learn: their own objective, stage by stage, or on clamped batches."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from zoo_jax.data import sprites
from zoo_jax.errors import InputError, ZooError
from zoo_jax.learners.base import Batch, LearnerDefaults, apply_gradients, mean_over, sum_over
from zoo_jax.optim import regularization_penalty
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run


def _check_unit_range(run: Run, x: np.ndarray) -> None:
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo < 0 or hi > 1:
        raise InputError(f"{run.config.model} reconstructs intensities in [0, 1] (a Bernoulli "
                         f"decoder), got values in [{lo:g}, {hi:g}]")  # fmt: skip


def _check_own_loss(run: Run) -> None:
    cfg = run.config
    if cfg.loss != run.card.loss:
        raise ZooError(f"{cfg.model} trains on its own objective ({run.card.loss}), not "
                       f"--loss {cfg.loss}")  # fmt: skip
    if cfg.augment or cfg.loss_options:
        raise ZooError(f"{cfg.model} trains without augmentation or loss options")


class OwnObjective(LearnerDefaults):
    """What the autoencoders' learners check: the card's own loss, inputs in [0, 1]."""

    @classmethod
    def check_config(cls, run: Run) -> None:
        _check_own_loss(run)

    @classmethod
    def check_inputs(cls, run: Run, x: np.ndarray) -> None:
        _check_unit_range(run, x)


def _weighted_sums(terms: dict, weight: jax.Array, axis_name) -> dict:
    sums = {k: sum_over(jnp.sum(weight * v), axis_name) for k, v in terms.items()}
    return sums | {"count": sum_over(jnp.sum(weight), axis_name)}


def _device_key(rng: jax.Array, axis_name) -> jax.Array:
    """A key of each device's own under pmap (its corruption, its samples)."""
    return rng if axis_name is None else jax.random.fold_in(rng, lax.axis_index(axis_name))


def _eval_key(state: TrainState, axis_name) -> jax.Array:
    """Evaluation's noise (binarisation, the ELBO's sample): the same on every call of a
    state, not a step's key (those are fold_in(rng, step))."""
    return _device_key(jax.random.split(state.rng)[0], axis_name)


@dataclasses.dataclass(frozen=True)
class ReconstructionLearner(OwnObjective):
    """Backpropagation on the model's own objective (`model.objective`: reconstruction
    cross-entropy plus the model's penalty, or the VAE's −ELBO), stepped by optax; l1 / l2
    kernel penalties as the gradient learner's. Corruption, binarisation and posterior
    samples draw from the step's key (each device its own under pmap); a penalty of the
    batch (the sparse model's) is each device's batch's.

    Metrics: `loss` (the objective, per example) and the model's `terms` (`recon`, the
    per-pixel squared error against the clean input; `sparsity`, `activation`,
    `contraction`; the VAE's `nll` and `kl` in nats); evaluation reads the clean input
    (binarised with a fixed key for a VAE)."""

    model: nn.Module
    optimizer: optax.GradientTransformation
    l1: float = 0.0
    l2: float = 0.0
    compute_dtype: str = "float32"  # mixed precision (`apply_in`), set by the run
    mixed_precision: ClassVar[bool] = True

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("loss", *self.model.terms)

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> ReconstructionLearner:
        cfg = run.config
        return cls(model=run.model(), optimizer=run.optimizer(total_steps), l1=cfg.l1, l2=cfg.l2)

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        x = jnp.asarray(sample_batch["inputs"][:1], jnp.float32)
        variables = jax.jit(self.model.init)(params_rng, x)
        params = variables["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, self.optimizer.init(params), {},
                          run_rng)  # fmt: skip

    def terms(self, params, x, rng, *, train: bool, weight=None, **kw) -> dict:
        """`model.objective` of `x` with `params`, its noise drawn from `rng`."""
        return self.model_apply({"params": params}, x, weight, train=train,
                                rngs={"noise": rng}, method="objective", **kw)  # fmt: skip

    def training_batch(self, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict]:
        """What a step trains on: `(inputs, objective keywords)`; the batch's inputs here."""
        return jnp.asarray(batch["inputs"], jnp.float32), {}

    def update(self, state, batch, rng, *, axis_name=None):
        rng = _device_key(rng, axis_name)
        batch_rng, noise_rng = jax.random.split(rng)
        x, extra = self.training_batch(batch, batch_rng)

        def objective(params):
            terms = self.terms(params, x, noise_rng, train=True, **extra)
            loss = jnp.mean(terms["loss"])
            return loss + regularization_penalty(params, self.l1, self.l2), (loss, terms)

        grads, (loss, terms) = jax.grad(objective, has_aux=True)(state.params)
        new, metrics = apply_gradients(self.optimizer, state, grads, loss, {}, axis_name)
        means = {k: mean_over(jnp.mean(v), axis_name) for k, v in terms.items() if k != "loss"}
        return new.replace(step=state.step + 1), metrics | means

    def evaluate(self, state, batch, *, axis_name=None):
        weight = batch["weight"]
        terms = self.terms(state.params, jnp.asarray(batch["inputs"], jnp.float32),
                           _eval_key(state, axis_name), train=False, weight=weight)  # fmt: skip
        return _weighted_sums(terms, weight, axis_name)

    def samples(self, state: TrainState) -> Any:
        """A generative model's 64 samples (the VAE's, DCIGN's); None for the others."""
        if not hasattr(self.model, "sample"):
            return None
        return self.model_apply({"params": state.params}, jax.random.PRNGKey(0), 64,
                                method="sample")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DCIGNLearner(ReconstructionLearner):
    """The training procedure of Kulkarni et al. 2015, sec. 3.1, on the sprites: every step
    draws its own mini-batch from the renderer (`sprites.draw`, `sprites.render`, inside the
    step: the dataset's batch sets only its size), choosing one factor (scale, rotation, x,
    y, or the intrinsic shape) that alone varies in it; every latent unit but the ones
    assigned to that factor (one unit for scale, rotation, x and y; the rest for the shape)
    is clamped to the batch mean (`models.autoencoders.clamp_to_mean`: their
    gradient is their difference from it), and the VAE's −ELBO is minimised. With the
    model's `clamp=False` every factor varies in every batch and nothing is clamped: the
    plain VAE of the same network, trained on the same renderer. Under pmap each device
    draws and clamps its own batch. Evaluation: the −ELBO of the dataset's test sprites."""

    @classmethod
    def check_config(cls, run: Run) -> None:
        super().check_config(run)
        if run.config.dataset != "sprites":
            raise ZooError("dcign learns from the sprites renderer (--dataset sprites), "
                           f"not {run.config.dataset!r}")  # fmt: skip

    def training_batch(self, batch, rng):
        n = len(batch["inputs"])
        pick, draw = jax.random.split(rng)
        factors = len(sprites.FACTORS)
        if not self.model.clamp:
            return sprites.render(sprites.draw(draw, n, jnp.ones(factors, bool))), {}
        vary = jax.random.randint(pick, (), 0, factors)  # 0: the shape, 1-4: scale, ...
        rows = sprites.draw(draw, n, jnp.arange(factors) == vary)
        units = jnp.arange(self.model.latent_dim)
        # the paper's step 5: every unit but the trained one's is clamped (the intrinsic
        # units are trained together, when the shape varies)
        assigned = units < self.model.factor_units
        clamped = jnp.where(vary == 0, assigned, units != vary - 1)
        return sprites.render(rows), {"clamped": clamped}


@dataclasses.dataclass(frozen=True)
class LayerwiseLearner(OwnObjective):
    """Greedy layer-wise pre-training, then supervised fine-tuning (Bengio et al. 2007;
    Vincent et al. 2010, sec. 3.5), as stages of one run: `model.pretrain_epochs` epochs for
    each layer, bottom up, each step training one layer (`model.layer_objective`: its (denoising) reconstruction of the code below, the
    layers below fixed); the rest fine-tunes every weight and the softmax layer on the
    cross-entropy of the labels. Each stage has its own state of the run's optimizer, so a
    checkpoint taken in any stage resumes in it. Under pmap gradients are averaged.

    Metrics: `loss` (the stage's objective in training; the cross-entropy in evaluation),
    `accuracy` (the softmax layer's, untrained during pre-training), and `recon` in
    evaluation: the per-pixel squared error of the input through the whole stack and back."""

    model: nn.Module
    optimizer: optax.GradientTransformation
    phase_steps: int
    compute_dtype: str = "float32"  # mixed precision (`apply_in`), set by the run
    mixed_precision: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "recon")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> LayerwiseLearner:
        model = run.model()
        epoch_steps = (total_steps or 0) // run.config.epochs  # the stages are whole epochs
        return cls(model=model, optimizer=run.optimizer(total_steps),
                   phase_steps=max(model.pretrain_epochs * epoch_steps, 1))  # fmt: skip

    @property
    def stages(self) -> list[str]:
        return [f"layers_{i}" for i in range(len(self.model.hidden))]

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        x = jnp.asarray(sample_batch["inputs"][:1], jnp.float32)
        params = jax.jit(self.model.init)(params_rng, x)["params"]
        opt_state = {name: self.optimizer.init(params[name]) for name in self.stages}
        opt_state["finetune"] = self.optimizer.init(params)
        return TrainState(jnp.zeros((), jnp.int32), params, opt_state, {}, run_rng)

    def _step(self, state, stage: str, grads, axis_name):
        params = state.params if stage == "finetune" else state.params[stage]
        grads = mean_over(grads, axis_name)
        updates, opt = self.optimizer.update(grads, state.opt_state[stage], params)
        params = optax.apply_updates(params, updates)
        if stage != "finetune":
            params = state.params | {stage: params}
        return state.replace(params=params, opt_state=state.opt_state | {stage: opt})

    def _logits(self, params, x):
        return self.model_apply({"params": params}, x)

    def _pretrain(self, layer: int, state, x, labels, rng, axis_name):
        stage = self.stages[layer]

        def objective(p):
            params = state.params | {stage: p}
            terms = self.model_apply({"params": params}, x, layer, train=True,
                                     rngs={"noise": rng}, method="layer_objective")  # fmt: skip
            return jnp.mean(terms["loss"])

        loss, grads = jax.value_and_grad(objective)(state.params[stage])
        logits = self._logits(state.params, x)
        return self._step(state, stage, grads, axis_name), loss, logits

    def _finetune(self, state, x, labels, axis_name):
        def objective(params):
            logits = self._logits(params, x)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, logits

        (loss, logits), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        return self._step(state, "finetune", grads, axis_name), loss, logits

    def update(self, state, batch, rng, *, axis_name=None):
        x, labels = jnp.asarray(batch["inputs"], jnp.float32), batch["labels"]
        rng = _device_key(rng, axis_name)
        phase = jnp.minimum(state.step // self.phase_steps, len(self.stages))
        branches = [
            functools.partial(self._pretrain, i, x=x, labels=labels, rng=rng, axis_name=axis_name)
            for i in range(len(self.stages))
        ] + [functools.partial(self._finetune, x=x, labels=labels, axis_name=axis_name)]
        new, loss, logits = lax.switch(phase, branches, state)
        loss = mean_over(loss, axis_name)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.stack([jnp.isfinite(p).all() for p in jax.tree.leaves(new.params)])
        )
        new = lax.cond(finite, lambda: new, lambda: state)
        accuracy = mean_over(jnp.mean(jnp.argmax(logits, -1) == labels), axis_name)
        metrics = {"loss": loss, "accuracy": accuracy, "finite": finite, "phase": phase}
        return new.replace(step=state.step + 1), metrics

    def evaluate(self, state, batch, *, axis_name=None):
        x, labels = jnp.asarray(batch["inputs"], jnp.float32), batch["labels"]
        logits = self._logits(state.params, x)
        images = self.model_apply({"params": state.params}, x, method="reconstruct")
        terms = {
            "loss": optax.softmax_cross_entropy_with_integer_labels(logits, labels),
            "accuracy": (jnp.argmax(logits, -1) == labels).astype(jnp.float32),
            "recon": jnp.mean((images.reshape(x.shape) - x) ** 2, range(1, x.ndim)),
        }
        return _weighted_sums(terms, batch["weight"], axis_name)
