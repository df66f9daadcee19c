"""The autoencoders: exact parameter counts, shapes, one finite step of each, every penalty
against an independent computation (jax.jacfwd, numpy, torch.distributions, quadrature),
the stages of greedy pre-training (resumed), DCIGN's clamped batches and the sprites."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo_jax import registry
from zoo_jax.data import sprites
from zoo_jax.errors import InputError, UnknownNameError, ZooError
from zoo_jax.models import autoencoders as ae
from zoo_jax.train.loop import RunConfig, fit
from zoo_jax.train.run import resolve
from zoo_jax.train.steps import compile_steps

QUIET = {"progress": False, "log": lambda _: None}
NAMES = [card.name for card in ae.CARDS]


def dense(n_in, n_out):
    return n_in * n_out + n_out


def conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def test_parameter_counts():
    counts = {name: registry.count_params(name) for name in NAMES}
    assert counts["autoencoder"] == 2 * (dense(784, 256) + dense(256, 32)) - 32 - 256 + 784 + 256
    assert counts["denoising_autoencoder"] == 784 * 500 + 500 + 784 == 393_284  # tied
    assert counts["sparse_autoencoder"] == dense(784, 196) + dense(196, 784) == 308_308
    stack = dense(784, 1000) + 784 + 2 * (dense(1000, 1000) + 1000) + dense(1000, 10)
    assert counts["stacked_autoencoder"] == counts["stacked_denoising_autoencoder"] == stack
    assert counts["contractive_autoencoder"] == 784 * 1000 + 1000 + 784
    convs = conv(3, 1, 16) + conv(3, 16, 32) + conv(1, 32, 4)
    back = conv(3, 4, 32) + conv(3, 32, 16) + conv(3, 16, 1)
    assert counts["convolutional_autoencoder"] == convs + back
    lstm = lambda n_in, units: 4 * units * (n_in + units) + 4 * units
    assert counts["recurrent_autoencoder"] == lstm(28, 64) + lstm(64, 64) + dense(64, 28)
    # Burda et al. 2016's one-stochastic-layer model: 784-200-200-(2x50) / 50-200-200-784
    vae = dense(784, 200) + dense(200, 200) + dense(200, 100)
    vae += dense(50, 200) + dense(200, 200) + dense(200, 784)
    assert counts["vae"] == vae == 425_284
    encoder = conv(3, 1, 16) + conv(3, 16, 32) + conv(3, 32, 32) + dense(4 * 4 * 32, 20)
    decoder = dense(10, 4 * 4 * 32) + conv(3, 32, 32) + conv(3, 32, 16) + conv(3, 16, 16)
    assert counts["dcign"] == encoder + decoder + conv(3, 16, 1)


def _tiny(name, **overrides):
    card = registry.get_card(name)
    return registry.get_model(name, **(card.test_overrides | overrides)), card


def _inputs(card, n=4, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((n, *card.input_shape), np.float32))


VARIANTS = [(name, {}) for name in NAMES] + [
    ("convolutional_autoencoder", {"decoder": "transposed"}),
    ("vae", {"architecture": "conv", "features": (4, 4)}),
    ("vae", {"decoder_dist": "gaussian"}),
    ("denoising_autoencoder", {"corruption": "salt_and_pepper"}),
]


@pytest.mark.parametrize(("name", "overrides"), VARIANTS)
def test_shapes_and_terms(name, overrides):
    model, card = _tiny(name, **overrides)
    x = _inputs(card)
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    out = model.apply(variables, x)
    rngs = {"noise": jax.random.PRNGKey(1)}
    if card.learner == "layerwise":
        assert out.shape == (4, 10)
        assert model.apply(variables, x, method="reconstruct").shape == x.shape
        terms = model.apply(variables, x, 1, train=True, rngs=rngs, method="layer_objective")
        assert set(terms) == {"loss", "recon"}
        return
    assert out.shape == x.shape
    terms = model.apply(variables, x, train=True, rngs=rngs, method="objective")
    assert set(terms) == {"loss", *model.terms}
    for value in terms.values():
        assert value.shape == (4,) and bool(jnp.all(jnp.isfinite(value)))
    assert bool(jnp.all(terms["recon"] >= 0))


@pytest.mark.parametrize("name", NAMES)
def test_one_training_step_is_finite_and_moves_every_layer(name):
    card = registry.get_card(name)
    learner = resolve(RunConfig(name, model_overrides=card.test_overrides)).learner(100)
    rng = np.random.default_rng(0)
    batch = {"inputs": rng.random((8, *card.input_shape), np.float32),
             "labels": rng.integers(0, card.num_classes, 8).astype(np.int32)}  # fmt: skip
    state = learner.init(jax.random.PRNGKey(0), batch)
    new, metrics = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(1))
    assert bool(metrics["finite"]) and int(new.step) == 1
    assert np.isfinite(float(metrics["loss"]))
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new.params, state.params)
    if card.learner == "layerwise":  # the first stage trains the first layer only
        assert all(jax.tree.leaves(moved["layers_0"])) and not any(jax.tree.leaves(moved["head"]))
    else:
        assert all(jax.tree.leaves(moved)), moved
    sums = jax.jit(learner.evaluate)(state, batch | {"weight": np.ones(8, np.float32)})
    assert set(sums) == {*learner.metrics, "count"} and float(sums["count"]) == 8


def _init(model, x):
    return model.init(jax.random.PRNGKey(0), x)


def test_the_contractive_penalty_is_the_jacobians_frobenius_norm():
    """Rifai et al.'s closed form against `jax.jacfwd` of the encoder, per example."""
    model, card = _tiny("contractive_autoencoder")
    x = _inputs(card, 3)
    variables = _init(model, x)
    encode = lambda v: model.apply(variables, v[None], method="encode")[0]
    jac = jax.vmap(jax.jacfwd(encode))(x.reshape(3, -1))
    expected = np.sum(np.asarray(jac, np.float64) ** 2, (1, 2))
    terms = model.apply(variables, x, method="objective")
    np.testing.assert_allclose(terms["contraction"], expected, rtol=1e-5)
    closed = model.apply(variables, x, method="jacobian_norm")
    np.testing.assert_allclose(closed, np.sqrt(expected), rtol=1e-5)
    # the generic (jacfwd) norm of the plain autoencoder of the same network agrees
    plain = registry.get_model("autoencoder", hidden=[], code_size=8, activation="sigmoid",
                               tied=True)  # fmt: skip
    np.testing.assert_allclose(plain.apply(variables, x, method="jacobian_norm"), closed, rtol=1e-5)
    lam = model.contraction
    bce = -(x * jax.nn.log_sigmoid(model.apply(variables, x))
            + (1 - x) * jax.nn.log_sigmoid(-model.apply(variables, x)))  # fmt: skip
    np.testing.assert_allclose(terms["loss"], bce.sum((1, 2, 3)) + lam * expected, rtol=1e-5)


def test_the_sparsity_penalty_is_the_kl_of_the_batch_mean_activation():
    """Ng's β Σ_j KL(ρ ‖ ρ̂_j) + λ/2 Σ W², by numpy, with padding rows weighted out."""
    model, card = _tiny("sparse_autoencoder", activity_l1=0.01)
    x = _inputs(card, 5)
    variables = _init(model, x)
    weight = jnp.array([1.0, 1.0, 1.0, 0.0, 1.0])
    terms = model.apply(variables, x, weight, method="objective")
    h = np.asarray(model.apply(variables, x, method="encode"), np.float64)
    rho_hat = h[weight.astype(bool)].mean(0)
    rho = model.rho
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    np.testing.assert_allclose(terms["sparsity"], np.full(5, kl), rtol=1e-5)
    np.testing.assert_allclose(terms["activation"], h.mean(1), rtol=1e-6)
    p = variables["params"]
    decay = (
        model.weight_decay
        / 2
        * sum(np.sum(np.asarray(p[k], np.float64) ** 2) for k in ("kernel_0", "decoder_kernel_0"))
    )
    bce = model.apply(variables, x.at[:].get(), method="objective")  # unweighted: same BCE
    recon_nll = np.asarray(bce["loss"]) - model.beta * float(bce["sparsity"][0])
    recon_nll -= decay + 0.01 * np.abs(h).sum(1)
    penalty = model.beta * kl + decay + 0.01 * np.abs(h).sum(1)
    np.testing.assert_allclose(terms["loss"], recon_nll + penalty, rtol=1e-5)


def test_the_vae_terms_against_torch_distributions():
    """The analytic KL(N(μ, σ²) ‖ N(0, I)) and the Bernoulli / Gaussian log-likelihoods of
    the ELBO, recomputed from the same sample with torch.distributions."""
    import torch
    from torch import distributions as D

    for decoder_dist in ("bernoulli", "gaussian"):
        model, card = _tiny("vae", decoder_dist=decoder_dist, binarize=False)
        x = _inputs(card, 3)
        variables = _init(model, x)
        mean, log_var = model.apply(variables, x, method="encode")
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(jax.random.PRNGKey(7), mean.shape)
        terms = model.apply(variables, x, mean, log_var, z, method="elbo_terms")
        out = torch.tensor(np.asarray(model.apply(variables, z, method="decode")))
        t = lambda a: torch.tensor(np.asarray(a, np.float64))
        q = D.Normal(t(mean), torch.exp(0.5 * t(log_var)))
        kl = D.kl_divergence(q, D.Normal(0.0, 1.0)).sum(-1).numpy()
        np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5, atol=1e-5)
        if decoder_dist == "bernoulli":
            log_px = (
                D.Bernoulli(logits=out.double(), validate_args=False).log_prob(t(x)).sum((1, 2, 3))
            )
        else:
            scale = torch.exp(t(variables["params"]["log_scale"])).reshape(28, 28, 1)
            log_px = D.Normal(out.double(), scale).log_prob(t(x)).sum((1, 2, 3))
        np.testing.assert_allclose(terms["nll"], -log_px.numpy(), rtol=1e-5)
        np.testing.assert_allclose(terms["loss"], terms["nll"] + terms["kl"], rtol=1e-6)


def test_the_importance_weighted_bound_approaches_the_exact_likelihood():
    """With one latent unit, log p(x) = log ∫ p(x|z) N(z; 0, 1) dz by quadrature on a grid
    (independent of the sampler): the k = 5000 bound is within 0.05 nats of it, and
    tighter than the k = 1 bound (the ELBO's estimate)."""
    model, _card = _tiny("vae", latent_dim=1, binarize=False)
    x = jnp.asarray(np.random.default_rng(0).random((2, 28, 28, 1)) > 0.5, jnp.float32)
    variables = _init(model, x)
    grid = np.linspace(-10, 10, 8_001)
    out = model.apply(variables, jnp.asarray(grid[:, None], jnp.float32), method="decode")
    log_px_z = np.stack([np.asarray(-ae.bernoulli_nll(out, jnp.broadcast_to(xi, out.shape)),
                                    np.float64) for xi in x])  # fmt: skip
    log_joint = log_px_z - 0.5 * grid**2 - 0.5 * np.log(2 * np.pi)
    exact = -(np.log(np.sum(np.exp(log_joint - log_joint.max(1, keepdims=True)), 1)
                     * (grid[1] - grid[0])) + log_joint.max(1))  # fmt: skip
    bound = jax.jit(lambda key, k: model.apply(variables, x, k, rngs={"noise": key},
                                               method="importance_nll"), static_argnums=1)  # fmt: skip
    iwae = lambda k, seed: np.asarray(bound(jax.random.PRNGKey(seed), k))
    np.testing.assert_allclose(iwae(5000, 0), exact, atol=0.05)
    k1 = np.mean([iwae(1, s) for s in range(20)], 0)
    assert np.all(k1 > iwae(5000, 1))


@pytest.mark.parametrize("kind", ae.CORRUPTIONS)
def test_corruptions(kind):
    x = jnp.full((200, 784), 0.5)
    y = np.asarray(ae.corrupt(jax.random.PRNGKey(0), x, kind, 0.3))
    if kind == "masking":
        assert set(np.unique(y)) == {0.0, 0.5} and abs(np.mean(y == 0) - 0.3) < 0.01
    elif kind == "salt_and_pepper":
        assert set(np.unique(y)) == {0.0, 0.5, 1.0} and abs(np.mean(y != 0.5) - 0.3) < 0.01
        assert abs(np.mean(y == 1) - 0.15) < 0.01
    else:
        assert abs(np.std(y - 0.5) - 0.3) < 0.005 and abs(np.mean(y - 0.5)) < 0.005


def test_denoising_trains_on_the_corrupted_input_and_evaluates_on_the_clean():
    model, card = _tiny("denoising_autoencoder", noise_level=1.0)  # every pixel masked
    x = _inputs(card)
    variables = _init(model, x)
    rngs = {"noise": jax.random.PRNGKey(0)}
    train = model.apply(variables, x, train=True, rngs=rngs, method="objective")
    blank = model.apply(variables, jnp.zeros_like(x), method="objective")
    logits = model.apply(variables, jnp.zeros_like(x))
    np.testing.assert_allclose(train["loss"], ae.bernoulli_nll(logits, x), rtol=1e-6)
    clean = model.apply(variables, x, method="objective")
    assert not np.allclose(clean["loss"], train["loss"]) and blank["loss"].shape == (4,)


def test_clamped_units_take_the_batch_mean_and_its_gradient():
    z = jnp.array([[1.0, 2.0], [3.0, 6.0]])
    clamped = jnp.array([True, False])
    out = ae.clamp_to_mean(z, clamped)
    np.testing.assert_allclose(out, [[2.0, 2.0], [2.0, 6.0]])
    g = jax.grad(lambda z: jnp.sum(ae.clamp_to_mean(z, clamped) * jnp.array([5.0, 7.0])))(z)
    np.testing.assert_allclose(g, [[-1.0, 7.0], [1.0, 7.0]])  # z − mean; the free unit's own


def test_sprites_vary_one_factor_and_render_their_factors():
    rows = np.asarray(sprites.draw(jax.random.PRNGKey(0), 64, jnp.arange(5) == 2))
    assert len(np.unique(rows[:, 2])) > 5 and all(
        len(np.unique(rows[:, i])) == 1 for i in (0, 1, 3, 4)
    )
    for i, values in enumerate(sprites.VALUES.values()):
        assert np.isin(rows[:, i], values).all()
    x_train, y_train = sprites.load("train")
    x_test, y_test = sprites.load("test")
    assert x_train.shape == (11_520 - sprites.TEST, 32, 32, 1) and x_test.shape[0] == sprites.TEST
    assert set(np.unique(y_train)) == {0, 1, 2} and x_train.min() >= 0 and x_train.max() == 1
    # a square's area: (2 · 0.8 · LARGEST · scale · 16 px)², anti-aliased edges included
    square = np.array([[0.0, 1.0, 0.0, 0.0, 0.0]], np.float32)
    side = 2 * 0.8 * sprites.LARGEST * 16
    np.testing.assert_allclose(float(sprites.render(square).sum()), side**2, rtol=0.02)
    np.testing.assert_allclose(sprites.factors("test")[:, 0], y_test)


def test_dcign_batches_clamp_the_other_factors_units():
    learner = resolve(
        RunConfig("dcign", model_overrides=registry.get_card("dcign").test_overrides)
    ).learner(10)
    x, extra = learner.training_batch({"inputs": np.zeros((16, 32, 32, 1))}, jax.random.PRNGKey(3))
    assert x.shape == (16, 32, 32, 1)
    kinds = set()
    for seed in range(12):  # Kulkarni et al.'s step 5: all but the trained units clamped
        _, extra = learner.training_batch({"inputs": np.zeros((16, 32, 32, 1))},
                                          jax.random.PRNGKey(seed))  # fmt: skip
        clamped = np.asarray(extra["clamped"])
        assert clamped.shape == (5,) and clamped.sum() == 4
        kinds.add("intrinsic" if not clamped[4] else "extrinsic")
        if clamped[4]:  # an extrinsic factor varied: its one unit is free
            assert (~clamped[:4]).sum() == 1
    assert kinds == {"intrinsic", "extrinsic"}
    plain = resolve(
        RunConfig(
            "dcign", model_overrides={"clamp": False, **registry.get_card("dcign").test_overrides}
        )
    ).learner(10)
    assert (
        plain.training_batch({"inputs": np.zeros((16, 32, 32, 1))}, jax.random.PRNGKey(3))[1] == {}
    )


def _images(mnist_small):
    x_train, y_train, x_test, y_test = mnist_small
    return x_train[..., None], y_train, x_test[..., None], y_test


def test_greedy_stages_resume_as_an_uninterrupted_run(tmp_path, mnist_small):
    """3 epochs of 8 steps: layer 1, layer 2, then fine-tuning; stopped after the first
    stage and resumed, the same state."""
    data = _images(mnist_small)
    tiny = registry.get_card("stacked_denoising_autoencoder").test_overrides | {
        "pretrain_epochs": 1
    }
    cfg = lambda epochs: RunConfig("stacked_denoising_autoencoder", epochs=epochs, batch_size=64,
                                   model_overrides=tiny)  # fmt: skip
    straight = fit(cfg(3), tmp_path / "a", data=data, **QUIET)
    fit(cfg(1), tmp_path / "b", data=data, **QUIET)
    resumed = fit(cfg(3), tmp_path / "b", data=data, resume=True, **QUIET)
    chex.assert_trees_all_equal(resumed["state"].params, straight["state"].params)
    assert straight["train_step_compiles"] == 1
    assert set(straight["test"]) == {"loss", "accuracy", "recon"}
    opt = straight["state"].opt_state  # each stage stepped its own Adam 8 times
    assert {k: int(jax.tree.leaves(opt[k])[0]) for k in opt} == {
        "layers_0": 8,
        "layers_1": 8,
        "finetune": 8,
    }


@pytest.mark.parametrize(("name", "parallel"), [("stacked_autoencoder", "pmap"),
                                                ("autoencoder", "sharded")])  # fmt: skip
def test_data_parallel_equals_one_device(name, parallel):
    learner = resolve(
        RunConfig(name, model_overrides=registry.get_card(name).test_overrides)
    ).learner(4)
    rng = np.random.default_rng(0)
    batches = [{"inputs": rng.random((16, 28, 28, 1), np.float32),
                "labels": rng.integers(0, 10, 16).astype(np.int32)} for _ in range(3)]  # fmt: skip
    state = learner.init(jax.random.PRNGKey(0), batches[0])
    out = {}
    for how, devices in (("none", 1), (parallel, 4)):
        steps = compile_steps(learner, how, devices)
        s = steps.put_state(jax.tree.map(jnp.copy, state))
        for batch in batches:
            s, _metrics = steps.train(s, steps.put_batch(batch))
        out[how] = steps.get_state(s)
    chex.assert_trees_all_close(out[parallel].params, out["none"].params, atol=2e-5, rtol=2e-5)


def test_bad_options_are_refused():
    with pytest.raises(ZooError, match=r"noise_level must be in \[0, 1\]"):
        resolve(
            RunConfig("denoising_autoencoder", model_overrides={"noise_level": 1.5})
        ).check_build()
    with pytest.raises(ZooError, match=r"rho must be in \(0, 1\)"):
        resolve(RunConfig("sparse_autoencoder", model_overrides={"rho": 1.0})).check_build()
    with pytest.raises(ZooError, match="code_size must be a positive integer"):
        resolve(RunConfig("autoencoder", model_overrides={"code_size": 0}))
    with pytest.raises(UnknownNameError, match="did you mean 'masking'"):
        resolve(
            RunConfig("denoising_autoencoder", model_overrides={"corruption": "mask"})
        ).check_build()
    with pytest.raises(ZooError, match="own objective"):
        resolve(RunConfig("vae", loss="mse"))
    model, _ = _tiny("recurrent_autoencoder")
    with pytest.raises(InputError, match=r"\(batch, time, features\)"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((2, 28, 28, 1)))
    with pytest.raises(InputError, match="intensities in"):
        x = np.full((64, 28, 28, 1), 2.0, np.float32)
        fit(RunConfig("autoencoder", epochs=1, batch_size=32), None,
            data=(x, np.zeros(64, np.int32), x, np.zeros(64, np.int32)), **QUIET)  # fmt: skip
