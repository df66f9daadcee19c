"""`fit` and `evaluate_run`: epochs, progress, metrics files, checkpoints, resume, NaN policy.

A run directory holds `config.json`, `metrics.jsonl` (one line per epoch), `summary.json`,
`curves.png` (with matplotlib) and `checkpoints/` (orbax). Given the same config and seed a
run is bitwise reproducible on CPU, and `resume=True` continues it exactly: the data order of
epoch `e` is drawn from `fold_in(data_key, e)`, the step key from `fold_in(state.rng, step)`,
and a resumed run skips the batches of the interrupted epoch it already consumed.

The host reads metrics back every `log_every` steps, not every step, so the device queue
never drains. Non-finite steps are skipped inside the step (see `GradientLearner`); the
policy decides what the host does on seeing one: `stop` (default) raises `NonFiniteError`,
`skip` counts it and goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from zoo_jax import losses, optim, registry
from zoo_jax.data import augment, datasets, pipeline
from zoo_jax.errors import CheckpointError, InputError, NonFiniteError, ZooError
from zoo_jax.files import write_atomic
from zoo_jax.learners import LEARNERS
from zoo_jax.models import layers
from zoo_jax.train.checkpoint import Checkpointer, config_difference, versions
from zoo_jax.train.steps import compile_steps

NAN_POLICIES = ("stop", "skip")


@dataclasses.dataclass
class RunConfig:
    """What to train and how. `None` fields take the model card's default."""

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

    def resolved(self) -> RunConfig:
        card = registry.get_card(self.model)
        pick = lambda value, default: default if value is None else value
        cfg = dataclasses.replace(
            self,
            dataset=pick(self.dataset, card.dataset),
            optimizer=pick(self.optimizer, card.optimizer),
            learning_rate=pick(self.learning_rate, card.learning_rate),
            loss=pick(self.loss, card.loss),
            # the card's loss options go with the card's loss (the Transformer's smoothing)
            loss_options=self.loss_options or (card.loss_options if self.loss is None else {}),
            epochs=pick(self.epochs, card.epochs),
            batch_size=pick(self.batch_size, card.batch_size),
        )
        cfg._check()
        return cfg

    def _check(self) -> None:  # of the resolved config (`resolved` calls it)
        if self.nan_policy not in NAN_POLICIES:
            raise ZooError(f"--nan-policy must be one of {', '.join(NAN_POLICIES)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ZooError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ZooError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:  # PRNGKey keeps 32 bits: 2**32 would repeat seed 0
            raise ZooError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.keep_checkpoints < 1:
            raise ZooError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if self.l1 < 0 or self.l2 < 0:
            raise ZooError("l1 and l2 must be >= 0")
        card = registry.get_card(self.model)
        registry.check_overrides(self.model, self.model_overrides)
        if self.dataset is not None and datasets.is_tokens(self.dataset) != (
            card.input_kind == "tokens"
        ):
            wanted = "token" if card.input_kind == "tokens" else "image"
            raise InputError(f"{self.model} reads {wanted} datasets, not {self.dataset!r}")
        if self.augment is not None:
            augment.get(self.augment)  # the name
            if card.learner != "gradient" or card.input_kind != "images":
                raise ZooError(f"--augment works on image classifiers, not on {self.model}")
        generator = card.learner == "generator"
        (losses.for_images if generator else losses.for_classifier)(self.loss, **self.loss_options)
        if "learning_rate" in self.optimizer_options:
            raise ZooError("set the learning rate with learning_rate (--lr), not an option")
        build_optimizer(self)  # names and ranges of optimizer, options and schedule

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


def build_learner(cfg: RunConfig, total_steps: int | None = None):
    card = registry.get_card(cfg.model)
    overrides, _, num_classes = registry.training_spec(cfg.model, cfg.model_overrides)
    model = registry.get_model(cfg.model, **overrides)
    tx = build_optimizer(cfg, total_steps)
    extra = {"augment": augment.get(cfg.augment)} if cfg.augment else {}
    return LEARNERS[card.learner](
        model,
        loss=cfg.loss,
        optimizer=tx,
        num_classes=num_classes,
        l1=cfg.l1,
        l2=cfg.l2,
        loss_options=cfg.loss_options,
        **extra,
    )


def check_build(cfg: RunConfig) -> None:
    """Build the config's learner and trace its `init` abstractly (nothing allocated, no
    data read): model overrides it cannot be built with (a negative layer size, an empty
    stack, a size over the device's memory) are a `ZooError` naming them, not a traceback
    from inside Flax or an abort in XLA. `fit` calls it before it loads data, and `zoo-jax
    bench` before it compiles."""
    cfg = cfg.resolved()
    if not cfg.model_overrides:
        return  # the registered configurations build (tests/test_registry.py)
    _, input_shape, _ = registry.training_spec(cfg.model, cfg.model_overrides)
    sample = {"inputs": datasets.sample_inputs(cfg.dataset, input_shape)}
    try:
        state = jax.eval_shape(build_learner(cfg).init, jax.random.PRNGKey(0), sample)
    except (TypeError, ValueError, ZeroDivisionError, IndexError, OverflowError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ZooError(
            f"{cfg.model} cannot be built with {cfg.model_overrides}: {reason}"
        ) from None
    # A train step holds the whole state and one gradient of the parameters at least: a
    # config over the device's memory is refused here, before XLA compiles (or aborts on)
    # arrays it could never allocate.
    nbytes = lambda tree: sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))
    need = nbytes(state) + nbytes(state.params)
    subject = f"{cfg.model} with {cfg.model_overrides}"
    layers.check_fits(subject, need, "its parameters, optimizer state and gradients")


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_data(cfg: RunConfig) -> Arrays:
    """Train and test arrays of the config's dataset, shaped for its model, validated."""
    _, input_shape, _ = registry.training_spec(cfg.model, cfg.model_overrides)
    arrays = []
    for split, limit in (("train", cfg.train_limit), ("test", cfg.test_limit)):
        arrays += datasets.load(cfg.dataset, split, input_shape, cfg.data_dir, limit)
    return check_data(cfg, tuple(arrays))


def check_data(cfg: RunConfig, data: Arrays) -> Arrays:
    """Inputs and labels as the model expects them: images (floats) and class labels, or,
    for a token dataset, token ids `(n, length)` in `[0, num_classes)` for both."""
    card = registry.get_card(cfg.model)
    _, input_shape, num_classes = registry.training_spec(cfg.model, cfg.model_overrides)
    if not isinstance(data, tuple | list) or len(data) != 4:
        got = f"{len(data)} items" if isinstance(data, tuple | list) else type(data).__name__
        raise InputError(f"data must be (x_train, y_train, x_test, y_test), got {got}")
    x_train, y_train, x_test, y_test = data
    tokens = datasets.is_tokens(cfg.dataset)  # that it suits the model: RunConfig.check
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if tokens:
            pipeline.validate_tokens(x, num_classes)
            if x.shape[1:] != tuple(input_shape):
                raise InputError(f"inputs of length {input_shape[0]} expected, got {x.shape}")
            pipeline.validate_tokens(y, num_classes, len(x), what="labels")
        else:
            pipeline.validate_inputs(x, input_shape, card.input_layout)
            pipeline.validate_labels(y, num_classes, len(x))
    if len(x_train) < cfg.batch_size:
        raise InputError(
            f"{len(x_train)} training examples cannot fill one batch of {cfg.batch_size}"
        )
    return data


class Interrupted(KeyboardInterrupt):
    """Training stopped by SIGINT / SIGTERM after saving a checkpoint of the current step."""

    def __init__(self, signum: int, step: int, saved: bool):
        outcome = "checkpoint saved, --resume continues" if saved else "no run directory: not saved"
        super().__init__(f"stopped by signal {signum} at step {step}; {outcome}")
        self.signum = signum


class _StopSignal:
    """Turns SIGINT / SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Tally:
    """Training metrics read back from the device: epoch means, the loss curve, skipped steps."""

    def __init__(self):
        self.curve: list[tuple[int, float]] = []
        self.skipped = 0
        self.new_epoch()

    def new_epoch(self) -> None:
        self.sums = {"loss": 0.0, "accuracy": 0.0}
        self.count = 0

    def add(self, metrics: list[dict], step: int, epoch: int, nan_policy: str) -> None:
        """Metrics of steps `step - len(metrics) + 1 … step`; applies the NaN policy."""
        for i, m in enumerate(metrics):
            at = step - len(metrics) + i + 1
            if not bool(np.all(m["finite"])):
                if nan_policy == "stop":
                    raise NonFiniteError(
                        f"non-finite loss or gradient at step {at} (epoch {epoch + 1}); the "
                        "update was not applied. Lower the learning rate, or pass "
                        "--nan-policy skip to skip such updates"
                    )
                self.skipped += 1
                continue
            for key in self.sums:
                self.sums[key] += _scalar(m[key])
            self.count += 1
            self.curve.append((at, _scalar(m["loss"])))

    def mean(self, key: str) -> float:
        return self.sums[key] / max(self.count, 1)

    def describe(self) -> str:
        return f"loss {self.mean('loss'):.4f} acc {self.mean('accuracy'):.4f}"


def _evaluate(steps, state, x, y, batch_size: int) -> dict[str, float]:
    totals = None
    for batch in pipeline.eval_batches(x, y, batch_size):
        sums = steps.evaluate(state, steps.put_batch(batch))
        totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
    totals = jax.device_get(totals)
    count = float(totals["count"])
    return {"loss": float(totals["loss_sum"]) / count, "accuracy": float(totals["correct"]) / count}


def _eval_batch_size(num_devices: int) -> int:
    return num_devices * -(-1000 // num_devices)


def _scalar(x) -> float:
    return float(np.asarray(x).reshape(-1)[0])  # pmap returns one (equal) copy per device


def _plot(run_dir: Path, curve: list[tuple[int, float]], epochs: list[dict], title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot([s for s, _ in curve], [v for _, v in curve], lw=1)
    ax1.set(xlabel="step", ylabel="training loss", yscale="log", title=title)
    ax2.plot([e["epoch"] for e in epochs], [e["test_accuracy"] for e in epochs], "o-", label="test")
    ax2.plot(
        [e["epoch"] for e in epochs], [e["train_accuracy"] for e in epochs], "s--", label="train"
    )
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "curves.png", dpi=110)
    plt.close(fig)


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def _read_epoch_log(path: Path) -> list[dict]:
    """The epochs of `metrics.jsonl`, one JSON object with a `step` per line."""
    log = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
            int(entry["step"])
        except (ValueError, TypeError, KeyError):
            raise ZooError(
                f"{path} line {number} is not an epoch record ({line[:60]!r}): mend or remove "
                "the file to resume"
            ) from None
        log.append(entry)
    return log


def _difference_from_checkpoint(ckpt: Checkpointer, cfg: RunConfig) -> list[str]:
    """How `cfg`'s identity differs from the one the latest checkpoint was written for."""
    return config_difference(ckpt.read_meta().get("identity", {}), cfg.identity())


def _open_run_dir(run_path: Path, cfg: RunConfig, state, resume: bool):
    """Checkpointer and metadata of a run directory; on resume, the restored state and the
    epoch log up to its step (later lines of `metrics.jsonl` are dropped from the file too)."""
    try:
        run_path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, no permission, a read-only disk
        raise ZooError(f"cannot create the run directory {run_path}: {err.strerror}") from None
    ckpt = Checkpointer(run_path / "checkpoints", cfg.keep_checkpoints)
    meta = {"config": dataclasses.asdict(cfg), "identity": cfg.identity(), "versions": versions()}
    epoch_log: list[dict] = []
    if resume:
        if ckpt.latest_step() is None:
            raise CheckpointError(f"--resume: no checkpoint in {run_path / 'checkpoints'}")
        if diff := _difference_from_checkpoint(ckpt, cfg):
            raise CheckpointError(
                f"--resume refused: the checkpoint in {run_path} was written for another "
                f"config ({'; '.join(diff)})"
            )
        state, _ = ckpt.restore(jax.tree.map(np.asarray, state))
        metrics_file = run_path / "metrics.jsonl"
        if metrics_file.exists():
            epoch_log = [e for e in _read_epoch_log(metrics_file) if e["step"] <= int(state.step)]
            write_atomic(metrics_file, "".join(json.dumps(e) + "\n" for e in epoch_log))
    elif ckpt.latest_step() is not None:
        raise CheckpointError(
            f"{run_path} already holds checkpoints: pass --resume to continue, or choose "
            "another --run-dir"
        )
    write_atomic(run_path / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    return ckpt, meta, state, epoch_log


def fit(
    config: RunConfig,
    run_dir: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    data: Arrays | None = None,
    progress: bool | None = None,
    log=None,
) -> dict[str, Any]:
    """Train `config.model`, evaluate on the test split each epoch; return the summary.

    `data` (x_train, y_train, x_test, y_test) replaces the dataset files (validated the same
    way). `run_dir=None` trains without writing anything. `log` receives one line per epoch
    (default: stderr).
    """
    cfg = config.resolved()
    check_build(cfg)  # overrides it cannot be built with fail before the data loads
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    progress = sys.stderr.isatty() if progress is None else progress
    x_train, y_train, x_test, y_test = check_data(cfg, data) if data is not None else load_data(cfg)

    learner = build_learner(cfg, cfg.epochs * (len(x_train) // cfg.batch_size))
    steps = compile_steps(learner, cfg.parallel, cfg.devices)
    if cfg.batch_size % steps.num_devices:
        raise ZooError(
            f"batch size {cfg.batch_size} is not divisible by {steps.num_devices} devices"
        )
    init_key, data_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    state = learner.init(
        init_key, {"inputs": x_train[: cfg.batch_size], "labels": y_train[: cfg.batch_size]}
    )
    num_params = sum(math.prod(p.shape) for p in jax.tree.leaves(state.params))

    run_path = Path(run_dir) if run_dir is not None else None
    if resume and run_path is None:
        raise ZooError("resume needs the run directory to continue (--run-dir)")
    ckpt, meta, state, epoch_log = (
        _open_run_dir(run_path, cfg, state, resume) if run_path else (None, {}, state, [])
    )
    n = len(x_train)
    per_epoch = n // cfg.batch_size
    total_steps = cfg.epochs * per_epoch
    step = int(state.step)
    tally = _Tally()
    compile_s = None
    train_time, train_images = 0.0, 0
    eval_bs = _eval_batch_size(steps.num_devices)
    t_run = time.perf_counter()
    dev_state = steps.put_state(state)

    def save(at_step: int) -> None:
        if ckpt is not None:
            ckpt.save(at_step, steps.get_state(dev_state), meta)

    try:
        with _StopSignal() as stop, _progress(progress) as bar:
            task = bar.add_task(cfg.model, total=total_steps, completed=step, stats="")
            for epoch in range(step // per_epoch, cfg.epochs):
                order = pipeline.epoch_order(data_key, epoch, n)
                pending: list[dict] = []
                tally.new_epoch()
                t_epoch = time.perf_counter()
                for batch in pipeline.train_batches(
                    x_train, y_train, cfg.batch_size, order, step % per_epoch
                ):
                    dev_state, metrics = steps.train(dev_state, steps.put_batch(batch))
                    step += 1
                    pending.append(metrics)
                    if compile_s is None:  # the first step includes compilation: time it apart
                        jax.block_until_ready(metrics)
                        compile_s = time.perf_counter() - t_epoch
                        t_epoch = time.perf_counter()
                    else:
                        train_images += cfg.batch_size
                    end_of_epoch = step % per_epoch == 0
                    if len(pending) >= cfg.log_every or end_of_epoch or stop.received:
                        tally.add(jax.device_get(pending), step, epoch, cfg.nan_policy)
                        pending = []
                        seconds = train_time + time.perf_counter() - t_epoch
                        rate = f" {train_images / seconds:,.0f} img/s" if train_images else ""
                        bar.update(task, completed=step, stats=tally.describe() + rate)
                    if stop.received:
                        save(step)
                        raise Interrupted(stop.received, step, saved=ckpt is not None)
                train_time += time.perf_counter() - t_epoch
                test = _evaluate(steps, dev_state, x_test, y_test, eval_bs)
                if cfg.nan_policy == "stop" and not math.isfinite(test["loss"]):
                    # the step's guard sees the loss and the gradient, not the update: a NaN
                    # learning rate's update shows here, before it is saved
                    raise NonFiniteError(
                        f"the test loss after epoch {epoch + 1} is {test['loss']}: the "
                        "parameters are no longer finite (is the learning rate?)"
                    )
                record = {
                    "epoch": epoch + 1,
                    "step": step,
                    "train_loss": tally.mean("loss"),
                    "train_accuracy": tally.mean("accuracy"),
                    "test_loss": test["loss"],
                    "test_accuracy": test["accuracy"],
                    "images_per_s": train_images / train_time if train_images else None,
                    "wall_s": time.perf_counter() - t_run,
                }
                epoch_log.append(record)
                log(
                    f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f} "
                    f"acc {record['train_accuracy']:.4f} | test loss {test['loss']:.4f} "
                    f"acc {test['accuracy']:.4f}"
                )
                if run_path is not None:
                    with open(run_path / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
                save(step)
    except BaseException:  # a signal, a NaN, a full disk, a device out of memory
        if ckpt is not None:  # the save in flight is finished first: the last checkpoint is whole
            with contextlib.suppress(Exception):  # (the error to report is the first one)
                ckpt.close()
        raise

    final_state = steps.get_state(dev_state)
    if not epoch_log:  # resumed a finished run: evaluate what was restored
        test = _evaluate(steps, dev_state, x_test, y_test, eval_bs)
        epoch_log.append(
            {
                "epoch": cfg.epochs,
                "step": step,
                "test_loss": test["loss"],
                "test_accuracy": test["accuracy"],
                "train_loss": None,
                "train_accuracy": None,
            }
        )
    if ckpt is not None:
        ckpt.close()
    last = epoch_log[-1]
    summary = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "optimizer": cfg.optimizer,
        "learning_rate": cfg.learning_rate or optim.defaults(cfg.optimizer)["learning_rate"],
        "optimizer_options": cfg.optimizer_options,
        "schedule": cfg.schedule and {"name": cfg.schedule, **cfg.schedule_options},
        "loss": cfg.loss,
        "loss_options": cfg.loss_options,
        "epochs": cfg.epochs,
        "steps": step,
        "batch_size": cfg.batch_size,
        "params": num_params,
        "train": {"loss": last["train_loss"], "accuracy": last["train_accuracy"]},
        "test": {"loss": last["test_loss"], "accuracy": last["test_accuracy"]},
        "wall_s": time.perf_counter() - t_run,
        "compile_s": compile_s,
        "images_per_s": train_images / train_time if train_images else None,
        "skipped_updates": tally.skipped,
        "train_step_compiles": steps.traces["train"],
        "devices": steps.num_devices,
        "parallel": cfg.parallel,
        "device_kind": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "versions": versions(),
        "config": dataclasses.asdict(cfg),
        "history": epoch_log,
    }
    if run_path is not None:
        write_atomic(run_path / "summary.json", json.dumps(summary, indent=2))
        _plot(
            run_path,
            tally.curve,
            [e for e in epoch_log if e.get("train_accuracy") is not None],
            f"{cfg.model} on {cfg.dataset}",
        )
    summary["state"] = final_state
    return summary


def restore_run(run_dir: str | os.PathLike, data_dir: str | None = None):
    """`(config, learner, state, meta)` of the latest checkpoint of a run directory (digest
    verified). `data_dir` replaces the stored config's."""
    run_path = Path(run_dir)
    config_file = run_path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{run_path} is not a run directory (no config.json)")
    try:
        fields = json.loads(config_file.read_text())
        known = {f.name for f in dataclasses.fields(RunConfig)}
        cfg = RunConfig(**{k: v for k, v in fields.items() if k in known})
        if data_dir is not None:
            cfg.data_dir = data_dir
        cfg = cfg.resolved()
    except ZooError:
        raise
    except (ValueError, TypeError, AttributeError) as err:  # not JSON, not a dict, a field's type
        raise CheckpointError(f"{config_file} is not a run's config: {err}") from None
    ckpt = Checkpointer(run_path / "checkpoints")
    try:
        if diff := _difference_from_checkpoint(ckpt, cfg):  # an edited config.json: say so
            raise CheckpointError(
                f"{config_file} does not match the run's checkpoint ({'; '.join(diff)})"
            )
        _, input_shape, _ = registry.training_spec(cfg.model, cfg.model_overrides)
        learner = build_learner(cfg)
        sample = {"inputs": datasets.sample_inputs(cfg.dataset, input_shape)}
        abstract = learner.init(jax.random.PRNGKey(0), sample)
        state, meta = ckpt.restore(jax.tree.map(np.asarray, abstract))
    finally:
        ckpt.close()
    return cfg, learner, state, meta


def evaluate_run(run_dir: str | os.PathLike, data_dir: str | None = None) -> dict[str, Any]:
    """Restore the latest checkpoint of `run_dir` and evaluate it on the test split."""
    run_path = Path(run_dir)
    cfg, learner, state, meta = restore_run(run_path, data_dir)
    _, input_shape, _ = registry.training_spec(cfg.model, cfg.model_overrides)
    x_test, y_test = datasets.load(cfg.dataset, "test", input_shape, cfg.data_dir, cfg.test_limit)
    steps = compile_steps(learner, "none", 1)
    test = _evaluate(steps, steps.put_state(state), x_test, y_test, _eval_batch_size(1))
    return {
        "run_dir": str(run_path),
        "model": cfg.model,
        "dataset": cfg.dataset,
        "step": meta["step"],
        "test": test,
    }
