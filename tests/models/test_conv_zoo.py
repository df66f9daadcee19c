"""The convolutional zoo: exact parameter counts at the ImageNet configuration (no arrays
allocated), a forward pass of every model's small-image configuration, one update of each
family, and the building blocks against PyTorch."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
import torch

import zoo_jax
from zoo_jax import losses, optim, registry
from zoo_jax.errors import InputError
from zoo_jax.learners import AUX_WEIGHT, GradientLearner
from zoo_jax.models import blocks, convolutional
from zoo_jax.train.state import TrainState

# torchvision.models (parameters(), i.e. trainable, BN statistics are buffers), as the
# torchvision documentation lists them; Caffe's bvlc_alexnet; LeCun et al. 1998.
REFERENCE = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248, "alexnet": 61_100_840, "googlenet": 13_004_888,
    "alexnet_caffe": 60_965_224, "lenet5": 60_000,
}  # fmt: skip
# keras.applications, trainable weights (Keras's count_params adds BN moving statistics).
KERAS = {
    "resnet50_keras": "ResNet50", "preact_resnet50": "ResNet50V2",
    "preact_resnet101": "ResNet101V2", "preact_resnet152": "ResNet152V2",
    "xception": "Xception",
}  # fmt: skip
CONV_ZOO = [  # the classifiers; the generator (deconv_net) has tests/models/test_deconv_net.py
    n for n in zoo_jax.list_models()
    if registry.get_card(n).small_input_shape and registry.get_card(n).learner == "gradient"
]  # fmt: skip


def _params(model, shape):
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, *shape)))
    return variables["params"]


def random_variables(model, x, seed=0):
    """Variables of `model` drawn with NumPy from the abstract init: compiling Flax's
    initialisers for a 150-layer network costs more CPU time than the tests themselves."""
    rng = np.random.default_rng(seed)
    abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)

    def draw(path, leaf):
        name = getattr(path[-1], "key", "")
        if name in ("var", "scale"):
            return np.ones(leaf.shape, leaf.dtype)
        if name in ("mean", "bias"):
            return np.zeros(leaf.shape, leaf.dtype)
        fan_in = math.prod(leaf.shape[:-1]) or 1
        return (rng.normal(size=leaf.shape) / math.sqrt(fan_in)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def _count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameter_counts_equal_the_reference(name):
    assert registry.count_params(name) == REFERENCE[name]


def test_googlenet_without_auxiliary_heads_is_torchvisions_6_6m():
    model = registry.get_model("googlenet", aux_logits=False)
    assert registry.count_params(model, (224, 224, 3)) == 6_624_904


@pytest.mark.parametrize("name", sorted(KERAS))
def test_parameter_counts_equal_keras_applications(name):
    reference = getattr(keras.applications, KERAS[name])(weights=None)
    expected = sum(math.prod(w.shape) for w in reference.trainable_weights)
    assert registry.count_params(name) == expected
    assert registry.get_card(name).input_shape == tuple(reference.input_shape[1:])


def test_xception_total_with_bn_statistics_is_keras_22_910_480():
    model = registry.get_model("xception")
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3)))
    assert _count(variables) == 22_910_480  # params + batch_stats: Keras's convention


def test_zfnet_and_googlenet_paper_counts_from_their_tables():
    """No library ships these two; the counts follow from the papers' layer tables."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout
    zfnet = (conv(7, 3, 96) + conv(5, 96, 256) + conv(3, 256, 384) + conv(3, 384, 384)
             + conv(3, 384, 256) + conv(1, 256 * 36, 4096) + conv(1, 4096, 4096)
             + conv(1, 4096, 1000))  # fmt: skip
    assert registry.count_params("zfnet") == zfnet == 62_357_608

    inputs = {"3a": 192, "3b": 256, "4a": 480, "4b": 512, "4c": 512, "4d": 512, "4e": 528,
              "5a": 832, "5b": 832}  # fmt: skip
    inception = sum(
        conv(1, cin, c1) + conv(1, cin, r3) + conv(3, r3, c3) + conv(1, cin, r5)
        + conv(5, r5, c5) + conv(1, cin, cp)
        for name, cin in inputs.items()
        for c1, r3, c3, r5, c5, cp in [convolutional.INCEPTION[name]]
    )  # fmt: skip
    stem = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
    aux = lambda cin: conv(1, cin, 128) + conv(1, 2048, 1024) + conv(1, 1024, 1000)
    total = stem + inception + conv(1, 1024, 1000)
    paper = registry.get_model("googlenet_paper", aux_logits=False)
    assert registry.count_params(paper, (224, 224, 3)) == total
    assert registry.count_params("googlenet_paper") == total + aux(512) + aux(528)


def test_lenet5_keras_equals_the_seed_keras_model():
    seed = keras.Sequential([
        keras.Input((32, 32, 1)),
        keras.layers.Conv2D(6, (3, 3), activation="relu"), keras.layers.AveragePooling2D(2),
        keras.layers.Conv2D(16, (3, 3), activation="relu"), keras.layers.AveragePooling2D(2),
        keras.layers.Flatten(), keras.layers.Dense(120, activation="relu"),
        keras.layers.Dense(84, activation="relu"), keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    assert registry.count_params("lenet5_keras") == seed.count_params() == 81_194


def test_lenet5_c3_connection_table():
    table = convolutional.LENET_C3_TABLE
    assert len(table) == 16 and sum(map(len, table)) == 60
    assert [len(t) for t in table] == [3] * 6 + [4] * 9 + [6]
    params = _params(convolutional.LeNet5(), (32, 32, 1))
    assert params["C3_kernel"].shape == (5, 5, 60)  # 60 × 25 + 16 biases = 1,516
    assert _count({k: v for k, v in params.items() if k.startswith("Subsampling")}) == 12 + 32


def test_lenet5_paper_input_scale_maps_background_and_ink():
    x = np.random.default_rng(0).random((2, 32, 32, 1), np.float32)
    params = jax.jit(convolutional.LeNet5().init)(jax.random.PRNGKey(1), x)
    scaled = jax.jit(convolutional.LeNet5().apply)(params, x)
    # Section II-A: background (0) -> -0.1, ink (1) -> 1.175
    unscaled = jax.jit(convolutional.LeNet5(paper_input_scale=False).apply)(params, x * 1.275 - 0.1)
    np.testing.assert_allclose(np.asarray(scaled), np.asarray(unscaled), rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("cnn", (2, 28, 28), r"DeepConvNet takes images \(batch, height, width, channels\)"),
        ("resnet18", (2, 1, 28, 28), r"\(2, 1, 28, 28\) looks channels-first"),
        ("cnn_tf", (2, 3, 32, 32), "looks channels-first: pass x.transpose"),
        ("xception", (2, 3, 28, 28), "looks channels-first"),
        ("googlenet", (2, 28, 28), "GoogLeNet takes images"),
        ("lenet5", (2, 8, 8, 1), "5×5 convolution does not fit a 2×2 feature map"),
        (
            "lenet5_keras",
            (2, 8, 8, 1),
            r"too small for KerasLeNet: its feature map is \(0, 0, 16\)",
        ),
        ("vgg11", (2, 8, 8, 1), "3×3 convolution does not fit a 0×0 feature map"),
        ("zfnet", (2, 8, 8, 1), "5×5 convolution does not fit a 4×4 feature map"),
        ("alexnet_caffe", (2, 8, 8, 1), "too small for this AlexNet / ZFNet / VGG"),
    ],
)
def test_wrong_image_layouts_and_sizes_are_input_errors(name, shape, message):
    """Without the check, NCHW batches ran as 1- or 3-row images and returned logits; small
    inputs failed with a division by zero in an initialiser or a concatenation error."""
    overrides, _, _ = registry.training_spec(name, registry.get_card(name).test_overrides)
    model = zoo_jax.get_model(name, **overrides)
    with pytest.raises(InputError, match=message):
        jax.eval_shape(model.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct(shape, jnp.float32))


@pytest.mark.parametrize("name", CONV_ZOO)
def test_small_configuration_forward(name):
    """Every conv-zoo card at the training configuration, reduced width."""
    card = registry.get_card(name)
    overrides, shape, classes = registry.training_spec(name, card.test_overrides)
    model = zoo_jax.get_model(name, **overrides)
    x = jnp.asarray(np.random.default_rng(0).random((2, *shape), np.float32))
    logits = jax.jit(model.apply)(random_variables(model, x), x)
    chex.assert_shape(logits, (2, classes))
    chex.assert_tree_all_finite(logits)


@pytest.mark.parametrize(
    ("name", "extra"),
    [("lenet5", {}), ("alexnet_caffe", {}), ("resnext50_32x4d", {}), ("preact_resnet18", {}),
     ("xception", {"middle_blocks": 1})],
)  # fmt: skip
def test_one_jitted_update_per_family(name, extra):
    """Gradients flow through each family's blocks (BN statistics, grouped convolutions,
    LeNet's connection table); `test_loop` trains ResNet-18 and LeNet-5 through `fit`."""
    overrides, shape, _ = registry.training_spec(name, registry.get_card(name).test_overrides)
    model = zoo_jax.get_model(name, **{**overrides, **extra})
    rng = np.random.default_rng(0)
    batch = {"inputs": rng.random((4, *shape), np.float32), "labels": np.arange(4, dtype=np.int32)}
    learner = GradientLearner(model, losses.for_classifier("sparse_categorical_crossentropy"),
                              optim.make("sgd", learning_rate=0.01))  # fmt: skip
    variables = dict(random_variables(model, jnp.asarray(batch["inputs"])))
    params = variables.pop("params")
    state = TrainState(jnp.zeros((), jnp.int32), params, learner.optimizer.init(params),
                       variables, jax.random.PRNGKey(1))  # fmt: skip
    new_state, metrics = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(1))
    assert bool(metrics["finite"]) and int(new_state.step) == 1
    chex.assert_tree_all_finite(new_state.params)
    changed = lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b)))
    grads_reached = jax.tree.map(changed, params, new_state.params)
    assert np.mean(jax.tree.leaves(grads_reached)) > 0.9  # (ReLU can silence a few units)
    if new_state.model_state:  # batch statistics moved
        moved = jax.tree.map(changed, state.model_state, new_state.model_state)
        assert all(jax.tree.leaves(moved))


def test_auxiliary_heads_count_0_3_in_the_loss():
    """GoogLeNet returns (logits, aux1, aux2) in training; the learner adds 0.3 × each."""
    model = zoo_jax.get_model("googlenet", small=True, num_classes=10, width=1 / 16)
    x = jnp.asarray(np.random.default_rng(0).random((2, 28, 28, 1), np.float32))
    variables = random_variables(model, x)
    train = jax.jit(
        lambda v, x: model.apply(
            v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(1)}
        )[0]
    )
    outputs = train(variables, x)
    assert isinstance(outputs, tuple) and [o.shape for o in outputs] == [(2, 10)] * 3
    assert jax.jit(model.apply)(variables, x).shape == (2, 10)  # evaluation: main head only
    assert AUX_WEIGHT == 0.3


@pytest.mark.parametrize(
    ("size", "window", "stride", "padding"),
    [(13, 3, 2, 0), (26, 3, 2, 1), (14, 3, 2, 0), (7, 2, 2, 0)],
)
def test_ceil_mode_pooling_equals_torch(size, window, stride, padding):
    x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype(np.float32)
    ours = blocks.pool(jnp.asarray(x), "max", window, stride, padding, ceil_mode=True)
    pool = torch.nn.MaxPool2d(window, stride, padding, ceil_mode=True)
    theirs = pool(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(np.asarray(ours), theirs)


def test_local_response_norm_equals_torch():
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 16)).astype(np.float32)
    ours = blocks.local_response_norm(jnp.asarray(x), size=5, alpha=1e-4 / 5, beta=0.75, k=1.0)
    lrn = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)  # torch divides α by n
    theirs = lrn(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-6)


def test_separable_conv_equals_keras():
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 4)).astype(np.float32)
    reference = keras.layers.SeparableConv2D(6, 3, padding="same", use_bias=False)
    expected = reference(x)
    depthwise, pointwise = (np.asarray(w) for w in reference.get_weights())
    params = {"depthwise": depthwise.transpose(0, 1, 3, 2), "pointwise": pointwise}
    ours = blocks.SeparableConv2D(6).apply({"params": params}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kind", "version"), [("basic", "1.5"), ("bottleneck", "1.5"), ("bottleneck", "1")]
)
def test_zero_init_residual_blocks_start_as_their_shortcut(kind, version):
    planes = 4
    shape = (2, 6, 6, planes * (4 if kind == "bottleneck" else 1))
    x = np.maximum(np.random.default_rng(0).standard_normal(shape, np.float32), 0)

    @functools.partial(jax.jit, static_argnums=0)  # a Flax module is hashable
    def init_and_train(module):
        variables = module.init(jax.random.PRNGKey(1), x, train=False)
        return module.apply(variables, x, train=True, mutable=["batch_stats"])[0]

    block = convolutional.ResidualBlock(planes, 1, kind, version, zero_init_residual=True)
    np.testing.assert_array_equal(np.asarray(init_and_train(block)), x)  # relu(0 + x) = x
    plain = convolutional.ResidualBlock(planes, 1, kind, version)
    assert not np.allclose(np.asarray(init_and_train(plain)), x)


def test_zero_init_residual_reaches_every_block():
    model = registry.get_model(
        "resnet50", width=0.125, small=True, num_classes=10, zero_init_residual=True
    )
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
    scales = [
        v
        for path, v in jax.tree_util.tree_leaves_with_path(params)
        if "scale" in jax.tree_util.keystr(path)
    ]
    zeros = sum(not np.any(np.asarray(s)) for s in scales)
    assert zeros == sum(convolutional.RESNET_DEPTHS[50][1]) == 16  # one per block


@pytest.mark.parametrize(
    ("name", "width", "minimum"),
    [("resnext50_32x4d", 0.2, "0.25"), ("resnext101_32x8d", 0.1, "0.125")],
)
def test_resnext_width_too_small_for_its_groups_is_a_clear_error(name, width, minimum):
    """int(planes · base_width / 64) = 0 channels per group would be a zero-size kernel."""
    model = registry.get_model(name, width=width, small=True, num_classes=10)
    x = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)  # raised while tracing: no arrays
    with pytest.raises(zoo_jax.ZooError, match=f"no channels per group.*width >= {minimum}"):
        jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    wide_enough = registry.get_model(name, width=float(minimum), small=True, num_classes=10)
    jax.eval_shape(wide_enough.init, jax.random.PRNGKey(0), x)
