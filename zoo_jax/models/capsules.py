"""Routing: the capsule network with dynamic routing between capsules.

Chart node: `capsule_network` (card `capsnet`).

    lengths = model.apply(variables, images)                    # (batch, 10): ‖v_j‖
    v = model.apply(variables, images, method="capsules")       # (batch, 10, 16)
    images = model.apply(variables, v, labels, method="decode")  # (batch, 28, 28, 1)

`route` (Procedure 1 of the paper) is a function of arrays, tested against a NumPy
transcription; its iterations are one `lax.fori_loop`.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax.errors import ZooError
from zoo_jax.models import blocks, checks
from zoo_jax.registry import ZooCard

RECONSTRUCTION_WEIGHT = 0.0005  # sec. 4.1: the reconstruction loss scaled down


def squash(s: jax.Array, axis: int = -1, eps: float = 1e-7) -> jax.Array:
    """v = ‖s‖² / (1 + ‖s‖²) · s / ‖s‖ (eq. 1); `eps` keeps the gradient at s = 0 finite."""
    n2 = jnp.sum(jnp.square(s), axis=axis, keepdims=True)
    return n2 / (1 + n2) * s / jnp.sqrt(n2 + eps)


def route(u_hat: jax.Array, iterations: int) -> tuple[jax.Array, jax.Array]:
    """Routing by agreement (Procedure 1): `u_hat` `(batch, inputs, outputs, dim)` the
    predictions û_j|i; logits b_ij start at 0; each iteration c_i = softmax_j(b_i),
    s_j = Σ_i c_ij û_j|i, v_j = squash(s_j), b_ij += û_j|i · v_j. Returns the last
    iteration's v `(batch, outputs, dim)` and c `(batch, inputs, outputs)`. The gradient
    flows through every iteration (the paper does not stop it)."""
    if iterations < 1:
        raise ZooError(f"routing needs at least 1 iteration, got {iterations}")

    def outputs(b):
        c = jax.nn.softmax(b, axis=-1)
        return squash(jnp.einsum("bij,bijd->bjd", c, u_hat)), c

    def agree(_, b):
        v, _ = outputs(b)
        return b + jnp.einsum("bijd,bjd->bij", u_hat, v)

    b = lax.fori_loop(0, iterations - 1, agree, jnp.zeros(u_hat.shape[:3], u_hat.dtype))
    return outputs(b)


class CapsNet(nn.Module):
    """CapsNet (Sabour, Frosst & Hinton 2017, NeurIPS, "Dynamic Routing Between Capsules"):
    Conv1 256 9×9 ReLU; PrimaryCaps, a 9×9 stride-2 convolution to 32 types of 8-D capsules
    (6×6×32 = 1,152 on a 28×28 image), squashed; DigitCaps, a 16×8 matrix W_ij per pair
    (no bias), routed `routing_iterations` times; the decoder 512-1024-784 (ReLU, ReLU,
    sigmoid) reads the digit capsules masked to one class (the label in training, the
    longest at test). 8,215,568 parameters with the decoder (the paper's "8.2M"), 6,804,224
    without ("6.8M"). W starts at N(0, 0.01²): the paper does not say; a small start keeps
    the 1,152 summed predictions out of the squash's flat end.

    `__call__(x)` gives the capsules' lengths (the class scores); `outputs(x, labels)`
    lengths and reconstructions (flat pixels) together, for the learner."""

    num_classes: int = 10
    routing_iterations: int = 3
    reconstruction: bool = True
    conv_channels: int = 256
    primary_types: int = 32
    primary_dim: int = 8
    digit_dim: int = 16
    decoder_units: tuple[int, ...] = (512, 1024)
    image_shape: tuple[int, ...] = (28, 28, 1)

    def setup(self):
        if self.routing_iterations < 1:
            raise ZooError(f"capsnet routing_iterations must be >= 1, got {self.routing_iterations}")  # fmt: skip
        self.conv1 = blocks.Conv2D(self.conv_channels, (9, 9), padding="VALID")
        self.primary = blocks.Conv2D(self.primary_types * self.primary_dim, (9, 9), (2, 2),
                                     padding="VALID")  # fmt: skip
        h, w = self.image_shape[0] - 8, self.image_shape[1] - 8
        inputs = ((h - 9) // 2 + 1) * ((w - 9) // 2 + 1) * self.primary_types
        self.W = self.param("W", nn.initializers.normal(0.01),
                            (inputs, self.num_classes, self.digit_dim, self.primary_dim))  # fmt: skip
        if self.reconstruction:
            self.decoder = [nn.Dense(u) for u in self.decoder_units]
            self.pixels = nn.Dense(math.prod(self.image_shape))

    def capsules(self, x: jax.Array) -> jax.Array:
        """The digit capsules v_j `(batch, classes, digit_dim)`."""
        x = checks.images(x, "capsnet")
        h = self.primary(nn.relu(self.conv1(x)))
        u = squash(h.reshape(x.shape[0], -1, self.primary_dim))  # (batch, 1152, 8)
        if u.shape[1] != self.W.shape[0]:
            raise ZooError(f"capsnet was built for {self.image_shape} images, got {x.shape[1:]}")
        u_hat = jnp.einsum("ijdk,bik->bijd", self.W, u)
        return route(u_hat, self.routing_iterations)[0]

    def decode(self, v: jax.Array, labels: jax.Array) -> jax.Array:
        """Images `(batch, *image_shape)` from the capsules of class `labels` (others 0)."""
        if not self.reconstruction:
            raise ZooError("this capsnet was built without its decoder (reconstruction=False)")
        mask = jax.nn.one_hot(labels, self.num_classes, dtype=v.dtype)[..., None]
        h = (v * mask).reshape(v.shape[0], -1)
        for layer in self.decoder:
            h = nn.relu(layer(h))
        return nn.sigmoid(self.pixels(h)).reshape(v.shape[0], *self.image_shape)

    def outputs(self, x: jax.Array, labels: jax.Array | None = None):
        """`(lengths, reconstructions or None)`; the decoder reads the `labels`' capsules,
        or the longest where none are given."""
        v = self.capsules(x)
        lengths = jnp.linalg.norm(v, axis=-1)
        if not self.reconstruction:
            return lengths, None
        return lengths, self.decode(v, jnp.argmax(lengths, -1) if labels is None else labels)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.is_initializing():
            return self.outputs(x)[0]  # builds the decoder too
        return jnp.linalg.norm(self.capsules(x), axis=-1)


CARDS = [
    ZooCard(
        name="capsnet",
        family="capsules",
        chart_node="capsule_network",
        reference="Sabour, Frosst & Hinton 2017, NeurIPS (Dynamic Routing Between Capsules)",
        build=CapsNet,
        input_shape=(28, 28, 1),
        input_layout="NHWC",
        learner="capsule",
        loss="margin",
        optimizer="adam",
        learning_rate=1e-3,
        epochs=50,
        batch_size=128,
        description="Conv 256 9x9, 32x8-D primary capsules, 10x16-D digit capsules, 3 routing iterations, decoder 512-1024-784",
        test_overrides={"conv_channels": 8, "primary_types": 2, "primary_dim": 4, "digit_dim": 4, "decoder_units": (8,)},
        param_convention="trainable parameters with the reconstruction decoder (Sabour et al.: 8.2M; 6.8M without)",
    ),
]  # fmt: skip
