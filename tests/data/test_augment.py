"""Training-time augmentation: the affine warp against SciPy, its draws, and its place in
the train step (training inputs only, one compile)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from zoo_jax.data import augment
from zoo_jax.errors import ZooError


def _images(n=3, h=9, w=11, c=2, seed=0):
    return np.random.default_rng(seed).random((n, h, w, c)).astype(np.float32)


def test_identity_and_whole_pixel_shifts_move_pixels_exactly():
    x = _images()
    eye = np.tile(np.eye(2, dtype=np.float32), (3, 1, 1))
    chex.assert_trees_all_equal(augment.affine_warp(x, eye, np.zeros((3, 2))), x)
    # shift (row +1, column -2): output pixel p reads input pixel p + shift, zeros outside
    y = np.asarray(augment.affine_warp(x, eye, np.tile([1.0, -2.0], (3, 1))))
    np.testing.assert_array_equal(y[:, :-1, 2:], x[:, 1:, :-2])
    assert not y[:, -1].any() and not y[:, :, :2].any()


def test_affine_warp_equals_scipy_affine_transform():
    """Random matrices and shifts, against `scipy.ndimage.affine_transform` (bilinear,
    zeros beyond the edge blended in: its "grid-constant" mode), which maps output coordinates o to input ones as `matrix @ o + offset`."""
    x = _images(n=4, h=12, w=10, c=1, seed=1)
    rng = np.random.default_rng(2)
    matrix = (np.eye(2) + 0.2 * rng.standard_normal((4, 2, 2))).astype(np.float32)
    shift = rng.uniform(-2, 2, (4, 2)).astype(np.float32)
    ours = np.asarray(augment.affine_warp(x, matrix, shift))
    centre = np.array([(12 - 1) / 2, (10 - 1) / 2])
    for i in range(4):
        offset = centre - matrix[i] @ centre + shift[i]
        ref = scipy.ndimage.affine_transform(
            x[i, ..., 0], matrix[i], offset, order=1, mode="grid-constant", cval=0.0
        )
        np.testing.assert_allclose(ours[i, ..., 0], ref, atol=1e-5)


def test_random_affine_draws_per_image_and_per_key_within_its_ranges():
    x = np.zeros((64, 28, 28, 1), np.float32)
    x[:, 10:18, 12:16] = 1.0  # a bar in the middle: distortions keep it inside the frame
    a = np.asarray(augment.random_affine(jax.random.PRNGKey(0), x))
    b = np.asarray(augment.random_affine(jax.random.PRNGKey(1), x))
    assert a.shape == x.shape and not np.array_equal(a, b)
    assert len({a[i].tobytes() for i in range(64)}) == 64  # a draw per image
    # the ink's area scales by 1 / det = 1 / scale² (squeeze and shear keep area), scale in
    # [0.9, 1.1]: the mass ratio lies in [1 / 1.21, 1 / 0.81], up to bilinear edge effects
    ratio = a.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ratio.min() > 0.8 and ratio.max() < 1.26 and a.min() >= 0 and a.max() <= 1
    zero = augment.random_affine(
        jax.random.PRNGKey(0), x, max_shift=0, max_scale=0, max_squeeze=0, max_shear=0
    )
    np.testing.assert_allclose(zero, x, atol=1e-6)


def test_bad_names_and_shapes():
    with pytest.raises(ZooError, match="did you mean 'affine'"):
        augment.get("afine")
    with pytest.raises(ZooError, match="batch, height, width, channels"):
        augment.random_affine(jax.random.PRNGKey(0), jnp.zeros((2, 28, 28)))


def test_the_step_augments_training_inputs_only():
    from zoo_jax.train.loop import RunConfig
    from zoo_jax.train.run import build_learner
    from zoo_jax.train.steps import compile_steps

    rng = np.random.default_rng(0)
    batch = {
        "inputs": rng.random((16, 32, 32, 1), dtype=np.float32),
        "labels": rng.integers(0, 10, 16).astype(np.int32),
    }
    losses = {}
    for name in (None, "affine"):
        learner = build_learner(RunConfig(model="lenet5", augment=name).resolved(), 10)
        assert (learner.augment is None) == (name is None)
        compiled = compile_steps(learner, "none", 1)
        state = compiled.put_state(learner.init(jax.random.PRNGKey(0), batch))
        evaluation = compiled.evaluate(state, batch | {"weight": np.ones(16, np.float32)})
        for _ in range(3):
            state, metrics = compiled.train(state, batch)
        assert compiled.traces["train"] == 1
        losses[name] = (float(evaluation["loss"]), float(metrics["loss"]))
    assert losses[None][0] == losses["affine"][0]  # same init, evaluation not augmented
    assert losses[None][1] != losses["affine"][1]  # training saw other inputs
