"""The attentional encoder–decoder: every attention kind, teacher forcing against greedy
decoding, and beam search against exhaustive search."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo_jax.errors import ZooError
from zoo_jax.models.attention import ATTENTIONS, Seq2Seq

SOURCE = np.array([[5, 6, 7, 8, 0, 0], [9, 4, 3, 0, 0, 0]], np.int32)  # PAD = 0


def _model(attention="general", vocab=12):
    return Seq2Seq(source_vocab=10, target_vocab=vocab, embed_dim=6, units=8, num_layers=2,
                   attention=attention)  # fmt: skip


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_attention_trains_and_greedy_agrees_with_teacher_forcing(attention):
    model = _model(attention)
    target_in = np.array([[1, 3, 4, 5], [1, 6, 7, 2]], np.int32)
    params = jax.jit(model.init)({"params": jax.random.PRNGKey(0),
                                  "dropout": jax.random.PRNGKey(1)}, SOURCE, target_in)  # fmt: skip
    loss = lambda p: jnp.mean(model.apply(p, SOURCE, target_in, train=True,
                                          rngs={"dropout": jax.random.PRNGKey(2)}) ** 2)  # fmt: skip
    grads = jax.jit(jax.grad(loss))(params)
    assert float(jnp.abs(grads["params"]["step"]["readout"]["kernel"]).sum()) > 0
    tokens, weights = jax.jit(lambda p, s: model.apply(p, s, 5, method=Seq2Seq.greedy))(
        params, SOURCE
    )
    assert tokens.shape == (2, 5) and weights.shape == (2, 5, 6)
    if attention != "none":
        assert float(jnp.max(weights[1, :, 3:])) == 0.0  # padding is never attended
    forced = np.concatenate([np.ones((2, 1), np.int32), np.asarray(tokens[:, :-1])], 1)
    logits = jax.jit(model.apply)(params, SOURCE, forced)
    np.testing.assert_array_equal(np.argmax(logits, -1), tokens)


def test_beam_search_finds_the_most_probable_sequence():
    """Vocabulary of 5 (PAD, BOS, EOS, a, b), 3 steps: a beam of 25 keeps every prefix, so
    beam search must return the best of all 125 sequences (an EOS ends a sequence; what
    follows it costs nothing and is padding)."""
    vocab, steps = 5, 3
    model = _model("general", vocab)
    params = jax.jit(model.init)(jax.random.PRNGKey(3), SOURCE, np.ones((2, steps), np.int32))
    best = jax.jit(lambda p, s: model.apply(p, s, steps, beam=25, length_norm=False,
                                            method=Seq2Seq.beam_search))(params, SOURCE)  # fmt: skip

    sequences = np.array([s for s in itertools.product(range(vocab), repeat=steps)
                          if all(s[t] == 2 for t in range(steps) if 2 in s[:t])], np.int32)  # fmt: skip
    forced = np.concatenate([np.ones((len(sequences), 1), np.int32), sequences[:, :-1]], 1)
    forward = jax.jit(model.apply)
    for row in range(2):  # every sequence teacher-forced in one batch, scored up to its EOS
        source = np.repeat(SOURCE[row : row + 1], len(sequences), 0)
        logp = np.asarray(jax.nn.log_softmax(forward(params, source, forced)))
        per_step = np.take_along_axis(logp, sequences[..., None], -1)[..., 0]
        after_eos = np.cumsum(sequences == 2, 1) - (sequences == 2) > 0
        scores = np.where(after_eos, 0.0, per_step).sum(1)
        winner = list(sequences[np.argmax(scores)])
        cut = winner[: winner.index(2) + 1] if 2 in winner else winner
        assert list(np.asarray(best[row])[: len(cut)]) == cut
        assert (np.asarray(best[row])[len(cut) :] == 0).all()


def test_beam_of_one_is_greedy():
    model = _model("dot")
    params = jax.jit(model.init)(jax.random.PRNGKey(4), SOURCE, np.ones((2, 6), np.int32))
    greedy, _ = jax.jit(lambda p, s: model.apply(p, s, 6, method=Seq2Seq.greedy))(params, SOURCE)
    beam = jax.jit(lambda p, s: model.apply(p, s, 6, beam=1, method=Seq2Seq.beam_search))(
        params, SOURCE
    )
    greedy = np.asarray(greedy)
    for row in range(2):
        g = list(greedy[row])
        cut = g[: g.index(2) + 1] if 2 in g else g
        assert list(np.asarray(beam[row])[: len(cut)]) == cut


def test_unknown_attention_raises():
    with pytest.raises(ZooError, match="attention must be one of"):
        _model("bahdanau").init(jax.random.PRNGKey(0), SOURCE, np.ones((2, 3), np.int32))
