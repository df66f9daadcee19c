"""The NTM and MemN2N: addressing, reading and writing against a NumPy transcription of
Graves et al.'s equations, MemN2N's hops against a NumPy transcription of Sukhbaatar et
al.'s, exact parameter counts, the tasks' generators, and one short training of each."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo_jax import registry
from zoo_jax.data import babi, ntm_tasks, pipeline
from zoo_jax.errors import InputError, UnknownNameError, ZooError
from zoo_jax.models import memory
from zoo_jax.train.loop import RunConfig, fit

QUIET = {"progress": False, "log": lambda _: None}


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_address(M, w_prev, k, beta, g, s, gamma):
    """Eqs. 5-9 of Graves et al. 2014, one example at a time, loops as the paper writes."""
    N = M.shape[0]
    K = np.array([M[i] @ k / (np.linalg.norm(M[i]) * np.linalg.norm(k) + 1e-8) for i in range(N)])
    w_c = softmax(beta * K)
    w_g = g * w_c + (1 - g) * w_prev
    S = (len(s) - 1) // 2
    w_t = np.array([sum(w_g[j] * s[(i - j + S) % N] if abs((i - j + S) % N - S) <= S and
                        (i - j + S) % N < len(s) else 0.0 for j in range(N)) for i in range(N)])  # fmt: skip
    w = w_t**gamma
    return w / w.sum()


def test_addressing_reading_and_writing_match_the_papers_equations():
    rng = np.random.default_rng(0)
    B, N, W = 3, 7, 5
    M = rng.normal(size=(B, N, W)).astype(np.float32)
    w_prev = softmax(rng.normal(size=(B, N))).astype(np.float32)
    k = rng.normal(size=(B, W)).astype(np.float32)
    beta = rng.uniform(0.5, 5, B).astype(np.float32)
    g = rng.uniform(0, 1, B).astype(np.float32)
    s = softmax(rng.normal(size=(B, 3))).astype(np.float32)
    gamma = rng.uniform(1, 4, B).astype(np.float32)
    w = jax.jit(memory.address)(M, w_prev, k, beta, g, s, gamma)
    for b in range(B):
        expected = np_address(M[b], w_prev[b], k[b], beta[b], g[b], s[b], gamma[b])
        np.testing.assert_allclose(w[b], expected, rtol=1e-4, atol=1e-6)
    e = rng.uniform(0, 1, (B, W)).astype(np.float32)
    a = rng.normal(size=(B, W)).astype(np.float32)
    np.testing.assert_allclose(memory.read(M, w), np.einsum("bn,bnw->bw", w, M), rtol=1e-5)
    expected = np.stack(
        [M[b] * (1 - np.outer(w[b], e[b])) + np.outer(w[b], a[b]) for b in range(B)]
    )
    np.testing.assert_allclose(memory.write(M, w, e, a), expected, rtol=1e-5, atol=1e-6)
    # a shift of +1 with certainty moves a sharp focus one location on, circularly
    one_hot = jnp.eye(N)[None, N - 1]
    np.testing.assert_allclose(
        memory.shift(one_hot, jnp.array([[0.0, 0.0, 1.0]])), jnp.eye(N)[None, 0]
    )
    # a flat weighting sharpened by γ = 21 stays finite (w^γ underflows without rescaling)
    flat = jnp.full((1, 128), 1 / 128)
    out = memory.address(jnp.full((1, 128, 4), 1e-6), flat, jnp.zeros((1, 4)), jnp.ones(1),
                         jnp.zeros(1), jnp.array([[0.0, 1.0, 0.0]]), jnp.array([21.0]))  # fmt: skip
    np.testing.assert_allclose(out, flat, rtol=1e-5)


def lstm(n_in, units):  # Flax's LSTM: no bias on the input kernels
    return 4 * (n_in * units + units * units + units)


def test_parameter_counts_and_trace():
    # LSTM controller reads 9 input channels and the 20-wide read vector; heads: 2 × (20 + 3
    # + 3) + 2 × 20 outputs; the output layer reads the controller and the read vector
    ntm = lstm(9 + 20, 100) + (100 + 1) * 92 + (100 + 20 + 1) * 8 + 20 + 2 * 128
    assert registry.count_params("ntm") == ntm == 62_536
    assert registry.count_params("copy_lstm") == lstm(9, 120) + 121 * 8 == 63_368
    v, d, m = babi.VOCAB_SIZE, 20, babi.MEMORY_SIZE
    assert registry.count_params("memn2n") == 4 * v * d + 4 * m * d == 18_240  # 3 hops: 4 each
    model = registry.get_model("ntm", **registry.get_card("ntm").test_overrides)
    x, _ = ntm_tasks.copy(jax.random.PRNGKey(0), 2, (3, 3))
    variables = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    y, reads, writes = jax.jit(lambda v, x: model.apply(v, x, method="trace"))(variables, x)
    assert y.shape == (2, 7, 8) and reads.shape == writes.shape == (2, 7, 8)
    np.testing.assert_allclose(reads.sum(-1), 1, rtol=1e-5)


def test_bad_ntm_configurations_are_refused():
    x = jnp.zeros((1, 5, 9))
    with pytest.raises(ZooError, match="shift range of ±4 is wider than the memory's 8"):
        memory.NTM(memory_slots=8, shift_range=4).init(jax.random.PRNGKey(0), x)
    with pytest.raises(UnknownNameError):
        memory.NTM(controller="gru").init(jax.random.PRNGKey(0), x)
    with pytest.raises(InputError, match="batch, time, features"):
        memory.NTM().init(jax.random.PRNGKey(0), jnp.zeros((5, 9)))


def test_the_tasks_ask_for_what_the_paper_says():
    x, y = ntm_tasks.copy(jax.random.PRNGKey(0), 50, (1, 20))
    assert x.shape == (50, 41, 9) and y.shape == (50, 41, 8)
    for xi, yi in zip(x, y, strict=True):
        L = int(np.argmax(xi[:, 8]))  # the delimiter
        np.testing.assert_array_equal(yi[L + 1 : 2 * L + 1], xi[:L, :8])
        assert (yi[: L + 1] == -1).all() and (yi[2 * L + 1 :] == -1).all()
    again, _ = ntm_tasks.copy(jax.random.PRNGKey(0), 50, (1, 20))
    np.testing.assert_array_equal(x, again)  # the key decides
    x, y = ntm_tasks.repeat_copy(jax.random.PRNGKey(1), 20)
    for xi, yi in zip(x, y, strict=True):
        L = int(np.argmax(xi[:, 8]))
        k = round(xi[L, 9] * ntm_tasks.REPEATS[1])
        np.testing.assert_array_equal(yi[L + 1 : L + 1 + k * L, :8], np.tile(xi[:L, :8], (k, 1)))
        assert yi[L + 1 + k * L, 8] == 1 and (yi[L + 1 + k * L, :8] == 0).all()
    x, y = ntm_tasks.associative_recall(jax.random.PRNGKey(2), 20)
    for xi, yi in zip(x, y, strict=True):
        starts = np.flatnonzero(xi[:, 6])
        items = [xi[s + 1 : s + 4, :6] for s in starts]
        query = xi[np.flatnonzero(xi[:, 7])[0] + 1 :][:3, :6]
        q = next(i for i, item in enumerate(items) if (item == query).all())
        asked = yi[(yi >= 0).all(-1)]
        np.testing.assert_array_equal(asked, items[q + 1])
    with pytest.raises(InputError, match="takes 41 steps"):
        ntm_tasks.copy(jax.random.PRNGKey(0), 2, (1, 20), time=30)
    x, y = ntm_tasks.copy(jax.random.PRNGKey(0), 2, (1, 3))
    pipeline.validate_bit_sequences(x, y, (7, 9), 8)
    with pytest.raises(InputError, match="0 or 1, or -1"):
        pipeline.validate_bit_sequences(x, np.where(y == 1, 2, y), (7, 9), 8)
    with pytest.raises(InputError, match=r"bit targets of shape \(2, 7, 8\)"):
        pipeline.validate_bit_sequences(x, y[:, :, :6], (7, 9), 8)


def np_memn2n(params, x, hops):
    """Sukhbaatar et al. 2015, sec. 2 and 4.1, per example, adjacent tying, PE and TE."""
    E = [np.asarray(params[f"embedding_{i}"]) for i in range(hops + 1)]
    T = [np.asarray(params[f"temporal_{i}"]) for i in range(hops + 1)]
    d = E[0].shape[1]

    def bag(ids, table):
        words = [w for w in ids if w > 0]
        J = len(words)
        out = np.zeros(d)
        for j, w in enumerate(words, 1):
            pe = np.array([(1 - j / J) - (k / d) * (1 - 2 * j / J) for k in range(1, d + 1)])
            out += pe * table[w]
        return out

    logits = []
    for story_q in x:
        story = [s for s in story_q[:-1] if (s > 0).any()]
        u = bag(story_q[-1], E[0])
        for k in range(hops):
            m = np.array([bag(s, E[k]) + T[k][i] for i, s in enumerate(story)])
            c = np.array([bag(s, E[k + 1]) + T[k + 1][i] for i, s in enumerate(story)])
            u = u + softmax(m @ u) @ c
        logits.append(u @ E[hops].T)
    return np.array(logits)


def test_memn2n_hops_match_the_papers_equations():
    vocab = babi.vocabulary("1k")
    x, _ = babi.encode(babi.read("1k", 2, "test")[:4], vocab, memory_size=10)
    model = memory.MemN2N(embed_dim=6, hops=2, memory_size=10)
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    logits = jax.jit(model.apply)(variables, x)
    np.testing.assert_allclose(logits, np_memn2n(variables["params"], x, 2), rtol=2e-4, atol=1e-5)
    attention = model.apply(variables, x, method="attention")
    filled = (x[:, :-1] > 0).any(-1)
    np.testing.assert_allclose(attention.sum(-1), 1, rtol=1e-5)
    assert (np.asarray(attention)[:, :, ~filled[0]][0] == 0).all()
    # linear start: no softmax, the raw scores weigh the memories
    linear = model.apply(variables, x, linear=True)
    assert not np.allclose(linear, logits)
    # random noise keeps the statements' order and stays in the memory
    stored = jnp.array([3, 10, 1])
    idx = memory.time_noise(jax.random.PRNGKey(3), stored, 10, 0.1)
    for row, n in zip(np.asarray(idx), [3, 10, 1], strict=True):
        assert (np.diff(row[:n]) > 0).all() and row[:n].max() <= 9


def test_the_memory_learners_refuse_other_losses():
    """(Both learners train through `fit` in tests/test_experiments.py's quick run.)"""
    with pytest.raises(ZooError, match="bits' binary cross-entropy"):
        fit(RunConfig(model="ntm", loss="mse", epochs=1), **QUIET)
    with pytest.raises(ZooError, match="bits' binary cross-entropy"):
        fit(RunConfig(model="copy_lstm", augment="shift", epochs=1), **QUIET)
