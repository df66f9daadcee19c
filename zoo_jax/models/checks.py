"""Input validators shared by the models, and the device-memory bound on a model's size.

A wrong layout (channels-first images, float token ids, a 1-D sequence) would otherwise run
and give wrong numbers, or fail deep inside Flax; these say what was expected and what came.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from zoo_jax.errors import InputError, ZooError


def floats(x: jax.Array, model: str) -> jax.Array:
    """`x` checked as floating point: raw uint8 pixels (0–255) would otherwise fail inside a
    convolution with a dtype message, or run through a dense layer on the wrong scale."""
    if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
        raise InputError(
            f"{model} takes floating-point inputs, got {jnp.asarray(x).dtype}: normalise "
            "them, e.g. x.astype('float32') / 255"
        )
    return x


def images(x: jax.Array, model: str) -> jax.Array:
    """`x` checked as a batch of channels-last images `(batch, height, width, channels)`.
    A channels-first batch `(batch, 1 or 3, h, h)` would otherwise run as 1- or 3-row images
    with `h` channels and give wrong logits without an error; it is refused by its shape."""
    floats(x, model)
    if x.ndim != 4:
        raise InputError(
            f"{model} takes images (batch, height, width, channels), got shape {x.shape}"
        )
    if x.shape[1] in (1, 3) and x.shape[2] == x.shape[3] > 3:
        raise InputError(
            f"{model} takes channels-last images (batch, height, width, channels); "
            f"{x.shape} looks channels-first: pass x.transpose(0, 2, 3, 1)"
        )
    return x


def token_ids(ids: jax.Array, model: str) -> jax.Array:
    """`ids` checked as integer token ids `(batch, time)` (an embedding would otherwise fail
    on floats with a dtype message, or broadcast a 1-D sequence against its positions)."""
    if ids.ndim != 2 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise InputError(f"{model} takes (batch, time) token ids, got {ids.shape} {ids.dtype}")
    return ids


def feature_sequences(x: jax.Array, model: str) -> jax.Array:
    """`x` checked as floating-point `(batch, time, features)`."""
    floats(x, model)
    if x.ndim != 3:
        raise InputError(f"{model} takes (batch, time, features), got shape {x.shape}")
    return x


def flatten(x: jax.Array, model: str) -> jax.Array:
    """`(batch, features)`; an input too small for the model's convolutions and pools leaves
    no features, which is an error here rather than a division by zero in the next layer's
    initialiser."""
    if 0 in x.shape[1:]:
        raise InputError(f"the input is too small for {model}: its feature map is {x.shape[1:]}")
    return x.reshape(x.shape[0], -1)


def memory_bytes() -> int | None:
    """Memory of the default device: its allocator's limit on a GPU or TPU, the host's
    physical memory on the CPU; None where neither is known."""
    device = jax.local_devices()[0]  # (a multi-process run's first device may be another's)
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    if device.platform == "cpu" and hasattr(os, "sysconf"):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def check_fits(subject: str, need: int, contents: str) -> None:
    """A `ZooError` when `need` bytes (of `contents`) exceed the device's memory: the bound is
    the machine's, not a chosen cap."""
    memory = memory_bytes()
    if memory is not None and need > memory:
        raise ZooError(
            f"{subject} needs at least {need / 2**30:,.3g} GiB for {contents}, more than the "
            f"device's {memory / 2**30:,.3g} GiB"
        )


def check_stack(model: str, field: str, count: int, params_each: int) -> None:
    """A stack of `count` layers, each of at least `params_each` float32 parameters, must fit
    in the device's memory. Flax builds one Python object per layer before anything is
    traced, so a depth like 10**9 would hang the build instead of failing it: this fails it
    first."""
    check_fits(f"{model} with {field} = {count}", 4 * count * params_each,
               "the parameters of its layers")  # fmt: skip
