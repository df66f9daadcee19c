"""Adversarial networks: the GAN, the DCGAN and the conditional GAN, two players each.

Chart nodes: `gan`, `dcgan`, `conditional_gan`. Each model is one Flax module holding both
players as submodules, `generator` and `discriminator`, so its parameters are
`{"generator": ..., "discriminator": ...}`: the adversarial learner
(`zoo_jax.learners.adversarial`) gives each player its own optimizer state in one
`TrainState` and steps them in turn.

    model = zoo_jax.get_model("dcgan")
    images = model.apply(variables, z, method="sample")        # (n, 64, 64, 3) in [0, 1]
    logits = model.apply(variables, x, method="discriminate")  # D's logit that x is real

- `generate(z, labels)`: images in the generator's own range ([0, 1] for the sigmoid MLPs,
  [-1, 1] for the DCGAN's tanh); `sample(z, labels)`: the same mapped to [0, 1], the range of
  the datasets. `to_model_range(x)` maps data in [0, 1] to the generator's range.
- `discriminate(x, labels)`: the logit of D(x) (the sigmoid is the loss's).
- `noise(rng, n)`: z uniform in [-1, 1]^latent_dim, as DCGAN (Radford et al. 2016, sec. 4).
- `__call__(x, labels)`: both players once (D(x) and G(0)): what `init` and the parameter
  count trace.

The conditional GAN reads the class label in both players (one-hot); `generate` /
`discriminate` without labels is an error. The unconditional models ignore labels.
`latent_dim` is z's size, `disc_steps` Goodfellow's k (discriminator updates per generator
update). The data range each model trains on comes from its output unit; batch norm
(DCGAN) runs in training mode in both players' steps, as the paper's code does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.errors import InputError
from zoo_jax.models import blocks, checks
from zoo_jax.registry import ZooCard


def _uniform(scale: float) -> nn.initializers.Initializer:
    """U(-scale, scale): pylearn2's `irange`, the initialisation of Goodfellow's and Mirza's
    MNIST models."""
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -scale, scale
    )


class TwoPlayers(nn.Module):
    """What the three models share: the latent size, Goodfellow's k, the classes, and the
    methods above. Subclasses define `setup` (`self.generator`, `self.discriminator`)."""

    latent_dim: int = 100
    disc_steps: int = 1
    num_classes: int = 10
    conditional: ClassVar[bool] = False
    tanh_output: ClassVar[bool] = False  # the generator's range: [-1, 1], else [0, 1]

    def _labels(self, labels, n: int, what: str) -> tuple:
        if not self.conditional:
            return ()
        if labels is None:
            raise InputError(f"a conditional model's {what} needs class labels (one per example)")
        labels = jnp.asarray(labels)
        if labels.shape != (n,) or not jnp.issubdtype(labels.dtype, jnp.integer):
            raise InputError(f"labels must be ({n},) integer classes, got {labels.shape} "
                             f"{labels.dtype}")  # fmt: skip
        return (jax.nn.one_hot(labels, self.num_classes),)

    def generate(self, z: jax.Array, labels=None, *, train: bool = False) -> jax.Array:
        return self.generator(z, *self._labels(labels, len(z), "generator"), train=train)

    def discriminate(self, x: jax.Array, labels=None, *, train: bool = False) -> jax.Array:
        x = checks.images(x, type(self).__name__)
        y = self._labels(labels, len(x), "discriminator")
        return self.discriminator(x, *y, train=train)[:, 0]

    def sample(self, z: jax.Array, labels=None) -> jax.Array:
        """Images in [0, 1] (evaluation mode: batch norm's running statistics)."""
        return self.to_unit_range(self.generate(z, labels))

    def noise(self, rng: jax.Array, n: int) -> jax.Array:
        return jax.random.uniform(rng, (n, self.latent_dim), minval=-1.0, maxval=1.0)

    def to_model_range(self, x: jax.Array) -> jax.Array:
        return 2.0 * x - 1.0 if self.tanh_output else x

    def to_unit_range(self, x: jax.Array) -> jax.Array:
        return (x + 1.0) / 2.0 if self.tanh_output else x

    def __call__(self, x: jax.Array, labels=None, *, train: bool = False):
        z = jnp.zeros((len(x), self.latent_dim), jnp.float32)
        return self.discriminate(x, labels, train=train), self.generate(z, labels, train=train)


# --- Goodfellow et al. 2014 -------------------------------------------------------------------


class MLPGenerator(nn.Module):
    """z → ReLU layers → sigmoid pixels (Goodfellow's MNIST generator: 1200, 1200, 784)."""

    hidden: Sequence[int]
    image_shape: Sequence[int]
    init_range: float = 0.05

    @nn.compact
    def __call__(self, z, *condition, train: bool = False):
        init = {"kernel_init": _uniform(self.init_range)}
        h = z
        for width in self.hidden:
            h = nn.relu(nn.Dense(width, **init)(h))
        out = nn.Dense(math.prod(self.image_shape), **init)(h)
        return nn.sigmoid(out).reshape(len(z), *self.image_shape)


class MLPDiscriminator(nn.Module):
    """Flattened image → maxout (or leaky-ReLU) layers → one logit, with dropout on the
    input and the hidden layers (Goodfellow's: maxout 240 units × 5 pieces, twice; inputs
    kept with probability 0.8, hidden units 0.5)."""

    hidden: Sequence[int]
    pieces: int = 5
    maxout: bool = True
    input_dropout: float = 0.2
    dropout: float = 0.5
    init_range: float = 0.005

    @nn.compact
    def __call__(self, x, *condition, train: bool = False):
        init = _uniform(self.init_range)
        h = blocks.Dropout(self.input_dropout, deterministic=not train)(x.reshape(len(x), -1))
        for width in self.hidden:
            if self.maxout:
                h = blocks.Maxout(width, self.pieces, kernel_init=init)(h)
            else:
                h = nn.leaky_relu(nn.Dense(width, kernel_init=init)(h), 0.2)
            h = blocks.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dense(1, kernel_init=init)(h)


class GAN(TwoPlayers):
    """The generative adversarial network of Goodfellow et al., "Generative adversarial
    nets", NeurIPS 2014, arXiv:1406.2661, in its MNIST configuration (the paper's code,
    `mnist.yaml` of github.com/goodfeli/adversarial): G = z(100) → ReLU 1200 → ReLU 1200 →
    sigmoid 784; D = maxout 240 × 5 pieces → maxout 240 × 5 → sigmoid, dropout (input 0.2,
    hidden 0.5); weights U(±0.05) in G and U(±0.005) in D. `maxout=False` gives D leaky
    ReLU (0.2) units instead. The paper trained by SGD with momentum; the card uses Adam
    (2e-4, β1 0.5), DCGAN's, for every adversarial card; the paper's noise was uniform, as
    ours. Its generator's output bias started at the data's marginals; ours at zero."""

    hidden: Sequence[int] = (1200, 1200)
    disc_hidden: Sequence[int] = (240, 240)
    pieces: int = 5
    maxout: bool = True
    input_dropout: float = 0.2
    dropout: float = 0.5
    image_shape: Sequence[int] = (28, 28, 1)

    def setup(self):
        self.generator = MLPGenerator(self.hidden, self.image_shape)
        self.discriminator = MLPDiscriminator(
            self.disc_hidden, self.pieces, self.maxout, self.input_dropout, self.dropout
        )


# --- Radford, Metz & Chintala 2016 -----------------------------------------------------------

_NORMAL_002 = nn.initializers.normal(0.02)  # DCGAN sec. 4: every weight N(0, 0.02²)


def _batch_norm(train: bool) -> nn.BatchNorm:
    # PyTorch's BatchNorm2d (momentum 0.1, eps 1e-5), the DCGAN example's; scale N(1, 0.02)
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5,
        scale_init=lambda key, shape, dtype=jnp.float32: 1.0 + 0.02 * jax.random.normal(key, shape, dtype),
    )  # fmt: skip


class DCGANGenerator(nn.Module):
    """z → project to `base × features[0]` (batch norm, ReLU) → transposed convolutions
    (stride 2, batch norm, ReLU) → a last transposed convolution to the image's channels,
    tanh. No bias anywhere (batch norm's shift replaces it; the output layer as in the
    PyTorch example)."""

    features: Sequence[int]
    base: Sequence[int]
    channels: int
    kernel_size: int = 4

    @nn.compact
    def __call__(self, z, *condition, train: bool = False):
        h0, w0 = self.base
        h = nn.Dense(h0 * w0 * self.features[0], use_bias=False, kernel_init=_NORMAL_002)(z)
        h = nn.relu(_batch_norm(train)(h.reshape(len(z), h0, w0, self.features[0])))
        k = (self.kernel_size, self.kernel_size)
        for width in self.features[1:]:
            conv = blocks.ConvTranspose(width, k, (2, 2), use_bias=False, kernel_init=_NORMAL_002)
            h = nn.relu(_batch_norm(train)(conv(h)))
        out = blocks.ConvTranspose(self.channels, k, (2, 2), use_bias=False,
                                   kernel_init=_NORMAL_002)(h)  # fmt: skip
        return jnp.tanh(out)


class DCGANDiscriminator(nn.Module):
    """Strided convolutions (LeakyReLU 0.2; batch norm on all but the first) → one logit
    from the flattened last feature map (the PyTorch example's 4×4 valid convolution is this
    dense layer). No pooling, no bias."""

    features: Sequence[int]
    kernel_size: int = 4

    @nn.compact
    def __call__(self, x, *condition, train: bool = False):
        k = (self.kernel_size, self.kernel_size)
        h = x
        for i, width in enumerate(self.features):
            h = blocks.Conv2D(width, k, (2, 2), use_bias=False, kernel_init=_NORMAL_002)(h)
            if i > 0:
                h = _batch_norm(train)(h)
            h = nn.leaky_relu(h, 0.2)
        return nn.Dense(1, use_bias=False, kernel_init=_NORMAL_002)(h.reshape(len(h), -1))


class DCGAN(TwoPlayers):
    """The deep convolutional GAN of Radford, Metz & Chintala, "Unsupervised representation
    learning with deep convolutional generative adversarial networks", ICLR 2016,
    arXiv:1511.06434: the paper's architecture guidelines (strided convolutions, no pooling,
    batch norm in both players except G's output and D's input layers, ReLU in G and
    LeakyReLU 0.2 in D, tanh output, weights N(0, 0.02), Adam 2e-4 with β1 0.5, batch 128).

    The reference configuration is the PyTorch DCGAN example's (pytorch/examples, `dcgan`,
    ngf = ndf = 64, 4×4 kernels, no biases) at the paper's 64×64×3: 3,576,704 generator and
    2,765,568 discriminator parameters. Training on 28×28×1 uses the same design two
    stages deep: G 7×7×128 → 14×14×64 → 28×28×1, D 28×28×1 → 14×14×64 → 7×7×128 → 1."""

    g_features: Sequence[int] = (512, 256, 128, 64)
    d_features: Sequence[int] = (64, 128, 256, 512)
    base: Sequence[int] = (4, 4)
    channels: int = 3
    kernel_size: int = 4
    tanh_output: ClassVar[bool] = True

    def setup(self):
        self.generator = DCGANGenerator(self.g_features, self.base, self.channels, self.kernel_size)
        self.discriminator = DCGANDiscriminator(self.d_features, self.kernel_size)


# --- Mirza & Osindero 2014 --------------------------------------------------------------------


class ConditionalGenerator(nn.Module):
    """z → ReLU `z_hidden`, y → ReLU `label_hidden`, joined → ReLU `hidden` (dropout 0.5)
    → sigmoid pixels."""

    z_hidden: int
    label_hidden: int
    hidden: int
    image_shape: Sequence[int]
    dropout: float = 0.5

    @nn.compact
    def __call__(self, z, y, *, train: bool = False):
        init = {"kernel_init": _uniform(0.05)}
        h = jnp.concatenate([nn.relu(nn.Dense(self.z_hidden, **init)(z)),
                             nn.relu(nn.Dense(self.label_hidden, **init)(y))], -1)  # fmt: skip
        h = nn.relu(nn.Dense(self.hidden, **init)(h))
        h = blocks.Dropout(self.dropout, deterministic=not train)(h)
        out = nn.Dense(math.prod(self.image_shape), **init)(h)
        return nn.sigmoid(out).reshape(len(z), *self.image_shape)


class ConditionalDiscriminator(nn.Module):
    """x → maxout `x_units` × `x_pieces`, y → maxout `label_units` × `label_pieces`, joined →
    maxout `joint_units` × `joint_pieces` → one logit; dropout 0.5 on the hidden layers."""

    x_units: int = 240
    x_pieces: int = 5
    label_units: int = 50
    label_pieces: int = 5
    joint_units: int = 240
    joint_pieces: int = 4
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, y, *, train: bool = False):
        init = _uniform(0.005)
        drop = lambda h: blocks.Dropout(self.dropout, deterministic=not train)(h)
        hx = drop(
            blocks.Maxout(self.x_units, self.x_pieces, kernel_init=init)(x.reshape(len(x), -1))
        )
        hy = drop(blocks.Maxout(self.label_units, self.label_pieces, kernel_init=init)(y))
        h = jnp.concatenate([hx, hy], -1)
        h = drop(blocks.Maxout(self.joint_units, self.joint_pieces, kernel_init=init)(h))
        return nn.Dense(1, kernel_init=init)(h)


class ConditionalGAN(TwoPlayers):
    """The conditional GAN of Mirza & Osindero, "Conditional generative adversarial nets",
    arXiv:1411.1784 (2014), sec. 4.1, MNIST: G = z(100) → ReLU 200 and one-hot y → ReLU
    1000, joined → ReLU 1200 → sigmoid 784; D = x → maxout 240 × 5 and y → maxout 50 × 5,
    joined → maxout 240 × 4 → sigmoid; dropout 0.5. The paper trained by SGD with momentum
    and decaying rates; the card uses Adam (2e-4, β1 0.5) as every adversarial card."""

    z_hidden: int = 200
    label_hidden: int = 1000
    hidden: int = 1200
    dropout: float = 0.5
    image_shape: Sequence[int] = (28, 28, 1)
    conditional: ClassVar[bool] = True

    def setup(self):
        self.generator = ConditionalGenerator(
            self.z_hidden, self.label_hidden, self.hidden, self.image_shape, self.dropout
        )
        self.discriminator = ConditionalDiscriminator(dropout=self.dropout)


def _card(**kw) -> ZooCard:
    defaults = dict(
        family="adversarial", input_shape=(28, 28, 1), input_layout="NHWC",
        learner="adversarial", loss="non_saturating", optimizer="adam", learning_rate=2e-4,
        optimizer_options={"beta_1": 0.5}, batch_size=128,
        param_convention="trainable parameters of both players",
    )  # fmt: skip
    return ZooCard(**(defaults | kw))


CARDS = [
    _card(
        name="gan",
        chart_node="gan",
        reference="Goodfellow et al. 2014, arXiv:1406.2661 (the MNIST model of its code)",
        build=GAN,
        epochs=30,
        description="G: z 100, ReLU 1200, 1200, sigmoid 784; D: maxout 240x5, 240x5, sigmoid",
        test_overrides={"hidden": (8,), "disc_hidden": (4,), "pieces": 2, "latent_dim": 4},
    ),
    _card(
        name="dcgan",
        chart_node="dcgan",
        reference="Radford, Metz & Chintala 2016, arXiv:1511.06434 (the PyTorch DCGAN example)",
        build=DCGAN,
        input_shape=(64, 64, 3),
        epochs=5,
        description="G: z 100, 4x4x512, transposed convs 256-128-64-3, tanh; D: convs 64-128-256-512",
        small_input_shape=(28, 28, 1),
        small_overrides={
            "g_features": (128, 64),
            "d_features": (64, 128),
            "base": (7, 7),
            "channels": 1,
        },
        test_overrides={
            "g_features": (4, 2),
            "d_features": (2, 4),
            "base": (7, 7),
            "channels": 1,
            "latent_dim": 4,
        },
        param_convention="trainable parameters of both players (PyTorch DCGAN example: "
        "G 3,576,704 + D 2,765,568)",
    ),
    _card(
        name="conditional_gan",
        chart_node="conditional_gan",
        reference="Mirza & Osindero 2014, arXiv:1411.1784",
        build=ConditionalGAN,
        epochs=30,
        description="G: z->200 and y->1000, ReLU 1200, sigmoid 784; D: maxout x 240x5, y 50x5, "
        "joint 240x4",
        test_overrides={"z_hidden": 4, "label_hidden": 4, "hidden": 8, "latent_dim": 4},
    ),
]
