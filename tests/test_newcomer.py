"""What a new user meets on an ordinary day, each answered by one line and exit 2 or by the
right behaviour: a data directory without the data, a busy or reused run directory, options
that would be ignored, resuming from the run's own config, sizes that are not sizes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from zoo_jax import cli, get_model
from zoo_jax.data import vision
from zoo_jax.errors import DataError, InputError


def _cli(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(list(argv)))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_a_data_dir_without_the_files_is_an_error_with_the_folder_that_has_them(tmp_path):
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "mnist").symlink_to(vision.search_path()[0] / "mnist")
    with pytest.raises(DataError, match=rf"{tmp_path / 'inner'} holds it: pass --data-dir"):
        vision.load("mnist", "test", tmp_path)  # never $ZOO_JAX_DATA behind the user's back
    images, _ = vision.load("mnist", "test", tmp_path / "inner")
    assert images.shape == (10_000, 28, 28)


def test_offline_and_not_found_says_how_to_point_at_the_data(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_JAX_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(DataError, match=r"ZOO_JAX_OFFLINE is set.*pass --data-dir"):
        vision.load("fashion-mnist", "test")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "mlp", "--schedule-opt", "decay_rate=0.5"], "name the schedule with"),
        (["--model", "mlp", "--run-dir", ""], "--run-dir is empty"),
        (["--model", "mlp", "--data-dir", ""], "--data-dir is empty"),
        (["--model", "mlp", "--set", "hidden=[0]"], "hidden must be a list of positive integers"),
        (["--model", "mlp", "--set", "hidden=[-3]"], "got [-3]"),
        (["--model", "mlp", "--set", "hidden=[2.5]"], "got [2.5]"),
        (["--model", "mlp", "--set", "num_classes=0"], "num_classes must be a positive integer"),
        (["--model", "cnn", "--set", "num_classes=0"], "num_classes must be a positive integer"),
        (["--model", "mlp", "--loss-opt", "from_logits=false"], "only from_logits=true"),
        (["--model", "mlp", "--loss", "mse", "--loss-opt", "delta=1"], "takes no options"),
    ],
)
def test_options_that_would_be_ignored_or_fail_deep_are_named(capsys, tmp_path, argv, message):
    os.chdir(tmp_path)
    code, _, err = _cli(capsys, "train", *argv)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_uint8_batch_handed_to_a_model_is_named():
    for name, shape in (("mlp", (2, 784)), ("cnn", (2, 28, 28, 1))):
        model = get_model(name)
        variables = model.init(__import__("jax").random.PRNGKey(0), np.zeros(shape, np.float32))
        with pytest.raises(InputError, match=r"floating-point inputs, got uint8.*/ 255"):
            model.apply(variables, np.zeros(shape, np.uint8))


_QUICK = ["--epochs", "1", "--train-limit", "256", "--batch-size", "64", "--set", "hidden=[8]"]


def test_resume_reads_the_runs_config_and_a_busy_run_dir_is_refused(capsys, tmp_path):
    os.chdir(tmp_path)
    code, out, _ = _cli(capsys, "train", "--model", "mlp", "--seed", "3", "--run-dir", "r",
                        "--optimizer", "sgd", *_QUICK)  # fmt: skip
    assert code == 0 and json.loads(out)["steps"] == 4
    code, out, _ = _cli(capsys, "train", "--resume", "--run-dir", "r", "--epochs", "2")
    assert code == 0 and json.loads(out)["steps"] == 8  # seed 3, sgd, hidden 8: from config.json
    assert json.loads((tmp_path / "r" / "config.json").read_text())["optimizer"] == "sgd"
    code, _, err = _cli(capsys, "train", "--resume", "--run-dir", "r", "--seed", "4")
    assert code == 2 and "seed: 3 -> 4" in err
    (tmp_path / "r" / ".lock").write_text(str(os.getppid()))  # a live process holds it
    code, _, err = _cli(capsys, "train", "--resume", "--run-dir", "r", "--epochs", "3")
    assert code == 2 and "in use by another run" in err and err.count("\n") == 1
    (tmp_path / "r" / ".lock").write_text("999999999")  # its process is gone: taken over
    code, _, _ = _cli(capsys, "train", "--resume", "--run-dir", "r", "--epochs", "3")
    assert code == 0 and not (tmp_path / "r" / ".lock").exists()


def test_default_run_dirs_never_collide_and_a_fresh_run_starts_its_log_afresh(capsys, tmp_path):
    os.chdir(tmp_path)
    made = {cli._new_run_dir("mlp") for _ in range(3)}  # the same second
    assert len(made) == 3 and all(os.path.isdir(d) for d in made)
    (tmp_path / "crashed").mkdir()  # a first run that died before its first save
    (tmp_path / "crashed" / "metrics.jsonl").write_text('{"epoch": 1, "step": 4}\n')
    code, _, _ = _cli(capsys, "train", "--model", "mlp", "--run-dir", "crashed", *_QUICK)
    lines = (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()
    assert code == 0 and len(lines) == 1 and "test_accuracy" in lines[0]


def test_skipped_updates_are_said_and_a_non_finite_ending_is_exit_2(capsys, tmp_path):
    os.chdir(tmp_path)
    code, _, err = _cli(capsys, "train", "--model", "mlp", "--optimizer", "sgd", "--lr", "1e12",
                        "--nan-policy", "skip", "--run-dir", "r", *_QUICK)  # fmt: skip
    assert code == 2 and "updates were skipped" in err
    assert "the run ended with test loss nan" in err.splitlines()[-1]
    for name in ("summary.json", "metrics.jsonl"):  # JSON without NaN / Infinity
        text = (tmp_path / "r" / name).read_text()
        assert "NaN" not in text and "Infinity" not in text


def _full_disk_run(capsys, run_dir):
    return _cli(capsys, "train", "--model", "mlp", "--epochs", "4", "--train-limit", "512",
                "--batch-size", "64", "--set", "hidden=[16]", "--run-dir", str(run_dir))  # fmt: skip


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(capsys, tmp_path, monkeypatch):
    """ENOSPC injected into the third save, after orbax made its temporary directory."""
    import errno

    import orbax.checkpoint as ocp

    real_save, calls = ocp.CheckpointManager.save, []

    def save(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 3:
            (tmp_path / "r" / "checkpoints" / f"{step}.orbax-checkpoint-tmp-1").mkdir()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    code, _, err = _full_disk_run(capsys, tmp_path / "r")
    assert code == 2 and err.splitlines()[-1].startswith("zoo-jax: error: a checkpoint could not")
    assert "no space left on device; the last complete one is step 16" in err
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == ["16", "8"]
    assert "Traceback" not in err and not (tmp_path / "r" / ".lock").exists()


def test_a_really_full_filesystem_is_one_line(capsys, tmp_path):
    """A 400 KB tmpfs (needs root and mount; skipped elsewhere): orbax's threads fail
    in the background with hundreds of lines of logs, the user sees one."""
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(small)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        argv = ["zoo-jax", "train", "--model", "mlp", "--epochs", "4", "--train-limit", "512",
                "--batch-size", "64", "--set", "hidden=[16]", "--run-dir", str(small / "r")]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        lines = [x for x in done.stderr.splitlines() if not x.startswith("mlp epoch")]
        assert done.returncode == 2 and len(lines) == 1 and "no space left on device" in lines[0]
        assert not list((small / "r" / "checkpoints").glob("*tmp*"))
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_progress_without_a_terminal_is_a_line_at_a_steady_interval(monkeypatch, mnist_flat):
    from zoo_jax.train import loop

    monkeypatch.setattr(loop, "PROGRESS_LINE_S", 0.0)  # a line at every read-back
    monkeypatch.setattr(loop, "PROGRESS_READ_S", 0.0)
    lines = []
    cfg = loop.RunConfig("mlp", epochs=1, batch_size=64, model_overrides={"hidden": (8,)})
    loop.fit(cfg, None, data=mnist_flat, progress=None, log=lines.append)  # stderr: no tty
    steps = [x for x in lines if " step " in x]
    assert steps[0].startswith("mlp epoch 1/1 step 1/8 (12 %) loss ")
    assert "examples/s" in steps[-1] and "elapsed 0:00:0" in steps[-1] and "remaining" in steps[-1]
    assert any(x.startswith("mlp evaluating the test split: batch 1/1") for x in lines)


def test_progress_on_a_terminal_is_a_bar_with_epoch_step_and_times(capsys, mnist_flat):
    from zoo_jax.train import loop

    cfg = loop.RunConfig("mlp", epochs=1, batch_size=64, model_overrides={"hidden": (8,)})
    loop.fit(cfg, None, data=mnist_flat, progress=True, log=lambda _: None)
    err = capsys.readouterr().err
    assert "mlp epoch 1/1 step 8/8" in err and "elapsed" in err


def test_a_text_model_counts_tokens_and_a_translation_names_its_two_accuracies(capsys):
    from zoo_jax.train import loop

    cfg = loop.RunConfig("transformer", epochs=1, batch_size=32, train_limit=64, test_limit=32,
                         model_overrides={"d_model": 8, "num_heads": 2, "d_ff": 16,
                                          "num_layers": 1})  # fmt: skip
    lines = []
    summary = loop.fit(cfg, None, progress=False, log=lines.append)
    assert set(summary["test"]) == {"loss", "token_accuracy", "exact_match"}
    assert summary["train"]["exact_match"] is None  # training is teacher-forced
    assert "images_per_s" not in summary and summary["tokens_per_s"] > summary["sequences_per_s"]
    assert "token_acc" in lines[-1] and "exact" in lines[-1] and " acc " not in lines[-1]


def test_the_command_line_introduces_itself(capsys):
    code, out, _ = _cli(capsys)
    assert code == 0 and "list" in out and "train" in out and "bench" in out  # no command
    code, out, _ = _cli(capsys, "--version")
    assert code == 0 and out.startswith("zoo-jax 0.")
    code, out, _ = _cli(capsys, "info", "lenet5", "--json")
    card = json.loads(out)
    assert card["params"] == 60_000 and card["forward_flops_per_example"] > 500_000
    code, out, _ = _cli(capsys, "info", "lenet5", "--flops")
    assert "per example (XLA's cost analysis)" in out and "239,904" in out  # C1's FLOPs cell
    names = [line.split(":")[0] for line in out.splitlines()[:20] if ":" in line]
    assert len({len(n) for n in names}) == 1  # the card's field names are aligned
