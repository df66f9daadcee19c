"""The training engine: state, compiled steps, the fit / evaluate loop, checkpoints."""

from zoo_jax.train.loop import RunConfig, evaluate_run, fit
from zoo_jax.train.state import TrainState

__all__ = ["RunConfig", "TrainState", "evaluate_run", "fit"]
