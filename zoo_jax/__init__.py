"""zoo_jax: the neural network zoo as pure Flax modules, trained by one jax.jit engine."""

from zoo_jax import losses, optim
from zoo_jax.errors import ZooError
from zoo_jax.registry import MODELS, ZooCard, count_params, get_card, get_model, list_models
from zoo_jax.train import RunConfig, TrainState, evaluate_run, fit

__version__ = "0.1.0"
__all__ = [
    "MODELS",
    "RunConfig",
    "TrainState",
    "ZooCard",
    "ZooError",
    "count_params",
    "evaluate_run",
    "fit",
    "get_card",
    "get_model",
    "list_models",
    "losses",
    "optim",
]
