"""How the adversarial networks learn: two players, one `TrainState`, one engine."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from zoo_jax.errors import InputError, UnknownNameError, ZooError
from zoo_jax.learners.base import (
    Batch,
    LearnerDefaults,
    apply_gradients,
    init_players,
    mean_over,
    sum_over,
)
from zoo_jax.models.adversarial import TwoPlayers
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run

GAN_LOSSES = ("non_saturating", "minimax")
PLAYERS = ("generator", "discriminator")


@dataclasses.dataclass(frozen=True)
class AdversarialLearner(LearnerDefaults):
    """The minimax game of Goodfellow et al. 2014 (Algorithm 1), both players in one state.

    `params`, `opt_state` and `model_state` are dicts by player (`base.init_players`); each
    player has its own state of the run's optimizer (the cards: Adam 2e-4, β1 0.5). Every
    update is one discriminator step on this batch's real images and as many samples of
    G; every `disc_steps`-th update (Goodfellow's k; 1 in the paper's experiments) is
    followed by one generator step on fresh noise, so the k discriminator steps each see a
    fresh minibatch, as the algorithm draws them. D's loss is the cross-entropy of real
    against generated; the generator minimises, by the run's loss (`--loss`):

    - `non_saturating`: −log D(G(z)), the paper's recommendation (sec. 3) and the default;
    - `minimax`: log(1 − D(G(z))), the game's own value, which saturates early in training.

    Real images (in [0, 1]) are mapped to the generator's range (`to_model_range`). Under
    pmap each device takes its rows of the global batch's noise (so pmap draws what one
    device draws) and its own dropout masks; gradients and batch statistics are averaged
    (`apply_gradients`). The generator step's pass through D uses the dropout key of the
    discriminator step's pass over samples. A non-finite loss or gradient of either player leaves that
    player's state as it was and reports `finite = False` (the loop's NaN policy acts).

    Metrics: `d_loss` (per example: −log D(x) − log(1 − D(G(z)))), `g_loss` (the generator's
    loss; on updates without a generator step, its value on the discriminator step's
    samples), `d_real` and `d_fake` (mean D(x) and D(G(z))). Evaluation scores the test
    images against as many samples (noise from the state's key, per device).
    """

    model: TwoPlayers
    optimizer: optax.GradientTransformation
    gan_loss: str = "non_saturating"
    compute_dtype: str = "float32"  # mixed precision (`apply_in`), set by the run
    mixed_precision: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss", "d_real", "d_fake")

    @classmethod
    def check_config(cls, run: Run) -> None:
        cfg = run.config
        if cfg.loss not in GAN_LOSSES:
            raise UnknownNameError("GAN loss", cfg.loss, GAN_LOSSES)
        if cfg.l1 or cfg.l2 or cfg.augment or cfg.loss_options:
            raise ZooError(f"{cfg.model} trains without l1 / l2 penalties, augmentation or "
                           "loss options")  # fmt: skip

    @classmethod
    def check_inputs(cls, run: Run, x: np.ndarray) -> None:
        lo, hi = float(np.min(x)), float(np.max(x))
        if lo < 0 or hi > 1:
            raise InputError(f"{run.config.model} learns images with intensities in [0, 1], "
                             f"got values in [{lo:g}, {hi:g}]")  # fmt: skip

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> AdversarialLearner:
        return cls(
            model=run.model(), optimizer=run.optimizer(total_steps), gan_loss=run.config.loss
        )

    def __post_init__(self):
        if self.gan_loss not in GAN_LOSSES:
            raise UnknownNameError("GAN loss", self.gan_loss, GAN_LOSSES)

    @staticmethod
    def model_args(inputs) -> tuple:
        return (inputs, jnp.zeros(len(inputs), jnp.int32))  # a conditional model reads labels

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        x = self.model.to_model_range(jnp.asarray(sample_batch["inputs"][:1], jnp.float32))
        init_key, rng = jax.random.split(rng)
        init = jax.jit(functools.partial(self.model.init, train=False))
        variables = init(init_key, *self.model_args(x))
        by_player = {p: {col: tree[p] for col, tree in variables.items()} for p in PLAYERS}
        return init_players(dict.fromkeys(PLAYERS, self.optimizer), by_player, rng)

    @staticmethod
    def variables(state: TrainState) -> dict:
        """The model's variables from a state (`{"params": {"generator": ..., "discriminator":
        ...}, "batch_stats": ...}`): what `model.apply(..., method="sample")` takes."""
        out = {"params": dict(state.params)}
        for player, collections in state.model_state.items():
            for col, tree in collections.items():
                out.setdefault(col, {})[player] = tree
        return out

    def samples(self, state: TrainState) -> jax.Array:
        """64 samples from fixed noise (a conditional model: classes 0, 1, … in turn)."""
        z = self.model.noise(jax.random.PRNGKey(0), 64)
        labels = jnp.arange(64, dtype=jnp.int32) % self.model.num_classes
        return self.model_apply(self.variables(state), z, labels, method="sample")

    def play(self, player: str, params, model_state, *args, train: bool, rng=None):
        """`generate` or `discriminate` with one player's variables: `(output, model_state)`,
        the batch statistics updated in training."""
        variables = {"params": {player: params}} | {c: {player: t} for c, t in model_state.items()}
        method = "generate" if player == "generator" else "discriminate"
        rngs = {"dropout": rng} if rng is not None else None
        if train and model_state:
            out, updates = self.model_apply(variables, *args, train=True, rngs=rngs,
                                            method=method, mutable=list(model_state))  # fmt: skip
            return out, {c: t[player] for c, t in updates.items()}
        return self.model_apply(
            variables, *args, train=train, rngs=rngs, method=method
        ), model_state

    def _generator_loss(self, fake_logits):
        if self.gan_loss == "minimax":
            return -jax.nn.softplus(fake_logits)  # log(1 − D(G(z)))
        return jax.nn.softplus(-fake_logits)  # −log D(G(z))

    def noise(self, rng, n: int, axis_name=None) -> jax.Array:
        """z for `n` examples; under pmap this device's rows of the global batch's noise, so
        pmap draws what one device draws."""
        if axis_name is None:
            return self.model.noise(rng, n)
        z = self.model.noise(rng, n * lax.psum(1, axis_name))
        return lax.dynamic_slice_in_dim(z, lax.axis_index(axis_name) * n, n)

    def update(self, state, batch, rng, *, axis_name=None):
        x = self.model.to_model_range(jnp.asarray(batch["inputs"], jnp.float32))
        labels, n = batch["labels"], len(x)
        keys = list(jax.random.split(rng, 6))  # 0, 4: noise; 1, 2, 3, 5: dropout
        if axis_name is not None:  # dropout masks of their own on each device
            device = lax.axis_index(axis_name)
            keys = [k if i in (0, 4) else jax.random.fold_in(k, device) for i, k in enumerate(keys)]
        # the discriminator's step; the samples' batch statistics are the generator step's
        fakes, _ = self.play("generator", state.params["generator"], state.model_state["generator"],
                             self.noise(keys[0], n, axis_name), labels, train=True, rng=keys[1])  # fmt: skip
        fakes = lax.stop_gradient(fakes)

        def d_objective(params):
            ms = state.model_state["discriminator"]
            real, ms = self.play("discriminator", params, ms, x, labels, train=True, rng=keys[2])
            fake, ms = self.play(
                "discriminator", params, ms, fakes, labels, train=True, rng=keys[3]
            )
            loss = jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
            return loss, (ms, real, fake)

        (d_loss, (d_ms, real, fake)), grads = jax.value_and_grad(d_objective, has_aux=True)(
            state.params["discriminator"]
        )
        state, d = apply_gradients(self.optimizer, state, grads, d_loss, d_ms, axis_name,
                                   player="discriminator")  # fmt: skip

        def g_step(state):
            def g_objective(params):
                images, ms = self.play("generator", params, state.model_state["generator"],
                                       self.noise(keys[4], n, axis_name), labels, train=True,
                                       rng=keys[5])  # fmt: skip
                logits, _ = self.play("discriminator", state.params["discriminator"],
                                      state.model_state["discriminator"], images, labels,
                                      train=True, rng=keys[3])  # fmt: skip
                return jnp.mean(self._generator_loss(logits)), ms

            (loss, ms), grads = jax.value_and_grad(g_objective, has_aux=True)(
                state.params["generator"]
            )
            state, g = apply_gradients(self.optimizer, state, grads, loss, ms, axis_name,
                                       player="generator")  # fmt: skip
            return state, g["loss"], g["finite"]

        def no_g_step(state):  # the generator's loss on the discriminator step's samples
            loss = jnp.mean(self._generator_loss(lax.stop_gradient(fake)))
            return state, mean_over(loss, axis_name), jnp.array(True)

        k = self.model.disc_steps
        if k == 1:
            state, g_loss, g_finite = g_step(state)
        else:
            state, g_loss, g_finite = lax.cond((state.step + 1) % k == 0, g_step, no_g_step, state)
        mean = functools.partial(mean_over, axis_name=axis_name)
        metrics = {
            "d_loss": d["loss"],
            "g_loss": g_loss,
            "d_real": mean(jnp.mean(jax.nn.sigmoid(real))),
            "d_fake": mean(jnp.mean(jax.nn.sigmoid(fake))),
            "finite": d["finite"] & g_finite,
        }
        return state.replace(step=state.step + 1), metrics

    def evaluate(self, state, batch, *, axis_name=None):
        x = self.model.to_model_range(jnp.asarray(batch["inputs"], jnp.float32))
        labels, weight = batch["labels"], batch["weight"]
        key = jax.random.split(state.rng)[0]  # not a step's key (those are fold_in(rng, step))
        params, ms = state.params, state.model_state
        fakes, _ = self.play("generator", params["generator"], ms["generator"],
                             self.noise(key, len(x), axis_name), labels, train=False)  # fmt: skip
        real, _ = self.play("discriminator", params["discriminator"], ms["discriminator"], x,
                            labels, train=False)  # fmt: skip
        fake, _ = self.play("discriminator", params["discriminator"], ms["discriminator"], fakes,
                            labels, train=False)  # fmt: skip
        total = lambda v: sum_over(jnp.sum(weight * v), axis_name)
        return {
            "d_loss": total(jax.nn.softplus(-real) + jax.nn.softplus(fake)),
            "g_loss": total(self._generator_loss(fake)),
            "d_real": total(jax.nn.sigmoid(real)),
            "d_fake": total(jax.nn.sigmoid(fake)),
            "count": total(jnp.ones_like(real)),
        }


@dataclasses.dataclass(frozen=True)
class TextToImageLearner(AdversarialLearner):
    """GAN-CLS and GAN-INT of Reed et al. 2016 (Algorithm 1, sec. 4.2–4.3) for
    `systems.TextToImageGAN`: batches are images and their sentences' ids (`labels`).

    Each update: h = φ(t) (the discriminator's text encoder), ĥ = the embedding of another
    example's sentence (the batch rolled by one: the paper's "mismatched text"; Reed et
    al.'s code draws it from another class, here it is another sentence, of the same class
    one time in ten), x̂ = G(z, h). The discriminator minimises −log D(x, h) − ½ [log(1 −
    D(x, ĥ)) + log(1 − D(x̂, h))] (GAN-CLS: real images with the wrong text are fakes too),
    or −log D(x, h) − log(1 − D(x̂, h)) when the model's `matching_aware` is off; φ learns
    with it. The generator then steps on −log D(G(z, h), h) (or the minimax form, by
    `--loss`) plus, with `interpolate` = β > 0 (GAN-INT), the same loss at the embeddings
    β h + (1 − β) ĥ of sentences no one wrote. G reads the embeddings without a gradient.

    Metrics: `d_loss`, `g_loss` (without the interpolation term), and the mean D(x, h)
    `d_real`, D(x, ĥ) `d_wrong`, D(x̂, h) `d_fake`. `draw(state, ids, z)` gives images in
    [0, 1] for sentences.
    """

    metrics: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss", "d_real", "d_wrong", "d_fake")

    @staticmethod
    def model_args(inputs) -> tuple:
        return (inputs, jnp.ones((len(inputs), 2), jnp.int32))  # a two-word sentence

    def samples(self, state: TrainState) -> None:
        return None  # images need sentences: `draw`

    def embed(self, d_params, ids) -> jax.Array:
        return self.model_apply({"params": {"discriminator": d_params}}, ids, method="embed")

    def draw(self, state: TrainState, ids, z) -> jax.Array:
        variables = self.variables(state)
        h = self.model_apply(variables, ids, method="embed")
        return self.model_apply(variables, z, h, method="sample")

    def _d_loss(self, real, wrong, fake):
        real_term = jax.nn.softplus(-real)
        if not self.model.matching_aware:
            return real_term + jax.nn.softplus(fake)
        return real_term + 0.5 * (jax.nn.softplus(wrong) + jax.nn.softplus(fake))

    def update(self, state, batch, rng, *, axis_name=None):
        x = self.model.to_model_range(jnp.asarray(batch["inputs"], jnp.float32))
        ids, n = batch["labels"], len(x)
        z_keys = jax.random.split(rng, 3)
        g_of = lambda s: (s.params["generator"], s.model_state["generator"])
        h = lax.stop_gradient(self.embed(state.params["discriminator"], ids))
        fakes, _ = self.play("generator", *g_of(state), self.noise(z_keys[0], n, axis_name), h,
                             train=True)  # fmt: skip
        fakes = lax.stop_gradient(fakes)

        def d_objective(params):
            ms = state.model_state["discriminator"]
            h = self.embed(params, ids)
            real, ms = self.play("discriminator", params, ms, x, h, train=True)
            wrong, ms = self.play("discriminator", params, ms, x, jnp.roll(h, 1, 0), train=True)
            fake, ms = self.play("discriminator", params, ms, fakes, h, train=True)
            return jnp.mean(self._d_loss(real, wrong, fake)), (ms, real, wrong, fake)

        (d_loss, (d_ms, real, wrong, fake)), grads = jax.value_and_grad(d_objective, has_aux=True)(
            state.params["discriminator"]
        )
        state, d = apply_gradients(self.optimizer, state, grads, d_loss, d_ms, axis_name,
                                   player="discriminator")  # fmt: skip
        d_params, d_ms = state.params["discriminator"], state.model_state["discriminator"]
        h = lax.stop_gradient(self.embed(d_params, ids))
        beta = self.model.interpolate

        def g_objective(params):
            ms = state.model_state["generator"]
            images, ms = self.play("generator", params, ms, self.noise(z_keys[1], n, axis_name),
                                   h, train=True)  # fmt: skip
            logits, _ = self.play("discriminator", d_params, d_ms, images, h, train=True)
            loss = jnp.mean(self._generator_loss(logits))
            total = loss
            if beta > 0:  # GAN-INT: text embeddings between two sentences
                h_int = beta * h + (1 - beta) * jnp.roll(h, 1, 0)
                images, ms = self.play("generator", params, ms,
                                       self.noise(z_keys[2], n, axis_name), h_int, train=True)  # fmt: skip
                logits, _ = self.play("discriminator", d_params, d_ms, images, h_int, train=True)
                total = total + jnp.mean(self._generator_loss(logits))
            return total, (ms, loss)

        (_, (g_ms, g_loss)), grads = jax.value_and_grad(g_objective, has_aux=True)(
            state.params["generator"]
        )
        state, g = apply_gradients(self.optimizer, state, grads, g_loss, g_ms, axis_name,
                                   player="generator")  # fmt: skip
        mean = functools.partial(mean_over, axis_name=axis_name)
        metrics = {
            "d_loss": d["loss"],
            "g_loss": g["loss"],
            "d_real": mean(jnp.mean(jax.nn.sigmoid(real))),
            "d_wrong": mean(jnp.mean(jax.nn.sigmoid(wrong))),
            "d_fake": mean(jnp.mean(jax.nn.sigmoid(fake))),
            "finite": d["finite"] & g["finite"],
        }
        return state.replace(step=state.step + 1), metrics

    def evaluate(self, state, batch, *, axis_name=None):
        x = self.model.to_model_range(jnp.asarray(batch["inputs"], jnp.float32))
        ids, weight = batch["labels"], batch["weight"]
        key = jax.random.split(state.rng)[0]  # not a step's key (those are fold_in(rng, step))
        params, ms = state.params, state.model_state
        h = self.embed(params["discriminator"], ids)
        fakes, _ = self.play("generator", params["generator"], ms["generator"],
                             self.noise(key, len(x), axis_name), h, train=False)  # fmt: skip
        d = lambda images, text: self.play("discriminator", params["discriminator"],
                                           ms["discriminator"], images, text, train=False)[0]  # fmt: skip
        real, wrong, fake = d(x, h), d(x, jnp.roll(h, 1, 0)), d(fakes, h)
        total = lambda v: sum_over(jnp.sum(weight * v), axis_name)
        return {
            "d_loss": total(self._d_loss(real, wrong, fake)),
            "g_loss": total(self._generator_loss(fake)),
            "d_real": total(jax.nn.sigmoid(real)),
            "d_wrong": total(jax.nn.sigmoid(wrong)),
            "d_fake": total(jax.nn.sigmoid(fake)),
            "count": total(jnp.ones_like(real)),
        }
