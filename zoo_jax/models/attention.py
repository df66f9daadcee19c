"""Attention: additive (Bahdanau), multiplicative (Luong dot / general / concat), Luong's local
attention (monotonic and predictive), hard attention, scaled dot-product and multi-head.

Shapes: queries `(batch, Tq, dq)`, keys / values `(batch, Tk, dk)`; a key `mask` `(batch,
Tk)` is True where a key may be attended to (padding False); a `(batch, Tq, Tk)` mask also
works (causal). Every attention returns `(context (batch, Tq, dv), weights (batch, Tq, Tk))`
so the weights can be plotted.

References: Bahdanau, Cho & Bengio 2015, arXiv:1409.0473 (additive); Luong, Pham & Manning
2015, arXiv:1508.04025 (dot / general / concat scores, local-m and local-p windows); Xu et
al. 2015, arXiv:1502.03044 (soft and hard attention); Vaswani et al. 2017, arXiv:1706.03762
(scaled dot-product, multi-head). `additive_scores` and `dot_scores` are Keras 3's
`AdditiveAttention` / `Attention` score functions; `MultiHeadAttention` has Keras's
parameter layout.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.errors import ZooError

NEG_INF = -1e9  # what masked scores become (finite, so a fully masked row stays NaN-free)


def _mask_scores(scores: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return scores
    mask = jnp.asarray(mask, bool)
    if mask.ndim == 2:  # (batch, Tk): the same keys for every query
        mask = mask[:, None, :]
    if mask.shape[-1] != scores.shape[-1] or mask.ndim != 3:
        raise ZooError(f"mask must be (batch, Tk) or (batch, Tq, Tk) for scores of shape "
                       f"{scores.shape}, got {mask.shape}")  # fmt: skip
    return jnp.where(mask, scores, NEG_INF)


def dot_scores(q: jax.Array, k: jax.Array, scale: float | jax.Array = 1.0) -> jax.Array:
    """Luong's dot score, q · k (Keras `Attention`, `score_mode="dot"`; × `scale`)."""
    return scale * jnp.einsum("bqd,bkd->bqk", q, k)


def additive_scores(q: jax.Array, k: jax.Array, scale: jax.Array | None = None) -> jax.Array:
    """Keras `AdditiveAttention`'s score, Σ_d scale_d tanh(q_d + k_d) (Bahdanau's v^T tanh(·)
    once the queries and keys are projected; `scale` is v)."""
    s = jnp.tanh(q[:, :, None, :] + k[:, None, :, :])
    return jnp.sum(s if scale is None else scale * s, axis=-1)


def attend(scores: jax.Array, values: jax.Array, mask=None) -> tuple[jax.Array, jax.Array]:
    """Soft attention: softmax over the keys (masked), then the weighted sum of the values."""
    weights = jax.nn.softmax(_mask_scores(scores, mask), axis=-1)
    return jnp.einsum("bqk,bkd->bqd", weights, values), weights


class BahdanauAttention(nn.Module):
    """Additive attention: score(q, k) = vᵀ tanh(W_q q + W_k k), projected to `units`."""

    units: int

    @nn.compact
    def __call__(self, queries, keys, values=None, *, mask=None):
        values = keys if values is None else values
        q = nn.Dense(self.units, use_bias=False, name="query")(queries)
        k = nn.Dense(self.units, use_bias=True, name="key")(keys)
        v = self.param("v", nn.initializers.glorot_uniform(), (1, self.units))[0]
        return attend(additive_scores(q, k, v), values, mask)


class LuongAttention(nn.Module):
    """Luong's global attention with the `score` of §3.1: "dot" qᵀk, "general" qᵀ W k,
    "concat" vᵀ tanh(W [q; k]) (`units` wide)."""

    score: str = "general"
    units: int = 0  # concat only; 0: the query size

    @nn.compact
    def __call__(self, queries, keys, values=None, *, mask=None):
        values = keys if values is None else values
        if self.score == "dot":
            scores = dot_scores(queries, keys)
        elif self.score == "general":
            scores = dot_scores(queries, nn.Dense(queries.shape[-1], use_bias=False)(keys))
        elif self.score == "concat":
            units = self.units or queries.shape[-1]
            # W [q; k] = W_q q + W_k k, computed without materialising every pair's concat
            q = nn.Dense(units, use_bias=False, name="query")(queries)
            k = nn.Dense(units, use_bias=False, name="key")(keys)
            v = self.param("v", nn.initializers.glorot_uniform(), (1, units))[0]
            scores = additive_scores(q, k, v)
        else:
            raise ZooError(f"Luong score must be dot, general or concat, got {self.score!r}")
        return attend(scores, values, mask)


class LocalAttention(nn.Module):
    """Luong et al. 2015 §3.2: attention inside a window [p_t − D, p_t + D] around an
    aligned position p_t, weighted by a Gaussian exp(−(s − p_t)² / (2σ²)), σ = D / 2.
    "monotonic" (local-m): p_t = t (the query's own index, scaled to the key length when
    lengths differ); "predictive" (local-p): p_t = S · sigmoid(v_pᵀ tanh(W_p h_t)), learned,
    S the number of keys. The score inside the window is Luong's "general"."""

    window: int = 2  # D
    mode: str = "predictive"

    @nn.compact
    def __call__(self, queries, keys, values=None, *, mask=None):
        values = keys if values is None else values
        tq, tk = queries.shape[1], keys.shape[1]
        scores = dot_scores(queries, nn.Dense(queries.shape[-1], use_bias=False)(keys))
        if self.mode == "monotonic":
            scale = (tk - 1) / max(tq - 1, 1)
            p = jnp.broadcast_to(jnp.arange(tq) * scale, queries.shape[:2])
        elif self.mode == "predictive":
            hidden = nn.tanh(nn.Dense(queries.shape[-1], use_bias=False, name="W_p")(queries))
            p = tk * jax.nn.sigmoid(nn.Dense(1, use_bias=False, name="v_p")(hidden)[..., 0])
        else:
            raise ZooError(f"local attention mode must be monotonic or predictive, "
                           f"got {self.mode!r}")  # fmt: skip
        s = jnp.arange(tk)[None, None, :]
        inside = jnp.abs(s - p[..., None]) <= self.window
        if mask is not None:
            mask = jnp.asarray(mask, bool)
            inside = inside & (mask[:, None, :] if mask.ndim == 2 else mask)
        weights = jax.nn.softmax(_mask_scores(scores, inside), axis=-1)
        sigma = self.window / 2
        weights = weights * jnp.exp(-((s - p[..., None]) ** 2) / (2 * sigma**2))
        return jnp.einsum("bqk,bkd->bqd", weights, values), weights


def hard_attention(scores, values, mask=None, *, rng=None):
    """Xu et al. 2015's hard attention: each query reads one position. The position is
    sampled from the softmax when `rng` is given (training), else the argmax; gradients
    flow by the straight-through estimator (the forward pass uses the one-hot choice, the
    backward pass the softmax's gradient), not the paper's score-function (REINFORCE)
    estimator: it needs no baseline and trains with the same optimizer step."""
    probs = jax.nn.softmax(_mask_scores(scores, mask), axis=-1)
    if rng is None:
        choice = jnp.argmax(probs, axis=-1)
    else:
        choice = jax.random.categorical(rng, jnp.log(probs + 1e-30), axis=-1)
    one_hot = jax.nn.one_hot(choice, probs.shape[-1], dtype=probs.dtype)
    weights = one_hot + probs - jax.lax.stop_gradient(probs)
    return jnp.einsum("bqk,bkd->bqd", weights, values), weights


def scaled_dot_product(q, k, v, mask=None):
    """Vaswani et al. 2017, eq. 1: softmax(q kᵀ / √d_k) v."""
    return attend(dot_scores(q, k, 1 / jnp.sqrt(q.shape[-1]).astype(q.dtype)), v, mask)


def causal_mask(length: int) -> jax.Array:
    """(1, T, T): query t may attend to keys ≤ t."""
    return jnp.tril(jnp.ones((length, length), bool))[None]


class MultiHeadAttention(nn.Module):
    """Vaswani et al. 2017 §3.2.2 with Keras's `MultiHeadAttention` layout: per-head
    projections `query` / `key` / `value` kernels `(d_model, heads, key_dim)` with biases
    `(heads, key_dim)`, scaled dot-product attention per head, and an `attention_output`
    kernel `(heads, key_dim, out)`. Returns (output, weights (batch, heads, Tq, Tk))."""

    num_heads: int
    key_dim: int
    output_dim: int = 0  # 0: the query's size

    @nn.compact
    def __call__(self, query, value, key=None, *, mask=None):
        key = value if key is None else key
        proj = lambda name, x: nn.DenseGeneral((self.num_heads, self.key_dim), name=name)(x)
        q, k, v = proj("query", query), proj("key", key), proj("value", value)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(self.key_dim).astype(q.dtype)
        if mask is not None:
            mask = jnp.asarray(mask, bool)
            mask = mask[:, None, None, :] if mask.ndim == 2 else mask[:, None]
            scores = jnp.where(mask, scores, NEG_INF)
        weights = jax.nn.softmax(scores, axis=-1)
        heads = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        out = nn.DenseGeneral(
            self.output_dim or query.shape[-1], axis=(-2, -1), name="attention_output"
        )(heads)
        return out, weights
