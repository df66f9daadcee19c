"""Test set-up: 4 forced CPU devices (before JAX initialises), offline data, shared fixtures.

Compilation, not execution, is what the suite spends its time on (tiny models, a few steps),
so the tests compile with LLVM's optimisation level 0 (ResNet-18's initialiser: 13 s -> 2 s
on 2 cores), share compiled programs between tests through a persistent cache of their own
(one per process: JAX's cache writes are not atomic), and run on pytest-xdist workers, one
per core up to 4 (`-n auto` in pyproject.toml). On this project's 2-core machine the whole
suite went from 33 to 12 minutes. Tests also compile what they check whole (`jax.jit` of
`init`, `apply`, `update`, a gradient; Keras's `predict`) and draw inputs with NumPy:
run eagerly, every operation compiles on its own for each new shape (the one-layer
Transformer's greedy-decoding test took 27 s eagerly, 5 s compiled); that took the suite
from about 9.5 to 7.5 minutes. The two tests that count every card's parameters share a
worker (`xdist_group`, `--dist loadgroup`), which traces the 50 models once. Subprocesses
(the CLI, the notebook's kernel) inherit the settings through the environment. Users' runs
keep XLA's defaults. The two levels agree to float32 rounding, not bitwise (vectorised code
sums in another order: after 4 steps of the seed CNN the parameters differ by at most 7e-8,
ResNet-18's by 2e-6); the bitwise tests compare runs at the same level.
"""

import atexit
import os
import shutil
import tempfile

FLAGS = os.environ.get("XLA_FLAGS", "").split()
for flag in ("--xla_backend_optimization_level=0", "--xla_force_host_platform_device_count=4"):
    if not any(f.startswith(flag.split("=")[0]) for f in FLAGS):
        FLAGS.append(flag)
os.environ["XLA_FLAGS"] = " ".join(FLAGS)
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the tests' devices are the 4 forced CPUs
XLA_CACHE = tempfile.mkdtemp(prefix="zoo_jax_xla_cache_")
atexit.register(shutil.rmtree, XLA_CACHE, ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = XLA_CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
os.environ["ZOO_JAX_OFFLINE"] = "1"  # tests never download
# The user cache (`zoo-jax list`'s parameter counts) is the tests' own: counted, not read back.
os.environ["XDG_CACHE_HOME"] = os.path.join(XLA_CACHE, "user_cache")
os.environ["KERAS_BACKEND"] = "jax"  # Keras 3 is the reference for optimizers, losses, layers
os.environ["ZOO_JAX_DATA"] = os.path.abspath(  # absolute: notebooks and subprocesses chdir
    os.environ.get("ZOO_JAX_DATA")
    or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
)

import numpy as np  # noqa: E402 (after the environment above: JAX reads it on import)
import pytest  # noqa: E402

from zoo_jax.data import vision  # noqa: E402


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


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most 4 (each holds JAX, PyTorch and Keras in memory)."""
    return min(os.cpu_count() or 1, 4)
