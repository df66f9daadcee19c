"""The Free Spoken Digit Dataset (FSDD v1.0.10, Zohar Jackson et al., CC BY-SA 4.0): 3,000
recordings of the digits 0–9 by 6 speakers, 8 kHz mono 16-bit PCM, read from the release
tarball `fsdd/free-spoken-digit-dataset-1.0.10.tar.gz` with the standard library (`tarfile`,
`wave`), each member checked against the SHA-256 manifest beside it
(`free-spoken-digit-dataset-1.0.10.members.sha256`; without it, the whole tar's SHA-256).

Split: the upstream README's: recordings with index 0–4 of each speaker and digit are the
test set (300), 5–49 the training set (2,700). Not speaker-independent: every speaker is in
both.

Features (`spectrogram`): 32 ms Hann frames every 10 ms, the power spectrum pooled into
`BANDS` triangular mel bands, log10, mapped from [`LOG_FLOOR`, `LOG_CEIL`] to [0, 1]; the
first `FRAMES` frames (1 s) of each recording, silence (0) after its end. Inputs
`(n, FRAMES, BANDS)` float32.
"""

from __future__ import annotations

import functools
import io
import os
import re
import wave
from pathlib import Path

import numpy as np

from zoo_jax.data import vision
from zoo_jax.errors import DataError, UnknownNameError

ARCHIVE = "free-spoken-digit-dataset-1.0.10.tar.gz"
MANIFEST = "free-spoken-digit-dataset-1.0.10.members.sha256"
TAR_SHA256 = "e139ca3b0024d4825331a3855a51633b4db5947b352cc56522ec189114d3c1ee"
RATE = 8000
FRAME, HOP, FRAMES, BANDS = 256, 80, 100, 16
LOG_FLOOR, LOG_CEIL = -6.0, 1.0  # log10 band power of silence / of the loudest frames
SPLITS = ("train", "test")
_NAME = re.compile(r"recordings/(\d)_([a-z]+)_(\d+)\.wav$")


def read_wav(raw: bytes, source: str) -> np.ndarray:
    """Samples of a mono 16-bit PCM WAV file as float32 in [-1, 1); anything else (8- or
    24-bit, stereo, compressed, not a WAV file) is a `DataError` naming the file."""
    try:
        with wave.open(io.BytesIO(raw)) as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as err:
        raise DataError(f"{source}: not a PCM WAV file ({err})") from None
    if width != 2 or channels != 1:
        raise DataError(
            f"{source}: {8 * width}-bit audio with {channels} channel(s); FSDD recordings are "
            "16-bit PCM mono"
        )
    if rate != RATE:
        raise DataError(f"{source}: sampled at {rate} Hz, not {RATE}")
    return np.frombuffer(frames, "<i2").astype(np.float32) / 32768.0


def _mel_filters(bands: int = BANDS, bins: int = FRAME // 2 + 1) -> np.ndarray:
    """Triangular filters `(bands, bins)` equally spaced on the mel scale up to Nyquist."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    edges = 700 * (10 ** (np.linspace(0, mel(RATE / 2), bands + 2) / 2595) - 1)
    freqs = np.linspace(0, RATE / 2, bins)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)
    return np.maximum(0, np.minimum(rising, falling)).astype(np.float32)


def spectrogram(samples: np.ndarray, frames: int = FRAMES) -> np.ndarray:
    """`(frames, BANDS)` log-mel band powers in [0, 1] (module docstring)."""
    padded = np.pad(samples, (0, max(0, FRAME + HOP * (frames - 1) - len(samples))))
    starts = HOP * np.arange(frames)
    windows = padded[starts[:, None] + np.arange(FRAME)] * np.hanning(FRAME).astype(np.float32)
    power = np.abs(np.fft.rfft(windows, axis=-1)) ** 2 / FRAME
    logs = np.log10(power @ _mel_filters().T + 10**LOG_FLOOR)
    spoken = starts < len(samples)  # frames past the end are silence
    return np.where(spoken[:, None], np.clip((logs - LOG_FLOOR) / (LOG_CEIL - LOG_FLOOR), 0, 1), 0)


def _archive(data_dir: str | os.PathLike | None) -> Path:
    for d in vision.search_path(data_dir):
        if (d / "fsdd" / ARCHIVE).is_file():
            return d / "fsdd" / ARCHIVE
    err = vision.missing(f"fsdd/{ARCHIVE}", data_dir)
    raise DataError(f"{err} (FSDD v1.0.10: github.com/Jakobovski/free-spoken-digit-dataset)")


def _checked_members(path: Path) -> dict[str, bytes]:
    """The archive's WAV files by name, every one verified."""
    members = vision.checked_tar_members(path, path.parent / MANIFEST, TAR_SHA256)
    return {name: data for name, data in members.items() if name.endswith(".wav")}


@functools.lru_cache(maxsize=2)
def _load(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    by_split: dict[str, tuple[list, list]] = {split: ([], []) for split in SPLITS}
    for name, data in sorted(_checked_members(path).items()):
        match = _NAME.search(name)
        if match is None:
            continue
        digit, _speaker, index = match.groups()
        split = "test" if int(index) < 5 else "train"
        by_split[split][0].append(spectrogram(read_wav(data, f"{path}:{name}")))
        by_split[split][1].append(int(digit))
    return {
        split: (np.stack(x).astype(np.float32), np.asarray(y, np.int32))
        for split, (x, y) in by_split.items()
    }


def load(split: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spectrograms `(n, FRAMES, BANDS)` float32 in [0, 1] and digits `(n,)` int32 of `split`."""
    if split not in SPLITS:
        raise UnknownNameError("split of 'fsdd'", split, SPLITS)
    return _load(_archive(data_dir))[split]
