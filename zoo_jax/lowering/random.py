"""Random bits drawn as `jax.random` draws them, faster on the CPU."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from zoo_jax.lowering.backend import cpu_fusion_barrier


def _threefry2x32(key1, key2, x1, x2):
    """The Threefry-2x32 hash (20 rounds) as JAX computes it (`jax._src.random.threefry2x32`,
    Salmon et al., SC 2011), written out with public `lax` operations."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (key1, key2, key1 ^ key2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r)))
        x1, x2 = x1 + ks[(i + 1) % 3], x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _raw_threefry_key(key: jax.Array) -> jax.Array | None:
    """The key's two uint32 words if `jax.random` would draw its bits with the partitionable
    Threefry-2x32 (JAX's default), else None."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl, key = str(jax.random.key_impl(key)), jax.random.key_data(key)
    else:
        impl = jax.config.jax_default_prng_impl
    ok = impl == "threefry2x32" and key.shape == (2,) and jax.config.jax_threefry_partitionable
    return key if ok else None


def uniform(key: jax.Array, shape: Sequence[int]) -> jax.Array:
    """`jax.random.uniform(key, shape)` (float32 in [0, 1)), the same bits; faster on the
    CPU, and behind `cpu_fusion_barrier`, so each consumer reads it rather than recomputing
    the hash. Other backends, other PRNG implementations, 64-bit floats and arrays of 2³²
    elements or more take `jax.random.uniform` itself. Tested equal to it, bit for bit."""
    words = _raw_threefry_key(key)
    size = int(np.prod(shape))
    if (
        jax.default_backend() != "cpu"
        or words is None
        or size >= 2**32
        or jax.config.jax_enable_x64
    ):
        return jax.random.uniform(key, shape)
    # jax.random: counters are the flat index (its high word is 0 below 2**32 elements);
    # the 32 bits are the XOR of the hash's two words; uniform = mantissa bits in [1, 2) - 1.
    counters = lax.iota(np.uint32, size).reshape(shape)
    bits1, bits2 = _threefry2x32(words[0], words[1], jnp.zeros_like(counters), counters)
    mantissa = ((bits1 ^ bits2) >> np.uint32(9)) | np.uint32(0x3F800000)
    return cpu_fusion_barrier(lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1))


def bernoulli(key: jax.Array, p, shape: Sequence[int]) -> jax.Array:
    """`jax.random.bernoulli(key, p, shape)`, the same bits; faster on the CPU.

    On the CPU JAX lowers Threefry as a rolled loop, and XLA:CPU fuses a mask's generator
    into each of its consumers (a dropout mask was generated in the forward and again in
    the backward pass). Here the hash is unrolled and the mask ends behind
    `cpu_fusion_barrier`, so it is computed once. `p` is a float32 Python float or a float32
    array broadcast to `shape` (a VAE's dynamic binarisation: one probability per pixel);
    other types of `p` take `jax.random.bernoulli` itself, as `uniform` says when it does.
    Tested equal to it, bit for bit.
    """
    python_float = isinstance(p, float)
    if not (python_float or getattr(p, "dtype", None) == jnp.float32) or jax.config.jax_enable_x64:
        return jax.random.bernoulli(key, p, shape)
    return cpu_fusion_barrier(uniform(key, shape) < (np.float32(p) if python_float else p))
