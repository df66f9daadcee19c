"""Activation functions by the names the textbooks and Keras use.

Element-wise functions are here; `get(name)` raises a `ZooError` with suggestions for unknown
names. The two learnable ones are Flax modules in `zoo_jax.models.layers` — `PReLU` (He et al.
2015) and `Maxout` (Goodfellow et al. 2013) — and models take them by the same names
(`activation="prelu"`, `activation="maxout"`).

Conventions (Keras 3's functions): `leaky_relu` slope 0.2 (the Keras *layer* uses 0.3);
`elu` α = 1; `selu` the constants of Klambauer et al. 2017; `softmax` over the last axis.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from zoo_jax.errors import UnknownNameError, ZooError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=0.2),
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "softmax": jax.nn.softmax,
}
# Element-wise and non-decreasing: a max-pool commutes with these (max f(x) = f(max x)), so a
# model may pool before it activates, on a quarter of the values (`DeepConvNet` does).
NON_DECREASING = frozenset(ACTIVATIONS) - {"softmax"}
LEARNABLE = ("prelu", "maxout")  # modules in zoo_jax.models.layers
NAMES = (*ACTIVATIONS, *LEARNABLE)


def get(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the element-wise activation function called `name` (Keras spelling)."""
    if name in LEARNABLE:
        layer = {"prelu": "PReLU", "maxout": "Maxout"}[name]
        raise ZooError(f"{name!r} has parameters: it is the layer zoo_jax.models.layers.{layer}")
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise UnknownNameError("activation", name, NAMES) from None
