"""The zoo's registry: `ZooCard`, the chart's nodes, and the look-ups by model name.

    >>> import zoo_jax
    >>> model = zoo_jax.get_model("cnn", dropout=0.4)      # a flax.linen.Module
    >>> zoo_jax.get_card("cnn").input_shape
    (28, 28, 1)

A card says what a model is (family, node of the neural network zoo chart, reference), what it eats
(per-example input shape, classes) and how the seed trains it (learner, dataset, optimizer,
loss, epochs, batch size). Overrides passed to `get_model` become module attributes.

Each family module ends with its `CARDS`; `zoo_jax.models.FAMILIES` lists the family
modules, and this module collects their cards on first use (so a family module can import
`ZooCard` from here). A card must name a node of `CHART_NODES` (or a system of `SYSTEMS`)
and a name no other card has.

ImageNet-sized cards (the convolutional zoo) declare their reference input (e.g. 224×224×3,
1000 classes): `get_model(name)` and `count_params(name)` give that configuration. zoo_jax's
datasets are 28×28 greyscale, so those cards also carry a small-image configuration
(`small_overrides`, `small_input_shape`) and training always uses it (`training_spec`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.data import vision
from zoo_jax.errors import UnknownNameError, ZooError
from zoo_jax.files import write_atomic


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
    small_input_shape: tuple[int, ...] | None = None  # the 28×28 configuration's input
    small_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    param_convention: str = "trainable parameters"
    input_kind: str = "images"  # or "tokens": int ids of a token dataset (datasets.py)
    loss_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # beta_1, ...
    # the per-example input on a dataset other than the card's (a sequence autoencoder reads
    # MNIST rows (28, 28) and FSDD spectrograms (100, 16)), by dataset name
    dataset_shapes: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)


# The 51 nodes of the neural network zoo chart (F. van Veen, "The Neural Network Zoo", Asimov Institute 2016), by family. The project is
# complete when every id has a registered, trained, tested model.
CHART_NODES: dict[str, tuple[str, ...]] = {
    "feed-forward": ("perceptron", "feed_forward", "deep_feed_forward", "rbf_network",
                     "extreme_learning_machine"),
    "recurrent": ("rnn", "jordan_network", "lstm", "peephole_lstm", "gru",
                  "multiplicative_lstm", "stacked_lstm"),
    "attention": ("attention_rnn", "seq2seq_attention", "transformer"),
    "autoencoders": ("autoencoder", "denoising_autoencoder", "sparse_autoencoder",
                     "stacked_autoencoder", "convolutional_autoencoder",
                     "stacked_denoising_autoencoder", "contractive_autoencoder",
                     "recurrent_autoencoder", "variational_autoencoder", "dcign"),
    "generative": ("gan", "dcgan", "conditional_gan"),
    "probabilistic / energy": ("markov_chain", "hopfield_network",
                               "bidirectional_associative_memory", "boltzmann_machine",
                               "restricted_boltzmann_machine", "deep_belief_network"),
    "convolutional": ("deep_convolutional_network", "deconvolutional_network", "lenet5",
                      "alexnet", "zfnet", "vgg", "googlenet", "deep_residual_network",
                      "resnext", "xception"),
    "reservoir / spiking": ("echo_state_network", "liquid_state_machine"),
    "competitive / kernel": ("kohonen_network", "support_vector_machine"),
    "memory / routing": ("neural_turing_machine", "memory_network", "capsule_network"),
}  # fmt: skip
# Systems beyond the chart ("Understanding deep learning architectures"): registered like nodes.
SYSTEMS = ("text_to_image_gan", "show_attend_tell")

SEED_003 = "Atienza, Advanced Deep Learning with Keras (Packt 2018), ch. 1"


def chart_nodes() -> list[str]:
    """The chart's node ids, in the chart's order."""
    return [node for nodes in CHART_NODES.values() for node in nodes]


@cache
def _collect() -> dict[str, ZooCard]:
    """Every family module's `CARDS`, by name; a duplicate name or a chart node outside
    `CHART_NODES` / `SYSTEMS` is a bug of the family module, raised here."""
    from zoo_jax.models import FAMILIES  # the families import ZooCard from this module

    known = set(chart_nodes()) | set(SYSTEMS)
    cards: dict[str, ZooCard] = {}
    for family in FAMILIES:
        for card in family.CARDS:
            if card.name in cards:
                raise ValueError(f"two cards are named {card.name!r} ({family.__name__})")
            if card.chart_node not in known:
                raise ValueError(f"{card.name}: {card.chart_node!r} is not a chart node")
            cards[card.name] = card
    return cards


def __getattr__(name: str) -> Any:
    if name == "MODELS":  # `zoo_jax.MODELS`: every card by name (collected on first use)
        return _collect()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_collect())


def get_card(name: str) -> ZooCard:
    """The card of model `name`; unknown names raise a `ZooError` listing close matches."""
    try:
        return _collect()[name]
    except KeyError:
        raise UnknownNameError("model", name, _collect()) from None


def get_model(name: str, **overrides: Any) -> nn.Module:
    """Build model `name` with its reference configuration, attributes replaced by `overrides`."""
    card = get_card(name)
    fields = set(_annotations(card))
    unknown = set(overrides) - fields
    if unknown:
        bad = sorted(unknown)[0]
        raise UnknownNameError(f"option of model {name!r}", bad, fields)
    return card.build(**overrides)


def training_spec(name: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], tuple, int]:
    """What training on zoo_jax's 28×28 datasets builds: (model overrides, per-example input
    shape, classes). Cards with a small-image configuration use it; `overrides` win."""
    return training_config(get_card(name), overrides)


def training_config(card: ZooCard, overrides: dict[str, Any]) -> tuple[dict[str, Any], tuple, int]:
    """`training_spec` of a card already looked up."""
    if card.small_input_shape is None:
        merged, shape = dict(overrides), card.input_shape
    else:
        merged, shape = {**card.small_overrides, **overrides}, card.small_input_shape
    return merged, tuple(shape), merged.get("num_classes", card.num_classes)


def count_params(name_or_model: str | nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """Trainable parameters of a model, computed with `jax.eval_shape` (nothing allocated).
    A registered name's count is its default configuration's, traced once per process
    (`zoo-jax list` reads them all through `count_every_card`'s cache)."""
    if isinstance(name_or_model, str):
        return _count_registered(name_or_model)  # an unknown name raises (nothing cached)
    if input_shape is None:
        raise ZooError("count_params needs input_shape for a model instance")
    return _count(name_or_model, input_shape)


def count_every_card(announce: Callable[[str], None] | None = None) -> dict[str, int]:
    """`count_params` of every card. Tracing the 50 models takes about 12 s on 2 cores, so
    `zoo-jax list` keeps the counts in the user cache (`param_counts.json`) under a digest of
    zoo_jax's source files and the jax / flax versions: any change to a model counts again.
    The cache is only a shortcut: unreadable or unwritable, it is ignored."""
    digest = hashlib.sha256(f"{jax.__version__} {flax.__version__}".encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    cache_file = vision.cache_dir() / "param_counts.json"
    try:
        saved = json.loads(cache_file.read_text())
        if saved["source"] == digest.hexdigest() and set(saved["params"]) == set(_collect()):
            return {name: int(saved["params"][name]) for name in list_models()}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if announce is not None:
        announce(
            f"counting the parameters of {len(_collect())} models (once; kept in {cache_file})"
        )
    counts = {name: count_params(name) for name in list_models()}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache_file, json.dumps({"source": digest.hexdigest(), "params": counts}))
    except OSError:
        pass
    return counts


@cache
def _count_registered(name: str) -> int:
    card = get_card(name)
    return _count(get_model(name), card.input_shape, card)


def _count(model: nn.Module, input_shape: tuple[int, ...], card: ZooCard | None = None) -> int:
    from zoo_jax import learners  # they import the training state, which imports the loop

    tokens = card is not None and card.input_kind == "tokens"
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.int32 if tokens else jnp.float32)
    # what the card's learner feeds the model (a translation model also reads a target prefix)
    args = learners.get(card.learner).model_args(x) if card is not None else (x,)
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), *args)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(variables.get("params", {})))


# The kinds of value an override may take, by its field's annotation (others: not checked).
_KINDS = {
    "bool": (bool, "true or false"),
    "int": (int, "an integer"),
    "float": (int | float, "a number"),
    "str": (str, "a string"),
}


def check_overrides(name: str, overrides: dict[str, Any]) -> None:
    """Model overrides that would build fine and then fail in training or train garbage are
    a `ZooError`: unknown names, a value of a field annotated `float`, `int`, `bool` or `str`
    that is not of that kind, a dropout rate outside [0, 1), a width multiplier <= 0, a batch
    norm momentum outside [0, 1]. What only building can tell (a negative layer size, a model
    over the device's memory) is `train.run.Run.check_build`'s."""
    get_model(name, **overrides)  # unknown names
    annotations = _annotations(get_card(name))
    for key, value in overrides.items():
        _check_size(name, key, annotations[key], value)
        types, what = _KINDS.get(annotations[key], (object, ""))
        if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
            raise ZooError(f"{name} {key} must be {what}, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if "dropout" in key and not 0 <= value < 1:
            raise ZooError(f"{name} {key} must be in [0, 1), got {value!r}")
        if key == "width" and not value > 0:
            raise ZooError(f"{name} width must be > 0, got {value!r}")
        if key == "bn_momentum" and not 0 <= value <= 1:  # running averages' decay
            raise ZooError(f"{name} bn_momentum must be in [0, 1], got {value!r}")


def _check_size(name: str, key: str, annotation: str, value: Any) -> None:
    """A size (an `int` field, or the ints of a `Sequence[int]` / `tuple[int, ...]` one) must
    be a positive integer: 0 would build and then divide by zero in an initialiser, -3 fail
    in XLA, 2.5 fail on a shape. Token ids (`*_id`), crops and epoch counts may be 0."""
    if key.endswith(("_id", "_epochs")) or key == "crop" or "int" not in annotation:
        return
    many = isinstance(value, tuple | list)
    if many and "Sequence[int]" not in annotation and "tuple[int" not in annotation:
        return
    values = value if many else (value,)
    if "None" in annotation and value is None:
        return
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        if "float" in annotation and not many:
            return  # an int-or-float field (a width multiplier): the range checks below
        what = "a list of positive integers" if many else "a positive integer"
        shown = list(value) if many else value
        raise ZooError(f"{name} {key} must be {what}, got {shown!r}")


def _annotations(card: ZooCard) -> dict[str, str]:
    """The model's attributes (what overrides may set), each with its annotation."""
    module_cls = card.build.func if hasattr(card.build, "func") else card.build
    fields = dataclasses.fields(module_cls)
    return {f.name: str(f.type) for f in fields if f.name not in ("parent", "name")}
