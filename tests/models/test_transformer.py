"""The Transformer against PyTorch's layers (same weights), its masks (causal, padding), the
three configurations, and the sinusoidal positions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from zoo_jax.errors import ZooError
from zoo_jax.models import attention

D, HEADS, FF = 8, 2, 16


def _mha(t: torch.nn.MultiheadAttention) -> dict:
    w, b = t.in_proj_weight.detach().numpy(), t.in_proj_bias.detach().numpy()
    out = {}
    for i, name in enumerate(("query", "key", "value")):
        out[name] = {"kernel": w[i * D : (i + 1) * D].T.reshape(D, HEADS, D // HEADS),
                     "bias": b[i * D : (i + 1) * D].reshape(HEADS, D // HEADS)}  # fmt: skip
    out["attention_output"] = {
        "kernel": t.out_proj.weight.detach().numpy().T.reshape(HEADS, D // HEADS, D),
        "bias": t.out_proj.bias.detach().numpy(),
    }
    return out


def _dense(t):
    return {"kernel": t.weight.detach().numpy().T, "bias": t.bias.detach().numpy()}


def _norm(t):
    return {"scale": t.weight.detach().numpy(), "bias": t.bias.detach().numpy()}


def _torch_layer(cls):
    torch.manual_seed(0)
    layer = cls(D, HEADS, FF, dropout=0.0, batch_first=True)
    with torch.no_grad():
        for p in layer.parameters():  # LayerNorms start at (1, 0); make every weight count
            p.add_(torch.randn_like(p) * 0.3)
    return layer.eval()


def test_encoder_layer_equals_torch():
    ref = _torch_layer(torch.nn.TransformerEncoderLayer)
    params = {"self_attn": _mha(ref.self_attn), "norm1": _norm(ref.norm1),
              "norm2": _norm(ref.norm2),
              "ff": {"linear1": _dense(ref.linear1), "linear2": _dense(ref.linear2)}}  # fmt: skip
    x = np.random.default_rng(0).normal(size=(2, 5, D)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    ours = jax.jit(attention.EncoderLayer(HEADS, FF, 0.0).apply)({"params": params}, x, mask)
    with torch.no_grad():
        theirs = ref(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(~mask))
    np.testing.assert_allclose(ours[0], theirs[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours[1, :3], theirs[1, :3].numpy(), rtol=1e-4, atol=1e-5)


def test_decoder_layer_equals_torch():
    ref = _torch_layer(torch.nn.TransformerDecoderLayer)
    params = {"self_attn": _mha(ref.self_attn), "cross_attn": _mha(ref.multihead_attn),
              "norm1": _norm(ref.norm1), "norm2": _norm(ref.norm2), "norm3": _norm(ref.norm3),
              "ff": {"linear1": _dense(ref.linear1), "linear2": _dense(ref.linear2)}}  # fmt: skip
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, D)).astype(np.float32)
    memory = rng.normal(size=(2, 6, D)).astype(np.float32)
    memory_mask = np.array([[1] * 6, [1, 1, 1, 1, 0, 0]], bool)
    causal = np.broadcast_to(np.tril(np.ones((4, 4), bool)), (2, 4, 4))
    ours, _ = jax.jit(attention.DecoderLayer(HEADS, FF, 0.0).apply)(
        {"params": params}, x, memory, causal, memory_mask
    )
    with torch.no_grad():
        theirs = ref(torch.from_numpy(x), torch.from_numpy(memory),
                     tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(4),
                     memory_key_padding_mask=torch.from_numpy(~memory_mask))  # fmt: skip
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_sinusoidal_positions():
    pe = np.asarray(attention.sinusoidal_positions(50, 16))
    pos, i = 37, 3
    assert pe[pos, 2 * i] == pytest.approx(np.sin(pos / 10000 ** (2 * i / 16)), abs=1e-5)
    assert pe[pos, 2 * i + 1] == pytest.approx(np.cos(pos / 10000 ** (2 * i / 16)), abs=1e-5)


SMALL = {"d_model": D, "num_heads": HEADS, "num_layers": 2, "d_ff": FF, "dropout": 0.0}


def test_encoder_decoder_is_causal_and_ignores_padding():
    model = attention.Transformer(source_vocab=11, target_vocab=13, **SMALL)
    rng = np.random.default_rng(2)
    source = rng.integers(1, 11, (2, 6)).astype(np.int32)
    source[1, 4:] = 0  # padding
    target = rng.integers(1, 13, (2, 5)).astype(np.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), source, target)
    apply = jax.jit(model.apply, static_argnames="method")  # compiled once per shape, not per op
    logits = apply(params, source, target)
    assert logits.shape == (2, 5, 13)
    later = target.copy()
    later[:, 3:] = (later[:, 3:] % 12) + 1  # change the future tokens
    np.testing.assert_allclose(apply(params, source, later)[:, :3], logits[:, :3], atol=1e-5)
    unpadded = apply(params, source[1:, :4], target[1:])  # the same sentence, no PAD
    np.testing.assert_allclose(unpadded, logits[1:], atol=1e-5)
    memory, mask = apply(params, source, method=attention.Transformer.encode)
    step, weights = apply(params, target, memory, mask, method=attention.Transformer.decode)
    np.testing.assert_allclose(step, logits, atol=1e-5)
    assert float(jnp.max(weights[1, :, :, 4:])) == 0.0  # no attention on source padding


def test_encoder_only_and_decoder_only():
    encoder = attention.Transformer(kind="encoder", source_features=28, num_classes=10, **SMALL)
    rows = np.random.default_rng(3).random((2, 28, 28)).astype(np.float32)
    params = jax.jit(encoder.init)(jax.random.PRNGKey(0), rows)
    assert jax.jit(encoder.apply)(params, rows).shape == (2, 10)
    decoder = attention.Transformer(kind="decoder", target_vocab=17, **SMALL)
    ids = np.random.default_rng(4).integers(1, 17, (2, 9)).astype(np.int32)
    params = jax.jit(decoder.init)(jax.random.PRNGKey(0), ids)
    apply = jax.jit(decoder.apply)
    logits = apply(params, ids)
    assert logits.shape == (2, 9, 17) and "cross_attn" not in params["params"]["decoder_0"]
    changed = ids.copy()
    changed[:, 5:] = 1
    np.testing.assert_allclose(apply(params, changed)[:, :5], logits[:, :5], atol=1e-5)


def test_bad_configurations_raise():
    with pytest.raises(ZooError, match="kind must be"):
        attention.Transformer(kind="bert", **SMALL).init(
            jax.random.PRNGKey(0), jnp.ones((1, 3), int)
        )
    with pytest.raises(ZooError, match="max_len"):
        model = attention.Transformer(kind="decoder", target_vocab=5, max_len=4, **SMALL)
        model.init(jax.random.PRNGKey(0), jnp.ones((1, 6), int))
    for bad in ({"num_heads": 3}, {"num_layers": 0}):  # 3 heads do not divide d_model 8
        with pytest.raises(ZooError, match="dividing d_model"):
            model = attention.Transformer(kind="decoder", target_vocab=5, **{**SMALL, **bad})
            model.init(jax.random.PRNGKey(0), jnp.ones((1, 3), int))
