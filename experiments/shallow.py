"""Shallow, kernel and reservoir learners against their papers and their peer libraries.

    python -m experiments.shallow                     # every row (each within ~15 min here)
    python -m experiments.shallow --rows som,esn_mg   # some rows
    python -m experiments.shallow --quick             # CI: tiny data, results/quick/

Rows (`ROWS`): the perceptron and its average beside sklearn's `Perceptron`; the one-hidden-
layer net against LeCun et al. 1998's 784-800-10 row; the RBF network (width chosen on a
validation split) against LeCun et al.'s RBF row; the extreme learning machine (ridge λ
chosen on the validation split) beside a NumPy ELM of the same size; the Kohonen map beside
MiniSom (same map, data order, initial codebook and schedule); the dual kernel SVM beside
sklearn's `SVC` on 10,000 images, and the random-feature SVM on all 60,000 against LeCun et
al.'s Gaussian-SVM row; the echo state network beside ReservoirPy on Mackey–Glass (medians
over `RESERVOIR_SEEDS` reservoirs) and free-running at Jaeger & Haas 2004's 84 steps; the
liquid state machine on spoken digits beside an ESN and a logistic regression on the same
features. Validation split: the last 10,000 training images (the test split is never used
to choose anything). Peer figures carry a `peer_` prefix; times are fit times on this
machine, measured in the same run.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from zoo_jax import registry
from zoo_jax.data import datasets, series
from zoo_jax.learners import closed_form, kernel
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.steps import compile_steps

OUT = common.RESULTS_DIR / "shallow"
VALIDATION = 10_000
RESERVOIR_SEEDS = 10
ITERATIONS = 1000  # of the dual SVM solver
ROWS = (
    "perceptron_mnist", "perceptron_fashion-mnist", "feed_forward", "rbf", "elm", "som",
    "svm_dual", "svm_rff", "esn_mg", "esn_84", "lsm",
)  # fmt: skip
REFERENCES = {
    "feed_forward": {"source": "LeCun et al. 1998, Fig. 9: 2-layer NN, 800 HU, CE", "test_error": 0.016},
    "rbf": {"source": "LeCun et al. 1998, Fig. 9: RBF network (1,000 units + linear)", "test_error": 0.036},
    "svm_rff": {"source": "LeCun et al. 1998, Fig. 9: SVM, Gaussian kernel", "test_error": 0.014},
    "svm_dual": {"source": "sklearn SVC, same 10,000 images, C and gamma", "target_gap_points": 0.2},
    "esn_84": {"source": "Jaeger & Haas 2004: NRMSE at 84 steps, 1,000 units", "log10_nrmse84": -4.2},
    "som": {"source": "MiniSom, same map, data order, start and schedule", "target_speedup": 10},
    "esn_mg": {"source": "ReservoirPy, same series, split and hyperparameters", "target": "NRMSE no worse"},
}  # fmt: skip
QUIET = {"progress": False, "log": lambda _: None}


def _row(name, model, dataset, metrics, config, reference=None, notes="", wall_s=0.0):
    return common.row("shallow", name, model, dataset, metrics, config,
                      reference=reference or REFERENCES.get(name, {}), notes=notes, wall_s=wall_s)  # fmt: skip


def _mnist(dataset="mnist", quick=False, data_dir=None, shape=(784,)):
    n, m = (2000, 500) if quick else (None, None)
    x, y = datasets.load(dataset, "train", shape, data_dir, n)
    xt, yt = datasets.load(dataset, "test", shape, data_dir, m)
    return x, y, xt, yt


def _split(x, y, quick):
    v = 500 if quick else VALIDATION
    return (x[:-v], y[:-v]), (x[-v:], y[-v:])


def _fit(cfg, data):
    """`fit`, and its training time: the train steps with their compile, not the per-epoch
    evaluations (`summary["images_per_s"]` times the steps after the first)."""
    summary = fit(cfg, None, data=data, **QUIET)
    rate, steps = summary["images_per_s"], summary["steps"]
    after_first = (steps - 1) * summary["batch_size"] / rate if rate else 0.0
    return summary, summary["compile_s"] + after_first


# --- the rows -------------------------------------------------------------------------------------


def perceptron_row(dataset, quick, data_dir):
    from sklearn.linear_model import Perceptron

    data = _mnist(dataset, quick, data_dir)
    epochs = 2 if quick else 10
    runs = {name: _fit(RunConfig(name, dataset=dataset, epochs=epochs), data)
            for name in ("perceptron", "averaged_perceptron")}  # fmt: skip
    x, y, xt, yt = data
    t = time.perf_counter()
    peer = Perceptron(max_iter=epochs, tol=None, shuffle=True, random_state=0).fit(x, y)
    peer_s = time.perf_counter() - t
    plain, averaged = runs["perceptron"][0], runs["averaged_perceptron"][0]
    by_epoch = lambda s: [e["test_accuracy"] for e in s["history"]]
    metrics = {
        "test_accuracy": plain["test"]["accuracy"],
        "averaged_test_accuracy": averaged["test"]["accuracy"],
        "test_accuracy_by_epoch": by_epoch(plain),
        "averaged_test_accuracy_by_epoch": by_epoch(averaged),
        "fit_s": runs["perceptron"][1],
        "averaged_fit_s": runs["averaged_perceptron"][1],
        "peer_test_accuracy": float(peer.score(xt, yt)),
        "peer_fit_s": peer_s,
    }
    notes = (f"{epochs} epochs, batches of 100 visited in order by lax.scan; sklearn "
             "Perceptron(max_iter=epochs, tol=None): one-vs-rest binary perceptrons (ours: one "
             "multi-class rule). fit_s: the training steps with their compile, not the per-epoch "
             "test evaluations.")  # fmt: skip
    config = {"epochs": epochs, "batch_size": 100, "params": plain["params"]}
    return _row(f"perceptron_{dataset}", "perceptron", dataset, metrics, config, {
        "source": "sklearn Perceptron, same data and epochs"}, notes, sum(r[1] for r in runs.values()))  # fmt: skip


def feed_forward_row(quick, data_dir):
    data = _mnist(quick=quick, data_dir=data_dir)
    cfg = RunConfig("feed_forward", epochs=1 if quick else 20)
    summary, seconds = _fit(cfg, data)
    metrics = {"test_accuracy": summary["test"]["accuracy"],
               "test_accuracy_by_epoch": [e["test_accuracy"] for e in summary["history"]],
               "fit_s": seconds}  # fmt: skip
    config = {"epochs": cfg.epochs, "batch_size": 128, "optimizer": "adam",
              "params": summary["params"]}  # fmt: skip
    return _row("feed_forward", "feed_forward", "mnist", metrics, config,
                notes="784-800-10 ReLU, Adam 1e-3, no augmentation (LeCun's row: plain SGD)",
                wall_s=seconds)  # fmt: skip


def _fine_tune(model, params, data, epochs, learning_rate=1e-5, batch=128):
    """Backpropagation through the whole network (centres, width, readout) from `params`:
    the ridge solve's own objective, the squared error of the scores against one-hot
    targets (cross-entropy from the ridge solution lost 4 points in the first epoch and had
    not recovered them after ten), Adam; test accuracy after each epoch."""
    from zoo_jax.data import pipeline
    from zoo_jax.learners import GradientLearner, new_state

    x, y, xt, yt = data
    loss = lambda labels, scores: jnp.mean((scores - jax.nn.one_hot(labels, 10)) ** 2, -1)
    learner = GradientLearner(model=model, loss=loss, optimizer=optax.adam(learning_rate))
    steps = compile_steps(learner, "none")
    state = steps.put_state(new_state(learner.optimizer, {"params": params}, jax.random.PRNGKey(1)))
    by_epoch = []
    for epoch in range(epochs):
        order = pipeline.epoch_order(jax.random.PRNGKey(2), epoch, len(x))
        for b in pipeline.train_batches(x, y, batch, order):
            state, _ = steps.train(state, steps.put_batch(b))
        by_epoch.append(_accuracy(learner, steps, state, xt, yt))
    return by_epoch


def rbf_row(quick, data_dir):
    x, y, xt, yt = _mnist(quick=quick, data_dir=data_dir)
    (xa, ya), (xv, yv) = _split(x, y, quick)
    centres = 100 if quick else 1000
    grid = [(s, lam) for s in (0.7, 1.0, 1.4, 2.0) for lam in (1e-5, 1e-4, 1e-3)]
    chosen = {}
    for scale, lam in grid:
        overrides = {"centres": centres, "width_scale": scale, "ridge": lam}
        chosen[(scale, lam)] = _fit(RunConfig("rbf_network", model_overrides=overrides),
                                    (xa, ya, xv, yv))[0]["test"]["accuracy"]  # fmt: skip
    scale, lam = max(chosen, key=chosen.get)
    overrides = {"centres": centres, "width_scale": scale, "ridge": lam}
    summary, seconds = _fit(RunConfig("rbf_network", model_overrides=overrides), (x, y, xt, yt))
    sigma = float(np.exp(summary["state"].params["hidden"]["log_width"]))
    epochs = 1 if quick else 5
    t = time.perf_counter()
    tuned = _fine_tune(registry.get_model("rbf_network", **overrides),
                       summary["state"].params, (x, y, xt, yt), epochs)  # fmt: skip
    tune_s = time.perf_counter() - t
    metrics = {"test_accuracy": summary["test"]["accuracy"],
               "fine_tuned_test_accuracy": tuned[-1],
               "fine_tuned_test_accuracy_by_epoch": tuned,
               "fit_s": seconds, "fine_tune_s": tune_s,
               "validation_accuracy": {f"{s} {lm:g}": v for (s, lm), v in chosen.items()},
               "width_scale": scale, "ridge": lam, "sigma": sigma}  # fmt: skip
    spacing = sigma / scale
    d_max_rule = float(np.sqrt(784)) / np.sqrt(2 * centres)  # d_max/√(2K) if d_max were √784
    notes = (f"k-means 3 epochs (mini-batch, Forgy start), σ = width_scale × mean nearest-centre "
             f"spacing ({spacing:.2f}); width_scale and ridge λ from a grid on the validation "
             f"split ({scale}, {lam:g}); then {epochs} epochs of end-to-end fine-tuning (Adam "
             "1e-5, squared error of the scores: fine_tuned_test_accuracy; test_accuracy is "
             "the closed form's). For scale: the d_max/√(2K) rule with d_max ≤ "
             f"√784 gives σ ≤ {d_max_rule:.2f}.")  # fmt: skip
    config = {"centres": centres, "epochs": 4, "fine_tune_epochs": epochs, "batch_size": 500,
              "params": summary["params"]}  # fmt: skip
    return _row(
        "rbf", "rbf_network", "mnist", metrics, config, notes=notes, wall_s=seconds + tune_s
    )


def _ridge_stats(learner, steps, x, y, batch=2000):
    """An ELM's statistics over (x, y): the engine's update, batch by batch."""
    state = steps.put_state(learner.init(jax.random.PRNGKey(0), {"inputs": x[:batch]}))
    for i in range(0, len(x) - batch + 1, batch):
        state, _ = steps.train(state, steps.put_batch({"inputs": x[i : i + batch],
                                                       "labels": y[i : i + batch]}))  # fmt: skip
    return state


def _accuracy(learner, steps, state, x, y):
    sums = steps.evaluate(state, steps.put_batch(
        {"inputs": x, "labels": y, "weight": np.ones(len(x), np.float32)}))  # fmt: skip
    return float(sums["accuracy"] / sums["count"])


def elm_row(quick, data_dir):
    x, y, xt, yt = _mnist(quick=quick, data_dir=data_dir)
    (xa, ya), (xv, yv) = _split(x, y, quick)
    lambdas = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    sizes = (200, 500) if quick else (1000, 4000, 10000)
    results = {}
    for hidden in sizes:
        model = registry.get_model("extreme_learning_machine", units=hidden)
        learner = closed_form.RidgeLearner(model, 10)
        steps = compile_steps(learner, "none")  # the update compiles here, once per size
        state = _ridge_stats(learner, steps, xa, ya)
        validation = {}
        for lam in lambdas:
            learner_l = closed_form.RidgeLearner(model.clone(ridge=lam), 10)
            solved = jax.jit(learner_l.finalize)(state)  # not donated: the next λ reads it
            validation[lam] = _accuracy(learner_l, steps, solved, xv, yv)
        best = max(validation, key=validation.get)
        learner = closed_form.RidgeLearner(model.clone(ridge=best), 10)
        solve = jax.jit(learner.finalize)
        solve.lower(state).compile()  # compiled before the clock starts
        t = time.perf_counter()
        state = solve(_ridge_stats(learner, steps, x, y))
        jax.block_until_ready(state)
        seconds = time.perf_counter() - t
        ours = _accuracy(learner, steps, state, xt, yt)
        # the NumPy ELM: the same hidden layer (its constants), float32 features, float64 solve
        c = jax.tree.map(np.asarray, state.model_state["constants"]["hidden"])
        t = time.perf_counter()
        h = 1 / (1 + np.exp(-(x @ c["kernel"] + c["bias"])))
        h1 = np.concatenate([h, np.ones((len(h), 1), np.float32)], 1)
        a = (h1.T @ h1).astype(np.float64) / len(h1) + best * np.diag([1.0] * hidden + [0.0])
        w = np.linalg.solve(a, (h1.T @ np.eye(10, dtype=np.float32)[y]) / len(h1))
        peer_s = time.perf_counter() - t
        ht = 1 / (1 + np.exp(-(xt @ c["kernel"] + c["bias"])))
        peer = float(np.mean((np.concatenate([ht, np.ones((len(ht), 1))], 1) @ w).argmax(1) == yt))
        results[str(hidden)] = {"test_accuracy": ours, "fit_s": seconds, "ridge": best,
                                "validation_accuracy_by_ridge": {str(k): v for k, v in validation.items()},
                                "peer_test_accuracy": peer, "peer_fit_s": peer_s}  # fmt: skip
        print(f"elm {hidden}: {results[str(hidden)]}", flush=True)
    top = results[str(sizes[-1])]
    metrics = {**top, "by_hidden": results}
    notes = ("Sigmoid units, W ~ N(0, 10²/784), b ~ N(0, 1); λ per example from "
             f"{lambdas} on the validation split, then the fit on all training images. fit_s: "
             "one pass adding HᵀH, HᵀY on the device and the solve (compiled earlier); the peer: "
             "the same constants in NumPy (H, HᵀH in float32, the solve in float64).")  # fmt: skip
    return _row("elm", "extreme_learning_machine", "mnist", metrics,
                {"hidden": list(sizes), "batch_size": 2000}, {"source": "NumPy ELM, same size"},
                notes, sum(r["fit_s"] for r in results.values()))  # fmt: skip


def _save_som_pictures(codebook, labels, rows, cols, path):
    plt = common.pyplot()
    if plt is None:
        return

    w = codebook.reshape(rows, cols, -1)
    u = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            near = [w[i, j] for i, j in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                    if 0 <= i < rows and 0 <= j < cols]  # fmt: skip
            u[r, c] = np.mean([np.linalg.norm(w[r, c] - n) for n in near])
    fig, (a, b, cc) = plt.subplots(1, 3, figsize=(13, 4.3))
    im = a.imshow(u, cmap="bone_r")
    a.set_title("U-matrix (mean distance to grid neighbours)")
    fig.colorbar(im, ax=a, fraction=0.046)
    im = b.imshow(labels.reshape(rows, cols), cmap="tab10", vmin=-0.5, vmax=9.5)
    for r in range(rows):
        for c in range(cols):
            b.text(c, r, str(labels[r * cols + c]), ha="center", va="center", fontsize=8)
    b.set_title("class map (majority label per node)")
    tiles = w.reshape(rows, cols, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)
    cc.imshow(tiles, cmap="gray")
    cc.set_title("codebook")
    for ax in (a, b, cc):
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _node_labels(codebook, x, y, xt, yt) -> tuple[float, np.ndarray]:
    """Label each node by the majority of the training images it wins with the final map
    (MiniSom's `labels_map` procedure; a node that wins none is class 0), then classify the
    test images by their best matching unit: (test accuracy, the nodes' labels)."""
    from zoo_jax.models.shallow import squared_distances

    codebook = jnp.asarray(codebook, jnp.float32)
    win = lambda a: np.asarray(jnp.argmin(squared_distances(jnp.asarray(a), codebook), -1))
    w = win(x)
    labels = np.array([np.bincount(y[w == k], minlength=10).argmax() if np.any(w == k) else 0
                       for k in range(len(codebook))])  # fmt: skip
    return float(np.mean(labels[win(xt)] == yt)), labels


def som_row(quick, data_dir):
    import minisom

    x, y, xt, yt = _mnist(quick=quick, data_dir=data_dir)
    rows = cols = 10
    sigma, lr = 2.5, 0.5
    out = {}
    for variant, batch_map, epochs in (("online", False, 1), ("batch", True, 3 if quick else 10)):
        cfg = RunConfig("kohonen_network", epochs=epochs, learning_rate=lr,
                        model_overrides={"sigma": sigma, "batch_map": batch_map})  # fmt: skip
        summary, seconds = _fit(cfg, (x, y, xt, yt))
        out[variant] = (summary, seconds)
    online, online_s = out["online"]
    start_cfg = RunConfig("kohonen_network", learning_rate=lr, model_overrides={"sigma": sigma})
    # MiniSom: the same start (the learner's init on the first batch), order and schedule
    from zoo_jax.data import pipeline
    from zoo_jax.train.run import resolve

    learner = resolve(start_cfg).learner(len(x) // 100)
    start = learner.init(jax.random.split(jax.random.PRNGKey(0))[0],
                         {"inputs": x[:100], "labels": y[:100]})  # fmt: skip
    order = pipeline.epoch_order(jax.random.split(jax.random.PRNGKey(0))[1], 0, len(x))
    som = minisom.MiniSom(rows, cols, 784, sigma=sigma, learning_rate=lr, random_seed=0)
    som._weights = np.asarray(start.params["codebook"], np.float64).reshape(rows, cols, 784).copy()
    seen = order[: len(x) // 100 * 100]
    t = time.perf_counter()
    som.train(x[seen], len(seen))
    peer_s = time.perf_counter() - t
    peer_accuracy, _ = _node_labels(som.get_weights().reshape(rows * cols, -1), x, y, xt, yt)
    online_accuracy, labels = _node_labels(online["state"].params["codebook"], x, y, xt, yt)
    metrics = {
        "quantization_error": online["test"]["quantization_error"],
        "topographic_error": online["test"]["topographic_error"],
        "test_accuracy": online_accuracy,
        "running_label_test_accuracy": online["test"]["accuracy"],
        "fit_s": online_s,
        "peer_quantization_error": float(som.quantization_error(xt)),
        "peer_topographic_error": float(som.topographic_error(xt)),
        "peer_test_accuracy": peer_accuracy,
        "peer_fit_s": peer_s,
        "batch_quantization_error": out["batch"][0]["test"]["quantization_error"],
        "batch_topographic_error": out["batch"][0]["test"]["topographic_error"],
        "batch_test_accuracy": _node_labels(
            out["batch"][0]["state"].params["codebook"], x, y, xt, yt
        )[0],
        "batch_fit_s": out["batch"][1],
        "batch_epochs": out["batch"][0]["epochs"],
    }
    if not quick:
        codebook = np.asarray(online["state"].params["codebook"])
        _save_som_pictures(codebook, labels, rows, cols, OUT / "som_mnist.png")
    notes = (f"10×10 map, Gaussian neighbourhood σ0 {sigma}, η0 {lr}, asymptotic decay (MiniSom's "
             "default) over one pass of the training images in one shuffled order; test "
             "accuracy: nodes labelled by the majority of the training images each wins with "
             "the final map, for both (the learner's own labels, counted during training over "
             "its last twentieth, give running_label_test_accuracy). fit_s: the training steps with their compile. "
             "The batch map: epochs of Kohonen's batch update.")  # fmt: skip
    config = {"rows": rows, "cols": cols, "sigma": sigma, "learning_rate": lr, "epochs": 1,
              "batch_size": 100, "params": online["params"]}  # fmt: skip
    return _row("som", "kohonen_network", "mnist", metrics, config, notes=notes,
                wall_s=online_s + out["batch"][1] + peer_s)  # fmt: skip


def svm_dual_row(quick, data_dir):
    from sklearn.svm import SVC

    n = 2000 if quick else 10_000
    x, y, xt, yt = _mnist(quick=quick, data_dir=data_dir)
    x, y = x[:n], y[:n]
    gamma, c = float(1 / (784 * x.var())), 5.0  # gamma: sklearn's "scale"
    t = time.perf_counter()
    svm = kernel.fit_kernel_svm(x, y, 10, c=c, gamma=gamma, iterations=ITERATIONS)
    jax.block_until_ready(svm.coef)
    seconds = time.perf_counter() - t
    ours = float(np.mean(svm.predict(xt) == yt))
    t = time.perf_counter()
    peer = SVC(C=c, gamma=gamma).fit(x, y)
    peer_s = time.perf_counter() - t
    metrics = {"test_accuracy": ours, "fit_s": seconds, "duality_gap": svm.gap,
               "support_vectors": svm.support_vectors,
               "peer_test_accuracy": float(peer.score(xt, yt)), "peer_fit_s": peer_s,
               "peer_support_vectors": int(peer.n_support_.sum())}  # fmt: skip
    notes = (f"first {n:,} training images; C {c}, γ = 1/(784·Var x) = {gamma:.4f} (sklearn's "
             f"'scale'); ours: one-vs-rest, FISTA with adaptive restart, {ITERATIONS:,} "
             "iterations on the dual, the bias as a constant feature; SVC: LIBSVM SMO, one-vs-one, unregularised bias. The dual "
             "solve is bound by memory traffic on this CPU (the 400 MB kernel read once per "
             "iteration).")  # fmt: skip
    return _row("svm_dual", "support_vector_machine", "mnist", metrics,
                {"train_images": n, "C": c, "gamma": gamma, "iterations": ITERATIONS}, notes=notes,
                wall_s=seconds + peer_s)  # fmt: skip


def svm_rff_row(quick, data_dir):
    data = _mnist(quick=quick, data_dir=data_dir)
    features = 1024 if quick else 16384
    cfg = RunConfig("support_vector_machine", epochs=1 if quick else 15,
                    model_overrides={"features_dim": features, "gamma": 0.02})  # fmt: skip
    summary, seconds = _fit(cfg, data)
    metrics = {"test_accuracy": summary["test"]["accuracy"], "fit_s": seconds,
               "test_accuracy_by_epoch": [e["test_accuracy"] for e in summary["history"]]}  # fmt: skip
    notes = (f"{features:,} random Fourier features of exp(−0.02‖x − y‖²), Crammer–Singer "
             "hinge (categorical_hinge), Adam 1e-3, no weight penalty (the epoch count is the "
             "regulariser)")  # fmt: skip
    return _row("svm_rff", "support_vector_machine", "mnist", metrics,
                {"features_dim": features, "epochs": cfg.epochs, "batch_size": 128,
                 "params": summary["params"]}, notes=notes, wall_s=seconds)  # fmt: skip


def _mackey_glass_split(n_train, n_test, warmup):
    x = series.mackey_glass(n_train + n_test + 1)
    x = 2 * (x - x.min()) / (x.max() - x.min()) - 1  # ReservoirPy's tutorial: to [-1, 1]
    return x[:n_train], x[1 : n_train + 1], x[n_train:-1], x[n_train + 1 :], warmup


def nrmse(truth, predicted) -> float:
    """√mean((y − ŷ)²) / std(y) (Jaeger's normalisation)."""
    return float(np.sqrt(np.mean((truth - predicted) ** 2)) / np.std(truth))


def _our_esn(model, seed, u_train, y_train, u_test, warmup, ridge):
    """Fit a readout on the states of every step, one compiled function from the series to
    the readout (float64: call under `jax.enable_x64`)."""
    variables = model.init(jax.random.PRNGKey(seed), u_train[None, :2])

    @jax.jit
    def harvest_and_solve(variables, u, y):
        states = model.apply(variables, u[None], method="states")[0]
        h = closed_form.with_bias(states[warmup:])
        count = len(h)
        w = closed_form.ridge_solve(h.T @ h, h.T @ y[warmup:], count, ridge / count)
        return w, states[-1:]

    u_train, y_train = jnp.asarray(u_train), jnp.asarray(y_train)
    harvest_and_solve.lower(variables, u_train, y_train).compile()  # before the clock
    t = time.perf_counter()
    w, last = jax.block_until_ready(harvest_and_solve(variables, u_train, y_train))
    seconds = time.perf_counter() - t
    test_states = model.apply(variables, jnp.asarray(u_test[None]), last, method="states")[0]
    prediction = np.asarray(closed_form.with_bias(test_states) @ w)
    return prediction, seconds, variables, w, test_states


def esn_mg_row(quick, data_dir):
    from reservoirpy.nodes import Reservoir, Ridge

    u_train, y_train, u_test, y_test, warmup = _mackey_glass_split(
        500 if quick else 1500, 200 if quick else 500, 100)  # fmt: skip
    units, sr, leak, ridge = 100, 1.25, 0.3, 1e-5  # ReservoirPy's Mackey–Glass example
    model = registry.get_model("echo_state_network", units=units, spectral_radius=sr,
                               leak=leak, num_classes=1)  # fmt: skip
    seeds = 3 if quick else RESERVOIR_SEEDS
    ours, peers = [], []
    for seed in range(seeds):
        with jax.enable_x64(True):  # ReservoirPy computes in float64; λ = 1e-5 needs it
            prediction, seconds, *_ = _our_esn(model, seed, u_train, y_train, u_test, warmup,
                                               ridge)  # fmt: skip
        ours.append((nrmse(y_test, prediction), seconds))
        reservoir = Reservoir(units, sr=sr, lr=leak, seed=seed)
        readout = Ridge(ridge=ridge)
        esn = reservoir >> readout
        t = time.perf_counter()
        esn.fit(u_train, y_train, warmup=warmup)
        peer_s = time.perf_counter() - t
        peers.append((nrmse(y_test, esn.run(u_test)), peer_s))
    ours_e, peer_e = np.array([o[0] for o in ours]), np.array([p[0] for p in peers])
    metrics = {
        "test_nrmse": float(np.median(ours_e)),
        "test_nrmse_by_seed": ours_e.tolist(),
        "fit_s": float(np.median([o[1] for o in ours])),
        "peer_test_nrmse": float(np.median(peer_e)),
        "peer_test_nrmse_by_seed": peer_e.tolist(),
        "peer_fit_s": float(np.median([p[1] for p in peers])),
    }
    notes = (f"One-step prediction of Mackey–Glass (τ 17, the series of reservoirpy.datasets, "
             f"scaled to [-1, 1]): {len(u_train)} training steps ({warmup} discarded), "
             f"{len(u_test)} test steps; {units} units, spectral radius {sr}, leak {leak}, ridge "
             f"{ridge} (ReservoirPy's λ on the summed statistics: ours λ/n per example), input "
             "±1 with connectivity 0.1, no bias, both libraries, both in float64 (ours under "
             "jax.enable_x64: in float32 the solve with this λ loses 5–10× in NRMSE); medians "
             "over reservoir seeds "
             f"0–{seeds - 1} (each library draws its own reservoir from a seed). fit_s: "
             "harvesting the states and the solve (ours: one compiled function, compiled "
             "before the clock starts).")  # fmt: skip
    return _row("esn_mg", "echo_state_network", "mackey-glass", metrics,
                {"units": units, "spectral_radius": sr, "leak": leak, "ridge": ridge,
                 "seeds": seeds}, notes=notes,
                wall_s=sum(o[1] for o in ours) + sum(p[1] for p in peers))  # fmt: skip


def esn_84_row(quick, data_dir):
    with jax.enable_x64(True):
        return _esn_84_row(quick)


def _esn_84_row(quick):
    units, sr, leak, ridge, horizon = (200 if quick else 1000), 0.8, 1.0, 1e-8, 84
    u_train, y_train, u_test, y_test, warmup = _mackey_glass_split(
        1000 if quick else 3000, 600, 1000 if not quick else 200)  # fmt: skip
    model = registry.get_model("echo_state_network", units=units, spectral_radius=sr, leak=leak,
                               input_scaling=0.5, connectivity=0.05, input_connectivity=1.0,
                               bias_scaling=0.2, num_classes=1)  # fmt: skip
    generate = jax.jit(lambda v, x0, u0, k, b: model.apply(v, x0, u0, horizon, k, b,
                                                           method="generate"))  # fmt: skip
    seeds = 3 if quick else RESERVOIR_SEEDS
    by_seed = []
    starts = np.arange(0, len(u_test) - horizon - 1, 20)
    for seed in range(seeds):
        _, _, variables, w, test_states = _our_esn(model, seed, u_train, y_train, u_test, warmup,
                                                   ridge * (len(u_train) - warmup))  # fmt: skip
        # from each start: the teacher-forced state, then 84 free-running steps
        x0 = test_states[starts]
        u0 = jnp.asarray(u_test[starts + 1][:, None])
        ys = np.asarray(generate(variables, x0, u0, w[:-1], w[-1]))[:, :, 0]
        truth = np.stack([y_test[s + 1 : s + 1 + horizon, 0] for s in starts])
        by_seed.append(float(np.sqrt(np.mean((ys[:, -1] - truth[:, -1]) ** 2)) / np.std(y_test)))
    metrics = {"test_nrmse": float(np.median(by_seed)), "test_nrmse_by_seed": by_seed,
               "log10_nrmse84": float(np.log10(np.median(by_seed)))}  # fmt: skip
    notes = (f"{units} units, spectral radius {sr}, no leak, input scaling 0.5, bias 0.2, ridge "
             f"{ridge} per example; trained one step ahead on {len(u_train)} steps "
             f"({warmup} washout), then from {len(starts)} points of the test part: the "
             "teacher-forced state and 84 free-running steps; NRMSE of step 84 over the points "
             "(÷ std of the series), median over seeds. Jaeger & Haas trained on the "
             "tanh-squashed series with noise injection and tuned the reservoir; this row does "
             "neither.")  # fmt: skip
    return _row(
        "esn_84",
        "echo_state_network",
        "mackey-glass",
        metrics,
        {"units": units, "spectral_radius": sr, "seeds": seeds},
        notes=notes,
    )


def lsm_row(quick, data_dir):
    from sklearn.linear_model import LogisticRegression

    limits = {"train_limit": 300, "test_limit": 100} if quick else {}
    results = {}
    for name in ("liquid_state_machine", "echo_state_network"):
        cfg = RunConfig(name, data_dir=data_dir, **limits)
        results[name] = _fit(cfg, None)
    x, y = datasets.load("fsdd", "train", (1600,), data_dir, limits.get("train_limit"))
    xt, yt = datasets.load("fsdd", "test", (1600,), data_dir, limits.get("test_limit"))
    t = time.perf_counter()
    logistic = LogisticRegression(max_iter=2000).fit(x, y)
    logistic_s = time.perf_counter() - t
    lsm, lsm_s = results["liquid_state_machine"]
    esn, esn_s = results["echo_state_network"]
    metrics = {"test_accuracy": lsm["test"]["accuracy"], "fit_s": lsm_s,
               "esn_test_accuracy": esn["test"]["accuracy"], "esn_fit_s": esn_s,
               "logistic_test_accuracy": float(logistic.score(xt, yt)), "logistic_fit_s": logistic_s}  # fmt: skip
    notes = ("FSDD, recordings 0–4 of each speaker and digit as test (300), 5–49 train (2,700); "
             "features: 1 s of 16 log-mel bands every 10 ms. LSM: 135 LIF neurons (15×3×3), "
             "the bands as rate-coded spike trains (≤ 200 Hz) in 1 ms steps, ridge readout of "
             "the 30 ms low-pass spike trains averaged over 4 quarters of the second. ESN: 500 "
             "units, leak 0.3, readout of the last and mean states. Logistic regression: "
             "sklearn, on the 1,600 spectrogram values.")  # fmt: skip
    return _row("lsm", "liquid_state_machine", "fsdd", metrics,
                {"params": lsm["params"]}, {"source": "ESN and logistic regression, same features"},
                notes, lsm_s + esn_s + logistic_s)  # fmt: skip


RUNNERS = {
    "perceptron_mnist": lambda q, d: perceptron_row("mnist", q, d),
    "perceptron_fashion-mnist": lambda q, d: perceptron_row("fashion-mnist", q, d),
    "feed_forward": feed_forward_row,
    "rbf": rbf_row,
    "elm": elm_row,
    "som": som_row,
    "svm_dual": svm_dual_row,
    "svm_rff": svm_rff_row,
    "esn_mg": esn_mg_row,
    "esn_84": esn_84_row,
    "lsm": lsm_row,
}


def main(argv: list[str] | None = None) -> int:
    args = common.rows_parser(__doc__.splitlines()[0], ROWS).parse_args(argv)
    out_dir = common.RESULTS_DIR / "quick" / "shallow" if args.quick else OUT
    wanted = args.rows.split(",")
    plan = [(row, row) for row in ROWS if row in wanted]
    common.require_rows(plan if len(plan) == len(wanted) else [], "--rows", list(ROWS))
    common.run_claimed(plan, out_dir, lambda row: RUNNERS[row](args.quick, args.data_dir),
                       force=args.force, quick=args.quick)  # fmt: skip
    if not (args.no_report or args.quick):
        common.update_report()
    return 0


# --- RESULTS.md ---------------------------------------------------------------------------------


def _num(x, digits=2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _times(ours, peer) -> str:
    return "" if not ours or not peer else f"{peer / ours:.1f}×"


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    by = {r["row"]: r for r in rows}
    pct = common.pct
    out = [
        "Shallow, kernel and reservoir learners (`python -m experiments.shallow`), each beside",
        "its published figure or its peer library measured in the same run on the same machine",
        "(`peer ÷ ours` > 1: ours is faster). Choices (widths, λ) were made on the last 10,000",
        "training images, never on the test split.",
        "",
    ]
    classifiers = [(k, by[k]) for k in ("feed_forward", "rbf", "svm_rff") if k in by]
    if classifiers:
        out += [
            "| row | model | test error ours | published | Δ (points) | fit s | configuration |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for key, r in classifiers:
            ours_err, ref = 1 - r["metrics"]["test_accuracy"], r["reference"]
            out.append(
                f"| {key} | {r['model']} | **{100 * ours_err:.2f} %** | "
                f"{100 * ref['test_error']:.1f} % ({ref['source']}) | "
                f"{100 * (ours_err - ref['test_error']):+.2f} | {r['metrics']['fit_s']:.0f} | "
                f"{', '.join(f'{k} {v}' for k, v in r['config'].items() if k != 'params')} |"
            )
        out.append("")
    if "rbf" in by and by["rbf"]["metrics"].get("fine_tuned_test_accuracy") is not None:
        m = by["rbf"]["metrics"]
        out += [
            f"The RBF network fine-tuned end to end from its closed-form solution "
            f"({len(m['fine_tuned_test_accuracy_by_epoch'])} epochs of backpropagation into "
            f"centres, width and readout): test error "
            f"{100 * (1 - m['fine_tuned_test_accuracy']):.2f} % (closed form: "
            f"{100 * (1 - m['test_accuracy']):.2f} %).",
            "",
        ]
    peers = []
    for key in ("perceptron_mnist", "perceptron_fashion-mnist"):
        if key in by:
            m = by[key]["metrics"]
            swing = m["test_accuracy_by_epoch"]
            steady = m["averaged_test_accuracy_by_epoch"]
            peers.append(
                f"| {key} | perceptron: **{pct(m['test_accuracy'])}** (epochs: "
                f"{pct(min(swing))}–{pct(max(swing))}), averaged: "
                f"**{pct(m['averaged_test_accuracy'])}** ({pct(min(steady))}–{pct(max(steady))}) "
                f"| sklearn Perceptron: "
                f"{pct(m['peer_test_accuracy'])} | {m['fit_s']:.1f} / {m['peer_fit_s']:.1f} | "
                f"{_times(m['fit_s'], m['peer_fit_s'])} |"
            )
    if "elm" in by:
        for hidden, m in by["elm"]["metrics"]["by_hidden"].items():
            peers.append(
                f"| elm, {int(hidden):,} hidden (λ {m['ridge']:g}) | **{pct(m['test_accuracy'])}** "
                f"| NumPy ELM: {pct(m['peer_test_accuracy'])} | {m['fit_s']:.1f} / "
                f"{m['peer_fit_s']:.1f} | {_times(m['fit_s'], m['peer_fit_s'])} |"
            )
    if "svm_dual" in by:
        m = by["svm_dual"]["metrics"]
        gap = 100 * (m["test_accuracy"] - m["peer_test_accuracy"])
        verdict = (
            "within 0.2" if abs(gap) <= 0.2 else f"**{abs(gap):.2f} apart: target 0.2 missed**"
        )
        peers.append(
            f"| svm_dual, 10,000 images | **{pct(m['test_accuracy'])}** ({m['support_vectors']:,}"
            f" SVs) | sklearn SVC: {pct(m['peer_test_accuracy'])} "
            f"({m['peer_support_vectors']:,} SVs); Δ {gap:+.2f}, {verdict} | "
            f"{m['fit_s']:.1f} / {m['peer_fit_s']:.1f} | {_times(m['fit_s'], m['peer_fit_s'])} |"
        )
    if "lsm" in by:
        m = by["lsm"]["metrics"]
        peers.append(
            f"| lsm, spoken digits (FSDD) | **{pct(m['test_accuracy'])}** | ESN: "
            f"{pct(m['esn_test_accuracy'])}, logistic regression: "
            f"{pct(m['logistic_test_accuracy'])} | {m['fit_s']:.1f} / {m['esn_fit_s']:.1f} / "
            f"{m['logistic_fit_s']:.1f} | |"
        )
    if peers:
        out += [
            "| row | test accuracy, ours (%) | peer, same run (%) | fit s ours / peer | "
            "peer ÷ ours |",
            "|---|---|---|---:|---:|",
            *peers,
            "",
        ]
    if "som" in by:
        m = by["som"]["metrics"]
        speed = m["peer_fit_s"] / m["fit_s"]
        out += [
            "Kohonen map (10×10, MNIST, one online pass) beside MiniSom (same start, order, σ, η",
            "and decay):",
            "",
            "| | quantization error | topographic error | test accuracy (node labels) | fit s |",
            "|---|---:|---:|---:|---:|",
            f"| ours, online | {m['quantization_error']:.3f} | {pct(m['topographic_error'])} % | "
            f"{pct(m['test_accuracy'])} | {m['fit_s']:.2f} |",
            f"| MiniSom | {m['peer_quantization_error']:.3f} | "
            f"{pct(m['peer_topographic_error'])} % | {pct(m['peer_test_accuracy'])} | "
            f"{m['peer_fit_s']:.2f} |",
            f"| ours, batch map ({m['batch_epochs']} epochs) | {m['batch_quantization_error']:.3f} "
            f"| {pct(m['batch_topographic_error'])} % | {pct(m['batch_test_accuracy'])} | "
            f"{m['batch_fit_s']:.2f} |",
            "",
            f"Online, ours is {speed:.1f}× MiniSom's speed (target ≥ 10×: "
            + ("met" if speed >= 10 else f"**missed**, by {10 / speed:.1f}×")
            + f"); the batch map {m['peer_fit_s'] / m['batch_fit_s']:.1f}×. Test accuracy labels"
            " each node after training, as MiniSom's `labels_map` does; the learner's own labels,"
            " counted while the map still moved, give "
            f"{pct(m.get('running_label_test_accuracy'))} %. Pictures: "
            "`results/shallow/som_mnist.png` (U-matrix, class map, codebook).",
            "",
        ]
    if "esn_mg" in by or "esn_84" in by:
        out += ["| row | NRMSE ours (median) | peer / published | fit s ours / peer |",
                "|---|---:|---|---:|"]  # fmt: skip
        if "esn_mg" in by:
            m = by["esn_mg"]["metrics"]
            ratio = m["test_nrmse"] / m["peer_test_nrmse"]
            quartiles = np.percentile(m["peer_test_nrmse_by_seed"], [25, 75])
            inside = quartiles[0] <= m["test_nrmse"] <= quartiles[1]
            better = (
                "no worse: met"
                if ratio <= 1
                else f"**{ratio:.2f}× the peer's median: missed**"
                + (", inside its quartiles (the seed spread)" if inside else "")
            )
            q = lambda v: "–".join(f"{e:.1e}" for e in np.percentile(v, [25, 75]))
            out.append(
                f"| esn_mg: Mackey–Glass, one step, 100 units | **{m['test_nrmse']:.2e}** "
                f"(quartiles {q(m['test_nrmse_by_seed'])}) | ReservoirPy "
                f"{m['peer_test_nrmse']:.2e} (quartiles {q(m['peer_test_nrmse_by_seed'])}; "
                f"{better}) | {m['fit_s']:.3f} / {m['peer_fit_s']:.3f} |"
            )
        if "esn_84" in by:
            m = by["esn_84"]["metrics"]
            short = m["log10_nrmse84"] + 4.2
            verdict = "met" if short <= 0 else f"**missed by {short:.1f} decades**"
            out.append(
                f"| esn_84: free-running, step 84, 1,000 units | **{m['test_nrmse']:.2e}** "
                f"(10^{m['log10_nrmse84']:.1f}) | Jaeger & Haas 2004: 10^-4.2 ({verdict}) | |"
            )
        out.append("")
    notes = [f"- `{r['row']}`: {r['notes']}" for r in sorted(rows, key=lambda r: r["row"])]
    return [*out, *notes, ""]


if __name__ == "__main__":
    sys.exit(common.entry(main))
