"""The learner protocol, its defaults, and the pieces every learner shares.

A learner owns a model function and its update rule; the engine (`zoo_jax.train`) only calls
its pure functions, so jit, pmap and sharded jit serve every model alike::

    class Learner(Protocol):
        metrics: tuple[str, ...]      # what `evaluate` sums (with `count`), e.g. ("loss", "accuracy")
        def init(self, rng, sample_batch) -> TrainState
        def update(self, state, batch, rng, *, axis_name=None) -> (TrainState, Metrics)
        def evaluate(self, state, batch, *, axis_name=None) -> Metrics
        def finalize(self, state) -> TrainState        # after the last pass; identity by default
        @classmethod
        def from_config(cls, run, total_steps=None) -> Learner   # built from a resolved run

The protocol grows as optax grew `GradientTransformation` into `...ExtraArgs`: new members
are optional, with defaults in `LearnerDefaults`, and the pure functions never change shape.

- `update` returns the new state and per-step metrics: `finite` (bool: the step was applied;
  the loop's NaN policy acts on False) and the step's mean of (some of) the names in
  `metrics`. `axis_name` is set under `jax.pmap`: the learner then averages (`pmean`) or adds
  (`psum`) what must be global. Under sharded `jax.jit` the arrays are global and it is None.
- `evaluate` returns sums, one per name of `metrics`, and `count`: they add up exactly over
  batches and devices, and the loop divides at the end. Eval batches carry a `weight` that
  is 0 on padding rows, so every eval batch has one shape and the step never recompiles.
- `finalize` runs once, after the last training pass and before the last evaluation: a
  closed-form learner accumulates statistics (`XᵀX`, `XᵀY`, `psum`-ed under pmap) in
  `update` and solves here.
- Two players (a GAN) share one `TrainState`: `params = {"generator": ..., "discriminator":
  ...}` and an optimizer state per player under the same keys (`init_players`); each player
  steps with `apply_gradients(..., player=name)`. The state stays one pytree, so it is
  checkpointed, resumed, replicated and sharded like any other.
- `check_config(run)` checks the learner's own options (its loss, augmentation) before
  anything is built, `check_inputs(run, x)` the values of each split's inputs (a binary
  model's range); nothing outside `zoo_jax.learners` tests a learner's name. `samples(state)`
  gives a generative model's images for the run directory's `samples.png`.
- Mixed precision (`--dtype bfloat16`): a learner that offers it sets `mixed_precision`,
  declares the field `compute_dtype` (the run sets it) and calls its model through
  `model_apply`, which computes in that dtype and returns float32 (`apply_in`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import jax
import jax.numpy as jnp
import optax
from jax import lax

from zoo_jax.errors import ZooError
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class Learner(Protocol):
    metrics: tuple[str, ...]

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState: ...

    def update(
        self, state: TrainState, batch: Batch, rng: jax.Array, *, axis_name: str | None = None
    ) -> tuple[TrainState, Metrics]: ...

    def evaluate(
        self, state: TrainState, batch: Batch, *, axis_name: str | None = None
    ) -> Metrics: ...

    def finalize(self, state: TrainState) -> TrainState: ...


class LearnerDefaults:
    """The optional members of the protocol, with their defaults."""

    metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy")
    # whether the learner computes in a lower precision on request (`RunConfig.dtype`); one
    # that does declares the dataclass field `compute_dtype: str = "float32"`, which the run
    # sets, and calls its model through `model_apply`
    mixed_precision: ClassVar[bool] = False
    compute_dtype = "float32"  # a class attribute here, not a field: the rule's own precision

    def model_apply(self, variables: Mapping, *args: Any, **kwargs: Any) -> Any:
        """`self.model.apply(variables, *args, **kwargs)` in the learner's `compute_dtype`
        (`apply_in`)."""
        return apply_in(self.compute_dtype, self.model, variables, *args, **kwargs)

    def finalize(self, state: TrainState) -> TrainState:
        return state

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> Learner:
        """A learner that trains registered cards builds itself here; one used only from
        Python (built by hand) need not."""
        raise ZooError(f"the {cls.__name__} learner cannot be built from a run config")

    @classmethod
    def check_config(cls, run: Run) -> None:
        """Raise a `ZooError` for options of `run.config` this learner cannot train with."""

    @classmethod
    def check_inputs(cls, run: Run, x: Any) -> None:
        """Raise an `InputError` for input values this learner's rule cannot read (a binary
        model given intensities outside [0, 1]); called on each split before training."""

    def samples(self, state: TrainState) -> Any:
        """Images a generative model draws from `state`, `(n, height, width, channels)` in
        [0, 1], for the run directory's `samples.png`; None (the default): it draws none."""
        return None

    @staticmethod
    def model_args(inputs: Any) -> tuple:
        """What the model's `init` / `apply` takes besides `train`, given a batch's inputs."""
        return (inputs,)

    @staticmethod
    def predicted_tokens(labels: Any) -> int:
        """Targets predicted per batch of `labels` (a token model's unit of throughput)."""
        return labels.size


COMPUTE_DTYPES = ("float32", "bfloat16")


def cast_floating(tree: Any, dtype: Any) -> Any:
    """`tree` with every floating-point leaf as `dtype` (integer leaves, such as token ids
    and labels, unchanged)."""
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a,
        tree,
    )


def apply_in(dtype: str, model: Any, variables: Mapping, *args: Any, **kwargs: Any) -> Any:
    """`model.apply(variables, *args, **kwargs)` computed in `dtype`: mixed precision as `jmp`
    and the Flax examples do it. The model sees a `dtype` copy of the float parameters and of
    the floating positional arguments (inputs, noise; token ids and labels stay integers), so
    its products and activations run in `dtype`; its floating outputs come back as float32
    before any loss, and the gradient reaches the float32 parameters through the cast. The
    other collections (BatchNorm's statistics) stay float32, and so does a recurrence whose
    carry the model creates as float32. "float32": the plain call."""
    if dtype == "float32":
        return model.apply(variables, *args, **kwargs)
    variables = {**variables, "params": cast_floating(variables["params"], dtype)}
    out = model.apply(variables, *cast_floating(args, dtype), **kwargs)
    return cast_floating(out, jnp.float32)


def flat_inputs(batch: Batch) -> jax.Array:
    """A batch's inputs as `(batch, features)` float32: what the shallow learners' rules
    (perceptron, k-means, the self-organising map) add and compare."""
    x = batch["inputs"]
    return jnp.reshape(x, (len(x), -1)).astype(jnp.float32)


def mean_over(x: Any, axis_name: str | None) -> Any:
    """`x` averaged over the devices of `axis_name` (unchanged outside pmap)."""
    return x if axis_name is None else lax.pmean(x, axis_name)


def sum_over(x: Any, axis_name: str | None) -> Any:
    """`x` added up over the devices of `axis_name` (unchanged outside pmap)."""
    return x if axis_name is None else lax.psum(x, axis_name)


def new_state(optimizer: optax.GradientTransformation, variables: Mapping, rng) -> TrainState:
    """Step 0: the variables' `params`, their optimizer state, the other collections."""
    variables = dict(variables)
    params = variables.pop("params")
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        model_state=variables,
        rng=rng,
    )


def init_players(
    optimizers: Mapping[str, optax.GradientTransformation],
    variables: Mapping[str, Mapping],
    rng: jax.Array,
) -> TrainState:
    """Step 0 of a game: `params`, `opt_state` and `model_state` are dicts by player."""
    players = {name: new_state(optimizers[name], variables[name], rng) for name in variables}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params={name: s.params for name, s in players.items()},
        opt_state={name: s.opt_state for name, s in players.items()},
        model_state={name: s.model_state for name, s in players.items()},
        rng=rng,
    )


def apply_gradients(
    optimizer: optax.GradientTransformation,
    state: TrainState,
    grads: Any,
    loss: jax.Array,
    model_state: Any,
    axis_name: str | None,
    *,
    player: str | None = None,
) -> tuple[TrainState, Metrics]:
    """Average over devices, step the optimizer on `state.params` (or on one `player`'s
    params and optimizer state), and keep the old state where the loss or the gradient is
    not finite (`finite = False` in the metrics; the loop's NaN policy acts). The caller
    counts the step (`state.step + 1`), once per update whatever the number of players.

    The guard is a `lax.cond`, not a `jnp.where` between new and old leaves: with the state
    donated, the `where` made XLA copy the optimizer's moments before updating them in
    place (`docs/performance.md`)."""
    grads = mean_over(grads, axis_name)
    model_state = mean_over(model_state, axis_name)
    loss = mean_over(loss, axis_name)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def step(state):
        params = state.params if player is None else state.params[player]
        opt_state = state.opt_state if player is None else state.opt_state[player]
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if player is None:
            return state.replace(params=params, opt_state=opt_state, model_state=model_state)
        return state.replace(
            params={**state.params, player: params},
            opt_state={**state.opt_state, player: opt_state},
            model_state={**state.model_state, player: model_state},
        )

    new = lax.cond(finite, step, lambda state: state, state)
    return new, {"loss": loss, "grad_norm": grad_norm, "finite": finite}
