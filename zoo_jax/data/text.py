"""Sequence tasks for the recurrent and attention zoo, made offline.

- `chars`: character-level language modelling on real English text that ships with Python,
  `pydoc_data.topics` (the help texts of the language reference, 79 documents in 3.11),
  split into train / validation / test *by document* (SHA-256 of the topic name mod 10: 0
  test, 1 validation, else train), so no test paragraph was seen in training. The
  vocabulary is fixed, `CHAR_VOCAB` (newline and printable ASCII, ids 1-96), so it does not
  change with the Python release; id 0 stands for any other character (typographic quotes,
  dashes, °: 0.12 % of the training split). Reported in bits per character.
- `dates`: a date written in one of `DATE_FORMATS` human formats ("Wed 3 Mar 2021",
  "the 3rd of March, 2021", "03/03/2021", …) → ISO 8601 ("2021-03-03"). Translating needs
  alignment (day, month and year move, words become numbers). Inputs longer than
  `DATES_TRAIN_MAX_LEN` characters never occur in training: the `long` split tests
  generalisation to lengths beyond those seen. Reported as exact-sequence accuracy.

Token ids: `PAD` 0, `BOS` 1, `EOS` 2 for the dates task, then the characters.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random

import numpy as np

from zoo_jax.errors import DataError

PAD, BOS, EOS = 0, 1, 2
CHAR_VOCAB = "\n" + "".join(map(chr, range(32, 127)))
CHAR_VOCAB_SIZE = len(CHAR_VOCAB) + 1  # id 0: a character outside CHAR_VOCAB


# --- character-level language modelling ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CharCorpus:
    """The three splits as id arrays, the vocabulary, and where the text came from."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    vocab: str  # vocab[i] is id i + 1; id 0 is "a character not in the vocabulary"
    documents: dict[str, list[str]]  # split -> topic names
    sha256: str  # of the whole corpus, in topic-name order

    def encode(self, text: str) -> np.ndarray:
        index = {c: i + 1 for i, c in enumerate(self.vocab)}
        return np.array([index.get(c, 0) for c in text], np.int32)

    def decode(self, ids) -> str:
        return "".join(self.vocab[i - 1] if i > 0 else "\ufffd" for i in np.asarray(ids))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + 1


def _split_of(name: str) -> str:
    bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10
    return {0: "test", 1: "validation"}.get(bucket, "train")


def load_chars() -> CharCorpus:
    """`pydoc_data.topics` split by document; documents joined by a blank line."""
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # stripped Python builds leave pydoc_data out
        raise DataError("this Python has no pydoc_data.topics (the character corpus)") from err
    names = sorted(topics)
    documents = {"train": [], "validation": [], "test": []}
    for name in names:
        documents[_split_of(name)].append(name)
    texts = {split: "\n\n".join(topics[n] for n in docs) for split, docs in documents.items()}
    vocab = CHAR_VOCAB
    digest = hashlib.sha256("".join(topics[n] for n in names).encode()).hexdigest()
    corpus = CharCorpus(np.zeros(0), np.zeros(0), np.zeros(0), vocab, documents, digest)
    return dataclasses.replace(
        corpus, **{split: corpus.encode(text) for split, text in texts.items()}
    )


def lm_windows(ids: np.ndarray, length: int) -> np.ndarray:
    """Non-overlapping windows of `length + 1` ids: inputs `w[:, :-1]`, targets `w[:, 1:]`."""
    n = (len(ids) - 1) // length
    if n < 1:
        raise DataError(f"{len(ids)} characters cannot fill one window of {length + 1}")
    starts = np.arange(n) * length
    return np.stack([ids[s : s + length + 1] for s in starts])


# --- dates → ISO 8601 ------------------------------------------------------------------------

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# Each format renders a datetime.date as a human would write it.
DATE_FORMATS = {
    "iso_slashes": lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
    "us_numeric": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
    "european_dots": lambda d: f"{d.day}.{d.month}.{d.year}",
    "day_month_year": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "month_day_year": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "short_month": lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
    "short_weekday": lambda d: (
        f"{WEEKDAYS[d.weekday()][:3]} {d.day} {MONTHS[d.month - 1][:3]} {d.year}"
    ),
    "long_weekday": lambda d: f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
    "ordinal": lambda d: f"the {_ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}",
    "lower_ordinal": lambda d: f"{_ordinal(d.day)} {MONTHS[d.month - 1].lower()} {d.year}",
}
DATE_CHARS = "".join(sorted(set(
    "".join(f(datetime.date(2000, m, d)) for f in DATE_FORMATS.values()
            for m in range(1, 13) for d in (1, 2, 3, 11, 22, 28))
    + "0123456789-"
)))  # fmt: skip
DATES_TRAIN_MAX_LEN = 24  # longer inputs only in the "long" split
FIRST_DAY, DAYS = datetime.date(1950, 1, 1), 100 * 365 + 25  # 1950-01-01 … 2049-12-31


def date_ids(text: str) -> list[int]:
    index = {c: i + 3 for i, c in enumerate(DATE_CHARS)}
    try:
        return [index[c] for c in text]
    except KeyError as err:
        raise DataError(f"character {err.args[0]!r} is not in the dates vocabulary") from None


def decode_dates(ids) -> str:
    """Characters of ids up to the first EOS (PAD and BOS skipped)."""
    out = []
    for i in np.asarray(ids).tolist():
        if i == EOS:
            break
        if i > EOS:
            out.append(DATE_CHARS[i - 3])
    return "".join(out)


@dataclasses.dataclass(frozen=True)
class DatePairs:
    """Source ids `(n, source_len)` (PAD-padded), target ids `(n, 12)` = BOS, 10 ISO
    characters, EOS; `lengths` of the sources; the texts and each pair's format."""

    sources: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray
    texts: list[str]
    iso: list[str]
    formats: list[str]


def make_dates(n: int, split: str, seed: int = 0, source_len: int = 32) -> DatePairs:
    """`n` pairs of `split` "train", "validation", "test" (inputs ≤ DATES_TRAIN_MAX_LEN
    characters) or "long" (longer inputs). The splits hold disjoint dates (the day's index
    since 1950-01-01 mod 10: 0 test, 1 validation, 2 long, else train), so no test date was
    seen in training in any format."""
    if split not in ("train", "validation", "test", "long"):
        raise DataError(f"dates split must be train, validation, test or long, got {split!r}")
    offset = {"train": 0, "validation": 1, "test": 2, "long": 3}[split]
    rng = random.Random(seed * 4 + offset)
    names = list(DATE_FORMATS)
    texts, iso, formats = [], [], []
    while len(texts) < n:
        day = rng.randrange(DAYS)
        if {0: "test", 1: "validation", 2: "long"}.get(day % 10, "train") != split:
            continue
        date = FIRST_DAY + datetime.timedelta(days=day)
        name = rng.choice(names)
        text = DATE_FORMATS[name](date)
        if (len(text) > DATES_TRAIN_MAX_LEN) != (split == "long") or len(text) > source_len:
            continue
        texts.append(text)
        iso.append(date.isoformat())
        formats.append(name)
    sources = np.full((n, source_len), PAD, np.int32)
    for i, text in enumerate(texts):
        sources[i, : len(text)] = date_ids(text)
    targets = np.array([[BOS, *date_ids(s), EOS] for s in iso], np.int32)
    lengths = np.array([len(t) for t in texts], np.int32)
    return DatePairs(sources, targets, lengths, texts, iso, formats)


DATE_VOCAB_SIZE = len(DATE_CHARS) + 3
