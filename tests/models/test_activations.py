"""Activations by name against `keras.activations`; PReLU and Maxout modules against Keras /
NumPy, with float64 gradient checks; the MLP taking them by name."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from jax.test_util import check_grads

from zoo_jax import activations, lowering, registry
from zoo_jax.errors import UnknownNameError, ZooError
from zoo_jax.models import blocks

rng = np.random.default_rng(0)
X = (3 * rng.normal(size=(8, 5))).astype(np.float32)


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_values_and_gradients_equal_keras(name):
    ours, theirs = activations.get(name), getattr(keras.activations, name)
    np.testing.assert_allclose(ours(X), theirs(X), rtol=1e-6, atol=1e-7)
    weights = jnp.asarray(rng.normal(size=X.shape), jnp.float32)  # a generic cotangent
    grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * weights))(jnp.asarray(X))
    np.testing.assert_allclose(grad(ours), grad(theirs), rtol=1e-5, atol=1e-6)


def test_names_and_errors():
    assert set(activations.NAMES) >= {"linear", "sigmoid", "tanh", "relu", "leaky_relu", "prelu",
                                       "maxout", "elu", "selu", "softplus", "softmax"}  # fmt: skip
    with pytest.raises(UnknownNameError, match="did you mean 'relu'"):
        activations.get("rellu")
    with pytest.raises(ZooError, match=r"layers\.PReLU"):
        activations.get("prelu")


def test_prelu_equals_keras_prelu():
    alpha = rng.uniform(0, 0.5, 5).astype(np.float32)
    ours = blocks.PReLU().apply({"params": {"alpha": alpha}}, X)
    keras_layer = keras.layers.PReLU()
    keras_layer.build(X.shape)
    keras_layer.set_weights([alpha])
    np.testing.assert_allclose(ours, keras_layer(X), rtol=1e-6)

    images = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    alpha = rng.uniform(0, 0.5, 3).astype(np.float32)
    keras_layer = keras.layers.PReLU(shared_axes=[1, 2])  # one slope per channel, as ours
    keras_layer.build(images.shape)
    keras_layer.set_weights([alpha.reshape(1, 1, 3)])
    ours = blocks.PReLU().apply({"params": {"alpha": alpha}}, images)
    np.testing.assert_allclose(ours, keras_layer(images), rtol=1e-6)


def test_prelu_starts_at_a_quarter_and_learns_its_slope():
    variables = blocks.PReLU().init(jax.random.PRNGKey(0), X)
    np.testing.assert_array_equal(variables["params"]["alpha"], np.full(5, 0.25, np.float32))
    grad = jax.grad(lambda v: blocks.PReLU().apply(v, X).sum())(variables)["params"]["alpha"]
    np.testing.assert_allclose(grad, np.minimum(X, 0).sum(0), rtol=1e-6)  # ∂/∂a = Σ min(x, 0)


def test_maxout_equals_numpy():
    module = blocks.Maxout(features=4, pieces=3)
    variables = module.init(jax.random.PRNGKey(1), X)
    kernel = np.asarray(variables["params"]["Dense_0"]["kernel"])
    bias = rng.normal(size=12).astype(np.float32)
    variables = {"params": {"Dense_0": {"kernel": kernel, "bias": bias}}}
    z = (X @ kernel + bias).reshape(8, 4, 3)  # unit i owns pieces 3i … 3i+2
    np.testing.assert_allclose(module.apply(variables, X), z.max(-1), rtol=1e-6)
    assert kernel.shape == (5, 12)


def test_custom_activation_gradients_float64():
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(6, 5)))  # float64, no exact zeros (PReLU's kink)
        for module in (blocks.PReLU(), blocks.Maxout(features=3, pieces=2)):
            variables = jax.tree.map(
                lambda a: a.astype(jnp.float64) + 0.1, module.init(jax.random.PRNGKey(2), x)
            )
            check_grads(lambda v, x, m=module: m.apply(v, x), (variables, x), order=2,
                        modes=["fwd", "rev"])  # fmt: skip
        leaky = activations.get("leaky_relu")
        check_grads(leaky, (x,), order=1, modes=["fwd", "rev"])


def test_mlp_takes_learnable_activations_by_name():
    base = registry.count_params("mlp")
    assert base == 269_322
    prelu = registry.get_model("mlp", activation="prelu")
    maxout = registry.get_model("mlp", activation="maxout", maxout_pieces=2)
    shape = registry.get_card("mlp").input_shape
    assert registry.count_params(prelu, shape) == base + 2 * 256
    assert registry.count_params(maxout, shape) == (784 * 512 + 512) + (256 * 512 + 512) + 2570
    out = maxout.apply(maxout.init(jax.random.PRNGKey(0), jnp.zeros((2, 784))), jnp.ones((2, 784)))
    assert out.shape == (2, 10)


def test_unknown_activation_in_a_model_config_is_a_zoo_error():
    with pytest.raises(UnknownNameError, match="did you mean 'selu'"):
        registry.count_params(registry.get_model("mlp", activation="seluu"), (784,))
    with pytest.raises(ZooError, match="maxout replaces a Dense layer"):
        cnn = registry.get_model("cnn", activation="maxout")
        registry.count_params(cnn, (28, 28, 1))


def test_cnn_with_prelu_has_one_slope_per_channel():
    cnn = registry.get_model("cnn", activation="prelu")
    variables = jax.eval_shape(cnn.init, jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    slopes = [v for k, v in variables["params"].items() if k.startswith("PReLU")]
    assert [s["alpha"].shape for s in slopes] == [(64,)] * 3
    assert isinstance(cnn, nn.Module)


def test_non_decreasing_activations_commute_with_max_pooling():
    """What lets `DeepConvNet` pool before it activates: f(max x) = max f(x) for every
    activation listed as non-decreasing (checked on a sorted grid, to float32 rounding: XLA's
    tanh steps back by one ulp near ±1), and not for softmax."""
    grid = jnp.linspace(-6.0, 6.0, 2001)
    x = jnp.asarray(rng.normal(size=(2, 6, 6, 3)) * 3, jnp.float32)
    for name in activations.NON_DECREASING:
        f = activations.get(name)
        assert bool(jnp.all(jnp.diff(f(grid)) >= -1e-7)), name
        np.testing.assert_allclose(lowering.max_pool(f(x)), f(lowering.max_pool(x)), rtol=1e-6)
    assert "softmax" not in activations.NON_DECREASING
    softmax = activations.get("softmax")
    assert not np.allclose(lowering.max_pool(softmax(x)), softmax(lowering.max_pool(x)))
