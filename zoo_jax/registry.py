"""The zoo's registry: one `ZooCard` per model name, in one explicit dict.

    >>> import zoo_jax
    >>> model = zoo_jax.get_model("cnn", dropout=0.4)      # a flax.linen.Module
    >>> zoo_jax.get_card("cnn").input_shape
    (28, 28, 1)

A card says what a model is (family, chart node of DESIGN §9, reference), what it eats
(per-example input shape, classes) and how the seed trains it (learner, dataset, optimizer,
loss, epochs, batch size). Overrides passed to `get_model` become module attributes.

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
from functools import cache, partial
from pathlib import Path
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.data import text, vision
from zoo_jax.errors import UnknownNameError, ZooError
from zoo_jax.files import write_atomic
from zoo_jax.models import attention, convolutional, feedforward, recurrent


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


_SMALL = {"small": True, "num_classes": 10}
_TINY = {**_SMALL, "width": 1 / 16}


def _conv(name, node, build, reference, description, input_shape=(224, 224, 3), **kw) -> ZooCard:
    """A card of the convolutional zoo: ImageNet reference input, 28×28 training config."""
    small_overrides = kw.pop("small_overrides", _SMALL)
    return ZooCard(
        name=name,
        family="convolutional",
        chart_node=node,
        reference=reference,
        build=build,
        input_shape=input_shape,
        input_layout="NHWC",
        num_classes=kw.pop("num_classes", 1000),
        epochs=kw.pop("epochs", 10),
        description=description,
        small_input_shape=kw.pop("small_input_shape", (28, 28, 1)),
        small_overrides=small_overrides,
        test_overrides=kw.pop("test_overrides", {**small_overrides, "width": 1 / 16}),
        **kw,
    )


_TV = "torchvision.models"
_KA = "keras.applications"
_RESNET = "He et al. 2016, arXiv:1512.03385"
_VGG = "Simonyan & Zisserman 2015, arXiv:1409.1556"
_GOOGLENET = "Szegedy et al. 2015, arXiv:1409.4842"
_ALEXNET = "Krizhevsky, Sutskever & Hinton 2012, NeurIPS"
_CLASSIFIER_SMALL = {**_SMALL, "hidden": 512}
_CONV_ZOO = [
    ZooCard(
        name="dcn",
        family="convolutional",
        chart_node="deep_convolutional_network",
        reference="LeCun et al. 1998, doi:10.1109/5.726791 (the chart's DCN, configurable)",
        build=partial(
            convolutional.DeepConvNet, features=(32, 64), pool_after=(True, True),
            padding="SAME", hidden=(128,), dropout=0.3,
        ),
        input_shape=(28, 28, 1),
        input_layout="NHWC",
        description="conv-ReLU-pool x2 (32, 64; 3x3 SAME), dense 128, dropout 0.3, dense 10",
        test_overrides={"features": (4, 4), "hidden": (8,)},
    ),
    ZooCard(
        name="deconv_net",
        family="convolutional",
        chart_node="deconvolutional_network",
        reference="Dosovitskiy et al. 2015, arXiv:1411.5928 (the seed 000 Keras DN)",
        build=convolutional.DeconvNet,
        input_shape=(56,),
        input_layout="code vector (one-hot class + transformation inputs)",
        learner="generator",
        loss="binary_crossentropy",
        epochs=3,  # a class-conditional generator converges fast; the CPU budget
        description="dense 7500-7500, 25x15x20, 3 transposed convs 20 (stride 2), conv 1",
        small_input_shape=(28, 28, 1),  # the images the generator learns to draw
        small_overrides={
            "dense": (256, 7 * 7 * 32), "base_shape": (7, 7, 32), "filters": (32, 16),
            "crop": ((0, 0), (0, 0)), "output_activation": "linear",
        },
        test_overrides={
            "dense": (8, 7 * 7 * 2), "base_shape": (7, 7, 2), "filters": (2, 2),
            "crop": ((0, 0), (0, 0)), "output_activation": "linear",
        },
    ),
    ZooCard(
        name="lenet5",
        family="convolutional",
        chart_node="lenet5",
        reference="LeCun et al. 1998, doi:10.1109/5.726791 (Table I, Appendix A)",
        build=convolutional.LeNet5,
        input_shape=(32, 32, 1),
        input_layout="NHWC (MNIST padded to 32x32, as in the paper)",
        learning_rate=1e-3,
        epochs=20,
        description="C1-S2-C3 (connection table)-S4-C5-F6, scaled tanh, RBF output",
    ),
    ZooCard(
        name="lenet5_keras",
        family="convolutional",
        chart_node="lenet5",
        reference="LeCun et al. 1998; the Keras LeNet-5 of seed 000",
        build=convolutional.KerasLeNet,
        input_shape=(32, 32, 1),
        input_layout="NHWC (MNIST padded to 32x32)",
        description="3x3 conv 6 and 16 with ReLU, 2x2 average pools, dense 120-84-10",
    ),
    _conv("alexnet", "alexnet", convolutional.AlexNet, f"{_ALEXNET}; {_TV}.alexnet",
          "torchvision's single-tower AlexNet", small_overrides=_CLASSIFIER_SMALL),
    _conv("alexnet_caffe", "alexnet", convolutional.AlexNetCaffe,
          f"{_ALEXNET}; Caffe bvlc_alexnet (two towers as groups=2, LRN)",
          "the paper's two-tower AlexNet: grouped conv2/4/5, LRN", input_shape=(227, 227, 3),
          small_overrides=_CLASSIFIER_SMALL),
    _conv("zfnet", "zfnet", convolutional.ZFNet, "Zeiler & Fergus 2014, arXiv:1311.2901",
          "7x7/2 first layer, 5x5/2 second, LRN as contrast normalisation",
          small_overrides=_CLASSIFIER_SMALL),
    *[
        _conv(f"vgg{d}{bn}", "vgg", partial(convolutional.VGG[d], batch_norm=bool(bn)),
              f"{_VGG}; {_TV}.vgg{d}{bn}", f"VGG-{d}{' with batch norm' if bn else ''}",
              small_input_shape=(32, 32, 1), small_overrides=_CLASSIFIER_SMALL)
        for d in (11, 13, 16, 19)
        for bn in ("", "_bn")
    ],
    _conv("googlenet", "googlenet", convolutional.GoogLeNet, f"{_GOOGLENET}; {_TV}.googlenet",
          "Inception v1, torchvision layout (BN, 3x3 in the 5x5 branch), 2 auxiliary heads",
          small_overrides={**_SMALL, "aux_logits": False},
          param_convention="trainable parameters with the auxiliary heads (6,624,904 without)"),
    _conv("googlenet_paper", "googlenet", partial(convolutional.GoogLeNet, paper=True),
          _GOOGLENET, "Inception v1 as published: 5x5 branch, LRN, no BN, 2 auxiliary heads",
          small_overrides={**_SMALL, "aux_logits": False}),
    *[
        _conv(f"resnet{d}", "deep_residual_network", partial(convolutional.ResNet, depth=d),
              f"{_RESNET}; {_TV}.resnet{d} (v1.5)", f"ResNet-{d} v1.5")
        for d in (18, 34, 50, 101, 152)
    ],
    _conv("resnet50_keras", "deep_residual_network",
          partial(convolutional.ResNet, depth=50, version="1"), f"{_RESNET}; {_KA}.ResNet50",
          "ResNet-50 v1 (stride on the first 1x1, conv biases)"),
    *[
        _conv(f"preact_resnet{d}", "deep_residual_network",
              partial(convolutional.PreActResNet, depth=d),
              "He et al. 2016b, arXiv:1603.05027"
              + (f"; {_KA}.ResNet{d}V2" if d >= 50 else " (Keras V2 layout, basic blocks)"),
              f"pre-activation ResNet-{d}")
        for d in (18, 34, 50, 101, 152)
    ],
    _conv("resnext50_32x4d", "resnext",
          partial(convolutional.ResNet, depth=50, groups=32, base_width=4),
          f"Xie et al. 2017, arXiv:1611.05431; {_TV}.resnext50_32x4d", "ResNeXt-50 32x4d",
          test_overrides={**_SMALL, "width": 0.5}),  # 32 groups need width >= 1/2
    _conv("resnext101_32x8d", "resnext",
          partial(convolutional.ResNet, depth=101, groups=32, base_width=8),
          f"Xie et al. 2017, arXiv:1611.05431; {_TV}.resnext101_32x8d", "ResNeXt-101 32x8d",
          test_overrides={**_SMALL, "width": 0.25}),
    _conv("xception", "xception", convolutional.Xception,
          f"Chollet 2017, arXiv:1610.02357; {_KA}.Xception",
          "entry / middle (8 blocks) / exit flows of depthwise-separable convolutions",
          input_shape=(299, 299, 3),
          param_convention="trainable parameters (Keras's total adds 54,528 BN statistics)"),
]  # fmt: skip

_SEED_003 = "Atienza, Advanced Deep Learning with Keras (2018), ch. 1 (seed 003)"


def _recurrent(name, node, cell, reference, description, **kw) -> ZooCard:
    """A sequential-MNIST classifier of the recurrent zoo: the seed's SimpleRNN(256,
    dropout 0.2) + Dense 10 with another cell (seed 003 swaps in LSTM and GRU so)."""
    return ZooCard(
        name=name,
        family="recurrent",
        chart_node=node,
        reference=reference,
        build=partial(recurrent.RecurrentClassifier, cell=cell, **kw.pop("model", {})),
        input_shape=(28, 28),
        input_layout="N,T,F (28 rows of 28 pixels)",
        description=description,
        test_overrides={"units": 8, "dropout": 0.0, **kw.pop("test_overrides", {})},
        **kw,
    )


_HOCHREITER = "Hochreiter & Schmidhuber 1997, doi:10.1162/neco.1997.9.8.1735"
_RECURRENT_ZOO = [
    _recurrent("jordan", "jordan_network", "jordan", "Jordan 1986, ICS report 8604",
               "Jordan network: the previous output feeds the hidden layer (256)"),
    _recurrent("lstm", "lstm", "lstm", f"{_HOCHREITER}; Gers et al. 2000; {_SEED_003}",
               "LSTM(256, dropout 0.2) over the 28 image rows, dense 10 (Keras LSTM)"),
    _recurrent("peephole_lstm", "peephole_lstm", "peephole_lstm",
               "Gers & Schmidhuber 2000, doi:10.1109/IJCNN.2000.861302",
               "LSTM(256) whose gates also see the cell state (peepholes)"),
    _recurrent("gru", "gru", "gru", f"Cho et al. 2014, arXiv:1406.1078; {_SEED_003}",
               "GRU(256, dropout 0.2), Keras's reset-after form (cuDNN's)"),
    _recurrent("gru_cho", "gru", "gru", "Cho et al. 2014, arXiv:1406.1078",
               "GRU(256) with the reset gate before the recurrent product (the paper's)",
               model={"cell_options": {"reset_after": False}}),
    _recurrent("mlstm", "multiplicative_lstm", "mlstm", "Krause et al. 2016, arXiv:1609.07959",
               "multiplicative LSTM(256): input-dependent recurrent transitions"),
    _recurrent("stacked_lstm", "stacked_lstm", "lstm", f"{_HOCHREITER}; Graves et al. 2013",
               "two stacked LSTM(256) layers, the first returning its sequence",
               model={"units": (256, 256)}, test_overrides={"units": (8, 8)}),
    _recurrent("bilstm", "lstm", "lstm", "Schuster & Paliwal 1997; Graves & Schmidhuber 2005",
               "bidirectional LSTM(128 + 128), outputs concatenated", model={"units": 128,
               "bidirectional": True}),
    ZooCard(
        name="conv_lstm", family="recurrent", chart_node="lstm",
        reference="Shi et al. 2015, arXiv:1506.04214 (Keras ConvLSTM2D)",
        build=recurrent.ConvLSTMClassifier, input_shape=(4, 7, 28, 1),
        input_layout="N,T,H,W,C (an image as 4 frames of 7x28 strips)",
        epochs=5,
        description="ConvLSTM(16 filters, 3x3) over 4 frames, last state flattened, dense 10",
        test_overrides={"filters": 2},
    ),
    ZooCard(
        name="attention_rnn", family="attention", chart_node="attention_rnn",
        reference="Luong et al. 2015, arXiv:1508.04025; the attention RNN of seed 000",
        build=attention.AttentionRNNClassifier, input_shape=(28, 28),
        input_layout="N,T,F (28 rows of 28 pixels)",
        description="SimpleRNN(128) outputs, read by dot attention from the last state, dense 10",
        test_overrides={"units": 8},
    ),
    ZooCard(
        name="transformer_encoder", family="attention", chart_node="transformer",
        reference="Vaswani et al. 2017, arXiv:1706.03762 (encoder only)",
        build=partial(attention.Transformer, kind="encoder", source_features=28, d_model=64,
                      num_heads=4, num_layers=2, d_ff=128, max_len=28),
        input_shape=(28, 28), input_layout="N,T,F (28 rows of 28 pixels)",
        description="rows embedded (dense 64) + sinusoidal positions, 2 post-norm encoder "
                    "layers (4 heads, d_ff 128), mean pooling, dense 10",
        test_overrides={"d_model": 8, "num_heads": 2, "d_ff": 16},
    ),
]  # fmt: skip

_TOKENS = "N,T token ids"
_CHAR_LEN = 128  # characters per training window (truncated BPTT length)
_DATES_LEN = 32  # source characters, PAD-padded
_SEQUENCE_ZOO = [
    ZooCard(
        name="char_rnn", family="recurrent", chart_node="lstm",
        reference="Graves 2013, arXiv:1308.0850; Karpathy's char-rnn (2015)",
        build=partial(recurrent.RecurrentLM, vocab=text.CHAR_VOCAB_SIZE),
        input_shape=(_CHAR_LEN,), input_layout=_TOKENS, input_kind="tokens",
        num_classes=text.CHAR_VOCAB_SIZE, dataset="chars", learning_rate=3e-3, epochs=20,
        batch_size=32,
        description="character language model: embed 64, a recurrent layer (cell option: "
                    "lstm, elman, jordan, peephole_lstm, gru, mlstm) of 256, next-char readout",
        test_overrides={"units": 8, "embed_dim": 4},
    ),
    ZooCard(
        name="transformer_lm", family="attention", chart_node="transformer",
        reference="Vaswani et al. 2017, arXiv:1706.03762 (decoder only; Radford et al. 2018)",
        build=partial(attention.Transformer, kind="decoder", target_vocab=text.CHAR_VOCAB_SIZE,
                      d_model=128, num_heads=4, num_layers=2, d_ff=384, max_len=_CHAR_LEN,
                      pad_id=-1),
        input_shape=(_CHAR_LEN,), input_layout=_TOKENS, input_kind="tokens",
        num_classes=text.CHAR_VOCAB_SIZE, dataset="chars", learning_rate=1e-3, epochs=20,
        batch_size=32,
        description="causal Transformer decoder: d_model 128, 4 heads, 2 layers, d_ff 384 "
                    "(about the LSTM char_rnn's parameter count); no padding id",
        test_overrides={"d_model": 8, "num_heads": 2, "d_ff": 16, "num_layers": 1},
    ),
    ZooCard(
        name="seq2seq", family="attention", chart_node="attention_rnn",
        reference="Sutskever et al. 2014, arXiv:1409.3215; Luong et al. 2015, arXiv:1508.04025 "
                  "(seed 002's NMT)",
        build=partial(attention.Seq2Seq, source_vocab=text.DATE_VOCAB_SIZE,
                      target_vocab=text.DATE_VOCAB_SIZE, embed_dim=32, units=128, num_layers=2),
        input_shape=(_DATES_LEN,), input_layout=_TOKENS + " (PAD 0)", input_kind="tokens",
        num_classes=text.DATE_VOCAB_SIZE, learner="translation", dataset="dates",
        learning_rate=2e-3, epochs=5, batch_size=64,
        description="2-layer LSTM(128) encoder-decoder, input feeding, attention option: "
                    "none, dot, general, concat, local_m, local_p, hard",
        test_overrides={"units": 8, "embed_dim": 4, "num_layers": 1},
    ),
    ZooCard(
        name="transformer", family="attention", chart_node="transformer",
        reference="Vaswani et al. 2017, arXiv:1706.03762",
        build=partial(attention.Transformer, kind="encoder_decoder",
                      source_vocab=text.DATE_VOCAB_SIZE, target_vocab=text.DATE_VOCAB_SIZE,
                      d_model=64, num_heads=4, num_layers=2, d_ff=256, max_len=64),
        input_shape=(_DATES_LEN,), input_layout=_TOKENS + " (PAD 0)", input_kind="tokens",
        num_classes=text.DATE_VOCAB_SIZE, learner="translation", dataset="dates",
        loss="categorical_crossentropy", loss_options={"label_smoothing": 0.1},
        learning_rate=1e-3, epochs=5, batch_size=64,
        description="encoder-decoder: d_model 64, 4 heads, 2 + 2 layers, d_ff 256, "
                    "label smoothing 0.1",
        test_overrides={"d_model": 8, "num_heads": 2, "d_ff": 16, "num_layers": 1},
    ),
]  # fmt: skip

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
        *_CONV_ZOO,
        *_RECURRENT_ZOO,
        *_SEQUENCE_ZOO,
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
    fields = set(_annotations(card))
    unknown = set(overrides) - fields
    if unknown:
        bad = sorted(unknown)[0]
        raise UnknownNameError(f"option of model {name!r}", bad, fields)
    return card.build(**overrides)


def training_spec(name: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], tuple, int]:
    """What training on zoo_jax's 28×28 datasets builds: (model overrides, per-example input
    shape, classes). Cards with a small-image configuration use it; `overrides` win."""
    card = get_card(name)
    if card.small_input_shape is None:
        merged, shape = dict(overrides), card.input_shape
    else:
        merged, shape = {**card.small_overrides, **overrides}, card.small_input_shape
    return merged, shape, merged.get("num_classes", card.num_classes)


def count_params(name_or_model: str | nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """Trainable parameters of a model, computed with `jax.eval_shape` (nothing allocated).
    A registered name's count is its default configuration's, traced once per process
    (`zoo-jax list` reads them all through `count_every_card`'s cache)."""
    if isinstance(name_or_model, str):
        return _count_registered(name_or_model)  # an unknown name raises (nothing cached)
    if input_shape is None:
        raise ZooError("count_params needs input_shape for a model instance")
    return _count(name_or_model, input_shape)


def count_every_card() -> dict[str, int]:
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
        if saved["source"] == digest.hexdigest() and set(saved["params"]) == set(MODELS):
            return {name: int(saved["params"][name]) for name in list_models()}
    except (OSError, ValueError, KeyError, TypeError):
        pass
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
    tokens = card is not None and card.input_kind == "tokens"
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.int32 if tokens else jnp.float32)
    # a translation model also reads the target prefix; its parameters do not depend on it
    translation = card is not None and card.learner == "translation"
    extra = (jax.ShapeDtypeStruct((1, 1), jnp.int32),) if translation else ()
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, *extra)
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
    over the device's memory) is `train.loop.check_build`'s."""
    get_model(name, **overrides)  # unknown names
    annotations = _annotations(get_card(name))
    for key, value in overrides.items():
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


def _annotations(card: ZooCard) -> dict[str, str]:
    """The model's attributes (what overrides may set), each with its annotation."""
    module_cls = card.build.func if hasattr(card.build, "func") else card.build
    fields = dataclasses.fields(module_cls)
    return {f.name: str(f.type) for f in fields if f.name not in ("parent", "name")}
