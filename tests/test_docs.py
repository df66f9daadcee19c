"""The examples in zoo_jax's docstrings run (`help(zoo_jax)`, the loss catalogue, the
optimizers, the registry): a doctest per module of the package."""

import doctest
import importlib
import pkgutil

import zoo_jax


def test_every_docstring_example_runs():
    attempted, failed = {}, {}
    for info in pkgutil.walk_packages(zoo_jax.__path__, "zoo_jax."):
        module = importlib.import_module(info.name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
        attempted[info.name], failed[info.name] = result.attempted, result.failed
    importlib.import_module("zoo_jax")
    top = doctest.testmod(zoo_jax, optionflags=doctest.ELLIPSIS, report=False)
    assert top.failed == 0 and top.attempted >= 5  # help(zoo_jax)'s own examples
    assert not any(failed.values()), {k: v for k, v in failed.items() if v}
    assert attempted["zoo_jax.losses"] >= 3 and attempted["zoo_jax.optim"] >= 5
