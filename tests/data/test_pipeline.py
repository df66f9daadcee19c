"""Host-side validation: every bad input is an InputError that says expected vs. arrived."""

import jax
import numpy as np
import pytest

from zoo_jax.data import pipeline
from zoo_jax.errors import InputError
from zoo_jax.train.loop import RunConfig, fit


def test_labels_out_of_range():
    with pytest.raises(InputError, match=r"\[0, 10\), got values in \[-1, 9\]"):
        pipeline.validate_labels(np.array([-1, 3, 9]), 10, 3)
    with pytest.raises(InputError, match=r"got values in \[0, 10\]"):
        pipeline.validate_labels(np.array([0, 10]), 10, 2)
    with pytest.raises(InputError, match="integers"):
        pipeline.validate_labels(np.array([0.0, 1.0]), 10, 2)
    with pytest.raises(InputError, match=r"shape \(3,\)"):
        pipeline.validate_labels(np.array([0, 1]), 10, 3)


def test_wrong_rank_and_layout():
    with pytest.raises(InputError, match=r"NCHW.*transpose\(0, 2, 3, 1\)"):
        pipeline.validate_inputs(np.zeros((2, 1, 28, 28), np.float32), (28, 28, 1), "NHWC")
    with pytest.raises(InputError, match=r"\(n, 784\).*got \(2, 28, 28\).*reshape"):
        pipeline.validate_inputs(np.zeros((2, 28, 28), np.float32), (784,))


def test_non_finite_and_uint8():
    x = np.zeros((2, 784), np.float32)
    x[1, 5] = np.nan
    with pytest.raises(InputError, match="1 non-finite"):
        pipeline.validate_inputs(x, (784,))
    with pytest.raises(InputError, match=r"uint8.*astype\('float32'\) / 255"):
        pipeline.validate_inputs(np.zeros((2, 784), np.uint8), (784,))


def test_fit_rejects_bad_labels_before_any_device_work(mnist_flat):
    x_train, y_train, x_test, y_test = mnist_flat
    bad = y_train.copy()
    bad[7] = 12
    with pytest.raises(InputError, match=r"\[0, 10\)"):
        fit(RunConfig(model="mlp", epochs=1), None, data=(x_train, bad, x_test, y_test))


def test_eval_batches_pad_with_zero_weight():
    x, y = np.ones((5, 3), np.float32), np.arange(5)
    batches = list(pipeline.eval_batches(x, y, 4))
    assert [b["weight"].tolist() for b in batches] == [[1, 1, 1, 1], [1, 0, 0, 0]]
    assert all(b["inputs"].shape == (4, 3) for b in batches)


def test_epoch_order_is_a_fresh_permutation_per_epoch():
    key = jax.random.PRNGKey(0)
    a, b = pipeline.epoch_order(key, 0, 100), pipeline.epoch_order(key, 1, 100)
    assert sorted(a) == list(range(100)) and not np.array_equal(a, b)
    np.testing.assert_array_equal(a, pipeline.epoch_order(key, 0, 100))


def test_train_batches_drop_the_partial_batch_and_resume_mid_epoch():
    x, y = np.arange(10, dtype=np.float32)[:, None], np.arange(10)
    order = np.arange(10)
    assert len(list(pipeline.train_batches(x, y, 4, order))) == 2
    second = next(pipeline.train_batches(x, y, 4, order, start=1))
    assert second["labels"].tolist() == [4, 5, 6, 7]
