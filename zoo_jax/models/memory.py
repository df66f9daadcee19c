"""Memory: the neural Turing machine and the end-to-end memory network.

Chart nodes: `neural_turing_machine` (card `ntm`) and `memory_network` (card `memn2n`); the
card `copy_lstm` is the plain LSTM the NTM is compared with (node `lstm`).

    logits = model.apply(variables, x)                              # NTM: (batch, time, bits)
    logits, reads, writes = model.apply(variables, x, method="trace")  # and the weightings
    logits = memn2n.apply(variables, story_and_question)            # (batch, vocabulary)
    attention = memn2n.apply(variables, story_and_question, method="attention")  # per hop

The NTM's addressing (`address`, eqs. 5–9 of Graves et al. 2014), reading and writing are
plain functions of arrays, so they are tested against a NumPy transcription of the paper's
equations; the loop over time is one `nn.scan`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax.data import babi, ntm_tasks
from zoo_jax.errors import InputError, UnknownNameError, ZooError
from zoo_jax.models import checks
from zoo_jax.registry import ZooCard

CONTROLLERS = ("lstm", "feedforward")
MEMORY_INIT = 1e-6  # Collier & Beel 2018: a small constant trains most reliably
SHARPEN_EPS = 1e-12  # keeps w^γ's gradient in γ (w^γ · log w) finite where w underflows to 0

# --- addressing (Graves, Wayne & Danihelka 2014, sec. 3.3) -----------------------------------


def cosine_similarity(memory: jax.Array, key: jax.Array, eps: float = 1e-8) -> jax.Array:
    """K[k, M(i)] (eq. 6): `memory` `(batch, N, W)`, `key` `(batch, W)` → `(batch, N)`."""
    dot = jnp.einsum("bnw,bw->bn", memory, key)
    norms = jnp.linalg.norm(memory, axis=-1) * jnp.linalg.norm(key, axis=-1, keepdims=True)
    return dot / (norms + eps)


def shift(w: jax.Array, s: jax.Array) -> jax.Array:
    """The circular convolution w̃(i) = Σ_j w(j) s(i − j) (eq. 8): `s` `(batch, 2S + 1)`
    weighs the shifts −S … S."""
    reach = (s.shape[-1] - 1) // 2
    return sum(s[:, j, None] * jnp.roll(w, j - reach, axis=-1) for j in range(s.shape[-1]))


def address(memory, w_prev, key, beta, gate, shifts, gamma) -> jax.Array:
    """One head's weighting: content focus w_c = softmax(β K[k, M(i)]) (eq. 5), the
    interpolation w_g = g w_c + (1 − g) w_prev (eq. 7), the shift (eq. 8) and the sharpening
    w ∝ w̃^γ (eq. 9). `beta`, `gate`, `gamma` are `(batch,)`."""
    w_c = jax.nn.softmax(beta[:, None] * cosine_similarity(memory, key), axis=-1)
    w_g = gate[:, None] * w_c + (1 - gate[:, None]) * w_prev
    w = shift(w_g, shifts)
    # divided by its largest first (the ratio is the same): a flat w̃ to the power γ ≤ 21
    # would otherwise underflow to 0 everywhere in float32, and 0 / 0 is NaN
    w = w / lax.stop_gradient(jnp.max(w, axis=-1, keepdims=True))
    w = jnp.power(w + SHARPEN_EPS, gamma[:, None])
    return w / jnp.sum(w, axis=-1, keepdims=True)


def read(memory: jax.Array, w: jax.Array) -> jax.Array:
    """r = Σ_i w(i) M(i) (eq. 2)."""
    return jnp.einsum("bn,bnw->bw", w, memory)


def write(memory: jax.Array, w: jax.Array, erase: jax.Array, add: jax.Array) -> jax.Array:
    """M̃(i) = M(i) ⊙ (1 − w(i) e), then M(i) = M̃(i) + w(i) a (eqs. 3–4)."""
    return memory * (1 - w[..., None] * erase[:, None, :]) + w[..., None] * add[:, None, :]


class NTMCell(nn.Module):
    """One step: the controller reads the input and the last read vector; its output,
    clipped to ±`clip` (Collier & Beel), parameterises a read and a write head (key tanh, β
    softplus, g sigmoid, shift softmax, γ 1 + softplus, erase sigmoid, add tanh); the read
    head reads the memory before the write head writes, and the output layer sees the
    controller's output and the new read vector."""

    output_size: int
    controller: str
    controller_size: int
    slots: int
    width: int
    shift_range: int
    clip: float

    @nn.compact
    def __call__(self, carry, x):
        controller_carry, read_vector, w_read, w_write, memory = carry
        inputs = jnp.concatenate([x, read_vector], -1)
        if self.controller == "lstm":
            controller_carry, h = nn.OptimizedLSTMCell(self.controller_size, name="lstm")(
                controller_carry, inputs
            )
        else:
            h = nn.relu(nn.Dense(self.controller_size, name="feedforward")(inputs))
        n_shift, w = 2 * self.shift_range + 1, self.width
        per_head = w + 3 + n_shift
        p = jnp.clip(nn.Dense(2 * per_head + 2 * w, name="heads")(h), -self.clip, self.clip)

        def weighting(q, w_prev):
            return address(memory, w_prev, jnp.tanh(q[:, :w]), nn.softplus(q[:, w]),
                           nn.sigmoid(q[:, w + 1]), nn.softmax(q[:, w + 2 : w + 2 + n_shift]),
                           1 + nn.softplus(q[:, -1]))  # fmt: skip

        w_read = weighting(p[:, :per_head], w_read)
        w_write = weighting(p[:, per_head : 2 * per_head], w_write)
        read_vector = read(memory, w_read)
        erase, add = nn.sigmoid(p[:, 2 * per_head : -w]), jnp.tanh(p[:, -w:])
        memory = write(memory, w_write, erase, add)
        y = nn.Dense(self.output_size, name="output")(jnp.concatenate([h, read_vector], -1))
        y = jnp.clip(y, -self.clip, self.clip)
        return (controller_carry, read_vector, w_read, w_write, memory), (y, w_read, w_write)


def _learned_init(size: int):
    """Collier & Beel's learned initial state: a bias, Glorot-uniform as a 1 × size kernel."""
    limit = math.sqrt(6 / (1 + size))
    return lambda key, shape: jax.random.uniform(key, shape, minval=-limit, maxval=limit)


class NTM(nn.Module):
    """The neural Turing machine (Graves, Wayne & Danihelka 2014, arXiv:1410.5401) as Collier
    & Beel (2018, "Implementing Neural Turing Machines", ICANN) make it train reliably:
    memory contents start at the constant 1e-6; the first read vector (tanh of a bias) and
    the heads' first weightings (softmax of a bias) are learned; the controller's head
    parameters and the outputs are clipped to ±20. One read and one write head; shifts
    −`shift_range` … `shift_range`. `controller`: an LSTM or one ReLU layer (the paper's two).

    `__call__(x)` `(batch, time, channels)` → output bit logits `(batch, time, num_classes)`;
    `trace(x)` also gives the read and write weightings `(batch, time, memory_slots)`."""

    num_classes: int = 8  # output bits
    controller: str = "lstm"
    controller_size: int = 100
    memory_slots: int = 128
    memory_width: int = 20
    shift_range: int = 1
    clip: float = 20.0

    def setup(self):
        if self.controller not in CONTROLLERS:
            raise UnknownNameError("NTM controller", self.controller, CONTROLLERS)
        if 2 * self.shift_range + 1 > self.memory_slots:
            raise ZooError(f"a shift range of ±{self.shift_range} is wider than the memory's "
                           f"{self.memory_slots} locations")  # fmt: skip
        if min(self.memory_slots, self.memory_width, self.controller_size, self.shift_range) < 1:
            raise ZooError("the NTM's memory, controller and shift range must be >= 1")
        n, w = self.memory_slots, self.memory_width
        self.read_init = self.param("read_init", _learned_init(w), (w,))
        self.w_read_init = self.param("w_read_init", _learned_init(n), (n,))
        self.w_write_init = self.param("w_write_init", _learned_init(n), (n,))
        scan = nn.scan(NTMCell, variable_broadcast="params", split_rngs={"params": False},
                       in_axes=1, out_axes=1)  # fmt: skip
        self.cell = scan(self.num_classes, self.controller, self.controller_size, n, w,
                         self.shift_range, self.clip)  # fmt: skip

    def trace(self, x: jax.Array, train: bool = False):
        x = checks.feature_sequences(x, "ntm")
        batch = x.shape[0]
        tile = lambda v: jnp.broadcast_to(v, (batch, *v.shape))
        zeros = jnp.zeros((batch, self.controller_size), x.dtype)
        controller_carry = (zeros, zeros) if self.controller == "lstm" else ()  # (c, h)
        memory = jnp.full((batch, self.memory_slots, self.memory_width), MEMORY_INIT, x.dtype)
        carry = (controller_carry, tile(jnp.tanh(self.read_init)),
                 tile(nn.softmax(self.w_read_init)), tile(nn.softmax(self.w_write_init)), memory)  # fmt: skip
        _, (y, reads, writes) = self.cell(carry, x)
        return y, reads, writes

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.trace(x, train)[0]


class SequenceLSTM(nn.Module):
    """Stacked LSTMs and a dense output per step: the baseline of the NTM's tasks (Graves et
    al. compare a 3 × 256 LSTM; `copy_lstm` matches the NTM's parameter count instead)."""

    num_classes: int = 8  # output bits
    units: Sequence[int] = (120,)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = checks.feature_sequences(x, "copy_lstm")
        for u in self.units:
            x = nn.RNN(nn.OptimizedLSTMCell(u))(x)
        return nn.Dense(self.num_classes)(x)


# --- end-to-end memory network (Sukhbaatar, Szlam, Weston & Fergus 2015) ----------------------


def position_encoding(lengths: jax.Array, sentence_length: int, dim: int) -> jax.Array:
    """l_kj = (1 − j/J) − (k/d)(1 − 2j/J) (sec. 4.1), j = 1…J over a sentence's J words and
    k = 1…d over the embedding; `lengths` `(…,)` → `(…, sentence_length, dim)` (0 past J)."""
    j = jnp.arange(1, sentence_length + 1, dtype=jnp.float32)[:, None]
    k = jnp.arange(1, dim + 1, dtype=jnp.float32)[None, :]
    J = jnp.maximum(lengths, 1).astype(jnp.float32)[..., None, None]
    pe = (1 - j / J) - (k / dim) * (1 - 2 * j / J)
    return jnp.where(j <= J, pe, 0.0)


def time_noise(rng: jax.Array, stored: jax.Array, memory_size: int, fraction: float):
    """Random noise (sec. 4.2): as if ⌈fraction · n⌉ empty memories at most were scattered
    among a story's n statements, each statement's temporal index becomes its place among
    them (the reference code's `randomize_time`); `stored` `(batch,)` the number of
    statements. Indices `(batch, memory_size)`, clipped to the last."""
    gaps_key, order_key = jax.random.split(rng)
    extra = math.ceil(fraction * memory_size)
    most = jnp.ceil(fraction * stored).astype(jnp.int32) + 1
    gaps = jax.random.randint(gaps_key, stored.shape, 0, most)
    score = jax.random.uniform(order_key, (*stored.shape, memory_size + extra))
    slots = jnp.arange(memory_size + extra)
    score = jnp.where(slots < (stored + gaps)[:, None], score, 2.0)  # only the first n + gaps
    rank = jnp.argsort(jnp.argsort(score, -1), -1)
    chosen = rank < stored[:, None]  # n of them, kept in order
    where = jax.vmap(lambda c: jnp.nonzero(c, size=memory_size, fill_value=memory_size - 1)[0])
    return jnp.minimum(where(chosen), memory_size - 1)


class MemN2N(nn.Module):
    """The end-to-end memory network (Sukhbaatar, Szlam, Weston & Fergus 2015, NeurIPS) of
    the bAbI experiments: `hops` hops with adjacent weight tying (A^{k+1} = C^k, B = A^1,
    the answer's W^T = C^K, the temporal matrices tied alike), bag-of-words sentences
    weighted by the position encoding (`position_encoding`), temporal encoding T_A, T_C,
    embeddings drawn from N(0, 0.1²), the padding word embedded as zero.

    Inputs `(batch, memory_size + 1, sentence_length)` ids (`data.babi.encode`: statements,
    most recent first, then the question); `__call__` gives answer logits over the
    vocabulary. `linear=True` removes the softmax of every hop (linear start, sec. 4.2: the
    `linear_start` learner keeps it for the first `linear_start_epochs`); in training, random
    noise (RN) on the temporal indices with `random_empty` (10 %) — the `dropout` RNG. Empty
    memory rows get no attention. `attention(x)` is each hop's `(batch, hops, memory_size)`."""

    vocab_size: int = babi.VOCAB_SIZE
    embed_dim: int = 20
    hops: int = 3
    memory_size: int = babi.MEMORY_SIZE
    position_encoding: bool = True
    temporal_encoding: bool = True
    random_empty: float = 0.1
    linear_start_epochs: int = 20  # read by the learner
    init_std: float = 0.1

    def setup(self):
        if self.hops < 1 or self.embed_dim < 1 or self.memory_size < 1:
            raise ZooError("MemN2N needs hops, embed_dim and memory_size >= 1")
        init = nn.initializers.normal(self.init_std)
        d, k = self.embed_dim, self.hops + 1  # k matrices: A^1 (= B), C^1 (= A^2), …, C^K (= W^T)
        self.embeddings = [self.param(f"embedding_{i}", init, (self.vocab_size, d)) for i in range(k)]  # fmt: skip
        if self.temporal_encoding:
            self.temporal = [self.param(f"temporal_{i}", init, (self.memory_size, d)) for i in range(k)]  # fmt: skip

    def _bags(self, ids: jax.Array, table: jax.Array) -> jax.Array:
        """Σ_j l_j ⊙ E x_j over each sentence's words: `ids` `(…, J)` → `(…, d)`."""
        vectors = jnp.take(table, ids, axis=0) * (ids > 0)[..., None]
        if self.position_encoding:
            lengths = jnp.sum(ids > 0, -1)
            weights = position_encoding(lengths, ids.shape[-1], self.embed_dim)
            vectors = vectors * weights.astype(vectors.dtype)  # bfloat16 stays bfloat16
        return vectors.sum(-2)

    def _hops(self, x: jax.Array, train: bool, linear):
        if x.ndim != 3 or not jnp.issubdtype(x.dtype, jnp.integer):
            raise InputError(f"memn2n takes (batch, memory + 1, words) ids, got {x.shape} {x.dtype}")  # fmt: skip
        if x.shape[1] - 1 > self.memory_size:
            raise InputError(f"{x.shape[1] - 1} memory rows, more than memory_size {self.memory_size}")  # fmt: skip
        story, question = x[:, :-1], x[:, -1]
        filled = jnp.any(story > 0, -1)  # (batch, memory)
        slots = jnp.broadcast_to(jnp.arange(story.shape[1]), filled.shape)
        if train and self.random_empty > 0:
            noisy = time_noise(self.make_rng("dropout"), jnp.sum(filled, -1), self.memory_size,
                               self.random_empty)  # fmt: skip
            slots = noisy[:, : story.shape[1]]
        u = self._bags(question, self.embeddings[0])
        attention = []
        for hop in range(self.hops):
            m = self._bags(story, self.embeddings[hop])
            c = self._bags(story, self.embeddings[hop + 1])
            if self.temporal_encoding:
                m = m + jnp.take(self.temporal[hop], slots, axis=0)
                c = c + jnp.take(self.temporal[hop + 1], slots, axis=0)
            scores = jnp.einsum("bmd,bd->bm", m, u)
            # empty rows masked with a finite floor: a row of padding (an evaluation batch's)
            # then has no NaN, and an empty slot's weight is exactly 0 elsewhere
            soft = nn.softmax(jnp.where(filled, scores, jnp.finfo(scores.dtype).min), -1) * filled
            p = jnp.where(linear, jnp.where(filled, scores, 0.0), soft)
            u = u + jnp.einsum("bm,bmd->bd", p, c)
            attention.append(soft)
        return u @ self.embeddings[-1].T, jnp.stack(attention, 1)

    def __call__(self, x: jax.Array, train: bool = False, linear=False) -> jax.Array:
        return self._hops(x, train, linear)[0]

    def attention(self, x: jax.Array) -> jax.Array:
        """Each hop's softmax over the memories (the trained model's, no noise)."""
        return self._hops(x, False, False)[1]


def _card(**kw) -> ZooCard:
    return ZooCard(**({"family": "memory", "input_layout": "NTC"} | kw))


def _copy_card(**kw) -> ZooCard:
    """A card of the NTM's tasks: Collier & Beel's Adam 1e-3, batches of 32, global norm 50."""
    return _card(
        input_shape=(ntm_tasks.TIMES["copy"], ntm_tasks.CHANNELS["copy"][0]),
        input_kind="bits",
        num_classes=ntm_tasks.COPY_BITS,
        learner="bits",
        dataset="copy",
        optimizer="adam",
        learning_rate=1e-3,
        optimizer_options={"global_clipnorm": 50.0},
        loss="binary_crossentropy",
        epochs=10,
        batch_size=32,
        dataset_shapes={t: (ntm_tasks.TIMES[t], ntm_tasks.CHANNELS[t][0]) for t in ntm_tasks.TASKS},
        **kw,
    )  # fmt: skip


CARDS = [
    _copy_card(
        name="ntm",
        chart_node="neural_turing_machine",
        reference="Graves, Wayne & Danihelka 2014, arXiv:1410.5401; initialisation of Collier & Beel 2018, ICANN",
        build=NTM,
        description="LSTM controller 100, memory 128 x 20, one read and one write head, shifts -1..1",
        test_overrides={"controller_size": 8, "memory_slots": 8, "memory_width": 4},
        param_convention="trainable parameters (the learned initial read vector and weightings included)",
    ),
    _copy_card(
        name="copy_lstm",
        chart_node="lstm",
        reference="Hochreiter & Schmidhuber 1997; the baseline of Graves et al. 2014, sec. 4, sized as the NTM",
        build=SequenceLSTM,
        description="one LSTM layer of 120 units (63,368 parameters to the NTM's 62,536), a dense output per step",
        test_overrides={"units": (8,)},
    ),
    _card(
        name="memn2n",
        chart_node="memory_network",
        reference="Sukhbaatar, Szlam, Weston & Fergus 2015, NeurIPS (End-To-End Memory Networks), PE LS RN",
        build=MemN2N,
        input_shape=(babi.MEMORY_SIZE + 1, babi.SENTENCE_LENGTH),
        input_layout="memory + question, words",
        input_kind="tokens",
        num_classes=babi.VOCAB_SIZE,
        learner="linear_start",
        dataset="babi",
        optimizer="sgd",
        # the paper's linear-start rate 0.005 and clipping norm 40 are for a loss summed over
        # the batch of 32; ours is the mean: 32× the rate, the norm / 32. The paper's schedule
        # (0.01 after linear start, halved every 15 epochs) is experiments/memory.py's
        learning_rate=0.005 * 32,
        optimizer_options={"global_clipnorm": 40.0 / 32},
        epochs=80,  # 20 of linear start, then the paper's 60 of joint training
        batch_size=32,
        description="3 hops, d = 20, adjacent tying, position and temporal encoding, linear start, random noise",
        test_overrides={"embed_dim": 4, "hops": 2},
    ),
]  # fmt: skip
