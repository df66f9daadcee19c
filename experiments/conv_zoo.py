"""The convolutional zoo trained on MNIST and Fashion-MNIST, each in its small-image configuration.

    python -m experiments.conv_zoo                    # every model, full width
    python -m experiments.conv_zoo --width 0.25       # reduced width (the 2-core CPU budget)
    python -m experiments.conv_zoo --quick            # CI: two models, 1 epoch on 512 images

Each architecture takes 28×28 images through the card's small-image configuration
(`registry.training_spec`: 3×3 / stride-1 stems, no early pooling; LeNet-5 and VGG get the
images zero-padded to 32×32). Adam, batch 128, the card's epochs; networks without batch
norm (but LeNet-5, the DCN and the paper's GoogLeNet) train at lr 1e-4, the others at
Adam's 1e-3 (`LEARNING_RATE`). Runs shorter than `SHORT_RUN_STEPS` (the reduced CPU rows) give
Keras-layout networks BatchNorm momentum 0.9 and post-activation ResNets zero-initialised
residual branches, as their notes say. The width multiplier
(`--width`) scales every convolution and is written into each result file, with the device.
Targets: MNIST ≥ 99.2 % for every architecture; Fashion-MNIST ≥ 91 %
(LeNet-5 ≥ 89 %). Fashion-MNIST's benchmark README publishes figures for some families,
which the report puts beside ours. Several runners may share the work (claim files).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from functools import partial

from experiments import common
from zoo_jax import registry
from zoo_jax.data import datasets as zoo_datasets
from zoo_jax.errors import ArgumentParser, ZooError
from zoo_jax.train.loop import RunConfig, fit

DATASETS = ("mnist", "fashion-mnist")
TRAIN_IMAGES = 60_000  # in each training set
# Cheapest first, so a runner with a time limit finishes as many as it can.
MODELS = (
    "lenet5", "lenet5_keras", "dcn", "alexnet", "alexnet_caffe", "zfnet",
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "resnet18", "preact_resnet18", "googlenet", "googlenet_paper", "resnet34",
    "preact_resnet34", "xception", "resnet50", "resnet50_keras", "preact_resnet50",
    "resnext50_32x4d", "resnet101", "preact_resnet101", "resnet152", "preact_resnet152",
    "resnext101_32x8d",
)  # fmt: skip
NO_BATCH_NORM = {"lenet5", "lenet5_keras", "dcn", "alexnet", "alexnet_caffe", "zfnet",
                 "vgg11", "vgg13", "vgg16", "vgg19", "googlenet_paper"}  # fmt: skip
# lr 1e-4 for the deep plain stacks; GoogLeNet (paper) learns at 1e-3: its reduced CPU run
# (w 0.125, 93 steps) reached 15.8 % MNIST test accuracy at 1e-4 and 43.8 % at 1e-3.
ADAM_DEFAULT = ("lenet5", "lenet5_keras", "dcn", "googlenet_paper")
LEARNING_RATE = {n: 1e-4 for n in NO_BATCH_NORM if n not in ADAM_DEFAULT}
# Fashion-MNIST's benchmark (github.com/zalandoresearch/fashion-mnist, README "Benchmark"):
# the published figure for the family, in %.
FASHION_BENCHMARK = {
    "alexnet": 89.9, "googlenet": 93.7, "vgg16": 93.5, "resnet18": 94.9,
    "dcn": "91.6–93.4 (2-conv nets)",
}  # fmt: skip
# Keras-layout networks: BatchNorm momentum 0.99, whose running statistics need about a
# thousand steps to forget their initial (0, 1); shorter runs use 0.9 (said in the notes).
KERAS_BN = {"resnet50_keras", "xception", *(f"preact_resnet{d}" for d in (18, 34, 50, 101, 152))}
SHORT_RUN_STEPS = 1000
# Post-activation ResNets in short runs start each residual branch's last BN scale at 0
# (Goyal et al. 2017; torchvision's `zero_init_residual`). MNIST test accuracy without -> with
# it, one run each: ResNet-101 (width 0.125) after 47 steps 28.7 -> 46.6 %, after 234 steps
# 81.5 -> 96.1 %; ResNet-152 (0.125, 156 steps) 59.3 -> 92.7 %; the Keras ResNet-50 (0.125,
# 375 steps) 95.9 -> 97.0 %; but after 93 steps (width 0.25) ResNet-50 87.5 -> 70.6 % and
# ResNeXt-50 77.7 -> 65.2 %, so the reduced rows that use it take more steps where the budget
# allows.
ZERO_INIT_RESIDUAL = {"resnet50_keras", "resnext50_32x4d", "resnext101_32x8d",
                      *(f"resnet{d}" for d in (18, 34, 50, 101, 152))}  # fmt: skip
TARGETS = {"mnist": 0.992, "fashion-mnist": 0.91}
LENET_FASHION_TARGET = 0.89
OUT = common.RESULTS_DIR / "conv_zoo"


def target(model: str, dataset: str) -> float:
    lenet = model.startswith("lenet5") and dataset == "fashion-mnist"
    return LENET_FASHION_TARGET if lenet else TARGETS[dataset]


def row_id(model: str, dataset: str, width: float, augment: str | None = None) -> str:
    return (
        f"{model}_{dataset}"
        + ("" if width == 1 else f"_w{width:g}")
        + (f"_{augment}" if augment else "")
    )


def run_row(
    model: str,
    dataset: str,
    width: float,
    quick: bool,
    data_dir,
    epochs: int | None = None,
    train_limit: int | None = None,
    augment: str | None = None,
) -> dict:
    overrides = {} if width == 1 or model in ("lenet5", "lenet5_keras", "dcn") else {"width": width}
    card = registry.get_card(model)
    steps = (train_limit or TRAIN_IMAGES) // card.batch_size * (epochs or card.epochs)
    short_run_notes = []  # the short-run recipe, said in the notes
    if steps < SHORT_RUN_STEPS and not quick:
        if model in KERAS_BN:
            overrides["bn_momentum"] = 0.9
            short_run_notes.append(
                f"BatchNorm momentum 0.9, not Keras's 0.99 ({steps} steps are too few for it)"
            )
        if model in ZERO_INIT_RESIDUAL:
            overrides["zero_init_residual"] = True
            short_run_notes.append(
                "residual branches' last BN scale starts at 0 (`zero_init_residual`)"
            )
    cfg = RunConfig(
        model=model,
        dataset=dataset,
        learning_rate=LEARNING_RATE.get(model),
        schedule=None if os.environ.get("CONV_ZOO_CONSTANT_LR") else "cosine_decay",
        epochs=1 if quick else epochs,
        model_overrides=overrides,
        augment=augment,
        train_limit=512 if quick else train_limit,
        test_limit=500 if quick else None,
        data_dir=data_dir,
    )
    summary = fit(cfg, progress=False)
    reference = {
        "source": "the convolutional zoo's targets",
        "target_accuracy": target(model, dataset),
    }
    if dataset == "fashion-mnist" and model in FASHION_BENCHMARK:
        reference["fashion_benchmark"] = FASHION_BENCHMARK[model]
    spec, input_shape, _ = registry.training_spec(model, overrides)
    notes = f"input {'x'.join(map(str, input_shape))}, width x{spec.get('width', 1):g}"
    if epochs and not quick:
        notes += f"; {epochs} epoch{'s' * (epochs != 1)} instead of the card's {card.epochs}"
    if train_limit and train_limit < TRAIN_IMAGES and not quick:
        notes += f"; the first {train_limit:,} training images only"
    if augment:
        notes += f"; training images distorted ({augment}, `zoo_jax.data.augment`)"
    notes += "".join(f"; {note}" for note in short_run_notes)
    row = row_id(model, dataset, width, augment)
    result = common.result_row("conv_zoo", row, summary, reference, notes)
    result["config"]["model_overrides"] = spec
    result["history"] = [
        {k: e[k] for k in ("epoch", "train_loss", "test_accuracy")} for e in summary["history"]
    ]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 models, 1 epoch, 512 images")
    parser.add_argument("--width", type=float, default=1.0, help="convolution width multiplier")
    parser.add_argument("--models", default="", help="comma-separated subset")
    parser.add_argument("--epochs", type=int, help="instead of the card's (said in the notes)")
    parser.add_argument("--train-limit", type=int, help="first N training images (in the notes)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--augment", help="training-time augmentation (in the row id and notes)")
    parser.add_argument("--force", action="store_true", help="re-run rows that have results")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--data-dir", default=os.environ.get("ZOO_JAX_DATA"))
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else MODELS
    if args.quick:
        models = [m for m in models if m in ("lenet5", "resnet18")] or models[:1]
    datasets = args.datasets.split(",")
    for name in models:  # unknown names and bad values fail before anything trains
        registry.get_card(name)
    for name in datasets:
        zoo_datasets.canonical(name)
    if args.width <= 0:
        raise ZooError(f"--width must be > 0, got {args.width}")
    out_dir = common.RESULTS_DIR / "quick" / "conv_zoo" if args.quick else OUT
    plan = [(row_id(m, d, args.width, args.augment), m, d) for m in models for d in datasets]
    run = lambda m, d: run_row(
        m, d, args.width, args.quick, args.data_dir, args.epochs, args.train_limit, args.augment
    )
    common.run_claimed(plan, out_dir, run, force=args.force, quick=args.quick)
    if not (args.no_report or args.quick):
        common.update_report()
    return 0


def _per_run(runs: list[dict], describe) -> str:
    """One value when the runs agree on it, else each run's in order, joined by " / "."""
    return " / ".join(dict.fromkeys(describe(r) for r in runs))


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""

    out = [
        "Each architecture in its small-image configuration (28×28, or 32×32 padded for",
        "LeNet-5 and VGG), Adam, batch 128, one run per cell (`python -m experiments.conv_zoo`).",
        "lr: Adam's learning rate; \"cosine\" = cosine decay to 0 over the run (the script's",
        "recipe since the first GPU batch; rows without it ran at a constant rate and are due",
        "to be re-run with it).",
        "Targets: MNIST ≥ 99.2 %, Fashion-MNIST ≥ 91 % (LeNet-5 ≥ 89 %). Benchmark = the",
        "Fashion-MNIST README's published figure for the family. Wall time includes compilation",
        "and, where several runners shared a device, waiting for it.",
        "",
        "| model | width | params | epochs | lr | MNIST | Fashion-MNIST | Fashion benchmark | "
        "targets | wall s | device |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|",
    ]
    cells = defaultdict(dict)
    for r in rows:
        width = r["config"]["model_overrides"].get("width", 1)
        cells[(r["model"], width, r["config"].get("augment"))][r["dataset"]] = r
    order = {m: i for i, m in enumerate(MODELS)}
    for (model, width, augment), by_ds in sorted(
        cells.items(), key=lambda kv: (kv[0][1] != 1, order.get(kv[0][0], 99), bool(kv[0][2]))
    ):
        any_row = next(iter(by_ds.values()))
        verdicts, accs = [], []
        for ds in DATASETS:
            r = by_ds.get(ds)
            if r is None:
                accs.append("not run")
                verdicts.append(f"{ds} not run")
                continue
            acc = r["metrics"]["test_accuracy"]
            need = r["reference"]["target_accuracy"]
            accs.append(f"**{common.pct(acc)}**")
            if acc < need:
                verdicts.append(f"{ds} missed by {100 * (need - acc):.2f}")
        bench = by_ds.get("fashion-mnist", {}).get("reference", {}).get("fashion_benchmark", "")
        per_run = partial(_per_run, [by_ds[ds] for ds in DATASETS if ds in by_ds])
        lr = per_run(
            lambda r: (
                f"{r['config']['learning_rate'] or 1e-3:g}"
                + (", cosine" if r["config"].get("schedule") else "")
            )
        )
        epochs = per_run(
            lambda r: (
                f"{r['config']['epochs']}"
                + (
                    f" on {r['config']['train_limit']:,} images"
                    if r["config"].get("train_limit")
                    else ""
                )
            )
        )
        wall = sum(r["wall_s"] for r in by_ds.values())
        out.append(
            f"| {model}{f' + {augment}' if augment else ''} | {width:g} | "
            f"{any_row['config']['params']:,} | {epochs} | {lr} | "
            f"{accs[0]} | {accs[1]} | {bench} | {'; '.join(verdicts) or 'met'} | "
            f"{wall:.0f} | {per_run(lambda r: r['device'])} |"
        )
    reduced = [r for r in rows if r["config"].get("train_limit") or r["device"].startswith("cpu")]
    augmented = [r for r in rows if r["config"].get("augment")]
    if augmented:
        out += [
            "",
            "`+ affine`: trained on distorted images (`--augment affine`: LeCun et al. 1998's",
            "translations, scaling, squeezing and shearing, drawn afresh every step), as the",
            "paper's own best LeNet-5 (0.8 % MNIST error with distortions, 0.95 % without).",
            "On Fashion-MNIST the same distortions cost accuracy: within the run's epochs",
            "the distorted training accuracy stays below the clean test accuracy, so the",
            "small network underfits the distorted set rather than overfitting the clean one.",
        ]
    if reduced:
        out += [
            "",
            "Rows on the CPU: this project's 2-core machine, where a run must stay within about",
            "15 minutes (the per-row budget), so the width is reduced and the run short; their accuracy",
            "says what that budget buys, not what the architecture reaches (a width-1 CPU row",
            "took longer: its wall time says how long). The rows whose",
            "device is a GPU ran at full width on one lent for some sessions (30 device-minutes",
            "each); the deep networks there trained 3 epochs, not the card's 10, to fit it.",
            "The CPU rows' notes:",
            "",
            *[f"- `{r['row']}`: {r['notes']}" for r in sorted(reduced, key=lambda r: r["row"])],
        ]
    missing = [m for m in MODELS if not any(k[0] == m for k in cells)]
    if missing:
        out += ["", f"Not run yet: {', '.join(f'`{m}`' for m in missing)}."]
    return [*out, ""]


if __name__ == "__main__":
    sys.exit(common.entry(main))
