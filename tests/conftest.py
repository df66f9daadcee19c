"""Test set-up: 4 forced CPU devices (before JAX initialises), offline data, shared fixtures."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()
os.environ["ZOO_JAX_OFFLINE"] = "1"  # tests never download
os.environ["KERAS_BACKEND"] = "jax"  # Keras 3 is the reference for optimizers, losses, layers
os.environ["ZOO_JAX_DATA"] = os.path.abspath(  # absolute: notebooks and subprocesses chdir
    os.environ.get("ZOO_JAX_DATA")
    or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
)

import numpy as np
import pytest

from zoo_jax.data import vision


@pytest.fixture(scope="session")
def mnist_small():
    """The first 512 MNIST training and 256 test images, float32 in [0, 1], (n, 28, 28)."""
    x_train, y_train = vision.load("mnist", "train")
    x_test, y_test = vision.load("mnist", "test")
    f = lambda x: x.astype(np.float32) / 255
    return (
        f(x_train[:512]),
        y_train[:512].astype(np.int32),
        f(x_test[:256]),
        y_test[:256].astype(np.int32),
    )


@pytest.fixture
def mnist_flat(mnist_small):
    x_train, y_train, x_test, y_test = mnist_small
    return x_train.reshape(-1, 784), y_train, x_test.reshape(-1, 784), y_test
