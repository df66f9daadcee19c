"""Which lowering a trace gets: the CPU's fast paths, XLA's compiler options, and
`plain_lowering`, under which every fast path takes JAX's and XLA's plain form.

Models never read these: they call the functions of `zoo_jax.lowering`, which ask here.
Why each fast path exists, with its measurements: `docs/performance.md`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# XLA:CPU's default library fusions (jaxlib 0.10: individual dots, individual convolutions,
# reductions) without the convolutions, which then go to XLA's own (Eigen) kernels.
CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
    )
}

_PLAIN_LOWERING = contextvars.ContextVar("plain_lowering", default=False)


@contextlib.contextmanager
def plain_lowering() -> Iterator[None]:
    """Functions traced (and steps compiled) inside take JAX's and XLA's plain forms of what
    this package lowers its own way, on any backend: XLA's convolution for every "auto" one,
    JAX's gradient of a transposed convolution, the LSTM's step-by-step scan, and XLA's
    default compiler options. `zoo-jax bench` counts a model's FLOPs under it (XLA counts the
    zeros of the block-diagonal and dilated forms as work, and a scan's body once), and
    `zoo-jax bench --lowering plain` times a step under it. Trace fresh functions: a cached
    trace keeps its lowering."""
    token = _PLAIN_LOWERING.set(True)
    try:
        yield
    finally:
        _PLAIN_LOWERING.reset(token)


def lowering_is_plain() -> bool:
    """Whether the current trace is inside `plain_lowering`."""
    return _PLAIN_LOWERING.get()


def fast_cpu_paths() -> bool:
    """Whether this trace takes the CPU's own lowerings: on the CPU, outside `plain_lowering`."""
    return jax.default_backend() == "cpu" and not lowering_is_plain()


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
    """What to pass as `jax.jit(..., compiler_options=)`: the CPU's options on the CPU (XLA's
    own convolutions, not YNNPACK's), None on other backends and under `plain_lowering`."""
    return (cpu_compiler_options() or None) if fast_cpu_paths() else None


def cpu_fusion_barrier(x: jax.Array) -> jax.Array:
    """Identity (value and gradient) that XLA:CPU cannot fuse through; `x` unchanged on other
    backends.

    XLA:CPU's instruction fusion copies cheap element-wise producers into every consumer, so
    along a post-activation residual stream it recomputes all earlier blocks of a stage
    inside each block (work growing with the square of the depth). A conditional is opaque to
    fusion: its operand is materialised once, and JAX transposes it into a conditional in the
    backward pass too. Both branches are copies (a branch returning its operand unchanged
    would be forwarded away); the predicate is a value of `x`, so XLA cannot fold it. On a
    GPU a predicate is read by the host (a synchronisation per block): there it is `x`.
    """
    if jax.default_backend() != "cpu":
        return x
    return lax.cond(x.reshape(-1)[0] > 0, jnp.copy, jnp.copy, x)
