"""Losses under Keras's names, argument order `(y_true, y_pred)`, one value per example.

    >>> loss = zoo_jax.losses.get("sparse_categorical_crossentropy")
    >>> loss(labels, logits, from_logits=True).shape     # (batch,)

Label checks that need values (range of integer labels) happen on the host, in
`zoo_jax.data.pipeline`, before data reaches a device: inside a jitted step a bad label
cannot raise, and optax's integer cross-entropy would silently wrap -1 to the last class.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from zoo_jax.errors import InputError, UnknownNameError

_EPS = 1e-7  # Keras's backend epsilon, used to clip probabilities


def _check_same_shape(y_true: jax.Array, y_pred: jax.Array) -> None:
    if y_true.shape != y_pred.shape:
        raise InputError(f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """−Σ y log p over the last axis; `y_true` one-hot (or a distribution)."""
    _check_same_shape(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        return optax.softmax_cross_entropy(y_pred, y_true)
    p = y_pred / jnp.sum(y_pred, axis=-1, keepdims=True)
    return -jnp.sum(y_true * jnp.log(jnp.clip(p, _EPS, 1 - _EPS)), axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Categorical cross-entropy with integer labels `y_true` of shape `y_pred.shape[:-1]`."""
    if y_true.shape != y_pred.shape[:-1]:
        raise InputError(
            f"integer labels of shape {y_pred.shape[:-1]} expected for predictions "
            f"{y_pred.shape}, got {y_true.shape}"
        )
    if not jnp.issubdtype(y_true.dtype, jnp.integer):
        raise InputError(f"sparse labels must be integers, got dtype {y_true.dtype}")
    if from_logits:
        return optax.softmax_cross_entropy_with_integer_labels(y_pred, y_true)
    p = jnp.take_along_axis(y_pred, y_true[..., None], axis=-1)[..., 0]
    return -jnp.log(jnp.clip(p / jnp.sum(y_pred, axis=-1), _EPS, 1 - _EPS))


def mean_squared_error(y_true, y_pred):
    """mean((y − ŷ)²) over the last axis."""
    _check_same_shape(y_true, y_pred)
    return jnp.mean(jnp.square(y_true - y_pred), axis=-1)


LOSSES: dict[str, Callable[..., jax.Array]] = {
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean_squared_error": mean_squared_error,
}
ALIASES = {"mse": "mean_squared_error"}


def get(name: str) -> Callable[..., jax.Array]:
    """The loss called `name` (Keras name or alias)."""
    name = ALIASES.get(name, name)
    if name not in LOSSES:
        raise UnknownNameError("loss", name, [*LOSSES, *ALIASES])
    return LOSSES[name]
