"""Attention against Keras 3 (Attention, AdditiveAttention, MultiHeadAttention), jax.nn's
dot-product attention and NumPy; masks; the straight-through gradient of hard attention."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from zoo_jax.errors import ZooError
from zoo_jax.models import attention

B, TQ, TK, D = 2, 4, 6, 5
rng = np.random.default_rng(0)
Q = rng.normal(size=(B, TQ, D)).astype(np.float32)
K = rng.normal(size=(B, TK, D)).astype(np.float32)
V = rng.normal(size=(B, TK, 3)).astype(np.float32)
KEY_MASK = np.arange(TK)[None] < np.array([[TK], [3]])  # the second batch has 3 keys


def test_dot_attention_equals_keras_attention():
    ours, weights = attention.attend(attention.dot_scores(Q, K), V, KEY_MASK)
    ref, ref_weights = keras.layers.Attention()([Q, V, K], mask=[None, KEY_MASK],
                                                return_attention_scores=True)  # fmt: skip
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-5, atol=1e-6)
    assert float(jnp.max(weights[1, :, 3:])) == 0.0  # padding gets no weight


def test_additive_scores_equal_keras_additive_attention():
    layer = keras.layers.AdditiveAttention(use_scale=True)
    layer.build([Q.shape, V.shape, K.shape])
    scale = rng.normal(size=(D,)).astype(np.float32)
    layer.scale.assign(scale)
    ours, _ = attention.attend(attention.additive_scores(Q, K, scale), V, KEY_MASK)
    np.testing.assert_allclose(ours, layer([Q, V, K], mask=[None, KEY_MASK]), rtol=1e-5, atol=1e-6)


def test_multi_head_attention_equals_keras():
    heads, key_dim = 3, 4
    ref = keras.layers.MultiHeadAttention(heads, key_dim)
    ref.build(Q.shape, K.shape, K.shape)
    ours = attention.MultiHeadAttention(heads, key_dim)
    params = ours.init(jax.random.PRNGKey(0), Q, K)["params"]
    params = jax.tree.map(lambda a: rng.normal(0, 0.3, a.shape).astype(np.float32), params)
    by_name = {"/".join(w.path.split("/")[-2:]): w for w in ref.weights}
    for layer, p in params.items():
        for kind, value in p.items():
            by_name[f"{layer}/{kind}"].assign(value)
    causal = np.broadcast_to(np.tril(np.ones((TQ, TK), bool)), (B, TQ, TK))
    out, weights = ours.apply({"params": params}, Q, K, mask=causal)
    ref_out, ref_weights = ref(Q, K, attention_mask=causal, return_attention_scores=True)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-5, atol=1e-6)
    assert len(by_name) == 8  # four kernels, four biases, every one assigned


def test_scaled_dot_product_equals_jax_nn():
    q, k, v = Q[..., :4], K[..., :4], K[..., 1:]  # one head: (batch, time, 1, features)
    ours, _ = attention.scaled_dot_product(q, k, v)
    ref = jax.nn.dot_product_attention(q[:, :, None], k[:, :, None], v[:, :, None])[:, :, 0]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    causal = attention.causal_mask(TQ)
    _, weights = attention.scaled_dot_product(Q, Q, Q, causal)
    assert np.all(np.asarray(weights)[:, np.triu_indices(TQ, 1)[0], np.triu_indices(TQ, 1)[1]] == 0)


def test_local_monotonic_attention_equals_numpy():
    layer = attention.LocalAttention(window=1, mode="monotonic")
    params = layer.init(jax.random.PRNGKey(0), Q, K)["params"]
    context, weights = layer.apply({"params": params}, Q, K, V)
    w_a = np.asarray(params["Dense_0"]["kernel"], np.float64)
    scores = np.einsum("bqd,bkd->bqk", Q, K @ w_a)
    p = np.arange(TQ) * (TK - 1) / (TQ - 1)  # aligned positions 0, 5/3, 10/3, 5
    s = np.arange(TK)
    inside = np.abs(s[None] - p[:, None]) <= 1
    expected = np.where(inside, np.exp(scores - scores.max(-1, keepdims=True)), 0)
    expected = expected / expected.sum(-1, keepdims=True)
    expected *= np.exp(-((s[None] - p[:, None]) ** 2) / (2 * 0.5**2))
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        context, np.einsum("bqk,bkd->bqd", expected, V), rtol=1e-4, atol=1e-6
    )


def test_local_predictive_attention_learns_its_position():
    layer = attention.LocalAttention(window=2, mode="predictive")
    params = layer.init(jax.random.PRNGKey(0), Q, K)["params"]
    grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, Q, K, V)[0] ** 2))(params)
    assert float(jnp.abs(grads["v_p"]["kernel"]).sum()) > 0  # p_t is trained


def test_hard_attention_reads_one_position_with_a_straight_through_gradient():
    scores = jnp.asarray(rng.normal(size=(B, TQ, TK)), jnp.float32)
    context, weights = attention.hard_attention(scores, V)
    np.testing.assert_array_equal(np.sort(np.asarray(weights), -1)[..., :-1], 0)
    picked = np.take_along_axis(V, np.asarray(jnp.argmax(scores, -1))[..., None], axis=1)
    np.testing.assert_allclose(context, picked, rtol=1e-6)
    g = rng.normal(size=context.shape).astype(np.float32)
    hard = jax.grad(lambda s: jnp.sum(attention.hard_attention(s, V)[1] * g[..., :1]))(scores)
    soft = jax.grad(lambda s: jnp.sum(jax.nn.softmax(s) * g[..., :1]))(scores)
    np.testing.assert_allclose(hard, soft, rtol=1e-5, atol=1e-7)
    sampled, _ = attention.hard_attention(scores, V, rng=jax.random.PRNGKey(0))
    assert sampled.shape == context.shape


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_luong_and_bahdanau_attention_weights_are_distributions(score):
    for layer in (attention.LuongAttention(score), attention.BahdanauAttention(7)):
        variables = layer.init(jax.random.PRNGKey(0), Q, K)
        context, weights = layer.apply(variables, Q, K, V, mask=KEY_MASK)
        assert context.shape == (B, TQ, 3)
        np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-5)
        assert float(jnp.max(weights[1, :, 3:])) == 0.0


def test_bad_masks_and_names_raise():
    with pytest.raises(ZooError, match="mask must be"):
        attention.attend(attention.dot_scores(Q, K), V, np.ones((B, TK + 1), bool))
    with pytest.raises(ZooError, match="dot, general or concat"):
        attention.LuongAttention("bilinear").init(jax.random.PRNGKey(0), Q, K)
