"""MNIST and Fashion-MNIST from IDX files, verified by SHA-256 before use.

Where the files come from, in order (the first directory that has the dataset wins):

1. `data_dir` (the CLI's `--data-dir`): when it is given, only there. A directory named
   by the user that lacks the files is an error naming what it should hold (and the folder
   below it that does hold them, when one does), never a quiet fall-back to other data,
2. `$ZOO_JAX_DATA`,
3. the user cache, `$XDG_CACHE_HOME/zoo_jax` (default `~/.cache/zoo_jax`),
4. a download from the official mirrors into the user cache, unless `$ZOO_JAX_OFFLINE` is
   set (the test suite sets it: tests never download).

A directory holds one sub-folder per dataset (`mnist/`, `fashion-mnist/`) with the four
standard files, gzipped or not (`train-images-idx3-ubyte.gz`, ...). The SHA-256 is checked
on the *decompressed* bytes, so recompressed copies are accepted and corrupted or truncated
ones are refused with both hashes named.

A process decompresses, verifies and decodes each file's content once: `_read_idx` keys
its cache by a BLAKE2 digest of the bytes on disk (12 ms for MNIST's training images, where
decompressing and verifying take about 200), so a file that changes is read afresh, and an
experiment that trains many rows in one process reads each file once. The arrays are
read-only views of the verified bytes: no caller can change what the next one gets.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import io
import math
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from zoo_jax.errors import DataError, UnknownNameError


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]  # file stem -> SHA-256 of the decompressed IDX bytes
    classes: tuple[str, ...]


DATASETS = {
    "mnist": ImageDataset(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": ImageDataset(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}
ALIASES = {"fashion_mnist": "fashion-mnist"}
SPLITS = {"train": "train", "test": "t10k"}


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zoo_jax"


def search_path(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched, in order: `data_dir` alone when the caller names one (it
    must exist: a typo is an error rather than a quiet fall-back to the other directories),
    else `$ZOO_JAX_DATA` and the user cache."""
    if data_dir is not None and str(data_dir) == "":
        raise DataError("--data-dir is empty: name the directory that holds the datasets")
    if data_dir:
        if not Path(data_dir).is_dir():
            what = "is not a directory" if Path(data_dir).exists() else "does not exist"
            raise DataError(f"data directory {data_dir} {what}")
        return [Path(data_dir)]
    dirs = [Path(os.environ["ZOO_JAX_DATA"])] if os.environ.get("ZOO_JAX_DATA") else []
    return [*dirs, cache_dir()]


def checked_tar_members(path: Path, manifest: Path, tar_sha256: str) -> dict[str, bytes]:
    """The files of the gzipped tar at `path` by member name, each verified against the
    `sha256sum` manifest `manifest` (every file listed, none more); without the manifest,
    the uncompressed tar's SHA-256 against `tar_sha256`. A mismatch names the file."""
    try:
        tar_bytes = gzip.decompress(path.read_bytes())
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
            members = {
                m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()
            }
    except (OSError, EOFError, tarfile.TarError) as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    if manifest.is_file():
        expected = dict(
            reversed(line.split(maxsplit=1)) for line in manifest.read_text().splitlines() if line
        )
        for name, data in members.items():
            digest = hashlib.sha256(data).hexdigest()
            if expected.get(name) != digest:
                raise DataError(f"{path}: {name} has SHA-256 {digest}, not the manifest's")
        if len(expected) != len(members):
            raise DataError(f"{path}: {len(members)} files, the manifest lists {len(expected)}")
    elif hashlib.sha256(tar_bytes).hexdigest() != tar_sha256:
        raise DataError(f"{path}: the tar's SHA-256 is not the expected {tar_sha256}")
    return members


def missing(what: str, data_dir: str | os.PathLike | None) -> DataError:
    """The error for a dataset file `what` (e.g. `mnist/train-images-idx3-ubyte`) found in
    none of the searched directories, with the hint that fixes it: a folder below
    `data_dir` that holds it, or how to get it."""
    dirs = search_path(data_dir)
    message = f"{what} not found in {', '.join(map(str, dirs))}"
    if data_dir:
        below = sorted(p.parents[len(Path(what).parts) - 1] for p in
                       Path(data_dir).glob(f"*/{what}*"))  # fmt: skip
        hint = f"; {below[0]} holds it: pass --data-dir {below[0]}" if below else (
            f"; --data-dir must hold {Path(what).parts[0]}/ with the dataset's files")  # fmt: skip
        return DataError(message + hint)
    if os.environ.get("ZOO_JAX_OFFLINE"):
        return DataError(message + "; ZOO_JAX_OFFLINE is set, so nothing is downloaded: pass "
                         "--data-dir (or set ZOO_JAX_DATA) to a directory that holds it")  # fmt: skip
    return DataError(message)


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decode IDX bytes (magic 0x0000 0x08 rank, big-endian sizes, uint8 payload)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{source}: not an IDX file of unsigned bytes")
    rank = raw[3]
    header = 4 + 4 * rank
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{source}: IDX header says {shape}, payload has {len(raw) - header} bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


_DECODED: collections.OrderedDict[tuple[bytes, str], np.ndarray] = collections.OrderedDict()
_DECODED_FILES = 8  # the 4 files of MNIST and of Fashion-MNIST: about 110 MB


def _read_idx(path: Path, expected: str) -> np.ndarray:
    """The array of the IDX file at `path` (gzipped or not) whose decompressed bytes have
    SHA-256 `expected`; cached by the file's content (module docstring)."""
    try:
        payload = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    key = (hashlib.blake2b(payload).digest(), expected)
    if key in _DECODED:
        _DECODED.move_to_end(key)
        return _DECODED[key]
    try:
        raw = gzip.decompress(payload) if path.suffix == ".gz" else payload
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise DataError(f"{path}: SHA-256 {digest} does not match the expected {expected}")
    _DECODED[key] = parse_idx(raw, str(path))
    if len(_DECODED) > _DECODED_FILES:
        _DECODED.popitem(last=False)
    return _DECODED[key]


def _find(dataset: ImageDataset, stem: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for name in (f"{stem}.gz", stem):
            if (d / dataset.name / name).is_file():
                return d / dataset.name / name
    return None


def download(dataset: ImageDataset, stem: str) -> Path:
    """Fetch `stem.gz` from the first mirror that answers into the cache, atomically."""
    target = cache_dir() / dataset.name / f"{stem}.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in dataset.mirrors:
        try:
            with urllib.request.urlopen(mirror + f"{stem}.gz", timeout=60) as response:
                payload = response.read()
        except OSError as err:
            errors.append(f"{mirror}: {err}")
            continue
        fd, tmp = tempfile.mkstemp(dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        Path(tmp).replace(target)
        return target
    raise DataError(
        f"{dataset.name}/{stem} is not in {', '.join(map(str, search_path()))} and could not "
        f"be downloaded ({'; '.join(errors)}); pass --data-dir or set ZOO_JAX_DATA"
    )


def load(
    name: str, split: str, data_dir: str | os.PathLike | None = None, allow_download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Images `(n, 28, 28)` uint8 and labels `(n,)` uint8 of `split` ("train" or "test")."""
    dataset = DATASETS.get(ALIASES.get(name, name))
    if dataset is None:
        raise UnknownNameError("dataset", name, [*DATASETS, *ALIASES])
    if split not in SPLITS:
        raise UnknownNameError("split", split, SPLITS)
    arrays = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        stem = f"{SPLITS[split]}-{kind}"
        path = _find(dataset, stem, search_path(data_dir))
        if path is None:
            if data_dir or not allow_download or os.environ.get("ZOO_JAX_OFFLINE"):
                raise missing(f"{dataset.name}/{stem}", data_dir)
            path = download(dataset, stem)
        arrays.append(_read_idx(path, dataset.sha256[stem]))
    images, labels = arrays
    if len(images) != len(labels):
        raise DataError(f"{dataset.name} {split}: {len(images)} images but {len(labels)} labels")
    return images, labels


def tile(images, rows: int, cols: int) -> np.ndarray:
    """The first `rows` × `cols` images as one picture `(rows * h, cols * w[, channels])`, row
    by row. Images come as `(n, h, w)`, `(n, h, w, channels)` (one channel is dropped) or
    flattened square `(n, h * h)`."""
    images = np.asarray(images)[: rows * cols]
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        images = images.reshape(len(images), side, side)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    _, h, w, *channels = images.shape
    grid = images.reshape(rows, cols, h, w, *channels).swapaxes(1, 2)
    return grid.reshape(rows * h, cols * w, *channels)
