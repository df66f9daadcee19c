"""The character and dates comparisons under one protocol a reviewer can trust: a similar
parameter count, a small learning-rate search on the validation split, training until the
validation loss stops improving (the best epoch's state kept), three seeds, mean ± spread.

    python -m experiments.converged                      # both tasks, every row
    python -m experiments.converged --task chars --rows lstm,mlstm
    python -m experiments.converged --quick              # CI: tiny models, 2 epochs at most

Protocol, per row (`recurrent_zoo` and `seq2seq` train their rows once, on a fixed budget;
this experiment asks which differences survive a fair one):

1. Learning-rate search: seed 0 at each rate of the row's grid (the card's rate × 1/3, 1,
   10/3 for characters: 1e-3, 3e-3, 1e-2 for the recurrent cells; × 1/2, 1, 2 for dates),
   each trained until its validation loss has not improved for the task's patience (at most
   its epoch cap; for dates, improved by more than `min_delta` 1e-4), the best epoch's state
   kept (`RunConfig.patience`, `min_delta`). Adam with clipnorm 1 at a constant rate: early
   stopping decides the length, not a schedule. The rate with the lowest validation loss is
   the row's.
2. Seeds 1 and 2 at that rate; with seed 0's run, three seeds. Test figures are read once,
   at each run's best-validation epoch; the test split never chooses anything.

Characters (`chars`, `pydoc_data.topics` split by document, 128-character windows, batch 32):
`char_rnn` with each cell, the units chosen so every row has 357–365 thousand parameters (the
LSTM of 256 units has 359,841), and the causal Transformer decoder (`transformer_lm`,
355,681). Figures in bits per character. Dates (`dates`, batch 64): the five rows of
`experiments/seq2seq.py`, exact-sequence accuracy of greedy decoding on the test split and on
the longer-than-training split.

A run is *converged* when it stopped early, i.e. its validation loss stopped improving before
the epoch cap. A ranking of two rows is *resolved* only when every seed of one is better than
every seed of the other; otherwise the report says the difference is within the spread.

Results: `results/converged/TASK/ROW/lrRATE_seed0.json` (the search) and `…/ROW/seedS.json`;
RESULTS.md via `report.py`.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from experiments import common, seq2seq
from zoo_jax import registry
from zoo_jax.errors import ArgumentParser, NonFiniteError, UnknownNameError, ZooError
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.run import build_learner

OUT = common.RESULTS_DIR / "converged"
CLIP = {"clipnorm": 1.0}
SEEDS = (0, 1, 2)
SEARCH_POLL_S = 30  # a seed run waiting on another runner's search rate looks this often
# task -> (dataset, batch size, most epochs, patience, min_delta, the grid's factors of the
# card's rate). Dates: the seq2seq rows reach 100 % exact on validation within a few epochs
# and their validation loss then creeps towards 0 by ~1e-5 an epoch; a decrease of at most
# 1e-4 nats per token (Keras's `min_delta`) does not count as better, so they stop.
TASKS = {
    "chars": ("chars", 32, 40, 3, 0.0, (1 / 3, 1, 10 / 3)),
    "dates": ("dates", 64, 20, 2, 1e-4, (1 / 2, 1, 2)),
}
# row -> (model, overrides); the char_rnn units match the LSTM's parameter count (±1.5 %)
ROWS = {
    "chars": {
        "lstm": ("char_rnn", {"cell": "lstm"}),
        "mlstm": ("char_rnn", {"cell": "mlstm", "units": 228}),
        "elman": ("char_rnn", {"cell": "elman", "units": 520}),
        "gru": ("char_rnn", {"cell": "gru", "units": 298}),
        "peephole_lstm": ("char_rnn", {"cell": "peephole_lstm"}),
        "jordan": ("char_rnn", {"cell": "jordan", "units": 380}),
        "transformer_decoder": ("transformer_lm", {}),
    },
    "dates": seq2seq.ROWS,
}
# the comparisons the issue asks about: (task, better-claimed row, other row, source, split)
CLAIMS = (
    ("chars", "mlstm", "lstm", "Krause et al. 2016 report the mLSTM ahead of the LSTM", "test"),
    ("chars", "lstm", "elman", "the LSTM is expected ahead of the Elman network", "test"),
    ("dates", "global", "no_attention", "attention is expected to help alignment", "test"),
    ("dates", "global", "no_attention",
     "attention is expected to help alignment, on sources longer than any trained on", "long"),
)  # fmt: skip


def grid(task: str, row: str) -> list[float]:
    """The row's learning rates: its card's rate times the task's factors, to one significant
    digit (3e-3 → 1e-3, 3e-3, 1e-2)."""
    model, _ = ROWS[task][row]
    base = registry.get_card(model).learning_rate
    return [float(f"{base * f:.1g}") for f in TASKS[task][5]]


def run_name(row: str, lr: float | None, seed: int) -> str:
    return f"{row}/lr{lr:g}_seed0" if seed == 0 else f"{row}/seed{seed}"


def chosen_rate(rows: list[dict], rates: int) -> float | None:
    """The rate of the search run with the lowest validation loss (None until all `rates`
    ran)."""
    search = [r for r in rows if r["row"].endswith("_seed0")]
    finite = [r for r in search if r["metrics"]["validation_loss"] is not None]  # not diverged
    if len(search) < rates or not finite:
        return None
    return min(finite, key=lambda r: r["metrics"]["validation_loss"])["config"]["learning_rate"]


def train(task: str, row: str, lr: float, seed: int, quick: bool, data_dir) -> dict:
    dataset, batch_size, epochs, patience, min_delta, _ = TASKS[task]
    model, overrides = ROWS[task][row]
    limits = {}
    if quick:
        overrides = {**overrides, **registry.get_card(model).test_overrides}  # tiny units
        epochs, patience, limits = 2, 1, {"train_limit": 256, "test_limit": 64}
    cfg = RunConfig(model=model, dataset=dataset, model_overrides=overrides, learning_rate=lr,
                    seed=seed, epochs=epochs, patience=patience, min_delta=min_delta,
                    batch_size=batch_size,
                    optimizer="adam", optimizer_options=CLIP, data_dir=data_dir, **limits)  # fmt: skip
    try:
        summary = fit(cfg, progress=False)
    except NonFiniteError as err:  # this rate diverged: a result of the search, not a failure
        if seed != 0:
            raise
        config = {"learning_rate": lr, "seed": seed, "model_overrides": overrides}
        return common.row("converged", f"{task}/{run_name(row, lr, seed)}", model, dataset,
                          {"validation_loss": None, "diverged": str(err)}, config,
                          notes=f"diverged at lr {lr:g} (seed 0): {err}")  # fmt: skip
    notes = (
        f"best-validation epoch of at most {epochs} (patience {patience}"
        + (f", min_delta {min_delta:g}" if min_delta else "")
        + f"), Adam lr {lr:g} "
        f"constant, clipnorm 1, seed {seed}"
    )
    reference = {"source": "issue 36: converged, seeded comparisons"}
    result = common.result_row("converged", f"{task}/{run_name(row, lr, seed)}", summary,
                               reference, notes)  # fmt: skip
    history = summary["history"]
    result["metrics"] |= {
        "validation_loss": summary["validation"]["loss"],
        "best_epoch": summary["best_epoch"],
        "epochs_trained": len(history),
        "stopped_early": summary["stopped_early"],
        "validation_loss_by_epoch": [e["validation_loss"] for e in history],
    }
    if task == "chars":
        bits = 1 / math.log(2)
        result["metrics"] |= {
            "test_bpc": summary["test"]["loss"] * bits,
            "validation_bpc": summary["validation"]["loss"] * bits,
            "train_bpc": summary["train"]["loss"] * bits,
        }
    else:
        learner = build_learner(RunConfig(**summary["config"]))
        for split in ("test", "long"):
            pairs, tokens, _, targets = seq2seq.decode_split(
                learner, summary["state"], split, 64 if quick else None
            )
            accuracy, _ = seq2seq.exact(tokens, targets, pairs.formats[: len(tokens)])
            result["metrics"][f"{split}_exact"] = accuracy
    return result


def plan(task: str, rows: list[str], quick: bool, data_dir, out_dir) -> list:
    """Per row: its search runs, then its other seeds at the rate the search chose (found
    when their turn comes, from the search's result files)."""

    def seed_run(row: str, seed: int) -> dict:
        # another runner may still be training a search rate (its claim file): wait for it
        while (rate := chosen_rate(common.read_rows(out_dir / row), len(grid(task, row)))) is None:
            if not any((out_dir / row).glob("lr*_seed0.claim")):
                raise ZooError(f"{task}/{row}: its learning-rate search has not finished")
            time.sleep(SEARCH_POLL_S)
        return train(task, row, rate, seed, quick, data_dir)

    items = []
    for row in rows:
        rates = grid(task, row)
        items += [(run_name(row, lr, 0), lambda r=row, lr=lr: train(task, r, lr, 0, quick,
                                                                       data_dir)) for lr in rates]  # fmt: skip
        seeds = SEEDS[1:2] if quick else SEEDS[1:]
        items += [(run_name(row, None, s), lambda r=row, s=s: seed_run(r, s)) for s in seeds]
    return items


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--rows", default="", help="comma-separated rows (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny models, 2 epochs at most")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    tasks = list(TASKS) if args.task == "all" else [args.task]
    wanted = list(filter(None, args.rows.split(",")))
    known = [row for task in tasks for row in ROWS[task]]
    for row in wanted:
        if row not in known:
            raise UnknownNameError(f"row of --task {args.task}", row, known)
    for task in tasks:
        out_dir = (common.RESULTS_DIR / "quick" if args.quick else common.RESULTS_DIR) / (
            f"converged/{task}"
        )
        rows = [r for r in ROWS[task] if not wanted or r in wanted]
        rows = rows[:1] if args.quick and not wanted else rows
        items = plan(task, rows, args.quick, args.data_dir, out_dir)
        common.run_claimed(items, out_dir, lambda run: run(), quick=args.quick)
    if not (args.no_report or args.quick):
        common.update_report()
    return 0


# --- the report ---------------------------------------------------------------------------


def headline(task: str, metrics: dict, split: str = "test") -> float:
    """The figure a row is ranked by: test bits per character (lower is better) or the
    exact-sequence accuracy (higher is better) on `split` (dates: test or long)."""
    return metrics["test_bpc"] if task == "chars" else metrics[f"{split}_exact"]


def spread(values: list[float], digits: int = 3) -> str:
    """`mean ± sample standard deviation` (the mean alone for one value)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def decimals(task: str) -> int:
    """Decimals of a task's figures: bits per character to 3, exact-sequence accuracies to 4
    (one of the 2,000 test dates is 0.0005)."""
    return 3 if task == "chars" else 4


def row_seeds(rows: list[dict], rate: float) -> list[dict]:
    """The runs at the chosen rate, one per seed (the search's best and the seed runs)."""
    return sorted(
        (r for r in rows if r["config"]["learning_rate"] == rate),
        key=lambda r: r["config"]["seed"],
    )


def compare(
    task: str, better: str, other: str, by_row: dict, source: str, split: str = "test"
) -> str:
    """One sentence: is `better` ahead of `other`, and is the difference beyond the spread?"""
    a, b = (
        sorted(headline(task, r["metrics"], split) for r in by_row.get(x, []))
        for x in (better, other)
    )
    if not a or not b:
        return f"{source}: not measured yet ({better}: {len(a)} seeds, {other}: {len(b)})."
    # as costs (lower is better): bits per character as they are, accuracies negated
    cost_a, cost_b = (sorted(x if task == "chars" else -x for x in v) for v in (a, b))
    mean_gap = np.mean(cost_b) - np.mean(cost_a)
    if cost_b[0] > cost_a[-1]:
        verdict = "holds: every seed of the first is ahead of every seed of the second"
    elif cost_a[0] > cost_b[-1]:
        verdict = "is reversed: every seed of the second is ahead of every seed of the first"
    else:
        verdict = "is not resolved: the seeds' ranges overlap"
    unit, places = ("bpc" if task == "chars" else "exact"), decimals(task)
    if min(len(a), len(b)) < len(SEEDS):
        verdict += f" (provisional: fewer than {len(SEEDS)} seeds so far)"
    return (
        f"{source}: {better} {spread(a, places)} against {other} {spread(b, places)} "
        f"{split} {unit} ({len(a)} and {len(b)} seeds), a mean difference of "
        f"{mean_gap:+.{places}f} in {better}'s "
        f"favour; the claim {verdict}."
    )


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    out = [
        "The character and dates comparisons trained to convergence (`python -m",
        "experiments.converged`): per row a learning-rate search on the validation split (seed",
        "0, three rates), each run stopped once its validation loss had not improved for a few",
        "epochs and its best epoch kept, then seeds 1 and 2 at the chosen rate. Adam with",
        "clipnorm 1 at a constant rate. Figures are mean ± sample standard deviation over the",
        "seeds run so far; *converged* means every run stopped early (before the epoch cap).",
        "A ranking is *resolved* only where every seed of one row beats every seed of the other.",
    ]
    by_task: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        task, row = r["row"].split("/")[:2]
        by_task.setdefault(task, {}).setdefault(row, []).append(r)
    chosen = {}
    for task, (_, batch, epochs, patience, min_delta, _) in TASKS.items():
        if task not in by_task:
            continue
        bits = task == "chars"
        measure = (
            "Bits per character (lower is better)."
            if bits
            else "Exact-sequence accuracy of greedy decoding (higher is better)."
        )
        out += [
            "",
            f"### {'Characters' if bits else 'Dates'}",
            "",
            f"Batch {batch}, at most {epochs} epochs, patience {patience}"
            + (f" (a decrease of at most {min_delta:g} is not better)" if min_delta else "")
            + f". {measure}",
            "",
            f"| row | model | params | validation {'bpc' if bits else 'loss'} by rate | rate | seeds | best epochs | "
            + ("validation bpc | test bpc | train bpc |" if bits else "test exact | long exact |")
            + " converged | wall s (all runs) | device |",
            "|---|---|---:|---|---:|---:|---|---|---|" + ("---|" if bits else "") + "---|---:|---|",
        ]
        for row in ROWS[task]:
            runs = by_task[task].get(row)
            if not runs:
                continue
            search = sorted(
                (r for r in runs if r["row"].endswith("_seed0")),
                key=lambda r: r["config"]["learning_rate"],
            )
            rates = ", ".join(
                f"{r['config']['learning_rate']:g}: "
                + ("diverged" if r["metrics"]["validation_loss"] is None else
                   f"{r['metrics']['validation_bpc']:.3f}" if bits else
                   f"{r['metrics']['validation_loss']:.2e}")  # dates: near 0
                for r in search
            )  # fmt: skip
            rate = chosen_rate(runs, len(grid(task, row)))
            seeds = row_seeds(runs, rate) if rate is not None else []
            chosen[(task, row)] = seeds
            first = next((r for r in runs if "params" in r["config"]), runs[0])
            params = first["config"].get("params")
            cells = [row, first["model"], f"{params:,}" if params else "", rates]
            keys = (
                ("validation_bpc", "test_bpc", "train_bpc")
                if bits
                else ("test_exact", "long_exact")
            )
            if not seeds:
                cells += [f"search: {len(search)} of {len(grid(task, row))} rates",
                          *[""] * (len(keys) + 3)]  # fmt: skip
            else:
                m = [r["metrics"] for r in seeds]
                capped = sum(not x["stopped_early"] for x in m)
                cells += [
                    f"{rate:g}",
                    f"{len(seeds)} of {len(SEEDS)}",
                    ", ".join(str(x["best_epoch"]) for x in m),
                    *(
                        f"**{spread([x[k] for x in m], decimals(task))}**" if k.startswith("test")
                        else spread([x[k] for x in m], decimals(task))
                        for k in keys
                    ),
                    "yes" if not capped else f"**no**: {capped} run(s) hit the cap",
                ]  # fmt: skip
            cells += [f"{sum(r['wall_s'] for r in runs):.0f}", first["device"]]
            out.append("| " + " | ".join(cells) + " |")
        if bits:
            markov = [r for r in by_experiment.get("energy", []) if r["row"].startswith("markov_k")]
            for r in sorted(markov, key=lambda r: r["config"]["order"]):
                out.append(
                    f"| markov k={r['config']['order']} | markov_chain | "
                    f"{r['config']['params']:,} slots | — (counts) | — | deterministic | — | "
                    f"{r['metrics']['validation_bpc']:.3f} | **{r['metrics']['test_bpc']:.3f}** | "
                    f"— | yes (one pass) | {r['wall_s']:.0f} | {r['device']} |"
                )
    by_row = {(task, row): seeds for (task, row), seeds in chosen.items()}
    claims = [
        compare(task, a, b, {k[1]: v for k, v in by_row.items() if k[0] == task}, source, split)
        for task, a, b, source, split in CLAIMS
        if task in by_task
    ]
    if claims:
        out += ["", "What holds:", "", *(f"* {c}" for c in claims)]
    pending = [
        f"{task}/{row}" for task in by_task for row in ROWS[task]
        if len(chosen.get((task, row), [])) < len(SEEDS)
    ]  # fmt: skip
    if pending:
        out += ["", "Not finished yet (fewer than three seeds or the search still running): "
                + ", ".join(pending) + "."]  # fmt: skip
    return [*out, ""]


if __name__ == "__main__":
    sys.exit(common.entry(main))
