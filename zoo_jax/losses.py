"""The Keras loss catalogue: Keras's names, aliases and argument order `(y_true, y_pred)`,
one value per example (the last axis reduced), equal to `keras.losses.*` within 1e-6.

    >>> import jax.numpy as jnp; from zoo_jax import losses
    >>> loss = losses.get("sparse_categorical_crossentropy")     # two examples, 3 classes:
    >>> [round(float(v), 4) for v in loss(jnp.array([0, 2]), jnp.zeros((2, 3)), from_logits=True)]
    [1.0986, 1.0986]

The chapter "Neural network collection" lists these fourteen; the formulas are Keras 3's,
with ε = 1e-7 (Keras's backend epsilon) where Keras clips:

=================================  ============================================================
mean_squared_error (mse)           mean((y − ŷ)²)
mean_absolute_error (mae)          mean(|y − ŷ|)
mean_absolute_percentage_error     100 · mean(|y − ŷ| / max(|y|, ε))
  (mape)
mean_squared_logarithmic_error     mean((log(max(ŷ, ε) + 1) − log(max(y, ε) + 1))²)
  (msle)
hinge                              mean(max(1 − y·ŷ, 0)); labels in {0, 1} become {−1, +1}
squared_hinge                      mean(max(1 − y·ŷ, 0)²); the same label conversion
categorical_hinge                  max(max((1 − y)·ŷ) − Σ y·ŷ + 1, 0)
log_cosh (logcosh)                 mean(log cosh(ŷ − y)), computed as x + softplus(−2x) − log 2
huber (δ = 1)                      mean(½e² if |e| ≤ δ else δ|e| − ½δ²), e = ŷ − y
categorical_crossentropy           −Σ y·log p, p = ŷ / Σŷ clipped to [ε, 1 − ε] (or softmax)
sparse_categorical_crossentropy    the same with integer labels
binary_crossentropy (bce)          mean(−y·log p − (1 − y)·log(1 − p)), p clipped (or sigmoid)
kl_divergence (kld,                Σ y·log(y / ŷ), both clipped to [ε, 1]
  kullback_leibler_divergence)
poisson                            mean(ŷ − y·log(ŷ + ε))
=================================  ============================================================

Where Keras would silently broadcast or mis-index, we raise an `InputError`: shapes must
agree (up to Keras's own rule that squeezes a trailing axis of size 1 when the ranks differ
by one), and sparse labels must be integers in `[0, classes)`. The label range is checked
on concrete arrays; inside `jax.jit` an out-of-range label makes that example's loss NaN
(the NaN policy reports it), not the last class (optax) or 0 (Keras); the pipeline validates
labels on the host first.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from zoo_jax.errors import InputError, UnknownNameError, ZooError

_EPS = 1e-7  # Keras's backend epsilon


def _same_shape(y_true, y_pred):
    """Keras's `squeeze_or_expand_to_same_rank`, then insist on equal shapes."""
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true, dtype=y_pred.dtype)
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., 0]
    if y_true.shape != y_pred.shape:
        raise InputError(f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")
    return y_true, y_pred


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred)
    return jnp.mean(jnp.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred)
    return jnp.mean(jnp.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred)
    diff = jnp.abs((y_true - y_pred) / jnp.maximum(jnp.abs(y_true), _EPS))
    return 100.0 * jnp.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred)
    first = jnp.log(jnp.maximum(y_pred, _EPS) + 1.0)
    second = jnp.log(jnp.maximum(y_true, _EPS) + 1.0)
    return jnp.mean(jnp.square(first - second), axis=-1)


def _hinge_labels(y_true):
    """Keras: if every label is 0 or 1, map them to −1 / +1; otherwise leave them."""
    binary = jnp.all((y_true == 0) | (y_true == 1))
    return jnp.where(binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred)
    return jnp.mean(jnp.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred)
    margin = jnp.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0)
    return jnp.mean(jnp.square(margin), axis=-1)


def categorical_hinge(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred)
    pos = jnp.sum(y_true * y_pred, axis=-1)
    neg = jnp.max((1.0 - y_true) * y_pred, axis=-1)
    return jnp.maximum(neg - pos + 1.0, 0.0)


def log_cosh(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred)
    x = y_pred - y_true
    return jnp.mean(x + jax.nn.softplus(-2.0 * x) - jnp.log(2.0), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _same_shape(y_true, y_pred)
    error = y_pred - y_true
    abs_error = jnp.abs(error)
    quadratic = 0.5 * jnp.square(error)
    linear = delta * abs_error - 0.5 * delta**2
    return jnp.mean(jnp.where(abs_error <= delta, quadratic, linear), axis=-1)


def _check_distribution(y_true, y_pred):
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true, dtype=y_pred.dtype)
    if y_true.shape != y_pred.shape:
        hint = (
            " (integer labels? use sparse_categorical_crossentropy)"
            if y_true.shape == y_pred.shape[:-1]
            else ""
        )
        raise InputError(
            f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}{hint}"
        )
    return y_true, y_pred


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """−Σ y log p over the last axis; `y_true` one-hot or a distribution."""
    y_true, y_pred = _check_distribution(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    return -jnp.sum(y_true * _log_probs(y_pred, from_logits), axis=-1)


def _log_probs(y_pred, from_logits):
    if from_logits:
        return jax.nn.log_softmax(y_pred, axis=-1)
    p = y_pred / jnp.sum(y_pred, axis=-1, keepdims=True)
    return jnp.log(jnp.clip(p, _EPS, 1.0 - _EPS))


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Categorical cross-entropy with integer labels `y_true` of shape `y_pred.shape[:-1]`."""
    y_pred = jnp.asarray(y_pred)
    if np.ndim(y_true) == y_pred.ndim and np.shape(y_true)[-1] == 1:  # Keras squeezes (n, 1)
        y_true = y_true[..., 0]
    y_true = jnp.asarray(y_true)
    if y_true.shape != y_pred.shape[:-1]:
        raise InputError(
            f"integer labels of shape {y_pred.shape[:-1]} expected for predictions "
            f"{y_pred.shape}, got {y_true.shape}"
        )
    if not jnp.issubdtype(y_true.dtype, jnp.integer):
        raise InputError(f"sparse labels must be integers, got dtype {y_true.dtype}")
    classes = y_pred.shape[-1]
    if not isinstance(y_true, jax.core.Tracer):
        bad = np.asarray(y_true)
        bad = bad[(bad < 0) | (bad >= classes)]
        if bad.size:
            raise InputError(f"labels must be in [0, {classes}); got {np.unique(bad)[:5].tolist()}")
    log_p = _log_probs(y_pred, from_logits)
    in_range = (y_true >= 0) & (y_true < classes)
    picked = jnp.take_along_axis(log_p, jnp.clip(y_true, 0, classes - 1)[..., None], -1)[..., 0]
    return jnp.where(in_range, -picked, jnp.nan)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Mean over the last axis of the element-wise binary cross-entropy."""
    y_true, y_pred = _same_shape(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        bce = -y_true * jax.nn.log_sigmoid(y_pred) - (1.0 - y_true) * jax.nn.log_sigmoid(-y_pred)
    else:
        p = jnp.clip(y_pred, _EPS, 1.0 - _EPS)
        bce = -(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log(1.0 - p))
    return jnp.mean(bce, axis=-1)


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _check_distribution(y_true, y_pred)
    y_true = jnp.clip(y_true, _EPS, 1.0)
    y_pred = jnp.clip(y_pred, _EPS, 1.0)
    return jnp.sum(y_true * jnp.log(y_true / y_pred), axis=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _check_distribution(y_true, y_pred)
    return jnp.mean(y_pred - y_true * jnp.log(y_pred + _EPS), axis=-1)


def margin_loss(labels, lengths, m_plus: float = 0.9, m_minus: float = 0.1, lam: float = 0.5):
    """The capsule network's margin loss (Sabour, Frosst & Hinton 2017, eq. 4), beyond the
    Keras catalogue: Σ_k T_k max(0, m⁺ − ‖v_k‖)² + λ (1 − T_k) max(0, ‖v_k‖ − m⁻)², T_k = 1
    for the label's class. `labels` `(batch,)` ints, `lengths` `(batch, classes)` the digit
    capsules' lengths; one value per example."""
    present = jax.nn.one_hot(labels, lengths.shape[-1], dtype=lengths.dtype)
    hit = jnp.square(jnp.maximum(0.0, m_plus - lengths))
    miss = jnp.square(jnp.maximum(0.0, lengths - m_minus))
    return jnp.sum(present * hit + lam * (1 - present) * miss, axis=-1)


LOSSES: dict[str, Callable[..., jax.Array]] = {
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "squared_hinge": squared_hinge,
    "hinge": hinge,
    "categorical_hinge": categorical_hinge,
    "log_cosh": log_cosh,
    "huber": huber,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "kl_divergence": kl_divergence,
    "poisson": poisson,
}
ALIASES = {
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
    "logcosh": "log_cosh",
    "bce": "binary_crossentropy",
    "kld": "kl_divergence",
    "kullback_leibler_divergence": "kl_divergence",
}


def get(name: str) -> Callable[..., jax.Array]:
    """The loss called `name` (Keras name or alias)."""
    name = ALIASES.get(name, name)
    if name not in LOSSES:
        raise UnknownNameError("loss", name, [*LOSSES, *ALIASES])
    return LOSSES[name]


# How a classifier's logits meet each loss (`for_classifier`).
_HINGES = ("hinge", "squared_hinge", "categorical_hinge")


def _takes_logits(fn) -> bool:
    return "from_logits" in inspect.signature(fn).parameters


def _bind(name: str, options: dict) -> tuple[str, Callable[..., jax.Array]]:
    """The canonical name and the loss function with its `options` bound (checked)."""
    fn = get(name)
    name = ALIASES.get(name, name)
    accepted = [
        k for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty and k != "from_logits"
    ]  # fmt: skip
    options = dict(options)
    # zoo_jax's models end in logits and the loss is told so: true is what happens anyway,
    # false would apply a softmax / sigmoid twice
    if _takes_logits(fn) and options.pop("from_logits", True) is not True:
        raise ZooError(
            f"{name} from_logits is set by zoo_jax (its models end in logits): only "
            "from_logits=true is accepted, and it is the default"
        )
    for key, value in options.items():
        if key not in accepted:
            if not accepted:
                but = " but from_logits=true" if _takes_logits(fn) else "s"
                raise ZooError(f"loss {name!r} takes no option{but}, got {key!r}")
            raise UnknownNameError(f"option of loss {name!r}", key, accepted)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise ZooError(f"{name} {key} must be a finite number, got {value!r}")
        valid, expected = _OPTION_RANGES[key]
        if not valid(value):
            raise ZooError(f"{name} {key} must be {expected}, got {value}")
    return name, functools.partial(fn, **options) if options else fn


# Keras does not check these; out of range, the loss goes negative or rewards wrong labels.
_OPTION_RANGES = {
    "delta": (lambda v: v > 0, "> 0"),
    "label_smoothing": (lambda v: 0 <= v <= 1, "in [0, 1]"),
}


def for_classifier(name: str, **options) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Loss `name` as a function of integer labels and a classifier's logits, per example.

    The zoo's classifiers end in a linear layer, so the loss decides what it is fed:
    cross-entropies take the logits (`from_logits=True`, the stable form of Keras's softmax
    + cross-entropy); the hinges take the raw scores, as an SVM head does; every other loss
    compares the softmax probabilities with the one-hot labels, as a Keras model ending in
    `Dense(k, activation="softmax")` does. Labels are one-hot encoded except for the sparse
    cross-entropy. `options` are the loss's own (`delta`, `label_smoothing`).
    """
    name, fn = _bind(name, options)

    def loss(labels, logits):
        if name == "sparse_categorical_crossentropy":
            return fn(labels, logits, from_logits=True)
        one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
        if _takes_logits(fn):
            return fn(one_hot, logits, from_logits=True)
        if name in _HINGES:
            return fn(one_hot, logits)
        return fn(one_hot, jax.nn.softmax(logits, axis=-1))

    return loss


# Losses that compare two images pixel by pixel (the others compare class distributions).
PIXEL_LOSSES = (
    "binary_crossentropy", "mean_squared_error", "mean_absolute_error",
    "mean_squared_logarithmic_error", "log_cosh", "huber", "poisson",
)  # fmt: skip


def for_images(name: str, **options) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Loss `name` per example between target images in [0, 1] and a generator's logits.

    Losses with `from_logits` (binary cross-entropy) take the logits; the others take the
    sigmoid of the logits, as a Keras generator ending in `Activation("sigmoid")` feeds
    them. Keras's mean over the last (channel) axis is averaged over the image's pixels.
    """
    name, fn = _bind(name, options)
    if name not in PIXEL_LOSSES:
        raise ZooError(
            f"loss {name!r} compares class distributions, not images; a generator takes one "
            f"of {', '.join(PIXEL_LOSSES)}"
        )

    def loss(images, logits):
        per_pixel = (
            fn(images, logits, from_logits=True)
            if _takes_logits(fn)
            else fn(images, jax.nn.sigmoid(logits))
        )
        return jnp.mean(per_pixel.reshape(per_pixel.shape[0], -1), axis=-1)

    return loss


def describe() -> list[dict[str, object]]:
    """One row per loss: name, aliases, options (for `zoo-jax list --losses`)."""
    rows = []
    for name, fn in LOSSES.items():
        options = {
            k: p.default
            for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        aliases = [a for a, target in ALIASES.items() if target == name]
        rows.append({"name": name, "aliases": aliases, "options": options})
    return rows
