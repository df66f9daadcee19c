"""Reproduce the seeds' MNIST result tables with zoo_jax.

* `003_…` (Atienza, *Advanced Deep Learning with Keras*, ch. 1): Table 1.3.2 (18 MLP rows,
  20 epochs), Table 1.4.1 (4 CNN rows, 10 epochs), Table 1.5.1 (4 SimpleRNN rows, 20
  epochs); batch 128, categorical cross-entropy, Keras optimizer defaults.
* `004_…` (TensorFlow "Deep MNIST for experts"): the 5×5 CNN, Adam 1e-4, batch 50, dropout
  0.5, reported at 99.2 %.

Reading of the tables (the seeds are not explicit; each choice is recorded in the rows):
* MLP "Layers" `a-b-c` = three hidden Dense layers of a, b and c units, then Dense(10). The
  seed's listed code has two hidden layers for its base row; `512-1024-512` can only be read
  as three hidden layers, so every row is read that way, and the seed's code (two hidden
  layers) is run as one extra row. "ReLU: None" = linear hidden units.
* "L2(λ)" = Keras `kernel_regularizer=l2(λ)` on every Dense kernel; "Dropout(p)" after every
  hidden layer. "SGD" = Keras `SGD()` (lr 0.01, no momentum).
* `004_…`: its snippet loops 2,000 steps, but the 99.2 % it quotes is the tutorial's
  20,000-step schedule; we run ⌈20,000 / 1,200⌉ = 17 epochs of 60,000 images (20,400 steps).

    python -m experiments.seed_tables            # every row missing a result file
    python -m experiments.seed_tables --quick    # CI: 1 epoch on 2,048 images, to results/quick/
    python -m experiments.seed_tables --rows cnn # rows whose id contains "cnn"
    taskset -c 1 python -m experiments.seed_tables --rows cnn_tf &   # a second runner, own core

Each row writes `experiments/results/seed_tables/<row>.json`; then `experiments/RESULTS.md`
is regenerated from every result file.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import defaultdict

from experiments import common
from zoo_jax.errors import ArgumentParser
from zoo_jax.train.loop import RunConfig, fit

T132 = "Atienza 2018, Table 1.3.2"
T141 = "Atienza 2018, Table 1.4.1"
T151 = "Atienza 2018, Table 1.5.1"
TF = "TensorFlow Deep MNIST tutorial (2015)"


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    model: str
    optimizer: str
    overrides: dict
    epochs: int
    reference: dict
    l2: float = 0.0
    batch_size: int = 128
    learning_rate: float | None = None
    notes: str = ""


def _mlp(layers: str, reg: str, opt: str, relu: bool, train: float, test: float) -> Row:
    hidden = tuple(int(u) for u in layers.split("-"))
    dropout = float(reg[8:-1]) if reg.startswith("Dropout") else 0.0
    l2 = float(reg[3:-1]) if reg.startswith("L2") else 0.0
    rid = f"mlp_{layers}_{reg.lower().replace('(', '').replace(')', '')}_{opt}" + (
        "" if relu else "_linear"
    )
    return Row(
        id=rid,
        model="mlp",
        optimizer=opt,
        overrides={
            "hidden": hidden,
            "dropout": dropout,
            "activation": "relu" if relu else "linear",
        },
        l2=l2,
        epochs=20,
        reference={"source": T132, "train_accuracy": train / 100, "test_accuracy": test / 100},
    )


def _cnn(opt: str, dropout: float, train: float, test: float) -> Row:
    return Row(
        f"cnn_64-64-64_dropout{dropout}_{opt}",
        "cnn",
        opt,
        {"dropout": dropout},
        10,
        {"source": T141, "train_accuracy": train / 100, "test_accuracy": test / 100},
    )


def _rnn(units: int, opt: str, train: float, test: float) -> Row:
    return Row(
        f"rnn_{units}_dropout0.2_{opt}",
        "rnn",
        opt,
        {"units": units, "dropout": 0.2},
        20,
        {"source": T151, "train_accuracy": train / 100, "test_accuracy": test / 100},
    )


TF_ROW = Row(
    "cnn_tf_adam1e-4",
    "cnn_tf",
    "adam",
    {},
    17,
    {"source": TF, "test_accuracy": 0.992},
    batch_size=50,
    learning_rate=1e-4,
    notes="17 epochs x 1,200 steps = 20,400 steps of 50 (the tutorial's 20,000-step schedule)",
)

# Cheap rows first and the rows with an explicit target in the issue before the rest, so an
# interrupted run has the most to show; the ~47-minute TF-tutorial CNN near the end.
ROWS = [
    _mlp("256-256-256", "Dropout(0.45)", "adam", True, 99.39, 98.5),
    _cnn("adam", 0.2, 99.75, 99.40),
    _rnn(256, "sgd", 97.26, 98.00),
    dataclasses.replace(
        _mlp("256-256", "Dropout(0.45)", "adam", True, 99.39, 98.5),
        notes="the seed's listed code (two hidden layers of 256) for the 256-256-256 / "
        "Dropout(0.45) / Adam row: the registered `mlp`",
    ),
    _mlp("256-256-256", "None", "sgd", False, 93.65, 92.5),
    _mlp("256-256-256", "L2(0.001)", "sgd", True, 99.35, 98.0),
    _mlp("256-256-256", "L2(0.01)", "sgd", True, 96.90, 96.7),
    _mlp("256-256-256", "None", "sgd", True, 99.93, 98.0),
    _mlp("256-256-256", "Dropout(0.4)", "sgd", True, 98.23, 98.1),
    _mlp("256-256-256", "Dropout(0.45)", "sgd", True, 98.07, 98.1),
    _mlp("256-256-256", "Dropout(0.5)", "sgd", True, 97.68, 98.1),
    _mlp("256-256-256", "Dropout(0.6)", "sgd", True, 97.11, 97.9),
    _mlp("256-512-256", "Dropout(0.45)", "sgd", True, 98.21, 98.2),
    _mlp("512-512-512", "Dropout(0.2)", "sgd", True, 99.45, 98.3),
    _mlp("512-512-512", "Dropout(0.4)", "sgd", True, 98.95, 98.3),
    _mlp("512-1024-512", "Dropout(0.45)", "sgd", True, 98.90, 98.2),
    _mlp("1024-1024-1024", "Dropout(0.4)", "sgd", True, 99.37, 98.3),
    _mlp("256-256-256", "Dropout(0.6)", "adam", True, 98.64, 98.2),
    _mlp("256-256-256", "Dropout(0.55)", "adam", True, 99.02, 98.3),
    _mlp("256-256-256", "Dropout(0.45)", "rmsprop", True, 98.75, 98.1),
    _mlp("128-128-128", "Dropout(0.45)", "adam", True, 98.70, 97.7),
    _rnn(256, "rmsprop", 96.72, 97.60),
    _rnn(256, "adam", 96.79, 97.40),
    _rnn(512, "sgd", 97.88, 98.30),
    TF_ROW,
    _cnn("sgd", 0.2, 97.76, 98.50),
    _cnn("rmsprop", 0.2, 99.11, 99.00),
    _cnn("adam", 0.4, 99.64, 99.30),
]
QUICK_ROWS = {ROWS[0].id, ROWS[1].id, ROWS[2].id, TF_ROW.id}  # one per table


# Issue #2's acceptance thresholds: (what, row ids it is judged on, minimum test accuracy).
TARGETS = [
    ("best MLP", [r.id for r in ROWS if r.model == "mlp"], 0.983),
    ("CNN, Adam, dropout 0.2", ["cnn_64-64-64_dropout0.2_adam"], 0.993),
    ("RNN 256, SGD", ["rnn_256_dropout0.2_sgd"], 0.980),
    ("TensorFlow tutorial CNN", [TF_ROW.id], 0.992),
]


def explain(row: dict, rows: dict[str, dict], crosschecks: dict[str, dict]) -> str:
    """Why a row differs from the seed by more than 0.5 points, from what the result files
    show (`rows`: every seed-table row by id, `crosschecks`: the PyTorch runs by row id)."""
    cfg = row["config"]
    crosscheck = crosschecks.get(f"torch_{row['row']}") or next(
        (c for c in crosschecks.values() if c["model"].endswith(row["model"].upper())), None
    )
    two, three = rows.get("mlp_256-256_dropout0.45_adam"), rows.get(ROWS[0].id)
    hidden = cfg["model_overrides"].get("hidden", ())
    if row["model"] == "mlp" and cfg["optimizer"] != "sgd" and len(hidden) == 3 and two and three:
        acc = lambda r: 100 * r["metrics"]["test_accuracy"]
        return (
            "Three hidden layers, as the table's `a-b-c` reads. On the base Adam row the seed's "
            f"own code (two hidden layers) scores {acc(two):.2f} against {acc(three):.2f} for "
            "three. Heavier dropout after three layers plausibly widens that gap (not measured "
            "here). The table does not say which depth produced each row."
        )
    if cfg["optimizer"] == "sgd" and crosscheck:
        m, ref = crosscheck["metrics"], crosscheck["reference"]
        ours = rows.get(crosscheck["row"].removeprefix("torch_"), row)["metrics"]["test_accuracy"]
        head = (
            f"Keras-default SGD (lr 0.01, no momentum), {cfg['epochs']} epochs. PyTorch training "
            f"the same network the same way (`{crosscheck['row']}`) reaches "
            f"{100 * m['test_accuracy']:.2f} % test / {100 * m['train_accuracy']:.2f} % train "
            f"(zoo_jax {100 * ours:.2f}; seed {100 * ref['test_accuracy']:.1f} / "
            f"{100 * ref['train_accuracy']:.2f})"
        )
        if abs(m["test_accuracy"] - ours) < abs(m["test_accuracy"] - ref["test_accuracy"]):
            return (
                f"{head}: PyTorch agrees with zoo_jax, so the seed's SGD figures need more "
                "updates than its stated settings give, and no faithful run reaches them."
            )
        return f"{head}: PyTorch is closer to the seed than zoo_jax is; not explained yet."
    if cfg["optimizer"] == "sgd" and row["model"] != "mlp":
        return (
            "Keras-default SGD (lr 0.01, no momentum), the setting under which PyTorch confirms "
            "our MLP figures. No PyTorch cross-check of this model yet "
            "(`python -m experiments.torch_crosscheck --row ...`), so this is a likely cause, "
            "not a shown one."
        )
    if row["metrics"]["test_accuracy"] > row["reference"]["test_accuracy"]:
        return (
            "Above the seed. Both are single runs, and we found no setting that differs from "
            "the seed's, so the figure stands as measured."
        )
    return "not explained yet"


def run_row(row: Row, quick: bool, data_dir: str | None) -> dict:
    cfg = RunConfig(
        model=row.model,
        dataset="mnist",
        optimizer=row.optimizer,
        learning_rate=row.learning_rate,
        epochs=1 if quick else row.epochs,
        batch_size=row.batch_size,
        l2=row.l2,
        model_overrides=row.overrides,
        train_limit=2048 if quick else None,
        test_limit=1000 if quick else None,
        data_dir=data_dir,
    )
    # Full runs checkpoint every epoch under experiments/runs/ (git-ignored): a runner that is
    # stopped (SIGTERM, lost session) resumes the row where it left off.
    run_dir = None if quick else common.RESULTS_DIR.parent / "runs" / "seed_tables" / row.id
    resume = run_dir is not None and any((run_dir / "checkpoints").glob("[0-9]*"))
    summary = fit(cfg, run_dir=run_dir, resume=resume, progress=False)
    return common.result_row("seed_tables", row.id, summary, row.reference, row.notes)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch on 2,048 images (CI)")
    parser.add_argument("--rows", default="", help="only rows whose id contains this")
    parser.add_argument("--force", action="store_true", help="re-run rows that have results")
    parser.add_argument("--data-dir", default=os.environ.get("ZOO_JAX_DATA"))
    args = parser.parse_args(argv)
    out_dir = common.RESULTS_DIR / ("quick" if args.quick else "") / "seed_tables"
    rows = [r for r in ROWS if args.rows in r.id]
    if args.quick:
        rows = [r for r in rows if r.id in QUICK_ROWS]
    plan = [(row.id, row) for row in rows]
    known = [r.id for r in ROWS if r.id in QUICK_ROWS or not args.quick]
    common.require_rows(plan, f"--rows {args.rows!r}" + " --quick" * args.quick, known)
    run = lambda row: run_row(row, args.quick, args.data_dir)
    common.run_claimed(plan, out_dir, run, force=args.force, quick=args.quick)
    if not args.quick:
        common.update_report()
    return 0


def findings(rows: list[dict], crosschecks: list[dict], spread: list[dict]) -> list[str]:

    by_id = {r["row"]: r for r in rows}
    out = [
        "",
        "The books' targets:",
        "",
        "| target | row | ours | needed | |",
        "|---|---|---:|---:|---|",
    ]
    for what, ids, needed in TARGETS:
        done = [by_id[i] for i in ids if i in by_id]
        if not done:
            out.append(f"| {what} | – | not run yet | {100 * needed:.1f} | |")
            continue
        best = max(done, key=lambda r: r["metrics"]["test_accuracy"])
        acc = best["metrics"]["test_accuracy"]
        verdict = "met" if acc >= needed else f"**missed by {100 * (needed - acc):.2f}**"
        out.append(f"| {what} | {best['row']} | {100 * acc:.2f} | {100 * needed:.1f} | {verdict} |")
    stats = common.seed_summary(spread, ("zoo_jax", "keras"))
    if {"zoo_jax", "keras"} <= stats.keys():
        needed = next(n for what, _, n in TARGETS if what == "best MLP")
        ours, keras = stats["zoo_jax"], stats["keras"]
        described = lambda s: (
            f"{common.pct(s['mean'])} ± {common.pct(s['std'])} (max {common.pct(s['max'])}, {s['n']} seeds)"
        )
        verdict = (
            "neither framework's best seed reaches it: the target lies above what the seed's "
            "configuration gives, not only above our single run"
            if max(ours["max"], keras["max"]) < needed
            else "some seeds reach it"
        )
        out += [
            "",
            f"Best MLP over seeds (`seed_spread` below): zoo_jax {described(ours)}, Keras 3 "
            f"running the seed's code {described(keras)}, against {100 * needed:.1f}; {verdict}.",
        ]
    far = [
        r
        for r in rows
        if abs(r["metrics"]["test_accuracy"] - r["reference"]["test_accuracy"]) > 0.005
    ]
    if far:
        out += ["", "Rows more than 0.5 points from the seed (Δ in points):", ""]
        by_row = {c["row"]: c for c in crosschecks}
        groups = defaultdict(list)
        for r in far:
            delta = 100 * (r["metrics"]["test_accuracy"] - r["reference"]["test_accuracy"])
            groups[explain(r, by_id, by_row)].append(f"`{r['row']}` {delta:+.2f}")
        out += [f"- {', '.join(names)}. {why}" for why, names in groups.items()]
    missing = [r.id for r in ROWS if r.id not in by_id]
    if missing:
        out += [
            "",
            f"Not run yet ({len(missing)} of {len(ROWS)} rows): "
            + ", ".join(f"`{m}`" for m in missing)
            + ".",
        ]
    return out


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    rows = sorted(rows, key=lambda r: (r["reference"]["source"], r["model"], r["row"]))
    findings_ = findings(
        rows, by_experiment.get("torch_crosscheck", []), by_experiment.get("seed_spread", [])
    )
    return common.accuracy_table(rows, findings_)


if __name__ == "__main__":
    sys.exit(common.entry(main))
