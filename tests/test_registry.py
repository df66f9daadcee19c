import json

import pytest

import zoo_jax
from zoo_jax import registry
from zoo_jax.errors import UnknownNameError, ZooError

# Trainable parameters of the reference configurations: Keras `model.summary()` of the seed's
# code (003: MLP 269,322, CNN 80,266, SimpleRNN 75,530) and, for the TF tutorial CNN,
# 5·5·1·32+32 + 5·5·32·64+64 + 3136·1024+1024 + 1024·10+10.
PARAMS = {"mlp": 269_322, "cnn": 80_266, "rnn": 75_530, "cnn_tf": 3_274_634}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_reference_parameter_counts(name):
    assert zoo_jax.count_params(name) == PARAMS[name]


def test_tutorial_cnn_count_from_formula():
    assert (
        PARAMS["cnn_tf"]
        == (5 * 5 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (3136 * 1024 + 1024) + 10250
    )


def test_chart_nodes_are_the_charts_51():
    nodes = registry.chart_nodes()
    assert len(nodes) == 51 and len(set(nodes)) == 51
    assert len(registry.CHART_NODES["autoencoders"]) == 10
    assert not set(registry.SYSTEMS) & set(nodes)


def test_every_card_names_a_chart_node_and_a_reference():
    for name in zoo_jax.list_models():
        card = zoo_jax.get_card(name)
        assert card.chart_node in (*registry.chart_nodes(), *registry.SYSTEMS)
        assert card.reference
    for system in registry.SYSTEMS:  # seed 002's systems beyond the chart: registered too
        assert zoo_jax.get_card(system).chart_node == system
    assert zoo_jax.get_card("seq2seq").chart_node == "seq2seq_attention"
    assert zoo_jax.get_card("attention_rnn").chart_node == "attention_rnn"


def test_every_family_module_carries_its_cards():
    from zoo_jax.models import FAMILIES

    by_module = {card.name: module.__name__ for module in FAMILIES for card in module.CARDS}
    assert sorted(by_module) == zoo_jax.list_models()
    assert by_module["resnet50"] == "zoo_jax.models.convolutional"
    assert by_module["char_rnn"] == "zoo_jax.models.recurrent"
    assert by_module["transformer"] == "zoo_jax.models.attention"


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownNameError, match=r"did you mean 'cnn'"):
        zoo_jax.get_model("cnm")


def test_unknown_override_is_an_error():
    with pytest.raises(ZooError, match=r"'dropot'.*dropout"):
        zoo_jax.get_model("mlp", dropot=0.3)


def test_overrides_reach_the_module():
    assert zoo_jax.get_model("mlp", hidden=(512, 512)).hidden == (512, 512)


@pytest.mark.xdist_group("every_card_counted")  # one worker traces the 50 models
def test_every_cards_count_is_kept_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    counts = registry.count_every_card()
    assert counts == {name: zoo_jax.count_params(name) for name in zoo_jax.list_models()}
    cache_file = tmp_path / "zoo_jax" / "param_counts.json"
    saved = json.loads(cache_file.read_text())
    assert saved["params"] == counts and len(saved["source"]) == 64
    cache_file.write_text(json.dumps({**saved, "params": {**counts, "cnn": 1}}))
    assert registry.count_every_card()["cnn"] == 1  # read back: the same source digest
    cache_file.write_text(json.dumps({"source": "0" * 64, "params": {**counts, "cnn": 1}}))
    assert registry.count_every_card()["cnn"] == 80_266  # another source: counted again
    cache_file.write_text("{not json")
    assert registry.count_every_card()["cnn"] == 80_266
    assert json.loads(cache_file.read_text())["params"] == counts  # and rewritten
