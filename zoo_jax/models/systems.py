"""The two systems seed 002 describes beyond the chart: Show, Attend and Tell, and text-to-image
synthesis with a GAN. Registered as `show_attend_tell` and `text_to_image_gan` (`registry.SYSTEMS`).

    model = zoo_jax.get_model("show_attend_tell")
    logits = model.apply(variables, canvases, captions[:, :-1])           # teacher forcing
    tokens = model.apply(variables, canvases, 21, method="beam_search")   # decoding
    out = model.apply(variables, canvases, captions[:, :-1], method="teacher_forced")
    out.weights                                # (batch, words, regions): where each word looked

    gan = zoo_jax.get_model("text_to_image_gan")
    h = gan.apply(variables, sentence_ids, method="embed")                 # φ(t)
    images = gan.apply(variables, z, h, method="sample")                   # (n, 28, 28, 1)

Both read the captioned datasets of `zoo_jax.data.captions` (images with generated text; one
vocabulary, PAD 0, BOS 1, EOS 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.data import captions
from zoo_jax.errors import InputError
from zoo_jax.models import blocks, checks
from zoo_jax.models.adversarial import (
    _NORMAL_002,
    DCGANGenerator,
    TwoPlayers,
    _batch_norm,
)
from zoo_jax.models.attention import beam_decode
from zoo_jax.models.cells import LSTMCell
from zoo_jax.models.recurrent import Recurrent
from zoo_jax.registry import ZooCard

# --- Xu et al. 2015 ---------------------------------------------------------------------------

ATTENTIONS = ("soft", "hard")


class Attended(NamedTuple):
    """A teacher-forced pass: per word, the logits, the attention weights α over the
    regions, log p(s̃ | a) of the location read (hard attention; 0 for soft) and the
    entropy of α."""

    logits: jax.Array  # (batch, words, vocab)
    weights: jax.Array  # (batch, words, regions)
    location_logp: jax.Array  # (batch, words)
    entropy: jax.Array  # (batch, words)


class AttendStep(nn.Module):
    """One word of Xu et al.'s decoder (sec. 3.1.2, eqs. 1–7; sec. 4.2.1's gate β).

    With the previous state h_{t−1}: scores e_ti = vᵀ tanh(W_a a_i + W_h h_{t−1}), α =
    softmax(e); the context ẑ_t = β_t Σ α_ti a_i (soft), or β_t a_s̃ with s̃ drawn from α
    (hard, training; the argmax location in evaluation), β_t = σ(f_β(h_{t−1})). The LSTM
    reads [E y_{t−1}; ẑ_t]; the deep output layer gives p(y_t) ∝ exp(L_o tanh(E y_{t−1} +
    L_h h_t + L_z ẑ_t)), dropout before L_o. Hard attention, with probability 1/2 per
    image, reads the expected context instead of a sample (sec. 4.1), as the paper does to
    reduce the estimator's variance. `rng` None: evaluation (no dropout, no sampling)."""

    vocab: int
    embed_dim: int
    units: int
    attention: str
    dropout: float

    @nn.compact
    def __call__(self, carry, token, memory, keys, rng=None):
        state, t = carry
        h = state[-1]
        embed = nn.Embed(self.vocab, self.embed_dim, name="embed")(token)
        query = nn.Dense(keys.shape[-1], use_bias=False, name="attend_h")(h)
        v = self.param("v", nn.initializers.glorot_uniform(), (keys.shape[-1], 1))
        scores = (jnp.tanh(keys + query[:, None, :]) @ v)[..., 0]
        logp = jax.nn.log_softmax(scores, -1)
        weights = jnp.exp(logp)
        entropy = -jnp.sum(weights * logp, -1)
        expected = jnp.einsum("bl,bld->bd", weights, memory)
        context, location_logp = expected, jnp.zeros_like(entropy)
        keys_of = jax.random.split(rng, 3) if rng is not None else None  # sample, coin, dropout
        if self.attention == "hard":
            if rng is None:
                where = jnp.argmax(scores, -1)
            else:
                where = jax.random.categorical(jax.random.fold_in(keys_of[0], t[0]), scores, -1)
            weights_read = jax.nn.one_hot(where, scores.shape[-1])
            location_logp = jnp.sum(weights_read * logp, -1)
            if rng is not None:  # one coin per image (the same key at every word)
                coin = jax.random.bernoulli(keys_of[1], 0.5, (len(token),))
                weights_read = jnp.where(coin[:, None], weights, weights_read)
                location_logp = jnp.where(coin, 0.0, location_logp)  # not sampled: no REINFORCE
            weights = weights_read
            context = jnp.einsum("bl,bld->bd", weights, memory)
        beta = jax.nn.sigmoid(nn.Dense(1, name="gate")(h))
        context = beta * context
        state, h = LSTMCell(self.units, name="lstm")(state, jnp.concatenate([embed, context], -1))
        out = jnp.tanh(embed + nn.Dense(self.embed_dim, name="L_h")(h)
                       + nn.Dense(self.embed_dim, use_bias=False, name="L_z")(context))  # fmt: skip
        if rng is not None and self.dropout > 0:
            keep = jax.random.bernoulli(jax.random.fold_in(keys_of[2], t[0]), 1 - self.dropout,
                                        out.shape)  # fmt: skip
            out = jnp.where(keep, out / (1 - self.dropout), 0.0)
        logits = nn.Dense(self.vocab, name="L_o")(out)
        return (state, t + 1), (logits, (weights, location_logp, entropy))


class ShowAttendTell(nn.Module):
    """Show, Attend and Tell: Xu et al., "Show, attend and tell: neural image caption
    generation with visual attention", ICML 2015, arXiv:1502.03044.

    A convolutional encoder turns the image into L annotation vectors a_i (the regions of
    its last feature map: 8×8 = 64 of `features[-1]` = 128 for a 64×64 canvas); an LSTM
    decoder (`AttendStep`) attends over them as it emits each word, with `attention`
    "soft" (deterministic, trained by backpropagation with the doubly stochastic
    regularisation, sec. 4.2.1) or "hard" (stochastic, trained by the paper's
    variational lower bound with a moving-average baseline and an entropy term, sec. 4.1:
    `learners.captioning`). The initial memory and state are tanh of dense layers of the
    mean annotation (sec. 3.1.2).

    Differences from the paper, by scale: the encoder is four 3×3 convolution stages
    (`features`, ReLU, 2×2 max pooling after the first three) trained with the decoder, not
    VGG's conv5_4 pretrained on ImageNet (14×14×512); the decoder is 256 LSTM units with
    64-wide embeddings, not 1,000 / 512.

    `__call__(images, target_in)`: logits per word given the true previous words (BOS +
    caption[:-1]); `teacher_forced` also returns α, log p(s̃) and the entropy; `greedy` and
    `beam_search` decode from BOS (`lax.scan`s of fixed length: they jit).
    """

    vocab: int = captions.VOCAB_SIZE
    features: Sequence[int] = (32, 64, 128, 128)
    embed_dim: int = 64
    units: int = 256
    attention_dim: int = 128
    attention: str = "soft"
    dropout: float = 0.5
    bos_id: int = captions.BOS
    eos_id: int = captions.EOS

    def setup(self):
        if self.attention not in ATTENTIONS:
            raise InputError(f"show_attend_tell attention must be soft or hard, got "
                             f"{self.attention!r}")  # fmt: skip
        self.convs = [blocks.Conv2D(f, (3, 3)) for f in self.features]
        self.keys = nn.Dense(self.attention_dim, name="attend_a")
        self.init_c = nn.Dense(self.units, name="init_c")
        self.init_h = nn.Dense(self.units, name="init_h")
        self.step = AttendStep(self.vocab, self.embed_dim, self.units, self.attention,
                               self.dropout)  # fmt: skip

    def encode(self, images):
        """Annotations a (batch, regions, channels), their attention keys W_a a, the
        decoder's initial carry."""
        x = checks.images(images, "ShowAttendTell")
        for i, conv in enumerate(self.convs):
            x = nn.relu(conv(x))
            if i < len(self.convs) - 1:
                x = blocks.pool(x, "max", 2, 2)
        memory = x.reshape(len(x), -1, x.shape[-1])
        mean = memory.mean(1)
        state = (jnp.tanh(self.init_c(mean)), jnp.tanh(self.init_h(mean)))
        return memory, self.keys(memory), (state, jnp.zeros(len(x), jnp.int32))

    def _scan(self, fn, carry, xs, memory, keys, length=None, extra=()):
        scan = nn.scan(fn, variable_broadcast="params", split_rngs={"params": False},
                       in_axes=(1, nn.broadcast, nn.broadcast, *[nn.broadcast] * len(extra)),
                       out_axes=1, length=length)  # fmt: skip
        return scan(self.step, carry, xs, memory, keys, *extra)

    def teacher_forced(self, images, target_in, *, train: bool = False) -> Attended:
        target_in = checks.token_ids(target_in, "ShowAttendTell")
        memory, keys, carry = self.encode(images)
        rng = self.make_rng("dropout") if train else None
        step = lambda s, c, tok, m, k, r: s(c, tok, m, k, r)
        _, (logits, (weights, logp, entropy)) = self._scan(
            step, carry, target_in, memory, keys, extra=(rng,)
        )
        return Attended(logits, weights, logp, entropy)

    def __call__(self, images, target_in, *, train: bool = False):
        return self.teacher_forced(images, target_in, train=train).logits

    def greedy(self, images, max_len: int):
        """Token ids (batch, max_len) and α (batch, max_len, regions) of argmax decoding."""
        memory, keys, carry = self.encode(images)
        bos = jnp.full((len(images),), self.bos_id, jnp.int32)

        def pick(step, carry, _, memory, keys):
            carry, token = carry
            carry, (logits, (weights, _, _)) = step(carry, token, memory, keys)
            token = jnp.argmax(logits, -1).astype(jnp.int32)
            return (carry, token), (token, weights)

        _, (tokens, weights) = self._scan(pick, (carry, bos), None, memory, keys, length=max_len)
        return tokens, weights

    def beam_search(self, images, max_len: int, beam: int = 3, length_norm: bool = True):
        """The best of `beam` hypotheses per image: token ids (batch, max_len), PAD after EOS."""
        memory, keys, carry = self.encode(images)
        tile = lambda a: jnp.repeat(a, beam, axis=0)
        memory, keys = tile(memory), tile(keys)
        run = lambda fn, state: self._scan(fn, state, None, memory, keys, length=max_len)
        return beam_decode(run, carry, len(images), beam, self.bos_id, self.eos_id,
                           length_norm)  # fmt: skip


def doubly_stochastic_penalty(weights: jax.Array, mask: jax.Array) -> jax.Array:
    """Xu et al. eq. 14's Σ_i (1 − Σ_t α_ti)² per caption: every region attended about once
    over the words (`mask` (batch, words): 1 for the caption's words, 0 for padding)."""
    return jnp.sum((1.0 - jnp.einsum("btl,bt->bl", weights, mask)) ** 2, -1)


# --- Reed et al. 2016 -------------------------------------------------------------------------


class TextEncoder(nn.Module):
    """φ(t): word embeddings read by an LSTM (PAD masked), its last state."""

    vocab: int
    embed_dim: int
    units: int

    @nn.compact
    def __call__(self, ids):
        ids = checks.token_ids(ids, "TextToImageGAN")
        x = nn.Embed(self.vocab, self.embed_dim)(ids)
        return Recurrent(LSTMCell(self.units))(x, mask=ids != captions.PAD)


class TextGenerator(nn.Module):
    """[z; leaky(W φ(t))] → the DCGAN generator (Reed et al. sec. 4: φ(t) compressed by a
    dense layer with leaky ReLU and concatenated to the noise)."""

    features: Sequence[int]
    base: Sequence[int]
    channels: int
    projection: int

    @nn.compact
    def __call__(self, z, h, *, train: bool = False):
        text = nn.leaky_relu(nn.Dense(self.projection, name="compress")(h), 0.2)
        dcgan = DCGANGenerator(self.features, self.base, self.channels)
        return dcgan(jnp.concatenate([z, text], -1), train=train)


class TextDiscriminator(nn.Module):
    """Strided convolutions to a 7×7 map; φ(t) compressed (dense, leaky ReLU), replicated
    over the map and concatenated in depth; a 1×1 convolution (batch norm, leaky ReLU) and a
    dense score (Reed et al. sec. 4; their last 4×4 convolution is this dense layer). Owns
    the text encoder (`embed`)."""

    features: Sequence[int]
    projection: int
    vocab: int
    embed_dim: int
    text_units: int

    def setup(self):
        self.text_encoder = TextEncoder(self.vocab, self.embed_dim, self.text_units)
        self.convs = [blocks.Conv2D(f, (4, 4), (2, 2), use_bias=False, kernel_init=_NORMAL_002)
                      for f in self.features]  # fmt: skip
        self.norms = [_batch_norm_module() for _ in self.features[1:]]
        self.compress = nn.Dense(self.projection)
        self.joint = blocks.Conv2D(self.features[-1], (1, 1), use_bias=False,
                                   kernel_init=_NORMAL_002)  # fmt: skip
        self.joint_norm = _batch_norm_module()
        self.score = nn.Dense(1, use_bias=False, kernel_init=_NORMAL_002)

    def embed(self, ids):
        return self.text_encoder(ids)

    def __call__(self, x, h, *, train: bool = False):
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i > 0:
                x = self.norms[i - 1](x, use_running_average=not train)
            x = nn.leaky_relu(x, 0.2)
        text = nn.leaky_relu(self.compress(h), 0.2)
        text = jnp.broadcast_to(text[:, None, None, :], (*x.shape[:3], text.shape[-1]))
        x = self.joint(jnp.concatenate([x, text], -1))
        x = nn.leaky_relu(self.joint_norm(x, use_running_average=not train), 0.2)
        return self.score(x.reshape(len(x), -1))


def _batch_norm_module() -> nn.BatchNorm:
    """DCGAN's batch norm (`adversarial._batch_norm`), its mode given at call time."""
    return _batch_norm(True).clone(use_running_average=None)


class TextToImageGAN(TwoPlayers):
    """Generative adversarial text to image synthesis: Reed et al., ICML 2016,
    arXiv:1605.05396 — GAN-CLS and GAN-INT, in its DCGAN architecture at 28×28×1
    (G z 100 + φ(t) compressed to 128 → 7×7×128 → 14×14×64 → 28×28, tanh; D 28×28 →
    14×14×64 → 7×7×128, φ(t) compressed to 128 and replicated over the 7×7 map, 1×1
    convolution, score).

    `embed(ids)` is φ(t), the text encoder (`TextEncoder`: word embeddings, an LSTM of
    `text_units`); `generate(z, h)` and `discriminate(x, h)` take the embedding, as the
    paper's players do. Where the paper differs: its φ is a character-level CNN-RNN
    pretrained with the deep symmetric structured joint embedding (Reed et al. 2016, CVPR)
    and frozen; here φ belongs to the discriminator and learns from its matching-aware loss
    (the generator reads it without a gradient). The learner (`learners.adversarial
    .TextToImageLearner`) holds GAN-CLS (`matching_aware`) and GAN-INT (`interpolate`, the
    paper's β = 0.5; 0 turns it off)."""

    g_features: Sequence[int] = (128, 64)
    d_features: Sequence[int] = (64, 128)
    base: Sequence[int] = (7, 7)
    channels: int = 1
    projection: int = 128
    vocab: int = captions.VOCAB_SIZE
    embed_dim: int = 64
    text_units: int = 128
    matching_aware: bool = True
    interpolate: float = 0.5
    tanh_output: ClassVar[bool] = True

    def setup(self):
        self.generator = TextGenerator(self.g_features, self.base, self.channels, self.projection)
        self.discriminator = TextDiscriminator(self.d_features, self.projection, self.vocab,
                                               self.embed_dim, self.text_units)  # fmt: skip

    def _labels(self, labels, n: int, what: str) -> tuple:
        if labels is None:
            raise InputError(f"the text-to-image {what} needs text embeddings (embed(ids))")
        h = jnp.asarray(labels)
        if h.shape != (n, self.text_units) or not jnp.issubdtype(h.dtype, jnp.floating):
            raise InputError(f"text embeddings must be ({n}, {self.text_units}) floats "
                             f"(embed(ids)), got {h.shape} {h.dtype}")  # fmt: skip
        return (h,)

    def embed(self, ids):
        return self.discriminator.embed(ids)

    def __call__(self, x, ids, *, train: bool = False):
        h = self.embed(ids)
        z = jnp.zeros((len(x), self.latent_dim), jnp.float32)
        return self.discriminate(x, h, train=train), self.generate(z, h, train=train)


# --- the cards of this family (zoo_jax.registry collects them) ---------------------------------

_CAPTIONS = f"N,{captions.CAPTION_LEN} ids: BOS caption EOS, PAD 0"
CARDS = [
    ZooCard(
        name="show_attend_tell", family="systems", chart_node="show_attend_tell",
        reference="Xu et al. 2015, arXiv:1502.03044 (the captioning system of the chapter "
                  "'Understanding deep learning architectures')",
        build=ShowAttendTell, input_shape=(captions.CANVAS, captions.CANVAS, 1),
        input_layout="NHWC", input_kind="captioned", num_classes=captions.VOCAB_SIZE,
        learner="captioning", dataset="digit-canvases", optimizer="adam",
        learning_rate=1e-3, epochs=10, batch_size=64,
        description="conv encoder 32-64-128-128 (8x8 regions), LSTM 256 with soft or hard "
                    "attention over them, deep output, beam search; labels " + _CAPTIONS,
        test_overrides={"features": (4, 4, 4, 4), "embed_dim": 4, "units": 8,
                        "attention_dim": 4},
    ),
    ZooCard(
        name="text_to_image_gan", family="systems", chart_node="text_to_image_gan",
        reference="Reed et al. 2016, arXiv:1605.05396 (GAN-INT-CLS; the chapter "
                  "'Understanding deep learning architectures')",
        build=TextToImageGAN, input_shape=(28, 28, 1), input_layout="NHWC",
        input_kind="captioned", num_classes=captions.VOCAB_SIZE, learner="text_to_image",
        dataset="mnist-sentences", loss="non_saturating", optimizer="adam",
        learning_rate=2e-4, optimizer_options={"beta_1": 0.5}, epochs=10, batch_size=64,
        description="phi(t): embeddings 64, LSTM 128; G: z 100 + text 128, DCGAN 7x7x128 "
                    "to 28x28; D: convs 64-128, text replicated, 1x1 conv, score",
        param_convention="trainable parameters of both players (the text encoder is D's)",
        test_overrides={"g_features": (4, 2), "d_features": (2, 4), "projection": 4,
                        "embed_dim": 4, "text_units": 4, "latent_dim": 4},
    ),
]  # fmt: skip
