"""The eight classic optimizers as optax chains, with Keras's names and defaults, and the
Keras weight regularizers.

    >>> tx = zoo_jax.optim.make("adam", learning_rate=1e-4)

Defaults follow the seeds (`000_…` "优化者") and Keras 3: SGD lr 0.01; RMSProp lr 0.001,
ρ 0.9; AdaGrad lr 0.01 (accumulator starts at 0.1); AdaDelta lr 1.0, ρ 0.95; Adam lr 0.001,
β 0.9 / 0.999; Adamax lr 0.002; NAG = SGD with Nesterov momentum 0.9; Nadam lr 0.002;
ε = 1e-7 everywhere (Keras's default, not optax's 1e-8).

Convention notes:
* SGD with momentum and NAG use optax's trace formulation, which for a constant learning
  rate is algebraically the same as Keras's velocity formulation.
* RMSProp divides by `sqrt(ν) + ε` (Keras 3), not `sqrt(ν + ε)` (optax's default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from zoo_jax.errors import UnknownNameError, ZooError

_EPS = 1e-7

# name -> (factory, defaults). Every factory takes Keras's hyperparameter names.
OPTIMIZERS: dict[str, tuple[Callable[..., optax.GradientTransformation], dict[str, Any]]] = {
    "sgd": (
        lambda learning_rate, momentum: optax.sgd(learning_rate, momentum or None),
        {"learning_rate": 0.01, "momentum": 0.0},
    ),
    "nag": (
        lambda learning_rate, momentum: optax.sgd(learning_rate, momentum, nesterov=True),
        {"learning_rate": 0.01, "momentum": 0.9},
    ),
    "rmsprop": (
        lambda learning_rate, rho, epsilon: optax.rmsprop(
            learning_rate, decay=rho, eps=epsilon, eps_in_sqrt=False
        ),
        {"learning_rate": 0.001, "rho": 0.9, "epsilon": _EPS},
    ),
    "adagrad": (
        lambda learning_rate, initial_accumulator_value, epsilon: optax.adagrad(
            learning_rate, initial_accumulator_value=initial_accumulator_value, eps=epsilon
        ),
        {"learning_rate": 0.01, "initial_accumulator_value": 0.1, "epsilon": _EPS},
    ),
    "adadelta": (
        lambda learning_rate, rho, epsilon: optax.adadelta(learning_rate, rho=rho, eps=epsilon),
        {"learning_rate": 1.0, "rho": 0.95, "epsilon": _EPS},
    ),
    "adam": (
        lambda learning_rate, beta_1, beta_2, epsilon: optax.adam(
            learning_rate, b1=beta_1, b2=beta_2, eps=epsilon
        ),
        {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": _EPS},
    ),
    "adamax": (
        lambda learning_rate, beta_1, beta_2, epsilon: optax.adamax(
            learning_rate, b1=beta_1, b2=beta_2, eps=epsilon
        ),
        {"learning_rate": 0.002, "beta_1": 0.9, "beta_2": 0.999, "epsilon": _EPS},
    ),
    "nadam": (
        lambda learning_rate, beta_1, beta_2, epsilon: optax.nadam(
            learning_rate, b1=beta_1, b2=beta_2, eps=epsilon
        ),
        {"learning_rate": 0.002, "beta_1": 0.9, "beta_2": 0.999, "epsilon": _EPS},
    ),
}


def defaults(name: str) -> dict[str, Any]:
    """The default hyperparameters of optimizer `name`."""
    if name not in OPTIMIZERS:
        raise UnknownNameError("optimizer", name, OPTIMIZERS)
    return dict(OPTIMIZERS[name][1])


def make(name: str, **hparams: Any) -> optax.GradientTransformation:
    """Build optimizer `name`; `hparams` override its defaults (Keras names).

    `learning_rate=None` keeps the default. Unknown names or hyperparameters raise a
    `ZooError` with suggestions.
    """
    factory, params = OPTIMIZERS.get(name, (None, None))
    if factory is None:
        raise UnknownNameError("optimizer", name, OPTIMIZERS)
    for key, value in hparams.items():
        if key not in params:
            raise UnknownNameError(f"hyperparameter of {name!r}", key, params)
        if value is not None:
            if not isinstance(value, int | float) or not jnp.isfinite(value) or value < 0:
                raise ZooError(f"{name} {key} must be a finite number >= 0, got {value!r}")
            params[key] = value
    return factory(**params)


def is_kernel(path: tuple, leaf: jax.Array) -> bool:
    """Keras applies kernel regularizers to weight matrices, never to biases."""
    return getattr(path[-1], "key", None) == "kernel"


def regularization_penalty(params: Any, l1: float = 0.0, l2: float = 0.0) -> jax.Array:
    """Keras `l1_l2(l1, l2)` summed over every kernel: l1·Σ|w| + l2·Σw² (biases excluded)."""
    total = jnp.zeros((), jnp.float32)
    if not (l1 or l2):
        return total
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if is_kernel(path, leaf):
            total = total + l1 * jnp.sum(jnp.abs(leaf)) + l2 * jnp.sum(jnp.square(leaf))
    return total
