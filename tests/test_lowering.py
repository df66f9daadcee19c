"""The CPU lowerings (`zoo_jax.lowering`) equal XLA's convolution and Flax's pooling, values and grads."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import zoo_jax
from zoo_jax import lowering
from zoo_jax.errors import ZooError
from zoo_jax.lowering import convolution
from zoo_jax.models import blocks, checks


def normal(rng, shape):
    """Standard-normal float32 test inputs drawn on the host (no per-shape PRNG compiles)."""
    return rng.standard_normal(shape).astype(np.float32)


def assert_same_values_and_gradients(ours, ref, x, w):
    """Two convolutions `(x, w) -> y` agree, and so do their gradients in x and w (each
    compiled whole, as a model runs them: eager, every slice of im2col compiles alone)."""
    np.testing.assert_allclose(jax.jit(ours)(x, w), jax.jit(ref)(x, w), rtol=1e-5, atol=1e-5)
    grad = lambda conv: jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(conv(x, w))), (0, 1)))
    g_ours, g_ref = grad(ours)(x, w), grad(ref)(x, w)
    for a, b in zip(g_ours, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize(
    ("kernel", "stride", "size"), [(3, 1, 9), (5, 1, 8), (3, 2, 9), (7, 2, 16), (1, 1, 5)]
)
def test_im2col_equals_xla_convolution(padding, kernel, stride, size):
    rng = np.random.default_rng(kernel * 10 + stride)
    x, w = normal(rng, (2, size, size + 1, 3)), normal(rng, (kernel, kernel, 3, 4))
    ref = lambda x, w: lax.conv_general_dilated(
        x, w, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    ours = lambda x, w: convolution.conv2d_im2col(x, w, (stride, stride), padding)
    assert_same_values_and_gradients(ours, ref, x, w)


@pytest.mark.parametrize(
    ("groups", "cin", "cout", "stride"), [(2, 4, 6, 1), (4, 8, 8, 2), (6, 6, 6, 1)]
)
def test_grouped_im2col_equals_xla_grouped_convolution(groups, cin, cout, stride):
    """ResNeXt's and Caffe AlexNet's groups, and depthwise (groups = channels, Xception)."""
    rng = np.random.default_rng(groups)
    x, w = normal(rng, (2, 9, 8, cin)), normal(rng, (3, 3, cin // groups, cout))
    ref = lambda x, w: lax.conv_general_dilated(
        x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )  # fmt: skip
    ours = lambda x, w: convolution.conv2d_im2col(x, w, (stride, stride), "SAME", groups)
    assert_same_values_and_gradients(ours, ref, x, w)


def test_conv2d_has_nn_conv_parameters_and_values():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    ours = blocks.Conv2D(5, (3, 3), padding="SAME", implementation="im2col")
    ref = nn.Conv(5, (3, 3), padding="SAME")
    variables = ref.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
        jnp.shape, variables
    )
    np.testing.assert_allclose(
        ours.apply(variables, x), ref.apply(variables, x), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize(
    ("kernel", "strides"),
    [((3, 3), (2, 2)), ((4, 4), (2, 2)), ((4, 2), (2, 3)), ((1, 1), (1, 1)), ((2, 2), (3, 3))],
)
def test_conv_transpose_equals_flax(padding, kernel, strides):
    """`blocks.ConvTranspose` is `nn.ConvTranspose(transpose_kernel=True)`: the same
    parameters drawn by the same key, values and gradients."""
    rng = np.random.default_rng(kernel[0] * 10 + strides[1])
    x = normal(rng, (2, 5, 6, 3))
    ours = blocks.ConvTranspose(4, kernel, strides, padding)
    ref = nn.ConvTranspose(4, kernel, strides, padding, transpose_kernel=True)
    key = jax.random.PRNGKey(2)
    variables = jax.jit(ref.init)(key, x)
    jax.tree.map(np.testing.assert_array_equal, jax.jit(ours.init)(key, x), variables)
    apply = lambda module: (
        lambda x, w: module.apply({"params": {**variables["params"], "kernel": w}}, x)
    )
    assert_same_values_and_gradients(apply(ours), apply(ref), x, variables["params"]["kernel"])


def test_conv_transpose_on_cpu_has_no_dilated_kernel_in_its_gradient():
    """XLA:CPU computes a convolution with a dilated kernel in a slow generic loop: JAX's
    kernel gradient of `lax.conv_transpose` is one, ours is not; forward mode agrees too."""
    rng = np.random.default_rng(0)
    x, w = normal(rng, (2, 7, 7, 8)), normal(rng, (3, 3, 4, 8))
    ref = lambda x, w: lax.conv_transpose(
        x, w, (2, 2), "SAME", transpose_kernel=True, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    ours = lambda x, w: lowering.conv_transpose(x, w, (2, 2))
    hlo = lambda f: jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), (0, 1))).lower(x, w)
    assert "rhs_dilate" in hlo(ref).compile().as_text()
    assert "rhs_dilate" not in hlo(ours).compile().as_text()
    with lowering.plain_lowering():  # how `zoo-jax bench` counts FLOPs: JAX's own gradient
        assert "rhs_dilate" in hlo(lambda x, w: ours(x, w)).compile().as_text()
    tangents = (normal(rng, x.shape), normal(rng, w.shape))
    np.testing.assert_allclose(
        jax.jit(lambda: jax.jvp(ours, (x, w), tangents))()[1],
        jax.jit(lambda: jax.jvp(ref, (x, w), tangents))()[1],
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip
    with pytest.raises(ZooError, match="SAME or VALID"):
        lowering.conv_transpose(x, w, (2, 2), "CIRCULAR")


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("size", [7, 8, 11])
def test_max_pool_equals_flax(padding, size):
    x = normal(np.random.default_rng(size), (2, size, size, 3))
    ref = lambda x: nn.max_pool(x, (2, 2), (2, 2), padding)
    ours = lambda x: lowering.max_pool(x, (2, 2), padding=padding)
    np.testing.assert_array_equal(jax.jit(ours)(x), jax.jit(ref)(x))
    grad = lambda pool: jax.jit(jax.grad(lambda x: jnp.sum(pool(x) ** 2)))
    np.testing.assert_allclose(grad(ours)(x), grad(ref)(x), rtol=1e-6)


@pytest.mark.parametrize(
    ("window", "stride", "padding"),
    [(3, 1, "SAME"), (3, 2, "VALID"), (3, 2, ((1, 1), (1, 1))), (3, 2, ((0, 1), (0, 1))),
     (5, 3, "VALID"), (2, 1, "VALID")],
)  # fmt: skip
def test_overlapping_max_pool_equals_flax_with_ties(window, stride, padding):
    """GoogLeNet's 3×3/1, AlexNet's / Xception's 3×3/2, ceil-mode pads: same values, and the
    gradient goes where `select_and_scatter`'s does (the first maximum of each window, row
    by row) on inputs of three values, full of ties."""
    rng = np.random.default_rng(window * stride)
    x = rng.integers(0, 3, (2, 11, 10, 3)).astype(np.float32)
    out_shape = jax.eval_shape(lambda x: nn.max_pool(x, (window,) * 2, (stride,) * 2, padding), x)
    cotangent = normal(rng, out_shape.shape)
    pads = tuple(tuple(p) for p in convolution.conv_pads(x, (window,) * 2, (stride,) * 2, padding))
    results = []
    for pool in (nn.max_pool, convolution.overlapping_max_pool):

        @jax.jit
        def value_and_vjp(x, pool=pool):
            y, vjp = jax.vjp(lambda x: pool(x, (window,) * 2, (stride,) * 2, pads), x)
            return y, vjp(cotangent)[0]

        results.append(value_and_vjp(x))
    if jax.default_backend() == "cpu":  # `max_pool` takes it for stride 1 only
        _, vjp = jax.vjp(lambda x: lowering.max_pool(x, (window,) * 2, (stride,) * 2, padding), x)
        has_scatter = "select_and_scatter" in str(jax.make_jaxpr(vjp)(cotangent))
        assert has_scatter == (stride != 1)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "groups", "lowering"),
    [
        ((2, 8, 8, 4), 1, "xla"),
        ((2, 2, 2, 4), 1, "im2col"),  # smaller than the kernel
        ((2, 2, 2, 256), 256, "im2col"),
        ((2, 8, 8, 8), 2, "im2col"),  # a few wide groups: a convolution each
        ((2, 28, 28, 32), 32, "block_diagonal"),  # ResNeXt's first stage at width 0.25
        ((2, 7, 7, 256), 256, "block_diagonal"),  # Xception's depthwise, at most 256 wide
        ((2, 7, 7, 512), 32, "im2col"),  # a full-width ResNeXt stage: 32 times the work
    ],
)
def test_conv2d_on_cpu_is_xlas_except_where_that_is_slow(shape, groups, lowering):
    """The "auto" choice on the CPU (`cpu_lowering`), seen in the traced program: one XLA
    convolution, grouped or dense (block-diagonal), or none (im2col)."""
    if jax.default_backend() != "cpu":
        pytest.skip("the choice is the CPU's")
    assert convolution.cpu_lowering(shape, (3, 3), groups) == lowering
    conv = blocks.Conv2D(shape[-1], (3, 3), feature_group_count=groups, use_bias=False)
    x = jnp.zeros(shape)
    variables = conv.init(jax.random.PRNGKey(0), x)
    eqns = [e for e in jax.make_jaxpr(conv.apply)(variables, x).eqns
            if e.primitive.name == "conv_general_dilated"]  # fmt: skip
    assert [e.params["feature_group_count"] for e in eqns] == {
        "xla": [groups], "im2col": [], "block_diagonal": [1]
    }[lowering]  # fmt: skip


def test_conv2d_kernels_beyond_11x11_are_not_unrolled_into_slices():
    """`--set kernel_size=100000` traced 10^10 im2col slices (a hang); now XLA's convolution."""
    assert convolution.cpu_lowering((2, 2, 2, 4), (11, 11), 1) == "im2col"
    assert convolution.cpu_lowering((2, 2, 2, 4), (12, 11), 1) == "xla"
    assert convolution.cpu_lowering((2, 28, 28, 8), (100_000, 100_000), 2) == "xla"
    # strided 9×9 over many channels (CapsNet's primary capsules): im2col, 50× faster there
    assert convolution.cpu_lowering((2, 20, 20, 256), (9, 9), 1, (2, 2)) == "im2col"
    assert convolution.cpu_lowering((2, 20, 20, 3), (9, 9), 1, (2, 2)) == "xla"
    assert convolution.cpu_lowering((2, 20, 20, 256), (9, 9), 1, (1, 1)) == "xla"
    model = zoo_jax.get_model("cnn_tf", kernel_size=100_000)  # SAME padding: it fits
    jax.eval_shape(model.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, 28, 28, 1), float))


@pytest.mark.parametrize(
    ("groups", "cin", "cout", "stride", "padding"),
    [(8, 16, 16, 1, "SAME"), (4, 8, 12, 2, "SAME"), (6, 6, 6, 1, "VALID")],
)
def test_block_diagonal_equals_xla_grouped_convolution(groups, cin, cout, stride, padding):
    """One dense convolution whose kernel is zero between the groups: ResNeXt's groups and
    depthwise (groups = channels), values and gradients (the kernel's only in its blocks)."""
    rng = np.random.default_rng(groups)
    x, w = normal(rng, (2, 9, 8, cin)), normal(rng, (3, 3, cin // groups, cout))
    ref = lambda x, w: lowering.conv2d(x, w, (stride, stride), padding, groups, "xla")
    ours = lambda x, w: lowering.conv2d(x, w, (stride, stride), padding, groups, "block_diagonal")
    assert_same_values_and_gradients(ours, ref, x, w)
    dense = convolution.block_diagonal(w, groups)
    assert dense.shape == (3, 3, cin, cout)
    assert int(np.sum(np.asarray(dense) != 0)) == w.size  # every weight once, zeros elsewhere


def test_plain_lowering_counts_a_grouped_convolutions_own_flops():
    """XLA counts the block-diagonal lowering's zeros; traced under `plain_lowering`
    (as `zoo-jax bench` counts a model's FLOPs), the count is the grouped convolution's.
    Each count traces a new function: a cached trace would keep its lowering."""
    x, w = jnp.ones((2, 8, 8, 32)), jnp.ones((3, 3, 1, 32))
    conv = lambda x, w: lowering.conv2d(x, w, padding="VALID", groups=32)
    flops = lambda: jax.jit(lambda x, w: conv(x, w)).lower(x, w).cost_analysis()["flops"]
    grouped = 2 * 2 * 6 * 6 * 9 * 1 * 32  # batch · positions · taps · inputs per group · outputs
    with lowering.plain_lowering():
        assert flops() == grouped
    if jax.default_backend() == "cpu":
        assert flops() == pytest.approx(32 * grouped, rel=0.01)  # + the mask's products
    with pytest.raises(ZooError, match="implementation must be"):
        lowering.conv2d(x, w, groups=32, implementation="winograd")


def test_cpu_fusion_barrier_is_the_identity_with_its_gradient():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 3, 4))
    step = jax.jit(jax.value_and_grad(lambda x: jnp.sum(jnp.sin(lowering.cpu_fusion_barrier(x)))))
    value, grad = step(x)
    np.testing.assert_array_equal(value, jnp.sum(jnp.sin(x)))
    np.testing.assert_array_equal(grad, jnp.cos(x))
    negative = -jnp.abs(x)  # the predicate (first element > 0) false: the other branch
    np.testing.assert_array_equal(jax.jit(lowering.cpu_fusion_barrier)(negative), negative)


def _residual_stream_flops(depth: int, barrier: bool) -> float:
    """XLA's FLOP count of the compiled gradient of `depth` post-activation residual blocks
    (1×1 convolution, batch statistics, `relu(y + x)`), as `ResidualBlock` ends."""

    def loss(kernels, x):
        for kernel in kernels:
            y = lax.conv_general_dilated(
                x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            y = (y - y.mean((0, 1, 2))) * lax.rsqrt(y.var((0, 1, 2)) + 1e-5)
            x = nn.relu(y + x)
            x = lowering.cpu_fusion_barrier(x) if barrier else x
        return jnp.mean(x**2)

    kernels = [jnp.full((1, 1, 16, 16), 0.01)] * depth
    step = jax.jit(jax.grad(loss), compiler_options=lowering.compiler_options())
    cost = step.lower(kernels, jnp.ones((8, 8, 8, 16))).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]


def test_cpu_fusion_barrier_keeps_a_residual_streams_work_linear_in_depth():
    """Without the barrier XLA:CPU recomputes earlier blocks' element-wise chain inside later
    blocks' fusions (work ~ depth²); with it, doubling the depth doubles the work."""
    if jax.default_backend() != "cpu":
        pytest.skip("the barrier is the CPU's")
    with_barrier = [_residual_stream_flops(d, True) for d in (8, 16, 32)]
    without = [_residual_stream_flops(d, False) for d in (8, 16, 32)]
    assert with_barrier[2] / with_barrier[1] < 2.2 and with_barrier[1] / with_barrier[0] < 2.2
    assert without[2] / without[1] > 2.5  # the problem the barrier is for is still XLA's
    assert with_barrier[2] < 0.5 * without[2]


BERNOULLI_CASES = [((128, 256), 0.55), ((7, 5), 0.8), ((3,), 0.5), ((2, 1, 28), 0.9), ((), 0.3)]


def test_bernoulli_is_jax_random_bernoulli_bit_for_bit():
    """Raw and typed keys, several shapes and probabilities, all in one compiled program."""

    def both(raw_key):
        out = []
        for i, (shape, p) in enumerate(BERNOULLI_CASES):
            for key in (jax.random.fold_in(raw_key, i), jax.random.wrap_key_data(raw_key)):
                out.append((lowering.bernoulli(key, p, shape), jax.random.bernoulli(key, p, shape)))
        return out

    for seed in (0, 7):
        for ours, ref in jax.jit(both)(jax.random.PRNGKey(seed)):
            assert ours.dtype == ref.dtype == jnp.bool_
            np.testing.assert_array_equal(ours, ref)


def test_uniform_and_per_element_bernoulli_are_jax_randoms_bit_for_bit():
    """`uniform`, and `bernoulli` with one probability per element (a VAE's binarisation)."""
    probabilities = jnp.asarray(np.random.default_rng(0).random((4, 28, 28, 1)), jnp.float32)

    def both(key):
        return (lowering.uniform(key, (5, 7)), jax.random.uniform(key, (5, 7)),
                lowering.bernoulli(key, probabilities, probabilities.shape),
                jax.random.bernoulli(key, probabilities))  # fmt: skip

    for seed in (0, 3):
        ours_u, ref_u, ours_b, ref_b = jax.jit(both)(jax.random.PRNGKey(seed))
        np.testing.assert_array_equal(ours_u, ref_u)
        np.testing.assert_array_equal(ours_b, ref_b)
        assert 0.3 < float(jnp.mean(ours_b)) < 0.7


def test_bernoulli_on_cpu_is_unrolled_and_computed_once():
    """The reason it exists: no rolled Threefry loop, and the mask behind a conditional
    (the fusion barrier), which `jax.random.bernoulli`'s mask has neither of."""
    if jax.default_backend() != "cpu":
        pytest.skip("the fast path is the CPU's")
    key = jax.random.PRNGKey(0)
    hlo = lambda f: jax.jit(lambda k: f(k, 0.5, (16, 16))).lower(key).compile().as_text()
    ours, ref = hlo(lowering.bernoulli), hlo(jax.random.bernoulli)
    assert " while(" not in ours and " conditional(" in ours
    assert " while(" in ref and " conditional(" not in ref


@pytest.mark.parametrize(
    ("rate", "broadcast_dims"), [(0.45, ()), (0.2, (1,)), (0.5, (-1,)), (1.0, ()), (0.0, ())]
)
def test_dropout_equals_flax_dropout_values_and_gradients(rate, broadcast_dims):
    x = normal(np.random.default_rng(3), (4, 6, 5))
    rngs = {"dropout": jax.random.PRNGKey(11)}

    def value_and_grad(module):
        loss = lambda x: jnp.sum(jnp.sin(module.apply({}, x, deterministic=False, rngs=rngs)))
        return jax.jit(jax.value_and_grad(loss))(x)

    ours = value_and_grad(blocks.Dropout(rate, broadcast_dims))
    ref = value_and_grad(nn.Dropout(rate, broadcast_dims))
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    same = blocks.Dropout(rate).apply({}, x, deterministic=True)
    np.testing.assert_array_equal(same, x)


@pytest.mark.parametrize(
    ("name", "field", "small"),
    [
        ("transformer", "num_layers", {"d_model": 8, "num_heads": 2, "d_ff": 16}),
        ("seq2seq", "num_layers", {"units": 8, "embed_dim": 4}),
        ("xception", "middle_blocks", {"width": 1 / 16, "small": True, "num_classes": 10}),
    ],
)
def test_layer_stacks_over_the_device_memory_fail_before_they_are_built(
    monkeypatch, name, field, small
):
    """`check_stack`'s per-layer count is a lower bound of the layer's real parameters, and the
    bound is the memory: the deepest stack that fits builds, one layer more is refused."""
    card = zoo_jax.get_card(name)
    shape = card.small_input_shape or card.input_shape
    calls = []
    monkeypatch.setattr(checks, "check_stack", lambda *args: calls.append(args))
    counts = [
        zoo_jax.registry._count(zoo_jax.get_model(name, **small, **{field: n}), shape, card)
        for n in (1, 2)
    ]
    params_each = calls[-1][3]
    assert calls[-1][1:3] == (field, 2) and 0 < params_each <= counts[1] - counts[0]
    monkeypatch.undo()
    monkeypatch.setattr(checks, "memory_bytes", lambda: 4 * params_each * 3)
    zoo_jax.registry._count(zoo_jax.get_model(name, **small, **{field: 3}), shape, card)
    with pytest.raises(ZooError, match=rf"{field} = 4 needs at least .* GiB for the parameters"):
        zoo_jax.registry._count(zoo_jax.get_model(name, **small, **{field: 4}), shape, card)
