"""The memory models: the neural Turing machine on its algorithmic tasks, MemN2N on bAbI.

    python -m experiments.memory                      # every row (see ROWS for the budgets)
    python -m experiments.memory --rows ntm_copy      # some rows
    python -m experiments.memory --quick              # CI: tiny data, results/quick/

- `ntm_copy`, `ntm_copy_feedforward`, `lstm_copy`: the NTM (LSTM or feed-forward
  controller) and an LSTM of the same size trained on copies of 1–20 random 8-bit vectors
  (`data.ntm_tasks`), then tested on 1,000 fresh sequences of exactly 20, 40, 80 and 120
  vectors: `bit_errors_lenN` is the mean number of wrong bits per sequence (Graves et al.
  2014, Fig. 3–4; Collier & Beel 2018, Fig. 2). Pictures: the read and write weightings
  over time, as the paper's Fig. 6.
- `ntm_repeat_copy`, `ntm_recall`: repeat copy and associative recall, bit errors per
  sequence on the test split (1,000 fresh examples of the training lengths).
- `memn2n_1k`: MemN2N (PE LS RN, d = 20) trained on each of the 20 bAbI tasks alone (1k
  set), `SEEDS` runs each and the best on the validation split kept (the paper keeps the
  best of 10; one run here, for the row budget); `memn2n_1k_joint`: one model (d = 50) on all 20 tasks together; `memn2n_10k_joint`
  the same on the 10k set (19 tasks: task 3's training file is missing), fewer epochs.
  Per-task test error `task_errors` (%), `mean_error` and `failed_tasks` (error > 5 %)
  beside Sukhbaatar et al. 2015, Table 1 (PE LS RN joint: 12.4 %, 11 failed). Pictures: the
  attention over a story's statements per hop for a few test questions.

The MemN2N schedule: linear start (no softmax) for `LS_EPOCHS` at learning rate 0.005,
then the paper's 0.01 halved every 25 epochs (15 for joint training) — the reference code
restarts the rate when the softmax comes back. The paper's loss is summed over a batch of
32, ours is the mean, so our rates are 32× the paper's and the clipping norm 40 / 32.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from zoo_jax.data import babi, ntm_tasks
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.run import resolve

OUT = common.RESULTS_DIR / "memory"
ROWS = ("ntm_copy", "ntm_copy_feedforward", "lstm_copy", "ntm_repeat_copy", "ntm_recall",
        "memn2n_1k", "memn2n_1k_joint", "memn2n_10k_joint")  # fmt: skip
COPY_LENGTHS = (20, 40, 80, 120)
# epochs of ntm_tasks.TRAIN_SIZE sequences (2,000 steps of 32), within ~15 min each here
EPOCHS = {"ntm_copy": 6, "ntm_copy_feedforward": 4, "lstm_copy": 8, "ntm_repeat_copy": 2,
          "ntm_recall": 5}  # fmt: skip
TEST_SEQUENCES = 1_000
SEEDS = (0,)
LS_EPOCHS = 20
BATCH = 32  # the paper's; its loss is a sum over the batch
MEMN2N = {  # d, epochs after linear start, halving period (epochs)
    "memn2n_1k": (20, 100, 25),
    "memn2n_1k_joint": (50, 60, 15),
    "memn2n_10k_joint": (50, 8, 4),  # 171,000 questions an epoch: 10 epochs in ~15 min here
}
LS_EPOCHS_10K = 2
PAPER_JOINT_1K = {  # Sukhbaatar et al. 2015, Table 1, PE LS RN joint (1k): test error %
    "source": "Sukhbaatar et al. 2015, Table 1 (PE LS RN, joint, 1k)",
    "task_errors": [0.0, 11.4, 21.9, 13.4, 14.4, 2.8, 18.3, 9.3, 1.9, 6.5, 0.3, 0.1, 0.2, 6.9,
                    0.0, 2.7, 40.4, 9.4, 88.0, 0.0],
    "mean_error": 12.4, "failed_tasks": 11,
}  # fmt: skip
MATLAB_1K = {  # the authors' Matlab code, PE LS RN trained per task (MemN2N-babi-python's table)
    "source": "the authors' Matlab code, 3 hops PE LS RN per task (benchmark in vinhkhuc/MemN2N-babi-python)",
    "task_errors": [0.1, 8.2, 41.8, 4.4, 13.7, 7.9, 20.3, 11.7, 13.6, 9.7, 0.7, 0.0, 0.3, 0.9,
                    0.0, 0.4, 51.0, 10.5, 81.4, 0.0],
    "mean_error": 13.8,
}  # fmt: skip
QUIET = {"progress": False, "log": lambda _: None}


def _limits(quick: bool) -> dict:
    return {"train_limit": 256, "test_limit": 64} if quick else {}


def batched(fn, x, size: int = 500) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[i : i + size])) for i in range(0, len(x), size)])


# --- the NTM's tasks ---------------------------------------------------------------------------


def bit_errors(model, params, x, y) -> float:
    """Mean wrong bits per sequence (bits asked for only)."""
    logits = batched(jax.jit(lambda v: model.apply({"params": params}, v)), x, 100)
    wrong = ((logits > 0) != (y > 0)) & (y >= 0)
    return float(wrong.sum((1, 2)).mean())


def ntm_row(name: str, quick: bool) -> dict:
    model_name = "copy_lstm" if name == "lstm_copy" else "ntm"
    task = {"ntm_repeat_copy": "repeat-copy", "ntm_recall": "associative-recall"}.get(name, "copy")
    overrides = {"controller": "feedforward"} if name == "ntm_copy_feedforward" else {}
    overrides["num_classes"] = ntm_tasks.CHANNELS[task][1]
    if quick:
        overrides |= resolve(RunConfig(model=model_name)).card.test_overrides
    epochs = 1 if quick else EPOCHS[name]
    cfg = RunConfig(model=model_name, dataset=task, epochs=epochs, model_overrides=overrides,
                    **_limits(quick))  # fmt: skip
    summary = fit(cfg, **QUIET)
    model, params = resolve(cfg).model(), summary["state"].params
    metrics = {"test_bit_errors": summary["test"]["bit_errors"],
               "train_bit_errors": summary["train"]["bit_errors"],
               "bit_errors_by_epoch": [h["test_bit_errors"] for h in summary["history"]]}  # fmt: skip
    n = 16 if quick else TEST_SEQUENCES
    if task == "copy":
        for length in (COPY_LENGTHS[0], COPY_LENGTHS[-1]) if quick else COPY_LENGTHS:
            key = jax.random.PRNGKey(1000 + length)  # (each length compiles the model anew)
            x, y = ntm_tasks.copy(key, n, (length, length))
            metrics[f"bit_errors_len{length}"] = bit_errors(model, params, x, y)
        if model_name == "ntm":
            weightings_picture(name, model, params)
    return common.row("memory", name, model_name, task, metrics,
                      {"epochs": epochs, "batch_size": 32, "steps": summary["steps"],
                       "params": summary["params"], "model_overrides": overrides,
                       "train_sequences": ntm_tasks.TRAIN_SIZE if not quick else 256},
                      reference={"source": "Graves et al. 2014, Fig. 3-4: the NTM copies "
                                           "sequences longer than trained on, the LSTM does not"},
                      wall_s=summary["wall_s"])  # fmt: skip


def weightings_picture(name: str, model, params) -> None:
    plt = common.pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(2, 2, figsize=(11, 6))
    for col, length in enumerate((20, 80)):
        x, _ = ntm_tasks.copy(jax.random.PRNGKey(7), 1, (length, length))
        _, reads, writes = model.apply({"params": params}, x, method="trace")
        for row, (w, what) in enumerate(((writes, "write"), (reads, "read"))):
            ax = axes[row, col]
            ax.imshow(np.asarray(w[0]).T, aspect="auto", cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"{what} weightings, copy of {length}", fontsize=9)
            ax.set_xlabel("time")
            ax.set_ylabel("location")
    fig.tight_layout()
    _save(fig, f"{name}_weightings", plt)


# --- MemN2N on bAbI ------------------------------------------------------------------------------


def _schedule(ls, epochs, halve, steps_per_epoch):
    """Boundaries and rates: LS at 0.005·B, then 0.01·B halved every `halve` epochs."""
    lr = 0.01 * BATCH
    bounds = [(ls + halve * k) * steps_per_epoch for k in range(max(1, -(-epochs // halve)))]
    return bounds, [lr / 2] + [lr / 2**k for k in range(len(bounds))]


def train_memn2n(dataset, d, epochs, halve, ls, seed, quick):
    """`(fit's summary, validation accuracy, model, params, predict)`."""
    size, tasks = babi.dataset_tasks(dataset)
    n = sum(len(babi.read(size, t, "train")) for t in tasks)  # counted, not encoded
    per_epoch = (min(n, 256) if quick else n) // BATCH
    bounds, values = _schedule(ls, epochs, halve, per_epoch)
    cfg = RunConfig(model="memn2n", dataset=dataset, epochs=ls + epochs, batch_size=BATCH,
                    seed=seed, learning_rate=values[0],
                    optimizer_options={"global_clipnorm": 40.0 / BATCH},
                    schedule="piecewise_constant_decay",
                    schedule_options={"boundaries": bounds, "values": values},
                    model_overrides={"embed_dim": d, "linear_start_epochs": ls,
                                     **({"hops": 2} if quick else {})},
                    **_limits(quick))  # fmt: skip
    summary = fit(cfg, **QUIET)
    run = resolve(cfg)
    model, params = run.model(), summary["state"].params
    predict = jax.jit(lambda v: jnp.argmax(model.apply({"params": params}, v), -1))
    vx, vy = run.load_split("validation")
    limit = 64 if quick else None
    validation = float(np.mean(batched(predict, vx[:limit]) == vy[:limit]))
    return summary, validation, model, params, predict


def task_accuracies(size, tasks, predict, quick) -> dict[int, float]:
    out = {}
    for t in tasks:
        x, y = babi.load(f"babi{'-10k' if size == '10k' else ''}-qa{t}", "test",
                         (babi.MEMORY_SIZE + 1, babi.SENTENCE_LENGTH))  # fmt: skip
        x, y = (x[:64], y[:64]) if quick else (x, y)
        out[t] = float(np.mean(batched(predict, x) == y))
    return out


def memn2n_row(name: str, quick: bool) -> dict:
    d, epochs, halve = MEMN2N[name]
    size = "10k" if "10k" in name else "1k"
    ls = LS_EPOCHS_10K if size == "10k" else LS_EPOCHS
    if quick:
        epochs, halve, ls = 2, 1, 1
    t0 = time.perf_counter()
    tasks = babi.available_tasks(size, "train")
    accuracies, chosen, validations = {}, {}, {}
    if name == "memn2n_1k":
        for t in tasks[:2] if quick else tasks:
            best = None
            for seed in SEEDS[:1] if quick else SEEDS:
                _, val, model, params, predict = train_memn2n(f"babi-qa{t}", d, epochs, halve,
                                                               ls, seed, quick)  # fmt: skip
                if best is None or val > best[0]:
                    best = (val, seed, model, params, predict)
            validations[t], chosen[t] = best[0], best[1]
            accuracies |= task_accuracies(size, [t], best[4], quick)
            if t == 2:
                attention_picture(name, best[2], best[3], t, size, quick)
    else:
        dataset = "babi-10k" if size == "10k" else "babi"
        _, val, model, params, predict = train_memn2n(dataset, d, epochs, halve, ls, 0, quick)
        validations["all"] = val
        accuracies = task_accuracies(size, tasks[:2] if quick else tasks, predict, quick)
        attention_picture(name, model, params, 2, size, quick)
    errors = {t: round(100 * (1 - a), 2) for t, a in accuracies.items()}
    metrics = {
        "task_errors": errors,
        "mean_error": float(np.mean(list(errors.values()))),
        "failed_tasks": int(sum(e > 5 for e in errors.values())),
        "validation_accuracy": validations,
    }
    if chosen:
        metrics["chosen_seed"] = chosen
    reference = {"1k": PAPER_JOINT_1K, "10k": {}}[size]
    if name == "memn2n_1k":
        reference = {"paper": PAPER_JOINT_1K, "reference_code": MATLAB_1K}
    config = {"embed_dim": d, "linear_start_epochs": ls, "epochs_after": epochs,
              "halve_every": halve, "batch_size": BATCH, "seeds": list(SEEDS[:1] if quick or
              name != "memn2n_1k" else SEEDS), "tasks": tasks}  # fmt: skip
    return common.row("memory", name, "memn2n", f"babi-{size}", metrics, config,
                      reference=reference, wall_s=time.perf_counter() - t0)  # fmt: skip


def attention_picture(name, model, params, task, size, quick) -> None:
    """Each hop's attention over the story for three test questions of `task`."""
    plt = common.pyplot()
    if plt is None:
        return
    vocab = babi.vocabulary(size)
    examples = babi.read(size, task, "test")[:3]
    x, _ = babi.encode(examples, vocab)
    att = np.asarray(model.apply({"params": params}, x, method="attention"))
    pred = np.asarray(jnp.argmax(model.apply({"params": params}, x), -1))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, e, a, p in zip(axes, examples, att, pred, strict=True):
        n = min(len(e.story), babi.MEMORY_SIZE)
        rows = a[:, :n][:, ::-1].T  # oldest statement first, as the story reads
        ax.imshow(rows, aspect="auto", cmap="Blues", vmin=0, vmax=1)
        ax.set_yticks(range(n))
        labels = [" ".join(s) + (" *" if i in e.supporting else "")
                  for i, s in enumerate(e.story[-n:], start=len(e.story) - n)]  # fmt: skip
        ax.set_yticklabels(labels, fontsize=6)
        ax.set_xticks(range(rows.shape[1]))
        ax.set_xticklabels([f"hop {k + 1}" for k in range(rows.shape[1])], fontsize=7)
        ax.set_title(f"{' '.join(e.question)}? → {vocab.word(p)} (answer {e.answer})", fontsize=8)
    fig.suptitle(f"{name}: attention per hop (* supporting facts), task {task}", fontsize=9)
    fig.tight_layout()
    _save(fig, f"{name}_attention", plt)


def _save(fig, name: str, plt) -> None:
    out = OUT / "pictures"
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def run(row: str, quick: bool) -> dict:
    return memn2n_row(row, quick) if row.startswith("memn2n") else ntm_row(row, quick)


def main(argv: list[str] | None = None) -> int:
    global OUT
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # the pictures beside the rows
        OUT = common.RESULTS_DIR / "quick" / OUT.name
    status, OUT = common.run_rows(argv, __doc__.splitlines()[0], ROWS, OUT, run)
    return status


# --- RESULTS.md -----------------------------------------------------------------------------


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    by = {r["row"]: r for r in rows}
    out = []
    copies = [by[r] for r in ("ntm_copy", "ntm_copy_feedforward", "lstm_copy") if r in by]
    if copies:
        out += [
            "**Copy** (`python -m experiments.memory`): trained on 1–20 vectors of 8 random bits,",
            "tested on 1,000 fresh sequences of each length; wrong bits per sequence (of 8 × length):",
            "",
            "| model | params | steps | len 20 | len 40 | len 80 | len 120 | wall |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in copies:
            m = r["metrics"]
            controller = r["config"]["model_overrides"].get("controller", "lstm")
            label = "LSTM" if r["model"] == "copy_lstm" else f"NTM ({controller} controller)"
            out.append(f"| {label} | {r['config']['params']:,} | {r['config']['steps']:,} | "
                       + " | ".join(f"{m[f'bit_errors_len{n}']:.2f}" if f"bit_errors_len{n}" in m else "—"
                                    for n in COPY_LENGTHS)
                       + f" | {r['wall_s'] / 60:.1f} min |")  # fmt: skip
        out += ["", "Graves et al.'s copy learning curves (Fig. 3) run to a million sequences, their",
                "NTM's cost near zero long before the LSTM's, and their NTM copies past the",
                "training lengths (Fig. 4) where the LSTM fails; the rows above saw "
                + ", ".join(f"{r['config']['steps'] * 32:,}" for r in copies)
                + " sequences."]  # fmt: skip
    others = [by[r] for r in ("ntm_repeat_copy", "ntm_recall") if r in by]
    for r in others:
        out += ["", f"**{r['dataset']}** (NTM, {r['config']['steps']:,} steps of 32): "
                f"{r['metrics']['test_bit_errors']:.2f} wrong bits per test sequence "
                f"(by epoch: {', '.join(f'{v:.2f}' for v in r['metrics']['bit_errors_by_epoch'])})."]  # fmt: skip
    babi_rows = [by[r] for r in ("memn2n_1k", "memn2n_1k_joint", "memn2n_10k_joint") if r in by]
    if babi_rows:
        out += ["", "**bAbI**, MemN2N (3 hops, PE LS RN), test error % per task:", "",
                "| task | " + " | ".join(r["row"] for r in babi_rows)
                + " | paper PE LS RN joint 1k | authors' code PE LS RN 1k |",
                "|---:|" + "---:|" * (len(babi_rows) + 2)]  # fmt: skip
        for t in babi.TASKS:
            cells = [r["metrics"]["task_errors"].get(str(t), r["metrics"]["task_errors"].get(t))
                     for r in babi_rows]  # fmt: skip
            shown = ["—" if c is None else f"{c:.1f}" for c in cells]
            out.append(f"| {t} | " + " | ".join(shown) + f" | {PAPER_JOINT_1K['task_errors'][t - 1]}"
                       f" | {MATLAB_1K['task_errors'][t - 1]} |")  # fmt: skip
        out.append("| **mean** | " + " | ".join(f"{r['metrics']['mean_error']:.1f}" for r in babi_rows)
                   + f" | {PAPER_JOINT_1K['mean_error']} | {MATLAB_1K['mean_error']} |")  # fmt: skip
        out.append("| **failed (> 5 %)** | " + " | ".join(str(r["metrics"]["failed_tasks"]) for r in babi_rows)
                   + f" | {PAPER_JOINT_1K['failed_tasks']} | "
                   f"{sum(e > 5 for e in MATLAB_1K['task_errors'])} |")  # fmt: skip
        for r in babi_rows:
            c = r["config"]
            out += ["", f"`{r['row']}`: d = {c['embed_dim']}, {c['linear_start_epochs']} epochs "
                    f"of linear start then {c['epochs_after']} (rate halved every "
                    f"{c['halve_every']}), seeds {c['seeds']}, {len(c['tasks'])} tasks, "
                    f"{r['wall_s'] / 60:.1f} min."]  # fmt: skip
    out += common.picture_links(OUT / "pictures", "Pictures")
    return [*out, ""]


if __name__ == "__main__":
    raise SystemExit(common.entry(main))
