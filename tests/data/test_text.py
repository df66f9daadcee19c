"""The sequence tasks: the pydoc character corpus split by document, and dates → ISO 8601
checked against `datetime.strptime` reading each format back."""

import datetime
import re

import numpy as np
import pytest

from zoo_jax.data import text
from zoo_jax.errors import DataError

STRPTIME = {  # an independent reader for each human format
    "iso_slashes": "%Y/%m/%d", "us_numeric": "%m/%d/%Y", "european_dots": "%d.%m.%Y",
    "day_month_year": "%d %B %Y", "month_day_year": "%B %d, %Y", "short_month": "%b %d, %Y",
    "short_weekday": "%a %d %b %Y", "long_weekday": "%A, %B %d, %Y",
}  # fmt: skip
ORDINAL = re.compile(r"(?:the )?(\d+)(st|nd|rd|th)(?: of)? (\w+),? (\d{4})")


def test_char_corpus_is_split_by_document():
    corpus = text.load_chars()
    docs = corpus.documents
    assert not set(docs["train"]) & set(docs["test"]) and not set(docs["train"]) & set(
        docs["validation"]
    )
    assert len(docs["test"]) >= 5 and len(docs["validation"]) >= 3
    assert len(corpus.train) > 5 * len(corpus.test) > 0
    from pydoc_data.topics import topics

    first = topics[docs["train"][0]]
    ascii_only = "".join(c if c in text.CHAR_VOCAB else "\ufffd" for c in first)
    assert corpus.decode(corpus.train[: len(first)]) == ascii_only  # ids round-trip
    assert corpus.vocab_size == text.CHAR_VOCAB_SIZE == 97
    assert 0 < np.mean(corpus.train == 0) < 0.005  # few characters outside the vocabulary
    assert text.load_chars().sha256 == corpus.sha256  # deterministic


def test_lm_windows_shift_by_one():
    ids = np.arange(23)
    windows = text.lm_windows(ids, 5)
    assert windows.shape == (4, 6)
    np.testing.assert_array_equal(windows[1], np.arange(5, 11))
    with pytest.raises(DataError, match="cannot fill"):
        text.lm_windows(ids[:3], 5)


@pytest.mark.parametrize("split", ["train", "test", "long"])
def test_dates_targets_are_the_iso_form_of_the_sources(split):
    pairs = text.make_dates(500, split, seed=1)
    for source, iso, fmt, ids in zip(pairs.texts, pairs.iso, pairs.formats, pairs.sources,
                                     strict=True):  # fmt: skip
        if fmt in STRPTIME:
            assert datetime.datetime.strptime(source, STRPTIME[fmt]).date().isoformat() == iso
        else:  # ordinals: "the 3rd of March, 2021", "3rd march 2021"
            day, suffix, month, year = ORDINAL.fullmatch(source).groups()
            month = [m.lower() for m in text.MONTHS].index(month.lower()) + 1
            assert datetime.date(int(year), month, int(day)).isoformat() == iso
            teen = day in ("11", "12", "13")
            assert suffix == (
                "th" if teen else {"1": "st", "2": "nd", "3": "rd"}.get(day[-1], "th")
            )
        assert text.decode_dates(ids) == source
    assert {text.decode_dates(t) for t in pairs.targets} == set(pairs.iso)
    assert (pairs.targets[:, 0] == text.BOS).all() and (pairs.targets[:, -1] == text.EOS).all()
    long = pairs.lengths > text.DATES_TRAIN_MAX_LEN
    assert long.all() if split == "long" else not long.any()


def test_date_splits_hold_disjoint_dates():
    seen = {s: set(text.make_dates(2000, s).iso) for s in ("train", "validation", "test", "long")}
    assert not seen["train"] & (seen["test"] | seen["validation"] | seen["long"])
    assert len(set(text.make_dates(2000, "train").formats)) == len(text.DATE_FORMATS)
