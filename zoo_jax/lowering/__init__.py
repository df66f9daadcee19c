"""Backend-specific fast paths: the same functions as JAX's and XLA's, computed faster where
the backend is slow at them (today, XLA:CPU).

Models and layers call these plain functions and never read a backend or its constants;
`plain_lowering()` turns the fast paths off for a trace (FLOP counting, A/B timing with
`zoo-jax bench --lowering plain`). `docs/performance.md` has, for each fast path, why it
exists, what it gained and the command that measures it.
"""

from zoo_jax.lowering.backend import (
    compiler_options,
    cpu_fusion_barrier,
    fast_cpu_paths,
    lowering_is_plain,
    plain_lowering,
)
from zoo_jax.lowering.convolution import (
    conv2d,
    conv_transpose,
    frame_conv2d,
    max_pool,
)
from zoo_jax.lowering.random import bernoulli, uniform
from zoo_jax.lowering.recurrence import linear_recurrence

__all__ = [
    "bernoulli",
    "compiler_options",
    "conv2d",
    "conv_transpose",
    "cpu_fusion_barrier",
    "fast_cpu_paths",
    "frame_conv2d",
    "linear_recurrence",
    "lowering_is_plain",
    "max_pool",
    "plain_lowering",
    "uniform",
]
