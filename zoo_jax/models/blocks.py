"""Building blocks Flax lacks: layers the zoo's models share.

`Conv2D`, `ConvTranspose` and `Dropout` compute what `flax.linen.Conv`,
`flax.linen.ConvTranspose(transpose_kernel=True)` and `flax.linen.Dropout` compute, with the
same parameter names and shapes (checkpoints and converters do not care), through
`zoo_jax.lowering` (the backend's fastest form of the same function). The rest are layers
from the papers the textbooks cite: PReLU, Maxout, PyTorch-style pooling, conv + batch norm, separable
convolution, local response normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax import activations
from zoo_jax.errors import ZooError
from zoo_jax.lowering import bernoulli, conv2d, conv_transpose, max_pool


class Conv2D(nn.Module):
    """2-D convolution (NHWC input, HWIO kernel), drop-in for `nn.Conv` with 2-D kernels.

    Parameters are `kernel` `(kh, kw, in, features)` and `bias` `(features,)`, as in
    `nn.Conv`. `implementation`: one of `conv2d`'s.
    """

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1)
    padding: str | Sequence[tuple[int, int]] = "SAME"
    use_bias: bool = True
    feature_group_count: int = 1
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
    implementation: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        cin = x.shape[-1]
        kernel = self.param(
            "kernel", self.kernel_init, (kh, kw, cin // self.feature_group_count, self.features)
        )
        y = conv2d(
            x, kernel, self.strides, self.padding, self.feature_group_count, self.implementation
        )
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


class ConvTranspose(nn.Module):
    """Drop-in for `nn.ConvTranspose(features, kernel_size, strides, padding,
    transpose_kernel=True)` over NHWC: the same parameters (`kernel` `(kh, kw, features,
    in)`, `bias`) and initialisers, computed by `conv_transpose`."""

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1)
    padding: str = "SAME"
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (*self.kernel_size, self.features, x.shape[-1])
        kernel = self.param("kernel", self.kernel_init, shape)
        y = conv_transpose(x, kernel, self.strides, self.padding)
        return y + self.param("bias", self.bias_init, (self.features,)) if self.use_bias else y


class Dropout(nn.Dropout):
    """`flax.linen.Dropout` with its mask drawn by `lowering.bernoulli` (the same mask,
    faster on the CPU): same arguments, same module name, so the same RNG stream and the
    same results."""

    @nn.compact
    def __call__(self, inputs, deterministic: bool | None = None, rng=None):
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:  # as Flax: no 0 / 0 in the gradient
            return jnp.zeros_like(inputs)
        keep_prob = 1.0 - self.rate
        rng = self.make_rng(self.rng_collection) if rng is None else rng
        shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            shape[dim] = 1
        mask = jnp.broadcast_to(bernoulli(rng, keep_prob, shape), inputs.shape)
        return lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))


class PReLU(nn.Module):
    """Parametric ReLU, f(x) = x for x ≥ 0 and a·x otherwise, with a learned slope `a` per
    channel (the last axis).

    Reference: He, Zhang, Ren & Sun, "Delving deep into rectifiers", ICCV 2015,
    arXiv:1502.01852 — channel-wise slopes initialised at 0.25 (our defaults). Keras's
    `PReLU` initialises a = 0 and learns one slope per element unless `shared_axes` is set;
    on `(batch, features)` inputs, or with `shared_axes=[1, 2]` on images, it is this layer.
    """

    alpha_init: float = 0.25

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        alpha = self.param("alpha", nn.initializers.constant(self.alpha_init), (x.shape[-1],))
        return jax.nn.relu(x) - alpha * jax.nn.relu(-x)  # Keras's form; no where() kink


class Maxout(nn.Module):
    """Maxout units: h_i = max_j (x·W_ij + b_ij), j = 1 … `pieces`.

    Reference: Goodfellow, Warde-Farley, Mirza, Courville & Bengio, "Maxout networks",
    ICML 2013, arXiv:1302.4389. A maxout unit replaces a Dense unit and its activation, so
    the layer owns its `features × pieces` affine maps (kernel `(in, features * pieces)`,
    pieces of one unit adjacent); Glorot-uniform kernels, zero biases, as Keras's Dense.
    """

    features: int
    pieces: int = 2
    kernel_init: nn.initializers.Initializer = nn.initializers.glorot_uniform()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.pieces < 1:
            raise ZooError(f"maxout needs pieces >= 1, got {self.pieces}")
        dense = nn.Dense(self.features * self.pieces, kernel_init=self.kernel_init,
                         bias_init=self.bias_init)  # fmt: skip
        z = dense(x)
        return z.reshape(*z.shape[:-1], self.features, self.pieces).max(axis=-1)


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation `name` for use inside a compact module: an element-wise function from
    `zoo_jax.activations`, or a new `PReLU` (which has parameters). Maxout is not element-wise
    (it replaces the Dense layer before it): models build `Maxout` themselves."""
    if name == "prelu":
        return PReLU()
    if name == "maxout":
        raise ZooError("maxout replaces a Dense layer; this model cannot use it here")
    return activations.get(name)


def pads(padding: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """PyTorch / Caffe symmetric `padding=p` as explicit (low, high) pairs."""
    return ((padding, padding), (padding, padding))


def pool(
    x: jax.Array,
    kind: str,
    window: int,
    stride: int,
    padding: int | str = 0,
    ceil_mode: bool = False,
) -> jax.Array:
    """Max or average pooling over NHWC with PyTorch's `padding` and `ceil_mode` (windows
    that start inside the input are kept; the overhang is padded with −∞ / excluded), or a
    TF padding string. Non-overlapping unpadded max pools take the fast `max_pool`."""
    if isinstance(padding, str):
        spec = padding
    else:
        spec = []
        for size in x.shape[1:3]:
            span = size + 2 * padding - window
            out = (-(-span // stride) if ceil_mode else span // stride) + 1
            if ceil_mode and (out - 1) * stride >= size + padding:
                out -= 1  # PyTorch: the last window must start inside the input or left pad
            spec.append((padding, max(0, (out - 1) * stride + window - size - padding)))
    if kind == "max":
        if window == stride and spec in ("VALID", [(0, 0), (0, 0)]):
            return max_pool(x, (window, window))
        return max_pool(x, (window, window), (stride, stride), spec)
    return nn.avg_pool(x, (window, window), (stride, stride), spec, count_include_pad=False)


class ConvBN(nn.Module):
    """Convolution (no bias), batch norm, optional ReLU: the unit of ResNet, GoogLeNet,
    Xception. `bn_eps` / `bn_momentum` follow the reference (PyTorch momentum 0.1 = 0.9 here)."""

    features: int
    kernel: int
    stride: int = 1
    padding: int | str = 0
    groups: int = 1
    relu: bool = True
    bn_eps: float = 1e-5
    bn_momentum: float = 0.9
    zero_init_scale: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        padding = self.padding if isinstance(self.padding, str) else pads(self.padding)
        x = Conv2D(
            self.features,
            (self.kernel, self.kernel),
            (self.stride, self.stride),
            padding=padding,
            use_bias=False,
            feature_group_count=self.groups,
            kernel_init=nn.initializers.he_normal(),
        )(x)
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=self.bn_eps,
            scale_init=nn.initializers.zeros_init()
            if self.zero_init_scale
            else nn.initializers.ones,
        )(x)
        return nn.relu(x) if self.relu else x


class SeparableConv2D(nn.Module):
    """Depthwise-separable convolution as Keras's `SeparableConv2D(use_bias=False)`: a
    depthwise k×k convolution (one filter per channel) then a pointwise 1×1 convolution.
    Parameters `depthwise` `(k, k, 1, in)` and `pointwise` `(1, 1, in, out)`."""

    features: int
    kernel: int = 3
    padding: str = "SAME"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin = x.shape[-1]
        init = nn.initializers.glorot_uniform()
        depthwise = self.param("depthwise", init, (self.kernel, self.kernel, 1, cin))
        pointwise = self.param("pointwise", init, (1, 1, cin, self.features))
        return conv2d(x, depthwise, padding=self.padding, groups=cin) @ pointwise[0, 0]


def local_response_norm(
    x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> jax.Array:
    """Local response normalisation across channels (Krizhevsky et al. 2012, §3.3):
    b_c = a_c / (k + α Σ_{|c'−c| ≤ size//2} a_{c'}²)^β, with the paper's constants. Caffe and
    PyTorch divide α by `size` and use k = 1: pass `alpha=1e-4 / 5, k=1` for theirs."""
    squared = jnp.square(x)
    half = size // 2
    padded = jnp.pad(squared, ((0, 0), (0, 0), (0, 0), (half, size - 1 - half)))
    window = sum(padded[..., i : i + x.shape[-1]] for i in range(size))
    return x / (k + alpha * window) ** beta
