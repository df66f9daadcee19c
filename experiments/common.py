"""What every experiment script shares: result rows (one JSON object per trained configuration), and RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from zoo_jax.errors import ArgumentParser, ZooError, report, report_interrupt
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


def cpu_model() -> str:
    """The host CPU's model name (`/proc/cpuinfo`), or `platform.processor()` elsewhere: CPU
    ratios against a peer change with it (MKL and oneDNN are tuned per vendor)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def headline(metrics: dict):
    """A learner's headline figure under the rows' name `test_accuracy`: class accuracy, a
    translation's exact-sequence match, a decoder's pixel agreement (the notes say which)."""
    for key in ("accuracy", "exact_match", "pixel_agreement"):
        if metrics.get(key) is not None:
            return metrics[key]
    return metrics.get("token_accuracy")


def result_row(experiment: str, row: str, summary: dict, reference: dict, notes: str = "") -> dict:
    """One result row from a `zoo_jax.fit` summary."""
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
            "test_accuracy": headline(summary["test"]),
            "test_loss": summary["test"]["loss"],
            "train_accuracy": headline(summary["train"]),
            "train_loss": summary["train"]["loss"],
            "images_per_s": summary.get("images_per_s", summary.get("sequences_per_s")),
            "test_accuracy_by_epoch": [
                headline({k[5:]: v for k, v in e.items() if k.startswith("test_")})
                for e in summary["history"]
            ],
        },
        "reference": reference,
        "notes": notes,
        "wall_s": round(summary["wall_s"], 1),
        "device": device(),
        "versions": versions(),
        "git": git_commit(),
    }


def row(
    experiment: str,
    name: str,
    model: str,
    dataset: str,
    metrics: dict,
    config: dict,
    *,
    reference: dict | None = None,
    notes: str = "",
    wall_s: float = 0.0,
) -> dict:
    """One result row of an experiment that measures more than a `fit` summary holds (the
    schema of `result_row`: where, with what and when it was measured)."""
    return {
        "experiment": experiment,
        "row": name,
        "model": model,
        "dataset": dataset,
        "config": config,
        "metrics": metrics,
        "reference": reference or {},
        "notes": notes,
        "wall_s": round(wall_s, 1),
        "device": device(),
        "versions": versions(),
        "git": git_commit(),
    }  # fmt: skip


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


def rows_parser(description: str, rows) -> ArgumentParser:
    """The options every row-based experiment takes: --quick, --rows, --force, --no-report,
    --data-dir."""
    parser = ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny data, results/quick/")
    parser.add_argument("--rows", default=",".join(rows))
    parser.add_argument("--force", action="store_true", help="re-run rows that have results")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--data-dir", default=os.environ.get("ZOO_JAX_DATA"))
    return parser


def run_rows(argv, description: str, rows, out_dir: Path, run) -> tuple[int, Path]:
    """The `main` of an experiment whose rows are run by name (`run(row, quick)`): parse
    the options of `rows_parser`, run the wanted rows under `out_dir` (`RESULTS_DIR /
    "quick" / out_dir.name` with --quick), regenerate the report unless told not to.
    Returns (exit status, the directory the rows went to)."""
    args = rows_parser(description, rows).parse_args(argv)
    if args.data_dir:
        os.environ["ZOO_JAX_DATA"] = args.data_dir
    if args.quick:
        out_dir = RESULTS_DIR / "quick" / out_dir.name
    wanted = args.rows.split(",")
    plan = [(row, row) for row in rows if row in wanted]
    require_rows(plan if len(plan) == len(wanted) else [], "--rows", list(rows))
    run_claimed(plan, out_dir, lambda row: run(row, args.quick), force=args.force,
                quick=args.quick)  # fmt: skip
    if not (args.no_report or args.quick):
        update_report()
    return 0, out_dir


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
        shown = ("test_accuracy", "train_loss", "test_nrmse", "quantization_error")
        figures = ", ".join(f"{k} {m[k]:.4f}" for k in shown if m.get(k) is not None)
        print(f"{row}: {figures}, {result['wall_s']} s", flush=True)
        done.append(result)
    return done


def pyplot():
    """`matplotlib.pyplot` on the Agg backend, or None where matplotlib is not installed:
    the experiments then skip their pictures, never their figures."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def update_report() -> None:
    """Regenerate RESULTS.md and the README's tables (`python -m experiments.report`) in a
    process of their own: an experiment never imports the report, which imports them."""
    subprocess.run([sys.executable, "-m", "experiments.report"], check=True)


# --- what the experiments' RESULTS.md sections share ------------------------------------------


def picture_links(directory: Path, label: str = "Pictures") -> list[str]:
    """RESULTS.md's line linking every picture an experiment saved under `directory`."""
    if not directory.exists():
        return []
    names = sorted(p.name for p in directory.glob("*.png"))
    where = directory.relative_to(RESULTS_DIR.parent).as_posix()
    return ["", f"{label}: " + ", ".join(f"[{n[:-4]}]({where}/{n})" for n in names) + "."]


def pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def config_text(row: dict) -> str:
    """A row's training configuration in one cell: optimizer, lr, overrides, l2, epochs."""
    cfg = row["config"]
    parts = [cfg["optimizer"]]
    if cfg.get("learning_rate"):
        parts.append(f"lr {cfg['learning_rate']:g}")
    parts += [f"{k} {v}" for k, v in cfg["model_overrides"].items()]
    if cfg.get("l2"):
        parts.append(f"l2 {cfg['l2']:g}")
    parts.append(f"{cfg['epochs']} ep × bs {cfg['batch_size']}")
    return ", ".join(parts)


def epochs_text(row: dict) -> str:
    return " → ".join(pct(a) for a in row["metrics"].get("test_accuracy_by_epoch", []))


def seed_summary(rows: list[dict], frameworks) -> dict[str, dict]:
    """Per framework (rows named `<framework>…`): n, mean, sample standard deviation, min and
    max test accuracy."""
    out = {}
    for framework in frameworks:
        acc = [r["metrics"]["test_accuracy"] for r in rows if r["row"].startswith(framework)]
        if acc:
            out[framework] = {
                "n": len(acc),
                "mean": float(np.mean(acc)),
                "std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                "min": min(acc),
                "max": max(acc),
            }
    return out


def accuracy_table(rows: list[dict], findings: list[str] = ()) -> list[str]:
    """The classifier table of an experiment without a table of its own: each row against its
    reference, then `findings`, then the rows' notes."""
    rows = sorted(rows, key=lambda r: (r["reference"]["source"], r["model"], r["row"]))
    out = [
        "| row | model | config | params | train (ours / ref) | test ours | test ref | Δ | "
        "reference | wall s | device |",
        "|---|---|---|---:|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        m, ref = r["metrics"], r["reference"]
        delta = 100 * (m["test_accuracy"] - ref["test_accuracy"])
        out.append(
            f"| {r['row']} | {r['model']} | {config_text(r)} | {r['config']['params']:,} | "
            f"{pct(m['train_accuracy'])} / {pct(ref.get('train_accuracy'))} | "
            f"**{pct(m['test_accuracy'])}** | {pct(ref['test_accuracy'])} | {delta:+.2f} | "
            f"{ref['source']} | {r['wall_s']:.0f} | {r['device']} |"
        )
    out += findings
    notes = [f"- `{r['row']}`: {r['notes']}" for r in rows if r.get("notes")]
    return [*out, "", *notes, ""] if notes else [*out, ""]
