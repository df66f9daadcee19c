"""2-D sprites with known generative factors, generated in code as dSprites is built
(Matthey, Higgins, Hassabis & Lerchner 2017, "dSprites: disentanglement testing sprites
dataset"): every combination of the factors below, rendered at 32×32 (dSprites: 64×64,
three shapes, 6 scales, 40 orientations, 32 × 32 positions; here fewer values of each so
the set fits this CPU's time budget).

    FACTORS = ("shape", "scale", "rotation", "x", "y")    # VALUES[f]: the values of each

- shape: square, ellipse, triangle (dSprites' heart is replaced by a triangle: its outline
  is a formula of three half-planes);
- scale: 6 values in [0.5, 1] of the largest size; rotation: 10 angles in [0, 54°] (every
  shape's symmetry group is at least 90° apart, so an angle in that range is recoverable
  from the image); x, y: 8 positions each in [-0.5, 0.5] of the half-width.

`render(factors)` is a pure `jax.numpy` function of a `(n, 5)` array of factor values (the
DCIGN learner draws its factor-structured mini-batches inside the train step with it);
`load(split)` is the whole set (3 · 6 · 10 · 8 · 8 = 11,520 images) in a fixed shuffled
order, the first `TEST` of it the test split, the rest the training split: images
`(n, 32, 32, 1)` in [0, 1], labels the shape, and `factors(split)` the factor values. Edges
are anti-aliased over one pixel, so an image is a continuous function of scale, angle and
position.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from zoo_jax.errors import UnknownNameError

SIZE = 32
FACTORS = ("shape", "scale", "rotation", "x", "y")
SHAPES = ("square", "ellipse", "triangle")
VALUES = {
    "shape": np.arange(3, dtype=np.float32),
    "scale": np.linspace(0.5, 1.0, 6, dtype=np.float32),
    "rotation": np.deg2rad(np.linspace(0.0, 54.0, 10)).astype(np.float32),
    "x": np.linspace(-0.5, 0.5, 8, dtype=np.float32),
    "y": np.linspace(-0.5, 0.5, 8, dtype=np.float32),
}
LARGEST = 0.5  # the half-size of a scale-1 shape, in units of the image's half-width
TEST = 1_520
SEED = 0
SPLITS = ("train", "test")


def render(factors: jax.Array) -> jax.Array:
    """Images `(n, SIZE, SIZE, 1)` in [0, 1] of factor rows `(shape, scale, rotation, x, y)`."""
    factors = jnp.asarray(factors, jnp.float32)
    shape, scale, angle, cx, cy = (factors[:, i, None, None] for i in range(5))
    grid = (jnp.arange(SIZE, dtype=jnp.float32) + 0.5) / SIZE * 2 - 1
    px, py = grid[None, None, :] - cx, grid[None, :, None] - cy
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    u, v = cos * px + sin * py, -sin * px + cos * py
    r = LARGEST * scale
    # a signed distance to each outline (negative inside), in the image's units
    square = jnp.maximum(jnp.abs(u), jnp.abs(v)) - 0.8 * r
    ellipse = (jnp.sqrt((u / r) ** 2 + (v / (0.5 * r)) ** 2) - 1) * 0.5 * r
    normals = [(np.cos(a), np.sin(a)) for a in np.pi / 2 + 2 * np.pi / 3 * np.arange(3) + np.pi]
    triangle = functools.reduce(jnp.maximum, [nx * u + ny * v for nx, ny in normals]) - 0.5 * r
    distance = jnp.where(shape < 0.5, square, jnp.where(shape < 1.5, ellipse, triangle))
    pixel = 2 / SIZE
    return jnp.clip(0.5 - distance / pixel, 0.0, 1.0)[..., None]


@functools.cache
def _all() -> tuple[np.ndarray, np.ndarray]:
    grid = np.array(list(itertools.product(*VALUES.values())), np.float32)
    order = np.random.default_rng(SEED).permutation(len(grid))
    grid = grid[order]
    images = np.concatenate([np.asarray(render(grid[i : i + 2048]))
                             for i in range(0, len(grid), 2048)])  # fmt: skip
    return images, grid


def _rows(split: str) -> slice:
    if split not in SPLITS:
        raise UnknownNameError("split of 'sprites'", split, SPLITS)
    return slice(0, TEST) if split == "test" else slice(TEST, None)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images (n, 32, 32, 1) float32, shape labels (n,) int32)` of one split."""
    images, grid = _all()
    rows = _rows(split)
    return images[rows], grid[rows, 0].astype(np.int32)


def factors(split: str) -> np.ndarray:
    """The factor values `(n, 5)` of the split's images, in `FACTORS` order."""
    return _all()[1][_rows(split)]


def draw(rng: jax.Array, n: int, varying: jax.Array) -> jax.Array:
    """Factor rows `(n, 5)` in which only the factors of `varying` (a `(5,)` bool mask over
    `FACTORS`, traced) change: the others hold one random value for the whole batch
    (Kulkarni et al. 2015's mini-batches); every value is one of `VALUES`."""
    keys = jax.random.split(rng, 2 * len(FACTORS))
    columns = []
    for i, values in enumerate(VALUES.values()):
        values = jnp.asarray(values)
        fixed = jax.random.choice(keys[2 * i], values)
        free = jax.random.choice(keys[2 * i + 1], values, (n,))
        columns.append(jnp.where(varying[i], free, fixed))
    return jnp.stack(columns, 1)
