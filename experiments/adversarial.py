"""The adversarial networks (GAN, DCGAN, conditional GAN) on MNIST and Fashion-MNIST, judged by a classifier.

    python -m experiments.adversarial                       # every row (each within ~15 min here)
    python -m experiments.adversarial --rows dcgan_mnist    # some rows
    python -m experiments.adversarial --quick               # CI: tiny data, results/quick/

Each `MODEL_DATASET` row trains the card (Adam 2e-4, β1 0.5, batch 128, the non-saturating
generator loss, k = 1) for `EPOCHS[model]` epochs, stopping at the epochs of `MILESTONES` to
draw 1,000 samples from fixed noise (their classifier score: the curve, and a picture).
At the end it draws `SAMPLES` (10,000) images (the conditional GAN 1,000 per class) and
scores them with the shared judge (`experiments/judge.py`, the `dcn` classifier trained
once on the real images):

- `classifier_score` exp(E KL(p(y|x) ‖ p(y))) (`real_classifier_score`: the test images');
- `frechet_distance` between the judge's penultimate features of the samples and of the
  test set (`frechet_floor`: the first 10,000 training images' distance to the test set);
- `class_histogram` of the judge's classes and `min_class_share` (mode coverage), and for
  the conditional GAN `class_match`, the share of samples judged as the class requested;
- `parzen_ll`: Goodfellow et al. 2014's Gaussian Parzen-window log-likelihood of the test
  set under the samples (σ chosen on the last 1,000 training images), and `real_parzen_ll`,
  the same estimate with 10,000 training images as the window.

`dcgan_mnist_long` trains the DCGAN on MNIST for 20 epochs (beyond the row budget: about
30 minutes here) to show how far its classifier score goes with more time.

`dcgan_bench` times the DCGAN's train step (both players; `zoo-jax bench --model dcgan`
compiles the same) against the same networks and the same step in PyTorch eager, in
alternating rounds in one process; the ratio of the medians is reported.
"""

from __future__ import annotations

import tempfile
import time

import jax
import numpy as np

from experiments import common
from experiments.judge import Judge
from zoo_jax import judging
from zoo_jax.data import datasets, vision
from zoo_jax.train.loop import RunConfig, fit, restore_run

OUT = common.RESULTS_DIR / "adversarial"
MODELS = ("gan", "dcgan", "conditional_gan")
DATASETS = {"mnist": "mnist", "fashion": "fashion-mnist"}
EPOCHS = {"gan": 30, "dcgan": 8, "conditional_gan": 30}
MILESTONES = {"gan": (1, 5, 15, 30), "dcgan": (1, 2, 4, 8), "conditional_gan": (1, 5, 15, 30)}
# beyond the ~15-minute row budget: how far the DCGAN gets on MNIST with 2.5 times the epochs
LONG = {"dcgan_mnist_long": ("dcgan", "mnist", (2, 5, 10, 15, 20))}
ROWS = (*(f"{m}_{d}" for d in DATASETS for m in MODELS), *LONG, "dcgan_bench")
SAMPLES = 10_000
VALIDATION = 1_000  # the last training images: the Parzen window's width is chosen on them
TARGETS = {"dcgan": {"classifier_score": 9.5}, "conditional_gan": {"class_match": 0.98}}
MIN_SHARE = 0.05
PAPERS = {
    "gan": {"source": "Goodfellow et al. 2014, Table 1 (Parzen, MNIST)", "parzen_ll": 225,
            "parzen_se": 2},
    "conditional_gan": {"source": "Mirza & Osindero 2014, Table 1 (Parzen, MNIST)",
                        "parzen_ll": 132, "parzen_se": 1.8},
}  # fmt: skip
QUIET = {"progress": False, "log": lambda _: None}


def _row(name, model, dataset, metrics, config, notes="", wall_s=0.0, reference=None):
    return common.row("adversarial", name, model, dataset, metrics, config,
                      reference=reference or {}, notes=notes, wall_s=wall_s)  # fmt: skip


def sampler(learner, state):
    """`draw(z, labels)` → images in [0, 1], jitted, in batches of 1,000."""
    variables = learner.variables(state)
    apply = jax.jit(lambda z, y: learner.model.apply(variables, z, y, method="sample"))

    def draw(z, labels):
        return np.concatenate([np.asarray(apply(z[i : i + 1000], labels[i : i + 1000]))
                               for i in range(0, len(z), 1000)])  # fmt: skip

    return draw


def noise_and_labels(model, n: int, seed: int, num_classes: int = 10):
    """Fixed noise, and balanced labels (class c for the c-th block of n / classes)."""
    z = np.asarray(jax.random.uniform(jax.random.PRNGKey(seed), (n, model.latent_dim),
                                      minval=-1.0, maxval=1.0))  # fmt: skip
    return z, np.repeat(np.arange(num_classes), n // num_classes).astype(np.int32)


def score(judge: Judge, images: np.ndarray, labels: np.ndarray, conditional: bool) -> dict:
    predicted = judge.predict(images)
    shares = judging.class_histogram(predicted, 10)
    out = {
        "classifier_score": judging.classifier_score(judge.probabilities(images)),
        "class_histogram": [round(float(s), 4) for s in shares],
        "min_class_share": float(shares.min()),
    }
    if conditional:
        out["class_match"] = float(np.mean(predicted == labels))
    return out


def train_row(model: str, key: str, quick: bool, milestones=None, name=None) -> dict:
    dataset = DATASETS[key]
    t0 = time.perf_counter()
    judge = Judge.get(dataset, quick)
    limits = {"train_limit": 1024, "test_limit": 500} if quick else {}
    milestones = (1, 2) if quick else milestones or MILESTONES[model]
    name = name or f"{model}_{key}"
    n = 1000 if quick else SAMPLES
    x_train, _ = datasets.load(dataset, "train", (28, 28, 1))
    x_test, _ = datasets.load(dataset, "test", (28, 28, 1), None, limits.get("test_limit"))
    stages, fit_s = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, epochs in enumerate(milestones):
            cfg = RunConfig(model=model, dataset=dataset, epochs=epochs, seed=0, **limits)
            summary = fit(cfg, tmp, resume=i > 0, **QUIET)
            fit_s += summary["wall_s"]
            _, learner, state, _ = restore_run(tmp)
            draw = sampler(learner, state)
            z, labels = noise_and_labels(learner.model, 1000, seed=1)
            images = draw(z, labels)
            stages.append({"epoch": epochs, "images": images[::10][:100],
                           **score(judge, images, labels, learner.model.conditional)})  # fmt: skip
            print(f"{model} {key} epoch {epochs}: classifier score "
                  f"{stages[-1]['classifier_score']:.3f}", flush=True)  # fmt: skip
    conditional = learner.model.conditional
    z, labels = noise_and_labels(learner.model, n, seed=2)
    samples = draw(z, labels)
    metrics = score(judge, samples, labels, conditional)
    real = judge.probabilities(x_test)
    test_features = judge.features(x_test)
    metrics |= {
        "real_classifier_score": judging.classifier_score(real),
        "frechet_distance": judging.frechet_distance(judge.features(samples), test_features),
        "frechet_floor": judging.frechet_distance(judge.features(x_train[:n]), test_features),
    }
    validation = x_train[-VALIDATION:]
    sigma = judging.best_parzen_sigma(samples, validation)
    ll, se = judging.parzen_log_likelihood(samples, x_test, sigma)
    real_sigma = judging.best_parzen_sigma(x_train[:n], validation)
    real_ll, real_se = judging.parzen_log_likelihood(x_train[:n], x_test, real_sigma)
    history = summary["history"]
    metrics |= {
        "parzen_ll": ll, "parzen_se": se, "parzen_sigma": sigma,
        "real_parzen_ll": real_ll, "real_parzen_se": real_se, "real_parzen_sigma": real_sigma,
        "score_by_epoch": [[s["epoch"], s["classifier_score"]] for s in stages],
        "min_class_share_by_epoch": [[s["epoch"], s["min_class_share"]] for s in stages],
        "train_d_loss_by_epoch": [e["train_d_loss"] for e in history],
        "train_g_loss_by_epoch": [e["train_g_loss"] for e in history],
        "test_d_real": summary["test"]["d_real"], "test_d_fake": summary["test"]["d_fake"],
        "judge_test_accuracy": judge.test_accuracy,
        "images_per_s": summary.get("images_per_s"),
        "train_step_compiles": summary["train_step_compiles"],
        "fit_s": fit_s,
    }  # fmt: skip
    if conditional:
        metrics["class_match_by_epoch"] = [[s["epoch"], s["class_match"]] for s in stages]
    if not quick:
        pictures(name, learner, state, stages, history, conditional)
    config = {"epochs": milestones[-1], "batch_size": summary["batch_size"],
              "optimizer": "adam 2e-4, beta_1 0.5", "loss": summary["loss"],
              "disc_steps": learner.model.disc_steps, "params": summary["params"],
              "samples": n, "judge": f"dcn, {judge.epochs} epochs", **limits}  # fmt: skip
    reference = dict(PAPERS.get(model, {})) if key == "mnist" else {}
    if key == "mnist":  # the targets are MNIST's
        reference |= TARGETS.get(model, {}) | {"min_class_share": MIN_SHARE}
    notes = (
        "classifier score of 10,000 samples by the judge; Fréchet distance on the judge's "
        "128 penultimate features; Parzen σ chosen on the last 1,000 training images."
    )
    return _row(name, model, dataset, metrics, config, notes,
                time.perf_counter() - t0, reference)  # fmt: skip


# --- pictures -----------------------------------------------------------------------------------


def pictures(name: str, learner, state, stages, history, conditional: bool) -> None:
    plt = common.pyplot()
    if plt is None:
        return
    out = OUT / "pictures"
    out.mkdir(parents=True, exist_ok=True)
    model = learner.model
    draw = sampler(learner, state)
    z, labels = noise_and_labels(model, 100, seed=3)
    if conditional:  # one row per class, the same ten noise vectors in each row
        z = np.tile(z[:10], (10, 1))
    grid = vision.tile(draw(z, labels), 10, 10)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(f"{name}: " + ("one class per row" if conditional else "100 samples"), fontsize=9)
    fig.savefig(out / f"{name}_samples.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    ends, _ = noise_and_labels(model, 16, seed=4)  # 8 pairs of end points, 10 steps each
    t = np.linspace(0, 1, 10)[None, :, None]
    path = (ends[0::2, None] * (1 - t) + ends[1::2, None] * t).reshape(80, -1)
    row_labels = np.repeat(np.arange(8), 10).astype(np.int32)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(vision.tile(draw(path, row_labels), 8, 10), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(f"{name}: linear paths between two noise vectors", fontsize=9)
    fig.savefig(out / f"{name}_interpolation.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    epochs = [e["epoch"] for e in history]
    ax.plot(epochs, [e["train_d_loss"] for e in history], "o-", label="discriminator")
    ax.plot(epochs, [e["train_g_loss"] for e in history], "s-", label="generator")
    ax.set_xlabel("epoch"), ax.set_ylabel("mean training loss (nats)")
    ax.legend(), ax.set_title(f"{name}: both players", fontsize=9)
    fig.savefig(out / f"{name}_losses.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(1, len(stages), figsize=(2.2 * len(stages), 2.6))
    for ax, stage in zip(np.atleast_1d(axes), stages, strict=True):
        ax.imshow(vision.tile(stage["images"], 8, 8), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"epoch {stage['epoch']}\nscore {stage['classifier_score']:.2f}", fontsize=8)
    fig.savefig(out / f"{name}_epochs.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


# --- speed --------------------------------------------------------------------------------------


def torch_dcgan_step(batch_size: int):
    """The 28×28 DCGAN (`dcgan`'s small configuration) and our learner's update in PyTorch:
    a discriminator step on a real batch and a batch of samples drawn without gradients,
    then a generator step on fresh noise; BCE with logits, Adam 2e-4 (β 0.5, 0.999, ε 1e-7,
    Keras's, as ours). Returns `step()`."""
    import torch
    from torch import nn

    def bn(c):
        return nn.BatchNorm2d(c, momentum=0.1, eps=1e-5)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(100, 7 * 7 * 128, bias=False)
            self.body = nn.Sequential(
                bn(128), nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), bn(64),
                nn.ReLU(), nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh(),
            )  # fmt: skip

        def forward(self, z):
            return self.body(self.project(z).view(-1, 128, 7, 7))

    g = Generator()
    d = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), bn(128), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(7 * 7 * 128, 1, bias=False),
    )  # fmt: skip
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999), eps=1e-7)
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999), eps=1e-7)
    bce = nn.BCEWithLogitsLoss()
    real = torch.rand(batch_size, 1, 28, 28) * 2 - 1
    ones, zeros = torch.ones(batch_size, 1), torch.zeros(batch_size, 1)

    def step():
        with torch.no_grad():
            fake = g(torch.rand(batch_size, 100) * 2 - 1)
        opt_d.zero_grad()
        loss_d = bce(d(real), ones) + bce(d(fake), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = bce(d(g(torch.rand(batch_size, 100) * 2 - 1)), ones)
        loss_g.backward()
        opt_g.step()
        return float(loss_g.detach())

    params = sum(p.numel() for p in (*g.parameters(), *d.parameters()))
    return step, params


def bench_row(quick: bool) -> dict:
    import torch

    from zoo_jax.bench import prepare_bench

    t0 = time.perf_counter()
    batch_size, steps, rounds = 128, (3 if quick else 20), (2 if quick else 7)
    info, time_steps = prepare_bench("dcgan", batch_size)
    torch_step, torch_params = torch_dcgan_step(batch_size)
    torch_step()  # warm up
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(float(np.median(time_steps(steps))))
        seconds = []
        for _ in range(steps):
            t = time.perf_counter()
            torch_step()
            seconds.append(time.perf_counter() - t)
        theirs.append(float(np.median(seconds)))
    ratios = [b / a for a, b in zip(ours, theirs, strict=True)]
    metrics = {
        "speedup": float(np.median(ratios)),
        "speedup_by_round": ratios,
        "step_ms": 1000 * float(np.median(ours)),
        "peer_step_ms": 1000 * float(np.median(theirs)),
        "params": info["params"],
        "peer_params": torch_params,
        "torch_threads": torch.get_num_threads(),
    }
    config = {"batch_size": batch_size, "steps_per_round": steps, "rounds": rounds,
              "model": "dcgan, 28x28 configuration (G 128-64-1, D 64-128)"}  # fmt: skip
    return _row("dcgan_bench", "dcgan", "random 28x28 batch", metrics, config,
                "target: torch ÷ ours ≥ 1.0 (one discriminator and one generator step)",
                time.perf_counter() - t0, {"source": "PyTorch eager, same networks and step",
                                           "target_speedup": 1.0})  # fmt: skip


def run(row: str, quick: bool) -> dict:
    if row == "dcgan_bench":
        return bench_row(quick)
    if row in LONG:
        model, key, milestones = LONG[row]
        return train_row(model, key, quick, milestones, row)
    model, key = row.rsplit("_", 1)
    return train_row(model, key, quick)


def main(argv: list[str] | None = None) -> int:
    global OUT
    status, OUT = common.run_rows(argv, __doc__.splitlines()[0], ROWS, OUT, run)
    return status


# --- RESULTS.md ---------------------------------------------------------------------------------


def _verdict(row: dict) -> str:
    """Each target of the row, met or missed and by how much (the targets are MNIST's;
    Fashion-MNIST rows are reported beside the real images' figures)."""
    m, out = row["metrics"], []
    if row["dataset"] != "mnist":
        return "– (MNIST's targets)"
    for key, target in TARGETS.get(row["model"], {}).items():
        value = m[key]
        shown = f"{100 * value:.2f} %" if key == "class_match" else f"{value:.2f}"
        goal = f"{100 * target:.0f} %" if key == "class_match" else f"{target:g}"
        out.append(f"{key} {shown} vs ≥ {goal}: " + ("met" if value >= target else
                   f"missed by {abs(value - target) * (100 if key == 'class_match' else 1):.2f}"))  # fmt: skip
    share = m["min_class_share"]
    out.append(f"rarest class {100 * share:.1f} % vs ≥ {100 * MIN_SHARE:.0f} %: "
               + ("met" if share >= MIN_SHARE else "missed"))  # fmt: skip
    return "; ".join(out)


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    by = {r["row"]: r for r in rows}
    trained = [by[r] for r in ROWS if r in by and r != "dcgan_bench"]
    out = [
        "GAN, DCGAN and conditional GAN (`python -m experiments.adversarial`), each trained by",
        "the two-player learner (Adam 2e-4, β1 0.5, batch 128, non-saturating generator loss,",
        "k = 1) and judged by the shared classifier (`experiments/judge.py`: the `dcn` trained 3",
        "epochs on the real images, frozen) on 10,000 samples: the classifier score",
        "exp(E KL(p(y|x) ‖ p(y))) (at most 10), the Fréchet distance between the judge's 128",
        "penultimate features of the samples and of the test set, the class histogram's rarest",
        "class, and for the conditional GAN the share of samples judged as the class asked for.",
        "Beside each: the real test images' score and the first 10,000 training images'",
        "distance to the test set (the floor).",
        "",
    ]
    if trained:
        out += [
            "| model | dataset | params | epochs | classifier score (real) | Fréchet distance "
            "(floor) | rarest class % | class match % | Parzen LL ± s.e. (σ) | paper | targets | "
            "wall |",
            "|---|---|---:|---:|---|---|---:|---:|---|---|---|---:|",
        ]
        for r in trained:
            m, ref = r["metrics"], r["reference"]
            match = f"{100 * m['class_match']:.2f}" if "class_match" in m else "–"
            paper = f"{ref['parzen_ll']} ± {ref['parzen_se']}" if "parzen_ll" in ref else "–"
            beyond = " (beyond the row budget)" if r["row"] in LONG else ""
            out.append(
                f"| {r['model']}{beyond} | {r['dataset']} | {r['config']['params']:,} | "
                f"{r['config']['epochs']} | {m['classifier_score']:.2f} "
                f"({m['real_classifier_score']:.2f}) | {m['frechet_distance']:.2f} "
                f"({m['frechet_floor']:.2f}) | {100 * m['min_class_share']:.1f} | {match} | "
                f"{m['parzen_ll']:.0f} ± {m['parzen_se']:.0f} ({m['parzen_sigma']:.3f}) | "
                f"{paper} | {_verdict(r)} | {r['wall_s'] / 60:.1f} min |"
            )
        for r in trained:
            m = r["metrics"]
            if m["classifier_score"] > m["real_classifier_score"] and m["frechet_distance"] > 10:
                out += ["", f"**{r['row']}**: a classifier score above the real images' "
                        f"({m['classifier_score']:.2f} vs {m['real_classifier_score']:.2f}) "
                        f"beside a Fréchet distance of {m['frechet_distance']:.1f} (floor "
                        f"{m['frechet_floor']:.2f}): the samples are more prototypical than real "
                        "ones, with little variety within a class (its sample grid: the same ten "
                        "noise vectors in every row)."]  # fmt: skip
        out += [
            "",
            "Classifier score by epoch (1,000 samples from fixed noise at each milestone):",
            "",
        ]
        for r in trained:
            curve = ", ".join(f"{e}: {v:.2f}" for e, v in r["metrics"]["score_by_epoch"])
            out.append(f"- {r['row']}: {curve}")
        real = [r for r in trained if r["dataset"] == "mnist"]
        if real:
            m = real[0]["metrics"]
            out += [
                "",
                "**Why the Parzen figure is weak.** Goodfellow et al.'s Parzen-window estimate (a",
                "Gaussian of width σ on each of 10,000 samples, σ chosen on held-out images) scores",
                "how close test images lie to some sample in pixel space, not a model's likelihood:",
                "in 784 dimensions it needs far more samples than 10,000, it rewards blur and",
                "memorised training images, and it can rank models against their visual quality",
                "(Theis, van den Oord & Bethge 2016, arXiv:1511.01844). Here the real training",
                f"images themselves, used as the window, score {m['real_parzen_ll']:.0f} ± "
                f"{m['real_parzen_se']:.0f} nats (σ {m['real_parzen_sigma']:.3f}) on MNIST. The",
                "papers' numbers are printed for comparison only.",
            ]
        out += ["", "Pictures (`results/adversarial/pictures/`):", ""]
        for name in (r["row"] for r in trained):
            link = lambda kind, name=name: f"results/adversarial/pictures/{name}_{kind}.png"
            out.append(f"- {name}: [samples]({link('samples')}), [interpolation]"
                       f"({link('interpolation')}), [both players' losses]({link('losses')}), "
                       f"[samples by epoch]({link('epochs')})")  # fmt: skip
    if "dcgan_bench" in by:
        m = by["dcgan_bench"]["metrics"]
        verdict = "met" if m["speedup"] >= 1 else f"missed by {1 - m['speedup']:.2f}"
        out += [
            "",
            "**DCGAN train step** (both players, 28×28, batch 128) against the same networks and",
            f"step in PyTorch eager on this CPU ({m['torch_threads']} threads), alternating "
            f"rounds: PyTorch ÷ ours = **{m['speedup']:.2f}×** (target ≥ 1.0: {verdict}; rounds "
            + ", ".join(f"{v:.2f}" for v in m["speedup_by_round"])
            + ").",
        ]
    return [*out, ""]


if __name__ == "__main__":
    raise SystemExit(common.entry(main))
