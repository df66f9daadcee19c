"""IDX loading from ../shared/data: checksums, search order, corrupted and missing files."""

import gzip
import shutil

import numpy as np
import pytest

from zoo_jax.data import vision
from zoo_jax.errors import DataError, UnknownNameError


def test_mnist_train_is_the_real_dataset():
    images, labels = vision.load("mnist", "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # shared/data/README.md
    assert np.bincount(labels).tolist() == counts


def test_fashion_mnist_test_split():
    images, labels = vision.load("fashion_mnist", "test")
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10


def _copy_mnist(tmp_path):
    src = vision.search_path()[0] / "mnist"
    dst = tmp_path / "mnist"
    shutil.copytree(src, dst)
    return dst


def test_data_dir_comes_before_the_environment(tmp_path, monkeypatch):
    dst = _copy_mnist(tmp_path)
    monkeypatch.setenv("ZOO_JAX_DATA", str(tmp_path / "nowhere"))
    images, _ = vision.load("mnist", "test", data_dir=tmp_path)
    assert images.shape == (10000, 28, 28)
    # uncompressed files are accepted too (same decompressed hash)
    raw = gzip.decompress((dst / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (dst / "t10k-labels-idx1-ubyte.gz").unlink()
    (dst / "t10k-labels-idx1-ubyte").write_bytes(raw)
    assert vision.load("mnist", "test", data_dir=tmp_path)[1].shape == (10000,)


def test_corrupted_file_names_both_hashes(tmp_path):
    dst = _copy_mnist(tmp_path)
    path = dst / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    path.write_bytes(gzip.compress(bytes(raw)))
    expected = vision.DATASETS["mnist"].sha256["t10k-labels-idx1-ubyte"]
    with pytest.raises(
        DataError,
        match=f"t10k-labels.*SHA-256 [0-9a-f]{{64}} does not match the expected {expected}",
    ):
        vision.load("mnist", "test", data_dir=tmp_path)


def test_a_file_is_decoded_once_and_read_afresh_when_it_changes(tmp_path):
    dst = _copy_mnist(tmp_path)
    first, _ = vision.load("mnist", "test", data_dir=tmp_path)
    again, _ = vision.load("mnist", "test", data_dir=tmp_path)
    assert again is first and not first.flags.writeable  # shared, so nobody may change it
    path = dst / "t10k-labels-idx1-ubyte.gz"  # the same path, one label changed
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels.*does not match"):
        vision.load("mnist", "test", data_dir=tmp_path)
    path.write_bytes(gzip.compress(bytes(raw[:100] + raw[101:])))  # and a changed length
    with pytest.raises(DataError, match="does not match"):
        vision.load("mnist", "test", data_dir=tmp_path)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    dst = _copy_mnist(tmp_path)
    path = dst / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="cannot be read"):
        vision.load("mnist", "test", data_dir=tmp_path)


def test_missing_files_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_JAX_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="not found in"):
        vision.load("mnist", "train")


def test_unknown_dataset_and_split():
    with pytest.raises(UnknownNameError, match="did you mean 'mnist'"):
        vision.load("mnsit", "train")
    with pytest.raises(UnknownNameError, match="split"):
        vision.load("mnist", "validation")


def test_parse_idx_rejects_bad_headers():
    with pytest.raises(DataError, match="not an IDX"):
        vision.parse_idx(b"\x00\x00\x0d\x01" + bytes(8), "x")
    with pytest.raises(DataError, match="payload"):
        vision.parse_idx(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(5), "x")


def test_a_missing_environment_directory_is_skipped_a_missing_data_dir_is_an_error(
    tmp_path, monkeypatch
):
    """The README's first command sets ZOO_JAX_DATA=../shared/data: where that does not
    exist, the cache (then a download) is tried; a mistyped --data-dir stops instead."""
    _copy_mnist(tmp_path / "cache" / "zoo_jax")
    monkeypatch.setenv("ZOO_JAX_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert vision.load("mnist", "test")[0].shape == (10000, 28, 28)
    with pytest.raises(DataError, match=r"data directory .*nowhere does not exist"):
        vision.load("mnist", "test", data_dir=tmp_path / "nowhere")
