"""How each kind of model learns: one protocol for every learning rule in the zoo.

A learner owns the model function and its update rule; the engine (`zoo_jax.train`) only
calls these three pure functions, so jit, pmap and sharded jit serve every model alike::

    class Learner(Protocol):
        def init(self, rng, sample_batch) -> TrainState
        def update(self, state, batch, rng, *, axis_name=None) -> (TrainState, Metrics)
        def evaluate(self, state, batch, *, axis_name=None) -> Metrics

`axis_name` is set when the update runs under `jax.pmap`: the learner then averages what
must be global (gradients, losses) with `lax.pmean`. Under sharded `jax.jit` the arrays
are global and it stays None.

Batches are dicts: `inputs` `(batch, *input_shape)`, `labels` `(batch,)` int32 (or
`(batch, length)` token ids for a language model or a translation), and for evaluation a
`weight` `(batch,)` that is 0 on padding rows (so every eval batch has one shape and the
step never recompiles).

Evaluation returns sums (`loss_sum`, `correct`, `count`), which add up exactly over batches
and devices; the loop divides at the end.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from zoo_jax import losses
from zoo_jax.errors import ZooError
from zoo_jax.optim import regularization_penalty
from zoo_jax.train.state import TrainState

Batch = dict[str, jax.Array]
AUX_WEIGHT = 0.3  # Szegedy et al. 2015: auxiliary classifier losses count 0.3 in training
Metrics = dict[str, jax.Array]


class Learner(Protocol):
    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState: ...

    def update(
        self, state: TrainState, batch: Batch, rng: jax.Array, *, axis_name: str | None = None
    ) -> tuple[TrainState, Metrics]: ...

    def evaluate(
        self, state: TrainState, batch: Batch, *, axis_name: str | None = None
    ) -> Metrics: ...


def _mean(x: jax.Array, axis_name: str | None) -> jax.Array:
    return x if axis_name is None else lax.pmean(x, axis_name)


def _sum(x: jax.Array, axis_name: str | None) -> jax.Array:
    return x if axis_name is None else lax.psum(x, axis_name)


def _apply_gradients(optimizer, state, grads, loss, model_state, axis_name):
    """Average over devices, step the optimizer, and keep the old state for a step whose loss
    or gradient is non-finite (`finite = False` in the metrics; the loop's NaN policy acts).

    The guard is a `lax.cond`, not a `jnp.where` between new and old leaves: with the state
    donated, the `where` made XLA copy the optimizer's moments before updating them in place
    (CPU, Adam: compiled temporary memory ResNet-18 164 -> 103 MB, VGG-11 104 -> 60 MB, the
    seed MLP's step about 3 % faster), while the `cond` updates in place."""
    grads = _mean(grads, axis_name)
    model_state = _mean(model_state, axis_name)
    loss = _mean(loss, axis_name)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def step(state):
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return state.replace(
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            model_state=model_state,
        )

    new_state = lax.cond(finite, step, lambda state: state, state)
    new_state = new_state.replace(step=state.step + 1)
    return new_state, {"loss": loss, "grad_norm": grad_norm, "finite": finite}


def _new_state(optimizer, variables: dict, rng: jax.Array) -> TrainState:
    variables = dict(variables)
    params = variables.pop("params")
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        model_state=variables,
        rng=rng,
    )


@dataclasses.dataclass(frozen=True)
class GradientLearner:
    """Backpropagation on `loss(labels, model(inputs))` + kernel penalties, stepped by optax.

    `loss` is per-example (per position for a language model, whose logits are
    `(batch, length, vocab)`) and takes logits (`from_logits=True` already bound). A non-finite
    loss or gradient leaves params and optimizer state unchanged for that step and reports
    `finite = False`; the loop then stops or goes on according to its NaN policy. A model
    that returns `(logits, *aux_logits)` in training adds `AUX_WEIGHT` × each auxiliary loss;
    the reported loss and accuracy are the main head's. Skipping in
    the graph (rather than testing on the host) keeps the step free of host round-trips.
    `augment` (`zoo_jax.data.augment`), when set, transforms the training inputs inside the
    step with a key of its own; evaluation sees the inputs as they are.
    """

    model: nn.Module
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    optimizer: optax.GradientTransformation
    l1: float = 0.0
    l2: float = 0.0
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        init = jax.jit(functools.partial(self.model.init, train=False))  # one compile, not
        variables = init(params_rng, sample_batch["inputs"])  # op-by-op dispatch
        return _new_state(self.optimizer, variables, run_rng)

    def _apply(self, params, model_state, inputs, *, train: bool, rng=None, extra=()):
        variables = {"params": params, **model_state}
        rngs = {"dropout": rng} if rng is not None else None
        if train and model_state:
            return self.model.apply(
                variables, inputs, *extra, train=True, rngs=rngs, mutable=list(model_state)
            )
        return self.model.apply(variables, inputs, *extra, train=train, rngs=rngs), model_state

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
        new_state, metrics = _apply_gradients(
            self.optimizer, state, grads, data_loss, model_state, axis_name
        )
        accuracy = _mean(accuracy, axis_name)
        return new_state, metrics | {"accuracy": accuracy}

    def evaluate(self, state, batch, *, axis_name=None):
        """Sums over the batch; a model with a label per position (a language model) is
        scored per token: `count` is then the number of tokens, `correct` the right ones."""
        logits, targets, _ = self._forward(state.params, state.model_state, batch, train=False)
        losses = self.loss(targets, logits)
        weight = jnp.broadcast_to(
            batch["weight"].reshape(-1, *[1] * (losses.ndim - 1)), losses.shape
        )
        correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
        return {
            "loss_sum": _sum(jnp.sum(weight * losses), axis_name),
            "correct": _sum(jnp.sum(weight * correct), axis_name),
            "count": _sum(jnp.sum(weight), axis_name),
        }


@dataclasses.dataclass(frozen=True)
class TranslationLearner(GradientLearner):
    """Sequence to sequence with teacher forcing (Williams & Zipser 1989; Sutskever et al.
    2014): labels are BOS + target + EOS (PAD-padded); the model reads the source and the
    labels without their last token and is scored on the labels without their first, per
    token (PAD positions weigh 0 in training and evaluation). Works for every model with `model(source, target_in)`
    and a `greedy(source, max_len)` method (`attention.Seq2Seq`, `attention.Transformer`).

    Training reports token accuracy. Evaluation decodes greedily (no teacher forcing) and
    `correct` counts *exact sequences*: every token up to and including EOS right; its
    `loss_sum` is the teacher-forced mean token loss of each sequence.
    """

    pad_id: int = 0

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        source = sample_batch["inputs"]
        target_in = jnp.ones((len(source), 1), jnp.int32)  # params do not depend on length
        init = jax.jit(functools.partial(self.model.init, train=False))
        return _new_state(self.optimizer, init(params_rng, source, target_in), run_rng)

    def _forward(self, params, model_state, batch, *, train: bool, rng=None):
        labels = batch["labels"]
        logits, model_state = self._apply(
            params, model_state, batch["inputs"], train=train, rng=rng, extra=(labels[:, :-1],)
        )
        return logits, labels[:, 1:], model_state

    def _target_weights(self, targets):
        return (targets != self.pad_id).astype(jnp.float32)

    def evaluate(self, state, batch, *, axis_name=None):
        variables = {"params": state.params, **state.model_state}
        logits, targets, _ = self._forward(state.params, state.model_state, batch, train=False)
        real = (targets != self.pad_id).astype(jnp.float32)
        per_sequence = jnp.sum(self.loss(targets, logits) * real, -1) / jnp.maximum(real.sum(-1), 1)
        tokens, _ = self.model.apply(variables, batch["inputs"], targets.shape[1], method="greedy")
        exact = jnp.all((tokens == targets) | (targets == self.pad_id), axis=-1)
        weight = batch["weight"]
        return {
            "loss_sum": _sum(jnp.sum(weight * per_sequence), axis_name),
            "correct": _sum(jnp.sum(weight * exact), axis_name),
            "count": _sum(jnp.sum(weight), axis_name),
        }


def translate(images: jax.Array, shifts: jax.Array, max_shift: int) -> jax.Array:
    """Each image moved by its `(dy, dx)` shift (down / right positive), zeros shifted in."""
    m = max_shift
    height, width, channels = images.shape[1:]
    padded = jnp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)))
    cut = lambda img, s: lax.dynamic_slice(img, (m - s[0], m - s[1], 0), (height, width, channels))
    return jax.vmap(cut)(padded, shifts)


@dataclasses.dataclass(frozen=True)
class GeneratorLearner:
    """Trains a generator (the DN) to draw each example's image from its class vector.

    The code of an example is its one-hot class followed by a translation `(dy, dx) /
    max_shift`; the target is the image moved by `(dy, dx)` pixels. Training draws the
    translation uniformly from `[-max_shift, max_shift]²` per example, so one class vector
    stands for a family of images and the generator learns the class and the transformation
    apart, as Dosovitskiy et al. (CVPR 2015) condition theirs on class, view and
    transformation parameters. Evaluation uses no translation. The model maps codes to
    image logits; the per-example loss is `losses.for_images`. The reported "accuracy" is
    the pixel agreement: the fraction of pixels on the same side of 0.5 in the generated
    and the target image, averaged per image. The classifier's judgement of the generated
    images is `experiments/deconv_net.py`'s.
    """

    model: nn.Module
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    optimizer: optax.GradientTransformation
    num_classes: int
    max_shift: int = 2
    l1: float = 0.0
    l2: float = 0.0

    def code(self, labels: jax.Array, shifts: jax.Array) -> jax.Array:
        one_hot = jax.nn.one_hot(labels, self.num_classes)
        return jnp.concatenate([one_hot, shifts / max(self.max_shift, 1)], axis=-1)

    def generate(self, params, labels: jax.Array, shifts: jax.Array | None = None) -> jax.Array:
        """Images in [0, 1] for `labels` (and `(dy, dx)` shifts; default none)."""
        shifts = jnp.zeros((len(labels), 2), jnp.int32) if shifts is None else shifts
        return jax.nn.sigmoid(self.model.apply({"params": params}, self.code(labels, shifts)))

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        n = len(sample_batch["inputs"])
        code = self.code(jnp.zeros((n,), jnp.int32), jnp.zeros((n, 2), jnp.int32))
        variables = jax.jit(functools.partial(self.model.init, train=False))(params_rng, code)
        return _new_state(self.optimizer, variables, run_rng)

    def _scores(self, params, batch: Batch, shifts: jax.Array):
        targets = translate(batch["inputs"], shifts, self.max_shift)
        logits = self.model.apply({"params": params}, self.code(batch["labels"], shifts))
        if logits.shape != targets.shape:
            raise ZooError(
                f"the generator draws {logits.shape[1:]} images, the data has {targets.shape[1:]}"
            )
        agree = jnp.mean(((logits > 0) == (targets > 0.5)).reshape(len(logits), -1), axis=-1)
        return self.loss(targets, logits), agree

    def update(self, state, batch, rng, *, axis_name=None):
        if axis_name is not None:  # different translations on every device
            rng = jax.random.fold_in(rng, lax.axis_index(axis_name))
        m = self.max_shift
        shifts = jax.random.randint(rng, (len(batch["labels"]), 2), -m, m + 1)

        def objective(params):
            per_example, agree = self._scores(params, batch, shifts)
            data_loss = jnp.mean(per_example)
            total = data_loss + regularization_penalty(params, self.l1, self.l2)
            return total, (data_loss, agree)

        grads, (data_loss, agree) = jax.grad(objective, has_aux=True)(state.params)
        new_state, metrics = _apply_gradients(
            self.optimizer, state, grads, data_loss, state.model_state, axis_name
        )
        return new_state, metrics | {"accuracy": _mean(jnp.mean(agree), axis_name)}

    def evaluate(self, state, batch, *, axis_name=None):
        shifts = jnp.zeros((len(batch["labels"]), 2), jnp.int32)
        per_example, agree = self._scores(state.params, batch, shifts)
        weight = batch["weight"]
        return {
            "loss_sum": _sum(jnp.sum(weight * per_example), axis_name),
            "correct": _sum(jnp.sum(weight * agree), axis_name),
            "count": _sum(jnp.sum(weight), axis_name),
        }


def gradient_learner(
    model: nn.Module,
    *,
    loss: str,
    optimizer: optax.GradientTransformation,
    num_classes: int | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    loss_options: dict[str, Any] | None = None,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    learner: type[GradientLearner] = GradientLearner,
) -> GradientLearner:
    """A `GradientLearner` (or subclass `learner`) whose per-example loss is the Keras loss
    `loss` (with its `loss_options`), fed the model's logits as `losses.for_classifier`
    describes, its training inputs transformed by `augment` when given. `num_classes`
    (every builder's argument) is unused: the readout's width is the model's."""
    loss_fn = losses.for_classifier(loss, **(loss_options or {}))
    return learner(model=model, loss=loss_fn, optimizer=optimizer, l1=l1, l2=l2, augment=augment)


def generator_learner(
    model: nn.Module,
    *,
    loss: str,
    optimizer: optax.GradientTransformation,
    num_classes: int,
    l1: float = 0.0,
    l2: float = 0.0,
    loss_options: dict[str, Any] | None = None,
) -> GeneratorLearner:
    """A `GeneratorLearner` for `num_classes` class vectors and the per-pixel Keras `loss`."""
    loss_fn = losses.for_images(loss, **(loss_options or {}))
    return GeneratorLearner(
        model=model, loss=loss_fn, optimizer=optimizer, num_classes=num_classes, l1=l1, l2=l2
    )


# Teacher-forced sequence to sequence: the gradient learner's builder with its own class.
translation_learner = functools.partial(gradient_learner, learner=TranslationLearner)


LEARNERS: dict[str, Callable[..., Any]] = {
    "gradient": gradient_learner,
    "generator": generator_learner,
    "translation": translation_learner,
}
