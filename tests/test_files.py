"""write_atomic: the file is replaced whole, or left as it was."""

import pytest

from zoo_jax.files import write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")
    write_atomic(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text("old")

    def full_disk(self, text):
        self.open("w").write(text[:2])  # part of it reached the disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(path), "write_text", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, "new contents")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["config.json"]
