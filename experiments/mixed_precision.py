"""bfloat16 against float32 on the seed models: does mixed precision reach float32's accuracy?

    python -m experiments.mixed_precision                    # every model, both dtypes, 3 seeds
    python -m experiments.mixed_precision --models mlp,rnn
    python -m experiments.mixed_precision --quick            # CI: one seed, 2,048 examples

The three seed models at the seed tables' configurations (`experiments.seed_tables`: the MLP
256-256 with dropout 0.45 and Adam, 20 epochs; the CNN 64-64-64 with dropout 0.2 and Adam,
10 epochs; the SimpleRNN 256 with SGD, 20 epochs), each trained with seeds 0, 1, 2 in float32
and in bfloat16 (`RunConfig.dtype`: bfloat16 products and activations, float32 parameters,
optimizer state, losses and normalisation statistics). The verdict per model: bfloat16's mean
test accuracy against float32's seed-to-seed range. Each row also records the train step's
throughput in its dtype (`zoo-jax bench --dtype`), timed in the same process.

Results: `results/mixed_precision/MODEL_DTYPE_seedS.json`; RESULTS.md via `report.py`.
"""

from __future__ import annotations

import sys

import numpy as np

from experiments import common, seed_tables
from zoo_jax import bench
from zoo_jax.errors import ArgumentParser, UnknownNameError
from zoo_jax.learners import COMPUTE_DTYPES
from zoo_jax.train.loop import RunConfig, fit

OUT = common.RESULTS_DIR / "mixed_precision"
SEEDS = (0, 1, 2)
ROWS = {  # model -> its seed-table row
    "mlp": "mlp_256-256_dropout0.45_adam",
    "cnn": "cnn_64-64-64_dropout0.2_adam",
    "rnn": "rnn_256_dropout0.2_sgd",
}


def run(model: str, dtype: str, seed: int, quick: bool, data_dir) -> dict:
    row = next(r for r in seed_tables.ROWS if r.id == ROWS[model])
    cfg = RunConfig(model=row.model, dataset="mnist", optimizer=row.optimizer,
                    epochs=1 if quick else row.epochs, batch_size=row.batch_size,
                    model_overrides=row.overrides, l2=row.l2, seed=seed, dtype=dtype,
                    train_limit=2048 if quick else None, test_limit=1000 if quick else None,
                    data_dir=data_dir)  # fmt: skip
    summary = fit(cfg, progress=False)
    timed = bench.bench(row.model, row.batch_size, 10 if quick else 30, row.optimizer,
                        dict(row.overrides), dtype=dtype)  # fmt: skip
    notes = f"the seed table's row {row.id}, computed in {dtype}"
    result = common.result_row("mixed_precision", f"{model}_{dtype}_seed{seed}", summary,
                               row.reference, notes)  # fmt: skip
    result["config"]["dtype"] = dtype
    result["metrics"] |= {"bench_step_ms": timed["step_ms"],
                          "bench_images_per_s": timed["images_per_s"]}  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ROWS))
    parser.add_argument("--quick", action="store_true", help="one seed, 2,048 examples")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    for model in models:
        if model not in ROWS:
            raise UnknownNameError("model", model, list(ROWS))
    out_dir = common.RESULTS_DIR / "quick" / OUT.name if args.quick else OUT
    seeds = SEEDS[:1] if args.quick else SEEDS
    plan = [(f"{m}_{d}_seed{s}", m, d, s) for m in models for s in seeds for d in COMPUTE_DTYPES]
    common.run_claimed(plan, out_dir, lambda m, d, s: run(m, d, s, args.quick, args.data_dir),
                       quick=args.quick)  # fmt: skip
    if not (args.no_report or args.quick):
        common.update_report()
    return 0


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    out = [
        "The seed models at the seed tables' configurations, trained in float32 and in",
        "bfloat16 (`--dtype bfloat16`: bfloat16 compute, float32 parameters, optimizer state,",
        "losses and normalisation statistics), seeds 0, 1, 2 (`python -m",
        "experiments.mixed_precision`). Test accuracy in %, mean ± sample standard deviation",
        "and the range over the seeds; the train step's images/s from `zoo-jax bench` in each",
        "dtype, in the same process (the CPU has no faster bfloat16 path in XLA).",
        "",
        "| model | dtype | seeds | test % | range | per seed | bench img/s | device |",
        "|---|---|---:|---:|---|---|---:|---|",
    ]
    verdicts = []
    for model in ROWS:
        by_dtype = {}
        for dtype in COMPUTE_DTYPES:
            mine = sorted((r for r in rows if r["row"].startswith(f"{model}_{dtype}_")),
                          key=lambda r: r["config"]["seed"])  # fmt: skip
            if not mine:
                continue
            acc = [r["metrics"]["test_accuracy"] for r in mine]
            by_dtype[dtype] = acc
            sd = f" ± {common.pct(np.std(acc, ddof=1))}" if len(acc) > 1 else ""
            out.append(
                f"| {model} | {dtype} | {len(acc)} | **{common.pct(np.mean(acc))}**{sd} | "
                f"{common.pct(min(acc))}–{common.pct(max(acc))} | "
                f"{', '.join(common.pct(a) for a in acc)} | "
                f"{np.median([r['metrics']['bench_images_per_s'] for r in mine]):,.0f} | "
                f"{mine[0]['device']} |"
            )
        if len(by_dtype) == 2 and min(map(len, by_dtype.values())) > 1:
            f32, bf16 = by_dtype["float32"], by_dtype["bfloat16"]
            inside = min(f32) <= np.mean(bf16) <= max(f32) or np.mean(bf16) > max(f32)
            verdicts.append(
                f"{model}: bfloat16 {common.pct(np.mean(bf16))} % against float32 "
                f"{common.pct(np.mean(f32))} % (range {common.pct(min(f32))}–"
                f"{common.pct(max(f32))}): "
                + ("within float32's seed-to-seed range or above it" if inside
                   else f"**below float32's range by {100 * (min(f32) - np.mean(bf16)):.2f}**")
            )  # fmt: skip
    pending = [m for m in ROWS if not any(r["row"].startswith(f"{m}_") for r in rows)]
    if verdicts:
        out += ["", "Verdicts: " + "; ".join(verdicts) + "."]
    if pending:
        out += ["", f"Not run yet: {', '.join(pending)}."]
    return [*out, ""]


if __name__ == "__main__":
    sys.exit(common.entry(main))
