"""The FSDD reader: WAV decoding, the manifest check, the features; bad audio is named."""

from __future__ import annotations

import hashlib
import io
import tarfile
import wave

import numpy as np
import pytest

from zoo_jax import cli
from zoo_jax.data import audio
from zoo_jax.errors import DataError


def _wav(samples: np.ndarray, width: int = 2, channels: int = 1, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buffer.getvalue()


def test_a_16_bit_recording_decodes_to_floats():
    tone = (8000 * np.sin(np.arange(4000) * 2 * np.pi * 440 / 8000)).astype("<i2")
    x = audio.read_wav(_wav(tone), "tone.wav")
    np.testing.assert_allclose(x, tone / 32768.0)
    features = audio.spectrogram(x)
    assert features.shape == (audio.FRAMES, audio.BANDS)
    assert np.all(features[50:] == 0)  # 0.5 s of audio: silence after it
    loudest = int(np.argmax(features[:40].mean(0)))  # 440 Hz sits in the lowest mel bands
    assert loudest < 6, features[:40].mean(0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_wav(np.zeros(100, np.uint8), width=1), "8-bit audio"),
        (_wav(np.zeros(200, "<i2"), channels=2), "2 channel"),
        (_wav(np.zeros(100, "<i2"), rate=16000), "16000 Hz"),
        (b"RIFF....not a wave", "not a PCM WAV file"),
    ],
)
def test_audio_that_is_not_16_bit_pcm_mono_is_named(raw, message):
    with pytest.raises(DataError, match=message):
        audio.read_wav(raw, "x.wav")


def _archive(tmp_path, files: dict[str, bytes], manifest: dict[str, bytes] | None = None):
    folder = tmp_path / "fsdd"
    folder.mkdir()
    with tarfile.open(folder / audio.ARCHIVE, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    lines = [f"{hashlib.sha256(d).hexdigest()}  {n}" for n, d in (manifest or files).items()]
    (folder / audio.MANIFEST).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_a_member_that_differs_from_the_manifest_is_refused(tmp_path):
    good = _wav(np.zeros(800, "<i2"))
    name = "free-spoken-digit-dataset/recordings/3_theo_7.wav"
    data_dir = _archive(tmp_path, {name: good}, manifest={name: good + b"x"})
    with pytest.raises(DataError, match=r"3_theo_7\.wav has SHA-256"):
        audio.load("train", data_dir)


def test_an_8_bit_recording_is_one_line_and_exit_2(tmp_path, capsys):
    name = "free-spoken-digit-dataset/recordings/3_theo_7.wav"
    data_dir = _archive(tmp_path, {name: _wav(np.zeros(800, np.uint8), width=1)})
    argv = ["train", "--model", "echo_state_network", "--data-dir", str(data_dir)]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(argv))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "8-bit audio" in err, err
