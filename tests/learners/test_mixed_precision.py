"""`--dtype bfloat16` on every gradient-trained learner: the forward pass's products run in
bfloat16, the parameters, optimizer state and reported losses stay float32 (traced, not
compiled: one card per learner). The counting, sampling and closed-form rules refuse it."""

import re

import jax
import jax.numpy as jnp
import pytest

from zoo_jax import learners, registry
from zoo_jax.errors import ZooError
from zoo_jax.train.loop import RunConfig
from zoo_jax.train.run import resolve

BY_LEARNER = {}  # learner name -> its first card
for _name in registry.list_models():
    BY_LEARNER.setdefault(registry.get_card(_name).learner, _name)
MIXED = sorted(n for learner, n in BY_LEARNER.items() if learners.get(learner).mixed_precision)
FLOAT32_ONLY = sorted(set(BY_LEARNER.values()) - set(MIXED))
LOW_PRODUCT = re.compile(r"bf16\[[^\]]*\] = (dot_general|conv_general_dilated)")


def test_the_gradient_trained_learners_are_the_mixed_precision_ones():
    assert {registry.get_card(n).learner for n in MIXED} == {
        "gradient", "translation", "captioning", "capsule", "linear_start", "bits",
        "reconstruction", "dcign", "layerwise", "class_decoder", "adversarial",
        "text_to_image",
    }  # fmt: skip


def _floats(tree):
    return [str(a.dtype) for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)]


@pytest.mark.parametrize("name", MIXED)
def test_a_bfloat16_step_computes_low_and_keeps_float32_state(name):
    card = registry.get_card(name)
    cfg = RunConfig(name, model_overrides=card.test_overrides, dtype="bfloat16",
                    train_limit=64, test_limit=8)  # fmt: skip
    run = resolve(cfg)
    x, y = run.load_split("train")
    batch = {"inputs": x[:4], "labels": y[:4]}
    learner = run.learner(total_steps=10)
    assert learner.compute_dtype == "bfloat16"
    key = jax.random.PRNGKey(0)
    state = jax.eval_shape(learner.init, key, batch)
    assert set(_floats(state.params)) == {"float32"}
    assert LOW_PRODUCT.search(str(jax.make_jaxpr(learner.update)(state, batch, key))), name
    new, metrics = jax.eval_shape(learner.update, state, batch, key)
    assert set(_floats((new.params, new.opt_state, new.model_state))) == {"float32"}
    assert set(_floats(metrics)) == {"float32"}
    evaluated = jax.eval_shape(learner.evaluate, state, batch | {"weight": jnp.ones(4)})
    assert set(_floats(evaluated)) == {"float32"}


@pytest.mark.parametrize("name", FLOAT32_ONLY)
def test_counting_sampling_and_closed_form_rules_refuse_bfloat16(name):
    with pytest.raises(ZooError, match="computes in float32 only"):
        resolve(RunConfig(name, dtype="bfloat16"))
