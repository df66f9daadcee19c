"""Convolutional networks: the deep convolutional network (DCN) of the zoo chart.

Chart node: `deep_convolutional_network` — stacks of convolution → ReLU → (pooling), then a
dense head. Reference: LeCun et al., "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998, doi:10.1109/5.726791.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax import activations, lowering
from zoo_jax.errors import ZooError
from zoo_jax.models import blocks, checks
from zoo_jax.registry import SEED_003, ZooCard


class DeepConvNet(nn.Module):
    """Conv–activation–pool stacks, flatten, dense hidden layers, dropout, dense readout.

    `features[i]` filters of `kernel_size`×`kernel_size` per convolution; a 2×2 max-pool
    (stride 2) follows convolution `i` when `pool_after[i]` (computed before the activation
    where that is the same function: a non-decreasing activation). Dropout sits right before the
    readout, as in both seed networks. Initialisers default to Keras's (Glorot-uniform,
    zero bias); the TensorFlow-tutorial CNN overrides them.

    Input: `(batch, height, width, channels)` floats (NHWC).
    Output: `(batch, num_classes)` logits.
    """

    features: Sequence[int] = (64, 64, 64)
    kernel_size: int = 3
    padding: str = "VALID"
    pool_after: Sequence[bool] = (True, True, False)
    hidden: Sequence[int] = ()
    num_classes: int = 10
    dropout: float = 0.2
    activation: str = "relu"  # any element-wise name, or "prelu"
    kernel_init: nn.initializers.Initializer = nn.initializers.glorot_uniform()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if len(self.pool_after) != len(self.features):
            raise ValueError("pool_after needs one entry per convolution")
        x = checks.images(x, "DeepConvNet")
        init = {"kernel_init": self.kernel_init, "bias_init": self.bias_init}
        for width, pool in zip(self.features, self.pool_after, strict=True):
            k = (self.kernel_size, self.kernel_size)
            x = blocks.Conv2D(width, k, padding=self.padding, **init)(x)
            # Pooling first is the same function when the activation is non-decreasing,
            # and activates a quarter of the values (the seed CNN's CPU step: 6–15 % faster).
            pool_first = pool and self.activation in activations.NON_DECREASING
            if pool_first:
                x = lowering.max_pool(x, (2, 2), padding=self.padding)
            x = blocks.activation(self.activation)(x)
            if pool and not pool_first:
                x = lowering.max_pool(x, (2, 2), padding=self.padding)
        x = checks.flatten(x, "DeepConvNet")
        for width in self.hidden:
            x = blocks.activation(self.activation)(nn.Dense(width, **init)(x))
        x = blocks.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, **init)(x)


# Atienza (2018) ch. 1, seed `003_…` Fig. 1.4.2: three 3×3/64 convolutions (VALID), 2×2
# pools after the first two, dropout 0.2, dense 10 (80,266 parameters).
SeedCNN = partial(DeepConvNet, features=(64, 64, 64), pool_after=(True, True, False))

# TensorFlow "Deep MNIST for experts" tutorial, seed `004_…`: 5×5/32 and 5×5/64 SAME
# convolutions, SAME 2×2 pools, FC 1024, dropout 0.5 (keep_prob 0.5), readout; weights
# truncated-normal(σ=0.1), biases 0.1 (3,274,634 parameters).
TutorialCNN = partial(
    DeepConvNet,
    features=(32, 64),
    kernel_size=5,
    padding="SAME",
    pool_after=(True, True),
    hidden=(1024,),
    dropout=0.5,
    kernel_init=nn.initializers.truncated_normal(stddev=0.1),
    bias_init=nn.initializers.constant(0.1),
)

TinyCNN = partial(DeepConvNet, features=(4, 4), pool_after=(True, False), dropout=0.0)


# --- Deconvolutional network ---------------------------------------------------------------


class DeconvNet(nn.Module):
    """The chart's deconvolutional network (DN): a DCN run backwards, from a code to an image.

    Dense layers on the code (a class vector, optionally with extra inputs), a reshape to
    `base_shape` (height, width, channels), then `filters` transposed 3×3 convolutions of
    stride 2 (each doubles the height and width), a 3×3 convolution to `out_channels`, and
    a crop of `crop` ((top, bottom), (left, right)) pixels. The defaults are the seed's
    Keras model (`000_…`, "去卷积网络"), the chair generator of Dosovitskiy et al.,
    "Learning to generate chairs with convolutional neural networks", CVPR 2015: a
    56-dimensional code → dense 7,500 → dense 7,500 → 25×15×20 → three
    `Conv2DTranspose(20, 3, strides=2, padding="same")` → `Conv2D(1, 3)` → crop to 196×115;
    ReLU after every layer, the output too (`output_activation`). 56,696,041 parameters.

    `blocks.ConvTranspose` (Flax's `ConvTranspose(transpose_kernel=True)`, with a faster
    kernel gradient on the CPU) is the gradient of a convolution, which is what Keras's
    `Conv2DTranspose` computes; "SAME" gives `stride ×` the input size as Keras's
    "same" does. The 28×28 training configuration (`registry`: `deconv_net`'s small
    overrides) ends in logits, which the generator learner feeds to a per-pixel loss.

    Input: `(batch, code_dim)`. Output: `(batch, height, width, out_channels)`.
    """

    dense: Sequence[int] = (25 * 15 * 20, 25 * 15 * 20)
    base_shape: Sequence[int] = (25, 15, 20)
    filters: Sequence[int] = (20, 20, 20)
    out_channels: int = 1
    crop: Sequence[Sequence[int]] = ((2, 2), (2, 3))
    activation: str = "relu"
    output_activation: str = "relu"  # the seed's; "linear" for logits

    @nn.compact
    def __call__(self, code: jax.Array, *, train: bool = False) -> jax.Array:
        if code.ndim != 2:
            raise ZooError(f"DeconvNet takes (batch, code_dim) codes, got shape {code.shape}")
        act = blocks.activation(self.activation)
        if not self.dense or self.dense[-1] != math.prod(self.base_shape):
            raise ZooError(
                f"the last dense layer must have {math.prod(self.base_shape)} units "
                f"to reshape to {tuple(self.base_shape)}, got dense={self.dense}"
            )
        x = code
        for width in self.dense:
            x = act(nn.Dense(width)(x))
        x = x.reshape((x.shape[0], *self.base_shape))
        for width in self.filters:
            x = blocks.ConvTranspose(width, (3, 3), (2, 2), padding="SAME")(x)
            x = act(x)
        x = blocks.Conv2D(self.out_channels, (3, 3), padding="SAME")(x)
        x = blocks.activation(self.output_activation)(x)
        (top, bottom), (left, right) = self.crop
        return x[:, top : x.shape[1] - bottom, left : x.shape[2] - right]


# --- LeNet-5 --------------------------------------------------------------------------------

# LeCun et al. 1998, Table I: which S2 maps (rows) feed each C3 map (columns), 60 connections.
LENET_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5),
)  # fmt: skip


def _lecun_tanh(x: jax.Array) -> jax.Array:
    """LeCun et al. 1998, Appendix A: f(a) = 1.7159 tanh(2a/3)."""
    return 1.7159 * jnp.tanh(2.0 / 3.0 * x)


class Subsampling(nn.Module):
    """LeNet-5's trainable subsampling (S2, S4): per map, the sum of each 2×2 block times a
    learned coefficient plus a learned bias, through the squashing function (2 parameters
    per map)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        maps = x.shape[-1]
        coefficient = self.param("coefficient", nn.initializers.constant(0.25), (maps,))
        bias = self.param("bias", nn.initializers.zeros_init(), (maps,))
        return _lecun_tanh(4 * blocks.pool(x, "avg", 2, 2) * coefficient + bias)


class LeNet5(nn.Module):
    """LeNet-5 as in LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to
    document recognition", Proc. IEEE 86(11), 1998, doi:10.1109/5.726791.

    32×32 input (MNIST is padded by 2, as in the paper), C1 (6@5×5), S2 (trainable
    subsampling), C3 (16@5×5 with the partial connection table `LENET_C3_TABLE`), S4, C5
    (120@5×5), F6 (84), squashing f(a) = 1.7159 tanh(2a/3): 60,000 trainable parameters.
    `output="rbf"`: the paper's Euclidean RBF units with fixed codes, logits = −‖F6 − code‖²;
    the paper draws each code as a 7×12 bitmap of the character, which it does not print,
    so ours are fixed random ±1 vectors (seed 0). `output="softmax"` puts a trainable Dense
    readout there instead (+850 parameters), the usual modern reading.
    Inputs in [0, 1] (0 = background) are mapped linearly onto the paper's [−0.1, 1.175]
    (Section II-A: "mean input roughly 0, variance roughly 1");
    `paper_input_scale=False` feeds them as they come.
    """

    num_classes: int = 10
    output: str = "rbf"
    paper_input_scale: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = checks.images(x, "LeNet5")
        conv = lambda n, **kw: blocks.Conv2D(n, (5, 5), padding="VALID", **kw)
        if self.paper_input_scale:
            x = x * 1.275 - 0.1
        x = Subsampling()(_lecun_tanh(conv(6)(x)))  # C1, S2
        rows = [r for table in LENET_C3_TABLE for r in table]
        cols = [c for c, table in enumerate(LENET_C3_TABLE) for _ in table]
        weights = self.param("C3_kernel", nn.initializers.lecun_normal(), (5, 5, len(rows)))
        kernel = jnp.zeros((5, 5, 6, 16), x.dtype).at[:, :, rows, cols].set(weights)
        x = lowering.conv2d(x, kernel, padding="VALID")
        x = x + self.param("C3_bias", nn.initializers.zeros_init(), (16,))
        x = Subsampling()(_lecun_tanh(x))  # C3, S4
        x = checks.flatten(_lecun_tanh(conv(120)(x)), "LeNet5")  # C5
        x = _lecun_tanh(nn.Dense(84)(x))  # F6
        if self.output == "softmax":
            return nn.Dense(self.num_classes)(x)
        if self.output != "rbf":
            raise ZooError(f"LeNet5 output must be 'rbf' or 'softmax', got {self.output!r}")
        codes = jax.random.rademacher(jax.random.PRNGKey(0), (self.num_classes, 84), x.dtype)
        return -jnp.sum(jnp.square(x[:, None, :] - codes), axis=-1)


class KerasLeNet(nn.Module):
    """The LeNet-5 of seed `000_…` (Keras): 3×3 convolutions with ReLU, 2×2 average pools,
    Dense 120-84-10, on 32×32×1 input (81,194 parameters)."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = checks.images(x, "KerasLeNet")
        init = {"kernel_init": nn.initializers.glorot_uniform()}
        for width in (6, 16):
            x = nn.relu(blocks.Conv2D(width, (3, 3), padding="VALID", **init)(x))
            x = blocks.pool(x, "avg", 2, 2)
        x = checks.flatten(x, "KerasLeNet")
        for width in (120, 84):
            x = nn.relu(nn.Dense(width, **init)(x))
        return nn.Dense(self.num_classes, **init)(x)


# --- AlexNet, ZFNet, VGG: convolution stacks with a dense classifier ------------------------


class Classifier(nn.Module):
    """The AlexNet / VGG head: (dropout → dense → ReLU) × 2 → dense, on the flattened map."""

    hidden: int = 4096
    num_classes: int = 1000
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = checks.flatten(x, "this AlexNet / ZFNet / VGG")
        for _ in range(2):
            x = blocks.Dropout(self.dropout, deterministic=not train)(x)
            x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.num_classes)(x)


# One convolution: (features, kernel, stride, padding, groups); "M" / "M3" / "N": max-pool
# 2×2/2, overlapping max-pool 3×3/2, local response normalisation.
ALEXNET = ((64, 11, 4, 2, 1), "M3", (192, 5, 1, 2, 1), "M3", (384, 3, 1, 1, 1),
           (256, 3, 1, 1, 1), (256, 3, 1, 1, 1), "M3")  # fmt: skip
ALEXNET_CAFFE = ((96, 11, 4, 0, 1), "N", "M3", (256, 5, 1, 2, 2), "N", "M3", (384, 3, 1, 1, 1),
                 (384, 3, 1, 1, 2), (256, 3, 1, 1, 2), "M3")  # fmt: skip
ZFNET = ((96, 7, 2, 1, 1), "M3p", "N", (256, 5, 2, 0, 1), "M3p", "N", (384, 3, 1, 1, 1),
         (384, 3, 1, 1, 1), (256, 3, 1, 1, 1), "M3")  # fmt: skip
# Small-image stems (28×28): the first convolution becomes 3×3 / stride 1.
SMALL_FIRST = {"alexnet": (64, 3, 1, 1, 1), "caffe": (96, 3, 1, 1, 1), "zfnet": (96, 3, 1, 1, 1)}


def _vgg(config: str) -> tuple:
    layer_counts = {"A": (1, 1, 2, 2, 2), "B": (2, 2, 2, 2, 2), "D": (2, 2, 3, 3, 3),
                    "E": (2, 2, 4, 4, 4)}[config]  # fmt: skip
    out = []
    for width, count in zip((64, 128, 256, 512, 512), layer_counts, strict=True):
        out += [(width, 3, 1, 1, 1)] * count + ["M"]
    return tuple(out)


class ConvStack(nn.Module):
    """A plain convolution stack (ReLU after every convolution) and the AlexNet / VGG
    classifier: AlexNet, its Caffe two-tower form, ZFNet and VGG share it.

    `layers_spec` lists convolutions `(features, kernel, stride, padding, groups)` and
    "M" (2×2 max-pool), "M3" (3×3/2 max-pool), "M3p" (3×3/2, padded by 1), "N" (LRN).
    `batch_norm` adds BatchNorm after each convolution (torchvision's VGG-BN).
    `pool_to`: the map is average-pooled to this size before the classifier (torchvision's
    adaptive pool; at the ImageNet input it is already that size). `small=True` is the
    28×28 configuration: first convolution 3×3 / stride 1 (`small_first`), no adaptive pool,
    a `hidden`-wide classifier.
    """

    layers_spec: tuple
    num_classes: int = 1000
    hidden: int = 4096
    dropout: float = 0.5
    batch_norm: bool = False
    pool_to: int | None = None
    small: bool = False
    small_first: tuple | None = None
    width: float = 1.0  # multiplies every convolution's features (reduced-width runs)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = checks.images(x, "ConvStack (AlexNet / ZFNet / VGG)")
        spec = list(self.layers_spec)
        if self.small and self.small_first is not None:
            spec[0] = self.small_first
        for item in spec:
            if item == "M":
                x = blocks.pool(x, "max", 2, 2)
            elif item in ("M3", "M3p"):
                x = blocks.pool(x, "max", 3, 2, padding=1 if item == "M3p" else 0)
            elif item == "N":
                x = blocks.local_response_norm(x)
            else:
                features, kernel, stride, padding, groups = item
                features = max(groups, int(features * self.width) // groups * groups)
                x = blocks.Conv2D(
                    features, (kernel, kernel), (stride, stride), blocks.pads(padding),
                    feature_group_count=groups,
                )(x)  # fmt: skip
                if self.batch_norm:
                    x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
                x = nn.relu(x)
        if self.pool_to is not None and not self.small:
            size = x.shape[1] // self.pool_to
            x = blocks.pool(x, "avg", size, size) if size > 1 else x
        return Classifier(self.hidden, self.num_classes, self.dropout)(x, train=train)


AlexNet = partial(ConvStack, layers_spec=ALEXNET, pool_to=6, small_first=SMALL_FIRST["alexnet"])
AlexNetCaffe = partial(ConvStack, layers_spec=ALEXNET_CAFFE, small_first=SMALL_FIRST["caffe"])
ZFNet = partial(ConvStack, layers_spec=ZFNET, small_first=SMALL_FIRST["zfnet"])
VGG = {
    depth: partial(ConvStack, layers_spec=_vgg(config), pool_to=7)
    for depth, config in ((11, "A"), (13, "B"), (16, "D"), (19, "E"))
}


# --- GoogLeNet / Inception v1 ---------------------------------------------------------------

# (1×1, 3×3 reduce, 3×3, "5×5" reduce, "5×5", pool projection) per Inception module,
# Szegedy et al. 2015, Table 1.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}  # fmt: skip


class Unit(nn.Module):
    """GoogLeNet's convolution unit: conv → BN (eps 1e-3) → ReLU in torchvision's layout,
    conv (with bias) → ReLU in the paper's."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    paper: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if not self.paper:
            return blocks.ConvBN(
                self.features, self.kernel, self.stride, self.padding, bn_eps=1e-3
            )(x, train=train)
        k, s = (self.kernel, self.kernel), (self.stride, self.stride)
        return nn.relu(blocks.Conv2D(self.features, k, s, blocks.pads(self.padding))(x))


class Inception(nn.Module):
    """One Inception module: four branches concatenated on channels. torchvision uses a 3×3
    convolution in the "5×5" branch (a known deviation it keeps for its weights); the
    paper's layout uses 5×5."""

    spec: tuple
    paper: bool = False
    width: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c1, r3, c3, r5, c5, cp = (max(1, int(c * self.width)) for c in self.spec)
        unit = partial(Unit, paper=self.paper)
        big = 5 if self.paper else 3
        b1 = unit(c1, 1)(x, train=train)
        b2 = unit(c3, 3, padding=1)(unit(r3, 1)(x, train=train), train=train)
        b3 = unit(c5, big, padding=big // 2)(unit(r5, 1)(x, train=train), train=train)
        b4 = unit(cp, 1)(blocks.pool(x, "max", 3, 1, padding=1, ceil_mode=True), train=train)
        # Four branches read the output: the barrier keeps XLA:CPU from recomputing it in
        # each (train step, batch 128: 1.11× faster at width 0.25, 1.20× for the paper's
        # layout at 0.125; 1.05× at full width, batch 32; same-process A/B). With it and
        # `overlapping_max_pool`, an MNIST epoch at width 0.25 took 692 s on all 60,000
        # images, where 30,000 had taken 518 s.
        return lowering.cpu_fusion_barrier(jnp.concatenate([b1, b2, b3, b4], axis=-1))


class InceptionAux(nn.Module):
    """Auxiliary classifier: average pool (torchvision: adaptive to 4×4; paper: 5×5 / 3),
    1×1 convolution 128, dense 1024, dropout 0.7, dense."""

    num_classes: int
    paper: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if self.paper:
            x = blocks.pool(x, "avg", 5, 3)
        else:
            size = x.shape[1] // 4
            x = blocks.pool(x, "avg", size, size)
        x = checks.flatten(Unit(128, 1, paper=self.paper)(x, train=train), "GoogLeNet")
        x = blocks.Dropout(0.7, deterministic=not train)(nn.relu(nn.Dense(1024)(x)))
        return nn.Dense(self.num_classes)(x)


class GoogLeNet(nn.Module):
    """GoogLeNet / Inception v1: Szegedy et al., "Going deeper with convolutions", CVPR 2015,
    arXiv:1409.4842.

    `paper=False` is torchvision's layout (BN units, 3×3 "5×5" branch, no LRN, ceil-mode
    pools; 6,624,904 parameters without the auxiliary heads, 13,004,888 with them).
    `paper=True` is the paper's (5×5 branch, LRN after the stem's pools, biases, no BN).
    With `aux_logits` and `train=True` the module returns `(logits, aux1, aux2)`; the
    gradient learner weights the auxiliary losses by 0.3, as the paper does. `small=True`:
    28×28 input, the stem is one 3×3 convolution of 192 (no pooling) before 3a.
    """

    num_classes: int = 1000
    aux_logits: bool = True
    paper: bool = False
    small: bool = False
    dropout: float = 0.4
    width: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        x = checks.images(x, "GoogLeNet")
        unit = partial(Unit, paper=self.paper)
        w = lambda c: max(1, int(c * self.width))
        lrn = blocks.local_response_norm if self.paper else (lambda x: x)
        mpool = lambda x: blocks.pool(x, "max", 3, 2, ceil_mode=True)
        if self.small:
            x = unit(w(192), 3, padding=1)(x, train=train)
        else:
            x = lrn(mpool(unit(w(64), 7, 2, 3)(x, train=train)))
            x = unit(w(64), 1)(x, train=train)
            x = mpool(lrn(unit(w(192), 3, padding=1)(x, train=train)))
        block = lambda name, x: Inception(INCEPTION[name], self.paper, self.width)(x, train=train)
        x = mpool(block("3b", block("3a", x)))
        x = block("4a", x)
        aux = []
        if self.aux_logits:
            aux.append(InceptionAux(self.num_classes, self.paper)(x, train=train))
        x = block("4d", block("4c", block("4b", x)))
        if self.aux_logits:
            aux.append(InceptionAux(self.num_classes, self.paper)(x, train=train))
        x = block("4e", x)
        x = blocks.pool(x, "max", 2, 2, ceil_mode=True) if not self.paper else mpool(x)
        x = block("5b", block("5a", x))
        x = jnp.mean(x, axis=(1, 2))
        x = blocks.Dropout(self.dropout, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes)(x)
        return (logits, *aux) if (train and aux) else logits


# --- ResNet, ResNeXt, pre-activation ResNet -------------------------------------------------

RESNET_DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                 152: ("bottleneck", (3, 8, 36, 3))}  # fmt: skip


def resnet_blocks(depth: int) -> tuple[str, tuple[int, ...]]:
    """The block kind and the blocks per stage of a ResNet of `depth` layers."""
    if depth not in RESNET_DEPTHS:
        raise ZooError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
    return RESNET_DEPTHS[depth]


class ResidualBlock(nn.Module):
    """Basic (two 3×3) or bottleneck (1×1, 3×3, 1×1 ×4) residual block, post-activation.

    `version="1.5"` (torchvision): the stride sits on the 3×3 convolution, no conv biases,
    BN eps 1e-5. `version="1"` (the paper; Keras `ResNet50`): the stride sits on the first 1×1,
    convolutions have biases, BN eps 1.001e-5. `groups` / `base_width` make it ResNeXt's
    block (Xie et al. 2017): the 3×3 is a grouped convolution of width
    int(planes · base_width / 64) · groups. `zero_init_residual`: the last BN's scale starts
    at 0, so the block starts as its shortcut (torchvision's `zero_init_residual`).
    """

    planes: int
    stride: int = 1
    kind: str = "bottleneck"
    version: str = "1.5"
    groups: int = 1
    base_width: int = 64
    bn_momentum: float = 0.99  # version "1" (Keras's BatchNorm); torchvision's is fixed
    zero_init_residual: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        keras = self.version == "1"
        eps = 1.001e-5 if keras else 1e-5
        out_planes = self.planes * (4 if self.kind == "bottleneck" else 1)

        def unit(features, kernel, stride=1, padding=0, groups=1, relu=True, zero=False):
            if not keras:
                return blocks.ConvBN(
                    features, kernel, stride, padding, groups, relu, eps, zero_init_scale=zero
                )
            return _KerasConvBN(features, kernel, stride, padding, relu, self.bn_momentum, zero)

        shortcut = x
        if self.stride != 1 or x.shape[-1] != out_planes:
            shortcut = unit(out_planes, 1, self.stride, relu=False)(x, train=train)
        if self.kind == "basic":
            y = unit(self.planes, 3, self.stride, 1)(x, train=train)
            y = unit(self.planes, 3, 1, 1, relu=False, zero=self.zero_init_residual)(y, train=train)
        else:
            width = int(self.planes * self.base_width / 64) * self.groups
            first, middle = (self.stride, 1) if keras else (1, self.stride)
            y = unit(width, 1, first)(x, train=train)
            y = unit(width, 3, middle, 1, self.groups)(y, train=train)
            y = unit(out_planes, 1, relu=False, zero=self.zero_init_residual)(y, train=train)
        return lowering.cpu_fusion_barrier(nn.relu(y + shortcut))  # see its docstring


class _KerasConvBN(nn.Module):
    """keras.applications ResNet's unit: convolution with bias, BN (eps 1.001e-5), ReLU."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    relu: bool = True
    bn_momentum: float = 0.99
    zero_init_scale: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        k, s = (self.kernel, self.kernel), (self.stride, self.stride)
        x = blocks.Conv2D(self.features, k, s, blocks.pads(self.padding))(x)
        bn = nn.BatchNorm(
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=1.001e-5,
            scale_init=nn.initializers.zeros_init()
            if self.zero_init_scale
            else nn.initializers.ones,
        )
        x = bn(x)
        return nn.relu(x) if self.relu else x


class ResNet(nn.Module):
    """ResNet: He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016,
    arXiv:1512.03385; ResNeXt: Xie et al., "Aggregated residual transformations", CVPR 2017,
    arXiv:1611.05431.

    `version="1.5"` is torchvision's (`resnet18` … `resnet152`, `resnext50_32x4d`,
    `resnext101_32x8d`; parameter counts equal torchvision's), `version="1"` the paper's and
    keras.applications' `ResNet50`. Stem: 7×7/2 convolution, 3×3/2 max-pool (ImageNet) or
    one 3×3/1 convolution and no pool (`small=True`, for 28×28 images, as the paper's
    CIFAR networks). `width` scales every stage (1.0 = 64, 128, 256, 512).
    `zero_init_residual=True` starts every residual branch's last BN scale at 0 (Goyal et al.
    2017, arXiv:1706.02677; torchvision's flag of that name, off by default as there), so
    the network starts as its shortcut path (its effect on short runs: `experiments/conv_zoo.py`).
    """

    depth: int = 50
    num_classes: int = 1000
    version: str = "1.5"
    groups: int = 1
    base_width: int = 64
    small: bool = False
    width: float = 1.0
    bn_momentum: float = 0.99  # version "1" (Keras's BatchNorm) only
    zero_init_residual: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        kind, counts = resnet_blocks(self.depth)
        base = max(1, int(64 * self.width))
        if kind == "bottleneck" and int(base * self.base_width / 64) < 1:
            raise ZooError(
                f"width={self.width} leaves the first stage's grouped 3×3 convolution no "
                f"channels per group (int({base} · base_width {self.base_width} / 64) = 0): "
                f"use width >= {1 / self.base_width:g}"
            )
        x = checks.images(x, "ResNet")
        stem = (
            partial(_KerasConvBN, bn_momentum=self.bn_momentum)
            if self.version == "1"
            else blocks.ConvBN
        )
        if self.small:
            x = stem(base, 3, 1, 1)(x, train=train)
        else:
            x = stem(base, 7, 2, 3)(x, train=train)
            x = blocks.pool(x, "max", 3, 2, padding=1)
        for stage, count in enumerate(counts):
            for i in range(count):
                x = ResidualBlock(
                    base * 2**stage,
                    2 if (i == 0 and stage > 0) else 1,
                    kind,
                    self.version,
                    self.groups,
                    self.base_width,
                    self.bn_momentum,
                    self.zero_init_residual,
                )(x, train=train)
        return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


class PreActBlock(nn.Module):
    """Pre-activation block (He et al. 2016b), in keras.applications' ResNetV2 layout:
    BN → ReLU → convolutions; the stride sits on the last block of a stage; the shortcut is a
    1×1 convolution on the pre-activation where the width changes, a 1×1 max-pool where only
    the stride does."""

    planes: int
    stride: int = 1
    kind: str = "bottleneck"
    bn_momentum: float = 0.99  # Keras's

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        bn = lambda: nn.BatchNorm(
            use_running_average=not train, momentum=self.bn_momentum, epsilon=1.001e-5
        )
        out_planes = self.planes * (4 if self.kind == "bottleneck" else 1)
        preact = nn.relu(bn()(x))
        if x.shape[-1] != out_planes:
            shortcut = blocks.Conv2D(out_planes, (1, 1), (self.stride,) * 2)(preact)
        elif self.stride > 1:
            shortcut = x[:, :: self.stride, :: self.stride]  # MaxPooling2D(1, stride)
        else:
            shortcut = x
        conv = lambda n, k, s=1, **kw: blocks.Conv2D(n, (k, k), (s, s), blocks.pads(k // 2), **kw)
        if self.kind == "basic":
            y = nn.relu(bn()(conv(self.planes, 3, use_bias=False)(preact)))
            y = conv(out_planes, 3, self.stride)(y)
        else:
            y = nn.relu(bn()(conv(self.planes, 1, use_bias=False)(preact)))
            y = nn.relu(bn()(conv(self.planes, 3, self.stride, use_bias=False)(y)))
            y = conv(out_planes, 1)(y)
        return y + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet: He, Zhang, Ren & Sun, "Identity mappings in deep residual
    networks", ECCV 2016, arXiv:1603.05027, as keras.applications' `ResNet50V2` /
    `ResNet101V2` / `ResNet152V2` (parameter counts equal). Depths 18 and 34 use basic
    blocks in the same layout; Keras has no such model, so those counts have no external
    reference. Stem: 7×7/2 convolution with bias and a 3×3/2 max-pool, no BN (the blocks
    pre-activate); a final BN → ReLU before pooling. `small=True`: one 3×3/1 convolution."""

    depth: int = 50
    num_classes: int = 1000
    small: bool = False
    width: float = 1.0
    bn_momentum: float = 0.99  # Keras's

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        kind, counts = resnet_blocks(self.depth)
        x = checks.images(x, "PreActResNet")
        base = max(1, int(64 * self.width))
        if self.small:
            x = blocks.Conv2D(base, (3, 3), padding=blocks.pads(1))(x)
        else:
            x = blocks.Conv2D(base, (7, 7), (2, 2), blocks.pads(3))(x)
            # Keras zero-pads before this pool; the map is not yet ReLU'd, so −∞ would differ
            x = blocks.pool(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), "max", 3, 2)
        for stage, count in enumerate(counts):
            for i in range(count):
                last_strided = i == count - 1 and stage < len(counts) - 1
                block = PreActBlock(
                    base * 2**stage, 2 if last_strided else 1, kind, self.bn_momentum
                )
                x = block(x, train=train)
        bn = nn.BatchNorm(
            use_running_average=not train, momentum=self.bn_momentum, epsilon=1.001e-5
        )
        x = bn(x)
        return nn.Dense(self.num_classes)(jnp.mean(nn.relu(x), axis=(1, 2)))


# --- Xception -------------------------------------------------------------------------------


class Xception(nn.Module):
    """Xception: Chollet, "Xception: deep learning with depthwise separable convolutions",
    CVPR 2017, arXiv:1610.02357, as keras.applications' `Xception` (299×299 input; our
    trainable parameters equal Keras's trainable weights, 22,855,952; Keras's total,
    22,910,480, adds the BatchNorm moving statistics). Entry flow (three strided residual
    blocks), middle flow (8 blocks of three separable convolutions at 728), exit flow.
    `small=True`: the first convolution has stride 1 (28×28 input)."""

    num_classes: int = 1000
    small: bool = False
    middle_blocks: int = 8
    width: float = 1.0
    bn_momentum: float = 0.99  # Keras's

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = checks.images(x, "Xception")
        w = lambda c: max(1, int(c * self.width))
        bn = lambda y: nn.BatchNorm(
            use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-3
        )(y)
        sep = lambda y, c: bn(blocks.SeparableConv2D(w(c))(y))
        conv = lambda c, k, s: blocks.Conv2D(w(c), (k, k), (s, s), "VALID", use_bias=False)
        x = nn.relu(bn(conv(32, 3, 1 if self.small else 2)(x)))
        x = nn.relu(bn(conv(64, 3, 1)(x)))
        for i, c in enumerate((128, 256, 728)):
            residual = bn(blocks.Conv2D(w(c), (1, 1), (2, 2), "SAME", use_bias=False)(x))
            y = x if i == 0 else nn.relu(x)
            y = sep(nn.relu(sep(y, c)), c)
            x = blocks.pool(y, "max", 3, 2, padding="SAME") + residual
        c = w(728)  # three separable convolutions per middle block, each c·(9 + c) parameters
        checks.check_stack("Xception", "middle_blocks", self.middle_blocks, 3 * c * (9 + c))
        for _ in range(self.middle_blocks):
            y = x
            for _ in range(3):
                y = sep(nn.relu(y), 728)
            x = x + y
        residual = bn(blocks.Conv2D(w(1024), (1, 1), (2, 2), "SAME", use_bias=False)(x))
        y = sep(nn.relu(sep(nn.relu(x), 728)), 1024)
        x = blocks.pool(y, "max", 3, 2, padding="SAME") + residual
        x = nn.relu(sep(nn.relu(sep(x, 1536)), 2048))
        return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


# --- the cards of this family (zoo_jax.registry collects them) ------------------------------------

_SMALL = {"small": True, "num_classes": 10}


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


CARDS = [
    ZooCard(
        name="cnn",
        family="convolutional",
        chart_node="deep_convolutional_network",
        reference=f"LeCun et al. 1998, doi:10.1109/5.726791; {SEED_003}",
        build=SeedCNN,
        input_shape=(28, 28, 1),
        input_layout="NHWC",
        epochs=10,
        description="three 3x3/64 convolutions, two 2x2 max-pools, dropout 0.2, dense 10",
        test_overrides={"features": (4, 4, 4), "dropout": 0.0},
    ),
    ZooCard(
        name="cnn_tf",
        family="convolutional",
        chart_node="deep_convolutional_network",
        reference=(
            "TensorFlow 'Deep MNIST for experts' tutorial (2015); "
            "the textbook chapter 'Getting started with neural networks'"
        ),
        build=TutorialCNN,
        input_shape=(28, 28, 1),
        input_layout="NHWC",
        learning_rate=1e-4,
        epochs=17,  # 17 x 1,200 = 20,400 steps of 50 (the tutorial: 20,000 steps)
        batch_size=50,
        description="5x5/32 and 5x5/64 SAME convolutions, 2x2 pools, FC 1024, dropout 0.5",
        test_overrides={"features": (4, 4), "hidden": (8,), "dropout": 0.0},
    ),
    ZooCard(
        name="dcn",
        family="convolutional",
        chart_node="deep_convolutional_network",
        reference="LeCun et al. 1998, doi:10.1109/5.726791 (the chart's DCN, configurable)",
        build=partial(
            DeepConvNet, features=(32, 64), pool_after=(True, True),
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
        reference="Dosovitskiy et al. 2015, arXiv:1411.5928 (the Keras DN of the chapter 'Neural network collection')",
        build=DeconvNet,
        input_shape=(56,),
        input_layout="code vector (one-hot class + transformation inputs)",
        learner="class_decoder",
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
        build=LeNet5,
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
        reference="LeCun et al. 1998; the Keras LeNet-5 of the chapter 'Neural network collection'",
        build=KerasLeNet,
        input_shape=(32, 32, 1),
        input_layout="NHWC (MNIST padded to 32x32)",
        description="3x3 conv 6 and 16 with ReLU, 2x2 average pools, dense 120-84-10",
    ),
    _conv("alexnet", "alexnet", AlexNet, f"{_ALEXNET}; {_TV}.alexnet",
          "torchvision's single-tower AlexNet", small_overrides=_CLASSIFIER_SMALL),
    _conv("alexnet_caffe", "alexnet", AlexNetCaffe,
          f"{_ALEXNET}; Caffe bvlc_alexnet (two towers as groups=2, LRN)",
          "the paper's two-tower AlexNet: grouped conv2/4/5, LRN", input_shape=(227, 227, 3),
          small_overrides=_CLASSIFIER_SMALL),
    _conv("zfnet", "zfnet", ZFNet, "Zeiler & Fergus 2014, arXiv:1311.2901",
          "7x7/2 first layer, 5x5/2 second, LRN as contrast normalisation",
          small_overrides=_CLASSIFIER_SMALL),
    *[
        _conv(f"vgg{d}{bn}", "vgg", partial(VGG[d], batch_norm=bool(bn)),
              f"{_VGG}; {_TV}.vgg{d}{bn}", f"VGG-{d}{' with batch norm' if bn else ''}",
              small_input_shape=(32, 32, 1), small_overrides=_CLASSIFIER_SMALL)
        for d in (11, 13, 16, 19)
        for bn in ("", "_bn")
    ],
    _conv("googlenet", "googlenet", GoogLeNet, f"{_GOOGLENET}; {_TV}.googlenet",
          "Inception v1, torchvision layout (BN, 3x3 in the 5x5 branch), 2 auxiliary heads",
          small_overrides={**_SMALL, "aux_logits": False},
          param_convention="trainable parameters with the auxiliary heads (6,624,904 without)"),
    _conv("googlenet_paper", "googlenet", partial(GoogLeNet, paper=True),
          _GOOGLENET, "Inception v1 as published: 5x5 branch, LRN, no BN, 2 auxiliary heads",
          small_overrides={**_SMALL, "aux_logits": False}),
    *[
        _conv(f"resnet{d}", "deep_residual_network", partial(ResNet, depth=d),
              f"{_RESNET}; {_TV}.resnet{d} (v1.5)", f"ResNet-{d} v1.5")
        for d in (18, 34, 50, 101, 152)
    ],
    _conv("resnet50_keras", "deep_residual_network",
          partial(ResNet, depth=50, version="1"), f"{_RESNET}; {_KA}.ResNet50",
          "ResNet-50 v1 (stride on the first 1x1, conv biases)"),
    *[
        _conv(f"preact_resnet{d}", "deep_residual_network",
              partial(PreActResNet, depth=d),
              "He et al. 2016b, arXiv:1603.05027"
              + (f"; {_KA}.ResNet{d}V2" if d >= 50 else " (Keras V2 layout, basic blocks)"),
              f"pre-activation ResNet-{d}")
        for d in (18, 34, 50, 101, 152)
    ],
    _conv("resnext50_32x4d", "resnext",
          partial(ResNet, depth=50, groups=32, base_width=4),
          f"Xie et al. 2017, arXiv:1611.05431; {_TV}.resnext50_32x4d", "ResNeXt-50 32x4d",
          test_overrides={**_SMALL, "width": 0.5}),  # 32 groups need width >= 1/2
    _conv("resnext101_32x8d", "resnext",
          partial(ResNet, depth=101, groups=32, base_width=8),
          f"Xie et al. 2017, arXiv:1611.05431; {_TV}.resnext101_32x8d", "ResNeXt-101 32x8d",
          test_overrides={**_SMALL, "width": 0.25}),
    _conv("xception", "xception", Xception,
          f"Chollet 2017, arXiv:1610.02357; {_KA}.Xception",
          "entry / middle (8 blocks) / exit flows of depthwise-separable convolutions",
          input_shape=(299, 299, 3),
          param_convention="trainable parameters (Keras's total adds 54,528 BN statistics)"),
]  # fmt: skip
