"""The zoo's registry: one `ZooCard` per model name, in one explicit dict.

    >>> import zoo_jax
    >>> model = zoo_jax.get_model("cnn", dropout=0.4)      # a flax.linen.Module
    >>> zoo_jax.get_card("cnn").input_shape
    (28, 28, 1)

A card says what a model is (family, chart node of DESIGN §9, reference), what it eats
(per-example input shape, classes) and how the seed trains it (learner, dataset, optimizer,
loss, epochs, batch size). Overrides passed to `get_model` become module attributes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.errors import UnknownNameError, ZooError
from zoo_jax.models import convolutional, feedforward, recurrent


@dataclasses.dataclass(frozen=True)
class ZooCard:
    """Everything the engine and the CLI need to know about one registered model."""

    name: str
    family: str
    chart_node: str
    reference: str
    build: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    input_layout: str
    num_classes: int = 10
    learner: str = "gradient"
    dataset: str = "mnist"
    optimizer: str = "adam"
    learning_rate: float | None = None  # None: the optimizer's own default
    loss: str = "sparse_categorical_crossentropy"
    epochs: int = 10
    batch_size: int = 128
    description: str = ""
    test_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


_SEED_003 = "Atienza, Advanced Deep Learning with Keras (2018), ch. 1 (seed 003)"

MODELS: dict[str, ZooCard] = {
    card.name: card
    for card in [
        ZooCard(
            name="mlp",
            family="feedforward",
            chart_node="deep_feed_forward",
            reference=f"Rumelhart et al. 1986, doi:10.1038/323533a0; {_SEED_003}",
            build=feedforward.SeedMLP,
            input_shape=(784,),
            input_layout="N,F (flattened 28x28 image)",
            epochs=20,
            description="784-256-256-10 MLP, ReLU, dropout 0.45",
            test_overrides={"hidden": (16,), "dropout": 0.0},
        ),
        ZooCard(
            name="cnn",
            family="convolutional",
            chart_node="deep_convolutional_network",
            reference=f"LeCun et al. 1998, doi:10.1109/5.726791; {_SEED_003}",
            build=convolutional.SeedCNN,
            input_shape=(28, 28, 1),
            input_layout="NHWC",
            epochs=10,
            description="three 3x3/64 convolutions, two 2x2 max-pools, dropout 0.2, dense 10",
            test_overrides={"features": (4, 4, 4), "dropout": 0.0},
        ),
        ZooCard(
            name="rnn",
            family="recurrent",
            chart_node="rnn",
            reference=f"Elman 1990, doi:10.1207/s15516709cog1402_1; {_SEED_003}",
            build=recurrent.SeedRNN,
            input_shape=(28, 28),
            input_layout="N,T,F (28 rows of 28 pixels)",
            optimizer="sgd",
            epochs=20,
            description="SimpleRNN(256, dropout 0.2) over the 28 image rows, dense 10",
            test_overrides={"units": 8, "dropout": 0.0},
        ),
        ZooCard(
            name="cnn_tf",
            family="convolutional",
            chart_node="deep_convolutional_network",
            reference=(
                "TensorFlow 'Deep MNIST for experts' tutorial (2015); "
                "Getting started with neural networks (seed 004)"
            ),
            build=convolutional.TutorialCNN,
            input_shape=(28, 28, 1),
            input_layout="NHWC",
            learning_rate=1e-4,
            epochs=17,  # 17 x 1,200 = 20,400 steps of 50 (the tutorial: 20,000 steps)
            batch_size=50,
            description="5x5/32 and 5x5/64 SAME convolutions, 2x2 pools, FC 1024, dropout 0.5",
            test_overrides={"features": (4, 4), "hidden": (8,), "dropout": 0.0},
        ),
    ]
}


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def get_card(name: str) -> ZooCard:
    """The card of model `name`; unknown names raise a `ZooError` listing close matches."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownNameError("model", name, MODELS) from None


def get_model(name: str, **overrides: Any) -> nn.Module:
    """Build model `name` with its reference configuration, attributes replaced by `overrides`."""
    card = get_card(name)
    module_cls = card.build.func if hasattr(card.build, "func") else card.build
    fields = {f.name for f in dataclasses.fields(module_cls)} - {"parent", "name"}
    unknown = set(overrides) - fields
    if unknown:
        bad = sorted(unknown)[0]
        raise UnknownNameError(f"option of model {name!r}", bad, fields)
    return card.build(**overrides)


def count_params(name_or_model: str | nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """Trainable parameters of a model, computed with `jax.eval_shape` (nothing allocated)."""
    if isinstance(name_or_model, str):
        card = get_card(name_or_model)
        model, input_shape = get_model(name_or_model), card.input_shape
    else:
        model = name_or_model
    if input_shape is None:
        raise ZooError("count_params needs input_shape for a model instance")
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(variables.get("params", {})))
