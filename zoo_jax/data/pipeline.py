"""From arrays to device batches: validation on the host, batching, per-epoch shuffles.

Validation happens once per array, on the host, before anything reaches a device; inside a
jitted step a bad value cannot raise, it can only produce garbage. Every violation is an
`InputError` naming what was expected and what arrived.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np

from zoo_jax.errors import InputError


def _layout_hint(shape: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if len(shape) == len(expected) == 3 and shape[0] == expected[2] and shape[1:] == expected[:2]:
        return " (this looks like channels-first NCHW; zoo_jax models take NHWC: x.transpose(0, 2, 3, 1))"
    if int(np.prod(shape)) == int(np.prod(expected)):
        return f" (same size: reshape to (-1, {', '.join(map(str, expected))}))"
    return ""


def validate_inputs(x: np.ndarray, input_shape: tuple[int, ...], layout: str = "") -> None:
    """Rank / layout, dtype and finiteness of a model's inputs `(n, *input_shape)`."""
    if not isinstance(x, np.ndarray | jax.Array):
        raise InputError(f"inputs must be an array, got {type(x).__name__}")
    if x.dtype == np.uint8:
        raise InputError(
            "inputs are uint8: normalise them explicitly, e.g. x.astype('float32') / 255"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"inputs must be floating point, got dtype {x.dtype}")
    if tuple(x.shape[1:]) != tuple(input_shape):
        where = f" [{layout}]" if layout else ""
        raise InputError(
            f"inputs of shape (n, {', '.join(map(str, input_shape))}){where} expected, got "
            f"{tuple(x.shape)}{_layout_hint(tuple(x.shape[1:]), tuple(input_shape))}"
        )
    if len(x) == 0:
        raise InputError(f"no examples: inputs of shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.isfinite(x).sum())
        raise InputError(f"inputs contain {bad} non-finite values (NaN or inf)")


def validate_bit_sequences(x: np.ndarray, y: np.ndarray, input_shape, bits: int) -> None:
    """The NTM's tasks: float inputs `(n, time, channels)` and integer targets `(n, time,
    bits)` of 0 and 1, −1 where no output is asked for."""
    validate_inputs(x, input_shape)
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"bit targets must be integers, got dtype {y.dtype}")
    if y.shape != (len(x), input_shape[0], bits):
        raise InputError(f"bit targets of shape ({len(x)}, {input_shape[0]}, {bits}) expected, "
                         f"got {y.shape}")  # fmt: skip
    if not np.isin(y, (-1, 0, 1)).all():
        raise InputError("bit targets must be 0 or 1, or -1 where no output is asked for")


def validate_labels(y: np.ndarray, num_classes: int, n: int) -> None:
    """Integer labels `(n,)` in `[0, num_classes)`."""
    if not np.issubdtype(np.asarray(y).dtype, np.integer):
        raise InputError(f"labels must be integers, got dtype {np.asarray(y).dtype}")
    if np.shape(y) != (n,):
        raise InputError(f"labels of shape ({n},) expected, got {np.shape(y)}")
    lo, hi = int(np.min(y)), int(np.max(y))
    if lo < 0 or hi >= num_classes:
        raise InputError(f"labels must lie in [0, {num_classes}), got values in [{lo}, {hi}]")


def validate_tokens(x: np.ndarray, vocab: int, n: int | None = None, what: str = "inputs") -> None:
    """Integer token ids in `[0, vocab)`: inputs `(n, length, …)` (a sequence, or bAbI's
    memory and question), labels `(n, length)` or `(n,)` (one answer per example)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise InputError(f"{what} must be integer token ids, got dtype {x.dtype}")
    if x.ndim < (2 if what == "inputs" else 1) or (n is not None and len(x) != n):
        rows = "n" if n is None else str(n)
        raise InputError(f"{what} of shape ({rows}, length) expected, got {x.shape}")
    if x.size == 0:
        raise InputError(f"no examples: {what} of shape {x.shape}")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= vocab:
        raise InputError(f"{what} must be token ids in [0, {vocab}), got values in [{lo}, {hi}]")


def images_to_inputs(images: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """uint8 IDX images `(n, 28, 28)` → float32 in [0, 1] shaped `(n, *input_shape)`."""
    x = images.astype(np.float32) / 255.0
    if len(input_shape) == 3 and input_shape[2] == 1 and input_shape[:2] > x.shape[1:3]:
        # 28×28 → a larger greyscale input (LeNet-5's 32×32): zero-pad around, as LeCun did
        (dh, dw) = (input_shape[0] - x.shape[1], input_shape[1] - x.shape[2])
        x = np.pad(x, ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)))
    if int(np.prod(x.shape[1:])) != int(np.prod(input_shape)):
        raise InputError(
            f"images of shape {images.shape[1:]} cannot feed a model expecting {input_shape}"
        )
    return x.reshape((len(x), *input_shape))


def epoch_order(key: jax.Array, epoch: int, n: int) -> np.ndarray:
    """The example order of `epoch`: a permutation drawn from `fold_in(key, epoch)`."""
    return np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))


def train_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray, start: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Batches `start, start+1, …` of one epoch in `order`; the last partial batch is dropped
    so every step has one shape (no recompiles). Shuffling differs per epoch, so every
    example is still seen."""
    for i in range(start, len(order) // batch_size):
        idx = order[i * batch_size : (i + 1) * batch_size]
        yield {"inputs": x[idx], "labels": y[idx].astype(np.int32)}


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """All examples in order; the last batch is padded and its padding weighted 0."""
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size].astype(np.int32)
        pad = batch_size - len(xb)
        weight = np.ones(batch_size, np.float32)
        if pad:
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros((pad, *yb.shape[1:]), np.int32)])
            weight[batch_size - pad :] = 0
        yield {"inputs": xb, "labels": yb, "weight": weight}
