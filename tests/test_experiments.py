"""The experiment scripts' quick modes run and write result rows (not to the real results)."""

import importlib
import json
import signal

import numpy as np
import pytest

from experiments import common, report, seed_tables
from zoo_jax.data import text


def test_seed_tables_quick(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert seed_tables.main(["--quick", "--rows", "mlp_256-256-256_dropout0.45_adam"]) == 0
    (path,) = (tmp_path / "quick" / "seed_tables").glob("*.json")
    (row,) = json.loads(path.read_text())
    for key in (
        "experiment",
        "row",
        "model",
        "dataset",
        "config",
        "metrics",
        "reference",
        "wall_s",
        "device",
        "versions",
        "git",
    ):
        assert key in row
    assert row["reference"]["test_accuracy"] == 0.985 and 0 < row["metrics"]["test_accuracy"] <= 1
    assert row["config"]["model_overrides"]["hidden"] == [256, 256, 256]
    assert "| mlp_256-256-256_dropout0.45_adam |" in report.render([row])


def test_every_seed_table_row_is_defined_once():
    ids = [r.id for r in seed_tables.ROWS]
    assert len(ids) == len(set(ids))
    tables = [r.reference["source"] for r in seed_tables.ROWS]
    assert tables.count(seed_tables.T132) == 19 and tables.count(seed_tables.T141) == 4
    assert tables.count(seed_tables.T151) == 4 and tables.count(seed_tables.TF) == 1


@pytest.mark.xdist_group("every_card_counted")  # one worker traces the 50 models
def test_readme_generated_blocks_are_current():
    """The README's zoo table and docs/performance.md's speed table are exactly what
    `experiments.report` generates."""
    text = report.README.read_text() + report.PERFORMANCE.read_text()
    for name, body in report.readme_blocks(common.read_rows(common.RESULTS_DIR)).items():
        assert f"<!-- BEGIN {name} -->\n{body}\n<!-- END {name} -->" in text, name


def test_optimizer_study_quick(tmp_path, monkeypatch):
    from experiments import optimizers

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert optimizers.main(["--quick", "--rows", "mlp_mnist"]) == 0
    out = tmp_path / "quick" / "optimizers"
    rows = common.read_rows(out)
    assert sorted(r["config"]["optimizer"] for r in rows) == sorted(optimizers.optim.OPTIMIZERS)
    for r in rows:
        assert len(r["history"]) == 1 and r["history"][0]["train_loss"] > 0
    assert (out / "mnist_training_loss.png").stat().st_size > 10_000
    table = "\n".join(optimizers.optimizer_table(rows))
    assert table.count("| mlp | mnist |") == 8 and "not run yet" in table  # the CNN rows


def test_optimizer_study_results_are_complete():
    """The committed study: 2 models x 2 datasets x 8 optimizers, each trained to the end."""
    from experiments import optimizers

    rows = [r for r in common.read_rows(common.RESULTS_DIR) if r["experiment"] == "optimizers"]
    assert len(rows) == 32 and len({r["row"] for r in rows}) == 32
    for r in rows:
        epochs = 20 if r["model"] == "mlp" else 10
        assert r["config"]["epochs"] == epochs and len(r["history"]) == epochs
        assert r["config"]["train_limit"] is None and 0.8 < r["metrics"]["test_accuracy"] < 1
    for dataset in optimizers.DATASETS:
        assert (optimizers.OUT / f"{dataset}_training_loss.png").exists()


def test_torch_crosscheck_networks_match_ours():
    """The PyTorch oracles are the seed rows' networks: same parameter counts as zoo_jax's."""
    from experiments import torch_crosscheck
    from zoo_jax import registry

    for row_id in torch_crosscheck.ROWS:
        row = next(r for r in seed_tables.ROWS if r.id == row_id)
        net, _ = torch_crosscheck.torch_network(row)
        ours = registry.count_params(registry.get_model(row.model, **row.overrides),
                                     registry.get_card(row.model).input_shape)  # fmt: skip
        assert sum(p.numel() for p in net.parameters()) == ours


def test_deconv_net_quick_judges_generated_images(tmp_path, monkeypatch):
    from experiments import deconv_net

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert deconv_net.main(["--quick", "--datasets", "mnist"]) == 0
    (row,) = common.read_rows(tmp_path / "quick" / "deconv_net")
    m = row["metrics"]
    # code 12 → dense 256 → dense 1,568 → 7×7×32 → transposed 3×3 32, 16 → 3×3 conv 1
    params = 12 * 256 + 256 + 257 * 1568 + 9 * 32 * 32 + 32 + 9 * 32 * 16 + 16 + 9 * 16 + 1
    assert row["model"] == "deconv_net" and row["config"]["params"] == params
    assert 0 <= m["judged_accuracy"] <= 1 and sum(m["judged_per_class"].values()) > 0
    assert 0 <= m["optimum_judged_accuracy"] <= 1  # the translated class means, judged
    assert m["optimum_judged_per_class"].keys() == m["judged_per_class"].keys()
    assert 0.5 < m["test_accuracy"] < 1  # pixel agreement of the generated images


def test_zoo_bench_quick(tmp_path, monkeypatch):
    from experiments import zoo_bench

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert zoo_bench.main(["--quick"]) == 0
    rows = {r["model"]: r for r in common.read_rows(tmp_path / "quick" / "zoo_bench")}
    assert sorted(rows) == ["lenet5", "mlp"] and rows["lenet5"]["config"]["params"] == 60_000
    for r in rows.values():
        assert r["metrics"]["images_per_s"] > 0 and r["metrics"]["train_step_compiles"] == 1
        assert r["metrics"]["train_flops_per_image"] > 2 * r["metrics"]["forward_flops_per_image"]


def test_recurrent_zoo_quick_and_its_report(tmp_path, monkeypatch):
    from experiments import recurrent_zoo, report

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert recurrent_zoo.main(["--quick"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "recurrent_zoo")}
    assert sorted(rows) == ["chars/elman", "chars/jordan", "smnist/elman", "smnist/jordan"]
    chars = rows["chars/elman"]["metrics"]
    assert chars["test_bpc"] == pytest.approx(chars["test_loss"] / np.log(2))
    assert 0 < chars["validation_bpc"] < 8 and rows["smnist/elman"]["model"] == "rnn"
    text = report.render(list(rows.values()))
    assert "### Character-level language modelling" in text and "| jordan | char_rnn |" in text


def test_converged_quick_searches_rates_on_validation_then_seeds(tmp_path, monkeypatch):
    from experiments import converged

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert converged.main(["--quick", "--task", "chars"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "converged")}
    search = [f"chars/lstm/lr{lr:g}_seed0" for lr in (0.001, 0.003, 0.01)]
    assert sorted(rows) == sorted([*search, "chars/lstm/seed1"])
    best = min(search, key=lambda row: rows[row]["metrics"]["validation_loss"])
    seed1 = rows["chars/lstm/seed1"]
    assert seed1["config"]["learning_rate"] == rows[best]["config"]["learning_rate"]
    assert (seed1["config"]["seed"], rows[best]["config"]["seed"]) == (1, 0)
    for r in rows.values():
        m = r["metrics"]
        assert m["test_bpc"] == pytest.approx(m["test_loss"] / np.log(2))
        assert m["validation_loss"] == min(m["validation_loss_by_epoch"])
        assert 1 <= m["best_epoch"] <= m["epochs_trained"] <= 2
    text = "\n".join(converged.section(list(rows.values()), {}))
    assert f"| {rows[best]['config']['learning_rate']:g} | 2 of 3 |" in text
    assert "Not finished yet" in text and "chars/lstm" in text


def test_converged_seed_run_waits_for_another_runners_search(tmp_path, monkeypatch):
    from experiments import converged
    from zoo_jax.errors import ZooError

    monkeypatch.setattr(converged, "train", lambda task, row, lr, seed, *a: (lr, seed))
    items = dict(converged.plan("chars", ["gru"], False, None, tmp_path))
    with pytest.raises(ZooError, match="search has not finished"):  # nobody is searching
        items["gru/seed1"]()
    (tmp_path / "gru").mkdir()
    (tmp_path / "gru" / "lr0.01_seed0.claim").touch()  # another runner trains this rate

    def others_search_ends(seconds):
        for lr, loss in ((0.001, 1.5), (0.003, 1.4), (0.01, 1.45)):
            row = {"row": f"chars/gru/lr{lr:g}_seed0", "config": {"learning_rate": lr},
                   "metrics": {"validation_loss": loss}}  # fmt: skip
            common.write_rows(tmp_path / "gru" / f"lr{lr:g}_seed0.json", [row])

    monkeypatch.setattr(converged.time, "sleep", others_search_ends)
    assert items["gru/seed1"]() == (0.003, 1)


def test_converged_ranks_dates_rows_on_the_split_it_names():
    from experiments import converged

    def seeds(test, long):
        return [
            {"metrics": {"test_exact": t, "long_exact": g}} for t, g in zip(test, long, strict=True)
        ]

    by_row = {"global": seeds([1.0, 1.0, 1.0], [0.99, 0.97, 0.98]),
              "no_attention": seeds([1.0, 0.999, 1.0], [0.90, 0.93, 0.96])}  # fmt: skip
    test = converged.compare("dates", "global", "no_attention", by_row, "claim", "test")
    long = converged.compare("dates", "global", "no_attention", by_row, "claim", "long")
    assert "1.0000 ± 0.0000 against no_attention 0.9997 ± 0.0006 test exact" in test
    assert "is not resolved" in test
    assert "0.9800 ± 0.0100 against no_attention 0.9300 ± 0.0300 long exact" in long
    assert "+0.0500 in global's favour; the claim holds" in long


def test_converged_records_a_diverged_rate_and_chooses_among_the_others(monkeypatch):
    from experiments import converged
    from zoo_jax.errors import NonFiniteError

    def diverges(*args, **kwargs):
        raise NonFiniteError("non-finite loss or gradient at step 3")

    monkeypatch.setattr(converged, "fit", diverges)
    row = converged.train("chars", "mlstm", 0.01, 0, True, None)
    assert row["row"] == "chars/mlstm/lr0.01_seed0" and row["metrics"]["validation_loss"] is None
    done = [{"row": f"chars/mlstm/lr{lr:g}_seed0", "config": {"learning_rate": lr},
             "metrics": {"validation_loss": loss}} for lr, loss in ((0.001, 1.4), (0.003, 1.3))]  # fmt: skip
    assert converged.chosen_rate([*done, row], 3) == 0.003
    with pytest.raises(NonFiniteError):  # a seed run at the chosen rate must not diverge quietly
        converged.train("chars", "mlstm", 0.003, 1, True, None)


def test_mixed_precision_quick_trains_both_dtypes(tmp_path, monkeypatch):
    from experiments import mixed_precision

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert mixed_precision.main(["--quick", "--models", "mlp"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "mixed_precision")}
    assert sorted(rows) == ["mlp_bfloat16_seed0", "mlp_float32_seed0"]
    for dtype, r in (
        ("float32", rows["mlp_float32_seed0"]),
        ("bfloat16", rows["mlp_bfloat16_seed0"]),
    ):
        assert r["config"]["dtype"] == dtype and r["metrics"]["test_accuracy"] > 0.5  # 16 steps
        assert r["metrics"]["bench_images_per_s"] > 0
    text = "\n".join(mixed_precision.section(list(rows.values()), {}))
    assert "| mlp | bfloat16 | 1 |" in text and "Not run yet: cnn, rnn." in text


def test_seq2seq_quick_decodes_both_splits(tmp_path, monkeypatch):
    from experiments import report, seq2seq

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert seq2seq.main(["--quick", "--rows", "global,transformer"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "seq2seq")}
    assert sorted(rows) == ["global", "transformer"]
    for r in rows.values():
        m = r["metrics"]
        assert 0 <= m["test_exact"] <= 1 and 0 <= m["long_exact"] <= 1
        assert set(m["long_exact_by_format"]) <= set(text.DATE_FORMATS)
    assert "| global | seq2seq | general |" in report.render(list(rows.values()))


def test_seed_spread_quick_trains_the_same_network_in_both_frameworks(tmp_path, monkeypatch):
    from experiments import seed_spread

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert seed_spread.main(["--quick", "--seeds", "1"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "seed_spread")}
    assert sorted(rows) == ["keras_seed0", "zoo_jax_seed0"]
    # the seed's listing: 784·256 + 256 + 256·256 + 256 + 256·10 + 10, counted by each framework
    assert {r["config"]["params"] for r in rows.values()} == {269_322}
    assert rows["keras_seed0"]["versions"]["keras"].startswith("3.")
    for r in rows.values():  # one epoch on 2,048 images already learns something
        assert 0.5 < r["metrics"]["test_accuracy"] <= 1
    stats = seed_spread.summarize(list(rows.values()))
    assert stats["keras"]["n"] == 1 and stats["keras"]["std"] == 0.0
    assert "| keras | 1 |" in report.render(list(rows.values()))


def test_bench_vs_torch_times_the_workers_in_turns():
    from experiments import bench_vs_torch

    row = bench_vs_torch.compare("mlp", 32, rounds=2, turn_s=0.01)
    cfg, m = row["config"], row["metrics"]
    # the same network in all three workers: zoo_jax, PyTorch and the plain Flax step
    assert cfg["params"] == cfg["torch_params"] == cfg["flax_params"] == 269_322
    assert cfg["steps_per_turn"] == {"zoo_jax": 15, "torch": 15, "flax": 15}  # a short turn's floor
    assert len(m["ratio_by_round"]) == len(m["flax_ratio_by_round"]) == 2
    assert m["zoo_jax_step_ms"] > 0 and m["torch_step_ms"] > 0 and m["flax_step_ms"] > 0
    # the ratios are of the medians (the step times are rounded to 0.01 ms)
    assert abs(m["ratio"] - m["torch_step_ms"] / m["zoo_jax_step_ms"]) < 0.02 * m["ratio"]
    assert abs(m["flax_ratio"] - m["torch_step_ms"] / m["flax_step_ms"]) < 0.02 * m["flax_ratio"]
    assert abs(m["zoo_jax_vs_flax"] - m["ratio"] / m["flax_ratio"]) < 0.01 * m["zoo_jax_vs_flax"]
    assert row["reference"]["target_ratio"] == 2.5 and "own process" in row["reference"]["source"]
    table = "\n".join(bench_vs_torch.bench_table([row]))
    assert f"| {m['flax_step_ms']} | {m['flax_ratio']:.2f}× (" in table


def test_torch_twin_of_the_sequential_mnist_lstm():
    """Keras's LSTM has one bias per gate, PyTorch's two: 4 × 256 more, nothing else."""
    from experiments import bench_vs_torch

    net, _, shape = bench_vs_torch.torch_model("lstm")
    torch_params = sum(p.numel() for p in net.parameters())
    assert shape == (28, 28) and torch_params == 294_410 + 4 * 256  # zoo-jax info lstm


def test_torch_lstm_peer_with_and_without_onednn():
    """PyTorch's `nn.LSTM` on the CPU runs oneDNN's fused LSTM kernel (forward and backward);
    the `torch_composed` worker turns it off, so ATen composes the step from products."""
    import torch

    from experiments import bench_vs_torch

    try:
        for onednn, fused in ((True, True), (False, False)):
            info, time_steps = bench_vs_torch.prepare_torch("lstm", 8, onednn=onednn)
            with torch.autograd.profiler.profile() as prof:
                time_steps(1)
            ops = {e.key for e in prof.key_averages()}
            assert "aten::lstm" in ops
            assert ("aten::mkldnn_rnn_layer_backward" in ops) is fused
            assert info["params"] == 294_410 + 4 * 256
    finally:
        torch.backends.mkldnn.enabled = True


def test_plain_flax_step_learns_each_seed_model():
    """The Flax peer trains the network it claims to: its loss falls on a fixed batch."""
    from experiments import bench_vs_torch

    for name, params in (("mlp", 269_322), ("cnn", 80_266), ("rnn", 75_530)):
        count, time_steps, last_loss = bench_vs_torch.flax_step(name, 16)
        assert count == params
        assert len(time_steps(1)) == 1
        first = last_loss()
        time_steps(10 if name == "rnn" else 5)  # the same batch again: it is learned
        assert last_loss() < first, (name, first, last_loss())


def test_conv_zoo_quick_with_augmentation(tmp_path, monkeypatch):
    from experiments import conv_zoo

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    argv = ["--quick", "--models", "lenet5", "--datasets", "mnist", "--augment", "affine"]
    assert conv_zoo.main(argv) == 0
    (row,) = common.read_rows(tmp_path / "quick" / "conv_zoo")
    assert row["row"] == "lenet5_mnist_affine" and row["config"]["augment"] == "affine"
    assert row["config"]["params"] == 60_000 and "distorted (affine" in row["notes"]
    assert "| lenet5 + affine | 1 | 60,000 |" in report.render([row])


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("conv_zoo", ["--models", "resnt18"], "did you mean 'resnet18'"),
        ("conv_zoo", ["--datasets", "cifar"], "unknown dataset"),
        ("conv_zoo", ["--width", "0"], "--width must be > 0"),
        ("deconv_net", ["--datasets", "cifar"], "unknown dataset"),
        ("zoo_bench", ["--models", "lenet", "--quick"], "did you mean 'lenet5'"),
        ("conv_zoo", ["--widht", "1"], "unrecognized arguments: --widht"),
        ("bench_vs_torch", ["--models", "mpl"], "did you mean 'mlp'"),
        ("bench_vs_torch", ["--rounds", "0"], "--rounds and --batch-size must be >= 1"),
        ("seed_tables", ["--rows", "mlp_4096"], "no row matches --rows 'mlp_4096'"),
        ("optimizers", ["--rows", "adamw"], "no row matches --rows 'adamw'"),
        ("recurrent_zoo", ["--task", "chars", "--rows", "lstn"], "did you mean 'lstm'"),
        ("converged", ["--task", "dates", "--rows", "globl"], "did you mean 'global'"),
        ("mixed_precision", ["--models", "mpl"], "did you mean 'mlp'"),
        ("seed_spread", ["--seeds", "0"], "--seeds must be >= 1"),
        ("seq2seq", ["--rows", "bahdanau"], "unknown rows ['bahdanau']"),
    ],
)
def test_experiment_bad_options_are_one_line_and_exit_2(capsys, script, argv, message):
    module = importlib.import_module(f"experiments.{script}")
    assert common.entry(lambda: module.main(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and message in err


def test_experiment_file_system_error_is_one_line_and_exit_2(capsys):
    def no_permission():
        raise PermissionError(13, "Permission denied", "experiments/results/conv_zoo")

    assert common.entry(no_permission) == 2
    err = capsys.readouterr().err
    assert err.endswith("error: Permission denied: experiments/results/conv_zoo\n")
    assert err.count("\n") == 1


def test_experiment_stopped_by_sigterm_is_one_line_and_128_plus_signal(capsys):
    """A job's time limit (SIGTERM) stops a sweep between steps: one line, not a traceback."""
    from zoo_jax.train.loop import Interrupted

    def stopped():
        raise Interrupted(signal.SIGTERM, 472, saved=False)

    assert common.entry(stopped) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err.endswith(
        "interrupted: stopped by signal 15 at step 472; no run directory: not saved\n"
    )
    assert err.count("\n") == 1


def test_gpu_bench_rows_take_the_cpu_flop_count_and_show_the_share_of_peak():
    """CUDA's plugin gives no pre-compile FLOP count: the report takes the CPU's count of the
    same step (per image) and divides by the GPU row's own step time and the device's peak."""
    from experiments import zoo_bench

    def bench_row(device, images_per_s, flops):
        metrics = {"step_ms": 128e3 / images_per_s, "images_per_s": images_per_s,
                   "compile_s": 1.0, "forward_flops_per_image": flops and flops // 3,
                   "train_flops_per_image": flops, "train_tflops_per_s": None}  # fmt: skip
        return {"experiment": "zoo_bench", "model": "resnet50", "device": device,
                "dataset": "random batch, 28x28x1", "metrics": metrics,
                "config": {"batch_size": 128, "params": 23_519_690}}  # fmt: skip

    cpu = bench_row("cpu:cpu x1, 2 cores", 16.4, 5_880_600_000)
    gpu = bench_row("gpu:NVIDIA H100 80GB HBM3 x1", 6_719.4, None)
    table = "\n".join(zoo_bench.zoo_bench_table([gpu, cpu]))
    # 5.8806 GFLOP/img × 6,719.4 img/s = 39,514.1 GFLOP/s, 8.0 % of 494.7 TFLOP/s
    assert "| 5,880.6 ‡ | 19.0 | 6,719.4 | 39,514.1 | 8.0 | 1.0 | gpu:NVIDIA H100" in table
    assert "| 5,880.6 | 7,804.9 | 16.4 |  |  | 1.0 | cpu:cpu x1" in table  # no peak known
    assert "Not measured on the GPU yet: `lenet5`" in table


def test_experiments_report_themselves():
    """`report` imports no experiment (it finds each by the rows' `experiment` field), no
    experiment imports `report`, and no experiment imports a private name of zoo_jax."""
    import ast
    from pathlib import Path

    folder = Path(report.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom | ast.Import):
                continue
            module = getattr(node, "module", None) or ""
            names = [alias.name for alias in node.names]
            if path.name == "report.py":
                assert not (module == "experiments" and set(names) - {"common"}), names
            else:
                assert module != "experiments.report", path.name
                assert not (module == "experiments" and "report" in names), path.name
            if module.startswith("zoo_jax"):
                assert not [n for n in names if n.startswith("_")], (path.name, names)
    every = {r["experiment"] for r in common.read_rows(common.RESULTS_DIR)}
    for experiment in every:
        assert callable(report._module(experiment).section), experiment


def test_shallow_quick_measures_each_learner_beside_its_peer(tmp_path, monkeypatch):
    from experiments import report, shallow

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert shallow.main(["--quick", "--rows", "perceptron_mnist,elm,som,esn_mg"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "shallow")}
    assert sorted(rows) == ["elm", "esn_mg", "perceptron_mnist", "som"]
    for key in ("perceptron_mnist", "elm", "som"):
        m = rows[key]["metrics"]
        assert 0.3 < m["test_accuracy"] <= 1 and 0.3 < m["peer_test_accuracy"] <= 1
        assert m["fit_s"] > 0 and m["peer_fit_s"] > 0
    som = rows["som"]["metrics"]
    assert som["quantization_error"] > 0 and 0 <= som["topographic_error"] <= 1
    # the same map, start, order and schedule: the errors agree with MiniSom's
    assert abs(som["quantization_error"] - som["peer_quantization_error"]) < 0.05
    esn = rows["esn_mg"]["metrics"]
    assert 0 < esn["test_nrmse"] < 0.5 and len(esn["test_nrmse_by_seed"]) == 3
    text = report.render(list(rows.values()))
    assert "| elm, 500 hidden" in text and "MiniSom" in text and "ReservoirPy" in text


def test_energy_quick_and_its_report(tmp_path, monkeypatch):
    from experiments import energy, report

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert energy.main(["--quick", "--rows", "markov_k2,boltzmann,rbm_cd1,rbm_bench"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "energy")}
    assert sorted(rows) == ["boltzmann", "markov_k2", "rbm_bench", "rbm_cd1"]
    markov = rows["markov_k2"]["metrics"]
    assert 2 < markov["test_bpc"] < 5 and markov["peer_subset_test_bpc"] > 0
    assert len(markov["sample"]) == len(energy.PROMPT) + 300
    assert rows["boltzmann"]["metrics"]["success_rate"]["4-2-4"] > 0
    rbm = rows["rbm_cd1"]["metrics"]
    assert rbm["test_ll"] < 0 and rbm["peer_test_ll"] < 0 and 0 < rbm["test_accuracy"] <= 1
    assert (tmp_path / "quick" / "energy" / "pictures" / "rbm_cd1.png").stat().st_size > 1000
    assert rows["rbm_bench"]["metrics"]["speedup"] > 0
    text = report.render(list(rows.values()))
    assert "**Markov chain**" in text and "**Boltzmann machine**" in text and "| rbm_cd1 |" in text


def test_adversarial_quick_and_its_report(tmp_path, monkeypatch):
    from experiments import adversarial, report

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert adversarial.main(["--quick", "--rows", "conditional_gan_mnist,dcgan_bench"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "adversarial")}
    assert sorted(rows) == ["conditional_gan_mnist", "dcgan_bench"]
    m = rows["conditional_gan_mnist"]["metrics"]
    assert 1 <= m["classifier_score"] <= 10 and 1 <= m["real_classifier_score"] <= 10
    assert 0 <= m["frechet_floor"] < m["frechet_distance"]  # 2 epochs on 1,024 images
    assert 0 <= m["min_class_share"] <= 0.1 and 0 <= m["class_match"] <= 1
    assert sum(m["class_histogram"]) == pytest.approx(1, abs=1e-3)
    assert m["real_parzen_ll"] > m["parzen_ll"] and [e for e, _ in m["score_by_epoch"]] == [1, 2]
    assert m["train_step_compiles"] == 1
    bench = rows["dcgan_bench"]["metrics"]
    assert bench["speedup"] > 0 and bench["params"] == bench["peer_params"] == 898_304
    text = report.render(list(rows.values()))
    assert "| conditional_gan | mnist |" in text and "**DCGAN train step**" in text


def test_autoencoders_quick_and_its_report(tmp_path, monkeypatch):
    from experiments import autoencoders, report

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    rows = "denoising_autoencoder_mnist,vae_mnist,dcign_sprites"
    assert autoencoders.main(["--quick", "--rows", rows]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "autoencoders")}
    assert sorted(rows) == ["dcign_sprites", "denoising_autoencoder_mnist", "vae_mnist"]
    m = rows["denoising_autoencoder_mnist"]["metrics"]
    assert 0 < m["test_recon"] < 0.25 and m["code_size"] == 500
    assert 0.1 < m["probe_accuracy"] <= 1 and 0.1 < m["pca_probe_accuracy"] <= 1
    by_level = m["psnr_by_level"]  # more noise, a noisier input
    assert by_level["0.1"]["noisy"] > by_level["0.25"]["noisy"] > by_level["0.5"]["noisy"]
    vae = rows["vae_mnist"]["metrics"]
    assert 0 < vae["test_nll"] < vae["test_elbo"] + 5 and [e for e, _ in vae["nll_by_epoch"]] == [
        1,
        2,
    ]
    dcign = rows["dcign_sprites"]["metrics"]
    for name in ("scale", "rotation", "x", "y"):
        assert 0 <= dcign["factor_correlation"][name] <= 1
        assert len(dcign["plain_vae_correlations"][name]) == 10
    text = report.render(list(rows.values()))
    assert "| denoising_autoencoder | mnist |" in text and "**DCIGN on the sprites**" in text


def test_memory_and_capsules_quick_and_their_reports(tmp_path, monkeypatch):
    from experiments import capsules, memory, report

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert memory.main(["--quick", "--rows", "ntm_copy,memn2n_1k_joint"]) == 0
    assert capsules.main(["--quick", "--rows", "capsnet_mnist"]) == 0
    rows = {r["row"]: r for d in ("memory", "capsules")
            for r in common.read_rows(tmp_path / "quick" / d)}  # fmt: skip
    copy = rows["ntm_copy"]["metrics"]
    assert all(0 <= copy[f"bit_errors_len{n}"] <= 8 * n for n in (20, 120))  # quick: 2 lengths
    assert copy["bit_errors_len120"] > copy["bit_errors_len20"]  # untrained: errors scale with n
    babi_row = rows["memn2n_1k_joint"]["metrics"]
    assert sorted(babi_row["task_errors"]) == ["1", "2"] and 0 <= babi_row["mean_error"] <= 100
    assert babi_row["failed_tasks"] == sum(e > 5 for e in babi_row["task_errors"].values())
    caps = rows["capsnet_mnist"]["metrics"]  # the capsule learner's metrics, through fit
    assert 0 <= caps["test_accuracy"] <= 1 and caps["test_margin"] > 0
    assert caps["test_reconstruction"] > 0
    assert (tmp_path / "quick" / "capsules" / "pictures" / "capsnet_mnist.png").is_file()
    text = report.render(list(rows.values()))
    assert "**Copy**" in text and "| capsnet_mnist | mnist | 3 |" in text


def test_seed_systems_quick_and_their_report(tmp_path, monkeypatch):
    from experiments import report, seed_systems

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert seed_systems.main(["--quick", "--rows", "sat_hard,t2i_mnist"]) == 0
    rows = {r["row"]: r for r in common.read_rows(tmp_path / "quick" / "seed_systems")}
    sat, t2i = rows["sat_hard"]["metrics"], rows["t2i_mnist"]["metrics"]
    for key in ("bleu4", "exact_caption", "heldout_bleu4", "heldout_exact_caption"):
        assert 0 <= sat[key] <= 1, key
    assert 0 <= t2i["class_match"] <= 1 and -1 <= t2i["attribute_correlation"] <= 1
    # the real images' attributes were cut into the levels their sentences ask for
    assert t2i["real_attribute_correlation"] > 0.7
    pictures = tmp_path / "quick" / "seed_systems" / "pictures"
    assert (pictures / "sat_hard.png").is_file() and (pictures / "t2i_mnist.png").is_file()
    text = report.render(list(rows.values()))
    assert (
        "| sat_hard | hard | 1 |" in text and "| t2i_mnist | mnist-sentences | β 0.5 | 1 |" in text
    )
