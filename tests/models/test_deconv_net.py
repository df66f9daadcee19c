"""The deconvolutional network: the seed's Keras model numerically, its parameter count, the
generator learner (translations, loss, updates, multi-device) and the per-pixel losses."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

import zoo_jax
from zoo_jax import losses, optim, registry
from zoo_jax.errors import ZooError
from zoo_jax.learners import ClassDecoderLearner, shift_images
from zoo_jax.models.convolutional import DeconvNet


def keras_deconv_net(dense, base, filters, crop):
    """The seed's `000_…` DN, written with Keras layers (sizes as arguments)."""
    (top, bottom), (left, right) = crop
    return keras.Sequential(
        [keras.Input((dense[0] // 2,)), *[keras.layers.Dense(w, activation="relu") for w in dense],
         keras.layers.Reshape(base),
         *[keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")
           for f in filters],
         keras.layers.Conv2D(1, 3, padding="same", activation="relu"),
         keras.layers.Lambda(lambda t: t[:, top:-bottom, left:-right])]
    )  # fmt: skip


def test_seed_deconv_net_count_and_output_shape():
    """Dense 56→7500→7500, 25×15×20, three transposed 3×3/20, conv 1: 56,696,041 weights
    (Keras's count of the seed's model), output 196×115 after the seed's crop."""
    assert registry.count_params("deconv_net") == 56_696_041
    out = jax.eval_shape(
        lambda x: DeconvNet().init_with_output(jax.random.PRNGKey(0), x)[0],
        jax.ShapeDtypeStruct((2, 56), jnp.float32),
    )
    assert out.shape == (2, 196, 115, 1)


def test_deconv_net_equals_keras_with_the_same_weights():
    dense, base, filters, crop = (16, 5 * 3 * 4), (5, 3, 4), (4, 3, 2), ((2, 2), (2, 3))
    reference = keras_deconv_net(dense, base, filters, crop)
    rng = np.random.default_rng(0)
    for w in reference.weights:
        w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))
    model = DeconvNet(dense=dense, base_shape=base, filters=filters, crop=crop)
    names = ["Dense_0", "Dense_1", "ConvTranspose_0", "ConvTranspose_1", "ConvTranspose_2",
             "Conv2D_0"]  # fmt: skip
    weights = [w.numpy() for w in reference.weights]
    params = {
        n: {"kernel": weights[2 * i], "bias": weights[2 * i + 1]} for i, n in enumerate(names)
    }
    code = rng.normal(size=(3, 8)).astype(np.float32)
    ours = jax.jit(model.apply)({"params": params}, code)
    assert ours.shape == (3, 5 * 8 - 4, 3 * 8 - 5, 1)
    theirs = reference.predict(code, verbose=0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_deconv_net_rejects_bad_codes_and_shapes():
    with pytest.raises(ZooError, match="code_dim"):
        DeconvNet().init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    with pytest.raises(ZooError, match="last dense layer must have 7500 units"):
        DeconvNet(dense=(100,)).init(jax.random.PRNGKey(0), jnp.zeros((1, 56)))


def test_translate_moves_images_with_zeros_shifted_in():
    images = np.random.default_rng(0).random((3, 6, 5, 1)).astype(np.float32)
    shifts = np.array([[0, 0], [2, -1], [-1, 2]], np.int32)
    out = np.asarray(shift_images(jnp.asarray(images), jnp.asarray(shifts), max_shift=2))
    for img, (dy, dx), got in zip(images, shifts, out, strict=True):
        expected = np.zeros_like(img)
        src = img[max(-dy, 0) : 6 - max(dy, 0), max(-dx, 0) : 5 - max(dx, 0)]
        expected[max(dy, 0) : max(dy, 0) + src.shape[0], max(dx, 0) : max(dx, 0) + src.shape[1]] = (
            src
        )
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", losses.PIXEL_LOSSES)
def test_pixel_losses_equal_keras_per_image(name):
    rng = np.random.default_rng(1)
    images = rng.random((4, 5, 5, 1)).astype(np.float32)
    logits = rng.normal(size=(4, 5, 5, 1)).astype(np.float32)
    ours = losses.for_images(name)(images, logits)
    fn = keras.losses.get(name)
    probs = jax.nn.sigmoid(logits)
    theirs = (fn(images, logits, from_logits=True) if name == "binary_crossentropy"
              else fn(images, probs))  # fmt: skip
    np.testing.assert_allclose(ours, np.asarray(theirs).reshape(4, -1).mean(-1), rtol=1e-5)


def test_class_distribution_losses_are_refused_for_images():
    with pytest.raises(ZooError, match="compares class distributions"):
        losses.for_images("categorical_crossentropy")


def _learner_and_batch():
    overrides, shape, classes = registry.training_spec("deconv_net", registry.get_card(
        "deconv_net").test_overrides)  # fmt: skip
    learner = ClassDecoderLearner(
        zoo_jax.get_model("deconv_net", **overrides), losses.for_images("binary_crossentropy"),
        optim.make("adam", learning_rate=5e-2), num_classes=classes,
    )  # fmt: skip
    labels = np.arange(8, dtype=np.int32) % classes
    patterns = np.zeros((classes, *shape), np.float32)  # class c: a bar at rows 2c, 2c + 1
    for c in range(classes):
        patterns[c, 2 * c + 4 : 2 * c + 6, 4:-4] = 1
    return learner, {"inputs": patterns[labels], "labels": labels}


def test_class_decoder_learner_draws_the_batch_and_lowers_its_loss():
    learner, batch = _learner_and_batch()
    assert isinstance(learner, ClassDecoderLearner)
    state = learner.init(jax.random.PRNGKey(0), {"inputs": batch["inputs"]})
    update = jax.jit(learner.update)
    evaluate = jax.jit(learner.evaluate)
    weight = {"weight": np.ones(8, np.float32)}
    before = evaluate(state, batch | weight)
    for i in range(50):
        state, metrics = update(state, batch, jax.random.PRNGKey(i))
        assert bool(metrics["finite"])
    after = evaluate(state, batch | weight)
    assert float(after["loss"]) < 0.7 * float(before["loss"])
    assert float(after["count"]) == 8 and 0 < float(after["pixel_agreement"]) <= 8
    images = learner.generate(state.params, jnp.arange(3))
    chex.assert_shape(images, (3, 28, 28, 1))
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    codes = learner.code(jnp.array([2]), jnp.array([[2, -1]]))
    np.testing.assert_allclose(codes[0, -2:], [1.0, -0.5])
    assert int(jnp.argmax(codes[0, :10])) == 2


@pytest.mark.parametrize("parallel", ["pmap", "sharded"])
def test_generator_data_parallel_equals_single_device(parallel):
    """With translations off (max_shift 0) the step is deterministic, so 4 devices equal
    one; the sharded step sees the global batch and equals one device with them on too."""
    from zoo_jax.train.steps import compile_steps

    learner, batch = _learner_and_batch()
    for max_shift in (0, 2) if parallel == "sharded" else (0,):
        gen = dataclasses.replace(learner, max_shift=max_shift)
        state = jax.device_get(gen.init(jax.random.PRNGKey(0), {"inputs": batch["inputs"]}))
        results = []
        for mode, devices in (("none", 1), (parallel, 4)):
            steps = compile_steps(gen, mode, devices)
            s = steps.put_state(state)
            for _ in range(3):
                s, _ = steps.train(s, steps.put_batch(batch))
            results.append(steps.get_state(s).params)
        chex.assert_trees_all_close(results[1], results[0], atol=1e-5, rtol=1e-5)
