"""Weights from keras.applications onto the zoo's modules.

    import keras, zoo_jax
    from zoo_jax.models.convert import from_keras

    keras_model = keras.applications.ResNet50(weights="imagenet")  # downloads once
    variables = from_keras("resnet50_keras", keras_model)
    logits = zoo_jax.get_model("resnet50_keras").apply(variables, images)  # NHWC, Keras's
    # preprocessing (keras.applications.resnet50.preprocess_input) still applies

Supported: `vgg16` / `vgg19` (keras `VGG16` / `VGG19`), `resnet50_keras` (`ResNet50`),
`preact_resnet50` / `101` / `152` (`ResNet50V2` …), `xception` (`Xception`). Build the Keras
model with `classifier_activation=None` to compare logits; with the default softmax the
converted model still returns the logits before it. Layouts need no change: both sides are
NHWC / HWIO, and Keras's `Flatten` of an NHWC map is ours; only depthwise kernels are
transposed (Keras `(k, k, in, 1)`, ours `(k, k, 1, in)`).
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from zoo_jax import registry
from zoo_jax.errors import InputError, UnknownNameError
from zoo_jax.models.convolutional import RESNET_DEPTHS


def _layers(keras_model) -> dict[str, Any]:
    return {layer.name: layer for layer in keras_model.layers}


def _weights(layer) -> list[np.ndarray]:
    return [np.asarray(w) for w in layer.get_weights()]


def _bn(layer) -> tuple[dict, dict]:
    gamma, beta, mean, var = _weights(layer)
    return {"scale": gamma, "bias": beta}, {"mean": mean, "var": var}


def _dense_or_conv(layer) -> dict:
    kernel, *bias = _weights(layer)
    return {"kernel": kernel, **({"bias": bias[0]} if bias else {})}


def _unnamed(keras_model, kind: str) -> list:
    """Layers Keras named automatically (`conv2d`, `conv2d_1`, …), in creation order."""
    prefix = {"Conv2D": "conv2d", "BatchNormalization": "batch_normalization"}[kind]
    found = [
        layer
        for layer in keras_model.layers
        if type(layer).__name__ == kind and re.fullmatch(rf"{prefix}(_\d+)?", layer.name)
    ]
    return sorted(
        found, key=lambda layer: int(layer.name.rsplit("_", 1)[-1]) if layer.name != prefix else 0
    )


def _vgg(keras_model, depth: int):
    by_name = _layers(keras_model)
    convs = sorted(
        (n for n in by_name if re.fullmatch(r"block\d_conv\d", n)),
        key=lambda n: tuple(map(int, re.findall(r"\d+", n))),
    )
    params = {f"Conv2D_{i}": _dense_or_conv(by_name[n]) for i, n in enumerate(convs)}
    head = ("fc1", "fc2", "predictions")
    params["Classifier_0"] = {f"Dense_{i}": _dense_or_conv(by_name[n]) for i, n in enumerate(head)}
    return {"params": params}


def _resnet50_v1(keras_model):
    by_name = _layers(keras_model)
    params, stats = {}, {}

    def unit(prefix: str) -> tuple[dict, dict]:
        scale_bias, moments = _bn(by_name[f"{prefix}_bn"])
        return (
            {"Conv2D_0": _dense_or_conv(by_name[f"{prefix}_conv"]), "BatchNorm_0": scale_bias},
            {"BatchNorm_0": moments},
        )

    params["_KerasConvBN_0"], stats["_KerasConvBN_0"] = unit("conv1")
    block = 0
    for stage, count in zip(range(2, 6), (3, 4, 6, 3), strict=True):
        for i in range(1, count + 1):
            parts = (0, 1, 2, 3) if i == 1 else (1, 2, 3)
            p, s = {}, {}
            for j, part in enumerate(parts):
                p[f"_KerasConvBN_{j}"], s[f"_KerasConvBN_{j}"] = unit(
                    f"conv{stage}_block{i}_{part}"
                )
            params[f"ResidualBlock_{block}"], stats[f"ResidualBlock_{block}"] = p, s
            block += 1
    params["Dense_0"] = _dense_or_conv(by_name["predictions"])
    return {"params": params, "batch_stats": stats}


def _resnet_v2(keras_model, depth: int):
    """ResNetV2 (pre-activation): names conv{stage}_block{i}_{preact_bn, 0_conv, 1_conv,
    1_bn, 2_conv, 2_bn, 3_conv}, `conv1_conv`, `post_bn`, `predictions`."""
    by_name = _layers(keras_model)
    _, counts = RESNET_DEPTHS[depth]
    params = {"Conv2D_0": _dense_or_conv(by_name["conv1_conv"])}
    stats = {}
    block = 0
    for stage, count in zip(range(2, 6), counts, strict=True):
        for i in range(1, count + 1):
            name = f"conv{stage}_block{i}"
            p, s = {}, {}
            bns = ["preact_bn", "1_bn", "2_bn"]
            convs = (["0_conv"] if i == 1 else []) + ["1_conv", "2_conv", "3_conv"]
            for j, bn in enumerate(bns):
                p[f"BatchNorm_{j}"], s[f"BatchNorm_{j}"] = _bn(by_name[f"{name}_{bn}"])
            for j, conv in enumerate(convs):
                p[f"Conv2D_{j}"] = _dense_or_conv(by_name[f"{name}_{conv}"])
            params[f"PreActBlock_{block}"], stats[f"PreActBlock_{block}"] = p, s
            block += 1
    params["BatchNorm_0"], stats["BatchNorm_0"] = _bn(by_name["post_bn"])
    params["Dense_0"] = _dense_or_conv(by_name["predictions"])
    return {"params": params, "batch_stats": stats}


def _xception(keras_model):
    by_name = _layers(keras_model)
    residual_convs = iter(_unnamed(keras_model, "Conv2D"))
    residual_bns = iter(_unnamed(keras_model, "BatchNormalization"))
    # Our modules in creation order, each with the Keras layer it takes.
    sequence = [("conv", "block1_conv1"), ("bn", "block1_conv1_bn"),
                ("conv", "block1_conv2"), ("bn", "block1_conv2_bn")]  # fmt: skip
    for block in (2, 3, 4):
        sequence += [("conv", next(residual_convs)), ("bn", next(residual_bns))]
        for k in (1, 2):
            sequence += [("sep", f"block{block}_sepconv{k}"), ("bn", f"block{block}_sepconv{k}_bn")]
    for block in range(5, 13):
        for k in (1, 2, 3):
            sequence += [("sep", f"block{block}_sepconv{k}"), ("bn", f"block{block}_sepconv{k}_bn")]
    sequence += [("conv", next(residual_convs)), ("bn", next(residual_bns))]
    for block in (13, 14):
        for k in (1, 2):
            sequence += [("sep", f"block{block}_sepconv{k}"), ("bn", f"block{block}_sepconv{k}_bn")]
    params, stats = {}, {}
    counters = {"conv": 0, "bn": 0, "sep": 0}
    names = {"conv": "Conv2D", "bn": "BatchNorm", "sep": "SeparableConv2D"}
    for kind, source in sequence:
        layer = by_name[source] if isinstance(source, str) else source
        ours = f"{names[kind]}_{counters[kind]}"
        counters[kind] += 1
        if kind == "bn":
            params[ours], stats[ours] = _bn(layer)
        elif kind == "sep":
            depthwise, pointwise = _weights(layer)
            params[ours] = {"depthwise": depthwise.transpose(0, 1, 3, 2), "pointwise": pointwise}
        else:
            params[ours] = _dense_or_conv(layer)
    params["Dense_0"] = _dense_or_conv(by_name["predictions"])
    return {"params": params, "batch_stats": stats}


CONVERTERS = {
    "vgg16": lambda m: _vgg(m, 16),
    "vgg19": lambda m: _vgg(m, 19),
    "resnet50_keras": _resnet50_v1,
    "preact_resnet50": lambda m: _resnet_v2(m, 50),
    "preact_resnet101": lambda m: _resnet_v2(m, 101),
    "preact_resnet152": lambda m: _resnet_v2(m, 152),
    "xception": _xception,
}


def from_keras(name: str, keras_model, num_classes: int | None = None) -> dict[str, Any]:
    """The Flax variables of zoo model `name` holding `keras_model`'s weights.

    Checks every array against the shapes our module expects (`jax.eval_shape`, nothing
    allocated) and raises an `InputError` naming the first mismatch, e.g. a Keras model
    built for another input size or number of classes.
    """
    if name not in CONVERTERS:
        raise UnknownNameError("Keras-convertible model", name, CONVERTERS)
    try:
        variables = CONVERTERS[name](keras_model)
    except (KeyError, StopIteration, ValueError) as err:
        raise InputError(
            f"{keras_model.name!r} is not the Keras model for {name!r}: {err}"
        ) from None
    classes = num_classes or int(keras_model.output_shape[-1])
    card = registry.get_card(name)
    model = registry.get_model(name, num_classes=classes)
    x = jax.ShapeDtypeStruct((1, *card.input_shape), jnp.float32)
    expected = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    got_paths = {
        jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(variables)
    }
    for path, leaf in jax.tree_util.tree_leaves_with_path(expected):
        key = jax.tree_util.keystr(path)
        if got_paths.get(key) != leaf.shape:
            raise InputError(
                f"{name}: {key} expects shape {leaf.shape}, the Keras model gives {got_paths.get(key)}"
            )
    if len(got_paths) != len(jax.tree.leaves(expected)):
        raise InputError(
            f"{name}: the Keras model has {len(got_paths)} arrays, ours {len(jax.tree.leaves(expected))}"
        )
    return jax.tree.map(jnp.asarray, variables)
