"""Sequence learning in the engine: per-token language-model scores, the translation learner
(teacher forcing, PAD masking, exact-sequence accuracy by greedy decoding), and `fit` / the
CLI on the token datasets."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo_jax import cli, losses, registry
from zoo_jax.learners import GradientLearner, TranslationLearner
from zoo_jax.train.loop import RunConfig, fit

CE = losses.for_classifier("sparse_categorical_crossentropy")


def _ce(logits, labels):
    """Independent NumPy cross-entropy per position."""
    logits = np.asarray(logits, np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, labels[..., None], -1)[..., 0]


def test_language_model_is_scored_per_token():
    model = registry.get_model("char_rnn", units=8, embed_dim=4)
    learner = GradientLearner(model=model, loss=CE, optimizer=optax.adam(1e-2))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 97, (4, 10)).astype(np.int32)
    y = rng.integers(0, 97, (4, 10)).astype(np.int32)
    state = learner.init(jax.random.PRNGKey(0), {"inputs": x})
    weight = np.array([1, 1, 1, 0], np.float32)  # the last row is padding
    sums = learner.evaluate(state, {"inputs": x, "labels": y, "weight": weight})
    logits = jax.jit(model.apply)({"params": state.params}, x)
    expected = _ce(logits, y)[:3]
    assert float(sums["count"]) == 30
    np.testing.assert_allclose(float(sums["loss"]), expected.sum(), rtol=1e-5)
    hits = (np.argmax(logits, -1) == y)[:3].sum()
    assert float(sums["accuracy"]) == hits
    losses_seen = []
    update = jax.jit(learner.update)  # as the engine runs it: one compile, not 30 eager scans
    for _ in range(30):
        state, metrics = update(state, {"inputs": x, "labels": y}, jax.random.PRNGKey(1))
        losses_seen.append(float(metrics["loss"]))
    assert losses_seen[-1] < 0.8 * losses_seen[0]  # it learns four sequences


def _translation(pad_id=0):
    model = registry.get_model("seq2seq", units=8, embed_dim=4, num_layers=1)
    return model, TranslationLearner(model=model, loss=CE, optimizer=optax.adam(1e-2))


def test_translation_loss_is_teacher_forced_and_masks_padding():
    model, learner = _translation()
    source = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], np.int32)
    labels = np.array([[1, 10, 11, 2], [1, 12, 2, 0]], np.int32)  # the second ends early
    state = learner.init(jax.random.PRNGKey(0), {"inputs": source})
    logits = jax.jit(model.apply)({"params": state.params}, source, labels[:, :-1])
    per_token = _ce(logits, labels[:, 1:])
    real = labels[:, 1:] != 0
    mean = (per_token * real).sum() / real.sum()
    state, metrics = jax.jit(learner.update)(state, {"inputs": source, "labels": labels}, None)
    np.testing.assert_allclose(float(metrics["loss"]), mean, rtol=1e-5)
    assert abs(mean - per_token.mean()) > 1e-3  # the mask matters here


def test_translation_evaluation_counts_exact_greedy_sequences():
    model, learner = _translation()
    source = np.array([[5, 6, 7, 0], [8, 9, 0, 0], [3, 4, 5, 6]], np.int32)
    state = learner.init(jax.random.PRNGKey(0), {"inputs": source})
    greedy = jax.jit(lambda p, s: model.apply(p, s, 3, method="greedy"))
    tokens, _ = greedy({"params": state.params}, source)
    tokens = np.asarray(tokens)
    labels = np.concatenate([np.ones((3, 1), np.int32), tokens], 1)
    labels[1, 2] = (labels[1, 2] + 1) % 40  # one wrong character in the second
    weight = np.array([1, 1, 0], np.float32)  # the third is padding
    sums = learner.evaluate(state, {"inputs": source, "labels": labels, "weight": weight})
    assert float(sums["count"]) == 2 and float(sums["exact_match"]) == 1


def test_transformer_greedy_equals_step_by_step_argmax():
    model = registry.get_model("transformer", d_model=8, num_heads=2, d_ff=16, num_layers=1)
    source = np.array([[5, 6, 7, 0], [8, 9, 10, 11]], np.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), source, np.ones((2, 1), np.int32))
    tokens, weights = jax.jit(lambda p, s: model.apply(p, s, 5, method="greedy"))(params, source)
    # An independent loop: the whole prefix through the model each step, padded to one
    # length so that one compile serves every step (the decoder is causal: position t
    # reads positions <= t only, tested in test_transformer).
    apply = jax.jit(model.apply)
    prefix = np.zeros((2, 6), np.int32)
    prefix[:, 0] = 1  # BOS
    for t in range(5):
        logits = apply(params, source, prefix)
        prefix[:, t + 1] = np.argmax(logits[:, t], -1)
    np.testing.assert_array_equal(tokens, prefix[:, 1:])
    assert weights.shape == (2, 5, 4) and float(jnp.max(weights[0, :, 3])) == 0.0  # PAD
    np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, rtol=1e-5)


def test_language_models_are_causal_and_counted_exactly():
    ids = np.random.default_rng(1).integers(0, 97, (1, 12)).astype(np.int32)
    changed = ids.copy()
    changed[0, 7:] = (changed[0, 7:] + 5) % 97
    for name in ("char_rnn", "transformer_lm"):
        model = registry.get_model(name, **registry.get_card(name).test_overrides)
        params = jax.jit(model.init)(jax.random.PRNGKey(0), ids)
        apply = jax.jit(model.apply)
        a, b = apply(params, ids), apply(params, changed)
        np.testing.assert_allclose(a[0, :7], b[0, :7], atol=1e-6)  # the past only
        assert not np.allclose(a[0, 7:], b[0, 7:])
    # embed 97×64; LSTM 4·256·(64 + 256) + 4·256; readout 256·97 + 97
    assert registry.count_params("char_rnn") == 97 * 64 + 4 * 256 * 320 + 1024 + 257 * 97
    # embed 97×128; per layer: attention 4·(128² + 128), FFN 128·384·2 + 384 + 128, 2 LayerNorms
    layer = 4 * (128 * 128 + 128) + 2 * 128 * 384 + 384 + 128 + 4 * 128
    assert registry.count_params("transformer_lm") == 97 * 128 + 2 * layer + 129 * 97


@pytest.mark.parametrize("model", ["char_rnn", "transformer_lm", "seq2seq", "transformer"])
def test_fit_trains_every_sequence_card(model):
    card = registry.get_card(model)
    cfg = RunConfig(model=model, epochs=2, batch_size=16, train_limit=64, test_limit=32,
                    model_overrides=card.test_overrides)  # fmt: skip
    summary = fit(cfg, progress=False, log=lambda line: None)
    first, last = summary["history"]
    assert summary["dataset"] == card.dataset and summary["train_step_compiles"] == 1
    assert last["train_loss"] < first["train_loss"] and np.isfinite(last["test_loss"])
    if card.learner == "translation":
        assert summary["config"]["loss_options"] == card.loss_options


def test_cli_trains_a_language_model_and_refuses_images(capsys, tmp_path):
    argv = ["train", "--model", "char_rnn", "--set", "units=8", "--set", "cell=\"gru\"",
            "--epochs", "1", "--batch-size", "16", "--train-limit", "64",
            "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "chars" and out["steps"] == 4
    assert cli.main(["evaluate", str(tmp_path / "run")]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["loss"] == pytest.approx(out["test_loss"])
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(["train", "--model", "char_rnn", "--dataset", "mnist"]))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "char_rnn reads token datasets, not 'mnist'" in err
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(["train", "--model", "lstm", "--dataset", "dates"]))
    assert exc.value.code == 2 and "reads image datasets" in capsys.readouterr().err


def test_bench_reports_tokens_per_second(capsys):
    argv = ["bench", "--model", "transformer_lm", "--batch-size", "4", "--steps", "3",
            "--set", "d_model=8", "--set", "num_heads=2", "--set", "d_ff=16"]  # fmt: skip
    assert cli.main(argv) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["tokens_per_s"] == pytest.approx(row["images_per_s"] * 128, rel=1e-2)


def test_info_tabulates_a_translation_model(capsys):
    assert cli.main(["info", "seq2seq"]) == 0
    out = capsys.readouterr().out
    assert "552,177" in out and "dates" in out and "translation" in out
