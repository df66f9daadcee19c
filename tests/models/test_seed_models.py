"""Seed models: output shapes, one finite update that changes every parameter, Keras semantics."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo_jax
from experiments.bench_vs_torch import torch_model
from zoo_jax import losses, optim, registry
from zoo_jax.learners import GradientLearner


@pytest.mark.parametrize("name", ["mlp", "cnn", "rnn", "cnn_tf"])
def test_output_shape_and_one_update(name):
    """The seed models, in their tiny test variants (the conv zoo: tests/models/test_conv_zoo.py)."""
    card = zoo_jax.get_card(name)
    overrides, input_shape, num_classes = registry.training_spec(name, card.test_overrides)
    model = zoo_jax.get_model(name, **overrides)
    rng = np.random.default_rng(0)
    batch = {
        "inputs": rng.random((4, *input_shape), dtype=np.float32),
        "labels": rng.integers(0, 10, 4).astype(np.int32),
    }
    learner = GradientLearner(
        model, losses.for_classifier(card.loss), optim.make("sgd", learning_rate=0.1)
    )
    state = learner.init(jax.random.PRNGKey(0), batch)
    logits = jax.jit(model.apply)({"params": state.params, **state.model_state}, batch["inputs"])
    chex.assert_shape(logits, (4, num_classes))
    new_state, metrics = jax.jit(learner.update)(state, batch, jax.random.PRNGKey(1))
    chex.assert_tree_all_finite(new_state.params)
    assert bool(metrics["finite"]) and np.isfinite(float(metrics["loss"]))
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           state.params, new_state.params)  # fmt: skip
    assert all(jax.tree.leaves(changed)), changed
    assert int(new_state.step) == 1


def test_rnn_input_dropout_uses_one_mask_for_all_steps():
    """Keras SimpleRNN(dropout=p) drops the same input features at every time step."""
    model = zoo_jax.get_model("rnn", units=4, dropout=0.5)
    x = jnp.ones((2, 28, 28))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    _, inter = jax.jit(
        lambda v, x: model.apply(
            v,
            x,
            train=True,
            rngs={"dropout": jax.random.PRNGKey(3)},
            capture_intermediates=lambda mdl, _: type(mdl).__name__ == "Dropout",
        )
    )(variables, x)
    dropped = inter["intermediates"]["Dropout_0"]["__call__"][0]
    assert bool(jnp.all(dropped == dropped[:, :1])), "mask differs across time steps"
    assert 0 < float(jnp.mean(dropped == 0)) < 1


def test_mlp_linear_activation_is_linear():
    model = zoo_jax.get_model("mlp", hidden=(8, 8), dropout=0.0, activation="linear")
    x = np.random.default_rng(0).standard_normal((3, 784), np.float32)
    v = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    apply = jax.jit(model.apply)
    np.testing.assert_allclose(
        apply(v, 2 * x) - apply(v, np.zeros_like(x)),
        2 * (apply(v, x) - apply(v, np.zeros_like(x))),
        rtol=1e-4,
        atol=1e-5,
    )


def test_seed_cnn_matches_pytorch_forward_and_gradients():
    """The CNN (`Conv2D`'s CPU choice, reshape pooling, pooled before the ReLU) against
    torch.nn (ReLU, then pool) with the same weights: logits and every parameter's gradient."""
    torch = pytest.importorskip("torch")
    model = zoo_jax.get_model("cnn")
    rng = np.random.default_rng(0)
    x = rng.random((3, 28, 28, 1), dtype=np.float32)
    cotangent = rng.normal(size=(3, 10)).astype(np.float32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
    ours = np.asarray(jax.jit(model.apply)({"params": params}, x))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x) * cotangent)))(params)

    net, _, _ = torch_model("cnn")  # the PyTorch peer of the speed benchmark
    net.eval()  # dropout off
    convs = dict(zip(["Conv2D_0", "Conv2D_1", "Conv2D_2"], [net[0], net[3], net[6]], strict=True))
    with torch.no_grad():
        for name, layer in convs.items():
            layer.weight.copy_(
                torch.from_numpy(np.asarray(params[name]["kernel"]).transpose(3, 2, 0, 1).copy())
            )
            layer.bias.copy_(torch.from_numpy(np.array(params[name]["bias"])))
        # Flax flattens HWC, torch CHW: permute the dense kernel's rows accordingly.
        kernel = np.asarray(params["Dense_0"]["kernel"]).reshape(3, 3, 64, 10).transpose(2, 0, 1, 3)
        net[10].weight.copy_(torch.from_numpy(kernel.reshape(576, 10).T.copy()))
        net[10].bias.copy_(torch.from_numpy(np.array(params["Dense_0"]["bias"])))
    logits = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    (logits * torch.from_numpy(cotangent)).sum().backward()
    np.testing.assert_allclose(ours, logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    for name, layer in convs.items():
        their_kernel = layer.weight.grad.numpy().transpose(2, 3, 1, 0)
        np.testing.assert_allclose(grads[name]["kernel"], their_kernel, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            grads[name]["bias"], layer.bias.grad.numpy(), rtol=1e-4, atol=1e-5
        )
    their_dense = net[10].weight.grad.numpy().T.reshape(64, 3, 3, 10).transpose(1, 2, 0, 3)
    np.testing.assert_allclose(
        grads["Dense_0"]["kernel"], their_dense.reshape(576, 10), rtol=1e-4, atol=1e-5
    )
