"""Training-time data augmentation, applied on the device inside the jitted train step.

An augmentation is `fn(rng, images) -> images` on a `(batch, height, width, channels)` float
batch: pure and shape-preserving, so the step stays one compiled program with no host
round-trip, and a fresh draw per step and per example (the step's key).

`affine`: the distortions of LeCun et al. 1998 (§III-C, "LeNet-5 [distortions]", 0.8 %
MNIST test error): planar affine maps combining horizontal and vertical translation,
scaling, squeezing (horizontal compression with vertical elongation, or the reverse) and
horizontal shearing. The paper names the kinds but not their ranges; ours are ±2 pixels,
±10 % scale, ±10 % squeeze and a shear of ±0.15 (pixels of horizontal shift per pixel of
height), drawn uniformly. Pixels are resampled bilinearly about the image centre; what comes
from outside the image is 0 (the background of MNIST and Fashion-MNIST).

`shift`: whole-pixel translations of up to 2 pixels each way, zeros shifted in (CapsNet's).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax.errors import UnknownNameError, ZooError

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]


def affine_warp(images: jax.Array, matrix: jax.Array, shift: jax.Array) -> jax.Array:
    """Resample each image at `matrix @ (p - centre) + centre + shift` for every output pixel
    `p = (row, column)`: `images` `(batch, h, w, c)`, `matrix` `(batch, 2, 2)`, `shift`
    `(batch, 2)`. Bilinear, zeros outside. The identity matrix and zero shift return the
    images unchanged."""
    if images.ndim != 4:
        raise ZooError(f"augmentation takes (batch, height, width, channels), got {images.shape}")
    h, w = images.shape[1:3]
    centre = jnp.array([(h - 1) / 2, (w - 1) / 2])
    grid = jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij"), -1) - centre

    def warp_one(image, m, t):
        source = grid @ m.T + centre + t  # (h, w, 2): where each output pixel reads from
        coords = [source[..., 0], source[..., 1]]
        channel = lambda c: jax.scipy.ndimage.map_coordinates(c, coords, order=1, cval=0.0)
        return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

    return jax.vmap(warp_one)(images, matrix.astype(images.dtype), shift.astype(images.dtype))


def random_affine(
    rng: jax.Array,
    images: jax.Array,
    *,
    max_shift: float = 2.0,
    max_scale: float = 0.1,
    max_squeeze: float = 0.1,
    max_shear: float = 0.15,
) -> jax.Array:
    """LeCun et al. (1998)'s distortions, one random draw per image (see the module)."""
    batch = images.shape[0]
    u = jax.random.uniform(rng, (batch, 5), minval=-1.0, maxval=1.0)
    scale, squeeze = 1 + max_scale * u[:, 0], 1 + max_squeeze * u[:, 1]
    shear, shift = max_shear * u[:, 2], max_shift * u[:, 3:]
    zero = jnp.zeros(batch)
    # rows (y) stretch by squeeze, columns (x) shrink by it; x shifts by shear · y
    matrix = scale[:, None, None] * jnp.stack(
        [jnp.stack([squeeze, zero], -1), jnp.stack([shear, 1 / squeeze], -1)], 1
    )
    return affine_warp(images, matrix, shift)


def shift_images(images: jax.Array, shifts: jax.Array, max_shift: int) -> jax.Array:
    """Each image moved by its `(dy, dx)` shift (down / right positive), zeros shifted in."""
    m = max_shift
    height, width, channels = images.shape[1:]
    padded = jnp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)))
    cut = lambda img, s: lax.dynamic_slice(img, (m - s[0], m - s[1], 0), (height, width, channels))
    return jax.vmap(cut)(padded, shifts)


def random_shift(rng: jax.Array, images: jax.Array, *, max_shift: int = 2) -> jax.Array:
    """Each image moved by a whole number of pixels, up to `max_shift` each way in each
    direction (uniform), zeros shifted in: the CapsNet paper's augmentation (Sabour et al.
    2017, sec. 5: "shifted by up to 2 pixels in each direction with zero padding")."""
    if images.ndim != 4:
        raise ZooError(f"augmentation takes (batch, height, width, channels), got {images.shape}")
    shifts = jax.random.randint(rng, (images.shape[0], 2), -max_shift, max_shift + 1)
    return shift_images(images, shifts, max_shift)


AUGMENTATIONS: dict[str, Augmentation] = {"affine": random_affine, "shift": random_shift}


def get(name: str) -> Augmentation:
    if name not in AUGMENTATIONS:
        raise UnknownNameError("augmentation", name, list(AUGMENTATIONS))
    return AUGMENTATIONS[name]
