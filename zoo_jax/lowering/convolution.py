"""Convolutions and pools as each backend computes them fastest, equal to XLA's and Flax's.

On the CPU XLA's own (Eigen) convolution is used (see `backend.CPU_COMPILER_OPTIONS`),
except where it is slow: inputs smaller than the kernel and narrow-grouped or depthwise
convolutions go through im2col or one dense block-diagonal convolution (`cpu_lowering`);
transposed convolutions get a kernel gradient without a dilated kernel; overlapping stride-1
max pools get a gradient of element-wise masks. On other backends, and under
`plain_lowering`, the native operations are used unchanged. The measurements behind each
choice are in `docs/performance.md`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from zoo_jax.errors import InputError, ZooError
from zoo_jax.lowering.backend import fast_cpu_paths


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow / Keras SAME padding: output ceil(size / stride), extra pad at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_pads(x: jax.Array, kernel: Sequence[int], strides: Sequence[int], padding) -> list:
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
    the groups, or one convolution per group where there are at most 4 (faster than
    XLA:CPU's grouped convolution there).
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
    (pt, pb), (pl, pr) = conv_pads(x, (kh, kw), strides, padding)
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


BLOCK_DIAGONAL_MAX_CHANNELS = 256


IM2COL_MAX_TAPS = 121  # im2col traces a slice per kernel tap: an 11×11 kernel at most
WIDE_INPUT_CHANNELS = 64


def cpu_lowering(
    x_shape: Sequence[int], kernel_size: Sequence[int], groups: int, strides=None
) -> str:
    """How a convolution lowers on the CPU: "im2col" for inputs smaller than the kernel; for
    grouped ones, "block_diagonal" up to `BLOCK_DIAGONAL_MAX_CHANNELS` input channels and
    more than 4 groups, else "im2col"; "im2col" for strided kernels of 9×9 or more over
    `WIDE_INPUT_CHANNELS` channels or more (CapsNet's primary capsules: XLA:CPU's gradient
    took 40 s a batch of 128, im2col's 0.8 s); "xla" for the rest, and for kernels of more than
    `IM2COL_MAX_TAPS` taps (a `--set kernel_size=1000` would otherwise trace a million
    slices)."""
    if kernel_size[0] * kernel_size[1] > IM2COL_MAX_TAPS:
        return "xla"
    if any(x_shape[1 + i] < kernel_size[i] for i in range(2)):
        return "im2col"
    if groups > 1:
        narrow = groups > 4 and x_shape[-1] <= BLOCK_DIAGONAL_MAX_CHANNELS
        return "block_diagonal" if narrow else "im2col"
    if strides is not None and max(strides) > 1 and min(kernel_size) >= 9:
        return "im2col" if x_shape[-1] >= WIDE_INPUT_CHANNELS else "xla"
    return "xla"


def block_diagonal(kernel: jax.Array, groups: int) -> jax.Array:
    """A grouped convolution's kernel `(kh, kw, cin / groups, cout)` as the kernel of the
    dense convolution `(kh, kw, cin, cout)` that computes the same: zero between groups."""
    cin, cout = kernel.shape[2], kernel.shape[3]
    mask = np.kron(np.eye(groups, dtype=np.float32), np.ones((cin, cout // groups), np.float32))
    return jnp.tile(kernel, (1, 1, groups, 1)) * mask.astype(kernel.dtype)


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
    pads = conv_pads(x, kernel.shape[:2], strides, padding)
    if any(x.shape[1 + i] + sum(pads[i]) < kernel.shape[i] for i in range(2)):
        raise InputError(
            f"a {kernel.shape[0]}×{kernel.shape[1]} convolution does not fit a "
            f"{x.shape[1]}×{x.shape[2]} feature map: the input is too small for this model"
        )
    if implementation == "auto":
        cpu = fast_cpu_paths()
        implementation = cpu_lowering(x.shape, kernel.shape[:2], groups, strides) if cpu else "xla"
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


def frame_conv2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A stride-1 SAME convolution of small frames (ConvLSTM's): im2col on the CPU, where
    XLA's convolution is slow on such shapes, up to `IM2COL_MAX_TAPS` taps (a huge kernel
    would trace a slice per tap); XLA's convolution elsewhere."""
    taps_fit = kernel.shape[0] * kernel.shape[1] <= IM2COL_MAX_TAPS
    way = "im2col" if jax.default_backend() == "cpu" and taps_fit else "xla"
    return conv2d(x, kernel, padding="SAME", implementation=way)


def conv_transpose(
    x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: str = "SAME"
) -> jax.Array:
    """`lax.conv_transpose(x, kernel, strides, padding, transpose_kernel=True)` over NHWC, the
    kernel `(kh, kw, out, in)` (the HWIO kernel of the convolution whose gradient this is, as
    Keras's `Conv2DTranspose` computes it); `padding` "SAME" or "VALID".

    On the CPU only its derivatives differ: JAX's kernel gradient is a convolution with a
    dilated kernel, which XLA:CPU runs in a generic loop (the DCGAN generator's first
    layer: 1 s a step). `_cpu_conv_transpose`'s JVP writes the kernel's tangent as
    `_tap_conv_transpose`, one matmul of the input with every kernel tap, so reverse mode
    gets the kernel gradient as one matmul of the input with the output gradient's strided
    slices (no products with the zeros of a dilated input: the 28×28 DCGAN's step 1.2×
    faster than the dilated convolution it replaced, the deconvolutional network's as
    fast), XLA's strided convolution for the input, and forward mode still works. Other
    backends and `plain_lowering` differentiate `lax.conv_transpose`.
    """
    strides = tuple(strides)
    if padding not in ("SAME", "VALID"):
        raise ZooError(f"conv_transpose padding must be SAME or VALID, got {padding!r}")
    if fast_cpu_paths():  # FLOPs: count the model's
        return _cpu_conv_transpose(x, kernel, strides, padding)
    return _xla_conv_transpose(x, kernel, strides, padding)


def _xla_conv_transpose(x, kernel, strides, padding):
    return lax.conv_transpose(
        x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        transpose_kernel=True,
    )  # fmt: skip


def _tap_conv_transpose(x, kernel, strides, padding):
    """`_xla_conv_transpose` as one matmul of `x` with every tap of the kernel, each tap's
    product added into the output at its strided offset (`lax.pad` with interior padding).
    Linear in `kernel`: its transpose, the kernel's gradient, is the strided slices of the
    output's gradient, concatenated, in one matmul with `x` (exact work: no product with
    the zeros a dilated input holds)."""
    kh, kw, cout, cin = kernel.shape
    taps = jnp.flip(kernel, (0, 1)).transpose(3, 0, 1, 2).reshape(cin, kh * kw * cout)
    pieces = jnp.split(x @ taps, kh * kw, axis=-1)  # (batch, h, w, cout) per tap
    (h, w), (sh, sw) = x.shape[1:3], strides
    out = [(n - 1) * s + 1 + lo + hi - k + 1 for n, s, k, (lo, hi) in
           zip((h, w), strides, (kh, kw), _transpose_pads(kernel.shape, strides, padding), strict=True)]  # fmt: skip
    (low_h, _), (low_w, _) = _transpose_pads(kernel.shape, strides, padding)
    y = jnp.zeros((x.shape[0], *out, cout), x.dtype)
    for t in range(kh):
        for u in range(kw):
            pads = [(0, 0, 0),
                    (low_h - t, out[0] - (low_h - t) - sh * (h - 1) - 1, sh - 1),
                    (low_w - u, out[1] - (low_w - u) - sw * (w - 1) - 1, sw - 1),
                    (0, 0, 0)]  # fmt: skip
            y = y + lax.pad(pieces[t * kw + u], jnp.zeros((), x.dtype), pads)
    return y


def _transpose_pads(kernel_shape, strides, padding) -> list[tuple[int, int]]:
    """The (low, high) padding of the dilated input in `lax.conv_transpose`'s definition."""
    pads = []
    for k, s in zip(kernel_shape[:2], strides, strict=True):
        total = k + s - 2 + (max(k - s, 0) if padding == "VALID" else 0)
        low = k - 1 if padding == "VALID" or s > k - 1 else -(-total // 2)
        pads.append((low, total - low))
    return pads


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _cpu_conv_transpose(x, kernel, strides, padding):
    return _xla_conv_transpose(x, kernel, strides, padding)


@_cpu_conv_transpose.defjvp
def _cpu_conv_transpose_jvp(strides, padding, primals, tangents):
    (x, kernel), (dx, dkernel) = primals, tangents
    tangent = _xla_conv_transpose(dx, kernel, strides, padding)
    tangent += _tap_conv_transpose(x, dkernel, strides, padding)
    return _xla_conv_transpose(x, kernel, strides, padding), tangent


def max_pool(x: jax.Array, window=(2, 2), strides=None, padding="VALID") -> jax.Array:
    """Max pooling over NHWC, equal to `nn.max_pool` (`padding`: "VALID", "SAME" or a pair of
    (low, high) pads per spatial axis, padded with −∞).

    Non-overlapping windows (window == strides) are a reshape and a max, whose gradient is
    cheap everywhere. Overlapping stride-1 windows (GoogLeNet's 3×3/1) are
    `overlapping_max_pool` on the CPU; other overlapping windows, and all of them off the
    CPU, are `nn.max_pool` (for 3×3/2 XLA:CPU fused the masked gradient at a loss).
    """
    strides = tuple(strides or window)
    if tuple(window) != strides:
        if jax.default_backend() != "cpu" or strides != (1, 1):
            return nn.max_pool(x, tuple(window), strides, padding)
        pads = tuple(tuple(p) for p in conv_pads(x, window, strides, padding))
        return overlapping_max_pool(x, tuple(window), strides, pads)
    (pt, pb), (pl, pr) = conv_pads(x, window, strides, padding)
    if padding == "VALID":  # drop the rows / columns no window covers
        x = x[:, : x.shape[1] // window[0] * window[0], : x.shape[2] // window[1] * window[1]]
    else:
        x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-jnp.inf)
    b, h, w, c = x.shape
    return x.reshape(b, h // window[0], window[0], w // window[1], window[1], c).max(axis=(2, 4))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def overlapping_max_pool(x: jax.Array, window, strides, pads) -> jax.Array:
    """`nn.max_pool(x, window, strides, pads)` with a gradient XLA:CPU computes several times
    faster than its `select_and_scatter`.

    The backward pass visits the window's offsets in row-major order and sends each output's
    cotangent to the first input that equals the maximum, which is `select_and_scatter`'s
    rule (its `>=` selection keeps the first maximum), as element-wise masks and pads that
    XLA fuses. Equal to `nn.max_pool`'s gradient up to the order of the sums where windows
    overlap (tested).
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
