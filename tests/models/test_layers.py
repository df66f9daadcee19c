"""The CPU lowerings in layers.py equal XLA's convolution and Flax's pooling, values and grads."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from zoo_jax.models import layers


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize(
    ("kernel", "stride", "size"), [(3, 1, 9), (5, 1, 8), (3, 2, 9), (7, 2, 16), (1, 1, 5)]
)
def test_im2col_equals_xla_convolution(padding, kernel, stride, size):
    kx, kw = jax.random.split(jax.random.PRNGKey(kernel * 10 + stride))
    x = jax.random.normal(kx, (2, size, size + 1, 3))
    w = jax.random.normal(kw, (kernel, kernel, 3, 4))
    ref = lambda x, w: lax.conv_general_dilated(
        x, w, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    ours = lambda x, w: layers.conv2d_im2col(x, w, (stride, stride), padding)
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
    g_ours = jax.grad(lambda x, w: jnp.sum(jnp.sin(ours(x, w))), argnums=(0, 1))(x, w)
    g_ref = jax.grad(lambda x, w: jnp.sum(jnp.sin(ref(x, w))), argnums=(0, 1))(x, w)
    for a, b in zip(g_ours, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("groups", "cin", "cout", "stride"), [(2, 4, 6, 1), (4, 8, 8, 2), (6, 6, 6, 1)]
)
def test_grouped_im2col_equals_xla_grouped_convolution(groups, cin, cout, stride):
    """ResNeXt's and Caffe AlexNet's groups, and depthwise (groups = channels, Xception)."""
    kx, kw = jax.random.split(jax.random.PRNGKey(groups))
    x = jax.random.normal(kx, (2, 9, 8, cin))
    w = jax.random.normal(kw, (3, 3, cin // groups, cout))
    ref = lambda x, w: lax.conv_general_dilated(
        x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )  # fmt: skip
    ours = lambda x, w: layers.conv2d_im2col(x, w, (stride, stride), "SAME", groups)
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
    g_ours = jax.grad(lambda x, w: jnp.sum(jnp.sin(ours(x, w))), argnums=(0, 1))(x, w)
    g_ref = jax.grad(lambda x, w: jnp.sum(jnp.sin(ref(x, w))), argnums=(0, 1))(x, w)
    for a, b in zip(g_ours, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv2d_has_nn_conv_parameters_and_values():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    ours = layers.Conv2D(5, (3, 3), padding="SAME", implementation="im2col")
    ref = nn.Conv(5, (3, 3), padding="SAME")
    variables = ref.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
        jnp.shape, variables
    )
    np.testing.assert_allclose(
        ours.apply(variables, x), ref.apply(variables, x), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("size", [7, 8, 11])
def test_max_pool_equals_flax(padding, size):
    x = jax.random.normal(jax.random.PRNGKey(size), (2, size, size, 3))
    ref = lambda x: nn.max_pool(x, (2, 2), (2, 2), padding)
    ours = lambda x: layers.max_pool(x, (2, 2), padding=padding)
    np.testing.assert_array_equal(ours(x), ref(x))
    np.testing.assert_allclose(
        jax.grad(lambda x: jnp.sum(ours(x) ** 2))(x),
        jax.grad(lambda x: jnp.sum(ref(x) ** 2))(x),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("shape", "groups", "xla"),
    [((2, 8, 8, 4), 1, True), ((2, 2, 2, 4), 1, False), ((2, 8, 8, 4), 2, False)],
)
def test_conv2d_on_cpu_is_xlas_except_where_that_is_slow(shape, groups, xla):
    """The "auto" choice on the CPU: XLA's convolution, im2col for grouped convolutions and
    for inputs smaller than the kernel."""
    if jax.default_backend() != "cpu":
        pytest.skip("the choice is the CPU's")
    conv = layers.Conv2D(8, (3, 3), feature_group_count=groups)
    x = jnp.zeros(shape)
    variables = conv.init(jax.random.PRNGKey(0), x)
    assert ("conv_general_dilated" in str(jax.make_jaxpr(conv.apply)(variables, x))) == xla
