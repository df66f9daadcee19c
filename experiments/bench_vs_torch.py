"""Train-step throughput of the seed models: zoo_jax (`zoo-jax bench`) vs PyTorch eager on CPU.

Same model, same optimizer (the seed's: Adam for the MLP and CNN, SGD for the RNN), same batch
(128 random MNIST-shaped examples), measured in the same process. The two are timed in
alternating rounds, so load from other processes falls on both alike; the ratio of medians is
what we report, never absolute times.

    python -m experiments.bench_vs_torch [--rounds 5 --steps 20]

Writes `experiments/results/bench/bench_vs_torch.json`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from experiments import common
from zoo_jax import cli

TARGETS = {"mlp": 2.5, "rnn": 1.8, "cnn": 1.0}  # issue #2: minimum zoo_jax / torch ratios


def torch_model(name: str):
    import torch
    from torch import nn

    if name == "mlp":
        net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Dropout(0.45),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Dropout(0.45),
            nn.Linear(256, 10),
        )
        return net, torch.optim.Adam(net.parameters(), 1e-3, eps=1e-7), (784,)
    if name == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(576, 10),
        )
        return net, torch.optim.Adam(net.parameters(), 1e-3, eps=1e-7), (1, 28, 28)

    class SeedRNN(nn.Module):  # Keras SimpleRNN(256, dropout=0.2) + Dense(10)
        def __init__(self):
            super().__init__()
            self.drop, self.rnn, self.out = (
                nn.Dropout(0.2),
                nn.RNN(28, 256, batch_first=True),
                nn.Linear(256, 10),
            )

        def forward(self, x):
            mask = self.drop(torch.ones_like(x[:, :1]))  # one input mask for every step
            return self.out(self.rnn(x * mask)[0][:, -1])

    net = SeedRNN()
    return net, torch.optim.SGD(net.parameters(), 0.01), (28, 28)


def time_torch(name: str, batch_size: int, steps: int, state: dict) -> list[float]:
    import torch

    if name not in state:
        net, opt, shape = torch_model(name)
        x = torch.rand(batch_size, *shape)
        y = torch.randint(0, 10, (batch_size,))
        state[name] = (net, opt, x, y)
    net, opt, x, y = state[name]
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    rows, torch_state = [], {}
    for name in TARGETS:
        ours, theirs, compile_s = [], [], []
        time_torch(name, args.batch_size, 3, torch_state)  # warm-up
        for _ in range(args.rounds):
            result = cli.bench(name, args.batch_size, args.steps)
            ours.append(result["step_ms"] / 1e3)
            compile_s.append(result["compile_s"])
            theirs.append(
                statistics.median(time_torch(name, args.batch_size, args.steps, torch_state))
            )
        jax_s, torch_s = statistics.median(ours), statistics.median(theirs)
        ratio = torch_s / jax_s
        rows.append(
            {
                "experiment": "bench_vs_torch",
                "row": name,
                "model": name,
                "dataset": "random MNIST-shaped batch",
                "config": {
                    "batch_size": args.batch_size,
                    "optimizer": result["optimizer"],
                    "rounds": args.rounds,
                    "steps_per_round": args.steps,
                },
                "metrics": {
                    "zoo_jax_step_ms": round(jax_s * 1e3, 2),
                    "torch_step_ms": round(torch_s * 1e3, 2),
                    "zoo_jax_images_per_s": round(args.batch_size / jax_s, 1),
                    "torch_images_per_s": round(args.batch_size / torch_s, 1),
                    "ratio": round(ratio, 3),
                    "compile_s": round(statistics.median(compile_s), 2),
                },
                "reference": {
                    "source": f"PyTorch {torch.__version__} eager, same process",
                    "target_ratio": TARGETS[name],
                },
                "wall_s": None,
                "device": common.device() + f", {os.cpu_count()} cores",
                "versions": common.versions() | {"torch": torch.__version__},
                "git": common.git_commit(),
            }
        )
        print(
            f"{name}: zoo_jax {jax_s * 1e3:.2f} ms, torch {torch_s * 1e3:.2f} ms, "
            f"ratio {ratio:.2f} (target {TARGETS[name]})",
            flush=True,
        )
    common.write_rows(common.RESULTS_DIR / "bench" / "bench_vs_torch.json", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
