"""CapsNet: routing by agreement and the margin loss against NumPy transcriptions of Sabour
et al. 2017, the paper's parameter count, the shift augmentation, one short training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo_jax import losses, registry
from zoo_jax.data import augment
from zoo_jax.errors import ZooError
from zoo_jax.models import capsules
from zoo_jax.train.loop import RunConfig, fit

QUIET = {"progress": False, "log": lambda _: None}


def np_squash(s):
    n = np.linalg.norm(s)
    return (n**2 / (1 + n**2)) * s / n


def np_route(u_hat, r):
    """Procedure 1, one example: u_hat (inputs, outputs, dim)."""
    n_in, n_out, _ = u_hat.shape
    b = np.zeros((n_in, n_out))
    for _ in range(r):
        c = np.exp(b) / np.exp(b).sum(1, keepdims=True)
        v = np.array([np_squash(sum(c[i, j] * u_hat[i, j] for i in range(n_in)))
                      for j in range(n_out)])  # fmt: skip
        b = b + np.einsum("ijd,jd->ij", u_hat, v)
    return v, c


@pytest.mark.parametrize("iterations", [1, 3])
def test_routing_matches_procedure_1(iterations):
    u_hat = np.random.default_rng(iterations).normal(size=(2, 12, 4, 5)).astype(np.float32)
    v, c = jax.jit(capsules.route, static_argnums=1)(u_hat, iterations)
    for n in range(2):
        v_ref, c_ref = np_route(u_hat[n].astype(np.float64), iterations)
        np.testing.assert_allclose(v[n], v_ref, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c[n], c_ref, rtol=1e-4, atol=1e-6)
    with pytest.raises(ZooError, match="at least 1 iteration"):
        capsules.route(u_hat, 0)


def test_margin_loss_and_squash():
    lengths = np.array([[0.95, 0.2, 0.05], [0.5, 0.8, 0.3]], np.float32)
    labels = np.array([0, 2])
    expected = [0 + 0.5 * (0.2 - 0.1) ** 2, (0.9 - 0.3) ** 2 + 0.5 * (0.4**2 + 0.7**2)]
    np.testing.assert_allclose(losses.margin_loss(labels, lengths), expected, rtol=1e-6)
    s = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    out = capsules.squash(jnp.asarray(s))
    np.testing.assert_allclose(out[0], np_squash(s[0]), rtol=1e-6)
    assert np.isfinite(jax.grad(lambda x: capsules.squash(x).sum())(jnp.zeros(3))).all()


def test_the_papers_parameter_count():
    conv = lambda k, cin, cout: k * k * cin * cout + cout
    digit = 6 * 6 * 32 * 10 * 16 * 8  # W_ij, no bias
    decoder = (16 * 10 + 1) * 512 + (512 + 1) * 1024 + (1024 + 1) * 784
    assert registry.count_params("capsnet") == conv(9, 1, 256) + conv(9, 256, 256) + digit + decoder
    assert registry.count_params("capsnet") == 8_215_568  # Sabour et al.: "8.2M"
    without = registry.get_model("capsnet", reconstruction=False)
    assert registry.count_params(without, (28, 28, 1)) == 6_804_224  # "6.8M"


def test_shift_augmentation_moves_whole_pixels():
    images = jnp.zeros((64, 28, 28, 1)).at[:, 14, 14, 0].set(1.0)
    out = np.asarray(augment.get("shift")(jax.random.PRNGKey(0), images))
    where = np.argwhere(out[..., 0] == 1)
    assert len(where) == 64 and out.sum() == 64  # every image keeps its one pixel
    assert set(np.unique(where[:, 1] - 14)) == set(range(-2, 3)) == set(np.unique(where[:, 2] - 14))


def test_capsnet_refuses_other_losses():
    """(It trains through `fit` in tests/test_experiments.py's quick run.)"""
    with pytest.raises(ZooError, match="margin loss"):
        fit(RunConfig(model="capsnet", loss="mse", epochs=1), **QUIET)
