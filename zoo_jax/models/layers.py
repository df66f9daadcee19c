"""Building blocks Flax lacks, or that need a backend-specific implementation to be fast.

`Conv2D` and `max_pool` compute exactly what `flax.linen.Conv` / `flax.linen.max_pool` compute
(same parameter names and shapes, so checkpoints and converters do not care). On the CPU,
which convolution is fast depends on who runs it. XLA:CPU (jaxlib 0.10) hands convolutions
to the YNNPACK library by default; XLA's own (Eigen) convolution is faster on this project's
shapes, so the engine compiles its CPU steps with `CPU_COMPILER_OPTIONS`, which keep YNNPACK
for dots and reductions but not for convolutions. Train steps measured on a 2-core x86
(AVX2) CPU, the two variants compiled in one process and timed in alternating 1 s turns
(an ad-hoc A/B, not a script of `experiments/`; a training run shared the machine): im2col for
every convolution with XLA's default options (what `Conv2D` did before) against this
module's choice with `CPU_COMPILER_OPTIONS`:

* the seed CNN, Adam, batch 128: 212 → 156 ms (1.36× faster);
* batch 32: TensorFlow-tutorial CNN 1.61×, ZFNet 1.37×, ResNet-18 (small-image) 1.35×,
  VGG-11 1.17×, LeNet-5 1.11× faster.

`Conv2D` keeps im2col on the CPU where XLA's convolution is slow: inputs smaller than the
kernel (VGG's 2×2 maps under a 3×3 kernel: forward + backward 820 ms in XLA, 14 ms as
im2col, batch 32), and grouped and depthwise convolutions (see `conv2d_im2col`; measured with
XLA's default options) too wide for the block-diagonal lowering. That one (`cpu_lowering`)
computes a grouped convolution of at most 256 input channels as one dense convolution whose
kernel is zero between the groups: `groups` times the arithmetic, but XLA's dense
convolution beats both XLA's grouped one and im2col's batched products there, whose groups
hold 1 to 8 channels. Forward + backward, 3×3, 32 groups, batch 128, with the engine's
options (one process, medians of seven): 28×28×32 198 → 32 ms, 14×14×64 121 → 27 ms,
7×7×128 56 → 24 ms, 4×4×256 36 → 29 ms (ResNeXt's stages at width 0.25); batch 32,
28×28×128 2.6× and 14×14×256 1.5× faster, but 7×7×512 0.76× (hence the limit); depthwise,
batch 128: 28×28×16 7.2×, 7×7×91 2.9× faster. Whole train steps (Adam, batch 128):
ResNeXt-50 (width 0.25) 2.47 → 1.85 s, ResNeXt-101 (0.125) 4.29 → 2.52 s, Xception (0.125)
0.40 → 0.29–0.36 s. `zoo-jax bench` counts FLOPs with XLA's own convolutions
(`plain_lowering`), so the zeros are not counted as the model's work.
A model jitted outside the engine gets XLA's defaults unless it passes the same options
(`jax.jit(f, compiler_options=layers.compiler_options())`): there XLA's convolution is
YNNPACK's, 1–2× slower than im2col. `max_pool` over non-overlapping windows is a reshape
and a max on every backend (its gradient is cheaper than `select_and_scatter`'s); over
overlapping stride-1 windows, on the CPU, it is `overlapping_max_pool`, whose gradient is
element-wise masks (GoogLeNet's train step at width 0.25, batch 128, against
`select_and_scatter`'s, one process, alternating turns: 2.20 → 1.48 s).
`ConvTranspose` is `flax.linen.ConvTranspose(transpose_kernel=True)` whose kernel gradient
avoids XLA:CPU's slow dilated convolution (`conv_transpose`; the deconvolutional network's
train step at the 28×28 configuration, batch 128, one process, alternating turns: 131 → 68
ms; the full-size one at batch 32: 36.5 → 14.0 ms).
On GPU and TPU the native convolution is used unchanged and no options are passed.
`Dropout` is `flax.linen.Dropout` with the same mask drawn faster on the CPU (`bernoulli`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Callable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from zoo_jax import activations
from zoo_jax.errors import InputError, ZooError


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow / Keras SAME padding: output ceil(size / stride), extra pad at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(x: jax.Array, kernel: Sequence[int], strides: Sequence[int], padding) -> list:
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        return [_same_padding(x.shape[1 + i], kernel[i], strides[i]) for i in range(2)]
    return [tuple(p) for p in padding]


def conv2d_im2col(
    x: jax.Array, kernel: jax.Array, strides=(1, 1), padding="VALID", groups: int = 1
) -> jax.Array:
    """NHWC × HWIO convolution as one matmul over shifted, strided slices (im2col).

    Equal to `lax.conv_general_dilated(x, kernel, strides, padding, ('NHWC','HWIO','NHWC'),
    feature_group_count=groups)`. The slices' gradient is a pad-and-add, so the backward
    pass is matmuls too. Grouped (and depthwise) convolutions are one batched matmul over
    the groups, or one convolution per group where there are at most 4: XLA:CPU's grouped
    convolution was 1.1–2× slower for depthwise, 1.5× for 32 groups and 5–9× for 2 groups
    (forward + backward on ResNeXt / Xception / Caffe-AlexNet shapes, 2 cores, two trials).
    """
    kh, kw, cin, cout = kernel.shape  # cin: input channels per group
    if 1 < groups <= 4:  # a few wide groups (Caffe's AlexNet): a convolution each, 2× faster
        og = cout // groups
        return jnp.concatenate(
            [
                conv2d_im2col(x[..., g * cin : (g + 1) * cin], kernel[..., g * og : (g + 1) * og],
                              strides, padding)
                for g in range(groups)
            ],
            axis=-1,
        )  # fmt: skip
    (pt, pb), (pl, pr) = _pads(x, (kh, kw), strides, padding)
    x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    sh, sw = strides
    out_h = (x.shape[1] - kh) // sh + 1
    out_w = (x.shape[2] - kw) // sw + 1
    columns = [
        x[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = columns[0] if len(columns) == 1 else jnp.concatenate(columns, axis=-1)
    if groups == 1:
        return patches @ kernel.reshape(kh * kw * cin, cout)
    # patches (..., tap, group, cin) · kernel (tap, cin, group, cout / groups), per group
    patches = patches.reshape(*patches.shape[:3], kh * kw, groups, cin)
    kernel = kernel.reshape(kh * kw, cin, groups, cout // groups)
    y = jnp.einsum("bhwtgc,tcgo->bhwgo", patches, kernel)
    return y.reshape(*y.shape[:3], cout)


def use_matmul_lowering() -> bool:
    return jax.default_backend() == "cpu"


# XLA:CPU's default library fusions (jaxlib 0.10: individual dots, individual convolutions,
# reductions) without the convolutions, which then go to XLA's own (Eigen) kernels.
CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
    )
}


@functools.cache
def cpu_compiler_options() -> dict[str, str]:
    """`CPU_COMPILER_OPTIONS` where this jaxlib knows them, else `{}` (an older jaxlib keeps
    its defaults)."""
    try:
        jax.jit(lambda x: x + 1).lower(np.float32(0)).compile(CPU_COMPILER_OPTIONS)
    except Exception:  # an unknown option or enum value: XLA raises its runtime error
        return {}
    return dict(CPU_COMPILER_OPTIONS)


def compiler_options() -> dict[str, str] | None:
    """What to pass as `jax.jit(..., compiler_options=)` on the default backend: the CPU's
    options there, None elsewhere."""
    return (cpu_compiler_options() or None) if jax.default_backend() == "cpu" else None


def cpu_fusion_barrier(x: jax.Array) -> jax.Array:
    """Identity (value and gradient) that XLA:CPU cannot fuse through; unchanged `x` on other
    backends.

    XLA:CPU's instruction fusion copies cheap element-wise producers into every consumer.
    Along a post-activation residual stream, block after block of `relu(bn(conv) + shortcut)`
    with no convolution between one block's output and the next's, it therefore recomputes
    the chain of all earlier blocks of a stage inside each block's fusions (and the backward
    pass does the same with the cotangents), so the element-wise work grows with the square
    of the depth. A conditional is opaque to fusion: its operand is materialized once, and
    JAX transposes it into a conditional in the backward pass too. Both branches are copies
    (JAX forwards a branch that returns its operand unchanged, and the conditional would be
    gone); the predicate is a value of `x`, so XLA cannot fold it. Adam train steps on the
    2-core CPU, with and without the barrier (an ad-hoc A/B, one process per variant, median
    of four steps): ResNet-152 at width 0.125, batch 128, 4.06 → 1.02 s (the pre-activation
    ResNet-152 took 0.99 s); batch 32: ResNet-152 520 → 254 ms, ResNet-50 134 → 114 ms,
    ResNet-18 29 → 25 ms, ResNeXt-50 (width 0.25) 575 → 520 ms. The pre-activation ResNet's
    stream (a bare `y + shortcut` that feeds a BatchNorm) did not change with it, so it has
    none. A test compiles the gradient of 8, 16 and 32 such blocks and checks that XLA's FLOP
    count doubles with the depth (without the barrier: ×2.9 from 16 to 32 blocks). With it
    the reduced CPU rows train on all 60,000 images: one MNIST epoch of ResNet-152 at width
    0.125 took 537 s, where 20,000 images had taken 508 s (ResNet-101: 363 s, where 30,000
    had taken 451 s), and `zoo_bench` measured ResNet-152 at 104 GFLOP/s, level with the
    pre-activation ResNet-152, where it had been 32 against 92. Tried first and not adopted:
    `lax.optimization_barrier` (XLA:CPU drops it and fuses across it: 0.93×), disabling the
    fusion pass (the pre-activation ResNet 1.27× slower), 1×1 convolutions as matrix
    products, and `nn.scan` over the blocks (3.5× slower). On GPU a conditional's predicate
    is read by the host, a synchronisation per block: there the function returns `x`.
    """
    if jax.default_backend() != "cpu":
        return x
    return lax.cond(x.reshape(-1)[0] > 0, jnp.copy, jnp.copy, x)


BLOCK_DIAGONAL_MAX_CHANNELS = 256
IM2COL_MAX_TAPS = 121  # im2col traces a slice per kernel tap: an 11×11 kernel at most


def cpu_lowering(x_shape: Sequence[int], kernel_size: Sequence[int], groups: int) -> str:
    """How a convolution lowers on the CPU (see the module docstring): "im2col" for inputs
    smaller than the kernel; for grouped ones, "block_diagonal" up to
    `BLOCK_DIAGONAL_MAX_CHANNELS` input channels and more than 4 groups, else "im2col";
    "xla" for the rest, and for kernels of more than `IM2COL_MAX_TAPS` taps (a `--set
    kernel_size=1000` would otherwise trace a million slices)."""
    if kernel_size[0] * kernel_size[1] > IM2COL_MAX_TAPS:
        return "xla"
    if any(x_shape[1 + i] < kernel_size[i] for i in range(2)):
        return "im2col"
    if groups > 1:
        narrow = groups > 4 and x_shape[-1] <= BLOCK_DIAGONAL_MAX_CHANNELS
        return "block_diagonal" if narrow else "im2col"
    return "xla"


def block_diagonal(kernel: jax.Array, groups: int) -> jax.Array:
    """A grouped convolution's kernel `(kh, kw, cin / groups, cout)` as the kernel of the
    dense convolution `(kh, kw, cin, cout)` that computes the same: zero between groups."""
    cin, cout = kernel.shape[2], kernel.shape[3]
    mask = np.kron(np.eye(groups, dtype=np.float32), np.ones((cin, cout // groups), np.float32))
    return jnp.tile(kernel, (1, 1, groups, 1)) * mask.astype(kernel.dtype)


_PLAIN_LOWERING = contextvars.ContextVar("plain_lowering", default=False)


@contextlib.contextmanager
def plain_lowering() -> Iterator[None]:
    """Functions traced inside take JAX's and XLA's plain forms of what this package lowers
    its own way, on any backend: XLA's convolution for every "auto" one, JAX's gradient of a
    transposed convolution, the LSTM's step-by-step scan (`cells.linear_recurrence`'s
    gradient is otherwise its own). For counting a model's FLOPs: XLA counts the zeros
    between the block-diagonal lowering's groups and in a dilated input as work, and a
    scan's body once but `linear_recurrence`'s products after its loop over every step.
    Trace fresh functions: a cached trace keeps its lowering."""
    token = _PLAIN_LOWERING.set(True)
    try:
        yield
    finally:
        _PLAIN_LOWERING.reset(token)


def lowering_is_plain() -> bool:
    """Whether the current trace is inside `plain_lowering`."""
    return _PLAIN_LOWERING.get()


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int] = (1, 1),
    padding: str | Sequence[tuple[int, int]] = "SAME",
    groups: int = 1,
    implementation: str = "auto",
) -> jax.Array:
    """NHWC × HWIO convolution, `lax.conv_general_dilated(..., feature_group_count=groups)`,
    lowered as `implementation` says: "xla", "im2col", "block_diagonal", or "auto" (the
    CPU's `cpu_lowering`, XLA's convolution on other backends)."""
    pads = _pads(x, kernel.shape[:2], strides, padding)
    if any(x.shape[1 + i] + sum(pads[i]) < kernel.shape[i] for i in range(2)):
        raise InputError(
            f"a {kernel.shape[0]}×{kernel.shape[1]} convolution does not fit a "
            f"{x.shape[1]}×{x.shape[2]} feature map: the input is too small for this model"
        )
    if implementation == "auto":
        cpu = use_matmul_lowering() and not lowering_is_plain()
        implementation = cpu_lowering(x.shape, kernel.shape[:2], groups) if cpu else "xla"
    if implementation == "im2col":
        return conv2d_im2col(x, kernel, tuple(strides), padding, groups)
    if implementation == "block_diagonal":
        kernel, groups = block_diagonal(kernel, groups), 1
    elif implementation != "xla":
        raise ZooError(
            f"convolution implementation must be auto, xla, im2col or block_diagonal, "
            f"got {implementation!r}"
        )
    return lax.conv_general_dilated(
        x, kernel, tuple(strides), padding if isinstance(padding, str) else list(padding),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups,
    )  # fmt: skip


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


def conv_transpose(
    x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: str = "SAME"
) -> jax.Array:
    """`lax.conv_transpose(x, kernel, strides, padding, transpose_kernel=True)` over NHWC, the
    kernel `(kh, kw, out, in)` (the HWIO kernel of the convolution whose gradient this is, as
    Keras's `Conv2DTranspose` computes it); `padding` "SAME" or "VALID".

    On the CPU only its derivatives differ. JAX's gradient for the kernel is a convolution
    with a dilated kernel, which XLA:CPU computes in a generic loop rather than its Eigen
    kernels. The same sums written on the input dilated by an explicit `lax.pad` (interior
    zeros) make the kernel's gradient an ordinary convolution of the padded input with the
    output's cotangent. `_cpu_conv_transpose`'s JVP uses that form for the kernel's tangent
    and XLA's for the input's, so reverse mode (their transposes) gets the ordinary
    convolution for the kernel and XLA's strided one for the input, and forward mode still
    works. Forward + backward, 3×3 stride 2, batch 128, with the engine's options, medians of
    seven: 7×7×32 → 14×14×32 50 → 25 ms, 14×14×32 → 28×28×16 112 → 53 ms (in another run,
    the padded form for both gradients: 55 → 30 and 143 → 79 ms). Other backends, and
    `plain_lowering` (which counts FLOPs without the zeros of the dilated input),
    differentiate `lax.conv_transpose`.
    """
    strides = tuple(strides)
    if padding not in ("SAME", "VALID"):
        raise ZooError(f"conv_transpose padding must be SAME or VALID, got {padding!r}")
    if use_matmul_lowering() and not lowering_is_plain():  # FLOPs: count the model's
        return _cpu_conv_transpose(x, kernel, strides, padding)
    return _xla_conv_transpose(x, kernel, strides, padding)


def _xla_conv_transpose(x, kernel, strides, padding):
    return lax.conv_transpose(
        x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        transpose_kernel=True,
    )  # fmt: skip


def _dilated_conv_transpose(x, kernel, strides, padding):
    """`_xla_conv_transpose` as a stride-1 convolution of the explicitly dilated, padded input."""
    pads = []
    for k, s in zip(kernel.shape[:2], strides, strict=True):  # lax.conv_transpose's padding
        total = k + s - 2 + (max(k - s, 0) if padding == "VALID" else 0)
        low = k - 1 if padding == "VALID" or s > k - 1 else -(-total // 2)
        pads.append((low, total - low, s - 1))
    x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *pads, (0, 0, 0)])
    return lax.conv_general_dilated(
        x, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )  # fmt: skip


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _cpu_conv_transpose(x, kernel, strides, padding):
    return _xla_conv_transpose(x, kernel, strides, padding)


@_cpu_conv_transpose.defjvp
def _cpu_conv_transpose_jvp(strides, padding, primals, tangents):
    (x, kernel), (dx, dkernel) = primals, tangents
    tangent = _xla_conv_transpose(dx, kernel, strides, padding)
    tangent += _dilated_conv_transpose(x, dkernel, strides, padding)
    return _xla_conv_transpose(x, kernel, strides, padding), tangent


class ConvTranspose(nn.Module):
    """Drop-in for `nn.ConvTranspose(features, kernel_size, strides, padding,
    transpose_kernel=True)` over NHWC: the same parameters (`kernel` `(kh, kw, features,
    in)`, `bias`) and initialisers, computed by `conv_transpose`."""

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1)
    padding: str = "SAME"
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (*self.kernel_size, self.features, x.shape[-1])
        kernel = self.param("kernel", self.kernel_init, shape)
        y = conv_transpose(x, kernel, self.strides, self.padding)
        return y + self.param("bias", self.bias_init, (self.features,))


def max_pool(x: jax.Array, window=(2, 2), strides=None, padding="VALID") -> jax.Array:
    """Max pooling over NHWC, equal to `nn.max_pool` (`padding`: "VALID", "SAME" or a pair of
    (low, high) pads per spatial axis, padded with −∞).

    When windows do not overlap (window == strides) it is a reshape and a max, whose gradient
    is cheap everywhere. Overlapping stride-1 windows (GoogLeNet's 3×3/1) are
    `overlapping_max_pool` on the CPU; other overlapping windows (AlexNet's, ZFNet's and
    Xception's 3×3/2), and all of them off the CPU, are `nn.max_pool`. For 3×3/2 the masked
    gradient was faster alone, but in whole train steps XLA:CPU fused it with its neighbours
    at a loss (Xception, full width, batch 32: 15 % slower; AlexNet 1.10×, ZFNet 1.02× faster
    at batch 128; one process, alternating turns).
    """
    strides = tuple(strides or window)
    if tuple(window) != strides:
        if not use_matmul_lowering() or strides != (1, 1):
            return nn.max_pool(x, tuple(window), strides, padding)
        pads = tuple(tuple(p) for p in _pads(x, window, strides, padding))
        return overlapping_max_pool(x, tuple(window), strides, pads)
    (pt, pb), (pl, pr) = _pads(x, window, strides, padding)
    if padding == "VALID":  # drop the rows / columns no window covers
        x = x[:, : x.shape[1] // window[0] * window[0], : x.shape[2] // window[1] * window[1]]
    else:
        x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-jnp.inf)
    b, h, w, c = x.shape
    return x.reshape(b, h // window[0], window[0], w // window[1], window[1], c).max(axis=(2, 4))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def overlapping_max_pool(x: jax.Array, window, strides, pads) -> jax.Array:
    """`nn.max_pool(x, window, strides, pads)` with a gradient XLA:CPU computes 5–9× faster.

    JAX differentiates a max pool into XLA's `select_and_scatter`, which is slow on XLA:CPU:
    forward + backward of GoogLeNet's 3×3/1 pool on 128×28×28×64 took 259 ms, of which the
    forward pass alone takes about 16. Here the backward pass visits the window's offsets in
    row-major order and sends each output's cotangent to the first input that equals the
    maximum, which is `select_and_scatter`'s rule (its `>=` selection keeps the first
    maximum), as a few element-wise masks and pads that XLA fuses. Forward + backward with
    the engine's options, batch 128 (one process, medians of 15): 28×28×64 3×3/1 259 → 58 ms,
    14×14×128 147 → 16 ms, 7×7×208 54 → 9 ms, 28×28×120 3×3/2 260 → 87 ms (`max_pool` takes
    it for stride 1 only: see there). Equal to
    `nn.max_pool`'s gradient up to the order of the sums where windows overlap (tested).
    """
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1), ((0, 0), *pads, (0, 0))
    )


def _overlapping_max_pool_fwd(x, window, strides, pads):
    y = overlapping_max_pool(x, window, strides, pads)
    return y, (x, y)


def _overlapping_max_pool_bwd(window, strides, pads, residuals, g):
    x, y = residuals
    (pt, pb), (pl, pr) = pads
    x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-jnp.inf)
    (h, w), (sh, sw), (oh, ow) = x.shape[1:3], strides, y.shape[1:3]
    grad = jnp.zeros_like(x)
    taken = jnp.zeros(y.shape, bool)  # outputs whose maximum an earlier offset already had
    for i in range(window[0]):
        for j in range(window[1]):
            first = x[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw] == y
            first &= ~taken
            taken |= first
            spread = ((0, 0, 0), (i, h - i - (oh - 1) * sh - 1, sh - 1),
                      (j, w - j - (ow - 1) * sw - 1, sw - 1), (0, 0, 0))  # fmt: skip
            grad += lax.pad(jnp.where(first, g, 0).astype(g.dtype), jnp.zeros((), g.dtype), spread)
    return (grad[:, pt : h - pb, pl : w - pr],)


overlapping_max_pool.defvjp(_overlapping_max_pool_fwd, _overlapping_max_pool_bwd)


def _threefry2x32(key1, key2, x1, x2):
    """The Threefry-2x32 hash (20 rounds) as JAX computes it (`jax._src.random.threefry2x32`,
    Salmon et al., SC 2011), written out with public `lax` operations."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (key1, key2, key1 ^ key2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r)))
        x1, x2 = x1 + ks[(i + 1) % 3], x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _raw_threefry_key(key: jax.Array) -> jax.Array | None:
    """The key's two uint32 words if `jax.random` would draw its bits with the partitionable
    Threefry-2x32 (JAX's default), else None."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl, key = str(jax.random.key_impl(key)), jax.random.key_data(key)
    else:
        impl = jax.config.jax_default_prng_impl
    ok = impl == "threefry2x32" and key.shape == (2,) and jax.config.jax_threefry_partitionable
    return key if ok else None


def bernoulli(key: jax.Array, p: float, shape: Sequence[int]) -> jax.Array:
    """`jax.random.bernoulli(key, p, shape)`, the same bits; faster on the CPU.

    On the CPU JAX lowers Threefry as a rolled five-iteration loop, and XLA:CPU fuses a
    mask's generator into each of its consumers: a dropout mask was generated twice per
    train step (forward and backward pass). Here the hash is unrolled and the mask ends
    behind `cpu_fusion_barrier`, so it is computed once. The seed MLP's Adam step (two 128×256
    masks, batch 128; `nn.Dropout` against this, one process, alternating turns): 1.75 → 1.62 ms
    (1.08×, 8 rounds 1.06–1.14×), in another sitting 2.10 → 1.92 ms (1.13×, 10 rounds
    1.03–1.26×); the Transformer's step, with its sixteen masks (batch 64): 94.9 → 75.3 ms
    (1.26×, 10 rounds 0.94–1.67×). Unrolled without the barrier it was no faster
    (0.96–1.07×); JAX's `rbg` and `unsafe_rbg` keys made the MLP's two masks 2.3× slower. Other
    backends, other PRNG implementations, arrays of 2³² elements or more, and a `p` that is
    not a float32 Python float take `jax.random.bernoulli` itself. Tested equal to it, bit
    for bit.
    """
    words = _raw_threefry_key(key)
    size = int(np.prod(shape))
    float32 = isinstance(p, float) and not jax.config.jax_enable_x64
    if jax.default_backend() != "cpu" or words is None or size >= 2**32 or not float32:
        return jax.random.bernoulli(key, p, shape)
    # jax.random: counters are the flat index (its high word is 0 below 2**32 elements);
    # the 32 bits are the XOR of the hash's two words; uniform = mantissa bits in [1, 2) - 1.
    counters = lax.iota(np.uint32, size).reshape(shape)
    bits1, bits2 = _threefry2x32(words[0], words[1], jnp.zeros_like(counters), counters)
    mantissa = ((bits1 ^ bits2) >> np.uint32(9)) | np.uint32(0x3F800000)
    uniform = lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1)
    return cpu_fusion_barrier(uniform < p)


class Dropout(nn.Dropout):
    """`flax.linen.Dropout` with its mask drawn by `bernoulli` (the same mask, faster on the
    CPU): same arguments, same module name, so the same RNG stream and the same results."""

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

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.pieces < 1:
            raise ZooError(f"maxout needs pieces >= 1, got {self.pieces}")
        z = nn.Dense(self.features * self.pieces, kernel_init=self.kernel_init)(x)
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


def memory_bytes() -> int | None:
    """Memory of the default device: its allocator's limit on a GPU or TPU, the host's
    physical memory on the CPU; None where neither is known."""
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    if device.platform == "cpu" and hasattr(os, "sysconf"):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def check_fits(subject: str, need: int, contents: str) -> None:
    """A `ZooError` when `need` bytes (of `contents`) exceed the device's memory: the bound is
    the machine's, not a chosen cap."""
    memory = memory_bytes()
    if memory is not None and need > memory:
        raise ZooError(
            f"{subject} needs at least {need / 2**30:,.3g} GiB for {contents}, more than the "
            f"device's {memory / 2**30:,.3g} GiB"
        )


def check_stack(model: str, field: str, count: int, params_each: int) -> None:
    """A stack of `count` layers, each of at least `params_each` float32 parameters, must fit
    in the device's memory. Flax builds one Python object per layer before anything is
    traced, so a depth like 10**9 would hang the build instead of failing it: this fails it
    first."""
    check_fits(f"{model} with {field} = {count}", 4 * count * params_each,
               "the parameters of its layers")  # fmt: skip


# --- blocks of the convolutional zoo --------------------------------------------------------


def images(x: jax.Array, model: str) -> jax.Array:
    """`x` checked as a batch of channels-last images `(batch, height, width, channels)`.
    A channels-first batch `(batch, 1 or 3, h, h)` would otherwise run as 1- or 3-row images
    with `h` channels and give wrong logits without an error; it is refused by its shape."""
    if x.ndim != 4:
        raise InputError(
            f"{model} takes images (batch, height, width, channels), got shape {x.shape}"
        )
    if x.shape[1] in (1, 3) and x.shape[2] == x.shape[3] > 3:
        raise InputError(
            f"{model} takes channels-last images (batch, height, width, channels); "
            f"{x.shape} looks channels-first: pass x.transpose(0, 2, 3, 1)"
        )
    return x


def token_ids(ids: jax.Array, model: str) -> jax.Array:
    """`ids` checked as integer token ids `(batch, time)` (an embedding would otherwise fail
    on floats with a dtype message, or broadcast a 1-D sequence against its positions)."""
    if ids.ndim != 2 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise InputError(f"{model} takes (batch, time) token ids, got {ids.shape} {ids.dtype}")
    return ids


def feature_sequences(x: jax.Array, model: str) -> jax.Array:
    """`x` checked as `(batch, time, features)`."""
    if x.ndim != 3:
        raise InputError(f"{model} takes (batch, time, features), got shape {x.shape}")
    return x


def flatten(x: jax.Array, model: str) -> jax.Array:
    """`(batch, features)`; an input too small for the model's convolutions and pools leaves
    no features, which is an error here rather than a division by zero in the next layer's
    initialiser."""
    if 0 in x.shape[1:]:
        raise InputError(f"the input is too small for {model}: its feature map is {x.shape[1:]}")
    return x.reshape(x.shape[0], -1)


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
