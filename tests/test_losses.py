"""The 14 Keras losses against `keras.losses` (per example, float32, within 1e-6), their
edge cases, aliases, and the errors Keras does not raise."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from zoo_jax import losses
from zoo_jax.errors import InputError, UnknownNameError

rng = np.random.default_rng(0)
SHAPE = (16, 6)


def _probs(shape=SHAPE):
    p = rng.uniform(0.01, 1, shape).astype(np.float32)
    return p / p.sum(-1, keepdims=True)


def _close(ours, theirs):
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-6, atol=1e-6)


RANDOM_INPUTS = {
    "mean_squared_error": lambda: (rng.normal(size=SHAPE), rng.normal(size=SHAPE)),
    "mean_absolute_error": lambda: (rng.normal(size=SHAPE), rng.normal(size=SHAPE)),
    "mean_absolute_percentage_error": lambda: (rng.normal(size=SHAPE), rng.normal(size=SHAPE)),
    "mean_squared_logarithmic_error": lambda: (rng.uniform(0, 5, SHAPE), rng.uniform(0, 5, SHAPE)),
    "squared_hinge": lambda: (rng.choice([-1.0, 1.0], SHAPE), rng.normal(size=SHAPE)),
    "hinge": lambda: (rng.choice([-1.0, 1.0], SHAPE), rng.normal(size=SHAPE)),
    "categorical_hinge": lambda: (np.eye(6)[rng.integers(0, 6, 16)], rng.normal(size=SHAPE)),
    "log_cosh": lambda: (rng.normal(size=SHAPE), 5 * rng.normal(size=SHAPE)),
    "huber": lambda: (rng.normal(size=SHAPE), 2 * rng.normal(size=SHAPE)),
    "categorical_crossentropy": lambda: (_probs(), _probs()),
    "sparse_categorical_crossentropy": lambda: (rng.integers(0, 6, 16), _probs()),
    "binary_crossentropy": lambda: (rng.integers(0, 2, SHAPE), rng.uniform(0, 1, SHAPE)),
    "kl_divergence": lambda: (_probs(), _probs()),
    "poisson": lambda: (rng.poisson(2, SHAPE), rng.uniform(0.1, 4, SHAPE)),
}


def _f32(y_true, y_pred):
    y_true = np.asarray(y_true)
    y_true = y_true if y_true.dtype.kind == "i" else y_true.astype(np.float32)
    return y_true, np.asarray(y_pred, np.float32)


def test_catalogue_is_the_seeds_fourteen():
    assert set(losses.LOSSES) == set(RANDOM_INPUTS) and len(losses.LOSSES) == 14


@pytest.mark.parametrize("name", sorted(RANDOM_INPUTS))
def test_random_inputs_equal_keras(name):
    y_true, y_pred = _f32(*RANDOM_INPUTS[name]())
    ours = losses.get(name)(y_true, y_pred)
    assert ours.shape == (16,)
    _close(ours, getattr(keras.losses, name)(y_true, y_pred))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("categorical_crossentropy", {"from_logits": True}),
        ("categorical_crossentropy", {"label_smoothing": 0.1}),
        ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.2}),
        ("binary_crossentropy", {"from_logits": True}),
        ("binary_crossentropy", {"label_smoothing": 0.1}),
        ("sparse_categorical_crossentropy", {"from_logits": True}),
        ("huber", {"delta": 0.3}),
    ],
)
def test_options_equal_keras(name, kwargs):
    y_true, y_pred = _f32(*RANDOM_INPUTS[name]())
    if kwargs.get("from_logits"):
        y_pred = 3 * rng.normal(size=y_pred.shape).astype(np.float32)
    _close(
        losses.get(name)(y_true, y_pred, **kwargs),
        getattr(keras.losses, name)(y_true, y_pred, **kwargs),
    )


ZERO_ONE = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], np.float32)


@pytest.mark.parametrize(
    ("name", "y_true", "y_pred"),
    [
        ("mean_absolute_percentage_error", np.zeros((3, 3)), rng.normal(size=(3, 3))),
        ("mean_absolute_percentage_error", ZERO_ONE, ZERO_ONE[::-1]),
        ("mean_squared_logarithmic_error", np.zeros((3, 3)), np.zeros((3, 3))),
        ("mean_squared_logarithmic_error", ZERO_ONE, -np.ones((3, 3))),  # negatives clip at ε
        ("categorical_crossentropy", ZERO_ONE, ZERO_ONE),  # p exactly 0 and 1
        ("categorical_crossentropy", ZERO_ONE, ZERO_ONE[[1, 0, 2]]),
        ("binary_crossentropy", ZERO_ONE, ZERO_ONE[[1, 0, 2]]),
        ("binary_crossentropy", ZERO_ONE, ZERO_ONE),
        ("kl_divergence", ZERO_ONE, ZERO_ONE[[1, 0, 2]]),
        ("kl_divergence", ZERO_ONE, ZERO_ONE),
        ("poisson", ZERO_ONE, ZERO_ONE),
        ("hinge", ZERO_ONE[:2], rng.normal(size=(2, 3))),  # 0/1 labels become −1/+1
        ("squared_hinge", ZERO_ONE[:2], rng.normal(size=(2, 3))),
        ("hinge", ZERO_ONE, rng.normal(size=(3, 3))),  # 0.5 present: labels stay as given
        ("categorical_hinge", ZERO_ONE[:2], ZERO_ONE[:2]),
        ("huber", np.zeros((2, 3)), np.array([[1.0, -1.0, 0.5], [3.0, 0.0, -2.0]])),
        ("log_cosh", np.zeros((1, 3)), np.array([[0.0, 40.0, -40.0]])),  # no overflow
    ],
)
def test_edge_cases_equal_keras(name, y_true, y_pred):
    y_true, y_pred = _f32(y_true, y_pred)
    ours = losses.get(name)(y_true, y_pred)
    assert np.all(np.isfinite(ours))
    _close(ours, getattr(keras.losses, name)(y_true, y_pred))


def test_hinge_labels_zero_one_equal_minus_one_plus_one():
    labels = rng.integers(0, 2, SHAPE).astype(np.float32)
    scores = rng.normal(size=SHAPE).astype(np.float32)
    for name in ("hinge", "squared_hinge"):
        _close(losses.get(name)(labels, scores), losses.get(name)(2 * labels - 1, scores))


@pytest.mark.parametrize(
    ("alias", "keras_name"),
    [
        ("mse", "mse"),
        ("mae", "mae"),
        ("mape", "mape"),
        ("msle", "msle"),
        ("bce", "bce"),
        ("kld", "kld"),
        ("logcosh", "log_cosh"),  # Keras 2's names, kept by Keras 3 as legacy exports
        ("kullback_leibler_divergence", "kl_divergence"),
    ],
)
def test_aliases_are_keras_aliases(alias, keras_name):
    y_true, y_pred = _f32(_probs(), _probs())
    _close(losses.get(alias)(y_true, y_pred), keras.losses.get(keras_name)(y_true, y_pred))


def test_shape_mismatch_raises_where_keras_would_broadcast():
    with pytest.raises(InputError, match=r"\(16, 1\) does not match"):
        losses.get("mse")(np.zeros((16, 1)), np.zeros((16, 6)))  # Keras broadcasts silently
    with pytest.raises(InputError, match="use sparse_categorical_crossentropy"):
        losses.get("categorical_crossentropy")(np.zeros(16), np.zeros((16, 6)))
    _close(losses.get("mse")(np.ones((4, 1)), np.zeros(4)), np.ones(4))  # Keras's squeeze rule


@pytest.mark.parametrize("bad", [-1, 6])
def test_sparse_labels_out_of_range_raise(bad):
    labels = np.array([0, 1, bad, 2], np.int32)
    with pytest.raises(InputError, match=rf"\[0, 6\); got \[{bad}\]"):
        losses.get("sparse_categorical_crossentropy")(labels, np.zeros((4, 6), np.float32))


def test_sparse_labels_out_of_range_inside_jit_are_nan_not_a_wrong_class():
    fn = jax.jit(lambda y, p: losses.sparse_categorical_crossentropy(y, p, from_logits=True))
    out = np.asarray(fn(jnp.array([0, -1, 6, 5]), jnp.zeros((4, 6))))
    assert np.isfinite(out[[0, 3]]).all() and np.isnan(out[[1, 2]]).all()


def test_sparse_labels_must_be_integers():
    with pytest.raises(InputError, match="must be integers"):
        losses.get("sparse_categorical_crossentropy")(np.zeros(4, np.float32), np.zeros((4, 6)))


def test_unknown_loss_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'hinge'"):
        losses.get("hinje")


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_every_loss_trains_a_classifier_head(name):
    """`for_classifier` feeds each loss what a Keras classifier would: its gradient is finite
    and a gradient step lowers it."""
    labels = jnp.asarray(rng.integers(0, 6, 16))
    logits = jnp.asarray(rng.normal(size=SHAPE), jnp.float32)
    loss = lambda z: losses.for_classifier(name)(labels, z).mean()
    value, grad = jax.value_and_grad(loss)(logits)
    assert np.isfinite(value) and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    assert loss(logits - 0.1 * grad) < value


def test_for_classifier_feeds_softmax_to_regression_losses():
    labels = jnp.array([2, 0])
    logits = jnp.asarray(rng.normal(size=(2, 3)), jnp.float32)
    expected = keras.losses.mean_squared_error(np.eye(3)[[2, 0]], jax.nn.softmax(logits))
    _close(losses.for_classifier("mse")(labels, logits), expected)
