"""zoo_jax: the neural network zoo as pure Flax modules, trained by one jax.jit engine.

Find a model, build it, count it:

    >>> import zoo_jax
    >>> "resnet50" in zoo_jax.list_models()
    True
    >>> zoo_jax.get_card("mlp").chart_node          # its card: paper, shapes, training
    'deep_feed_forward'
    >>> model = zoo_jax.get_model("mlp", hidden=(512,))   # a flax.linen.Module
    >>> zoo_jax.count_params("mlp")
    269322

Train it (`RunConfig`'s fields are the CLI's flags; `fit` returns a summary with the final
state and writes a run directory: config, metrics, checkpoints, curves):

    summary = zoo_jax.fit(zoo_jax.RunConfig("mlp", epochs=2), "runs/mlp")
    zoo_jax.evaluate_run("runs/mlp")

Also: `zoo_jax.losses` (the Keras losses), `zoo_jax.optim` (the eight optimizers),
`zoo_jax.learners` (how each kind of model learns), and the `zoo-jax` command
(`zoo-jax --help`).
"""

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
