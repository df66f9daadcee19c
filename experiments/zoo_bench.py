"""Train-step throughput and FLOPs of every registered model, in the configuration it trains in.

    python -m experiments.zoo_bench                         # every model, batch 32, 3 timed steps
    python -m experiments.zoo_bench --models resnet18,vgg16 --batch-size 128 --steps 10
    python -m experiments.zoo_bench --quick                 # CI: two small models

Each row is one `zoo-jax bench` (`zoo_jax.cli.bench`): the compiled train step on a random
batch of the model's small-image configuration (the one `conv_zoo` trains; full width),
median step time, images/s, compile time, and XLA's FLOP count per image for the forward pass
and the whole train step (forward, backward, update). Achieved FLOP/s = train FLOPs / step
time, so the fraction of a device's peak is visible. Rows go to
`experiments/results/bench/zoo_<backend>/MODEL.json`, one file per model, written as each
finishes (a stopped sweep keeps what it measured; existing rows are skipped unless `--force`).
Absolute times on a shared machine are noise: compare rows measured in the same sweep.
"""

from __future__ import annotations

import os
import sys
import time

import jax

from experiments import common, report
from zoo_jax import cli, registry
from zoo_jax.errors import ArgumentParser


def out_dir(backend: str | None = None):
    return common.RESULTS_DIR / "bench" / f"zoo_{backend or jax.default_backend()}"


def bench_row(model: str, batch_size: int, steps: int) -> dict:
    t = time.perf_counter()
    result = cli.bench(model, batch_size, steps)
    spec, input_shape, _ = registry.training_spec(model, {})
    return {
        "experiment": "zoo_bench",
        "row": f"{model}_{result['backend']}",
        "model": model,
        "dataset": "random batch, " + "x".join(map(str, input_shape)),
        "config": {
            "batch_size": batch_size,
            "steps": steps,
            "optimizer": result["optimizer"],
            "model_overrides": spec,
            "params": result["params"],
        },
        "metrics": {
            k: result[k]
            for k in (
                "step_ms",
                "images_per_s",
                "compile_s",
                "forward_flops_per_image",
                "train_flops_per_image",
                "train_tflops_per_s",
                "train_step_compiles",
            )
        },
        "reference": {"source": "zoo-jax bench"},
        "wall_s": round(time.perf_counter() - t, 1),
        "device": common.device()
        + (f", {os.cpu_count()} cores" if result["backend"] == "cpu" else ""),
        "versions": common.versions(),
        "git": common.git_commit(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--force", action="store_true", help="re-measure rows that exist")
    parser.add_argument("--quick", action="store_true", help="CI: lenet5 and mlp, 3 steps")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else registry.list_models()
    for name in models:
        registry.get_card(name)  # unknown names fail before anything runs
    if args.quick:
        models = ["mlp", "lenet5"]
    directory = common.RESULTS_DIR / "quick" / "zoo_bench" if args.quick else out_dir()
    for model in models:
        path = directory / f"{model}.json"
        if path.exists() and not (args.force or args.quick):
            continue
        row = bench_row(model, args.batch_size, args.steps)
        common.write_rows(path, [row])
        m = row["metrics"]
        print(
            f"{model}: {m['images_per_s']:,.0f} img/s, {m['step_ms']} ms/step, "
            f"{m['train_flops_per_image'] or 0:,.0f} train FLOPs/img, compile {m['compile_s']} s",
            flush=True,
        )
    if not (args.no_report or args.quick):
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(common.entry(main))
