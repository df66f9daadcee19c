"""The optimizer study: the eight optimizers on the seed MLP and CNN, MNIST and Fashion-MNIST.

    python -m experiments.optimizers            # 32 runs; rows with a result are skipped
    python -m experiments.optimizers --quick    # CI: the MLP, 1 epoch on 512 images

Every optimizer runs with the seed's defaults (`000_…` "优化者", `zoo-jax list --optimizers`)
on the `003_…` models as registered (`mlp`: 784-256-256-10, dropout 0.45, 20 epochs; `cnn`:
three 3×3/64 convolutions, dropout 0.2, 10 epochs), batch 128, seed 0, one run each. Writes
`results/optimizers/<row>.json` (with the per-epoch training loss), one PNG per dataset with
the eight training-loss curves of each model, and the table in `RESULTS.md`. Several runners
may share the work (one per device or core): each claims a row before training it.
"""

from __future__ import annotations

import os
import sys

from experiments import common
from zoo_jax import optim
from zoo_jax.errors import ArgumentParser
from zoo_jax.train.loop import RunConfig, fit

MODELS = ("mlp", "cnn")
DATASETS = ("mnist", "fashion-mnist")
OUT = common.RESULTS_DIR / "optimizers"


def row_id(model: str, dataset: str, optimizer: str) -> str:
    return f"{model}_{dataset}_{optimizer}"


def run_row(model, dataset, optimizer, quick: bool, data_dir) -> dict:
    cfg = RunConfig(
        model=model,
        dataset=dataset,
        optimizer=optimizer,
        epochs=1 if quick else None,
        train_limit=512 if quick else None,
        test_limit=500 if quick else None,
        data_dir=data_dir,
    )
    summary = fit(cfg, progress=False)
    row = row_id(model, dataset, optimizer)
    result = common.result_row("optimizers", row, summary, {"source": "seed defaults"})
    result["config"]["optimizer_defaults"] = optim.defaults(optimizer)
    result["history"] = [
        {k: e[k] for k in ("epoch", "train_loss", "train_accuracy", "test_accuracy")}
        for e in summary["history"]
    ]
    return result


def plot(rows: list[dict], out_dir) -> list:
    """One PNG per dataset: a panel per model, the eight training-loss curves in each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for dataset in DATASETS:
        fig, axes = plt.subplots(1, len(MODELS), figsize=(11, 4), constrained_layout=True)
        for ax, model in zip(axes, MODELS, strict=True):
            for name in optim.OPTIMIZERS:
                match = [r for r in rows if r["row"] == row_id(model, dataset, name)]
                if match:
                    history = match[0]["history"]
                    ax.plot(
                        [e["epoch"] for e in history],
                        [e["train_loss"] for e in history],
                        marker=".",
                        label=name,
                    )
            ax.set(title=f"{model} on {dataset}", xlabel="epoch", ylabel="training loss")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
        path = out_dir / f"{dataset}_training_loss.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="MLP only, 1 epoch on 512 images")
    parser.add_argument("--rows", default="", help="only rows whose id contains this")
    parser.add_argument("--force", action="store_true", help="re-run rows that have results")
    parser.add_argument("--no-report", action="store_true", help="skip plots and RESULTS.md")
    parser.add_argument("--data-dir", default=os.environ.get("ZOO_JAX_DATA"))
    args = parser.parse_args(argv)
    out_dir = common.RESULTS_DIR / "quick" / "optimizers" if args.quick else OUT
    every = [
        (row_id(model, dataset, name), model, dataset, name)
        for model in (MODELS[:1] if args.quick else MODELS)
        for dataset in DATASETS
        for name in optim.OPTIMIZERS
    ]
    plan = [item for item in every if args.rows in item[0]]
    common.require_rows(plan, f"--rows {args.rows!r}", [item[0] for item in every])
    run = lambda model, dataset, name: run_row(model, dataset, name, args.quick, args.data_dir)
    common.run_claimed(plan, out_dir, run, force=args.force, quick=args.quick)
    if not args.no_report:
        rows = common.read_rows(out_dir)
        for path in plot(rows, out_dir):
            print(path)
        if not args.quick:
            common.update_report()
    return 0


def optimizer_table(rows: list[dict]) -> list[str]:

    out = [
        "Each optimizer with the seed's defaults (`zoo-jax list --optimizers`) on the `003_…`",
        "MLP (20 epochs) and CNN (10 epochs), batch 128, seed 0, one run each",
        "(`python -m experiments.optimizers`). Final loss = mean training loss of the last epoch.",
        "Wall time includes compilation and evaluation; when several runners shared one device",
        "(the GPU runs used five) it is an upper bound, not a speed comparison.",
        "Training-loss curves: `results/optimizers/mnist_training_loss.png`,",
        "`results/optimizers/fashion-mnist_training_loss.png`.",
        "",
        "| model | dataset | optimizer | lr | test accuracy | final train loss | test loss | "
        "wall s | device |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    by_id = {r["row"]: r for r in rows}
    for model in MODELS:
        for dataset in DATASETS:
            for name in optim.OPTIMIZERS:
                r = by_id.get(row_id(model, dataset, name))
                if r is None:
                    out.append(f"| {model} | {dataset} | {name} | | not run yet | | | | |")
                    continue
                m = r["metrics"]
                lr = (
                    r["config"]["learning_rate"]
                    or r["config"]["optimizer_defaults"]["learning_rate"]
                )
                out.append(
                    f"| {model} | {dataset} | {name} | {lr:g} | "
                    f"**{common.pct(m['test_accuracy'])}** | {m['train_loss']:.4f} | "
                    f"{m['test_loss']:.4f} | {r['wall_s']:.0f} | {r['device']} |"
                )
    return [*out, ""]


def spread_note(rows: list[dict], seeds: list[dict]) -> list[str]:
    """Which MLP-on-MNIST rows this one-seed table cannot rank: those within the seed-to-seed
    range of the same MLP with Adam (`experiments.seed_spread`, zoo_jax's seeds) of the best."""
    accuracy = [r["metrics"]["test_accuracy"] for r in seeds if r["row"].startswith("zoo_jax")]
    mlp = {r["config"]["optimizer"]: r["metrics"]["test_accuracy"] for r in rows
           if r["row"] == row_id("mlp", "mnist", r["config"]["optimizer"])}  # fmt: skip
    if len(accuracy) < 2 or not mlp:
        return []
    width, best = max(accuracy) - min(accuracy), max(mlp.values())
    tied = sorted((name for name, acc in mlp.items() if best - acc <= width), key=mlp.get)
    below = sorted(set(mlp) - set(tied), key=mlp.get)
    return [
        f"One seed per row. The same MLP with Adam spans {common.pct(min(accuracy))}–"
        f"{common.pct(max(accuracy))} % over {len(accuracy)} seeds (`seed_spread`): on MNIST "
        f"the MLP rows of {', '.join(tied)} lie within that range of the best, so this table "
        "does not rank them" + (f"; {', '.join(below)} fall below it by more." if below else "."),
        "",
    ]


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    return optimizer_table(rows) + spread_note(rows, by_experiment.get("seed_spread", []))


if __name__ == "__main__":
    sys.exit(common.entry(main))
