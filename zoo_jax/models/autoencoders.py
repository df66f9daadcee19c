"""Autoencoders: ten chart nodes, from the plain autoencoder to DCIGN.

Chart nodes: `autoencoder`, `denoising_autoencoder`, `sparse_autoencoder`,
`stacked_autoencoder`, `convolutional_autoencoder`, `stacked_denoising_autoencoder`,
`contractive_autoencoder`, `recurrent_autoencoder`, `variational_autoencoder` (card `vae`)
and `dcign`.

    model = zoo_jax.get_model("vae")
    terms = model.apply(variables, x, rngs={"noise": key}, method="objective")
    z_mean, z_log_var = model.apply(variables, x, method="encode")
    images = model.apply(variables, key, 64, method="sample")          # (64, 28, 28, 1)

Every model has `encode(x)` (the code), `decode(code)` and `objective(x, weight, train=…)`:
a dict of per-example terms, `loss` the one minimised and the others what the learner
reports (`terms`): `recon`, the mean squared error of the reconstruction against the clean
input (per pixel, the one figure every model shares), and each model's own (`sparsity`,
`activation`, `contraction`; the VAE's `nll` and `kl`, nats). A penalty of the whole batch
(the sparse autoencoder's KL of the batch's mean activation) is its value on the batch,
weighted by `weight` (0 on an evaluation batch's padding), repeated on every example.

Reconstructions are logits of a Bernoulli decoder (`jax.nn.sigmoid` gives the image): the
loss is the cross-entropy summed over pixels, as Vincent et al. 2008/2010, Masci et al. 2011
and Rifai et al. 2011 train on intensities in [0, 1]. Random corruption, binarisation and
the VAE's samples draw from the `noise` RNG stream (`rngs={"noise": key}`).

The stacked models (`StackedAutoencoder`) are classifiers after their greedy pre-training:
`__call__` gives class logits, and `layer_objective(x, layer)` is layer `layer`'s denoising
(or plain) reconstruction of the layer below's code (`learners.LayerwiseLearner` runs the
stages).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.errors import InputError, UnknownNameError, ZooError
from zoo_jax.lowering import bernoulli
from zoo_jax.models import blocks, cells, checks, recurrent
from zoo_jax.registry import ZooCard

CORRUPTIONS = ("masking", "gaussian", "salt_and_pepper")
DECODERS = ("bernoulli", "gaussian")


def corrupt(rng: jax.Array, x: jax.Array, kind: str, level: float) -> jax.Array:
    """Vincent et al. 2010, sec. 4.2: `masking` sets a fraction `level` of the inputs to 0,
    `salt_and_pepper` sets it to 0 or 1 (a fair coin each), `gaussian` adds N(0, level²)."""
    if kind == "masking":
        return jnp.where(bernoulli(rng, level, x.shape), 0.0, x)
    if kind == "salt_and_pepper":
        hit, salt = jax.random.split(rng)
        value = bernoulli(salt, 0.5, x.shape).astype(x.dtype)
        return jnp.where(bernoulli(hit, level, x.shape), value, x)
    return x + level * jax.random.normal(rng, x.shape, x.dtype)


def per_example_sum(v: jax.Array) -> jax.Array:
    """Σ over every axis but the first, as a product with a vector of ones: XLA:CPU's
    reduction of an element-wise chain with exponentials and logarithms (a cross-entropy's)
    ran 18x slower than the chain followed by this product (3.6 against 0.2 ms for a batch
    of 100 MNIST images), which made reporting the VAE's loss cost 40 % of its step."""
    flat = v.reshape(len(v), -1)
    return flat @ jnp.ones(flat.shape[1], flat.dtype)


def bernoulli_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
    """−log p(x | logits) summed over every axis but the batch's (nats per example), as
    max(l, 0) − l x + log(1 + e^−|l|): one exponential and one logarithm per pixel (
    `optax.sigmoid_binary_cross_entropy` takes two of each)."""
    per_pixel = jnp.maximum(logits, 0) - logits * x + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return per_example_sum(per_pixel)


def squared_error(reconstruction: jax.Array, x: jax.Array) -> jax.Array:
    """Mean squared error per example over its pixels (features)."""
    return per_example_sum((reconstruction - x) ** 2) / (x.size // len(x))


def float32(*arrays: jax.Array) -> tuple[jax.Array, ...]:
    """The arrays in float32: an objective's terms are computed in float32 whatever dtype
    the network computed in (mixed precision, `learners.base.apply_in`), as a loss is; the
    gradient reaches the low-precision network through the cast."""
    return tuple(a.astype(jnp.float32) for a in arrays)


def sigmoid_jacobian_norm(h: jax.Array, kernel: jax.Array) -> jax.Array:
    """‖∂h/∂x‖_F² of h = σ(x W + b), per example, in closed form (Rifai et al. 2011, eq. 5):
    Σ_j (h_j (1 − h_j))² Σ_i W_ij²."""
    h, kernel = float32(h, kernel)
    return jnp.sum((h * (1 - h)) ** 2 * jnp.sum(kernel**2, 0), -1)


def _check_range(model: str, **values) -> None:
    for name, (value, lo, hi, closed) in values.items():
        inside = lo <= value <= hi if closed else lo < value < hi
        if not inside:
            brackets = f"[{lo:g}, {hi:g}]" if closed else f"({lo:g}, {hi:g})"
            raise ZooError(f"{model} {name} must be in {brackets}, got {value!r}")


def _check_corruption(model: str, kind: str, level: float) -> None:
    if kind not in CORRUPTIONS:
        raise UnknownNameError("corruption", kind, CORRUPTIONS)
    if kind != "gaussian":  # a fraction of the pixels; Gaussian noise's σ in image units
        _check_range(model, noise_level=(level, 0.0, 1.0, True))
    elif not 0 <= level <= 1:
        raise ZooError(f"{model} noise_level must be in [0, 1] (σ of the Gaussian noise, the "
                       f"images' range is [0, 1]), got {level!r}")  # fmt: skip


def _flat_images(x: jax.Array, shape: Sequence[int], model: str) -> jax.Array:
    checks.floats(x, model)
    if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(shape):
        raise InputError(f"{model} takes images of {tuple(shape)} (or their {math.prod(shape)} "
                         f"pixels flat), got shape {x.shape}")  # fmt: skip
    return x.reshape(len(x), -1)


class Reconstructing:
    """What the deterministic autoencoders share (a mixin of their modules): `objective`,
    from their `encode`, `decode`, `corrupt` and `penalties`."""

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Reconstruction logits of `x` (`jax.nn.sigmoid` gives the image)."""
        return self.decode(self.encode(x))

    def corrupt(self, x: jax.Array) -> jax.Array:
        """The training input made from clean `x` (the denoising models corrupt it)."""
        return x

    def penalties(self, x, code, weight) -> tuple[dict, jax.Array]:
        """(reported terms, the penalty added to each example's loss) of a code."""
        return {}, jnp.zeros(len(x))

    def objective(self, x: jax.Array, weight=None, *, train: bool = False) -> dict:
        x = checks.floats(x, type(self).__name__)
        weight = jnp.ones(len(x)) if weight is None else weight
        code = self.encode(self.corrupt(x) if train else x)
        logits = self.decode(code).reshape(x.shape)
        x, code, logits = float32(x, code, logits)
        terms, penalty = self.penalties(x, code, weight)
        recon = squared_error(jax.nn.sigmoid(logits), x)
        return {"loss": bernoulli_nll(logits, x) + penalty, "recon": recon, **terms}


class Autoencoder(Reconstructing, nn.Module):
    """An undercomplete dense autoencoder (the seeds' "autoencoder"; Hinton & Salakhutdinov
    2006): 784 → `hidden` … → `code_size` → … reversed → 784 logits, `activation` on every
    encoder and decoder layer but the output. `tied` decodes with the transposed encoder
    kernels (own biases), as Vincent et al. and Rifai et al. do; Glorot-uniform kernels."""

    hidden: Sequence[int] = (256,)
    code_size: int = 32
    activation: str = "relu"
    tied: bool = False
    image_shape: Sequence[int] = (28, 28, 1)
    terms: ClassVar[tuple[str, ...]] = ("recon",)

    def setup(self):
        sizes = (math.prod(self.image_shape), *self.hidden, self.code_size)
        init = nn.initializers.glorot_uniform()
        self.kernels = [self.param(f"kernel_{i}", init, (a, b))
                        for i, (a, b) in enumerate(itertools.pairwise(sizes))]  # fmt: skip
        self.biases = [self.param(f"bias_{i}", nn.initializers.zeros_init(), (b,))
                       for i, b in enumerate(sizes[1:])]  # fmt: skip
        self.decoder_biases = [self.param(f"decoder_bias_{i}", nn.initializers.zeros_init(), (a,))
                               for i, a in enumerate(sizes[:-1])]  # fmt: skip
        if not self.tied:
            self.decoder_kernels = [self.param(f"decoder_kernel_{i}", init, (b, a))
                                    for i, (a, b) in enumerate(itertools.pairwise(sizes))]  # fmt: skip
        self.act = blocks.activation(self.activation)

    def encode(self, x: jax.Array) -> jax.Array:
        h = _flat_images(x, self.image_shape, type(self).__name__)
        for kernel, bias in zip(self.kernels, self.biases, strict=True):
            h = self.act(h @ kernel + bias)
        return h

    def decode(self, code: jax.Array) -> jax.Array:
        h = code
        for i in reversed(range(len(self.kernels))):
            kernel = self.kernels[i].T if self.tied else self.decoder_kernels[i]
            h = h @ kernel + self.decoder_biases[i]
            if i:
                h = self.act(h)
        return h.reshape(len(h), *self.image_shape)

    def jacobian_norm(self, x: jax.Array) -> jax.Array:
        """‖∂code/∂x‖_F per example, by `jax.jacfwd` (the contractive model's is closed form)."""
        flat = _flat_images(x, self.image_shape, type(self).__name__)
        jac = jax.vmap(jax.jacfwd(lambda v: self.encode(v[None])[0]))(flat)
        return jnp.sqrt(jnp.sum(jac**2, (1, 2)))


class DenoisingAutoencoder(Autoencoder):
    """Vincent, Larochelle, Bengio & Manzagol, "Extracting and composing robust features
    with denoising autoencoders", ICML 2008: the input corrupted (`corruption`: masking, the
    paper's; Gaussian or salt-and-pepper, Vincent et al. 2010 sec. 4.2) at `noise_level`, the
    clean input reconstructed; one sigmoid layer of 500 units with tied weights (the size of
    the deeplearning.net dA tutorial)."""

    hidden: Sequence[int] = ()
    code_size: int = 500
    activation: str = "sigmoid"
    tied: bool = True
    corruption: str = "masking"
    noise_level: float = 0.25

    def setup(self):
        _check_corruption("denoising_autoencoder", self.corruption, self.noise_level)
        super().setup()

    def corrupt(self, x: jax.Array) -> jax.Array:
        return corrupt(self.make_rng("noise"), x, self.corruption, self.noise_level)


class SparseAutoencoder(Autoencoder):
    """The sparse autoencoder of Ng's CS294A lecture notes ("Sparse autoencoder", 2011,
    sec. 2.3, and the UFLDL MNIST exercise): one sigmoid layer (196 units), the penalty β Σ_j
    KL(ρ ‖ ρ̂_j) on the batch's mean activation ρ̂_j, weight decay λ/2 Σ W²; ρ = 0.1, β = 3,
    λ = 3e-3 (the exercise's), and an L1 activity penalty (`activity_l1` × Σ_j |h_j|, the
    Keras `activity_regularizer` of the seed) as an option. Untied weights, as the notes."""

    hidden: Sequence[int] = ()
    code_size: int = 196
    activation: str = "sigmoid"
    rho: float = 0.1
    beta: float = 3.0
    weight_decay: float = 3e-3
    activity_l1: float = 0.0
    terms: ClassVar[tuple[str, ...]] = ("recon", "sparsity", "activation")

    def setup(self):
        _check_range("sparse_autoencoder", rho=(self.rho, 0.0, 1.0, False))
        for name in ("beta", "weight_decay", "activity_l1"):
            if not getattr(self, name) >= 0:
                raise ZooError(
                    f"sparse_autoencoder {name} must be >= 0, got {getattr(self, name)!r}"
                )
        super().setup()

    def penalties(self, x, code, weight):
        rho_hat = jnp.sum(weight[:, None] * code, 0) / jnp.maximum(jnp.sum(weight), 1.0)
        rho_hat = jnp.clip(rho_hat, 1e-6, 1 - 1e-6)
        rho = self.rho
        kl = jnp.sum(rho * jnp.log(rho / rho_hat) + (1 - rho) * jnp.log((1 - rho) / (1 - rho_hat)))
        kernels = self.kernels + ([] if self.tied else self.decoder_kernels)
        decay = self.weight_decay / 2 * sum(jnp.sum(k**2) for k in float32(*kernels))
        l1 = self.activity_l1 * jnp.sum(jnp.abs(code), -1)
        sparsity = jnp.full(len(x), kl)
        terms = {"sparsity": sparsity, "activation": jnp.mean(code, -1)}
        return terms, self.beta * sparsity + decay + l1


class ContractiveAutoencoder(Autoencoder):
    """Rifai, Vincent, Muller, Glorot & Bengio, "Contractive auto-encoders: explicit
    invariance during feature extraction", ICML 2011: one sigmoid layer (1,000 units, the
    paper's MNIST model) with tied weights, the loss plus λ ‖J_f(x)‖_F², the encoder's
    Jacobian in closed form (`sigmoid_jacobian_norm`); λ = 0.1 (the deeplearning.net cA's
    contraction level; the paper chose λ on validation data)."""

    hidden: Sequence[int] = ()
    code_size: int = 1000
    activation: str = "sigmoid"
    tied: bool = True
    contraction: float = 0.1
    terms: ClassVar[tuple[str, ...]] = ("recon", "contraction")

    def setup(self):
        if self.hidden or self.activation != "sigmoid":
            raise ZooError("contractive_autoencoder's closed-form Jacobian is one sigmoid "
                           "layer's: hidden must be [] and activation 'sigmoid'")  # fmt: skip
        if not self.contraction >= 0:
            raise ZooError(
                f"contractive_autoencoder contraction must be >= 0, got {self.contraction!r}"
            )
        super().setup()

    def penalties(self, x, code, weight):
        frobenius = sigmoid_jacobian_norm(code, self.kernels[0])
        return {"contraction": frobenius}, self.contraction * frobenius

    def jacobian_norm(self, x: jax.Array) -> jax.Array:
        return jnp.sqrt(sigmoid_jacobian_norm(self.encode(x), self.kernels[0]))


class ConvolutionalAutoencoder(Reconstructing, nn.Module):
    """Masci, Meier, Cireşan & Schmidhuber, "Stacked convolutional auto-encoders for
    hierarchical feature extraction", ICANN 2011: convolution + 2×2 max-pooling layers
    (`features`, 3×3, ReLU), a 1×1 convolution to `code_channels` maps (the code: 7×7×4 = 196
    values on MNIST), and a decoder that mirrors them by `decoder`: `upsampling` (a 3×3
    convolution, then nearest 2× up-sampling, as the seed's Keras model) or `transposed` (3×3
    stride-2 transposed convolutions); a 3×3 convolution to the image's channels gives the
    logits. 16 and 32 maps (the seed's Keras model: 16, 8, 8): a CPU trains it in minutes."""

    features: Sequence[int] = (16, 32)
    code_channels: int = 4
    decoder: str = "upsampling"
    image_shape: Sequence[int] = (28, 28, 1)
    terms: ClassVar[tuple[str, ...]] = ("recon",)

    def setup(self):
        if self.decoder not in ("upsampling", "transposed"):
            raise UnknownNameError("decoder", self.decoder, ("upsampling", "transposed"))
        scale = 2 ** len(self.features)
        if self.image_shape[0] % scale or self.image_shape[1] % scale:
            raise ZooError(f"convolutional_autoencoder: {len(self.features)} poolings need an "
                           f"image side divisible by {scale}, got {tuple(self.image_shape)}")  # fmt: skip
        self.convs = [blocks.Conv2D(f, (3, 3)) for f in self.features]
        self.to_code = blocks.Conv2D(self.code_channels, (1, 1))
        back = list(reversed(self.features))
        if self.decoder == "upsampling":
            self.ups = [blocks.Conv2D(f, (3, 3)) for f in back]
        else:
            self.ups = [blocks.ConvTranspose(f, (3, 3), (2, 2)) for f in back]
        self.to_image = blocks.Conv2D(self.image_shape[-1], (3, 3))

    def encode(self, x: jax.Array) -> jax.Array:
        h = checks.images(x, "convolutional_autoencoder")
        for conv in self.convs:
            h = blocks.pool(jax.nn.relu(conv(h)), "max", 2, 2)
        return self.to_code(h)

    def decode(self, code: jax.Array) -> jax.Array:
        h = code
        for up in self.ups:
            h = jax.nn.relu(up(h))
            if self.decoder == "upsampling":  # convolve, then up-sample (the seed's order)
                n, height, width, c = h.shape
                h = jax.image.resize(h, (n, 2 * height, 2 * width, c), "nearest")
        return self.to_image(h)


class TimeDistributedDense(nn.Module):
    """Keras's `TimeDistributed(Dense(features))`: one dense layer applied at every step;
    `features` is given at the call (the frames' size, known from the input)."""

    @nn.compact
    def __call__(self, h: jax.Array, features: int) -> jax.Array:
        return nn.Dense(features)(h)


class RecurrentAutoencoder(Reconstructing, nn.Module):
    """The LSTM autoencoder of Srivastava, Mansimov & Salakhutdinov, "Unsupervised learning
    of video representations using LSTMs", ICML 2015, as the seed builds it in Keras: an LSTM
    encoder (`units`) whose last output is the code, repeated over the sequence's steps
    (`RepeatVector`), an LSTM decoder, and a dense layer at every step (`TimeDistributed`)
    giving the logits of each frame. `reverse`: the decoder reconstructs the sequence in
    reverse order, as the paper's (the seed's: forward); the output is in the input's order
    either way. Inputs `(batch, time, features)` in [0, 1]: MNIST as 28 rows of 28 pixels,
    FSDD as 100 frames of 16 log-mel bands (`--dataset fsdd`). The readout's size is the
    frames' (set by the input `init` sees)."""

    units: int = 64
    reverse: bool = True
    terms: ClassVar[tuple[str, ...]] = ("recon",)

    def setup(self):
        self.encoder = recurrent.Recurrent(cells.LSTMCell(self.units))
        self.decoder = recurrent.Recurrent(cells.LSTMCell(self.units), return_sequences=True)
        self.frame = TimeDistributedDense()

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(checks.feature_sequences(x, "recurrent_autoencoder"))

    def decode(self, code: jax.Array, steps: int, features: int) -> jax.Array:
        """Logits `(batch, steps, features)` of the sequence a code stands for."""
        logits = self.frame(self.decoder(jnp.repeat(code[:, None], steps, 1)), features)
        return logits[:, ::-1] if self.reverse else logits

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        return self.decode(self.encode(x), *x.shape[1:])

    def objective(self, x: jax.Array, weight=None, *, train: bool = False) -> dict:
        x = checks.feature_sequences(x, "recurrent_autoencoder")
        x, logits = float32(x, self(x))
        recon = squared_error(jax.nn.sigmoid(logits), x)
        return {"loss": bernoulli_nll(logits, x), "recon": recon}


@jax.custom_vjp
def clamp_to_mean(z: jax.Array, clamped: jax.Array) -> jax.Array:
    """Kulkarni et al. 2015, sec. 3.1: the latent units of `clamped` (a `(latent,)` bool
    mask) replaced by their mean over the batch; their gradient is replaced by their
    difference from that mean, which pushes the encoder to give the whole batch (in which
    those units' factors do not change) one value."""
    return jnp.where(clamped, jnp.mean(z, 0, keepdims=True), z)


def _clamp_forward(z, clamped):
    return clamp_to_mean(z, clamped), (z, clamped)


def _clamp_backward(saved, g):
    z, clamped = saved
    return jnp.where(clamped, z - jnp.mean(z, 0, keepdims=True), g), None


clamp_to_mean.defvjp(_clamp_forward, _clamp_backward)


class VAE(nn.Module):
    """Kingma & Welling, "Auto-encoding variational Bayes", ICLR 2014: q(z|x) = N(μ(x),
    diag σ²(x)), the reparameterisation z = μ + σ ε, the analytic KL(q ‖ N(0, I)), and a
    Bernoulli (`decoder_dist="bernoulli"`: logits) or Gaussian (`"gaussian"`: means and a
    learned per-pixel log σ) decoder. `architecture="mlp"`: the model of Burda, Grosse &
    Salakhutdinov 2016, Table 1 (one stochastic layer): two `hidden` tanh layers of 200 each
    way, 50 latent units; `"conv"`: stride-2 3×3 convolutions (`features`, ReLU) to a dense
    μ, log σ², mirrored by transposed convolutions. `binarize`: the input is sampled as
    Bernoulli(x) wherever it is read (dynamic binarisation, Burda et al.'s protocol).

    Terms: `loss` = −ELBO = `nll` (−E_q log p(x|z), one sample) + `kl`, nats;
    `importance_nll(x, k)` is Burda et al.'s k-sample bound on −log p(x)."""

    hidden: Sequence[int] = (200, 200)
    latent_dim: int = 50
    activation: str = "tanh"
    architecture: str = "mlp"
    features: Sequence[int] = (32, 64)
    decoder_dist: str = "bernoulli"
    binarize: bool = True
    image_shape: Sequence[int] = (28, 28, 1)
    terms: ClassVar[tuple[str, ...]] = ("nll", "kl", "recon")

    def setup(self):
        if self.architecture not in ("mlp", "conv"):
            raise UnknownNameError("architecture", self.architecture, ("mlp", "conv"))
        if self.decoder_dist not in DECODERS:
            raise UnknownNameError("decoder_dist", self.decoder_dist, DECODERS)
        pixels = math.prod(self.image_shape)
        if self.architecture == "mlp":
            self.encoder_layers = [nn.Dense(h) for h in self.hidden]
            self.decoder_layers = [nn.Dense(h) for h in reversed(self.hidden)]
            self.to_image = nn.Dense(pixels)
        else:
            scale = 2 ** len(self.features)
            if self.image_shape[0] % scale or self.image_shape[1] % scale:
                raise ZooError(f"a conv VAE with {len(self.features)} stride-2 layers needs "
                               f"an image side divisible by {scale}, got "
                               f"{tuple(self.image_shape)}")  # fmt: skip
            self.encoder_layers = [blocks.Conv2D(f, (3, 3), (2, 2)) for f in self.features]
            self.base = (self.image_shape[0] // scale, self.image_shape[1] // scale)
            self.from_code = nn.Dense(math.prod(self.base) * self.features[-1])
            self.decoder_layers = [blocks.ConvTranspose(f, (3, 3), (2, 2))
                                   for f in (*reversed(self.features[:-1]), self.features[0])]  # fmt: skip
            self.to_image = blocks.Conv2D(self.image_shape[-1], (3, 3))
        self.to_latent = nn.Dense(2 * self.latent_dim)
        if self.decoder_dist == "gaussian":
            self.log_scale = self.param("log_scale", nn.initializers.zeros_init(), (pixels,))
        self.act = blocks.activation(self.activation if self.architecture == "mlp" else "relu")

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(μ, log σ²) of q(z | x), each `(batch, latent_dim)`."""
        if self.architecture == "mlp":
            h = _flat_images(x, self.image_shape, "vae")
        else:
            h = checks.images(x, "vae")
        for layer in self.encoder_layers:
            h = self.act(layer(h))
        mean, log_var = jnp.split(self.to_latent(h.reshape(len(h), -1)), 2, -1)
        return mean, log_var

    def decode(self, z: jax.Array) -> jax.Array:
        """The decoder's output `(batch, *image_shape)`: Bernoulli logits, or Gaussian means."""
        if self.architecture == "mlp":
            h = z
            for layer in self.decoder_layers:
                h = self.act(layer(h))
        else:
            h = self.act(self.from_code(z)).reshape(len(z), *self.base, self.features[-1])
            for layer in self.decoder_layers:
                h = self.act(layer(h))
        return self.to_image(h).reshape(len(z), *self.image_shape)

    def mean_image(self, out: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(out) if self.decoder_dist == "bernoulli" else out

    def log_likelihood(self, x: jax.Array, out: jax.Array) -> jax.Array:
        """log p(x | z) per example, of the decoder's output `out`."""
        if self.decoder_dist == "bernoulli":
            return -bernoulli_nll(out, x)
        log_scale = self.log_scale.reshape(self.image_shape)
        z = (x - out) * jnp.exp(-log_scale)
        per_pixel = -0.5 * z**2 - log_scale - 0.5 * jnp.log(2 * jnp.pi)
        return per_example_sum(per_pixel)

    def read(self, x: jax.Array) -> jax.Array:
        """The input as the model reads it: a Bernoulli sample of `x` with `binarize`."""
        x = checks.floats(x, "vae").reshape(len(x), *self.image_shape)
        if not self.binarize:
            return x
        return bernoulli(self.make_rng("noise"), x, x.shape).astype(x.dtype)

    def objective(self, x, weight=None, *, train: bool = False, clamped=None) -> dict:
        """−ELBO of one posterior sample, per example (`clamped`: DCIGN's mask of latent
        units held at the batch mean, `clamp_to_mean`)."""
        x = self.read(x)
        mean, log_var = self.encode(x)
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(
            self.make_rng("noise"), mean.shape, mean.dtype
        )
        if clamped is not None:
            z = clamp_to_mean(z, clamped)
        return self.elbo_terms(x, mean, log_var, z)

    def elbo_terms(self, x, mean, log_var, z) -> dict:
        """The objective's terms of posterior (`mean`, `log_var`) and its sample `z`."""
        x, mean, log_var, out = float32(x, mean, log_var, self.decode(z))
        kl = 0.5 * per_example_sum(jnp.exp(log_var) + mean**2 - 1 - log_var)
        nll = -self.log_likelihood(x, out)
        recon = squared_error(self.mean_image(jax.lax.stop_gradient(out)), x)
        return {"loss": nll + kl, "nll": nll, "kl": kl, "recon": recon}

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """The reconstruction (the decoder's output at z = μ(x))."""
        return self.decode(self.encode(x)[0])

    def importance_nll(self, x: jax.Array, k: int, chunk: int = 500) -> jax.Array:
        """−log p(x) per example by the k-sample importance-weighted bound of Burda et al.
        2016 (eq. 8): −log (1/k) Σ_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x); `x` is read
        as given (binarise it first for a Bernoulli decoder). Samples in chunks of `chunk`
        (one `lax.scan`), so memory holds `chunk` decodings of the batch at once."""
        x = checks.floats(x, "vae").reshape(len(x), *self.image_shape)
        mean, log_var = self.encode(x)
        std = jnp.exp(0.5 * log_var)
        chunks = -(-k // chunk)

        def body(carry, key):
            eps = jax.random.normal(key, (chunk, *mean.shape))
            z = mean + std * eps  # (chunk, batch, latent)
            out = self.decode(z.reshape(-1, self.latent_dim)).reshape(chunk, *x.shape)
            log_px = jax.vmap(self.log_likelihood, (None, 0))(x, out)
            log_pz = -0.5 * jnp.sum(z**2 + jnp.log(2 * jnp.pi), -1)
            log_qz = -0.5 * jnp.sum(eps**2 + jnp.log(2 * jnp.pi) + log_var, -1)
            return carry, log_px + log_pz - log_qz

        keys = jax.random.split(self.make_rng("noise"), chunks)
        _, log_w = jax.lax.scan(body, None, keys)
        log_w = log_w.reshape(-1, len(x))[:k]
        return -(jax.nn.logsumexp(log_w, 0) - jnp.log(k))

    def sample(self, rng: jax.Array, n: int) -> jax.Array:
        """`n` images in [0, 1]: the decoder's means at z ~ N(0, I)."""
        return jnp.clip(
            self.mean_image(self.decode(jax.random.normal(rng, (n, self.latent_dim)))), 0, 1
        )


class DCIGN(VAE):
    """The deep convolutional inverse graphics network of Kulkarni, Whitney, Kohli &
    Tenenbaum, NeurIPS 2015: a convolutional VAE whose first `len(FACTORS) - 1` latent units
    are assigned to the generative factors scale, rotation, x and y of the sprites
    (`zoo_jax.data.sprites`), the rest to the intrinsic ones (the shape), trained on
    mini-batches in which one factor varies with the units of the others clamped to the
    batch mean (`learners.DCIGNLearner`; `clamp=False`: random batches without clamping,
    the plain VAE of the same network). The paper's 150×150 faces with 200 latent units
    become 32×32 sprites with `latent_dim` 10 (4 assigned), and the paper's three
    convolutional layers of 96, 64 and 32 maps (5×5, max-pooling) stride-2 3×3 layers of
    16, 32 and 32."""

    latent_dim: int = 10
    architecture: str = "conv"
    features: Sequence[int] = (16, 32, 32)
    binarize: bool = False
    image_shape: Sequence[int] = (32, 32, 1)
    clamp: bool = True
    factor_units: ClassVar[int] = 4  # scale, rotation, x, y: units 0-3

    def setup(self):
        if self.latent_dim <= self.factor_units:
            raise ZooError(f"dcign needs latent_dim > {self.factor_units} (a unit per factor "
                           f"and intrinsic ones), got {self.latent_dim}")  # fmt: skip
        super().setup()


class TiedSigmoidLayer(nn.Module):
    """One layer of a stacked autoencoder: h = σ(x W + b), reconstructed as σ(h Wᵀ + c)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, *, reconstruct: bool = False):
        w = self.param("kernel", nn.initializers.glorot_uniform(), (x.shape[-1], self.features))
        b = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        c = self.param("decoder_bias", nn.initializers.zeros_init(), (x.shape[-1],))
        h = jax.nn.sigmoid(x @ w + b)
        return (h, h @ w.T + c) if reconstruct else h

    @nn.nowrap
    def decode(self, h: jax.Array) -> jax.Array:
        """Reconstruction logits of a code (after the layer has been built)."""
        p = self.variables["params"]
        return h @ p["kernel"].T + p["decoder_bias"]


class StackedAutoencoder(nn.Module):
    """The stacked autoencoder of Bengio, Lamblin, Popovici & Larochelle, "Greedy layer-wise
    training of deep networks", NeurIPS 2007 (SAA-3 of Vincent et al. 2010, Table 3), and,
    with `noise_level` > 0, the stacked denoising autoencoder of Vincent, Larochelle, Lajoie,
    Bengio & Manzagol, JMLR 2010 (SdA-3): three sigmoid layers of 1,000 units with tied
    weights, each pre-trained in turn to reconstruct (from its corrupted version, for SdA) the
    code of the layers below with the cross-entropy loss, then a softmax layer on top and the
    whole stack fine-tuned as a classifier (`learners.LayerwiseLearner`): each layer is
    pre-trained for `pretrain_epochs` epochs, the rest of the run fine-tunes (a run shorter
    than the pre-training never fine-tunes). `contraction` > 0 adds Rifai et al. 2011's
    λ ‖J‖_F² to each layer's pre-training loss: a stack of contractive autoencoders.

    `__call__(x)` gives class logits; `encode(x, depth)` the code of the first `depth`
    layers; `layer_objective(x, layer)` layer `layer`'s reconstruction terms; `reconstruct`
    the input through the whole stack and back (tied weights)."""

    hidden: Sequence[int] = (1000, 1000, 1000)
    corruption: str = "masking"
    noise_level: float = 0.0
    pretrain_epochs: int = 5
    contraction: float = 0.0
    num_classes: int = 10
    image_shape: Sequence[int] = (28, 28, 1)
    terms: ClassVar[tuple[str, ...]] = ("accuracy", "recon")

    def setup(self):
        if not self.hidden:
            raise ZooError("a stacked autoencoder needs at least one layer (hidden)")
        _check_corruption("stacked autoencoder", self.corruption, self.noise_level)
        self.layers = [TiedSigmoidLayer(h) for h in self.hidden]
        self.head = nn.Dense(self.num_classes)

    def encode(self, x: jax.Array, depth: int | None = None) -> jax.Array:
        h = _flat_images(x, self.image_shape, "stacked autoencoder")
        for layer in self.layers[: len(self.layers) if depth is None else depth]:
            h = layer(h)
        return h

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        return self.head(self.encode(x))

    def reconstruct(self, x: jax.Array) -> jax.Array:
        """The input through every layer and back down the tied weights, in [0, 1]."""
        h = self.encode(x)
        for layer in reversed(self.layers):
            h = jax.nn.sigmoid(layer.decode(h))
        return h.reshape(len(x), *self.image_shape)

    def layer_objective(self, x: jax.Array, layer: int, *, train: bool = False) -> dict:
        """Layer `layer`'s reconstruction of its input (the code of the layers below, which
        are not trained here), from that input corrupted in training."""
        below = jax.lax.stop_gradient(self.encode(x, layer))
        seen = below
        if train and self.noise_level > 0:
            seen = corrupt(self.make_rng("noise"), below, self.corruption, self.noise_level)
        h, logits = self.layers[layer](seen, reconstruct=True)
        below, h, logits = float32(below, h, logits)
        loss = bernoulli_nll(logits, below)
        if self.contraction:  # Rifai et al. 2011's penalty, layer by layer
            kernel = self.layers[layer].variables["params"]["kernel"]
            loss = loss + self.contraction * sigmoid_jacobian_norm(h, kernel)
        return {"loss": loss, "recon": squared_error(jax.nn.sigmoid(logits), below)}


def _card(**kw) -> ZooCard:
    defaults = dict(
        family="autoencoders", input_shape=(28, 28, 1), input_layout="NHWC",
        learner="reconstruction", loss="binary_crossentropy", optimizer="adam",
        learning_rate=1e-3, epochs=20, batch_size=128,
    )  # fmt: skip
    return ZooCard(**(defaults | kw))


CARDS = [
    _card(
        name="autoencoder",
        chart_node="autoencoder",
        reference="Hinton & Salakhutdinov 2006, Science 313:504 (an undercomplete dense autoencoder, as the seed's Keras model)",
        build=Autoencoder,
        description="784-256-32-256-784, ReLU, sigmoid output, binary cross-entropy",
        test_overrides={"hidden": (8,), "code_size": 4},
    ),
    _card(
        name="denoising_autoencoder",
        chart_node="denoising_autoencoder",
        reference="Vincent, Larochelle, Bengio & Manzagol 2008, ICML (denoising autoencoders)",
        build=DenoisingAutoencoder,
        description="784-500 sigmoid, tied weights, 25% masking noise, clean target",
        test_overrides={"code_size": 8},
    ),
    _card(
        name="sparse_autoencoder",
        chart_node="sparse_autoencoder",
        reference="Ng, CS294A lecture notes 'Sparse autoencoder' (2011): KL sparsity, rho 0.1, beta 3",
        build=SparseAutoencoder,
        description="784-196 sigmoid, KL(rho || rho_hat) x 3 + weight decay 3e-3",
        test_overrides={"code_size": 8},
    ),
    _card(
        name="stacked_autoencoder",
        chart_node="stacked_autoencoder",
        reference="Bengio, Lamblin, Popovici & Larochelle 2007, NeurIPS (SAA-3 of Vincent et al. 2010, Table 3)",
        build=StackedAutoencoder,
        learner="layerwise",
        loss="sparse_categorical_crossentropy",
        epochs=30,
        description="784-1000-1000-1000 sigmoid, tied; greedy layer-wise, then fine-tuned with softmax",
        test_overrides={"hidden": (8, 8)},
    ),
    _card(
        name="convolutional_autoencoder",
        chart_node="convolutional_autoencoder",
        reference="Masci, Meier, Ciresan & Schmidhuber 2011, ICANN (stacked convolutional auto-encoders)",
        build=ConvolutionalAutoencoder,
        epochs=10,
        description="conv 16, pool, conv 32, pool, 1x1 to 7x7x4; conv + up-sampling back",
        test_overrides={"features": (4, 4), "code_channels": 2},
    ),
    _card(
        name="stacked_denoising_autoencoder",
        chart_node="stacked_denoising_autoencoder",
        reference="Vincent, Larochelle, Lajoie, Bengio & Manzagol 2010, JMLR 11 (SdA-3, Table 3)",
        build=functools.partial(StackedAutoencoder, noise_level=0.25),
        learner="layerwise",
        loss="sparse_categorical_crossentropy",
        epochs=30,
        description="SdA-3: 784-1000-1000-1000 sigmoid, 25% masking per layer; then fine-tuned",
        test_overrides={"hidden": (8, 8)},
    ),
    _card(
        name="contractive_autoencoder",
        chart_node="contractive_autoencoder",
        reference="Rifai, Vincent, Muller, Glorot & Bengio 2011, ICML (contractive auto-encoders)",
        build=ContractiveAutoencoder,
        description="784-1000 sigmoid, tied, + 0.1 x ||J||_F^2 (closed form)",
        test_overrides={"code_size": 8},
    ),
    _card(
        name="recurrent_autoencoder",
        chart_node="recurrent_autoencoder",
        reference="Srivastava, Mansimov & Salakhutdinov 2015, ICML (LSTM autoencoder; the seed's Keras model)",
        build=RecurrentAutoencoder,
        input_shape=(28, 28),
        input_layout="N,T,F (MNIST rows; FSDD: 100 frames of 16 bands)",
        dataset_shapes={"fsdd": (100, 16)},
        epochs=10,
        description="LSTM 64 -> RepeatVector -> LSTM 64 -> TimeDistributed Dense, reversed target",
        test_overrides={"units": 4},
    ),
    _card(
        name="vae",
        chart_node="variational_autoencoder",
        reference="Kingma & Welling 2014, ICLR; the model of Burda, Grosse & Salakhutdinov 2016, Table 1",
        build=VAE,
        loss="elbo",
        batch_size=100,
        epochs=50,
        description="784-200-200-(50) tanh, Bernoulli decoder, dynamically binarised MNIST",
        test_overrides={"hidden": (8,), "latent_dim": 2},
    ),
    _card(
        name="dcign",
        chart_node="dcign",
        reference="Kulkarni, Whitney, Kohli & Tenenbaum 2015, NeurIPS (deep convolutional inverse graphics network)",
        build=DCIGN,
        learner="dcign",
        dataset="sprites",
        input_shape=(32, 32, 1),
        num_classes=3,
        loss="elbo",
        epochs=20,
        description="conv 16-32-32 / transposed back, 10 latents (4 tied to factors), clamped batches",
        test_overrides={"features": (4, 4, 4), "latent_dim": 5},
    ),
]
