"""fit / evaluate: files written, resume equivalence, NaN policy, refused configs."""

import json

import chex
import numpy as np
import pytest

import zoo_jax
from zoo_jax.errors import CheckpointError, InputError, NonFiniteError, ZooError
from zoo_jax.train import loop
from zoo_jax.train.loop import RunConfig, evaluate_run, fit, restore_run
from zoo_jax.train.run import load_data

TINY = {"hidden": (32,), "dropout": 0.2}


def _cfg(**kw):
    base = {"model": "mlp", "epochs": 2, "batch_size": 64, "model_overrides": TINY, "log_every": 3}
    return RunConfig(**(base | kw))


def test_fit_writes_metrics_summary_and_plot(tmp_path, mnist_flat):
    summary = fit(_cfg(), tmp_path, data=mnist_flat)
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in lines] == [1, 2]
    saved = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "model",
        "dataset",
        "optimizer",
        "epochs",
        "steps",
        "wall_s",
        "images_per_s",
        "devices",
        "versions",
    ):
        assert key in saved
    assert saved["steps"] == 2 * (512 // 64)
    assert saved["test"]["accuracy"] == summary["test"]["accuracy"] > 0.5  # learns from 512 images
    assert saved["train_step_compiles"] == 1
    assert (tmp_path / "curves.png").stat().st_size > 1000
    evaluated = evaluate_run(tmp_path)
    assert evaluated["step"] == saved["steps"]


def test_evaluate_run_on_real_test_split(tmp_path):
    fit(_cfg(epochs=1, train_limit=256, test_limit=128), tmp_path)
    out = evaluate_run(tmp_path)
    assert out["dataset"] == "mnist" and 0.0 <= out["test"]["accuracy"] <= 1.0


def test_resume_is_bitwise_identical_to_a_straight_run(tmp_path, mnist_flat):
    straight = fit(_cfg(), tmp_path / "a", data=mnist_flat)
    fit(_cfg(epochs=1), tmp_path / "b", data=mnist_flat)
    resumed = fit(_cfg(epochs=2), tmp_path / "b", data=mnist_flat, resume=True)
    chex.assert_trees_all_equal(resumed["state"], straight["state"])
    assert resumed["test"] == straight["test"]
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_refuses_another_config(tmp_path, mnist_flat):
    fit(_cfg(epochs=1), tmp_path, data=mnist_flat)
    with pytest.raises(CheckpointError, match=r"model_overrides.*'hidden': \[32\].*\[16\]"):
        fit(
            _cfg(model_overrides={"hidden": (16,), "dropout": 0.2}),
            tmp_path,
            data=mnist_flat,
            resume=True,
        )
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        fit(_cfg(), tmp_path, data=mnist_flat)
    log = tmp_path / "metrics.jsonl"
    log.write_text(log.read_text() + "{truncated\n")  # e.g. a disk that filled up
    with pytest.raises(ZooError, match="line 2 is not an epoch record"):
        fit(_cfg(epochs=1), tmp_path, data=mnist_flat, resume=True)
    assert log.read_text().endswith("{truncated\n")  # left for the user to mend


def test_a_run_dir_that_cannot_be_created_is_a_zoo_error(tmp_path, mnist_flat):
    (tmp_path / "file").write_text("")
    with pytest.raises(ZooError, match=r"cannot create the run directory .*Not a directory"):
        fit(_cfg(), tmp_path / "file" / "run", data=mnist_flat)


def test_nan_policy_stop_raises_and_skip_keeps_params_finite(tmp_path, mnist_flat):
    explode = {"optimizer": "sgd", "learning_rate": 1e30, "epochs": 1}
    with pytest.raises(NonFiniteError, match="non-finite loss or gradient at step"):
        fit(_cfg(**explode), None, data=mnist_flat)
    # skip: the non-finite updates are left out and the parameters stay finite, but a run
    # whose test loss ends non-finite is still an error (not a quiet exit 0)
    with pytest.raises(NonFiniteError, match=r"ended with test loss nan \(\d+ of 8 updates"):
        fit(_cfg(**explode, nan_policy="skip"), tmp_path, data=mnist_flat)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped_updates"] > 0 and summary["test"]["loss"] is None  # JSON: no NaN
    _, _, state, _ = restore_run(tmp_path)
    chex.assert_tree_all_finite(state.params)


def test_a_non_finite_update_the_step_cannot_see_stops_the_run(tmp_path, mnist_flat, monkeypatch):
    """A NaN learning rate keeps the loss and gradient of the step finite, so the step's guard
    applies the update; the epoch's test loss shows it, before the state is saved."""
    import optax

    from zoo_jax.train import run

    monkeypatch.setattr(run, "build_optimizer", lambda cfg, total_steps=None: optax.sgd(np.nan))
    with pytest.raises(NonFiniteError, match="test loss after epoch 1 is nan"):
        x, y, x_test, y_test = mnist_flat  # one step: its update is the run's last
        fit(_cfg(epochs=1), tmp_path, data=(x[:64], y[:64], x_test, y_test))
    assert not (tmp_path / "checkpoints" / "1").exists()


def test_sharded_fit_matches_single_device(mnist_flat):
    cfg = _cfg(epochs=1, model_overrides={"hidden": (32,), "dropout": 0.0})
    one = fit(cfg, None, data=mnist_flat)
    four = fit(
        RunConfig(**{**cfg.__dict__, "parallel": "sharded", "devices": 4}), None, data=mnist_flat
    )
    chex.assert_trees_all_close(four["state"].params, one["state"].params, atol=1e-5)
    assert four["devices"] == 4


def test_fit_on_every_seed_model_config(mnist_small):
    """Each seed model trains a step through the whole loop (tiny variants)."""
    x_train, y_train, x_test, y_test = mnist_small
    for name in ("mlp", "cnn", "rnn", "cnn_tf"):
        card = zoo_jax.get_card(name)
        shape = (-1, *card.input_shape)
        data = (x_train[:64].reshape(shape), y_train[:64], x_test[:32].reshape(shape), y_test[:32])
        cfg = RunConfig(model=name, epochs=1, batch_size=32, model_overrides=card.test_overrides)
        assert fit(cfg, None, data=data)["steps"] == 2


@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_imagenet_cards_train_in_their_small_configuration(name):
    """From the IDX files: LeNet-5 gets MNIST padded to 32x32; ResNet-18 its 28x28 stem."""
    overrides = {"width": 1 / 16} if name == "resnet18" else {}
    cfg = RunConfig(name, epochs=1, batch_size=32, train_limit=64, test_limit=32,
                    model_overrides=overrides)  # fmt: skip
    summary = fit(cfg, None)
    assert summary["steps"] == 2 and np.isfinite(summary["test"]["loss"])
    assert summary["params"] == (60_000 if name == "lenet5" else summary["params"])
    x, _, _, _ = load_data(cfg.resolved())
    assert x.shape[1:] == ((32, 32, 1) if name == "lenet5" else (28, 28, 1))


def test_pmap_run_saves_unreplicated_state_and_resumes_on_one_device(tmp_path, mnist_flat):
    cfg = _cfg(epochs=1, model_overrides={"hidden": (32,), "dropout": 0.0})
    pmapped = fit(
        RunConfig(**{**cfg.__dict__, "parallel": "pmap", "devices": 4}), tmp_path, data=mnist_flat
    )
    assert pmapped["state"].params["Dense_0"]["kernel"].shape == (784, 32)  # no device axis
    resumed = fit(
        RunConfig(**{**cfg.__dict__, "epochs": 2}), tmp_path, data=mnist_flat, resume=True
    )
    assert resumed["steps"] == 2 * (512 // 64) and resumed["devices"] == 1
    straight = fit(RunConfig(**{**cfg.__dict__, "epochs": 2}), None, data=mnist_flat)
    chex.assert_trees_all_close(resumed["state"].params, straight["state"].params, atol=1e-5)


def test_resume_from_an_older_checkpoint_rewrites_the_epoch_log(tmp_path, mnist_flat):
    import shutil

    fit(_cfg(), tmp_path, data=mnist_flat)  # checkpoints at steps 8 and 16
    shutil.rmtree(tmp_path / "checkpoints" / "16")  # as if the last save never finalized
    resumed = fit(_cfg(), tmp_path, data=mnist_flat, resume=True)
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines] == [8, 16] and resumed["steps"] == 16


def test_resume_needs_a_run_dir(mnist_flat):
    with pytest.raises(ZooError, match="run directory"):
        fit(_cfg(), None, data=mnist_flat, resume=True)


def test_data_must_be_the_four_arrays(mnist_flat):
    with pytest.raises(InputError, match=r"\(x_train, y_train, x_test, y_test\), got 2 items"):
        fit(_cfg(), None, data=mnist_flat[:2])


def test_fit_refuses_a_model_over_the_device_memory_before_reading_data(monkeypatch):
    """XLA aborted the process on a 10**12-parameter kernel; `fit` now refuses it first."""
    from zoo_jax.train.run import Run

    monkeypatch.setattr(Run, "load_data", lambda run: pytest.fail("data read"))
    cfg = RunConfig(model="rnn", optimizer="adam", model_overrides={"units": 10**6})
    with pytest.raises(ZooError, match=r"needs at least 1\.49e\+04 GiB for its parameters"):
        fit(cfg, None)


def test_an_error_after_a_save_leaves_that_checkpoint_whole(tmp_path, mnist_flat, monkeypatch):
    """A failure while a save is in flight (here: the disk fills just after it starts) waits
    for it before the error propagates, so the run resumes from that step."""
    from zoo_jax.train import checkpoint

    start_save = checkpoint.Checkpointer.save

    def save_then_fail(self, step, state, meta):
        start_save(self, step, state, meta)
        raise OSError(28, "No space left on device", str(tmp_path / "metrics.jsonl"))

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_fail)
    with pytest.raises(OSError, match="No space"):
        fit(_cfg(epochs=1), tmp_path, data=mnist_flat)
    monkeypatch.undo()
    resumed = fit(_cfg(), tmp_path, data=mnist_flat, resume=True)
    assert resumed["steps"] == 2 * (512 // 64)
    assert [e["epoch"] for e in resumed["history"]] == [1, 2]


def _early(**kw):
    """A character model that overfits 32 windows within a few epochs at this rate."""
    base = {"model": "char_rnn", "model_overrides": {"units": 32, "embed_dim": 8},
            "epochs": 30, "patience": 2, "train_limit": 32, "test_limit": 64,
            "batch_size": 32, "learning_rate": 0.05}  # fmt: skip
    return RunConfig(**(base | kw))


def test_early_stopping_keeps_the_best_epoch_and_resumes_to_it(tmp_path):
    straight = fit(_early(), tmp_path / "a", progress=False)
    history = straight["history"]
    losses = [e["validation_loss"] for e in history]
    best = int(np.argmin(losses))
    assert straight["stopped_early"] and len(history) == best + 1 + 2 < 30
    assert straight["best_epoch"] == best + 1
    assert straight["test"]["loss"] == history[best]["test_loss"] != history[-1]["test_loss"]
    assert straight["validation"]["loss"] == min(losses)
    assert evaluate_run(tmp_path / "a")["test"] == straight["test"]  # best/, not the last
    # interrupted after the best epoch, resumed: the same epochs, the best state from best/
    fit(_early(epochs=best + 2), tmp_path / "b", progress=False)
    resumed = fit(_early(), tmp_path / "b", resume=True, progress=False)
    chex.assert_trees_all_equal(resumed["state"], straight["state"])
    assert [e["validation_loss"] for e in resumed["history"]] == losses
    assert resumed["test"] == straight["test"] and resumed["best_epoch"] == best + 1


def test_min_delta_counts_only_decreases_larger_than_it():
    """Keras's `min_delta`: 0.5 → 0.495 → 0.492 is no improvement at 0.01, so the best epoch
    stays the second and the fourth exhausts a patience of 2; at 0 the fourth is the best."""
    losses = [1.0, 0.5, 0.495, 0.492]
    for min_delta, best_epoch, exhausted in ((0.01, 2, True), (0.0, 4, False)):
        early = loop._EarlyStopping(2, None, min_delta)
        for epoch, loss in enumerate(losses, 1):
            early.update({"epoch": epoch, "step": epoch, "validation_loss": loss}, epoch, {})
        assert early.best["epoch"] == early.state == best_epoch
        assert early.exhausted(len(losses)) is exhausted


def test_early_stopping_needs_a_validation_split(mnist_flat):
    with pytest.raises(ZooError, match="validation split, and mnist has none"):
        fit(_cfg(patience=2))
    with pytest.raises(ZooError, match="patience must be >= 1"):
        fit(_early(patience=0))
    with pytest.raises(ZooError, match="min_delta must be a finite number >= 0"):
        fit(_early(min_delta=-0.1))
    with pytest.raises(ZooError, match="min_delta is early stopping's threshold"):
        fit(_early(patience=None, min_delta=0.1))
    with pytest.raises(ZooError, match="pass data or patience"):
        fit(_early(), data=load_data(_early()))
