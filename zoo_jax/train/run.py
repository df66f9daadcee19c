"""A run: what to train and how (`RunConfig`), resolved once into the values every later
stage reads (`Run`: the card, the training configuration, the data spec, the optimizer and
the learner).

    run = resolve(RunConfig(model="cnn", epochs=2))   # card, defaults and every option checked
    run.check_build()                                  # the model and its memory, abstractly
    x_train, y_train, x_test, y_test = run.load_data()
    learner = run.learner(total_steps)                 # the card's learner, from this config
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax

from zoo_jax import learners, optim, registry
from zoo_jax.data import datasets, pipeline
from zoo_jax.errors import InputError, UnknownNameError, ZooError
from zoo_jax.models import checks

NAN_POLICIES = ("stop", "skip")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclasses.dataclass
class RunConfig:
    """What to train and how; the CLI's `zoo-jax train` flags set the same fields. `None`
    fields take the model card's default (`zoo-jax info MODEL`).

    - `model`: a registered name (`zoo-jax list`); `model_overrides`: its attributes
      (`--set hidden=[512]`), checked by name, kind and range.
    - `dataset` (mnist, fashion-mnist, fsdd, chars, dates), `data_dir` (searched alone when
      given), `train_limit` / `test_limit` (the first N examples).
    - `optimizer` (sgd, nag, rmsprop, adagrad, adadelta, adam, adamax, nadam),
      `learning_rate`, `optimizer_options` (Keras's names: momentum, beta_1, clipnorm,
      weight_decay, max_norm, …), `schedule` and `schedule_options` (a Keras schedule).
    - `loss` (a Keras loss name) and `loss_options` (delta, label_smoothing); `l1`, `l2`:
      Keras kernel penalties.
    - `epochs` (with resume: up to this many), `batch_size` (global), `seed` (the data order,
      the initialisation, dropout: the same seed gives the same run on the CPU).
    - `augment` (training-time augmentation by name).
    - `parallel` (none, pmap, sharded) and `devices` (how many; default all).
    - `nan_policy`: stop (a non-finite loss or gradient ends the run) or skip (the update is
      left out and counted; a run that still ends non-finite is an error).
    - `dtype`: "bfloat16" computes the forward and backward passes in bfloat16 and keeps
      the parameters, optimizer state, losses and normalisation statistics in float32 (the
      gradient-trained learners; `GradientLearner`).
    - `patience`: early stopping. Each epoch is also evaluated on the dataset's validation
      split; training stops once the validation loss has not improved for `patience` epochs
      (`epochs` is then the most it trains) and the best epoch's state is the run's result
      (Keras `EarlyStopping(patience=…, restore_best_weights=True)`). `min_delta` (Keras's
      name): a validation loss counts as better only when it is lower by more than this
      (absolute; default 0, any decrease), so a loss creeping towards 0 stops a run.
    - `keep_checkpoints` (the last N), `log_every` (steps between metric read-backs at most;
      they also happen every 2 s).
    """

    model: str
    dataset: str | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    loss: str | None = None
    loss_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # delta, ...
    epochs: int | None = None
    batch_size: int | None = None
    seed: int = 0
    l1: float = 0.0
    l2: float = 0.0
    # Keras hyperparameters of the optimizer and the options of `optim.make` (momentum,
    # clipnorm, weight_decay, max_norm, ...); a learning-rate schedule by Keras name.
    optimizer_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    schedule: str | None = None
    schedule_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    augment: str | None = None  # a name of `zoo_jax.data.augment.AUGMENTATIONS` (training only)
    devices: int | None = None
    parallel: str = "none"
    nan_policy: str = "stop"
    train_limit: int | None = None  # use the first N training examples (quick runs)
    test_limit: int | None = None
    data_dir: str | None = None
    keep_checkpoints: int = 3
    log_every: int = 50
    patience: int | None = None  # early stopping on the validation loss (epochs)
    min_delta: float = 0.0  # the least decrease of the validation loss that counts as better
    dtype: str = "float32"  # compute dtype: float32, or bfloat16 (mixed precision)

    def resolved(self) -> RunConfig:
        """This config with the card's defaults filled in, every option checked."""
        return resolve(self).config

    def identity(self) -> dict[str, Any]:
        """The fields a checkpoint must agree on to be resumed (not epochs, devices, ...)."""
        keys = (
            "model",
            "model_overrides",
            "dataset",
            "optimizer",
            "learning_rate",
            "loss",
            "l1",
            "l2",
            "batch_size",
            "seed",
            "train_limit",
        )
        identity = {k: getattr(self, k) for k in keys}
        # Optimizer extras count only when set, so runs saved before they existed resume.
        for key in ("loss_options", "optimizer_options", "schedule", "schedule_options", "augment"):
            if getattr(self, key):
                identity[key] = getattr(self, key)
        return json.loads(json.dumps(identity))


def build_optimizer(cfg: RunConfig, total_steps: int | None = None):
    """The config's optax transform. A schedule without `decay_steps` decays over the whole
    run (`total_steps`); evaluation passes None, which only the state's shape depends on."""
    learning_rate = cfg.learning_rate or optim.defaults(cfg.optimizer)["learning_rate"]
    if cfg.schedule is not None:
        options = dict(cfg.schedule_options)
        if cfg.schedule != "piecewise_constant_decay":
            options.setdefault("decay_steps", max(total_steps or 1, 1))
        learning_rate = optim.schedule(cfg.schedule, learning_rate, **options)
    return optim.make(cfg.optimizer, **{**cfg.optimizer_options, "learning_rate": learning_rate})


@dataclasses.dataclass(frozen=True)
class Run:
    """A `RunConfig` resolved once (`resolve`): the card, the resolved config, what training
    builds (model overrides with the card's small-image configuration merged, per-example
    input shape, classes) and the learner's class."""

    config: RunConfig
    card: registry.ZooCard
    model_overrides: dict[str, Any]
    input_shape: tuple[int, ...]
    num_classes: int
    learner_class: type

    def model(self) -> nn.Module:
        return self.card.build(**self.model_overrides)  # overrides checked in `_check`

    def optimizer(self, total_steps: int | None = None) -> optax.GradientTransformation:
        return build_optimizer(self.config, total_steps)

    def learner(self, total_steps: int | None = None) -> learners.Learner:
        """The card's learner for this config; `total_steps` sets a schedule's length."""
        learner = self.learner_class.from_config(self, total_steps)
        if self.config.dtype != "float32":  # `_check` made sure the learner computes in it
            learner = dataclasses.replace(learner, compute_dtype=self.config.dtype)
        return learner

    def sample_batch(self) -> dict[str, np.ndarray]:
        """One example of the dataset's input kind, for abstract builds (no data read)."""
        return {"inputs": datasets.sample_inputs(self.config.dataset, self.input_shape)}

    def _check(self) -> None:
        cfg = self.config
        if cfg.nan_policy not in NAN_POLICIES:
            raise ZooError(f"--nan-policy must be one of {', '.join(NAN_POLICIES)}")
        for name in ("epochs", "batch_size", "train_limit", "test_limit", "patience"):
            if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
                raise ZooError(f"{name} must be >= 1, got {getattr(cfg, name)}")
        if not 0 <= cfg.seed < 2**32:  # PRNGKey keeps 32 bits: 2**32 would repeat seed 0
            raise ZooError(f"seed must be in [0, 2**32), got {cfg.seed}")
        if not (math.isfinite(cfg.min_delta) and cfg.min_delta >= 0):
            raise ZooError(f"min_delta must be a finite number >= 0, got {cfg.min_delta}")
        if cfg.min_delta and cfg.patience is None:
            raise ZooError("min_delta is early stopping's threshold: it needs patience")
        if cfg.keep_checkpoints < 1:
            raise ZooError(f"keep_checkpoints must be >= 1, got {cfg.keep_checkpoints}")
        if cfg.l1 < 0 or cfg.l2 < 0:
            raise ZooError("l1 and l2 must be >= 0")
        registry.check_overrides(cfg.model, cfg.model_overrides)
        kind = datasets.kind(cfg.dataset)
        if kind != self.card.input_kind:
            wanted = {"tokens": "token", "bits": "bit-sequence",
                      "captioned": "captioned-image"}.get(self.card.input_kind, "image")  # fmt: skip
            raise InputError(f"{cfg.model} reads {wanted} datasets, not {cfg.dataset!r}")
        self.learner_class.check_config(self)  # its loss, augmentation, ...
        if cfg.dtype not in learners.COMPUTE_DTYPES:
            raise UnknownNameError("dtype", cfg.dtype, learners.COMPUTE_DTYPES)
        if cfg.dtype != "float32" and not self.learner_class.mixed_precision:
            raise ZooError(
                f"--dtype {cfg.dtype}: {cfg.model}'s learner ({self.card.learner}) computes in "
                "float32 only; mixed precision is for the gradient-trained models (a counting, "
                "sampling or closed-form rule keeps float32)"
            )
        if cfg.patience is not None and "validation" not in datasets.splits(cfg.dataset):
            raise ZooError(
                f"early stopping (patience) watches a validation split, and {cfg.dataset} has "
                f"none (its splits: {', '.join(datasets.splits(cfg.dataset))})"
            )
        if cfg.schedule_options and cfg.schedule is None:
            raise ZooError(
                "--schedule-opt sets a schedule's options: name the schedule with --schedule"
            )
        if "learning_rate" in cfg.optimizer_options:
            raise ZooError("set the learning rate with learning_rate (--lr), not an option")
        build_optimizer(cfg)  # names and ranges of optimizer, options and schedule

    def check_build(self) -> None:
        """Build the learner and trace its `init` abstractly (nothing allocated, no data
        read): model overrides it cannot be built with (a negative layer size, an empty
        stack, a size over the device's memory) are a `ZooError` naming them, not a
        traceback from inside Flax or an abort in XLA. `fit` calls it before it loads data,
        and `zoo-jax bench` before it compiles."""
        cfg = self.config
        if not cfg.model_overrides:
            return  # the registered configurations build (tests/test_registry.py)
        try:
            state = jax.eval_shape(self.learner().init, jax.random.PRNGKey(0), self.sample_batch())
        except (TypeError, ValueError, ZeroDivisionError, IndexError, OverflowError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ZooError(
                f"{cfg.model} cannot be built with {cfg.model_overrides}: {reason}"
            ) from None
        # A train step holds the whole state and one gradient of the parameters at least: a
        # config over the device's memory is refused here, before XLA compiles (or aborts
        # on) arrays it could never allocate.
        nbytes = lambda tree: sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))
        need = nbytes(state) + nbytes(state.params)
        subject = f"{cfg.model} with {cfg.model_overrides}"
        checks.check_fits(subject, need, "its parameters, optimizer state and gradients")

    def load_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and labels of one split of the config's dataset, shaped for the model."""
        cfg = self.config
        limit = cfg.train_limit if split == "train" else cfg.test_limit
        return datasets.load(cfg.dataset, split, self.input_shape, cfg.data_dir, limit)

    def load_data(self) -> Arrays:
        """Train and test arrays of the config's dataset, shaped for its model, validated."""
        return self.check_data((*self.load_split("train"), *self.load_split("test")))

    def check_data(self, data: Arrays) -> Arrays:
        """Inputs and labels as the model expects them: images (floats) and class labels, or,
        for a token dataset, token ids `(n, length)` in `[0, num_classes)` for both (a
        captioned dataset: images, and token ids as labels)."""
        cfg, input_shape, num_classes = self.config, self.input_shape, self.num_classes
        if not isinstance(data, tuple | list) or len(data) != 4:
            got = f"{len(data)} items" if isinstance(data, tuple | list) else type(data).__name__
            raise InputError(f"data must be (x_train, y_train, x_test, y_test), got {got}")
        x_train, y_train, x_test, y_test = data
        kind = datasets.kind(cfg.dataset)  # that it suits the model: RunConfig.check
        for x, y in ((x_train, y_train), (x_test, y_test)):
            if kind == "bits":
                pipeline.validate_bit_sequences(x, y, input_shape, num_classes)
            elif kind == "captioned":  # images labelled by token ids
                pipeline.validate_inputs(x, input_shape, self.card.input_layout)
                pipeline.validate_tokens(y, num_classes, len(x), what="labels")
            elif kind == "tokens":
                pipeline.validate_tokens(x, num_classes)
                if x.shape[1:] != tuple(input_shape):
                    raise InputError(f"inputs of length {input_shape[0]} expected, got {x.shape}")
                pipeline.validate_tokens(y, num_classes, len(x), what="labels")
            else:
                pipeline.validate_inputs(x, input_shape, self.card.input_layout)
                pipeline.validate_labels(y, num_classes, len(x))
            self.learner_class.check_inputs(self, x)
        if len(x_train) < cfg.batch_size:
            raise InputError(
                f"{len(x_train)} training examples cannot fill one batch of {cfg.batch_size}"
            )
        return data


def resolve(config: RunConfig) -> Run:
    """`config` with the card's defaults filled in, every option checked, as a `Run`."""
    card = registry.get_card(config.model)
    pick = lambda value, default: default if value is None else value
    cfg = dataclasses.replace(
        config,
        dataset=pick(config.dataset, card.dataset),
        optimizer=pick(config.optimizer, card.optimizer),
        learning_rate=pick(config.learning_rate, card.learning_rate),
        loss=pick(config.loss, card.loss),
        # the card's loss options go with the card's loss (the Transformer's smoothing)
        loss_options=config.loss_options or (card.loss_options if config.loss is None else {}),
        # and its optimizer options under the config's go with its optimizer (DCGAN's β1)
        optimizer_options=(
            card.optimizer_options if config.optimizer in (None, card.optimizer) else {}
        )
        | config.optimizer_options,
        epochs=pick(config.epochs, card.epochs),
        batch_size=pick(config.batch_size, card.batch_size),
    )
    overrides, shape, num_classes = registry.training_config(card, cfg.model_overrides)
    shape = card.dataset_shapes.get(datasets.canonical(cfg.dataset), shape)
    run = Run(
        config=cfg,
        card=card,
        model_overrides=overrides,
        input_shape=shape,
        num_classes=num_classes,
        learner_class=learners.get(card.learner),
    )
    run._check()
    return run


def build_learner(config: RunConfig, total_steps: int | None = None) -> learners.Learner:
    """The learner of a config (`resolve(config).learner(total_steps)`)."""
    return resolve(config).learner(total_steps)


def check_build(config: RunConfig) -> None:
    resolve(config).check_build()


def load_data(config: RunConfig) -> Arrays:
    return resolve(config).load_data()
