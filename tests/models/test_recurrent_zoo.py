"""The recurrent zoo's sequential-MNIST classifiers: parameter counts and logits against the
same networks built in Keras 3 (cells Keras has) or counted from the equations (the others),
and one jitted update each."""

import re

import jax
import keras
import numpy as np
import pytest

import zoo_jax
from zoo_jax import losses, optim, registry
from zoo_jax.errors import InputError
from zoo_jax.learners import GradientLearner

RECURRENT = [  # the sequential-MNIST classifiers (the sequence tasks' models: elsewhere)
    n
    for n in zoo_jax.list_models()
    if registry.get_card(n).family in ("recurrent", "attention")
    and registry.get_card(n).input_shape == (28, 28)
]


def keras_model(name):
    rnn = {
        "rnn": lambda: keras.layers.SimpleRNN(256),
        "lstm": lambda: keras.layers.LSTM(256),
        "gru": lambda: keras.layers.GRU(256),
        "gru_cho": lambda: keras.layers.GRU(256, reset_after=False),
        "bilstm": lambda: keras.layers.Bidirectional(keras.layers.LSTM(128)),
    }
    if name == "stacked_lstm":
        layers = [keras.layers.LSTM(256, return_sequences=True), keras.layers.LSTM(256)]
    else:
        layers = [rnn[name]()]
    return keras.Sequential([keras.Input((28, 28)), *layers, keras.layers.Dense(10)])


KERAS_NAMES = ["rnn", "lstm", "gru", "gru_cho", "stacked_lstm", "bilstm"]
U, D, H = 256, 28, 10
FORMULA = {  # Keras-style counts written from each cell's equations
    "jordan": D * U + U * U + U + U * U + U + U * H + H,  # W, U (from y), b, V, c; readout
    "peephole_lstm": 4 * (D * U + U * U + U) + 3 * U + U * H + H,
    "mlstm": 4 * (D * U + U * U + U) + D * U + U * U + U * H + H,
}


def random_params(model, x):
    """N(0, 0.1) parameters in the model's shapes (drawn on the host: no init compiled)."""
    rng = np.random.default_rng(1)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
    return jax.tree.map(lambda a: rng.normal(0, 0.1, a.shape).astype(np.float32), shapes)


def assert_same_logits(model, params, reference, x):
    """Both forward passes compiled whole (Keras's `predict`), as users run them."""
    ours = jax.jit(model.apply)({"params": params}, x)
    np.testing.assert_allclose(ours, reference.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_counts_and_logits_equal_keras(name):
    reference = keras_model(name)
    assert registry.count_params(name) == reference.count_params()
    model = zoo_jax.get_model(name, dropout=0.0)
    x = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
    params = random_params(model, x)
    # Our cells are named in order of construction (forward before backward, lower layer
    # first), as Keras's weights are ordered; the readout last.
    ours = [params[k] for k in sorted(params, key=lambda k: (k.startswith("Dense"), k))]
    for layer, p in zip(reference.layers, _split(ours, reference), strict=True):
        for w, value in zip(layer.weights, p, strict=True):
            w.assign(value)
    assert_same_logits(model, params, reference, x)


def _split(ours, reference):
    """Our parameter dicts as lists of arrays in the order of each Keras layer's weights."""
    flat = [[p[k] for k in ("kernel", "recurrent_kernel", "bias") if k in p] for p in ours]
    flat[-1] = [ours[-1]["kernel"], ours[-1]["bias"]]
    if len(reference.layers) == len(flat):
        return flat
    return [flat[0] + flat[1], *flat[2:]]  # a Bidirectional layer holds two cells' weights


@pytest.mark.parametrize("name", sorted(FORMULA))
def test_counts_of_the_cells_keras_lacks(name):
    assert registry.count_params(name) == FORMULA[name]


@pytest.mark.parametrize("name", RECURRENT)
def test_one_jitted_update(name):
    overrides = registry.get_card(name).test_overrides
    model = zoo_jax.get_model(name, **overrides)
    learner = GradientLearner(model, losses.for_classifier("sparse_categorical_crossentropy"),
                              optim.make("adam"))  # fmt: skip
    batch = {"inputs": np.random.default_rng(0).random((4, 28, 28), np.float32),
             "labels": np.arange(4, dtype=np.int32)}  # fmt: skip
    state = learner.init(jax.random.PRNGKey(0), batch)
    new_state, metrics = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(1))
    assert bool(metrics["finite"]) and int(new_state.step) == 1
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), state.params,
                         new_state.params)  # fmt: skip
    assert all(jax.tree.leaves(moved))


def test_attention_rnn_equals_keras_functional_model():
    """Seed 000's attention RNN in Keras: SimpleRNN(128) sequences, `Attention` queried by
    the last state, [context; last state], Dense 10."""
    inputs = keras.Input((28, 28))
    states = keras.layers.SimpleRNN(128, return_sequences=True)(inputs)
    last = keras.layers.Lambda(lambda s: s[:, -1:])(states)
    context = keras.layers.Attention()([last, states])
    features = keras.layers.Flatten()(keras.layers.Concatenate()([context, last]))
    reference = keras.Model(inputs, keras.layers.Dense(10)(features))
    assert registry.count_params("attention_rnn") == reference.count_params() == 22_666
    model = zoo_jax.get_model("attention_rnn")
    x = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
    params = random_params(model, x)
    cell, dense = params["ElmanCell_0"], params["Dense_0"]
    rnn_layer, dense_layer = reference.layers[1], reference.layers[-1]
    for w, v in zip(rnn_layer.weights, (cell["kernel"], cell["recurrent_kernel"], cell["bias"]),
                    strict=True):  # fmt: skip
        w.assign(v)
    for w, v in zip(dense_layer.weights, (dense["kernel"], dense["bias"]), strict=True):
        w.assign(v)
    assert_same_logits(model, params, reference, x)


def test_transformer_encoder_count_equals_torch_layers():
    import torch

    layer = torch.nn.TransformerEncoderLayer(64, 4, 128)
    count = lambda m: sum(p.numel() for p in m.parameters())
    expected = count(torch.nn.Linear(28, 64)) + 2 * count(layer) + count(torch.nn.Linear(64, 10))
    assert registry.count_params("transformer_encoder") == expected == 69_450


def test_conv_lstm_equals_keras_convlstm2d():
    reference = keras.Sequential([
        keras.Input((4, 7, 28, 1)), keras.layers.ConvLSTM2D(16, 3, padding="same"),
        keras.layers.Flatten(), keras.layers.Dense(10),
    ])  # fmt: skip
    assert registry.count_params("conv_lstm") == reference.count_params() == 41_226
    model = zoo_jax.get_model("conv_lstm")
    x = np.random.default_rng(0).random((2, 4, 7, 28, 1)).astype(np.float32)
    params = random_params(model, x)
    cell = params["ConvLSTMCell_0"]
    weights = [cell["kernel"], cell["recurrent_kernel"], cell["bias"]]
    weights += [params["Dense_0"]["kernel"], params["Dense_0"]["bias"]]
    for w, value in zip(reference.weights, weights, strict=True):
        w.assign(value)
    assert_same_logits(model, params, reference, x)


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "message"),
    [
        ("attention_rnn", (1, 1, 28, 28), np.float32, "RNN classifier takes (batch, time, feat"),
        ("lstm", (28, 28), np.float32, "lstm classifier takes (batch, time, features)"),
        ("transformer_encoder", (28, 28), np.float32, "Transformer takes (batch, time, feat"),
        ("transformer_lm", (1, 128), np.float32, "takes (batch, time) token ids, got (1, 128) f"),
        ("transformer_lm", (128,), np.int32, "token ids, got (128,) int32"),
        ("transformer", (1, 1, 32), np.int32, "token ids, got (1, 1, 32) int32"),
        ("seq2seq", (1, 32), np.float32, "Seq2Seq takes (batch, time) token ids"),
        ("char_rnn", (1, 1, 128), np.int32, "a language model takes (batch, time) token ids"),
    ],
)
def test_wrong_sequence_inputs_are_input_errors(name, shape, dtype, message):
    """Before, the Transformer broadcast a 1-D sequence against its positions or failed
    inside an einsum, and float ids failed in Flax's `Embed` with a dtype message."""
    card = registry.get_card(name)
    overrides, _, _ = registry.training_spec(name, card.test_overrides)
    model = zoo_jax.get_model(name, **overrides)
    x = jax.ShapeDtypeStruct(shape, dtype)
    extra = (jax.ShapeDtypeStruct((1, 3), np.int32),) if card.learner == "translation" else ()
    with pytest.raises(InputError, match=re.escape(message)):
        jax.eval_shape(model.init, jax.random.PRNGKey(0), x, *extra)
