"""Real images with generated text, for the two systems of seed 002 beyond the chart.

    x, y = load("digit-canvases", "train")       # (n, 64, 64, 1) canvases, (n, 21) captions
    x, y = load("mnist-sentences", "unseen")     # (n, 28, 28, 1) digits, (n, 8) sentences
    decode(y[0])                                 # "a 3 top left , a 7 bottom right"

Every caption is derived in code from the image and its label; nothing is typed by hand.

- `digit-canvases` (Show, Attend and Tell): 2 to 4 MNIST digits placed in the cells of a
  2×2 grid on a 64×64 canvas (each 28×28 digit at a random offset of 0–4 pixels inside its
  32×32 cell), captioned in reading order: "a 3 top left , a 7 bottom right". A layout is
  the set of occupied cells; of the 11 layouts, `HELDOUT_LAYOUTS` never appear in training.
  Splits: `train` (MNIST training digits but the last `VALIDATION_DIGITS`), `validation`
  (those), `test` (MNIST test digits, the training layouts) and `heldout` (MNIST test
  digits, the held-out layouts). Labels are BOS + words + EOS, PAD-padded to `CAPTION_LEN`.
- `mnist-sentences`, `fashion-sentences` (text to image): single images described by their
  class and two attributes measured on the image (`measure`): for digits stroke thickness
  (the ink, Σ intensities) and slant (the shear −μ₁₁/μ₀₂ of the image moments, the
  deskewing angle); for clothing size (the share of pixels above 0.1) and brightness (the
  mean of those pixels). Each attribute is standardised within its class on the training
  images (so it says how this 3 differs from other 3s, not how a 1 differs from an 8) and
  cut at the training set's tertiles into three words. Sentences follow one of
  `TEMPLATES[:3]`, drawn at random ("a thick 3 , right-slanted", "this 3 is upright and
  thin", …). Splits: `train`, `test` (test images, the training templates) and `unseen`
  (test images worded by `TEMPLATES[3]`, a word order never seen in training). Labels are
  the words, PAD-padded to `SENTENCE_LEN` (no BOS / EOS: an encoder reads them).

One vocabulary (`WORDS`, ids from 3; PAD 0, BOS 1, EOS 2) serves both, so a card's
`num_classes` is `VOCAB_SIZE` whichever it reads. Datasets are built from a fixed seed on
first use (a few seconds) and kept in memory.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from zoo_jax.data import vision
from zoo_jax.errors import InputError, UnknownNameError

PAD, BOS, EOS = 0, 1, 2
CANVAS = 64
CELL = CANVAS // 2
JITTER = CELL - 28  # a digit's offset inside its cell: 0 … 4 pixels
CELLS = ("top left", "top right", "bottom left", "bottom right")  # reading order
LAYOUTS = tuple(c for k in (2, 3, 4) for c in itertools.combinations(range(4), k))
HELDOUT_LAYOUTS = ((1, 2), (0, 2, 3))  # top right + bottom left; three cells but top right
TRAIN_LAYOUTS = tuple(layout for layout in LAYOUTS if layout not in HELDOUT_LAYOUTS)
CAPTION_LEN = 21  # BOS + 4 × "a D row col" + 3 commas + EOS
VALIDATION_DIGITS = 5_000
CANVAS_SIZES = {"train": 20_000, "validation": 1_000, "test": 2_000, "heldout": 2_000}

SUBJECTS = {
    "mnist": ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    "fashion-mnist": ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                      "sneaker", "bag", "ankle-boot"),
}  # fmt: skip
ATTRIBUTES = {  # per dataset: (name, words for low / middle / high), in the templates' order
    "mnist": (("thickness", ("thin", "medium", "thick")),
              ("slant", ("left-slanted", "upright", "right-slanted"))),
    "fashion-mnist": (("size", ("small", "mid-size", "large")),
                      ("brightness", ("dark", "grey", "bright"))),
}  # fmt: skip
TEMPLATES = (
    "a {a} {subject} , {b}",
    "{subject} , {a} and {b}",
    "this {subject} is {b} and {a}",
    "{b} , {a} , a {subject}",  # the `unseen` split's: never in training
)
SENTENCE_LEN = 8
SENTENCE_DATASETS = {"mnist-sentences": "mnist", "fashion-sentences": "fashion-mnist"}
DATASETS = ("digit-canvases", *SENTENCE_DATASETS)
SPLITS = {"digit-canvases": tuple(CANVAS_SIZES), **dict.fromkeys(SENTENCE_DATASETS, ("train", "test", "unseen"))}  # fmt: skip

_TEMPLATE_WORDS = {w for t in TEMPLATES for w in t.split() if not w.startswith("{")}
_ATTRIBUTE_WORDS = {w for attrs in ATTRIBUTES.values() for _, words in attrs for w in words}
WORDS = tuple(sorted(
    {"a", ",", *" ".join(CELLS).split(), *_TEMPLATE_WORDS, *_ATTRIBUTE_WORDS,
     *itertools.chain(*SUBJECTS.values())}
))  # fmt: skip
VOCAB_SIZE = len(WORDS) + 3
_IDS = {w: i + 3 for i, w in enumerate(WORDS)}
SEED = 0


def encode(text: str, length: int, *, bos_eos: bool) -> np.ndarray:
    """Token ids of a space-separated text, PAD-padded to `length`."""
    ids = [_IDS[w] for w in text.split()]
    if bos_eos:
        ids = [BOS, *ids, EOS]
    if len(ids) > length:
        raise InputError(f"{text!r} takes {len(ids)} tokens, more than {length}")
    return np.array(ids + [PAD] * (length - len(ids)), np.int32)


def decode(ids) -> str:
    """The words of token ids, up to the first EOS (PAD and BOS skipped)."""
    words = []
    for i in np.asarray(ids).tolist():
        if i == EOS:
            break
        if i > EOS:
            words.append(WORDS[i - 3])
    return " ".join(words)


def caption(digits, layout) -> str:
    """The caption of digits placed in the cells of `layout` (both in reading order)."""
    return " , ".join(f"a {d} {CELLS[c]}" for d, c in zip(digits, layout, strict=True))


def compose(images: np.ndarray, labels: np.ndarray, layouts, n: int, seed: int):
    """`n` canvases of the digits `images` (uint8 28×28) in layouts drawn from `layouts`:
    `(canvases (n, 64, 64, 1) float32, captions (n, CAPTION_LEN), layout index (n,))`.
    Overlapping cells cannot happen (each digit has its own); intensities add, clipped."""
    rng = np.random.default_rng(seed)
    canvases = np.zeros((n, CANVAS, CANVAS), np.float32)
    captions = np.zeros((n, CAPTION_LEN), np.int32)
    which = rng.integers(len(layouts), size=n)
    for i in range(n):
        layout = layouts[which[i]]
        picks = rng.integers(len(images), size=len(layout))
        offsets = rng.integers(JITTER + 1, size=(len(layout), 2))
        for pick, cell, (dy, dx) in zip(picks, layout, offsets, strict=True):
            top, left = (cell // 2) * CELL + dy, (cell % 2) * CELL + dx
            canvases[i, top : top + 28, left : left + 28] = images[pick] / 255.0
        captions[i] = encode(caption(labels[picks], layout), CAPTION_LEN, bos_eos=True)
    return canvases[..., None], captions, which


# --- attributes measured on the image --------------------------------------------------------


def measure(images: np.ndarray, dataset: str) -> np.ndarray:
    """Raw attributes of images `(n, 28, 28[, 1])` with intensities in [0, 1], `(n, 2)` in
    `ATTRIBUTES[dataset]`'s order: digits (ink, slant), clothing (size, brightness)."""
    x = np.asarray(images, np.float64).reshape(len(images), 28, 28)
    if dataset == "mnist":
        mass = x.sum((1, 2))
        safe = np.maximum(mass, 1e-9)
        ys, xs = np.mgrid[:28, :28].astype(np.float64)
        cy = (x * ys).sum((1, 2)) / safe
        cx = (x * xs).sum((1, 2)) / safe
        dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
        mu11 = (x * dx * dy).sum((1, 2)) / safe
        mu02 = (x * dy * dy).sum((1, 2)) / safe
        slant = -mu11 / np.maximum(mu02, 1e-9)  # rows grow downwards: a right lean is mu11 < 0
        return np.stack([mass, slant], 1)
    if dataset == "fashion-mnist":
        on = x > 0.1
        area = on.mean((1, 2))
        brightness = (x * on).sum((1, 2)) / np.maximum(on.sum((1, 2)), 1)
        return np.stack([area, brightness], 1)
    raise UnknownNameError("described dataset", dataset, SUBJECTS)


@functools.lru_cache(maxsize=2)
def attribute_scale(dataset: str, data_dir: str | None = None):
    """What standardises and cuts a dataset's attributes, from its training images:
    `(mean (10, 2), std (10, 2), tertile cuts (2, 2))` — per class, and of the standardised
    values."""
    images, labels = vision.load(dataset, "train", data_dir)
    raw = measure(images / 255.0, dataset)
    mean = np.stack([raw[labels == c].mean(0) for c in range(10)])
    std = np.stack([raw[labels == c].std(0) for c in range(10)])
    z = (raw - mean[labels]) / std[labels]
    cuts = np.quantile(z, [1 / 3, 2 / 3], axis=0)
    return mean, std, cuts


def standardized(images: np.ndarray, classes: np.ndarray, dataset: str, data_dir=None):
    """Attributes of `images` standardised within the class each is (or was asked to be)."""
    mean, std, _ = attribute_scale(dataset, data_dir)
    classes = np.asarray(classes)
    return (measure(images, dataset) - mean[classes]) / std[classes]


def levels(z: np.ndarray, dataset: str, data_dir=None) -> np.ndarray:
    """Standardised attributes → 0 (low), 1 (middle), 2 (high), at the training tertiles."""
    _, _, cuts = attribute_scale(dataset, data_dir)
    return (z > cuts[0]).astype(np.int32) + (z > cuts[1])


def sentence(dataset: str, label: int, level_a: int, level_b: int, template: int) -> str:
    (_, words_a), (_, words_b) = ATTRIBUTES[dataset]
    return TEMPLATES[template].format(
        subject=SUBJECTS[dataset][label], a=words_a[level_a], b=words_b[level_b]
    )


def describe(dataset, labels, attribute_levels, templates) -> np.ndarray:
    """Sentence ids `(n, SENTENCE_LEN)` for classes, attribute levels `(n, 2)` and templates."""
    table = _sentence_table(dataset)  # every (class, level, level, template): 360 sentences
    a, b = np.asarray(attribute_levels, np.int64).T
    return table[np.asarray(labels, np.int64), a, b, np.asarray(templates, np.int64)]


@functools.cache
def _sentence_table(dataset: str) -> np.ndarray:
    table = np.zeros((10, 3, 3, len(TEMPLATES), SENTENCE_LEN), np.int32)
    for c, a, b, t in itertools.product(range(10), range(3), range(3), range(len(TEMPLATES))):
        table[c, a, b, t] = encode(sentence(dataset, c, a, b, t), SENTENCE_LEN, bos_eos=False)
    return table


# --- the datasets ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _canvases(split: str, data_dir: str | None):
    source = "train" if split in ("train", "validation") else "test"
    images, labels = vision.load("mnist", source, data_dir)
    if split == "train":
        images, labels = images[:-VALIDATION_DIGITS], labels[:-VALIDATION_DIGITS]
    elif split == "validation":
        images, labels = images[-VALIDATION_DIGITS:], labels[-VALIDATION_DIGITS:]
    layouts = HELDOUT_LAYOUTS if split == "heldout" else TRAIN_LAYOUTS
    seed = SEED + tuple(CANVAS_SIZES).index(split)
    return compose(images, labels, layouts, CANVAS_SIZES[split], seed)


@functools.lru_cache(maxsize=8)
def sentences(name: str, split: str, data_dir: str | None = None):
    """`(images (n, 28, 28, 1) float32, sentence ids (n, SENTENCE_LEN), classes (n,),
    attribute levels (n, 2), standardised attributes (n, 2))` of a sentence dataset."""
    dataset = SENTENCE_DATASETS[name]
    images, labels = vision.load(dataset, "train" if split == "train" else "test", data_dir)
    x = images.astype(np.float32) / 255.0
    z = standardized(x, labels, dataset, data_dir)
    lv = levels(z, dataset, data_dir)
    rng = np.random.default_rng(SEED + ("train", "test", "unseen").index(split))
    templates = np.full(len(x), 3) if split == "unseen" else rng.integers(3, size=len(x))
    ids = describe(dataset, labels, lv, templates)
    return x[..., None], ids, labels.astype(np.int32), lv, z


def load(name: str, split: str, data_dir: str | None = None, limit: int | None = None):
    """`(inputs, labels)` of a split: images and their caption / sentence ids."""
    if name not in DATASETS:
        raise UnknownNameError("captioned dataset", name, DATASETS)
    if split not in SPLITS[name]:
        raise UnknownNameError(f"split of {name!r}", split, SPLITS[name])
    data_dir = None if data_dir is None else str(data_dir)
    if name == "digit-canvases":
        x, y, _ = _canvases(split, data_dir)
    else:
        x, y, *_ = sentences(name, split, data_dir)
    return x[:limit], y[:limit]


def canvas_split(split: str, data_dir: str | None = None):
    """`(canvases, captions, layout index into the split's layouts)` of a canvas split."""
    return _canvases(split, None if data_dir is None else str(data_dir))
