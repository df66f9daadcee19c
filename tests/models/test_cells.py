"""Recurrent cells: Keras 3's SimpleRNN, LSTM, GRU (both resets) and ConvLSTM2D given the same
weights; Jordan, peephole LSTM and mLSTM against NumPy written from their papers' equations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from zoo_jax import lowering
from zoo_jax.models import cells

B, T, D, U = 3, 7, 5, 6


def _random_params(cell, x, seed=0):
    """The cell's parameters, drawn N(0, 0.5²) (initialisers would hide wrong gate orders)."""
    rng = np.random.default_rng(seed)
    abstract = jax.eval_shape(nn.RNN(cell).init, jax.random.PRNGKey(0), x)["params"]
    return jax.tree.map(lambda a: rng.normal(0, 0.5, a.shape).astype(np.float32), abstract)


def _run(cell, params, x):
    return np.asarray(jax.jit(nn.RNN(cell).apply)({"params": params}, x))


KERAS = {
    "elman": (lambda: cells.ElmanCell(U), lambda: keras.layers.SimpleRNN(U, return_sequences=True)),
    "lstm": (lambda: cells.LSTMCell(U), lambda: keras.layers.LSTM(U, return_sequences=True)),
    "gru": (lambda: cells.GRUCell(U), lambda: keras.layers.GRU(U, return_sequences=True)),
    "gru_reset_before": (
        lambda: cells.GRUCell(U, reset_after=False),
        lambda: keras.layers.GRU(U, return_sequences=True, reset_after=False),
    ),
}


@pytest.mark.parametrize("name", sorted(KERAS))
def test_cells_equal_keras_layers(name):
    make_cell, make_layer = KERAS[name]
    x = jnp.asarray(np.random.default_rng(1).normal(size=(B, T, D)), jnp.float32)
    params = _random_params(make_cell(), x)
    layer = make_layer()
    layer.build((B, T, D))
    by_name = {w.path.split("/")[-1]: w for w in layer.weights}
    for key, value in params["cell"].items():
        by_name[key].assign(np.asarray(value))
    np.testing.assert_allclose(_run(make_cell(), params, x), layer(x), rtol=1e-5, atol=1e-5)
    assert set(by_name) == set(params["cell"])  # no Keras weight left unset


def test_conv_lstm_equals_keras_conv_lstm2d():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 4, 5, 6, 3)), jnp.float32)
    cell = lambda: cells.ConvLSTMCell(4, (3, 3))
    params = _random_params(cell(), x)
    layer = keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)
    layer.build(x.shape)
    by_name = {w.path.split("/")[-1]: w for w in layer.weights}
    for key, value in params["cell"].items():
        by_name[key].assign(np.asarray(value))
    np.testing.assert_allclose(_run(cell(), params, x), layer(x), rtol=1e-5, atol=1e-5)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _numpy_jordan(p, x, out):
    y, ys = np.zeros((x.shape[0], out)), []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ p["kernel"] + y @ p["recurrent_kernel"] + p["bias"])
        y = np.tanh(h @ p["output_kernel"] + p["output_bias"])
        ys.append(y)
    return np.stack(ys, 1)


def _numpy_peephole(p, x):
    c = h = np.zeros((x.shape[0], U))
    hs = []
    W, R, b, P = p["kernel"], p["recurrent_kernel"], p["bias"], p["peepholes"]
    for t in range(x.shape[1]):
        z = x[:, t] @ W + h @ R + b
        zi, zf, zg, zo = z[:, :U], z[:, U : 2 * U], z[:, 2 * U : 3 * U], z[:, 3 * U :]
        i = _sigmoid(zi + P[0] * c)
        f = _sigmoid(zf + P[1] * c)
        c = f * c + i * np.tanh(zg)
        o = _sigmoid(zo + P[2] * c)  # the output gate looks at the new state
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, 1)


def _numpy_mlstm(p, x):
    c = h = np.zeros((x.shape[0], U))
    hs = []
    for t in range(x.shape[1]):
        m = (x[:, t] @ p["multiplicative_kernel"]) * (h @ p["multiplicative_recurrent_kernel"])
        z = x[:, t] @ p["kernel"] + m @ p["recurrent_kernel"] + p["bias"]
        i, f, g, o = np.split(z, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = np.tanh(c) * _sigmoid(o)
        hs.append(h)
    return np.stack(hs, 1)


@pytest.mark.parametrize(
    ("cell", "reference"),
    [
        (cells.JordanCell(U, output_units=4), lambda p, x: _numpy_jordan(p, x, 4)),
        (cells.PeepholeLSTMCell(U), _numpy_peephole),
        (cells.MultiplicativeLSTMCell(U), _numpy_mlstm),
    ],
    ids=["jordan", "peephole_lstm", "mlstm"],
)
def test_cells_equal_numpy_from_the_papers(cell, reference):
    x = np.random.default_rng(3).normal(size=(B, T, D)).astype(np.float32)
    params = _random_params(cell, jnp.asarray(x))
    expected = reference(jax.tree.map(np.asarray, params["cell"]), x.astype(np.float64))
    np.testing.assert_allclose(_run(cell, params, jnp.asarray(x)), expected, rtol=1e-4, atol=1e-5)


def test_keras_initialisers():
    """Glorot kernels, orthogonal recurrent kernels, forget-gate bias one (unit_forget_bias)."""
    x = jnp.zeros((1, T, D))
    params = nn.RNN(cells.LSTMCell(U)).init(jax.random.PRNGKey(0), x)["params"]["cell"]
    np.testing.assert_array_equal(params["bias"], np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])
    r = np.asarray(params["recurrent_kernel"])  # (U, 4U): orthonormal rows
    np.testing.assert_allclose(r @ r.T, np.eye(U), atol=1e-5)
    limit = np.sqrt(6 / (D + 4 * U))
    assert np.abs(params["kernel"]).max() <= limit


def _keras_weights(layer, params):
    """Assign our cell parameters to a built Keras recurrent layer, by name."""
    by_name = {w.path.split("/")[-1]: w for w in layer.weights}
    for key, value in params.items():
        by_name[key].assign(np.asarray(value))


def test_recurrent_layer_masking_state_and_direction_equal_keras():
    """Mask (a padded batch), initial state, go_backwards, return_state: Keras's LSTM."""
    from zoo_jax.models.recurrent import Recurrent

    rng = np.random.default_rng(4)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    mask = np.arange(T)[None, :] < np.array([[T], [4], [1]])  # lengths 7, 4, 1
    init = tuple(rng.normal(size=(B, U)).astype(np.float32) for _ in range(2))  # (c, h)
    for go_backwards in (False, True):
        for return_sequences in (False, True):
            layer = Recurrent(cells.LSTMCell(U), return_sequences=return_sequences,
                              return_state=True, go_backwards=go_backwards)  # fmt: skip
            variables = jax.eval_shape(layer.init, jax.random.PRNGKey(0), x, mask=mask)
            params = jax.tree.map(
                lambda a: rng.normal(0, 0.5, a.shape).astype(np.float32), variables["params"]
            )
            apply = jax.jit(lambda p, x, mask, init, layer=layer: layer.apply(
                {"params": p}, x, mask=mask, initial_state=init))  # fmt: skip
            out, (c, h) = apply(params, x, mask, init)
            ref = keras.layers.LSTM(U, return_sequences=return_sequences, return_state=True,
                                    go_backwards=go_backwards)  # fmt: skip
            ref.build((B, T, D))
            _keras_weights(ref, params["cell"])
            ref_out, ref_h, ref_c = ref(x, mask=mask, initial_state=[init[1], init[0]])
            np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(c, ref_c, rtol=1e-5, atol=1e-5)


def test_lstm_layer_without_a_mask_runs_its_own_loop_with_the_same_value_and_gradient():
    """Without a mask `Recurrent` hands the LSTM the whole sequence (`linear_recurrence`, whose
    gradient is its own): outputs equal Keras's LSTM, and the gradient with respect to the
    parameters, the inputs and the initial state equals autodiff's of the step-by-step scan
    (the same layer given a mask that keeps every step)."""
    from zoo_jax.models.recurrent import Recurrent

    rng = np.random.default_rng(6)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    init = tuple(rng.normal(size=(B, U)).astype(np.float32) for _ in range(2))  # (c, h)
    weights = rng.normal(size=(3, B, T, U)).astype(np.float32)  # cotangents that differ
    keep_all = np.ones((B, T), bool)
    for go_backwards in (False, True):
        layer = Recurrent(cells.LSTMCell(U), return_sequences=True, return_state=True,
                          go_backwards=go_backwards)  # fmt: skip
        variables = jax.eval_shape(layer.init, jax.random.PRNGKey(0), x)
        params = jax.tree.map(
            lambda a: rng.normal(0, 0.5, a.shape).astype(np.float32), variables["params"]
        )

        def loss(params, x, init, mask, layer=layer):
            out, (c, h) = layer.apply({"params": params}, x, mask=mask, initial_state=init)
            return jnp.sum(out * weights[0]) + jnp.sum(c * weights[1, :, 0]) + jnp.sum(h * h)

        whole = jax.jit(jax.value_and_grad(lambda p, x, i: loss(p, x, i, None), (0, 1, 2)))
        stepwise = jax.jit(jax.value_and_grad(lambda p, x, i: loss(p, x, i, keep_all), (0, 1, 2)))
        assert "custom_vjp_call" in str(jax.make_jaxpr(loss)(params, x, init, None))
        assert "custom_vjp_call" not in str(jax.make_jaxpr(loss)(params, x, init, keep_all))
        with lowering.plain_lowering():  # how `zoo-jax bench` counts FLOPs: the plain scan
            fresh = lambda *args: loss(*args)  # a cached trace would keep its lowering
            assert "custom_vjp_call" not in str(jax.make_jaxpr(fresh)(params, x, init, None))
        (value, grads), (ref_value, ref_grads) = whole(params, x, init), stepwise(params, x, init)
        np.testing.assert_allclose(value, ref_value, rtol=1e-6)
        for ours, ref in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
            np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
        out, (c, h) = jax.jit(layer.apply)({"params": params}, x, initial_state=init)
        keras_lstm = keras.layers.LSTM(U, return_sequences=True, return_state=True,
                                       go_backwards=go_backwards)  # fmt: skip
        keras_lstm.build((B, T, D))
        _keras_weights(keras_lstm, params["cell"])
        ref_out, ref_h, ref_c = keras_lstm(x, initial_state=[init[1], init[0]])
        for ours, ref in ((out, ref_out), (h, ref_h), (c, ref_c)):
            np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    # a parametric activation would be created inside the custom gradient: step by step
    prelu = Recurrent(cells.LSTMCell(U, activation="prelu"))
    variables = prelu.init(jax.random.PRNGKey(0), x)
    assert "custom_vjp_call" not in str(jax.make_jaxpr(prelu.apply)(variables, x))


def test_bidirectional_stacked_equals_keras():
    from zoo_jax.models.recurrent import Bidirectional, Recurrent

    rng = np.random.default_rng(5)
    x = rng.normal(size=(B, T, D)).astype(np.float32)

    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = Bidirectional(Recurrent(cells.GRUCell(U), return_sequences=True),
                              Recurrent(cells.GRUCell(U), return_sequences=True))(x)  # fmt: skip
            return Recurrent(cells.ElmanCell(4))(x)

    params = jax.tree.map(
        lambda a: rng.normal(0, 0.5, a.shape).astype(np.float32),
        jax.eval_shape(Stack().init, jax.random.PRNGKey(0), x)["params"],
    )
    ref = keras.Sequential([
        keras.Input((T, D)),
        keras.layers.Bidirectional(keras.layers.GRU(U, return_sequences=True)),
        keras.layers.SimpleRNN(4),
    ])  # fmt: skip
    # cells built in Stack's body are Stack's children, named in order of construction
    _keras_weights(ref.layers[0].forward_layer, params["GRUCell_0"])
    _keras_weights(ref.layers[0].backward_layer, params["GRUCell_1"])
    _keras_weights(ref.layers[1], params["ElmanCell_0"])
    ours = jax.jit(Stack().apply)({"params": params}, x)
    np.testing.assert_allclose(ours, ref.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_recurrent_layer_rejects_bad_shapes():
    from zoo_jax.errors import ZooError
    from zoo_jax.models.recurrent import Recurrent

    layer = Recurrent(cells.ElmanCell(U))
    with pytest.raises(ZooError, match="batch, time, features"):
        layer.init(jax.random.PRNGKey(0), jnp.zeros((B, D)))
    with pytest.raises(ZooError, match="mask must be"):
        layer.init(jax.random.PRNGKey(0), jnp.zeros((B, T, D)), mask=jnp.ones((B, T + 1)))
