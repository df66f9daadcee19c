"""The adversarial networks: exact parameter counts (the DCGAN against PyTorch's example),
shapes, both players stepping under one engine (k, the two generator losses, the NaN
policy), resume and data parallelism, and the judge's scores against independent
computations (scipy, sklearn)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo_jax import judging, registry
from zoo_jax.errors import InputError, UnknownNameError, ZooError
from zoo_jax.learners import AdversarialLearner
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.run import resolve
from zoo_jax.train.steps import compile_steps

QUIET = {"progress": False, "log": lambda _: None}
TINY = {
    name: registry.get_card(name).test_overrides for name in ("gan", "dcgan", "conditional_gan")
}


def dense(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def test_parameter_counts_are_the_papers_networks():
    g = dense(100, 1200) + dense(1200, 1200) + dense(1200, 784)
    d = dense(784, 240 * 5) + dense(240, 240 * 5) + dense(240, 1)
    assert registry.count_params("gan") == g + d == 3_735_425
    g = dense(100, 200) + dense(10, 1000) + dense(1200, 1200) + dense(1200, 784)
    d = dense(784, 240 * 5) + dense(10, 50 * 5) + dense(290, 240 * 4) + dense(240, 1)
    assert registry.count_params("conditional_gan") == g + d == 3_638_335
    # the 28×28 DCGAN: G 100 → 7·7·128 (BN) → 64 (BN) → 1; D 1 → 64 → 128 (BN) → 1
    g = 100 * 49 * 128 + 2 * 128 + 16 * 128 * 64 + 2 * 64 + 16 * 64
    d = 16 * 64 + 16 * 64 * 128 + 2 * 128 + 49 * 128
    overrides, shape, _ = registry.training_spec("dcgan", {})
    assert registry._count(registry.get_model("dcgan", **overrides), shape) == g + d == 898_304


def test_the_dcgan_reference_configuration_is_pytorchs_example():
    """pytorch/examples `dcgan/main.py` (nz 100, ngf = ndf = 64, nc 3), built in PyTorch."""
    from torch import nn

    ngf = ndf = 64
    g = nn.Sequential(
        nn.ConvTranspose2d(100, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(),
        nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh(),
    )  # fmt: skip
    d = nn.Sequential(
        nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
    )  # fmt: skip
    count = lambda net: sum(p.numel() for p in net.parameters())
    assert (count(g), count(d)) == (3_576_704, 2_765_568)
    model = registry.get_model("dcgan")
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)))
    sizes = {p: sum(v.size for v in jax.tree.leaves(variables["params"][p]))
             for p in ("generator", "discriminator")}  # fmt: skip
    assert sizes == {"generator": count(g), "discriminator": count(d)}


@pytest.mark.parametrize("name", ["gan", "dcgan", "conditional_gan"])
def test_players_shapes_and_ranges(name):
    overrides, shape, _ = registry.training_spec(name, TINY[name])
    model = registry.get_model(name, **overrides)
    x = jnp.asarray(np.random.default_rng(0).random((3, *shape), np.float32))
    labels = jnp.array([0, 5, 9])
    variables = jax.jit(lambda x, y: model.init(jax.random.PRNGKey(0), x, y))(x, labels)
    assert set(variables["params"]) == {"generator", "discriminator"}
    z = model.noise(jax.random.PRNGKey(1), 3)
    assert z.shape == (3, model.latent_dim) and float(jnp.min(z)) >= -1 and float(jnp.max(z)) <= 1
    images = model.apply(variables, z, labels, method="sample")
    assert images.shape == (3, *shape)
    assert float(jnp.min(images)) >= 0 and float(jnp.max(images)) <= 1
    raw = model.apply(variables, z, labels, method="generate")
    np.testing.assert_allclose(model.to_unit_range(raw), images, atol=1e-6)
    logits = model.apply(variables, x, labels, method="discriminate")
    assert logits.shape == (3,)


def test_a_conditional_model_needs_labels():
    model = registry.get_model("conditional_gan", **TINY["conditional_gan"])
    x = jnp.zeros((2, 28, 28, 1))
    variables = model.init(jax.random.PRNGKey(0), x, jnp.zeros(2, jnp.int32))
    with pytest.raises(InputError, match="needs class labels"):
        model.apply(variables, jnp.zeros((2, model.latent_dim)), method="sample")
    with pytest.raises(InputError, match="needs class labels"):
        model.apply(variables, x, method="discriminate")
    with pytest.raises(InputError, match="integer classes"):
        model.apply(variables, x, jnp.zeros(2), method="discriminate")


def _learner(name, loss="non_saturating", **overrides):
    run = resolve(RunConfig(name, loss=loss, model_overrides=TINY[name] | overrides))
    return run.learner(100)


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"inputs": rng.random((n, 28, 28, 1), np.float32),
            "labels": rng.integers(0, 10, n).astype(np.int32)}  # fmt: skip


@pytest.mark.parametrize("name", ["gan", "dcgan", "conditional_gan"])
def test_both_players_step_and_stay_finite(name):
    learner = _learner(name)
    state = learner.init(jax.random.PRNGKey(0), _batch())
    new, metrics = jax.jit(learner.update)(state, _batch(), jax.random.PRNGKey(1))
    assert bool(metrics["finite"]) and int(new.step) == 1
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert np.isfinite(float(metrics[key]))
    for player in ("generator", "discriminator"):
        moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new.params[player],
                             state.params[player])  # fmt: skip
        assert any(jax.tree.leaves(moved)), player
        assert int(jax.tree.leaves(new.opt_state[player])[0]) == 1  # Adam's count


def test_the_discriminator_loss_is_the_cross_entropy_of_real_against_generated():
    """The step's d_loss, recomputed from its own real and generated logits by hand."""
    learner = _learner("gan", input_dropout=0.0, dropout=0.0)
    batch = _batch()
    state = learner.init(jax.random.PRNGKey(0), batch)
    _, metrics = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(3))
    keys = jax.random.split(jax.random.PRNGKey(3), 6)
    variables = learner.variables(state)
    fakes = learner.model.apply(variables, learner.model.noise(keys[0], 8), method="generate")
    d = lambda x: np.asarray(learner.model.apply(variables, x, method="discriminate"), np.float64)
    p_real, p_fake = 1 / (1 + np.exp(-d(batch["inputs"]))), 1 / (1 + np.exp(-d(fakes)))
    expected = -np.mean(np.log(p_real)) - np.mean(np.log(1 - p_fake))
    np.testing.assert_allclose(float(metrics["d_loss"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["d_real"]), p_real.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["d_fake"]), p_fake.mean(), rtol=1e-5)


def test_the_generator_losses_and_their_gradients():
    """Non-saturating −log D(G(z)) and minimax log(1 − D(G(z))): the values by hand, and
    the saturation the paper describes: when D rejects the samples (D(G(z)) → 0) the
    minimax gradient with respect to D's logit vanishes, the non-saturating one does not."""
    logits = jnp.array([-8.0, -2.0, 0.0, 3.0])
    p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    non_saturating = AdversarialLearner(None, None, "non_saturating")._generator_loss(logits)
    minimax = AdversarialLearner(None, None, "minimax")._generator_loss(logits)
    np.testing.assert_allclose(non_saturating, -np.log(p), rtol=1e-5)
    np.testing.assert_allclose(minimax, np.log(1 - p), rtol=1e-5)
    grad = lambda loss: jax.grad(lambda v: AdversarialLearner(None, None, loss)._generator_loss(v))
    assert (
        abs(float(grad("minimax")(-8.0))) < 1e-3 < 0.99 < abs(float(grad("non_saturating")(-8.0)))
    )
    with pytest.raises(UnknownNameError, match="did you mean 'minimax'"):
        AdversarialLearner(None, None, "minmax")


def test_k_discriminator_steps_per_generator_step():
    learner = _learner("gan", disc_steps=2)
    state = learner.init(jax.random.PRNGKey(0), _batch())
    update = jax.jit(learner.update)
    counts = []
    for step in range(4):
        state, _ = update(state, _batch(seed=step), jax.random.PRNGKey(step))
        counts.append({p: int(jax.tree.leaves(state.opt_state[p])[0])
                       for p in ("generator", "discriminator")})  # fmt: skip
    assert [c["discriminator"] for c in counts] == [1, 2, 3, 4]
    assert [c["generator"] for c in counts] == [0, 1, 1, 2]


def test_a_non_finite_player_keeps_its_state():
    learner = _learner("gan")
    state = learner.init(jax.random.PRNGKey(0), _batch())
    bad = _batch() | {"inputs": np.full((8, 28, 28, 1), np.nan, np.float32)}
    new, metrics = jax.jit(learner.update)(state, bad, jax.random.PRNGKey(1))
    assert not bool(metrics["finite"])
    chex.assert_trees_all_equal(new.params["discriminator"], state.params["discriminator"])


def _images(mnist_small):
    x_train, y_train, x_test, y_test = mnist_small
    return x_train[..., None], y_train, x_test[..., None], y_test


def test_resume_equals_an_uninterrupted_run(tmp_path, mnist_small):
    data = _images(mnist_small)
    cfg = lambda epochs: RunConfig("dcgan", epochs=epochs, batch_size=64,
                                   model_overrides=TINY["dcgan"])  # fmt: skip
    straight = fit(cfg(2), tmp_path / "a", data=data, **QUIET)
    fit(cfg(1), tmp_path / "b", data=data, **QUIET)
    resumed = fit(cfg(2), tmp_path / "b", data=data, resume=True, **QUIET)
    chex.assert_trees_all_equal(resumed["state"], straight["state"])
    assert straight["train_step_compiles"] == 1
    assert (tmp_path / "a" / "samples.png").stat().st_size > 1000  # the run's sample grid
    assert set(straight["test"]) == {"d_loss", "g_loss", "d_real", "d_fake"}


@pytest.mark.parametrize(("name", "parallel"), [("gan", "pmap"), ("dcgan", "sharded")])
def test_data_parallel_equals_one_device(name, parallel):
    """pmap: each device draws its rows of the global batch's noise (the GAN without
    dropout, whose masks are per device); sharded jit sees the global batch, batch norm
    included."""
    overrides = {"input_dropout": 0.0, "dropout": 0.0} if name == "gan" else {}
    learner = _learner(name, **overrides)
    batches = [_batch(16, seed) for seed in range(3)]
    state = learner.init(jax.random.PRNGKey(0), batches[0])
    out = {}
    for how, devices in (("none", 1), (parallel, 4)):
        steps = compile_steps(learner, how, devices)
        s = steps.put_state(jax.tree.map(jnp.copy, state))  # the steps donate it
        for batch in batches:
            s, metrics = steps.train(s, steps.put_batch(batch))
        out[how] = steps.get_state(s)
        assert bool(np.all(jax.device_get(metrics["finite"])))
    chex.assert_trees_all_close(out[parallel].params, out["none"].params, atol=2e-5, rtol=2e-5)
    chex.assert_trees_all_close(out[parallel].model_state, out["none"].model_state, atol=2e-5)


def test_bad_options_are_refused():
    with pytest.raises(UnknownNameError, match="GAN loss"):
        resolve(RunConfig("gan", loss="binary_crossentropy"))
    with pytest.raises(ZooError, match="disc_steps must be a positive integer"):
        resolve(RunConfig("gan", model_overrides={"disc_steps": 0}))
    with pytest.raises(ZooError, match="latent_dim must be a positive integer"):
        resolve(RunConfig("dcgan", model_overrides={"latent_dim": -1}))
    with pytest.raises(InputError, match=r"intensities in \[0, 1\]"):
        x = np.full((64, 28, 28, 1), 2.0, np.float32)
        fit(RunConfig("gan", epochs=1, batch_size=32), None,
            data=(x, np.zeros(64, np.int32), x, np.zeros(64, np.int32)), **QUIET)  # fmt: skip


def test_the_card_carries_dcgans_adam():
    cfg = resolve(RunConfig("dcgan")).config
    assert (cfg.optimizer, cfg.learning_rate, cfg.optimizer_options) == (
        "adam",
        2e-4,
        {"beta_1": 0.5},
    )
    assert resolve(RunConfig("dcgan", optimizer="sgd")).config.optimizer_options == {}
    clipped = resolve(RunConfig("dcgan", optimizer_options={"clipnorm": 1.0})).config
    assert clipped.optimizer_options == {"beta_1": 0.5, "clipnorm": 1.0}


# --- the judge's scores ------------------------------------------------------------------------


def test_classifier_score_bounds_and_value():
    rng = np.random.default_rng(0)
    assert judging.classifier_score(np.eye(10)[rng.permutation(1000) % 10]) == pytest.approx(10)
    assert judging.classifier_score(np.full((50, 10), 0.1)) == pytest.approx(1)
    p = rng.dirichlet(np.ones(10), 200)
    marginal = p.mean(0)
    expected = np.exp(np.mean([np.sum(q * np.log(q / marginal)) for q in p]))
    assert judging.classifier_score(p) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_against_scipys_matrix_square_root():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((300, 6)) * 2 + 1
    mu_a, mu_b, ca, cb = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(ca @ cb).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(ca + cb - 2 * root)
    assert judging.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert judging.frechet_distance(a, a) == pytest.approx(0, abs=1e-8)


def test_parzen_window_against_sklearns_kernel_density():
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(0)
    samples, x = rng.random((300, 20)), rng.random((50, 20))
    kde = KernelDensity(kernel="gaussian", bandwidth=0.3).fit(samples)
    ll, se = judging.parzen_log_likelihood(samples, x, 0.3)
    expected = kde.score_samples(x)
    assert ll == pytest.approx(expected.mean(), rel=1e-5)
    assert se == pytest.approx(expected.std(ddof=1) / np.sqrt(50), rel=1e-3)
    sigma = judging.best_parzen_sigma(samples, x, [0.01, 0.3, 5.0])
    assert sigma == 0.3
    with pytest.raises(InputError, match="values each"):
        judging.parzen_log_likelihood(samples, x[:, :5], 0.3)
