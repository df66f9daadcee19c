"""The CLI: list / info / train / evaluate / bench, and one-line errors with exit code 2."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import pytest

from zoo_jax import cli


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.xdist_group("every_card_counted")  # one worker traces the 50 models
def test_list_json(capsys):
    code, out, _ = _run(capsys, "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["cnn"]["params"] == 80_266
    assert set(rows["mlp"]) == {"name", "family", "chart_node", "params", "reference"}


def test_info_shows_card_and_layer_table(capsys):
    code, out, _ = _run(capsys, "info", "mlp")
    assert code == 0 and "deep_feed_forward" in out and "269,322" in out and "Dense_0" in out
    assert "flops" not in out  # XLA's cost analysis of every layer only when asked


def test_info_flops_counts_each_layer(capsys):
    code, out, _ = _run(capsys, "info", "mlp", "--flops")
    dense_0 = next(line for line in out.splitlines() if "Dense_0" in line)
    assert code == 0 and f" {2 * 784 * 256 + 256:,} " in dense_0  # the product and the bias add


def test_train_then_evaluate(capsys, tmp_path):
    run = str(tmp_path / "run")
    code, out, _ = _run(
        capsys,
        "train",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--train-limit",
        "256",
        "--set",
        "hidden=[16]",
        "--run-dir",
        run,
    )
    assert code == 0
    trained = json.loads(out)
    assert trained["steps"] == 4 and 0 <= trained["test_accuracy"] <= 1
    code, out, _ = _run(capsys, "evaluate", run)
    assert code == 0 and json.loads(out)["test"]["accuracy"] == trained["test_accuracy"]


def test_list_optimizers_losses_schedules(capsys):
    code, out, _ = _run(capsys, "list", "--optimizers", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and len(rows) == 8 and rows["adadelta"]["defaults"]["learning_rate"] == 1.0
    assert rows["nag"]["keras"] == "keras.optimizers.SGD(nesterov=True)"
    code, out, _ = _run(capsys, "list", "--losses")
    assert (
        code == 0
        and len(out.splitlines()) == 14
        and "['kld', 'kullback_leibler_divergence']" in out
    )
    code, out, _ = _run(capsys, "list", "--schedules", "--activations")
    assert code == 0 and "cosine_decay" in out and "maxout" in out


def test_train_reaches_optimizer_options_regularizers_and_losses(capsys, tmp_path):
    run = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--train-limit",
        "256",
    ]
    argv += ["--set", "hidden=[16]", "--set", 'activation="prelu"', "--run-dir", str(run)]
    argv += [
        "--optimizer",
        "sgd",
        "--opt",
        "momentum=0.9",
        "--opt",
        "nesterov=true",
        "--lr",
        "0.05",
    ]
    argv += ["--loss", "huber", "--l1", "1e-5", "--l2", "1e-3", "--max-norm", "3"]
    argv += ["--weight-decay", "1e-4", "--clipnorm", "1", "--schedule", "cosine_decay"]
    argv += ["--schedule-opt", "alpha=0.1", "--loss-opt", "delta=0.5"]
    code, out, _ = _run(capsys, *argv)
    assert code == 0 and json.loads(out)["steps"] == 4
    summary = json.loads((run / "summary.json").read_text())
    assert summary["loss_options"] == {"delta": 0.5}
    assert summary["loss"] == "huber" and summary["schedule"] == {
        "name": "cosine_decay",
        "alpha": 0.1,
    }
    assert summary["optimizer_options"] == {
        "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4, "max_norm": 3.0, "clipnorm": 1.0
    }  # fmt: skip
    code, out, _ = _run(capsys, "evaluate", str(run))  # restores the scheduled optimizer state
    assert code == 0 and json.loads(out)["step"] == 4


def test_bench_prints_one_json_line(capsys):
    code, out, _ = _run(capsys, "bench", "--model", "mlp", "--steps", "5", "--batch-size", "32")
    result = json.loads(out)
    assert code == 0 and out.count("\n") == 1
    assert result["images_per_s"] > 0 and result["step_ms"] > 0 and result["compile_s"] > 0
    assert result["train_step_compiles"] == 1
    # XLA's FLOP count: the MLP's three matrix products are 268,800 multiply-adds (2 FLOPs
    # each) per image; bias adds, ReLU, softmax and the loss add under 1 %. Backward: the
    # weight gradients of all three layers and the input gradients of the upper two; Adam's
    # update, spread over the 32 images, adds the rest (under 20 %).
    macs = 784 * 256 + 256 * 256 + 256 * 10
    assert 2 * macs <= result["forward_flops_per_image"] <= 1.01 * 2 * macs
    train_macs = 2 * macs + 256 * 256 + 256 * 10
    assert 2 * train_macs <= result["train_flops_per_image"] <= 1.2 * 2 * train_macs
    assert result["params"] == 269_322


def test_bench_takes_model_overrides(capsys):
    code, out, _ = _run(capsys, "bench", "--model", "mlp", "--steps", "3", "--batch-size", "8",
                        "--set", "hidden=[32]")  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["params"] == 784 * 32 + 32 + 32 * 10 + 10
    assert result["forward_flops_per_image"] >= 2 * (784 * 32 + 32 * 10)


def test_bench_plain_lowering_compiles_without_the_fast_paths(capsys, monkeypatch):
    """`--lowering plain` is the other side of docs/performance.md's A/Bs: the step is
    compiled inside `plain_lowering`, so the CPU's convolution lowering is never asked."""
    from zoo_jax.lowering import convolution

    asked = []
    real = convolution.cpu_lowering
    monkeypatch.setattr(convolution, "cpu_lowering", lambda *a: asked.append(a) or real(*a))
    code, out, _ = _run(capsys, "bench", "--model", "cnn", "--steps", "3", "--batch-size", "8",
                        "--set", "features=[4,4,4]", "--lowering", "plain")  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["lowering"] == "plain" and result["train_step_compiles"] == 1
    assert not [shape for shape, *_ in asked if shape[0] == 8]  # (1: the build check's trace)
    code, out, _ = _run(capsys, "bench", "--model", "cnn", "--steps", "3", "--batch-size", "8",
                        "--set", "features=[4,4,4]")  # fmt: skip
    assert code == 0 and "lowering" not in json.loads(out)
    assert [shape for shape, *_ in asked if shape[0] == 8]


def test_list_chart_shows_each_node_and_its_models(capsys):
    code, out, _ = _run(capsys, "list", "--chart", "--json")
    rows = {r["chart_node"]: r for r in json.loads(out)}
    assert code == 0 and len(rows) == 51
    assert rows["seq2seq_attention"]["models"] == ["seq2seq"]
    assert "resnet50" in rows["deep_residual_network"]["models"]
    assert rows["capsule_network"]["models"] == ["capsnet"]
    assert rows["memory_network"]["models"] == ["memn2n"]
    code, out, _ = _run(capsys, "list", "--chart")
    assert rows["perceptron"]["models"] == ["averaged_perceptron", "perceptron"]
    assert code == 0 and out.splitlines()[-1] == "51 of 51 chart nodes have a model"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--model", "cnm"], "did you mean 'cnn'"),
        (["train", "--model", "mlp", "--patience", "3"], "validation split, and mnist has none"),
        (["train", "--model", "char_rnn", "--min-delta", "0.1"], "it needs patience"),
        (["train", "--model", "char_rnn", "--patience", "2", "--min-delta", "nan"], "min_delta"),
        (["train", "--model", "rbm", "--dtype", "bfloat16"], "computes in float32 only"),
        (["bench", "--model", "char_rnn", "--input", "reference"], "leave --input out"),
        (["train", "--model", "deconv_net", "--loss", "kld"], "compares class distributions"),
        (["train", "--model", "mlp", "--optimizer", "adamm"], "did you mean 'adam'"),
        (["train", "--model", "mlp", "--set", "dropot=0.1"], "dropout"),
        (["train", "--model", "mlp", "--set", "hidden=[16"], "must be JSON"),
        (["train", "--model", "mlp", "--dataset", "cifar"], "unknown dataset"),
        (["train", "--model", "mlp", "--epochs", "0"], "epochs must be >= 1"),
        (["train", "--model", "mlp", "--parallel", "pmap", "--devices", "64"], "--devices 64"),
        (["train", "--model", "mlp", "--lr", "-1"], "learning_rate must be a finite number"),
        (["train", "--model", "mlp", "--devices", "4"], "needs --parallel"),
        (["train", "--model", "mlp", "--resume"], "--resume continues the run in --run-dir"),
        (["train", "--model", "mlp", "--keep-checkpoints", "0"], "keep_checkpoints must be >= 1"),
        (
            ["train", "--model", "mlp", "--optimizer", "sgd", "--opt", "momentun=0.9"],
            "did you mean 'momentum'",
        ),
        (["train", "--model", "mlp", "--opt", "learning_rate=0.1"], "(--lr)"),
        (["train", "--model", "mlp", "--loss", "msee"], "did you mean 'mse'"),
        (["train", "--model", "mlp", "--loss", "huber", "--loss-opt", "delt=1"], "'delta'"),
        (
            ["train", "--model", "mlp", "--loss", "huber", "--loss-opt", "delta=-1"],
            "delta must be > 0",
        ),
        (
            ["train", "--model", "mlp", "--loss", "huber", "--loss-opt", 'delta="x"'],
            "finite number",
        ),
        (["train", "--model", "mlp", "--loss", "bce", "--loss-opt", "label_smoothing=2"], "[0, 1]"),
        (["train", "--model", "mlp", "--schedule", "cosine"], "did you mean 'cosine_decay'"),
        (["train", "--model", "mlp", "--max-norm", "-1"], "max_norm must be a finite number"),
        (["train", "--model", "mlp", "--optimizer", "adam", "--opt", "beta_1=1"], "[0, 1)"),
        (["train", "--model", "lenet5", "--augment", "afine"], "did you mean 'affine'"),
        (["train", "--model", "char_rnn", "--augment", "affine"], "image classifiers"),
        (["train", "--model", "mlp", "--clipnorm", "0"], "clipnorm must be > 0"),
        (["train", "--model", "mlp", "--train-limit", "0"], "train_limit must be >= 1"),
        (["train", "--model", "mlp", "--seed", str(2**32)], "seed must be in [0, 2**32)"),
        (["train", "--model", "mlp", "--data-dir", "/nonexistent"], "does not exist"),
        (["train", "--model", "mlp", "--data-dir", __file__], "is not a directory"),
        (["train", "--model", "mlp", "--set", "dropout=1"], "dropout must be in [0, 1)"),
        (["train", "--model", "mlp", "--set", 'dropout="a"'], "dropout must be a number"),
        (["train", "--model", "mlp", "--set", "hidden=[-5]"], "a list of positive integers"),
        (["train", "--model", "mlp", "--set", "num_classes=2.5"], "must be a positive integer"),
        (["train", "--model", "lstm", "--set", "units=2.5"], "units must be a positive integer"),
        (["train", "--model", "stacked_lstm", "--set", "units=[]"], "at least one layer"),
        (["train", "--model", "conv_lstm", "--set", "filters=1000000000"], "cannot be built"),
        (["train", "--model", "conv_lstm", "--set", "kernel_size=[100000, 100000]"], "GiB"),
        # 10**12 float32 in the recurrent kernel, four copies with Adam (two moments and a
        # gradient), two with SGD
        (["train", "--model", "rnn", "--optimizer", "adam", "--set", "units=1000000"], "1.49e+04"),
        (["train", "--model", "rnn", "--optimizer", "sgd", "--set", "units=1000000"], "7.45e+03"),
        (["bench", "--model", "mlp", "--set", "num_classes=10000000000"], "needs at least"),
        (["train", "--model", "seq2seq", "--set", "num_layers=1000000000"], "4.88e+05 GiB"),
        (["train", "--model", "transformer", "--set", "num_layers=1000000000"], "needs at least"),
        (["train", "--model", "seq2seq", "--set", "bos_id=1000"], "bos_id must be a target token"),
        (["train", "--model", "preact_resnet18", "--set", "depth=20"], "depth must be one of"),
        (["train", "--model", "attention_rnn", "--set", 'cell="gru2"'], "did you mean 'gru'"),
        (["bench", "--model", "resnet18", "--set", "width=0"], "width must be > 0"),
        (["bench", "--model", "resnet50_keras", "--set", "bn_momentum=2"], "must be in [0, 1]"),
        (["train", "--model", "echo_state_network", "--set", "spectral_radius=0"], "> 0"),
        (["train", "--model", "kohonen_network", "--set", "rows=0"], "rows must be a positive"),
        (["train", "--model", "kohonen_network", "--set", "cols=1", "--set", "rows=1"], "2 nodes"),
        (["train", "--model", "rbf_network", "--set", "width_scale=-1"], "width_scale must be"),
        (["train", "--model", "support_vector_machine", "--set", "gamma=0"], "gamma must be > 0"),
        (["train", "--model", "rbf_network", "--epochs", "1"], "needs epochs >= 2"),
        (["train", "--model", "rbm", "--set", "cd_steps=0"], "cd_steps must be a positive"),
        (["train", "--model", "markov_chain", "--set", "order=0"], "order must be"),
        (["train", "--model", "markov_chain", "--set", "order=300"], "windows longer than 300"),
        (
            ["train", "--model", "boltzmann_machine", "--set", "temperature=0"],
            "temperature must be > 0",
        ),
        (["train", "--model", "hopfield_network", "--set", 'rule="storky"'], "rule must be one of"),
        (["train", "--model", "gan", "--loss", "minmax"], "did you mean 'minimax'"),
        (["train", "--model", "gan", "--set", "disc_steps=0"], "disc_steps must be a positive"),
        (["train", "--model", "dcgan", "--set", "latent_dim=0"], "latent_dim must be a positive"),
        (["train", "--model", "conditional_gan", "--dataset", "chars"], "reads image datasets"),
        (
            ["train", "--model", "denoising_autoencoder", "--set", "noise_level=1.5"],
            "noise_level must be in [0, 1]",
        ),
        (["train", "--model", "sparse_autoencoder", "--set", "rho=0"], "rho must be in (0, 1)"),
        (
            ["train", "--model", "autoencoder", "--set", "code_size=0"],
            "code_size must be a positive",
        ),
        (["train", "--model", "vae", "--set", 'decoder_dist="poisson"'], "decoder_dist"),
        (["train", "--model", "vae", "--loss", "mse"], "its own objective"),
        (["train", "--model", "dcign", "--dataset", "mnist"], "sprites"),
        (  # a sequence model given images: refused before anything is written
            ["train", "--model", "recurrent_autoencoder", "--dataset", "sprites"],
            "a model expecting (28, 28) cannot read them",
        ),
        (["train", "--model", "capsnet", "--set", "routing_iterations=0"], "routing_iterations"),
        (["train", "--model", "ntm", "--set", "shift_range=100"], "wider than the memory's 128"),
        (["train", "--model", "ntm", "--dataset", "babi"], "reads bit-sequence datasets"),
        (["train", "--model", "memn2n", "--dataset", "babi-qa21"], "unknown bAbI task"),
        (["train", "--model", "memn2n", "--dataset", "babi-10k-qa3"], "task 3: its train file"),
        (["info", "resnet"], "unknown model"),
        (["evaluate", "/nonexistent"], "not a run directory"),
        (["bench", "--model", "mlp", "--steps", "1"], "--steps"),
        (["bench", "--model", "mlp", "--batch-size", "10000000000"], "host ran out of memory"),
        (["train"], "--model"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(argv))
    _, err = capsys.readouterr()
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("zoo-jax: error:") and message in err


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(28, "No space left on device", "/runs/a"), "No space left on device: /runs/a"),
        (
            jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 9 GiB.\nmore"),
            "the device ran out of memory (RESOURCE_EXHAUSTED: Out of memory allocating 9 GiB.): "
            "lower the batch size or the model's size",
        ),
        (
            MemoryError("Unable to allocate 2.85 TiB for an array with shape (10, 784)"),
            "the host ran out of memory (Unable to allocate 2.85 TiB for an array with shape "
            "(10, 784)): lower the batch size or the model's size",
        ),
        (  # the CPU client's words
            jax.errors.JaxRuntimeError(
                "INTERNAL: Error dispatching computation: Out of memory allocating 4 bytes."
            ),
            "the device ran out of memory (INTERNAL: Error dispatching computation: Out of "
            "memory allocating 4 bytes.): lower the batch size or the model's size",
        ),
    ],
)
def test_file_system_and_memory_errors_are_one_line_and_exit_2(capsys, monkeypatch, error, message):
    def fail(args):
        raise error

    monkeypatch.setattr(cli, "cmd_info", fail)
    code, _, err = _run(capsys, "info", "mlp")
    assert code == 2 and err == f"zoo-jax: error: {message}\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def bug(args):
        raise jax.errors.JaxRuntimeError("INTERNAL: something zoo_jax got wrong")

    monkeypatch.setattr(cli, "cmd_info", bug)
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        cli.main(["info", "mlp"])


def test_evaluate_refuses_a_config_edited_after_the_run(capsys, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--epochs", "1", "--batch-size", "64", "--train-limit",
            "128", "--set", "hidden=[8]", "--run-dir", str(run)]  # fmt: skip
    assert _run(capsys, *argv)[0] == 0
    config = run / "config.json"
    config.write_text(config.read_text().replace('"model": "mlp"', '"model": "cnn"'))
    code, _, err = _run(capsys, "evaluate", str(run))
    assert code == 2 and err.count("\n") == 1
    assert "does not match the run's checkpoint (model: 'mlp' -> 'cnn')" in err


@pytest.mark.parametrize("text", ["{bad json", "[1, 2]", '{"model": "mlp", "epochs": "ten"}'])
def test_evaluate_a_damaged_config_is_exit_2(capsys, tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    code, _, err = _run(capsys, "evaluate", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "is not a run's config" in err


def test_missing_data_offline_is_exit_2(tmp_path):
    env = {**os.environ, "ZOO_JAX_DATA": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "zoo_jax.cli", "train", "--model", "mlp"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not found" in proc.stderr


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path):
    run = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "zoo_jax.cli",
        "train",
        "--model",
        "mlp",
        "--epochs",
        "50",
        "--batch-size",
        "32",
        "--train-limit",
        "4096",
        "--set",
        "hidden=[16]",
        "--run-dir",
        str(run),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "checkpoint saved" in err
    from zoo_jax.train.checkpoint import Checkpointer

    ckpt = Checkpointer(run / "checkpoints")
    step = ckpt.latest_step()
    ckpt.close()
    assert step is not None and step > 128  # past epoch 1 (128 steps), saved at the signal
    done = subprocess.run([*argv[:7], "2", *argv[8:], "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == max(step, 256)


def test_closed_pipe_is_not_a_traceback():
    proc = subprocess.run(
        f"{sys.executable} -m zoo_jax.cli info cnn_tf | head -1",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in proc.stderr and proc.stdout.strip().startswith("name")
