"""`TrainState`: everything a run carries from step to step, as a pytree of arrays only.

The model function and the optimizer live in the learner, not here, so a state is plain data:
it checkpoints, replicates, shards and `vmap`s without special cases.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import struct


class TrainState(struct.PyTreeNode):
    """step: updates applied so far (int32 scalar); params: trainable variables;
    opt_state: the optax state; model_state: non-trainable collections (e.g. batch_stats),
    `{}` when the model has none; rng: the run's base key (raw uint32[2]). The key of step
    `s` is `fold_in(rng, s)`, so a resumed run draws exactly the keys a straight run draws.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any
    rng: jax.Array
