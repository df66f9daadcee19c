"""Checkpoints: an orbax `CheckpointManager` whose items are the state and its metadata.

Each step directory holds two items:

* `state`: the unreplicated `TrainState` (orbax `StandardSave`, written asynchronously),
* `meta`: JSON with the run config, the step, package versions and `state_sha256`, a
  SHA-256 over the canonicalised state tree (every leaf's path, dtype, shape and bytes).

orbax finalises a step by an atomic rename, so a process killed mid-save leaves the previous
step as the latest restorable one. orbax does not checksum array data, so `restore` re-hashes
what it read and refuses a mismatch: a flipped bit is an error, not a silently different model.

A save that fails (a full disk, a lost mount) is one `CheckpointError` naming the directory,
the reason and the last complete step; the half-written `*.orbax-checkpoint-tmp` directory
is removed, and orbax's own error logs from its save threads (hundreds of lines of
tracebacks for one full disk) are kept off the console.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from zoo_jax.errors import CheckpointError


def state_digest(state: Any) -> str:
    """SHA-256 over (path, dtype, shape, bytes) of every leaf, in tree order."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]:
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def config_difference(saved: dict, current: dict) -> list[str]:
    """Lines `key: saved → current` for every key whose value differs."""
    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: {saved.get(k)!r} -> {current.get(k)!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]


def _not_from_orbax(record: logging.LogRecord) -> bool:
    """Drop orbax's ERROR records (its save threads log each failure with a traceback; the
    failure itself reaches the caller as one `CheckpointError`)."""
    return not (record.levelno >= logging.ERROR and "orbax" in record.pathname)


def _not_orbax_task(record: logging.LogRecord) -> bool:
    """Drop asyncio's "Task exception was never retrieved" for orbax's write tasks: the
    other arrays of a save that failed, failing in turn after the error was reported."""
    return "orbax" not in record.getMessage()


def _quiet_closed_loop(unraisable, previous=sys.unraisablehook) -> None:
    """After a failed save, tensorstore completes the writes still in flight and calls back
    into the save's event loop, closed by then: Python reports each "Event loop is closed"
    as unraisable. Those are dropped; anything else goes to the previous hook."""
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
        return
    previous(unraisable)


logging.getLogger("absl").addFilter(_not_from_orbax)
logging.getLogger("asyncio").addFilter(_not_orbax_task)
sys.unraisablehook = _quiet_closed_loop


def _reason(err: BaseException) -> str:
    text = str(err)
    if (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "No space left" in text:
        return "no space left on device"
    line = next((x.strip() for x in text.splitlines() if x.strip()), type(err).__name__)
    return line if len(line) <= 200 else line[:197] + "..."


class Checkpointer:
    """Save / restore `TrainState`s under `directory`, keeping the last `max_to_keep`."""

    def __init__(self, directory: str | Path, max_to_keep: int = 3):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "meta"), options=options
        )

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Start an asynchronous save of `state` (a host / unreplicated tree) at `step`."""
        state = jax.device_get(state)
        meta = {**meta, "step": int(step), "state_sha256": state_digest(state)}
        try:
            self.manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
            )
        except Exception as err:  # this save's, or the one before it still in flight
            raise self._failed(err) from None

    def wait(self) -> None:
        if self.manager is None:
            return
        try:
            self.manager.wait_until_finished()
        except Exception as err:
            raise self._failed(err) from None

    def committed_steps(self) -> list[int]:
        """Steps whose directory orbax finalised (renamed from its temporary name)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())

    def _failed(self, err: BaseException) -> CheckpointError:
        """The error for a save that failed: its partial directories removed, the manager
        dropped (a later close has nothing to wait for)."""
        # a save still in flight (the one before) ends, one way or the other: `err` is the
        # error to report
        with contextlib.suppress(Exception):
            self.manager.wait_until_finished()
        for partial in self.directory.glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(partial, ignore_errors=True)
        # dropped, not closed: closing stops its event loop under tensorstore writes still in
        # flight, whose callbacks then print "Event loop is closed" tracebacks
        self.manager = None
        steps = self.committed_steps()
        last = f"the last complete one is step {steps[-1]}" if steps else "none was completed"
        return CheckpointError(
            f"a checkpoint could not be written to {self.directory}: {_reason(err)}; {last}"
        )

    def latest_step(self) -> int | None:
        self.wait()
        return self.manager.latest_step()

    def _restore(self, step: int | None, **items) -> tuple[int, Any]:
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no finalized checkpoint in {self.directory}")
        try:
            return step, self.manager.restore(step, args=ocp.args.Composite(**items))
        except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
            # orbax lists a whole tree's mismatches, arrays included: keep its first two lines
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = " ".join(lines[:2])
            reason = reason if len(reason) <= 200 else reason[:197] + "..."
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} cannot be restored: {reason}"
            ) from None

    def read_meta(self, step: int | None = None) -> dict:
        _, restored = self._restore(step, meta=ocp.args.JsonRestore())
        return dict(restored["meta"])

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure of `abstract_state` and verify the digest."""
        step, restored = self._restore(
            step, state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
        )
        meta = dict(restored["meta"])
        digest = state_digest(restored["state"])
        if digest != meta.get("state_sha256"):
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} is corrupted: state SHA-256 "
                f"{digest} differs from the recorded {meta.get('state_sha256')}"
            )
        return restored["state"], meta

    def close(self) -> None:
        """Wait for the save in flight and release the manager (again: nothing to do)."""
        if self.manager is not None:
            self.wait()
        if self.manager is not None:
            self.manager.close()
            self.manager = None


def versions() -> dict[str, str]:
    """Versions of the packages a run depends on, for metadata and result files."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("zoo-jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
