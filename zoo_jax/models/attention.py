"""Attention: additive (Bahdanau), multiplicative (Luong dot / general / concat), Luong's local
attention (monotonic and predictive), hard attention, scaled dot-product and multi-head; and
the models built on them: the attention-RNN classifier of the textbook chapter "Neural
network collection", the Transformer (encoder-
decoder, encoder-only, decoder-only) and the attentional stacked-LSTM encoder–decoder.

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

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.data import text
from zoo_jax.errors import UnknownNameError, ZooError
from zoo_jax.models import blocks, checks
from zoo_jax.models.cells import CELLS, LSTMCell
from zoo_jax.models.recurrent import Recurrent
from zoo_jax.registry import ZooCard

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


class AttentionRNNClassifier(nn.Module):
    """The attention-RNN classifier of seed `000_…` ("RNN with Attention": a SimpleRNN whose
    outputs a Keras `Attention` layer reads, then a dense softmax): the recurrent layer
    returns every step, the last hidden state queries all of them with Luong's `score`
    (dot: Keras `Attention`), and the readout sees [context; last state]. Instead of
    answering from the last state alone, the classifier can look back at any step.

    Input: `(batch, time, features)`. Output: `(batch, num_classes)` logits.
    """

    units: int = 128
    num_classes: int = 10
    cell: str = "elman"
    score: str = "dot"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if self.cell not in CELLS:
            raise UnknownNameError("cell", self.cell, list(CELLS))
        x = checks.feature_sequences(x, "the attention RNN classifier")
        x = blocks.Dropout(self.dropout, broadcast_dims=(1,), deterministic=not train)(x)
        states = Recurrent(CELLS[self.cell](self.units), return_sequences=True)(x)
        query = states[:, -1:]
        context, _ = LuongAttention(self.score)(query, states)
        features = jnp.concatenate([context[:, 0], query[:, 0]], axis=-1)
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.glorot_uniform())(features)


# --- Transformer (Vaswani et al. 2017) --------------------------------------------------------


def sinusoidal_positions(length: int, d_model: int) -> jax.Array:
    """§3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    pos = jnp.arange(length)[:, None]
    rate = 1.0 / 10000 ** (jnp.arange(0, d_model, 2) / d_model)
    pe = jnp.zeros((length, d_model))
    pe = pe.at[:, 0::2].set(jnp.sin(pos * rate))
    return pe.at[:, 1::2].set(jnp.cos(pos * rate[: d_model // 2]))


def padding_mask(lengths_or_ids: jax.Array, pad_id: int = 0) -> jax.Array:
    """(batch, T) True on real tokens, from token ids (PAD = `pad_id`)."""
    return lengths_or_ids != pad_id


class FeedForward(nn.Module):
    """§3.3: max(0, x W1 + b1) W2 + b2."""

    d_ff: int
    dropout: float = 0.1

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        h = nn.relu(nn.Dense(self.d_ff, name="linear1")(x))
        h = blocks.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dense(x.shape[-1], name="linear2")(h)


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward sublayers, each LayerNorm(x + Dropout(sublayer(x)))
    (post-norm, §3.1; `torch.nn.TransformerEncoderLayer`'s default). `mask` (batch, T)."""

    num_heads: int
    d_ff: int
    dropout: float = 0.1

    @nn.compact
    def __call__(self, x, mask=None, *, train: bool = False):
        drop = lambda y: blocks.Dropout(self.dropout, deterministic=not train)(y)
        heads = MultiHeadAttention(self.num_heads, x.shape[-1] // self.num_heads, name="self_attn")
        a, _ = heads(x, x, mask=mask)
        x = nn.LayerNorm(epsilon=1e-5, name="norm1")(x + drop(a))
        f = FeedForward(self.d_ff, self.dropout, name="ff")(x, train=train)
        return nn.LayerNorm(epsilon=1e-5, name="norm2")(x + drop(f))


class DecoderLayer(nn.Module):
    """Masked self-attention (causal and padding), attention over the encoder's output
    ("memory", with its padding mask), feed-forward; post-norm as `EncoderLayer`. Returns
    (output, cross-attention weights (batch, heads, T_target, T_source))."""

    num_heads: int
    d_ff: int
    dropout: float = 0.1

    @nn.compact
    def __call__(self, x, memory=None, self_mask=None, memory_mask=None, *, train: bool = False):
        drop = lambda y: blocks.Dropout(self.dropout, deterministic=not train)(y)
        key_dim = x.shape[-1] // self.num_heads
        a, _ = MultiHeadAttention(self.num_heads, key_dim, name="self_attn")(x, x, mask=self_mask)
        x = nn.LayerNorm(epsilon=1e-5, name="norm1")(x + drop(a))
        weights = None
        if memory is not None:  # the decoder-only configuration has no encoder
            cross = MultiHeadAttention(self.num_heads, key_dim, name="cross_attn")
            c, weights = cross(x, memory, mask=memory_mask)
            x = nn.LayerNorm(epsilon=1e-5, name="norm2")(x + drop(c))
        f = FeedForward(self.d_ff, self.dropout, name="ff")(x, train=train)
        return nn.LayerNorm(epsilon=1e-5, name="norm3")(x + drop(f)), weights


def _target_mask(target_ids, pad_id: int = 0):
    """(batch, T, T): causal and not padding (a query row of padding sees itself only)."""
    length = target_ids.shape[1]
    keys = padding_mask(target_ids, pad_id)[:, None, :]
    return causal_mask(length) & (keys | jnp.eye(length, dtype=bool)[None])


class Transformer(nn.Module):
    """Vaswani et al. 2017: token embeddings × √d_model plus sinusoidal positions, dropout,
    `num_layers` encoder and decoder layers, a readout to the target vocabulary.

    `kind`: "encoder_decoder" (translation: `model(source_ids, target_input_ids)` → logits
    per target position; `encode` / `decode` separately for step-by-step decoding),
    "encoder" (classification: the mean over the unpadded positions → `num_classes`
    logits; with `source_features` > 0 the inputs are `(batch, T, source_features)`
    vectors, e.g. image rows, embedded by a dense layer) or "decoder" (a language model:
    `model(ids)` → next-token logits, causal). Token id `pad_id` is padding, masked out of
    every attention. The paper's base model: d_model 512, 8 heads, 6 + 6 layers, d_ff 2048,
    dropout 0.1; its label smoothing (ε = 0.1) belongs to the loss.
    """

    kind: str = "encoder_decoder"
    source_vocab: int = 0
    target_vocab: int = 0
    source_features: int = 0  # "encoder" with vector inputs
    num_classes: int = 10  # "encoder" only
    d_model: int = 512
    num_heads: int = 8
    num_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    max_len: int = 512
    pad_id: int = 0

    def setup(self):
        if self.kind not in ("encoder_decoder", "encoder", "decoder"):
            raise ZooError(f"Transformer kind must be encoder_decoder, encoder or decoder, "
                           f"got {self.kind!r}")  # fmt: skip
        if self.num_layers < 1 or self.num_heads < 1 or self.d_model % self.num_heads:
            raise ZooError(  # as torch.nn.MultiheadAttention: heads split d_model evenly
                f"Transformer needs num_layers >= 1 and num_heads >= 1 dividing d_model, got "
                f"num_layers {self.num_layers}, num_heads {self.num_heads}, d_model {self.d_model}"
            )
        # each layer has at least its attention's four d×d projections and the feed-forward's
        checks.check_stack("Transformer", "num_layers", self.num_layers,
                           4 * self.d_model**2 + 2 * self.d_model * self.d_ff)  # fmt: skip
        stack = lambda cls, n: [
            cls(self.num_heads, self.d_ff, self.dropout, name=f"{n}_{i}")
            for i in range(self.num_layers)
        ]
        if self.kind != "decoder":
            self.source_embed = (
                nn.Dense(self.d_model) if self.source_features
                else nn.Embed(self.source_vocab, self.d_model)
            )  # fmt: skip
            self.encoder = stack(EncoderLayer, "encoder")
        if self.kind != "encoder":
            self.target_embed = nn.Embed(self.target_vocab, self.d_model)
            self.decoder = stack(DecoderLayer, "decoder")
            self.readout = nn.Dense(self.target_vocab)
        else:
            self.readout = nn.Dense(self.num_classes)
        self.drop = blocks.Dropout(self.dropout)

    def _positions(self, x, *, train: bool):
        if x.shape[1] > self.max_len:
            raise ZooError(f"sequence of {x.shape[1]} positions; max_len is {self.max_len}")
        x = x + sinusoidal_positions(x.shape[1], self.d_model)  # max_len is only a bound
        return self.drop(x, deterministic=not train)

    def encode(self, source, *, train: bool = False):
        """The encoder's output ("memory") and its padding mask (None for vector inputs)."""
        if self.source_features:
            mask, x = None, self.source_embed(checks.feature_sequences(source, "Transformer"))
        else:
            mask = padding_mask(checks.token_ids(source, "Transformer"), self.pad_id)
            x = self.source_embed(source) * jnp.sqrt(self.d_model)
        x = self._positions(x, train=train)
        for layer in self.encoder:
            x = layer(x, mask, train=train)
        return x, mask

    def decode(self, target_in, memory=None, memory_mask=None, *, train: bool = False):
        """Logits for each target position and the last layer's cross-attention weights."""
        target_in = checks.token_ids(target_in, "Transformer")
        x = self._positions(self.target_embed(target_in) * jnp.sqrt(self.d_model), train=train)
        self_mask = _target_mask(target_in, self.pad_id)
        weights = None
        for layer in self.decoder:
            x, weights = layer(x, memory, self_mask, memory_mask, train=train)
        return self.readout(x), weights

    def __call__(self, source, target_in=None, *, train: bool = False):
        if self.kind == "encoder_decoder":
            if target_in is None:
                raise ZooError("the encoder-decoder Transformer takes (source, target_input)")
            memory, mask = self.encode(source, train=train)
            return self.decode(target_in, memory, mask, train=train)[0]
        if self.kind == "encoder":
            x, mask = self.encode(source, train=train)
            keep = jnp.ones(x.shape[:2]) if mask is None else mask.astype(x.dtype)
            pooled = jnp.sum(x * keep[..., None], 1) / jnp.maximum(keep.sum(1, keepdims=True), 1)
            return self.readout(pooled)
        return self.decode(source, train=train)[0]

    def greedy(self, source, max_len: int, bos_id: int = 1):
        """Encoder-decoder argmax decoding from `bos_id`: token ids (batch, max_len) and the
        last layer's cross-attention averaged over heads (batch, max_len, S). Each step runs
        the decoder over the whole prefix in a fixed-length buffer (causal, so later slots
        cannot leak), one `lax.fori_loop`, so it jits without retracing per length."""
        memory, mask = self.encode(source)
        batch = source.shape[0]
        buffer = jnp.full((batch, max_len + 1), bos_id, jnp.int32)
        weights0 = jnp.zeros((batch, max_len, source.shape[1]))

        def body(t, carry):
            buffer, weights = carry
            logits, w = self.decode(buffer[:, :-1], memory, mask)
            token = jnp.argmax(logits[:, t], -1).astype(jnp.int32)
            weights = weights.at[:, t].set(jnp.mean(w[:, :, t], axis=1))
            return buffer.at[:, t + 1].set(token), weights

        buffer, weights = jax.lax.fori_loop(0, max_len, body, (buffer, weights0))
        return buffer[:, 1:], weights


# --- Encoder–decoder with attention (Luong et al. 2015; the textbook chapter's NMT) ----------

ATTENTIONS = ("none", "dot", "general", "concat", "local_m", "local_p", "hard")


class _DecoderStep(nn.Module):
    """One step of Luong's attentional decoder: embed the previous token (with the previous
    attentional state h̃ appended: input feeding, §3.3), stacked LSTM cells, attention over
    the encoder's outputs, h̃_t = tanh(W_c [c_t; h_t]), logits = W_s h̃_t."""

    vocab: int
    embed_dim: int
    units: int
    num_layers: int
    attention: str

    @nn.compact
    def __call__(self, carry, token, memory, memory_mask, rng=None):
        states, feed = carry
        x = jnp.concatenate([nn.Embed(self.vocab, self.embed_dim, name="embed")(token), feed], -1)
        new_states = []
        for i, state in enumerate(states):
            state, x = LSTMCell(self.units, name=f"lstm_{i}")(state, x)
            new_states.append(state)
        query = x[:, None, :]
        if self.attention == "none":
            context, weights = jnp.zeros_like(x), jnp.zeros(memory.shape[:2])
        else:
            if self.attention in ("dot", "general", "concat"):
                layer = LuongAttention(self.attention, name="attention")
                context, weights = layer(query, memory, mask=memory_mask)
            elif self.attention in ("local_m", "local_p"):
                mode = "monotonic" if self.attention == "local_m" else "predictive"
                layer = LocalAttention(mode=mode, name="attention")
                context, weights = layer(query, memory, mask=memory_mask)
            else:  # hard: Luong's general score, one position read (straight-through)
                keys = nn.Dense(self.units, use_bias=False, name="attention")(memory)
                context, weights = hard_attention(
                    dot_scores(query, keys), memory, memory_mask, rng=rng
                )
            context, weights = context[:, 0], weights[:, 0]
        h_tilde = nn.tanh(
            nn.Dense(self.units, use_bias=False, name="combine")(jnp.concatenate([context, x], -1))
        )
        logits = nn.Dense(self.vocab, name="readout")(h_tilde)
        return (tuple(new_states), h_tilde), (logits, weights)


def _teacher_forced(step, carry, tokens, memory, mask, rngs):
    return step(carry, tokens, memory, mask, rngs)


def _greedy(step, carry, _, memory, mask):
    carry, token = carry
    carry, (logits, weights) = step(carry, token, memory, mask)
    token = jnp.argmax(logits, -1).astype(jnp.int32)
    return (carry, token), (token, weights)


class Seq2Seq(nn.Module):
    """The stacked-LSTM encoder–decoder of seed `002_…` (Sutskever et al. 2014) with Luong
    et al.'s attention (arXiv:1508.04025): `attention` is "none" (the encoder's final states
    only), global "dot" / "general" / "concat", local "local_m" / "local_p", or "hard".

    `model(source, target_in)`: teacher forcing — logits for every target position given
    the true previous tokens (`target_in` = BOS + target[:-1]). `greedy` / `beam_search`
    (with `method=`) decode from BOS; both are `lax.scan`s of fixed length, so they jit.
    The encoder reads `source` ids (PAD = 0, masked) with `num_layers` LSTMs; the decoder's
    layers start from the encoder's final states.
    """

    source_vocab: int
    target_vocab: int
    embed_dim: int = 64
    units: int = 128
    num_layers: int = 2
    attention: str = "general"
    bos_id: int = 1
    eos_id: int = 2

    def setup(self):
        if self.attention not in ATTENTIONS:
            raise ZooError(f"attention must be one of {', '.join(ATTENTIONS)}, "
                           f"got {self.attention!r}")  # fmt: skip
        if not 0 <= self.bos_id < self.target_vocab:  # decoding embeds it as the first token
            raise ZooError(f"Seq2Seq bos_id must be a target token id in [0, "
                           f"{self.target_vocab}), got {self.bos_id}")  # fmt: skip
        # an encoder and a decoder LSTM per layer, each with a units×4·units recurrent kernel
        checks.check_stack("Seq2Seq", "num_layers", self.num_layers, 8 * self.units**2)
        self.source_embed = nn.Embed(self.source_vocab, self.embed_dim)
        self.encoder = [
            Recurrent(LSTMCell(self.units), return_sequences=True, return_state=True)
            for _ in range(self.num_layers)
        ]
        self.step = _DecoderStep(
            self.target_vocab, self.embed_dim, self.units, self.num_layers, self.attention
        )

    def encode(self, source):
        """Encoder outputs (batch, S, units), source mask, the decoder's initial carry."""
        mask = checks.token_ids(source, "Seq2Seq") != 0
        x, states = self.source_embed(source), []
        for layer in self.encoder:
            x, state = layer(x, mask=mask)
            states.append(state)
        feed = jnp.zeros((source.shape[0], self.units))
        return x, mask, (tuple(states), feed)

    def _scan(self, fn, carry, xs, memory, mask, length=None, extra=()):
        scan = nn.scan(
            fn,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=(1, nn.broadcast, nn.broadcast, *[nn.broadcast] * len(extra)),
            out_axes=1,
            length=length,
        )
        return scan(self.step, carry, xs, memory, mask, *extra)

    def __call__(self, source, target_in, *, train: bool = False):
        target_in = checks.token_ids(target_in, "Seq2Seq")
        memory, mask, carry = self.encode(source)
        rng = self.make_rng("dropout") if (train and self.attention == "hard") else None
        _, (logits, _) = self._scan(_teacher_forced, carry, target_in, memory, mask, extra=(rng,))
        return logits

    def greedy(self, source, max_len: int):
        """Token ids (batch, max_len) and attention weights (batch, max_len, S), argmax
        decoding (after EOS the output is whatever follows; cut at the first EOS)."""
        memory, mask, carry = self.encode(source)
        bos = jnp.full((source.shape[0],), self.bos_id, jnp.int32)
        _, (tokens, weights) = self._scan(_greedy, (carry, bos), None, memory, mask, length=max_len)
        return tokens, weights

    def beam_search(self, source, max_len: int, beam: int = 4, length_norm: bool = True):
        """The best of `beam` hypotheses per source (log-probability, divided by the length
        up to EOS when `length_norm`): token ids (batch, max_len), PAD after EOS."""
        memory, mask, carry = self.encode(source)
        tile = lambda a: jnp.repeat(a, beam, axis=0)  # (batch·beam, …), beams adjacent
        memory, mask = tile(memory), tile(mask)
        run = lambda fn, state: self._scan(fn, state, None, memory, mask, length=max_len)
        return beam_decode(run, carry, source.shape[0], beam, self.bos_id, self.eos_id,
                           length_norm)  # fmt: skip


def beam_decode(run, carry, batch: int, beam: int, bos: int, eos: int, length_norm: bool = True):
    """Beam search over a decoder step `step(carry, token, memory, mask) -> (carry, (logits,
    _))`: `run(fn, state)` scans `fn(step, state, _, memory, mask)` over the output length
    with the memory already repeated `beam` times per example (`Seq2Seq._scan`). A finished
    hypothesis extends only with EOS at no cost. Returns the best hypothesis per example
    (log-probability, divided by its length up to EOS when `length_norm`): token ids
    (batch, max_len), PAD (0) after EOS."""
    carry = jax.tree.map(lambda a: jnp.repeat(a, beam, axis=0), carry)
    scores = jnp.tile(jnp.array([0.0] + [NEG_INF] * (beam - 1)), (batch, 1))
    token = jnp.full((batch * beam,), bos, jnp.int32)
    done = jnp.zeros((batch, beam), bool)
    lengths = jnp.zeros((batch, beam))
    state, (tokens, parents) = run(partial(_beam_step, beam=beam, eos=eos),
                                   (carry, token, scores, done, lengths))  # fmt: skip
    _, _, scores, _, lengths = state
    final = scores / jnp.maximum(lengths, 1) if length_norm else scores
    best = jnp.argmax(final, axis=-1)

    def back(b, step):  # follow the parents from the last step to the first
        tok, par = step
        return jnp.take_along_axis(par, b[:, None], 1)[:, 0], jnp.take_along_axis(
            tok, b[:, None], 1
        )[:, 0]

    _, path = jax.lax.scan(back, best, (tokens.swapaxes(0, 1), parents.swapaxes(0, 1)),
                           reverse=True)  # fmt: skip
    path = path.swapaxes(0, 1)  # (batch, max_len)
    after_eos = jnp.cumsum(path == eos, axis=1) - (path == eos) > 0
    return jnp.where(after_eos, 0, path)


def _beam_step(step, state, _, memory, mask, *, beam: int, eos: int):
    carry, token, scores, done, lengths = state
    carry, (logits, _) = step(carry, token, memory, mask)
    batch = scores.shape[0]
    logp = jax.nn.log_softmax(logits).reshape(batch, beam, -1)
    vocab = logp.shape[-1]
    # a finished hypothesis only extends with EOS, at no cost, so it keeps its score
    finished_row = jnp.full((vocab,), NEG_INF).at[eos].set(0.0)
    logp = jnp.where(done[..., None], finished_row, logp)
    candidates = (scores[..., None] + logp).reshape(batch, beam * vocab)
    scores, index = jax.lax.top_k(candidates, beam)
    parent, token = index // vocab, (index % vocab).astype(jnp.int32)
    pick = lambda a: jnp.take_along_axis(a, parent, axis=1)
    lengths = pick(lengths) + ~pick(done)
    done = pick(done) | (token == eos)
    flat_parent = (parent + jnp.arange(batch)[:, None] * beam).reshape(-1)
    carry = jax.tree.map(lambda a: a[flat_parent], carry)
    return (carry, token.reshape(-1), scores, done, lengths), (token, parent)


# --- the cards of this family (zoo_jax.registry collects them) ------------------------------------

_TOKENS = "N,T token ids"
_CHAR_LEN = 128  # characters per training window (truncated BPTT length)
_DATES_LEN = 32  # source characters, PAD-padded

CARDS = [
    ZooCard(
        name="attention_rnn", family="attention", chart_node="attention_rnn",
        reference="Luong et al. 2015, arXiv:1508.04025; the Keras attention RNN of the chapter 'Neural network collection'",
        build=AttentionRNNClassifier, input_shape=(28, 28),
        input_layout="N,T,F (28 rows of 28 pixels)",
        description="SimpleRNN(128) outputs, read by dot attention from the last state, dense 10",
        test_overrides={"units": 8},
    ),
    ZooCard(
        name="transformer_encoder", family="attention", chart_node="transformer",
        reference="Vaswani et al. 2017, arXiv:1706.03762 (encoder only)",
        build=partial(Transformer, kind="encoder", source_features=28, d_model=64,
                      num_heads=4, num_layers=2, d_ff=128, max_len=28),
        input_shape=(28, 28), input_layout="N,T,F (28 rows of 28 pixels)",
        description="rows embedded (dense 64) + sinusoidal positions, 2 post-norm encoder "
                    "layers (4 heads, d_ff 128), mean pooling, dense 10",
        test_overrides={"d_model": 8, "num_heads": 2, "d_ff": 16},
    ),
    ZooCard(
        name="transformer_lm", family="attention", chart_node="transformer",
        reference="Vaswani et al. 2017, arXiv:1706.03762 (decoder only; Radford et al. 2018)",
        build=partial(Transformer, kind="decoder", target_vocab=text.CHAR_VOCAB_SIZE,
                      d_model=128, num_heads=4, num_layers=2, d_ff=384, max_len=_CHAR_LEN,
                      pad_id=-1),
        input_shape=(_CHAR_LEN,), input_layout=_TOKENS, input_kind="tokens",
        num_classes=text.CHAR_VOCAB_SIZE, dataset="chars", learning_rate=1e-3, epochs=20,
        batch_size=32,
        description="causal Transformer decoder: d_model 128, 4 heads, 2 layers, d_ff 384 "
                    "(about the LSTM char_rnn's parameter count); no padding id",
        test_overrides={"d_model": 8, "num_heads": 2, "d_ff": 16, "num_layers": 1},
    ),
    ZooCard(
        name="seq2seq", family="attention", chart_node="seq2seq_attention",
        reference="Sutskever et al. 2014, arXiv:1409.3215; Luong et al. 2015, arXiv:1508.04025 "
                  "(the NMT of the chapter 'Understanding deep learning architectures')",
        build=partial(Seq2Seq, source_vocab=text.DATE_VOCAB_SIZE,
                      target_vocab=text.DATE_VOCAB_SIZE, embed_dim=32, units=128, num_layers=2),
        input_shape=(_DATES_LEN,), input_layout=_TOKENS + " (PAD 0)", input_kind="tokens",
        num_classes=text.DATE_VOCAB_SIZE, learner="translation", dataset="dates",
        learning_rate=2e-3, epochs=5, batch_size=64,
        description="2-layer LSTM(128) encoder-decoder, input feeding, attention option: "
                    "none, dot, general, concat, local_m, local_p, hard",
        test_overrides={"units": 8, "embed_dim": 4, "num_layers": 1},
    ),
    ZooCard(
        name="transformer", family="attention", chart_node="transformer",
        reference="Vaswani et al. 2017, arXiv:1706.03762",
        build=partial(Transformer, kind="encoder_decoder",
                      source_vocab=text.DATE_VOCAB_SIZE, target_vocab=text.DATE_VOCAB_SIZE,
                      d_model=64, num_heads=4, num_layers=2, d_ff=256, max_len=64),
        input_shape=(_DATES_LEN,), input_layout=_TOKENS + " (PAD 0)", input_kind="tokens",
        num_classes=text.DATE_VOCAB_SIZE, learner="translation", dataset="dates",
        loss="categorical_crossentropy", loss_options={"label_smoothing": 0.1},
        learning_rate=1e-3, epochs=5, batch_size=64,
        description="encoder-decoder: d_model 64, 4 heads, 2 + 2 layers, d_ff 256, "
                    "label smoothing 0.1",
        test_overrides={"d_model": 8, "num_heads": 2, "d_ff": 16, "num_layers": 1},
    ),
]  # fmt: skip
