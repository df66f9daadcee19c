"""What every experiment script shares: result rows in the DESIGN §7 schema, and RESULTS.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from zoo_jax.errors import ZooError, report, report_interrupt
from zoo_jax.files import write_atomic
from zoo_jax.train.checkpoint import versions

__all__ = [
    "claim",
    "device",
    "entry",
    "git_commit",
    "read_rows",
    "result_row",
    "versions",
    "write_rows",
]

RESULTS_DIR = Path(__file__).parent / "results"


def entry(main: Callable[[], int]) -> int:
    """Run an experiment's `main` as the CLI runs a command: a `ZooError` (an unknown model
    or dataset, an option out of range), the file system's refusal (a full disk) or a device
    out of memory is one line on stderr and exit status 2; Ctrl-C or SIGTERM (a job's time
    limit) is one line and 128 + the signal's number. Rows finished before it are kept."""
    try:
        return main()
    except Exception as err:
        return report(err, Path(sys.argv[0]).name)
    except KeyboardInterrupt as err:
        return report_interrupt(err, Path(sys.argv[0]).name)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device() -> str:
    d = jax.devices()[0]
    return f"{jax.default_backend()}:{d.device_kind} x{jax.device_count()}"


def result_row(experiment: str, row: str, summary: dict, reference: dict, notes: str = "") -> dict:
    """One DESIGN §7 row from a `zoo_jax.fit` summary."""
    cfg = summary["config"]
    return {
        "experiment": experiment,
        "row": row,
        "model": summary["model"],
        "dataset": summary["dataset"],
        "config": {
            k: cfg[k]
            for k in (
                "optimizer",
                "learning_rate",
                "loss",
                "epochs",
                "batch_size",
                "seed",
                "l1",
                "l2",
                "model_overrides",
                "train_limit",
                "test_limit",
                "optimizer_options",
                "schedule",
                "schedule_options",
                "augment",
            )
            if k in cfg
        }
        | {"steps": summary["steps"], "params": summary["params"]},
        "metrics": {
            "test_accuracy": summary["test"]["accuracy"],
            "test_loss": summary["test"]["loss"],
            "train_accuracy": summary["train"]["accuracy"],
            "train_loss": summary["train"]["loss"],
            "images_per_s": summary["images_per_s"],
            "test_accuracy_by_epoch": [e["test_accuracy"] for e in summary["history"]],
        },
        "reference": reference,
        "notes": notes,
        "wall_s": round(summary["wall_s"], 1),
        "device": device(),
        "versions": versions(),
        "git": git_commit(),
    }


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(rows, indent=2) + "\n")


def read_rows(directory: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(directory.rglob("*.json")):
        if "quick" not in path.relative_to(directory).parts:
            rows += json.loads(path.read_text())
    return rows


def claim(path) -> bool:
    """Atomically claim a row, so several runners (e.g. one per core) never train the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def require_rows(plan: list, option: str, known: list[str]) -> None:
    """An empty plan is a filter that matched nothing (a typo), not a finished run."""
    if not plan:
        raise ZooError(f"no row matches {option} (rows: {', '.join(known)})")


def run_claimed(plan, out_dir: Path, run, *, force: bool = False, quick: bool = False) -> list:
    """Run `run(*item)` for each `(row_id, *item)` of `plan` that has no result file yet
    (all with `force` or `quick`), claiming each row first so parallel runners share the
    work. Returns the result rows written."""
    done = []
    for row, *item in plan:
        if (out_dir / f"{row}.json").exists() and not (force or quick):
            continue
        if not claim(out_dir / f"{row}.claim"):
            print(f"{row}: claimed by another runner (delete its .claim file if none runs)")
            continue
        try:
            result = run(*item)
        finally:
            (out_dir / f"{row}.claim").unlink(missing_ok=True)
        write_rows(out_dir / f"{row}.json", [result])
        m = result["metrics"]
        print(
            f"{row}: test {m['test_accuracy']:.4f}, final train loss {m['train_loss']:.4f}, "
            f"{result['wall_s']} s",
            flush=True,
        )
        done.append(result)
    return done
