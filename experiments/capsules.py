"""The capsule network on MNIST and Fashion-MNIST, beside Sabour et al. 2017, Table 1.

    python -m experiments.capsules                        # every row (each ~15 min here)
    python -m experiments.capsules --rows capsnet_mnist   # some rows
    python -m experiments.capsules --epochs 50            # the paper-length run (a GPU's)
    python -m experiments.capsules --quick                # CI: tiny data, results/quick/

Each row trains the `capsnet` card (Adam 1e-3, batch 128, the margin loss plus 0.0005 × the
reconstruction's squared error, shifts of up to 2 pixels) for `EPOCHS` epochs — on this
2-core CPU a batch takes about 1.4 s, so an epoch of 60,000 images about 11 minutes, and
the paper's hundreds of epochs are a GPU's work (`--epochs`) — and reports `test_accuracy`
on the 10,000 test images. `capsnet_mnist` routes 3 times, `capsnet_mnist_r1` once (the
paper's two settings with reconstruction: 0.25 % and 0.29 % test error); the best-known
Keras reproduction (XifengGuo/CapsNet-Keras) reaches 0.34 %. Pictures: test images and
their reconstructions from the longest capsule; each of the 16 dimensions of a digit's
capsule perturbed by −0.25 … 0.25 in steps of 0.05 (the paper's Fig. 4).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from experiments import common
from zoo_jax.data import vision
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.run import resolve

OUT = common.RESULTS_DIR / "capsules"
ROWS = ("capsnet_mnist", "capsnet_mnist_r1", "capsnet_fashion")
EPOCHS = 1
PAPER = {  # Sabour et al. 2017, Table 1: MNIST test error %, with reconstruction
    3: {"source": "Sabour et al. 2017, Table 1 (3 routing iterations, reconstruction)",
        "test_error": 0.25, "keras_reproduction": 0.34},
    1: {"source": "Sabour et al. 2017, Table 1 (1 routing iteration, reconstruction)",
        "test_error": 0.29},
}  # fmt: skip
QUIET = {"progress": False, "log": lambda _: None}


def train(row: str, quick: bool, epochs: int):
    dataset = "fashion-mnist" if row.endswith("fashion") else "mnist"
    iterations = 1 if row.endswith("_r1") else 3
    overrides = {"routing_iterations": iterations}
    if quick:
        overrides |= resolve(RunConfig(model="capsnet")).card.test_overrides
    limits = {"train_limit": 256, "test_limit": 128} if quick else {}
    cfg = RunConfig(model="capsnet", dataset=dataset, epochs=1 if quick else epochs,
                    augment="shift", model_overrides=overrides, **limits)  # fmt: skip
    summary = fit(cfg, **QUIET)
    return summary, resolve(cfg), iterations


def run_row(row: str, quick: bool, epochs: int = EPOCHS) -> dict:
    summary, run, iterations = train(row, quick, epochs)
    model, params = run.model(), summary["state"].params
    xt, yt = run.load_split("test")
    pictures(row, model, params, xt[:16], yt[:16])
    m = summary["test"]
    metrics = {
        "test_accuracy": m["accuracy"],
        "test_error": 100 * (1 - m["accuracy"]),
        "test_margin": m["margin"],
        "test_reconstruction": m["reconstruction"],
        "train_accuracy": summary["train"]["accuracy"],
        "test_accuracy_by_epoch": [h["test_accuracy"] for h in summary["history"]],
        "images_per_s": summary.get("images_per_s"),
    }
    config = {"epochs": summary["config"]["epochs"], "batch_size": 128, "augment": "shift",
              "routing_iterations": iterations, "steps": summary["steps"],
              "params": summary["params"]}  # fmt: skip
    reference = PAPER[iterations] if run.config.dataset == "mnist" else {}
    return common.row("capsules", row, "capsnet", run.config.dataset, metrics, config,
                      reference=reference, wall_s=summary["wall_s"])  # fmt: skip


def pictures(row, model, params, x, y) -> None:
    plt = common.pyplot()
    if plt is None:
        return
    apply = lambda method, *a: model.apply({"params": params}, *a, method=method)
    _, recon = apply("outputs", x)
    fig, axes = plt.subplots(1, 3, figsize=(14, 5), gridspec_kw={"width_ratios": [1, 1, 2.2]})
    axes[0].imshow(vision.tile(np.asarray(x), 4, 4), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("test images", fontsize=9)
    axes[1].imshow(vision.tile(np.asarray(recon), 4, 4), cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("reconstructions (longest capsule)", fontsize=9)
    v = apply("capsules", x[:1])  # (1, classes, dim)
    label = int(jnp.argmax(jnp.linalg.norm(v, axis=-1)[0]))
    steps = jnp.arange(-0.25, 0.2501, 0.05)
    dim = v.shape[-1]
    perturbed = jnp.repeat(v, dim * len(steps), 0)
    delta = jnp.zeros((dim, len(steps), dim)).at[jnp.arange(dim), :, jnp.arange(dim)].set(steps)
    perturbed = perturbed.at[:, label].add(delta.reshape(-1, dim))
    images = apply("decode", perturbed, jnp.full(len(perturbed), label))
    axes[2].imshow(vision.tile(np.asarray(images), dim, len(steps)), cmap="gray", vmin=0, vmax=1)
    axes[2].set_title(f"each dimension of the {label}'s capsule, −0.25 … 0.25", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    out = OUT / "pictures"
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{row}.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    global OUT
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if "--quick" in args:  # the pictures go beside the rows
        OUT = common.RESULTS_DIR / "quick" / OUT.name
    epochs = EPOCHS
    if "--epochs" in args:  # the paper-length run on a GPU
        i = args.index("--epochs")
        epochs = int(args[i + 1])
        del args[i : i + 2]
    status, OUT = common.run_rows(args, __doc__.splitlines()[0], ROWS, OUT,
                                  lambda row, quick: run_row(row, quick, epochs))  # fmt: skip
    return status


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    by = {r["row"]: r for r in rows}
    out = [
        "CapsNet (`python -m experiments.capsules`), 8,215,568 parameters (the paper's 8.2M),",
        "Adam 1e-3, batch 128, shifts of up to 2 pixels, trained on this 2-core CPU for the",
        "epochs shown (the paper trains to convergence on a GPU: no GPU was lent to this run):",
        "",
        "| row | dataset | routing | epochs | test error % | paper % | Keras reproduction % | wall |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ROWS:
        if name not in by:
            continue
        r = by[name]
        ref = r["reference"]
        out.append(
            f"| {name} | {r['dataset']} | {r['config']['routing_iterations']} | "
            f"{r['config']['epochs']} | {r['metrics']['test_error']:.2f} | "
            f"{ref.get('test_error', '—')} | {ref.get('keras_reproduction', '—')} | "
            f"{r['wall_s'] / 60:.1f} min |"
        )
    mnist = by.get("capsnet_mnist")
    if mnist:
        gap = mnist["metrics"]["test_error"] - PAPER[3]["test_error"]
        out += ["", f"After {mnist['config']['epochs']} epoch(s) the 3-iteration model is "
                f"{gap:.2f} points above the paper's 0.25 %: the target is not met on this CPU."]  # fmt: skip
    out += common.picture_links(
        OUT / "pictures", "Pictures (reconstructions, dimension perturbations)"
    )
    return [*out, ""]


if __name__ == "__main__":
    raise SystemExit(common.entry(main))
