"""The neural Turing machine's tasks (Graves, Wayne & Danihelka 2014, sec. 4), generated from
a PRNG key: `copy`, `repeat_copy`, `associative_recall`.

Each gives inputs `(n, time, channels)` float32 and targets `(n, time, bits)` int8: 0 / 1
where the model must output a bit, −1 where no output is asked for (while it reads, and
after a shorter example's end: a batch mixes lengths in one fixed shape, so the train step
compiles once). Random bits are fair coins.

- copy: a sequence of `length` random `bits`-bit vectors, then a delimiter on channel
  `bits`; the model outputs the sequence over the next `length` steps. Training lengths 1–20.
- repeat copy: a sequence of 1–10 vectors, then one step with the delimiter (channel `bits`)
  and the number of repeats (1–10) divided by the most (channel `bits + 1`); the model
  outputs the sequence that many times and then an end marker on output bit `bits`.
- associative recall: 2–6 items of 3 six-bit vectors, each item after a delimiter step
  (channel `bits`); then a query item between two query delimiters (channel `bits + 1`),
  a copy of an item other than the last; the model outputs the item that followed it.
"""

from __future__ import annotations

import jax
import numpy as np

from zoo_jax.errors import InputError

TASKS = ("copy", "repeat-copy", "associative-recall")
SPLITS = ("train", "test")
TRAIN_SIZE, TEST_SIZE = 64_000, 1_000
COPY_BITS, COPY_LENGTHS = 8, (1, 20)
REPEAT_LENGTHS, REPEATS = (1, 10), (1, 10)
RECALL_BITS, ITEM_LENGTH, ITEMS = 6, 3, (2, 6)


def _draws(key: jax.Array, n: int, low: int, high: int) -> np.ndarray:
    return np.asarray(jax.random.randint(key, (n,), low, high + 1))


def _bits(key: jax.Array, shape) -> np.ndarray:
    return np.asarray(jax.random.bernoulli(key, 0.5, shape)).astype(np.int8)


def copy_time(length: int) -> int:
    return 2 * length + 1


def copy(key, n: int, lengths=COPY_LENGTHS, bits: int = COPY_BITS, time: int | None = None):
    """`n` copy examples, lengths uniform in `lengths` (inclusive), `time` steps (default
    the longest example's)."""
    time = copy_time(lengths[1]) if time is None else time
    if time < copy_time(lengths[1]):
        raise InputError(f"copying {lengths[1]} vectors takes {copy_time(lengths[1])} steps, "
                         f"not {time}")  # fmt: skip
    length_key, bits_key = jax.random.split(key)
    length = _draws(length_key, n, *lengths)
    seq = _bits(bits_key, (n, lengths[1], bits))
    t = np.arange(time)
    x = np.zeros((n, time, bits + 1), np.float32)
    reading = t[None, : lengths[1]] < length[:, None]
    x[:, : lengths[1], :bits] = seq * reading[..., None]
    x[np.arange(n), length, bits] = 1.0
    source = t[None, :] - length[:, None] - 1  # output step t repeats input step t − L − 1
    writing = (source >= 0) & (source < length[:, None])
    copied = np.take_along_axis(seq, np.clip(source, 0, lengths[1] - 1)[..., None], 1)
    y = np.where(writing[..., None], copied, -1).astype(np.int8)
    return x, y


def repeat_copy_time(length: int, repeats: int) -> int:
    return length + 1 + length * repeats + 1


def repeat_copy(key, n: int, lengths=REPEAT_LENGTHS, repeats=REPEATS, bits: int = COPY_BITS,
                time: int | None = None):  # fmt: skip
    """`n` repeat-copy examples; the repeat channel reads repeats / `repeats[1]`."""
    need = repeat_copy_time(lengths[1], repeats[1])
    time = need if time is None else time
    if time < need:
        raise InputError(f"the longest repeat copy takes {need} steps, not {time}")
    length_key, repeat_key, bits_key = jax.random.split(key, 3)
    length, count = _draws(length_key, n, *lengths), _draws(repeat_key, n, *repeats)
    seq = _bits(bits_key, (n, lengths[1], bits))
    x = np.zeros((n, time, bits + 2), np.float32)
    y = np.full((n, time, bits + 1), -1, np.int8)
    for i, (L, k) in enumerate(zip(length, count, strict=True)):
        x[i, :L, :bits] = seq[i, :L]
        x[i, L, bits], x[i, L, bits + 1] = 1.0, k / repeats[1]
        out = L + 1
        y[i, out : out + k * L, :bits] = np.tile(seq[i, :L], (k, 1))
        y[i, out : out + k * L, bits] = 0
        y[i, out + k * L] = 0
        y[i, out + k * L, bits] = 1  # the end marker
    return x, y


def recall_time(items: int) -> int:
    return (ITEM_LENGTH + 1) * items + 2 + 2 * ITEM_LENGTH


def associative_recall(key, n: int, items=ITEMS, bits: int = RECALL_BITS, time: int | None = None):
    """`n` associative-recall examples of `items` (inclusive) items each."""
    time = recall_time(items[1]) if time is None else time
    if time < recall_time(items[1]):
        raise InputError(f"recalling from {items[1]} items takes {recall_time(items[1])} "
                         f"steps, not {time}")  # fmt: skip
    if items[0] < 2:
        raise InputError("associative recall needs at least 2 items (a query and its successor)")
    count_key, query_key, bits_key = jax.random.split(key, 3)
    count = _draws(count_key, n, *items)
    query = np.floor(np.asarray(jax.random.uniform(query_key, (n,))) * (count - 1)).astype(int)
    vectors = _bits(bits_key, (n, items[1], ITEM_LENGTH, bits))
    x = np.zeros((n, time, bits + 2), np.float32)
    y = np.full((n, time, bits), -1, np.int8)
    step = ITEM_LENGTH + 1
    for i, (k, q) in enumerate(zip(count, query, strict=True)):
        for j in range(k):
            x[i, step * j, bits] = 1.0
            x[i, step * j + 1 : step * (j + 1), :bits] = vectors[i, j]
        start = step * k
        x[i, start, bits + 1] = x[i, start + ITEM_LENGTH + 1, bits + 1] = 1.0
        x[i, start + 1 : start + 1 + ITEM_LENGTH, :bits] = vectors[i, q]
        answer = start + ITEM_LENGTH + 2
        y[i, answer : answer + ITEM_LENGTH] = vectors[i, q + 1]
    return x, y


GENERATORS = {"copy": copy, "repeat-copy": repeat_copy, "associative-recall": associative_recall}
CHANNELS = {"copy": (COPY_BITS + 1, COPY_BITS), "repeat-copy": (COPY_BITS + 2, COPY_BITS + 1),
            "associative-recall": (RECALL_BITS + 2, RECALL_BITS)}  # fmt: skip
TIMES = {"copy": copy_time(COPY_LENGTHS[1]),
         "repeat-copy": repeat_copy_time(REPEAT_LENGTHS[1], REPEATS[1]),
         "associative-recall": recall_time(ITEMS[1])}  # fmt: skip


def split(task: str, split: str, input_shape: tuple[int, ...], seed: int = 0):
    """`TRAIN_SIZE` training or `TEST_SIZE` test examples of `task` at its training lengths
    (the key: `seed` folded with the split), `input_shape[0]` steps."""
    if len(input_shape) != 2 or input_shape[1] != CHANNELS[task][0]:
        raise InputError(f"the {task} task feeds (time, {CHANNELS[task][0]}) inputs, a model "
                         f"expecting {input_shape} cannot read them")  # fmt: skip
    key = jax.random.fold_in(jax.random.PRNGKey(seed), SPLITS.index(split))
    n = TRAIN_SIZE if split == "train" else TEST_SIZE
    return GENERATORS[task](key, n, time=input_shape[0])
