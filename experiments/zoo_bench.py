"""Train-step throughput and FLOPs of every registered model, in the configuration it trains in.

    python -m experiments.zoo_bench                         # every model, batch 32, 3 timed steps
    python -m experiments.zoo_bench --models resnet18,vgg16 --batch-size 128 --steps 10
    python -m experiments.zoo_bench --quick                 # CI: two small models

Each row is one `zoo-jax bench` (`zoo_jax.bench.bench`): the compiled train step on a random
batch of the model's small-image configuration (the one `conv_zoo` trains; full width),
median step time, images/s, compile time, and XLA's FLOP count per image for the forward pass
and the whole train step (forward, backward, update). Achieved FLOP/s = train FLOPs / step
time, so the fraction of a device's peak is visible. Rows go to
`experiments/results/bench/zoo_<backend>/MODEL.json`, one file per model, written as each
finishes (a stopped sweep keeps what it measured; existing rows are skipped unless `--force`).
Absolute times on a shared machine are noise: compare rows measured in the same sweep.
"""

from __future__ import annotations

import os
import sys
import time

import jax

from experiments import common, conv_zoo
from zoo_jax import bench, registry
from zoo_jax.errors import ArgumentParser


def out_dir(backend: str | None = None):
    return common.RESULTS_DIR / "bench" / f"zoo_{backend or jax.default_backend()}"


def bench_row(model: str, batch_size: int, steps: int) -> dict:
    t = time.perf_counter()
    result = bench.bench(model, batch_size, steps)
    spec, input_shape, _ = registry.training_spec(model, {})
    return {
        "experiment": "zoo_bench",
        "row": f"{model}_{result['backend']}",
        "model": model,
        "dataset": "random batch, " + "x".join(map(str, input_shape)),
        "config": {
            "batch_size": batch_size,
            "steps": steps,
            "optimizer": result["optimizer"],
            "model_overrides": spec,
            "params": result["params"],
        },
        "metrics": {
            k: result[k]
            for k in (
                "step_ms",
                "images_per_s",
                "compile_s",
                "forward_flops_per_image",
                "train_flops_per_image",
                "train_tflops_per_s",
                "train_step_compiles",
            )
        },
        "reference": {"source": "zoo-jax bench"},
        "wall_s": round(time.perf_counter() - t, 1),
        "device": common.device()
        + (f", {os.cpu_count()} cores" if result["backend"] == "cpu" else ""),
        "versions": common.versions(),
        "git": common.git_commit(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--force", action="store_true", help="re-measure rows that exist")
    parser.add_argument("--quick", action="store_true", help="CI: lenet5 and mlp, 3 steps")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else registry.list_models()
    for name in models:
        registry.get_card(name)  # unknown names fail before anything runs
    if args.quick:
        models = ["mlp", "lenet5"]
    directory = common.RESULTS_DIR / "quick" / "zoo_bench" if args.quick else out_dir()
    for model in models:
        path = directory / f"{model}.json"
        if path.exists() and not (args.force or args.quick):
            continue
        row = bench_row(model, args.batch_size, args.steps)
        common.write_rows(path, [row])
        m = row["metrics"]
        print(
            f"{model}: {m['images_per_s']:,.0f} img/s, {m['step_ms']} ms/step, "
            f"{m['train_flops_per_image'] or 0:,.0f} train FLOPs/img, compile {m['compile_s']} s",
            flush=True,
        )
    if not (args.no_report or args.quick):
        common.update_report()
    return 0


# Dense peak of the device's float32 convolutions and matmuls (`zoo_jax.bench.PEAK_TFLOPS`:
# XLA runs them as TF32 on the tensor cores at JAX's default precision).
PEAK_FLOPS = {"NVIDIA H100 80GB HBM3": bench.device_peak("NVIDIA H100 80GB HBM3", "float32")}


def _with_flops(rows: list[dict]) -> list[dict]:
    """Where a backend's cost analysis gave no FLOP count (the GPU's, under jax 0.11.2), take
    XLA's CPU count of the same model's train step (per image, so the batch does not matter),
    marked `flops_from_cpu`; GFLOP/s then follows from the row's own step time."""
    cpu = {r["model"]: r["metrics"] for r in rows if r["device"].startswith("cpu")}
    out = []
    for r in rows:
        m = r["metrics"]
        if m["train_flops_per_image"] is None and r["model"] in cpu:
            flops = {
                k: cpu[r["model"]][k] for k in ("forward_flops_per_image", "train_flops_per_image")
            }
            tflops = flops["train_flops_per_image"] and (
                flops["train_flops_per_image"] * m["images_per_s"] / 1e12
            )
            r = r | {"metrics": m | flops | {"train_tflops_per_s": tflops}, "flops_from_cpu": True}
        out.append(r)
    return out


def zoo_bench_table(rows: list[dict]) -> list[str]:

    out = [
        "The compiled train step of each model's training configuration (full width; the",
        "conv zoo's small-image one) on a random batch (`python -m experiments.zoo_bench`, one",
        "`zoo-jax bench` per model). FLOPs: XLA's count for the compiled forward pass and the",
        "whole train step (a multiply-add is 2 FLOPs); GFLOP/s = train FLOPs / step time.",
        "",
        "CPU rows: batch 32, 3 timed steps, one sweep on this project's 2-core machine; other",
        "jobs shared the 2 cores at times, so compare rows, not absolute times.",
        "`deconv_net` and `dcn` were re-measured together after `layers.ConvTranspose`",
        "(`--models deconv_net,dcn --force`): `dcn` took 13.3 ms in the sweep and 13.5 then;",
        "`deconv_net` had taken 39.1 ms.",
        "† recurrent and attention-RNN models: XLA counts the body of the `lax.scan` over",
        "time once, so their FLOPs are one time step's (of 28), not the sequence's.",
        "",
        "GPU rows: the convolutional zoo at the batch it trains with (128), 10 timed steps,",
        "each model alone on the lent machine (`--models … --batch-size 128 --steps 10`).",
        "‡ XLA's GPU cost analysis gave no FLOP count there, so the FLOPs are its CPU count of",
        "the same train step; % of peak = GFLOP/s over the device's dense TF32 peak (JAX's",
        "default precision runs float32 convolutions on the tensor cores as TF32), "
        + ", ".join(f"{kind} {peak / 1e12:g} TFLOP/s" for kind, peak in PEAK_FLOPS.items())
        + ".",
        "",
        "| model | params | input | batch | forward MFLOP/img | train MFLOP/img | ms/step | "
        "img/s | GFLOP/s | % of peak | compile s | device |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    order = {m: i for i, m in enumerate(conv_zoo.MODELS)}
    for r in sorted(
        _with_flops(rows), key=lambda r: (r["device"], order.get(r["model"], 99), r["model"])
    ):
        m, cfg = r["metrics"], r["config"]
        mark = " ‡" if r.get("flops_from_cpu") else ""
        mflop = lambda x, mark=mark: "" if x is None else f"{x / 1e6:,.1f}{mark}"
        tflops = m["train_tflops_per_s"]
        gflops = "" if tflops is None else f"{1e3 * tflops:,.1f}"
        peak = bench.device_peak(r["device"].split(":", 1)[-1].rsplit(" x", 1)[0], "float32")
        share = "" if tflops is None or peak is None else f"{100 * tflops * 1e12 / peak:.1f}"
        looped = (
            registry.get_card(r["model"]).family == "recurrent" or r["model"] == "attention_rnn"
        )
        out.append(
            f"| {r['model']}{' †' if looped else ''} | {cfg['params']:,} | "
            f"{r['dataset'].split(', ')[-1]} | "
            f"{cfg['batch_size']} | {mflop(m['forward_flops_per_image'])} | "
            f"{mflop(m['train_flops_per_image'])} | {m['step_ms']:,.1f} | "
            f"{m['images_per_s']:,.1f} | {gflops} | {share} | {m['compile_s']:.1f} | "
            f"{r['device']} |"
        )
    measured = {r["model"] for r in rows if r["device"].startswith("gpu")}
    if measured:
        missing = [m for m in conv_zoo.MODELS if m not in measured]
        if missing:
            out += ["", f"Not measured on the GPU yet: {', '.join(f'`{m}`' for m in missing)}."]
    return [*out, ""]


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    return zoo_bench_table(rows)


if __name__ == "__main__":
    sys.exit(common.entry(main))
