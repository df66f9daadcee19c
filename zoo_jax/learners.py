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

Batches are dicts: `inputs` `(batch, *input_shape)`, `labels` `(batch,)` int32, and for
evaluation a `weight` `(batch,)` that is 0 on padding rows (so every eval batch has one
shape and the step never recompiles).

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


@dataclasses.dataclass(frozen=True)
class GradientLearner:
    """Backpropagation on `loss(labels, model(inputs))` + kernel penalties, stepped by optax.

    `loss` is per-example and takes logits (`from_logits=True` already bound). A non-finite
    loss or gradient leaves params and optimizer state unchanged for that step and reports
    `finite = False`; the loop then stops or goes on according to its NaN policy. A model
    that returns `(logits, *aux_logits)` in training adds `AUX_WEIGHT` × each auxiliary loss;
    the reported loss and accuracy are the main head's. Skipping in
    the graph (rather than testing on the host) keeps the step free of host round-trips.
    """

    model: nn.Module
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    optimizer: optax.GradientTransformation
    l1: float = 0.0
    l2: float = 0.0

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        params_rng, run_rng = jax.random.split(rng)
        init = jax.jit(functools.partial(self.model.init, train=False))  # one compile, not
        variables = dict(init(params_rng, sample_batch["inputs"]))  # op-by-op dispatch
        params = variables.pop("params")
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=self.optimizer.init(params),
            model_state=variables,
            rng=run_rng,
        )

    def _apply(self, params, model_state, inputs, *, train: bool, rng=None):
        variables = {"params": params, **model_state}
        rngs = {"dropout": rng} if rng is not None else None
        if train and model_state:
            return self.model.apply(
                variables, inputs, train=True, rngs=rngs, mutable=list(model_state)
            )
        return self.model.apply(variables, inputs, train=train, rngs=rngs), model_state

    def update(self, state, batch, rng, *, axis_name=None):
        if axis_name is not None:  # a different dropout mask on every device
            rng = jax.random.fold_in(rng, lax.axis_index(axis_name))

        def objective(params):
            logits, model_state = self._apply(
                params, state.model_state, batch["inputs"], train=True, rng=rng
            )
            aux = ()
            if isinstance(logits, tuple):  # auxiliary classifiers (GoogLeNet), training only
                logits, *aux = logits
            data_loss = jnp.mean(self.loss(batch["labels"], logits))
            aux_loss = sum(jnp.mean(self.loss(batch["labels"], a)) for a in aux)
            total = data_loss + AUX_WEIGHT * aux_loss
            total = total + regularization_penalty(params, self.l1, self.l2)
            return total, (data_loss, logits, model_state)

        grads, (data_loss, logits, model_state) = jax.grad(objective, has_aux=True)(state.params)
        grads = _mean(grads, axis_name)
        model_state = _mean(model_state, axis_name)
        data_loss = _mean(data_loss, axis_name)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)

        finite = jnp.isfinite(data_loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        new_state = state.replace(
            step=state.step + 1,
            params=keep(params, state.params),
            opt_state=keep(opt_state, state.opt_state),
            model_state=keep(model_state, state.model_state),
        )
        accuracy = _mean(jnp.mean(jnp.argmax(logits, -1) == batch["labels"]), axis_name)
        metrics = {"loss": data_loss, "accuracy": accuracy, "grad_norm": grad_norm}
        return new_state, metrics | {"finite": finite}

    def evaluate(self, state, batch, *, axis_name=None):
        logits, _ = self._apply(state.params, state.model_state, batch["inputs"], train=False)
        weight = batch["weight"]
        losses = self.loss(batch["labels"], logits)
        correct = (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)
        return {
            "loss_sum": _sum(jnp.sum(weight * losses), axis_name),
            "correct": _sum(jnp.sum(weight * correct), axis_name),
            "count": _sum(jnp.sum(weight), axis_name),
        }


def gradient_learner(
    model: nn.Module,
    *,
    loss: str,
    optimizer: optax.GradientTransformation,
    l1: float = 0.0,
    l2: float = 0.0,
    loss_options: dict[str, Any] | None = None,
) -> GradientLearner:
    """A `GradientLearner` whose per-example loss is the Keras loss `loss` (with its
    `loss_options`), fed the model's logits as `losses.for_classifier` describes."""
    loss_fn = losses.for_classifier(loss, **(loss_options or {}))
    return GradientLearner(model=model, loss=loss_fn, optimizer=optimizer, l1=l1, l2=l2)


LEARNERS: dict[str, Callable[..., Any]] = {"gradient": gradient_learner}
