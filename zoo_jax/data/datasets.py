"""The registered datasets, by name: what `--dataset` accepts and what each split is.

- `mnist`, `fashion-mnist`: 28×28 images (`vision.py`), floats in [0, 1] shaped for the
  model (`(28, 28, 1)`, `(784,)`, or `(28, 28)`: sequential MNIST, 28 rows of 28 pixels).
- `fsdd`: the Free Spoken Digit Dataset (`audio.py`): log-mel spectrograms `(100, 16)`
  (1 s of 10 ms frames, 16 bands) in [0, 1], digits 0–9; splits train / test.
- `sprites`: 32×32 2-D shapes with known generative factors, generated in code
  (`sprites.py`, as dSprites is built); labels the shape.
- `encoder`: the n-h-n encoder problem of Ackley, Hinton & Sejnowski 1985: the n patterns
  with unit i on in both visible groups (`encoder_patterns`), the same in both splits.
- `chars`: character-level language modelling on `pydoc_data.topics` (`text.py`): windows
  of the model's input length, inputs `w[:, :-1]` and next-character labels `w[:, 1:]`.
  Splits train / validation / test.
- `babi`, `babi-10k`, `babi-qa1` … `babi-10k-qa20`: the bAbI tasks (`babi.py`), all 20
  together or one, the 1k or 10k training set: inputs `(memory + 1, words)` ids (the
  statements, most recent first, then the question), labels the answer's id. Splits train /
  validation / test.
- `copy`, `repeat-copy`, `associative-recall`: the NTM's tasks (`ntm_tasks.py`), generated
  from a PRNG key: inputs `(time, channels)` floats, labels `(time, bits)` int8 targets, −1
  where no output is asked for. Splits train / test (fresh examples of the training lengths).
- `dates`: human-written dates → ISO 8601 (`text.py`): inputs the PAD-padded source ids,
  labels BOS + 10 characters + EOS. `DATES_SIZES` pairs per split; splits train /
  validation / test, and `long` (sources longer than any in training).

- `digit-canvases`, `mnist-sentences`, `fashion-sentences`: images with generated text
  (`captions.py`): canvases of 2–4 MNIST digits captioned by their digits and cells (splits
  train / validation / test / heldout: layouts never seen in training), and single images
  described by their class and measured attributes (splits train / test / unseen: a wording
  never seen in training). Inputs images in [0, 1], labels token ids (the "captioned" kind).

Token datasets give int32 arrays; their ids lie in `[0, num_classes)` of the model's card
(the vocabulary), which `check_data` verifies like image labels.
"""

from __future__ import annotations

import functools

import numpy as np

from zoo_jax.data import audio, babi, captions, ntm_tasks, pipeline, sprites, text, vision
from zoo_jax.errors import InputError, UnknownNameError

TOKEN_DATASETS = ("chars", "dates", "babi", "babi-10k")  # and each bAbI task (`babi-qa3`)
BIT_DATASETS = ntm_tasks.TASKS
CAPTIONED_DATASETS = captions.DATASETS
DATASETS = (*vision.DATASETS, "fsdd", "sprites", "encoder", *TOKEN_DATASETS, *BIT_DATASETS,
            *CAPTIONED_DATASETS)  # fmt: skip
DATES_SIZES = {"train": 50_000, "validation": 2_000, "test": 2_000, "long": 2_000}
DATES_SEED = 0
SPLITS = {
    **dict.fromkeys(vision.DATASETS, ("train", "test")),
    "fsdd": audio.SPLITS,
    "sprites": sprites.SPLITS,
    "encoder": ("train", "test"),
    "chars": ("train", "validation", "test"),
    "dates": tuple(DATES_SIZES),
    **dict.fromkeys(("babi", "babi-10k"), babi.SPLITS),
    **dict.fromkeys(BIT_DATASETS, ntm_tasks.SPLITS),
    **captions.SPLITS,
}


def canonical(name: str) -> str:
    name = vision.ALIASES.get(name, name)
    if babi.dataset_name(name) is not None:  # a task of its own (`babi-qa3`) checks its number
        return name
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, [*DATASETS, *vision.ALIASES])
    return name


def is_tokens(name: str) -> bool:
    name = canonical(name)
    return name in TOKEN_DATASETS or babi.dataset_name(name) is not None


def is_bits(name: str) -> bool:
    """The NTM's tasks: float inputs, bit targets with −1 where none is asked for."""
    return canonical(name) in BIT_DATASETS


def kind(name: str) -> str:
    """What the dataset feeds, as a card's `input_kind` names it: images (every float
    dataset but the NTM's and the captioned ones), tokens, bits, or captioned (images
    labelled by token ids)."""
    if canonical(name) in CAPTIONED_DATASETS:
        return "captioned"
    return "tokens" if is_tokens(name) else "bits" if is_bits(name) else "images"


def splits(name: str) -> tuple[str, ...]:
    name = canonical(name)
    return babi.SPLITS if babi.dataset_name(name) is not None else SPLITS[name]


@functools.lru_cache(maxsize=1)
def _chars() -> text.CharCorpus:
    return text.load_chars()


@functools.lru_cache(maxsize=8)
def date_pairs(split: str, source_len: int) -> text.DatePairs:
    return text.make_dates(DATES_SIZES[split], split, seed=DATES_SEED, source_len=source_len)


def load(
    name: str,
    split: str,
    input_shape: tuple[int, ...],
    data_dir: str | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`(inputs, labels)` of split `split` of dataset `name`, shaped for a model whose
    per-example input is `input_shape`; the first `limit` examples when it is given (only
    those are converted)."""
    name = canonical(name)
    if split not in splits(name):
        raise UnknownNameError(f"split of {name!r}", split, splits(name))
    if babi.dataset_name(name) is not None:
        x, answers = babi.load(name, split, input_shape, data_dir)
        return x[:limit], answers[:limit]
    if name in CAPTIONED_DATASETS:
        x, ids = captions.load(name, split, data_dir, limit)
        if x.shape[1:] != tuple(input_shape):
            raise InputError(f"{name} images are {x.shape[1:]}, a model expecting "
                             f"{input_shape} cannot read them")  # fmt: skip
        return x, ids
    if name in BIT_DATASETS:
        x, targets = ntm_tasks.split(name, split, input_shape)
        return x[:limit], targets[:limit]
    if name == "chars":
        windows = text.lm_windows(getattr(_chars(), split), input_shape[0])
        return windows[:limit, :-1], windows[:limit, 1:]
    if name == "encoder":
        x, labels = encoder_patterns(input_shape)
        return x[:limit], labels[:limit]
    if name == "dates":
        pairs = date_pairs(split, input_shape[0])
        return pairs.sources[:limit], pairs.targets[:limit]
    if name == "fsdd":
        x, labels = audio.load(split, data_dir)
        x, labels = x[:limit], labels[:limit]
        if int(np.prod(x.shape[1:])) != int(np.prod(input_shape)):
            raise InputError(
                f"fsdd spectrograms {x.shape[1:]} cannot feed a model expecting {input_shape}"
            )
        return x.reshape((len(x), *input_shape)), labels
    if name == "sprites":
        x, labels = sprites.load(split)
        x, labels = x[:limit], labels[:limit]
        if x.shape[1:] != tuple(input_shape):
            raise InputError(f"sprites are {x.shape[1:]}, a model expecting {input_shape} "
                             "cannot read them")  # fmt: skip
        return x, labels
    images, labels = vision.load(name, split, data_dir)
    images, labels = images[:limit], labels[:limit]
    return pipeline.images_to_inputs(images, input_shape), labels.astype(np.int32)


def encoder_patterns(input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The n-h-n encoder's environment (Ackley, Hinton & Sejnowski 1985): n patterns over two
    groups of n units, unit i on in both groups; labels i. Both splits are these patterns."""
    if len(input_shape) != 1 or input_shape[0] % 2 or input_shape[0] < 2:
        raise InputError(
            f"the encoder task needs an even number of visible units, got {input_shape}"
        )
    n = input_shape[0] // 2
    eye = np.eye(n, dtype=np.float32)
    return np.concatenate([eye, eye], 1), np.arange(n, dtype=np.int32)


def sample_inputs(name: str, input_shape: tuple[int, ...], n: int = 1) -> np.ndarray:
    """Zeros of the dtype the dataset feeds (token ids or floats): shapes for `init`."""
    return np.zeros((n, *input_shape), np.int32 if is_tokens(name) else np.float32)
