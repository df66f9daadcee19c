"""Optimizers, schedules, clipping, weight decay and max-norm against Keras 3 (JAX backend).

Both sides get the same gradients (one jitted function of the current weights) for 100 steps
of a small tanh network on changing batches; only the update rules differ.
"""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

from zoo_jax import optim
from zoo_jax.errors import UnknownNameError, ZooError

K = keras.optimizers
STEPS = 100
_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(STEPS, 8, 12)), jnp.float32)
Y = jnp.asarray(_rng.integers(0, 5, size=(STEPS, 8)))
INIT = {
    "hidden": {
        "kernel": (0.3 * _rng.normal(size=(12, 16))).astype(np.float32),
        "bias": np.zeros(16, np.float32),
    },
    "out": {
        "kernel": (0.3 * _rng.normal(size=(16, 5))).astype(np.float32),
        "bias": np.zeros(5, np.float32),
    },
}
ORDER = [("hidden", "kernel"), ("hidden", "bias"), ("out", "kernel"), ("out", "bias")]


def _loss(params, step):
    h = jnp.tanh(X[step] @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    logits = h @ params["out"]["kernel"] + params["out"]["bias"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, Y[step]).mean()


_grad = jax.jit(jax.grad(_loss))


def train_ours(tx):
    @jax.jit
    def step(params, state, i):
        updates, state = tx.update(_grad(params, i), state, params)
        return optax.apply_updates(params, updates), state

    params = jax.tree.map(jnp.asarray, INIT)
    state = tx.init(params)
    for i in range(STEPS):
        params, state = step(params, state, i)
    return params


def train_keras(opt, exclude_bias_from_decay=False):
    variables = [keras.Variable(INIT[a][b], name=b) for a, b in ORDER]
    if exclude_bias_from_decay:
        opt.exclude_from_weight_decay(var_names=["bias"])
    opt.build(variables)
    nest = lambda v: {
        "hidden": {"kernel": v[0], "bias": v[1]},
        "out": {"kernel": v[2], "bias": v[3]},
    }

    @jax.jit
    def step(values, opt_values, i):
        grads = _grad(nest(values), i)
        return opt.stateless_apply(opt_values, [grads[a][b] for a, b in ORDER], values)

    values, opt_values = [v.value for v in variables], [v.value for v in opt.variables]
    for i in range(STEPS):
        values, opt_values = step(values, opt_values, i)
    return nest(values)


def assert_same_trajectory(ours, theirs, rtol=1e-5):
    for a, b in ORDER:
        ref, got = np.asarray(theirs[a][b]), np.asarray(ours[a][b])
        moved = np.linalg.norm(ref - INIT[a][b])
        assert moved > 1e-2 * max(np.linalg.norm(ref), 1e-3), f"{a}/{b} barely trained"
        rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert rel <= rtol, f"{a}/{b}: relative difference {rel:.2e}"


CASES = [
    ("sgd", {}, lambda: K.SGD(0.01)),
    ("sgd", {"momentum": 0.9}, lambda: K.SGD(0.01, momentum=0.9)),
    ("nag", {}, lambda: K.SGD(0.01, momentum=0.9, nesterov=True)),
    ("rmsprop", {}, lambda: K.RMSprop(0.001, rho=0.9)),
    (
        "rmsprop",
        {"momentum": 0.5, "centered": True},
        lambda: K.RMSprop(0.001, rho=0.9, momentum=0.5, centered=True),
    ),
    ("adagrad", {}, lambda: K.Adagrad(0.01)),
    ("adadelta", {}, lambda: K.Adadelta(1.0, rho=0.95)),
    ("adam", {}, lambda: K.Adam(0.001)),
    ("adam", {"amsgrad": True, "beta_2": 0.99}, lambda: K.Adam(0.001, beta_2=0.99, amsgrad=True)),
    ("adamax", {}, lambda: K.Adamax(0.002)),
    ("nadam", {}, lambda: K.Nadam(0.002)),
    ("adam", {"weight_decay": 0.1}, lambda: K.Adam(0.001, weight_decay=0.1)),
    ("sgd", {"momentum": 0.9, "clipnorm": 0.1}, lambda: K.SGD(0.01, momentum=0.9, clipnorm=0.1)),
    ("adam", {"global_clipnorm": 0.1}, lambda: K.Adam(0.001, global_clipnorm=0.1)),
    ("rmsprop", {"clipvalue": 0.01}, lambda: K.RMSprop(0.001, clipvalue=0.01)),
]


@pytest.mark.parametrize(("name", "hparams", "keras_opt"), CASES)
def test_optimizer_equals_keras_after_100_steps(name, hparams, keras_opt):
    ours = train_ours(optim.make(name, **hparams))
    theirs = train_keras(keras_opt(), exclude_bias_from_decay="weight_decay" in hparams)
    assert_same_trajectory(ours, theirs)


def test_seed_defaults():
    assert optim.defaults("adadelta")["learning_rate"] == 1.0
    assert optim.defaults("adamax")["learning_rate"] == optim.defaults("nadam")["learning_rate"]
    assert optim.defaults("nag") == {"learning_rate": 0.01, "momentum": 0.9}
    assert {o["name"] for o in optim.describe()} == {
        "sgd", "nag", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam",
    }  # fmt: skip


def test_sgd_under_a_schedule_equals_keras():
    """Keras's velocity accumulates α·g; ours must too when α changes every step."""
    lr = optim.schedule("exponential_decay", 0.05, decay_steps=10, decay_rate=0.5)
    keras_lr = K.schedules.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.5)
    ours = train_ours(optim.make("sgd", learning_rate=lr, momentum=0.9))
    assert_same_trajectory(ours, train_keras(K.SGD(keras_lr, momentum=0.9)))


@pytest.mark.parametrize(
    ("name", "options", "keras_schedule"),
    [
        ("exponential_decay", {"decay_steps": 30, "decay_rate": 0.3}, "ExponentialDecay"),
        (
            "exponential_decay",
            {"decay_steps": 30, "decay_rate": 0.3, "staircase": True},
            "ExponentialDecay",
        ),
        ("inverse_time_decay", {"decay_steps": 20, "decay_rate": 0.5}, "InverseTimeDecay"),
        (
            "inverse_time_decay",
            {"decay_steps": 20, "decay_rate": 0.5, "staircase": True},
            "InverseTimeDecay",
        ),
        ("cosine_decay", {"decay_steps": 100, "alpha": 0.1}, "CosineDecay"),
        ("polynomial_decay", {"decay_steps": 100, "power": 2.0}, "PolynomialDecay"),
    ],
)
def test_schedules_equal_keras(name, options, keras_schedule):
    ours = optim.schedule(name, 0.1, **options)
    theirs = getattr(K.schedules, keras_schedule)(0.1, **options)
    for step in (0, 1, 19, 20, 21, 50, 99, 100, 150):
        np.testing.assert_allclose(float(ours(step)), float(theirs(step)), rtol=1e-6, atol=1e-9)


def test_piecewise_constant_schedule_equals_keras():
    ours = optim.schedule(
        "piecewise_constant_decay", 0.1, boundaries=[10, 20], values=[1, 0.5, 0.1]
    )
    theirs = K.schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    for step in (0, 9, 10, 11, 20, 21, 100):
        assert float(ours(step)) == pytest.approx(float(theirs(step)))


def test_epsilon_placements_follow_their_formulas():
    """ "paper" is optax.adam (Kingma & Ba's m̂ / (√v̂ + ε)); "chapter" the seed's m̂ / √(v̂ + ε)."""
    eps = 1e-3  # large enough that the placements differ visibly
    paper = train_ours(optim.make("adam", epsilon=eps, epsilon_placement="paper"))
    assert_same_trajectory(paper, train_ours(optax.adam(0.001, eps=eps)), rtol=1e-6)

    g = np.array([1e-3, -2e-2, 0.5], np.float32)
    m, v = 0.1 * g, 0.001 * g**2  # first step: m̂ = g, v̂ = g²
    tx = optim.make("adam", epsilon=eps, epsilon_placement="chapter")
    update, _ = tx.update(jnp.asarray(g), tx.init(jnp.zeros(3)))
    expected = -0.001 * (m / 0.1) / np.sqrt(v / 0.001 + eps)
    np.testing.assert_allclose(update, expected, rtol=1e-5)
    keras_update, _ = optim.make("adam", epsilon=eps).update(jnp.asarray(g), tx.init(jnp.zeros(3)))
    assert not np.allclose(keras_update, update, rtol=1e-3)


def test_max_norm_projection_equals_keras_constraint():
    dense = _rng.normal(size=(30, 7)).astype(np.float32) * 2
    conv = _rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(
        optim.project_max_norm(jnp.asarray(dense), 3.0),
        keras.constraints.MaxNorm(3.0, axis=0)(dense),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        optim.project_max_norm(jnp.asarray(conv), 1.5),
        keras.constraints.MaxNorm(1.5, axis=[0, 1, 2])(conv),
        rtol=1e-6,
    )


def test_max_norm_constrains_kernels_after_every_update():
    params = train_ours(optim.make("sgd", learning_rate=1.0, momentum=0.9, max_norm=0.5))
    for a in ("hidden", "out"):
        norms = np.linalg.norm(params[a]["kernel"], axis=0)
        assert norms.max() <= 0.5 * (1 + 1e-5) and norms.max() > 0.49
    unconstrained = train_ours(optim.make("sgd", learning_rate=1.0, momentum=0.9))
    assert np.linalg.norm(unconstrained["hidden"]["kernel"], axis=0).max() > 0.5


def test_regularization_penalty_equals_keras_l1_l2():
    params = jax.tree.map(jnp.asarray, INIT)
    reg = keras.regularizers.L1L2(l1=1e-3, l2=1e-2)
    expected = sum(float(reg(INIT[a]["kernel"])) for a in ("hidden", "out"))  # no biases
    assert float(optim.regularization_penalty(params, 1e-3, 1e-2)) == pytest.approx(expected, 1e-6)
    assert float(optim.regularization_penalty(params)) == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: optim.make("adamm"), "did you mean 'adam'"),
        (lambda: optim.make("sgd", momentun=0.9), "did you mean 'momentum'"),
        (lambda: optim.make("adam", beta_1=1.5), "beta_1 must be in [0, 1)"),
        (lambda: optim.make("adam", learning_rate=float("nan")), "finite number"),
        (lambda: optim.make("sgd", nesterov="yes"), "true or false"),
        (lambda: optim.make("adam", epsilon_placement="inside"), "unknown epsilon_placement"),
        (lambda: optim.make("sgd", clipnorm=1.0, clipvalue=1.0), "only one of"),
        (lambda: optim.make("sgd", clipnorm=0.0), "clipnorm must be > 0"),
        (lambda: optim.make("adam", global_clipnorm=0), "global_clipnorm must be > 0"),
        (lambda: optim.schedule("cosine", 0.1, decay_steps=5), "did you mean 'cosine_decay'"),
        (lambda: optim.schedule("cosine_decay", 0.1), "needs decay_steps"),
        (lambda: optim.schedule("cosine_decay", 0.1, decay_steps=-1), "decay_steps must be"),
        (
            lambda: optim.schedule("exponential_decay", 0.1, decay_steps=9, decay_rate=None),
            "finite",
        ),
        (
            lambda: optim.schedule("piecewise_constant_decay", 0.1, boundaries=[5], values="ab"),
            "values must be a list of finite numbers",
        ),
        (lambda: optim.schedule("cosine_decay", 0.1, decay_steps=5, alfa=0), "alpha"),
        # Keras takes these and trains on negative or NaN learning rates
        (
            lambda: optim.schedule("exponential_decay", 0.1, decay_steps=9, decay_rate=-1),
            "decay_rate must be a finite number > 0, got -1",
        ),
        (
            lambda: optim.schedule("cosine_decay", 0.1, decay_steps=9, alpha=-1),
            "alpha must be a finite number in [0, 1]",
        ),
        (
            lambda: optim.schedule("polynomial_decay", 0.1, decay_steps=9, power=0),
            "power must be a finite number > 0",
        ),
        (
            lambda: optim.schedule("piecewise_constant_decay", 0.1, boundaries=[5], values=[1, -1]),
            "values must be a list of finite numbers >= 0",
        ),
        (lambda: optim.make("sgd", max_norm=0), "max_norm must be > 0"),
    ],
)
def test_bad_optimizer_settings_raise_zoo_errors(call, message):
    with pytest.raises(ZooError, match=None) as exc:
        call()
    assert message in str(exc.value)
    assert isinstance(exc.value, ZooError)
    if "did you mean" in message:
        assert isinstance(exc.value, UnknownNameError)
