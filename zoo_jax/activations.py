"""Activation functions by the names the seeds and Keras use.

Every name maps to a pure function of one array; `get(name)` raises a `ZooError` with
suggestions for unknown names. Learnable activations (PReLU, maxout) are modules in
`zoo_jax.models.layers`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from zoo_jax.errors import UnknownNameError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=0.2),  # Keras 3 default slope
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "softmax": jax.nn.softmax,
}


def get(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the activation function called `name` (Keras spelling)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise UnknownNameError("activation", name, ACTIVATIONS) from None
