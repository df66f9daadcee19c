"""The energy-based and probabilistic models against independent computations: the Markov
chain's smoothing against a plain-Python count of Chen & Goodman's equations, the storage
rules and the contrastive-divergence gradient against NumPy, the energies against
brute-force enumeration of tiny models, and AIS against the exact partition function."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo_jax import learners
from zoo_jax.data.datasets import encoder_patterns
from zoo_jax.errors import InputError, ZooError
from zoo_jax.models import energy, markov
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.steps import compile_steps

QUIET = {"progress": False, "log": lambda _: None}


def _run(learner, batches, parallel="none", devices=None, finalize=False):
    steps = compile_steps(learner, parallel, devices)
    state = steps.put_state(jax.device_get(learner.init(jax.random.PRNGKey(0), batches[0])))
    for batch in batches:
        state, _ = steps.train(state, steps.put_batch(batch))
    if finalize:
        state = steps.finalize(state)
    return steps.get_state(state)


# --- the Markov chain ---------------------------------------------------------------------------


def _ngrams(windows, m):
    counts = Counter()
    for w in windows:
        for i in range(len(w) - m + 1):
            counts[tuple(w[i : i + m])] += 1
    return counts


def _kneser_ney(windows, k, vocab):
    """P(w | context) by interpolated Kneser-Ney, from dictionaries of counts."""
    raw = {m: _ngrams(windows, m) for m in range(1, k + 2)}
    levels = []
    for j in range(k + 1):
        # the top order counts; the lower ones count distinct predecessors
        counts = dict(raw[k + 1]) if j == k else Counter(g[1:] for g in raw[j + 2])
        n1 = sum(v == 1 for v in counts.values())
        n2 = sum(v == 2 for v in counts.values())
        total, rows = defaultdict(int), defaultdict(int)
        for g, v in counts.items():
            total[g[:-1]] += v
            rows[g[:-1]] += 1
        levels.append((counts, total, rows, n1 / (n1 + 2 * n2) if n1 else 0.5))

    def prob(context, w, known):
        p = 1.0 / vocab
        for j, (counts, total, rows, d) in enumerate(levels):
            h = tuple(context[len(context) - j :]) if j else ()
            if j <= known and total.get(h, 0):
                p = max(counts.get((*h, w), 0) - d, 0) / total[h] + d * rows[h] / total[h] * p
        return p

    return prob


def _add_delta(windows, k, vocab, delta):
    raw = {m: _ngrams(windows, m) for m in range(1, k + 2)}

    def prob(context, w, known):
        j = min(known, k)
        h = tuple(context[len(context) - j :]) if j else ()
        total = sum(v for g, v in raw[j + 1].items() if g[:-1] == h)
        return (raw[j + 1].get((*h, w), 0) + delta) / (total + delta * vocab)

    return prob


def _text_windows(vocab=5, length=12, n=400, seed=0):
    rng = np.random.default_rng(seed)
    text = rng.choice(vocab, size=n, p=[0.4, 0.3, 0.15, 0.1, 0.05]).astype(np.int32)
    return text[: len(text) // (length + 1) * (length + 1)].reshape(-1, length + 1)


@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_delta"])
def test_the_markov_chain_smooths_by_the_equations(smoothing):
    windows = _text_windows()
    k, vocab = 3, 5
    model = markov.MarkovChain(order=k, vocab_size=vocab, capacity=512, smoothing=smoothing,
                               delta=0.5)  # fmt: skip
    batches = [{"inputs": w[:, :-1], "labels": w[:, 1:]} for w in (windows[:16], windows[16:])]
    state = _run(learners.MarkovCountLearner(model), batches)
    reference = (_kneser_ney(list(windows), k, vocab) if smoothing == "kneser_ney"
                 else _add_delta(list(windows), k, vocab, 0.5))  # fmt: skip
    ours = np.exp(np.asarray(jax.jit(model.apply)({"params": state.params}, windows[:3, :-1])))
    expected = np.array([[[reference(list(w[: t + 1]), x, min(t + 1, k)) for x in range(vocab)]
                          for t in range(windows.shape[1] - 1)] for w in windows[:3]])  # fmt: skip
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(ours.sum(-1), 1.0, rtol=1e-5)


def test_the_markov_chain_counts_alike_on_one_and_four_devices():
    windows = _text_windows(n=800)[:56]
    model = markov.MarkovChain(order=2, vocab_size=5, capacity=256)
    learner = learners.MarkovCountLearner(model)
    batches = [{"inputs": w[:, :-1], "labels": w[:, 1:]} for w in (windows[:28], windows[28:])]
    one, four = _run(learner, batches), _run(learner, batches, "pmap", 4)
    chex.assert_trees_all_equal(one.params, four.params)
    counts = _ngrams(list(windows), 3)
    table = one.params
    used = table["counts_3_hi"] != markov.EMPTY
    assert int(used.sum()) == len(counts) and int(table["counts_3_count"].sum()) == sum(
        counts.values()
    )


def test_a_full_table_fails_the_step_instead_of_dropping_counts():
    windows = _text_windows()
    learner = learners.MarkovCountLearner(markov.MarkovChain(order=2, vocab_size=5, capacity=8))
    state = learner.init(jax.random.PRNGKey(0), {"inputs": windows[:, :-1]})
    _, metrics = jax.jit(learner.update)(
        state, {"inputs": windows[:, :-1], "labels": windows[:, 1:]}, jax.random.PRNGKey(0)
    )
    assert not metrics["finite"]


def test_the_markov_chain_trains_on_the_chars_task_and_generates():
    summary = fit(RunConfig("markov_chain", train_limit=256, test_limit=32,
                            model_overrides={"order": 2, "capacity": 2**14}), None, **QUIET)  # fmt: skip
    bpc = summary["test"]["loss"] / np.log(2)
    assert 2.0 < bpc < 4.5 and summary["test"]["accuracy"] > 0.2  # a bigram-of-pairs model
    model = markov.MarkovChain(order=2, capacity=2**14)
    prompt = jnp.array([40, 73, 69], jnp.int32)
    out = jax.jit(lambda p: model.apply(p, prompt, 50, jax.random.PRNGKey(1), method="generate"))(
        {"params": summary["state"].params}
    )
    assert out.shape == (50,) and int(out.min()) >= 0 and int(out.max()) < 97
    with pytest.raises(ZooError, match="temperature must be > 0"):
        model.apply({"params": summary["state"].params}, prompt, 5, jax.random.PRNGKey(1), 0.0,
                    method="generate")  # fmt: skip
    with pytest.raises(InputError, match="at least 2 characters"):
        model.apply({"params": summary["state"].params}, prompt[:1], 5, jax.random.PRNGKey(1),
                    method="generate")  # fmt: skip


@pytest.mark.parametrize(
    "overrides, message",
    [({"order": 0}, r"order must be"), ({"order": 200}, "windows longer"),
     ({"smoothing": "witten_bell"}, "smoothing must be one of")],
)  # fmt: skip
def test_bad_markov_orders_are_refused(overrides, message):
    with pytest.raises(ZooError, match=message):
        fit(RunConfig("markov_chain", train_limit=64, test_limit=8, model_overrides=overrides),
            None, **QUIET)  # fmt: skip


# --- Hopfield networks and the BAM -----------------------------------------------------------------


def _bipolar(p, n, seed=0):
    return np.where(np.random.default_rng(seed).random((p, n)) < 0.5, -1.0, 1.0).astype(np.float32)


def _storkey_numpy(patterns):
    n = patterns.shape[1]
    w = np.zeros((n, n))
    for xi in patterns.astype(np.float64):
        h = np.array([[sum(w[i, k] * xi[k] for k in range(n) if k not in (i, j))
                       for j in range(n)] for i in range(n)])  # fmt: skip
        new = w.copy()
        for i, j in itertools.product(range(n), range(n)):
            new[i, j] += (xi[i] * xi[j] - xi[i] * h[j, i] - h[i, j] * xi[j]) / n
        w = new
        np.fill_diagonal(w, 0.0)
    return w


def test_the_storage_rules_are_hebbs_and_storkeys():
    patterns = _bipolar(4, 9)
    hebb = patterns.T.astype(np.float64) @ patterns / 9
    np.fill_diagonal(hebb, 0.0)
    np.testing.assert_allclose(energy.hebb_weights(patterns), hebb, atol=1e-6)
    np.testing.assert_allclose(energy.storkey_weights(patterns), _storkey_numpy(patterns),
                               atol=1e-5)  # fmt: skip
    with pytest.raises(InputError, match="bipolar"):
        energy.hebb_weights(patterns * 0.5)


def _all_states(n):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)), np.float32)


def test_asynchronous_recall_never_raises_the_energy_and_stops_in_a_brute_force_minimum():
    n = 10
    w = energy.storkey_weights(_bipolar(3, n, seed=2))
    states = _all_states(n)
    e = np.asarray(energy.hopfield_energy(w, states))
    recall_unit = jax.jit(lambda s: energy.hopfield_recall(w, s, 1))
    s = jnp.asarray(_bipolar(64, n, seed=3))
    before = energy.hopfield_energy(w, s)
    for _ in range(3):  # sweep by sweep, and unit by unit inside the first
        s = recall_unit(s)
        after = energy.hopfield_energy(w, s)
        assert bool(jnp.all(after <= before + 1e-5))
        before = after
    one_flip = lambda x: np.stack([x * np.where(np.arange(n) == i, -1, 1) for i in range(n)])
    index = {tuple(x): i for i, x in enumerate(states)}
    for x in np.asarray(s):  # where recall stopped no single flip lowers the energy
        assert min(e[index[tuple(f)]] for f in one_flip(x)) >= e[index[tuple(x)]] - 1e-5
    # unit-level: energy after each single update within a sweep
    x = jnp.asarray(_bipolar(16, n, seed=4))
    trace = [energy.hopfield_energy(w, x)]
    for k in range(n):
        field = x @ w[:, k]
        x = x.at[:, k].set(energy.sign_keep(field, x[:, k]))
        trace.append(energy.hopfield_energy(w, x))
    assert bool(jnp.all(jnp.diff(jnp.stack(trace), axis=0) <= 1e-5))


def test_synchronous_recall_never_raises_brucks_energy():
    n = 12
    w = energy.hebb_weights(_bipolar(5, n, seed=5))
    s_prev = jnp.asarray(_bipolar(32, n, seed=6))
    s = energy.hopfield_recall(w, s_prev, 1, synchronous=True)
    lyapunov = lambda a, b: -jnp.sum((a @ w) * b, -1)
    before = lyapunov(s, s_prev)
    for _ in range(6):
        s_prev, s = s, energy.hopfield_recall(w, s, 1, synchronous=True)
        after = lyapunov(s, s_prev)
        assert bool(jnp.all(after <= before + 1e-5))
        before = after


def test_a_hopfield_network_recalls_few_random_patterns_from_noise():
    n, p = 200, 10  # load 0.05, well under 0.138
    patterns = _bipolar(p, n, seed=7)
    for rule in ("hebb", "storkey"):
        w = energy.STORAGE_RULES[rule](patterns)
        flips = np.where(np.random.default_rng(8).random((p, n)) < 0.1, -1.0, 1.0)
        out = energy.hopfield_recall(w, jnp.asarray(patterns * flips), 5)
        assert float(jnp.mean(out != patterns)) < 0.01


def test_the_modern_hopfield_update_is_softmax_attention_and_descends_its_energy():
    memories = jnp.asarray(_bipolar(6, 16, seed=9))
    xi = jnp.asarray(np.random.default_rng(10).normal(size=(5, 16)).astype(np.float32))
    beta = 0.3
    scores = np.asarray(xi, np.float64) @ np.asarray(memories, np.float64).T * beta
    soft = np.exp(scores - scores.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    new = energy.modern_hopfield_update(memories, xi, beta)
    np.testing.assert_allclose(new, soft @ np.asarray(memories), rtol=1e-5, atol=1e-5)
    assert bool(jnp.all(energy.modern_hopfield_energy(memories, new, beta)
                        <= energy.modern_hopfield_energy(memories, xi, beta) + 1e-5))  # fmt: skip


def test_the_bam_recalls_orthogonal_pairs_both_ways_and_descends_its_energy():
    codes = learners.energy.hadamard_codes(4, 8)
    x = jnp.asarray(_bipolar(4, 64, seed=11))
    w = energy.bam_weights(x, codes)
    np.testing.assert_allclose(w, np.asarray(x).T @ np.asarray(codes))
    model = energy.BidirectionalAssociativeMemory(64, 8, steps=3)
    variables = {"params": {"weights": w}}
    _, y = model.apply(variables, x)
    np.testing.assert_array_equal(y, codes)
    back, _ = model.apply(variables, codes, method="backward")
    assert float(jnp.mean(back != x)) < 0.05
    xs, ys = jnp.asarray(_bipolar(16, 64, seed=12)), jnp.asarray(_bipolar(16, 8, seed=13))
    before = energy.bam_energy(w, xs, ys)
    for _ in range(3):
        xs, ys = energy.bam_recall(w, xs, ys, 1)
        after = energy.bam_energy(w, xs, ys)
        assert bool(jnp.all(after <= before + 1e-4))
        before = after


@pytest.mark.parametrize("name", ["hopfield_network", "bam"])
def test_an_associative_memory_trains_through_fit_and_refuses_intensities(name, mnist_flat):
    summary = fit(RunConfig(name, batch_size=128), None, data=mnist_flat, **QUIET)
    assert summary["state"].params["weights"].shape[0] == 784
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0 and summary["test"]["energy"] < 0
    x_train, y_train, x_test, y_test = mnist_flat
    with pytest.raises(InputError, match=r"inputs or intensities in \[0, 1\]"):
        fit(RunConfig(name, batch_size=128), None, data=(x_train * 2, y_train, x_test, y_test),
            **QUIET)  # fmt: skip


# --- the Boltzmann machine --------------------------------------------------------------------


def test_gibbs_sampling_of_a_boltzmann_machine_matches_its_brute_force_distribution():
    rng = np.random.default_rng(14)
    n = 5
    w = rng.normal(0, 1, (n, n)).astype(np.float32)
    w = np.triu(w, 1) + np.triu(w, 1).T
    b = rng.normal(0, 0.5, n).astype(np.float32)
    states = np.array(list(itertools.product([0.0, 1.0], repeat=n)), np.float32)
    e = np.asarray(energy.boltzmann_energy(jnp.asarray(w), jnp.asarray(b), states))
    exact = np.exp(-e) / np.exp(-e).sum()
    chains = 4000
    s = jnp.zeros((chains, n))
    sweep = jax.jit(lambda s, key: energy.boltzmann_sweeps(
        jnp.asarray(w), jnp.asarray(b), s, jnp.ones_like(s), jnp.ones(20), key))  # fmt: skip
    s = sweep(s, jax.random.PRNGKey(0))
    index = np.asarray(s) @ (2 ** np.arange(n)[::-1])
    sampled = np.bincount(index.astype(int), minlength=2**n) / chains
    assert np.abs(sampled - exact).sum() < 0.08  # total variation of 4,000 samples


def test_the_boltzmann_machine_learns_the_4_2_4_encoder():
    learner = learners.BoltzmannLearner(energy.BoltzmannMachine(4, 2))
    first, _ = learners.energy.encoder_trials(learner, seeds=4, cycles=400)
    assert (first > 0).sum() >= 3  # the paper: 4-2-4 solved in 250 of 250 runs
    summary = fit(RunConfig("boltzmann_machine", epochs=3), None, **QUIET)
    w = np.asarray(summary["state"].params["weights"])
    np.testing.assert_array_equal(w[:4, 4:8], 0.0)  # no V1-V2 weight was ever changed
    np.testing.assert_allclose(w, w.T)
    assert np.abs(w[:4, 8:]).sum() > 0
    mask = np.asarray(energy.encoder_connections(4, 2))
    assert not mask[:4, 4:8].any() and mask[:4, 8:].all() and not np.diag(mask).any()


def test_the_boltzmann_rule_steps_by_the_co_occurrence_difference():
    model = energy.BoltzmannMachine(2, 1, statistics_sweeps=3)
    learner = learners.BoltzmannLearner(model, noise_on=0.0, noise_off=0.0)
    x, y = encoder_patterns((4,))
    batch = {"inputs": x, "labels": y}
    state = learner.init(jax.random.PRNGKey(0), batch)
    new, _ = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(3))
    # with the weights at zero every free unit is on with probability 1/2: recompute the
    # clamped and free statistics from the same keys as the learner, then the step
    key = jax.random.fold_in(jax.random.PRNGKey(3), 0)
    _, plus_key, minus_key = jax.random.split(key, 3)
    xs = jnp.repeat(jnp.asarray(x), learner.repeats, 0)
    s = jnp.zeros((len(xs), 5)).at[:, :4].set(xs)
    free = jnp.ones_like(s).at[:, :4].set(0.0)
    plus = learner._co_occurrences(state.params, s, free, plus_key)
    minus = learner._co_occurrences(state.params, jnp.zeros_like(s), jnp.ones_like(s), minus_key)
    mask = np.asarray(energy.encoder_connections(2, 1))
    expected = 20.0 * (np.asarray(plus[0]) - np.asarray(minus[0])) * mask
    np.testing.assert_allclose(new.params["weights"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new.params["bias"], 20.0 * (plus[1] - minus[1]), atol=1e-6)
    pairs = np.asarray(plus[0])
    np.testing.assert_allclose(pairs[:4, :4], np.asarray(xs).T @ np.asarray(xs) / len(xs))


def test_the_boltzmann_machine_refuses_non_binary_patterns():
    x, y = encoder_patterns((8,))
    with pytest.raises(InputError, match="binary"):
        fit(RunConfig("boltzmann_machine", epochs=1), None,
            data=(x * 0.9, y, x, y), **QUIET)  # fmt: skip


# --- the RBM, AIS and the DBN ---------------------------------------------------------------------


def _rbm_params(v=8, h=4, seed=15, scale=1.0):
    rng = np.random.default_rng(seed)
    f = lambda *shape: jnp.asarray(rng.normal(0, scale, shape), jnp.float32)
    return {"kernel": f(v, h), "visible_bias": f(v), "hidden_bias": f(h)}


def test_the_rbm_free_energy_and_partition_function_match_brute_force():
    params = _rbm_params()
    vs = np.array(list(itertools.product([0.0, 1.0], repeat=8)), np.float32)
    hs = np.array(list(itertools.product([0.0, 1.0], repeat=4)), np.float32)
    e = np.array([[float(energy.rbm_energy(params, v, h)) for h in hs] for v in vs])
    free = -np.log(np.exp(-e).sum(1))
    np.testing.assert_allclose(energy.rbm_free_energy(params, vs), free, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(energy.exact_log_partition(params), np.log(np.exp(-e).sum()),
                               rtol=1e-6)  # fmt: skip
    gauss = _rbm_params(3, 2, seed=16)
    v = np.array([[0.3, -1.2, 2.0]], np.float32)
    e_g = [float(energy.rbm_energy(gauss, v, h[None], gaussian=True)[0])
           for h in np.array(list(itertools.product([0.0, 1.0], repeat=2)), np.float32)]  # fmt: skip
    np.testing.assert_allclose(energy.rbm_free_energy(gauss, v, gaussian=True)[0],
                               -np.log(np.exp(-np.array(e_g)).sum()), rtol=1e-5)  # fmt: skip


def test_annealed_importance_sampling_estimates_the_exact_partition_function():
    params = _rbm_params(12, 6, seed=17)
    base = energy.base_rate_bias(jnp.asarray(np.random.default_rng(18).random((50, 12)) < 0.3,
                                             jnp.float32))  # fmt: skip
    estimate, log_w = jax.jit(lambda key: energy.ais_log_partition(
        params, base, key, runs=100, betas=jnp.linspace(0.0, 1.0, 1000)))(jax.random.PRNGKey(0))  # fmt: skip
    assert abs(float(estimate) - float(energy.exact_log_partition(params))) < 0.05
    assert log_w.shape == (100,)
    betas = energy.ais_betas()
    assert len(betas) == 14_501 and float(betas[500]) == 0.5 and float(betas[-1]) == 1.0


def test_the_contrastive_divergence_gradient_is_the_difference_of_statistics():
    params = _rbm_params(6, 3, seed=19, scale=0.5)
    rng = np.random.default_rng(20)
    v0 = (rng.random((10, 6)) < 0.5).astype(np.float32)
    vk = (rng.random((10, 6)) < 0.5).astype(np.float32)
    hk = rng.random((10, 3)).astype(np.float32)
    sig = lambda a: 1 / (1 + np.exp(-a))
    p = {k: np.asarray(a, np.float64) for k, a in params.items()}
    h0 = sig(v0 @ p["kernel"] + p["hidden_bias"])
    grads = learners.energy.cd_gradient(params, jnp.asarray(v0), jnp.asarray(vk), jnp.asarray(hk))
    np.testing.assert_allclose(grads["kernel"], -(v0.T @ h0 - vk.T @ hk) / 10, atol=1e-6)
    np.testing.assert_allclose(grads["visible_bias"], -(v0 - vk).mean(0), atol=1e-6)
    np.testing.assert_allclose(grads["hidden_bias"], -(h0 - hk).mean(0), atol=1e-6)


def test_a_cd1_step_is_sgd_on_that_gradient_and_pcd_keeps_its_chains():
    model = energy.RestrictedBoltzmannMachine(784, 16)
    import optax

    learner = learners.ContrastiveDivergenceLearner(model, optax.sgd(0.1))
    x = (np.random.default_rng(21).random((20, 784)) < 0.3).astype(np.float32)
    batch = {"inputs": x, "labels": np.zeros(20, np.int32)}
    state = learner.init(jax.random.PRNGKey(0), batch)
    new, _ = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(1))
    vk, hk, _ = energy.rbm_gibbs(state.params, jnp.asarray(x), jax.random.PRNGKey(1), 1)
    grads = learners.energy.cd_gradient(state.params, jnp.asarray(x), vk, hk)
    for name in grads:
        np.testing.assert_allclose(new.params[name], state.params[name] - 0.1 * grads[name],
                                   atol=1e-6)  # fmt: skip
    pcd = learners.ContrastiveDivergenceLearner(model, optax.sgd(0.1), k=2, persistent=True)
    state = pcd.init(jax.random.PRNGKey(0), batch)
    new, _ = jax.jit(pcd.update)(state, batch, jax.random.PRNGKey(1))
    chains, _, _ = energy.rbm_gibbs(state.params, jnp.asarray(x), jax.random.PRNGKey(1), 2)
    np.testing.assert_array_equal(new.model_state["chains"], chains)


def test_an_rbm_resumes_bitwise_and_trains_alike_under_pmap(tmp_path, mnist_flat):
    cfg = lambda epochs, **kw: RunConfig("rbm", epochs=epochs, batch_size=64, model_overrides={
        "hidden": 16, "persistent": True, "cd_steps": 2}, **kw)  # fmt: skip
    straight = fit(cfg(2), tmp_path / "a", data=mnist_flat, **QUIET)
    fit(cfg(1), tmp_path / "b", data=mnist_flat, **QUIET)
    resumed = fit(cfg(2), tmp_path / "b", data=mnist_flat, resume=True, **QUIET)
    chex.assert_trees_all_equal(resumed["state"], straight["state"])
    assert straight["test"]["free_energy"] < 0
    four = fit(cfg(1, parallel="pmap", devices=4), None, data=mnist_flat, **QUIET)
    assert four["state"].model_state["chains"].shape == (64, 784)
    with pytest.raises(ZooError, match="cd_steps must be a positive"):
        fit(RunConfig("rbm", model_overrides={"cd_steps": 0}), None, data=mnist_flat, **QUIET)


def test_the_dbn_scores_labels_by_the_top_rbms_free_energy_and_trains(mnist_flat):
    cfg = RunConfig("deep_belief_network", epochs=8, batch_size=64, learning_rate=1e-2,
                    model_overrides={"layers": (16, 16, 32)})  # fmt: skip
    summary = fit(cfg, None, data=mnist_flat, **QUIET)
    losses = [e["test_loss"] for e in summary["history"]]
    assert losses[-1] < losses[5] - 0.1  # the last quarter fine-tunes: the loss falls
    assert int(summary["state"].opt_state["finetune"][0].count) == 16  # 2 epochs of 8 steps
    params = summary["state"].params
    model = energy.DeepBeliefNetwork(layers=(16, 16, 32))
    x = energy.binary_states(mnist_flat[2][:4], "dbn")
    h = x
    for name in ("rbm0", "rbm1"):
        h = jax.nn.sigmoid(h @ params[name]["kernel"] + params[name]["hidden_bias"])
    scores = model.apply({"params": params}, x, method="free_energy_scores")
    for y in range(10):
        joined = jnp.concatenate([h, jnp.broadcast_to(jax.nn.one_hot(y, 10), (4, 10))], -1)
        np.testing.assert_allclose(scores[:, y], -energy.rbm_free_energy(params["top"], joined),
                                   rtol=1e-4, atol=1e-3)  # fmt: skip
    generative = summary["state"].model_state["generative"]
    assert not np.array_equal(generative["top"]["kernel"], params["top"]["kernel"])  # untied
    images = model.apply({"params": generative}, jnp.arange(10), jax.random.PRNGKey(0), 20,
                         method="generate")  # fmt: skip
    assert images.shape == (10, 784) and float(images.min()) >= 0 and float(images.max()) <= 1


@pytest.mark.parametrize(
    "name, options",
    [("markov_chain", {"train_limit": 64, "test_limit": 8, "batch_size": 16}),
     ("boltzmann_machine", {}),
     ("hopfield_network", {"train_limit": 256, "test_limit": 64, "batch_size": 128})],
)  # fmt: skip
def test_the_counting_and_sampling_learners_resume_bitwise(tmp_path, name, options):
    from zoo_jax import registry

    overrides = registry.get_card(name).test_overrides
    cfg = lambda epochs: RunConfig(name, epochs=epochs, model_overrides=overrides, **options)
    straight = fit(cfg(2), tmp_path / "a", **QUIET)
    fit(cfg(1), tmp_path / "b", **QUIET)
    resumed = fit(cfg(2), tmp_path / "b", resume=True, **QUIET)
    chex.assert_trees_all_equal(resumed["state"], straight["state"])
    assert resumed["test"] == straight["test"]


def test_a_gaussian_bernoulli_rbm_learns_standardised_data(mnist_flat):
    x_train, y_train, x_test, y_test = mnist_flat
    mean, std = x_train.mean(0), x_train.std(0) + 0.1
    scale = lambda x: ((x - mean) / std).astype(np.float32)
    cfg = RunConfig("rbm", epochs=3, batch_size=64, learning_rate=0.01,
                    model_overrides={"hidden": 32, "visible_type": "gaussian"})  # fmt: skip
    summary = fit(cfg, None, data=(scale(x_train), y_train, scale(x_test), y_test), **QUIET)
    errors = [e["test_reconstruction_error"] for e in summary["history"]]
    assert errors[-1] < errors[0] and np.isfinite(errors).all()
    assert errors[-1] < np.sum(scale(x_test) ** 2, -1).mean()  # better than predicting 0


@pytest.mark.parametrize(
    "name, options",
    [("markov_chain", {"train_limit": 64, "test_limit": 8, "batch_size": 16}),
     ("hopfield_network", {"train_limit": 256, "test_limit": 64, "batch_size": 128}),
     ("bam", {"train_limit": 256, "test_limit": 64, "batch_size": 128}),
     ("boltzmann_machine", {"epochs": 2}),
     ("deep_belief_network", {"train_limit": 256, "test_limit": 64, "batch_size": 64,
                              "epochs": 4})],
)  # fmt: skip
def test_every_energy_card_trains_on_four_devices(name, options):
    from zoo_jax import registry

    overrides = registry.get_card(name).test_overrides
    summary = fit(RunConfig(name, parallel="pmap", devices=4, model_overrides=overrides,
                            **{"epochs": 1, **options}), None, **QUIET)  # fmt: skip
    assert summary["train_step_compiles"] == 1
    assert all(np.isfinite(v) for v in summary["test"].values())
