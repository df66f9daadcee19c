"""The dataset registry: token datasets shaped for their models, bad names and bad tokens."""

import re

import numpy as np
import pytest

from zoo_jax.data import datasets, pipeline, text
from zoo_jax.errors import InputError, UnknownNameError


def test_chars_are_next_character_windows():
    x, y = datasets.load("chars", "validation", (64,))
    assert x.shape == y.shape and x.shape[1] == 64 and x.dtype == np.int32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # labels are the inputs shifted by one
    np.testing.assert_array_equal(x[1, 0], y[0, -1])  # windows follow each other
    assert len(x) == (len(text.load_chars().validation) - 1) // 64
    assert x.min() >= 0 and x.max() < text.CHAR_VOCAB_SIZE


def test_dates_are_padded_sources_and_bos_iso_eos_targets():
    x, y = datasets.load("dates", "long", (32,))
    assert x.shape == (datasets.DATES_SIZES["long"], 32) and y.shape == (len(x), 12)
    assert (y[:, 0] == text.BOS).all() and (y[:, -1] == text.EOS).all()
    assert ((x != text.PAD).sum(1) > text.DATES_TRAIN_MAX_LEN).all()  # longer than training
    assert text.decode_dates(y[0]) == datasets.date_pairs("long", 32).iso[0]


@pytest.mark.parametrize(
    "name, split, shape", [("mnist", "test", (28, 28, 1)), ("chars", "validation", (64,)),
                           ("dates", "long", (32,))]
)  # fmt: skip
def test_a_limit_is_the_first_examples(name, split, shape):
    x, y = datasets.load(name, split, shape)
    x_few, y_few = datasets.load(name, split, shape, limit=100)
    assert x_few.shape == (100, *x.shape[1:]) and len(y_few) == 100
    np.testing.assert_array_equal(x_few, x[:100])
    np.testing.assert_array_equal(y_few, y[:100])


def test_unknown_dataset_and_split_list_the_choices():
    with pytest.raises(UnknownNameError, match="did you mean 'chars'"):
        datasets.load("chras", "train", (8,))
    with pytest.raises(UnknownNameError, match="validation"):
        datasets.load("dates", "valid", (32,))
    assert datasets.canonical("fashion_mnist") == "fashion-mnist"
    assert datasets.sample_inputs("dates", (32,)).dtype == np.int32


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((2, 5), np.float32), "integer token ids"),
        (np.zeros(5, np.int32), "shape (n, length)"),  # (n, length, …) is bAbI's: allowed
        (np.full((2, 5), 97, np.int32), "[0, 97), got values in [97, 97]"),
        (np.full((2, 5), -1, np.int32), "got values in [-1, -1]"),
    ],
)
def test_bad_tokens_are_refused(x, message):
    with pytest.raises(InputError, match=re.escape(message)):
        pipeline.validate_tokens(x, 97)
