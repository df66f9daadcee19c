import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zoo_jax
from zoo_jax import losses
from zoo_jax.data import captions, vision
from zoo_jax.errors import InputError
from zoo_jax.learners import CaptionLearner, TextToImageLearner
from zoo_jax.models.systems import doubly_stochastic_penalty


def _tiny(name, **kw):
    return zoo_jax.get_model(name, **(zoo_jax.get_card(name).test_overrides | kw))


def _captions(n=3, seed=0):
    x, y, _ = captions.canvas_split("validation")
    return jnp.asarray(x[seed : seed + n]), jnp.asarray(y[seed : seed + n])


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_show_attend_tell_shapes_and_attention_sums_to_one(attention):
    model = _tiny("show_attend_tell", attention=attention)
    x, y = _captions()
    variables = model.init(jax.random.PRNGKey(0), x, y[:, :-1])
    logits = model.apply(variables, x, y[:, :-1])
    regions = (64 // 8) ** 2  # four tiny conv stages, three poolings
    assert logits.shape == (3, captions.CAPTION_LEN - 1, captions.VOCAB_SIZE)
    for rngs in (None, {"dropout": jax.random.PRNGKey(1)}):
        out = model.apply(variables, x, y[:, :-1], train=rngs is not None, rngs=rngs,
                          method="teacher_forced")  # fmt: skip
        assert out.weights.shape == (3, captions.CAPTION_LEN - 1, regions)
        np.testing.assert_allclose(out.weights.sum(-1), 1.0, rtol=1e-5)
        assert bool(jnp.all(out.entropy >= 0)) and bool(jnp.all(out.location_logp <= 0))
    if attention == "hard":  # evaluation reads one region per word (the most likely)
        out = model.apply(variables, x, y[:, :-1], method="teacher_forced")
        assert bool(jnp.all(jnp.max(out.weights, -1) == 1.0))


def test_beam_of_one_is_greedy_and_beams_are_sequences():
    model = _tiny("show_attend_tell")
    x, y = _captions(4)
    variables = model.init(jax.random.PRNGKey(3), x, y[:, :-1])
    greedy, weights = model.apply(variables, x, 12, method="greedy")
    beam1 = model.apply(variables, x, 12, 1, method="beam_search")
    after_eos = jnp.cumsum(greedy == captions.EOS, 1) - (greedy == captions.EOS) > 0
    np.testing.assert_array_equal(beam1, jnp.where(after_eos, 0, greedy))
    beam3 = model.apply(variables, x, 12, 3, method="beam_search")
    assert beam3.shape == (4, 12) and weights.shape[:2] == (4, 12)


def test_doubly_stochastic_penalty_against_a_loop():
    rng = np.random.default_rng(0)
    alpha = rng.dirichlet(np.ones(5), size=(2, 4))  # (captions, words, regions)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.float32)
    expected = [sum((1 - sum(alpha[b, t, i] * mask[b, t] for t in range(4))) ** 2
                    for i in range(5)) for b in range(2)]  # fmt: skip
    np.testing.assert_allclose(doubly_stochastic_penalty(jnp.asarray(alpha), mask), expected,
                               rtol=1e-5)  # fmt: skip


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_caption_learner_takes_a_finite_step(attention):
    model = _tiny("show_attend_tell", attention=attention)
    loss = losses.for_classifier("sparse_categorical_crossentropy")
    learner = CaptionLearner(model=model, loss=loss, optimizer=optax.adam(1e-3))
    x, y = _captions(4)
    state = learner.init(jax.random.PRNGKey(0), {"inputs": x, "labels": y})
    new, metrics = jax.jit(learner.update)(state, {"inputs": x, "labels": y}, jax.random.PRNGKey(1))
    assert bool(metrics["finite"]) and 0 <= float(metrics["token_accuracy"]) <= 1
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.params, new.params)
    assert min(jax.tree.leaves(moved)) > 0  # every parameter learns
    if attention == "hard":  # b ← 0.9 b + 0.1 mean log p(y | s̃, a), from b = 0
        words = float(jnp.sum(y[:, 1:] != captions.PAD))
        mean_log_py = -float(metrics["loss"]) * words / len(y)
        baseline = float(new.model_state["reinforce"]["baseline"])
        np.testing.assert_allclose(baseline, 0.1 * mean_log_py, rtol=1e-4)
    scores = learner.evaluate(new, {"inputs": x, "labels": y, "weight": jnp.ones(4)})
    assert float(scores["count"]) == 4 and 0 <= float(scores["exact_match"]) <= 4


def _t2i(**kw):
    model = _tiny("text_to_image_gan", **kw)
    learner = TextToImageLearner(model=model, optimizer=optax.adam(2e-4, b1=0.5))
    images, labels = vision.load("mnist", "test")
    levels = np.stack([np.arange(6) % 3, np.arange(6) // 3], 1)
    ids = captions.describe("mnist", labels[:6], levels, np.arange(6) % 4)
    batch = {"inputs": jnp.asarray(images[:6, ..., None] / 255.0, jnp.float32),
             "labels": jnp.asarray(ids)}  # fmt: skip
    return learner, learner.init(jax.random.PRNGKey(0), batch), batch


def test_text_to_image_shapes_and_embedding_checks():
    learner, state, batch = _t2i()
    model, variables = learner.model, learner.variables(state)
    h = model.apply(variables, batch["labels"], method="embed")
    assert h.shape == (6, model.text_units)
    images = model.apply(variables, model.noise(jax.random.PRNGKey(2), 6), h, method="sample")
    assert images.shape == (6, 28, 28, 1) and 0 <= float(images.min()) <= float(images.max()) <= 1
    assert model.apply(variables, batch["inputs"], h, method="discriminate").shape == (6,)
    assert "text_encoder" in state.params["discriminator"]
    assert "text_encoder" not in state.params["generator"]
    with pytest.raises(InputError, match="text embeddings"):
        model.apply(variables, batch["inputs"], batch["labels"], method="discriminate")


@pytest.mark.parametrize("matching_aware", [True, False])
def test_matching_aware_loss_against_an_independent_computation(matching_aware):
    learner, state, batch = _t2i(matching_aware=matching_aware)
    model, variables = learner.model, learner.variables(state)
    scores = learner.evaluate(state, batch | {"weight": jnp.ones(6)})
    x = 2 * batch["inputs"] - 1
    h = model.apply(variables, batch["labels"], method="embed")
    z = model.noise(jax.random.split(state.rng)[0], 6)
    fakes = model.apply(variables, z, h, method="generate")
    d = lambda images, text: np.asarray(
        model.apply(variables, images, text, method="discriminate"), np.float64
    )
    log_sigmoid = lambda v: -np.log1p(np.exp(-v))
    real, fake = d(x, h), d(fakes, h)
    wrong = d(x, np.asarray(h)[[5, 0, 1, 2, 3, 4]])  # each image with the previous one's text
    if matching_aware:  # Reed et al. Alg. 1: L_D = log s_r + (log(1 − s_w) + log(1 − s_f)) / 2
        expected = -(log_sigmoid(real) + 0.5 * (log_sigmoid(-wrong) + log_sigmoid(-fake)))
    else:
        expected = -(log_sigmoid(real) + log_sigmoid(-fake))
    np.testing.assert_allclose(float(scores["d_loss"]), expected.sum(), rtol=1e-4)
    np.testing.assert_allclose(
        float(scores["d_wrong"]), (1 / (1 + np.exp(-wrong))).sum(), rtol=1e-5
    )


@pytest.mark.parametrize("interpolate", [0.5, 0.0])
def test_text_to_image_learner_takes_a_finite_step(interpolate):
    learner, state, batch = _t2i(interpolate=interpolate)
    new, metrics = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(1))
    assert bool(metrics["finite"]) and set(learner.metrics) <= set(metrics)
    for player in ("generator", "discriminator"):
        moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                             state.params[player], new.params[player])  # fmt: skip
        assert min(jax.tree.leaves(moved)) > 0, player  # the text encoder learns with D
    images = learner.draw(new, batch["labels"], learner.model.noise(jax.random.PRNGKey(0), 6))
    assert images.shape == (6, 28, 28, 1) and bool(jnp.all(jnp.isfinite(images)))


def test_captioning_under_pmap_and_sharded_jit_equals_one_device():
    from zoo_jax.train.steps import compile_steps

    model = _tiny("show_attend_tell", dropout=0.0)  # soft attention draws nothing
    loss = losses.for_classifier("sparse_categorical_crossentropy")
    learner = CaptionLearner(model=model, loss=loss, optimizer=optax.sgd(0.5))  # no Adam: it
    # would blow gradients near zero up to ±lr
    x, y = _captions(8)  # captions of 2–4 digits: the devices hold different word counts
    batch = {"inputs": np.asarray(x), "labels": np.asarray(y)}
    start = jax.device_get(learner.init(jax.random.PRNGKey(0), batch))
    params = {}
    for parallel, devices in (("none", None), ("pmap", 4), ("sharded", 4)):
        steps = compile_steps(learner, parallel, devices)
        state = steps.put_state(start)
        for _ in range(2):
            state, _ = steps.train(state, steps.put_batch(batch))
        params[parallel] = steps.get_state(state).params
    for parallel in ("pmap", "sharded"):
        for ours, ref in zip(jax.tree.leaves(params[parallel]), jax.tree.leaves(params["none"]),
                             strict=True):  # fmt: skip
            np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=2e-5)
