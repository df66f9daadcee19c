"""keras.applications weights on our modules: logits equal on random inputs (random Keras
weights, random BN statistics; nothing downloaded)."""

import jax
import keras
import numpy as np
import pytest

import zoo_jax
from zoo_jax.errors import InputError, UnknownNameError
from zoo_jax.models.convert import from_keras

# keras.applications constructor and the input side the test uses: VGG16's dense head fixes
# 224; the others end in global pooling, so their weights fit any side (Xception needs >= 71),
# and 96 keeps the two forward passes short.
KERAS = {"vgg16": ("VGG16", 224), "resnet50_keras": ("ResNet50", 96),
         "preact_resnet50": ("ResNet50V2", 96), "xception": ("Xception", 96)}  # fmt: skip


def _keras_model(name, seed=0):
    constructor, side = KERAS[name]
    model = getattr(keras.applications, constructor)(
        weights=None, classifier_activation=None, input_shape=(side, side, 3)
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # BN statistics away from (0, 1), so a mix-up would show
        if type(layer).__name__ == "BatchNormalization":
            shape = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape),
                               rng.normal(0, 0.1, shape), rng.uniform(0.5, 1.5, shape)])  # fmt: skip
    return model


@pytest.mark.parametrize("name", sorted(KERAS))
def test_converted_logits_equal_keras(name):
    reference = _keras_model(name)
    x = np.random.default_rng(1).random((2, *reference.input_shape[1:]), np.float32)
    expected = reference.predict(x, verbose=0)  # Keras's compiled inference (eager: 5x slower)
    ours = np.asarray(jax.jit(zoo_jax.get_model(name).apply)(from_keras(name, reference), x))
    assert np.linalg.norm(ours - expected) <= 1e-4 * np.linalg.norm(expected)
    assert np.argmax(ours, -1).tolist() == np.argmax(expected, -1).tolist()


def test_wrong_keras_model_is_a_clear_error():
    with pytest.raises(UnknownNameError, match="did you mean 'xception'"):
        from_keras("xceptio", None)
    small_vgg = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=10)
    with pytest.raises(InputError, match="expects shape"):
        from_keras("vgg16", small_vgg)  # fc1 sized for 32x32 input, ours for 224x224
