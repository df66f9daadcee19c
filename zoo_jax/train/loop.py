"""`fit` and `evaluate_run`: epochs, progress, metrics files, checkpoints, resume, NaN policy.

A run directory holds `config.json`, `metrics.jsonl` (one line per epoch), `summary.json`,
`curves.png` (with matplotlib) and `checkpoints/` (orbax). Given the same config and seed a
run is bitwise reproducible on CPU, and `resume=True` continues it exactly: the data order of
epoch `e` is drawn from `fold_in(data_key, e)`, the step key from `fold_in(state.rng, step)`,
and a resumed run skips the batches of the interrupted epoch it already consumed.

The host reads metrics back every `log_every` steps or `PROGRESS_READ_S` seconds, whichever
comes first, not every step, so the device queue never drains; `Progress` shows them. Non-finite steps are skipped inside the step (see `GradientLearner`); the
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

from zoo_jax import optim
from zoo_jax.data import pipeline, vision
from zoo_jax.errors import CheckpointError, NonFiniteError, ZooError
from zoo_jax.files import write_atomic
from zoo_jax.train import distributed
from zoo_jax.train.checkpoint import Checkpointer, config_difference, versions
from zoo_jax.train.run import Arrays, Run, RunConfig, resolve
from zoo_jax.train.steps import compile_steps


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
    """Training metrics read back from the device: epoch means of the learner's `metrics`,
    the curve of the first, skipped steps."""

    def __init__(self, metrics: tuple[str, ...]):
        self.metrics = metrics
        self.curve: list[tuple[int, float]] = []
        self.skipped = 0
        self.new_epoch()

    def new_epoch(self) -> None:
        self.sums = dict.fromkeys(self.metrics, 0.0)
        self.counts = dict.fromkeys(self.metrics, 0)

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
                if key in m:  # a learner's step may report only some of its metrics
                    self.sums[key] += _scalar(m[key])
                    self.counts[key] += 1
            if self.metrics[0] in m:  # the curve of the first metric (a solve reports none)
                self.curve.append((at, _scalar(m[self.metrics[0]])))

    def mean(self, key: str) -> float | None:
        """The epoch's mean of `key`; None where no step of the epoch reported it."""
        return self.sums[key] / self.counts[key] if self.counts[key] else None

    def describe(self) -> str:
        return _describe({key: self.mean(key) for key in self.metrics})


def _describe(values: dict[str, float | None]) -> str:
    """`loss 0.1234 acc 0.9876`: the progress bar's and the epoch line's form."""
    shown = {key: value for key, value in values.items() if value is not None}
    return " ".join(f"{_SHORT.get(key, key)} {value:.4f}" for key, value in shown.items())


_SHORT = {"accuracy": "acc", "token_accuracy": "token_acc", "exact_match": "exact",
          "pixel_agreement": "pixels"}  # fmt: skip


def _evaluate(
    steps, state, x, y, batch_size: int, metrics: tuple[str, ...], progress: Progress | None = None
) -> dict[str, float]:
    """The learner's metrics over `(x, y)`: its evaluation sums added up, divided by `count`."""
    totals = None
    batches = -(-len(x) // batch_size)
    t = time.perf_counter()
    for i, batch in enumerate(pipeline.eval_batches(x, y, batch_size), 1):
        sums = steps.evaluate(state, steps.put_batch(batch))
        totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
        if progress is not None and time.perf_counter() - t >= PROGRESS_READ_S:
            jax.block_until_ready(totals)  # the batches counted are done, not just queued
            progress.evaluating(i, batches)
            t = time.perf_counter()
    totals = jax.device_get(totals)
    count = float(totals["count"])
    return {key: float(totals[key]) / count for key in metrics}


def _throughput(examples: int, seconds: float, tokens_per_example: int | None) -> dict:
    """Training throughput under the name of its unit: `images_per_s` for image (and other
    array) inputs; `sequences_per_s` and `tokens_per_s` (predicted tokens) for text."""
    rate = examples / seconds if examples and seconds else None
    if tokens_per_example is None:
        return {"images_per_s": rate}
    return {"sequences_per_s": rate, "tokens_per_s": rate and rate * tokens_per_example}


def _eval_batch_size(num_devices: int) -> int:
    return num_devices * -(-1000 // num_devices)


def _scalar(x) -> float:
    return float(np.asarray(x).reshape(-1)[0])  # pmap returns one (equal) copy per device


def _plot(
    run_dir: Path,
    curve: list[tuple[int, float]],
    epochs: list[dict],
    title: str,
    metrics: tuple[str, ...],
) -> None:
    """`curves.png`: the training curve of the first metric by step, and the second (the
    first when there is one) by epoch, train and test."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        (run_dir / "curves.txt").write_text(
            "curves.png needs matplotlib: pip install 'zoo-jax[viz]' (metrics.jsonl has the "
            "same numbers)\n"
        )
        return
    first, second = metrics[0], metrics[min(1, len(metrics) - 1)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot([s for s, _ in curve], [v for _, v in curve], lw=1)
    ax1.set(xlabel="step", ylabel=f"training {first}", yscale="log", title=title)
    epoch = [e["epoch"] for e in epochs]
    ax2.plot(epoch, [e[f"test_{second}"] for e in epochs], "o-", label="test")
    ax2.plot(epoch, [e[f"train_{second}"] for e in epochs], "s--", label="train")
    ax2.set(xlabel="epoch", ylabel=second, title=second)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "curves.png", dpi=110)
    plt.close(fig)


def _sample_grid(run_dir: Path, images, title: str) -> None:
    """`samples.png`: a generative model's images, 8 to a row."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # curves.txt already says what is missing
    rows = len(images) // 8
    grid = vision.tile(images, rows, 8)
    fig, ax = plt.subplots(figsize=(6, 6 * rows / 8 + 0.4))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title)
    fig.savefig(run_dir / "samples.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


# Progress: metrics are read back from the device at least this often (a terminal's bar then
# moves even when `log_every` steps take minutes), and without a terminal (nohup, tee, a
# job's log file) one progress line is written this often.
PROGRESS_READ_S = 2.0
PROGRESS_LINE_S = 30.0


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """What a run shows while it trains and evaluates: on a terminal, a bar with the epoch,
    the step, the metrics, the throughput, the elapsed and the remaining time (redrawn by
    rich); elsewhere, the same as one line every `line_every` seconds through `log`; with
    `mode="off"`, nothing. Evaluation shows its own progress (batches done of all)."""

    def __init__(self, mode: str, model: str, epochs: int, total_steps: int, unit: str,
                 log, line_every: float | None = None):  # fmt: skip
        self.mode, self.model, self.epochs, self.total = mode, model, epochs, total_steps
        self.unit, self.log = unit, log
        self.line_every = PROGRESS_LINE_S if line_every is None else line_every
        self.start = time.perf_counter()
        self.last_line = self.start
        self.first_step: int | None = None
        self.bar = None

    def __enter__(self) -> Progress:
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
                console=Console(stderr=True),
            )  # the bar on stderr: stdout carries the results
            self.bar.__enter__()
            self.task = self.bar.add_task(self.model, total=self.total, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def _timing(self, step: int) -> str:
        """Elapsed since the start; remaining from the pace since the first report (after the
        first step's compile)."""
        now = time.perf_counter()
        elapsed = f"elapsed {_clock(now - self.start)}"
        if self.first_step is None:
            self.first_step, self.first_time = step, now
        if step <= self.first_step:
            return elapsed
        per_step = (now - self.first_time) / (step - self.first_step)
        return f"{elapsed} remaining {_clock(per_step * (self.total - step))}"

    def train(self, epoch: int, step: int, stats: str, rate: float | None) -> None:
        """Training reached `step` (of the run's total) in `epoch` (0-based)."""
        if self.mode == "off":
            return
        speed = f" {rate:,.0f} {self.unit}/s" if rate else ""
        where = f"epoch {epoch + 1}/{self.epochs} step {step:,}/{self.total:,}"
        info = f"{stats}{speed} {self._timing(step)}".strip()
        if self.bar is not None:
            self.bar.update(self.task, completed=step,
                            description=f"{self.model} {where}", info=info)  # fmt: skip
        elif time.perf_counter() - self.last_line >= self.line_every:
            self.last_line = time.perf_counter()
            self.log(f"{self.model} {where} ({100 * step / max(self.total, 1):.0f} %) {info}")

    def evaluating(self, done: int, total: int, split: str = "test") -> None:
        """`done` of `total` evaluation batches of `split` are through."""
        if self.mode == "off":
            return
        what = f"{self.model} evaluating the {split} split: batch {done}/{total}"
        if self.bar is not None:
            self.bar.update(self.task, info=what)
        elif time.perf_counter() - self.last_line >= self.line_every:
            self.last_line = time.perf_counter()
            self.log(what)


class _EarlyStopping:
    """Keras `EarlyStopping(monitor="val_loss", patience, min_delta,
    restore_best_weights=True)`: the best epoch's state (the lowest validation loss, an epoch
    better only when lower by more than `min_delta`; the first of equals) kept on the host
    and, in a run directory, in `best/` (orbax, one step), so a resumed run knows its best
    epoch and state and `evaluate_run` reads the state the run chose."""

    def __init__(self, patience: int, directory: Path | None, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.checkpointer = Checkpointer(directory, 1) if directory is not None else None
        self.best: dict | None = None  # the best epoch's record
        self.state = None

    def resume(self, epoch_log: list[dict], abstract_state) -> None:
        """The best epoch of a resumed run's log, and its state from `best/`."""
        for record in epoch_log:
            if self._better(record):
                self.best = record
        if self.best is not None:
            self.state, _ = self.checkpointer.restore(abstract_state, self.best["step"])

    def _better(self, record: dict) -> bool:
        loss = record.get("validation_loss")
        return loss is not None and (
            self.best is None or loss < self.best["validation_loss"] - self.min_delta
        )

    def update(self, record: dict, state, meta: dict) -> None:
        """After an epoch: keep `state` (a host tree) when its validation loss is the best."""
        if self._better(record):
            self.best, self.state = record, state
            if self.checkpointer is not None:
                self.checkpointer.save(record["step"], state, meta)

    def exhausted(self, epoch: int) -> bool:
        """Whether `epoch` (1-based, finished) is `patience` epochs past the best one."""
        return self.best is not None and epoch - self.best["epoch"] >= self.patience

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()


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


class RunLock:
    """`RUN_DIR/.lock`, created exclusively with the owner's process id: a second run into a
    directory in use is refused; a lock whose process is gone (killed) is taken over."""

    def __init__(self, run_path: Path):
        self.path = run_path / ".lock"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise ZooError(
                        f"{run_path} is in use by another run (process {owner}): wait for it "
                        "to end, or choose another --run-dir"
                    ) from None
                self.path.unlink(missing_ok=True)  # its run is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return
        raise ZooError(f"{run_path}: cannot take its lock file {self.path}")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def finite_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None: JSON has no NaN or Infinity
    (Python writes them, most readers refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def _open_run_dir(run_path: Path, cfg: RunConfig, state, resume: bool):
    """Checkpointer, metadata and lock of a run directory; on resume, the restored state and
    the epoch log up to its step (later lines of `metrics.jsonl` are dropped from the file
    too). A fresh run into a directory without checkpoints (a first run that died before
    its first save) starts the epoch log and summary afresh."""
    try:
        run_path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, no permission, a read-only disk
        raise ZooError(f"cannot create the run directory {run_path}: {err.strerror}") from None
    lock = RunLock(run_path) if distributed.is_writer() else None
    try:
        return (*_open_locked(run_path, cfg, state, resume), lock)
    except BaseException:
        lock and lock.release()
        raise


def _open_locked(run_path: Path, cfg: RunConfig, state, resume: bool):
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
            if distributed.is_writer():
                write_atomic(metrics_file, "".join(json.dumps(e) + "\n" for e in epoch_log))
    elif ckpt.latest_step() is not None:
        ckpt.close()
        raise CheckpointError(
            f"{run_path} already holds checkpoints: pass --resume to continue, or choose "
            "another --run-dir"
        )
    elif distributed.is_writer():
        for stale in ("metrics.jsonl", "summary.json"):
            (run_path / stale).unlink(missing_ok=True)
    if distributed.is_writer():
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
    (default: stderr). With `config.patience` each epoch is evaluated on the validation split
    too, and the summary (its `state`, `train`, `test` and `validation`) is the best epoch's.
    """
    run = resolve(config)  # the card, defaults and options, once
    cfg = run.config
    run.check_build()  # overrides it cannot be built with fail before the data loads
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    writer = distributed.is_writer()  # process 0 of a multi-process run writes and prints
    if not writer:
        log, progress = (lambda line: None), False
    x_train, y_train, x_test, y_test = run.check_data(data) if data is not None else run.load_data()
    if cfg.patience is not None:
        if data is not None:
            raise ZooError("early stopping reads the validation split from the dataset files: "
                           "pass data or patience, not both")  # fmt: skip
        x_val, y_val = run.check_data((x_train, y_train, *run.load_split("validation")))[2:]

    learner = run.learner(cfg.epochs * (len(x_train) // cfg.batch_size))
    names = learner.metrics  # what the learner reports (loss, accuracy, ...)
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
    ckpt, meta, state, epoch_log, lock = (
        _open_run_dir(run_path, cfg, state, resume) if run_path else (None, {}, state, [], None)
    )
    early = None
    if cfg.patience is not None:
        early = _EarlyStopping(cfg.patience, run_path and run_path / "best", cfg.min_delta)
        if resume:
            early.resume(epoch_log, jax.tree.map(np.asarray, state))

    n = len(x_train)
    per_epoch = n // cfg.batch_size
    total_steps = cfg.epochs * per_epoch
    step = int(state.step)
    tally = _Tally(names)
    compile_s = None
    train_time, train_images = 0.0, 0
    eval_bs = _eval_batch_size(steps.num_devices)
    t_run = time.perf_counter()
    dev_state = steps.put_state(state)

    def save(at_step: int) -> None:
        if ckpt is not None:
            ckpt.save(at_step, steps.get_state(dev_state), meta)

    tokens = run.card.input_kind == "tokens"
    unit = "tokens" if tokens else "examples"
    tokens_per_example = (
        learner.predicted_tokens(y_train[:1]) if tokens else None
    )  # a text model's throughput is counted in the tokens it predicts
    mode = "off" if progress is False else "bar" if sys.stderr.isatty() or progress else "lines"
    show = Progress(mode, cfg.model, cfg.epochs, total_steps, unit, log)
    try:
        with _StopSignal() as stop, show:
            last_read = time.perf_counter()
            for epoch in range(step // per_epoch, cfg.epochs):
                if early is not None and early.exhausted(epoch):  # a resumed run that stopped
                    break
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
                    due = time.perf_counter() - last_read >= PROGRESS_READ_S
                    if len(pending) >= cfg.log_every or end_of_epoch or stop.received or due:
                        tally.add(jax.device_get(pending), step, epoch, cfg.nan_policy)
                        pending, last_read = [], time.perf_counter()
                        seconds = train_time + time.perf_counter() - t_epoch
                        rate = train_images * (tokens_per_example or 1) / seconds or None
                        show.train(epoch, step, tally.describe(), rate)
                    if stop.received:
                        save(step)
                        raise Interrupted(stop.received, step, saved=ckpt is not None)
                if epoch == cfg.epochs - 1:  # a closed-form learner solves here
                    dev_state = steps.finalize(dev_state)
                train_time += time.perf_counter() - t_epoch
                test = _evaluate(steps, dev_state, x_test, y_test, eval_bs, names, show)
                for name, value in test.items():
                    if cfg.nan_policy == "stop" and not math.isfinite(value):
                        # the step's guard sees the loss and the gradient, not the update: a
                        # NaN learning rate's update shows here, before it is saved
                        raise NonFiniteError(
                            f"the test {name} after epoch {epoch + 1} is {value}: the "
                            "parameters are no longer finite (is the learning rate?)"
                        )
                validation = {}
                if early is not None:
                    validation = _evaluate(steps, dev_state, x_val, y_val, eval_bs, names, show)
                record = {
                    "epoch": epoch + 1,
                    "step": step,
                    **{f"train_{name}": tally.mean(name) for name in names},
                    **{f"test_{name}": value for name, value in test.items()},
                    **{f"validation_{name}": value for name, value in validation.items()},
                    **_throughput(train_images, train_time, tokens_per_example),
                    "wall_s": time.perf_counter() - t_run,
                }
                epoch_log.append(record)
                line = f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}: {tally.describe()}"
                line += f" | test {_describe(test)}"
                if validation:
                    line += f" | validation {_describe(validation)}"
                log(line)
                if run_path is not None and writer:
                    with open(run_path / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(finite_json(record)) + "\n")
                save(step)
                if early is not None:
                    early.update(record, steps.get_state(dev_state), meta)
                    if early.exhausted(epoch + 1) and epoch + 1 < cfg.epochs:
                        log(f"{cfg.model}: validation loss not better for {cfg.patience} epochs "
                            f"after epoch {early.best['epoch']}: stopped, its state kept")  # fmt: skip
                        break
    except BaseException:  # a signal, a NaN, a full disk, a device out of memory
        if ckpt is not None:  # the save in flight is finished first: the last checkpoint is whole
            with contextlib.suppress(Exception):  # (the error to report is the first one)
                ckpt.close()
            with contextlib.suppress(Exception):
                early is None or early.close()
            lock and lock.release()
        raise

    final_state = steps.get_state(dev_state)
    if early is not None:
        early.close()
    if not epoch_log:  # resumed a finished run: evaluate what was restored
        test = _evaluate(steps, dev_state, x_test, y_test, eval_bs, names)
        epoch_log.append(
            {
                "epoch": cfg.epochs,
                "step": step,
                **{f"test_{name}": value for name, value in test.items()},
                **{f"train_{name}": None for name in names},
            }
        )
    if ckpt is not None:
        ckpt.close()
    last = epoch_log[-1]
    if early is not None and early.best is not None:  # the summary describes the kept state
        final_state, last = early.state, early.best
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
        "train": {name: last[f"train_{name}"] for name in names},
        "test": {name: last[f"test_{name}"] for name in names},
        "wall_s": time.perf_counter() - t_run,
        "compile_s": compile_s,
        **_throughput(train_images, train_time, tokens_per_example),
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
    if early is not None and early.best is not None:
        summary |= {
            "validation": {name: last[f"validation_{name}"] for name in names},
            "best_epoch": last["epoch"],
            "stopped_early": len(summary["history"]) < cfg.epochs,
        }
    if run_path is not None and writer:
        write_atomic(run_path / "summary.json", json.dumps(finite_json(summary), indent=2))
        _plot(
            run_path,
            tally.curve,
            [e for e in epoch_log if e.get(f"train_{names[0]}") is not None],
            f"{cfg.model} on {cfg.dataset}",
            names,
        )
        images = learner.samples(final_state)
        if images is not None:
            _sample_grid(run_path, images, f"{cfg.model} on {cfg.dataset}: samples")
        lock.release()
    summary["state"] = final_state
    if tally.skipped:
        log(f"{cfg.model}: {tally.skipped} of {step} updates were skipped (a non-finite loss or "
            "gradient; --nan-policy skip)")  # fmt: skip
    for name, value in summary["test"].items():
        if value is not None and not math.isfinite(value):  # what `skip` could not save
            raise NonFiniteError(
                f"the run ended with test {name} {value} ({tally.skipped} of {step} updates "
                "skipped as non-finite): lower the learning rate"
            )
    return summary


def restore_run(run_dir: str | os.PathLike, data_dir: str | None = None):
    """`(config, learner, state, meta)` of the latest checkpoint of a run directory (digest
    verified; of an early-stopped run, its best epoch's). `data_dir` replaces the stored
    config's."""
    run, learner, state, meta = _restore(Path(run_dir), data_dir)
    return run.config, learner, state, meta


def _restore(run_path: Path, data_dir: str | None):
    config_file = run_path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{run_path} is not a run directory (no config.json)")
    try:
        fields = json.loads(config_file.read_text())
        known = {f.name for f in dataclasses.fields(RunConfig)}
        cfg = RunConfig(**{k: v for k, v in fields.items() if k in known})
        if data_dir is not None:
            cfg.data_dir = data_dir
        run = resolve(cfg)
    except ZooError:
        raise
    except (ValueError, TypeError, AttributeError) as err:  # not JSON, not a dict, a field's type
        raise CheckpointError(f"{config_file} is not a run's config: {err}") from None
    # an early-stopped run's result is its best epoch's state (`best/`), not its last
    best = run_path / "best"
    ckpt = Checkpointer(best if cfg.patience and best.is_dir() else run_path / "checkpoints")
    try:
        if diff := _difference_from_checkpoint(ckpt, run.config):  # an edited config.json
            raise CheckpointError(
                f"{config_file} does not match the run's checkpoint ({'; '.join(diff)})"
            )
        learner = run.learner()
        abstract = learner.init(jax.random.PRNGKey(0), run.sample_batch())
        state, meta = ckpt.restore(jax.tree.map(np.asarray, abstract))
    finally:
        ckpt.close()
    return run, learner, state, meta


def evaluate_state(run: Run, learner, state, split: str = "test") -> dict[str, float]:
    """The learner's metrics of `state` on one split of the run's dataset (its test_limit
    applies to every split but train, whose train_limit does)."""
    x, y = run.load_split(split)
    steps = compile_steps(learner, "none", 1)
    state = steps.put_state(state)
    return _evaluate(steps, state, x, y, _eval_batch_size(1), learner.metrics)


def evaluate_run(run_dir: str | os.PathLike, data_dir: str | None = None) -> dict[str, Any]:
    """Restore the latest checkpoint of `run_dir` and evaluate it on the test split."""
    run_path = Path(run_dir)
    run, learner, state, meta = _restore(run_path, data_dir)
    return {
        "run_dir": str(run_path),
        "model": run.config.model,
        "dataset": run.config.dataset,
        "step": meta["step"],
        "test": evaluate_state(run, learner, state),
    }
