"""Train-step throughput: zoo_jax (`zoo-jax bench`) vs PyTorch eager on CPU.

Same model, same optimizer, same batch, measured in the same process. The two are timed in
alternating rounds, so load from other processes falls on both alike; the ratio of medians is
what we report, never absolute times.

- The seed models (issue #2): MLP and CNN with Adam, the SimpleRNN with SGD, on 128 random
  MNIST-shaped examples; targets are minimum ratios.
- The sequence models (issue #5), in target tokens per second: `char_rnn` (embedding 64,
  LSTM 256, readout; 32 windows of 128 characters; Adam; vs `nn.LSTM`) and `transformer`
  (encoder–decoder, d_model 64, 4 heads, 2 + 2 layers, d_ff 256, label smoothing 0.1; 64
  date pairs, 11 target tokens each; Adam; vs `nn.Transformer`, which adds a final
  LayerNorm to its encoder and decoder stacks: 256 more parameters).

    python -m experiments.bench_vs_torch [--rounds 5 --steps 20 --models mlp,char_rnn]

Writes `experiments/results/bench/bench_vs_torch.json` (the seed models) and
`bench/sequence_vs_torch.json` (the sequence models).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from experiments import common
from zoo_jax import cli

TARGETS = {"mlp": 2.5, "rnn": 1.8, "cnn": 1.0}  # issue #2: minimum zoo_jax / torch ratios
SEQUENCE = {"char_rnn": 32, "transformer": 64}  # batch size of each (examples per step)


def sequence_batch(name: str, batch_size: int):
    """The first real training batch of the model's token dataset (ids as numpy)."""
    from zoo_jax import registry
    from zoo_jax.data import datasets

    card = registry.get_card(name)
    x, y = datasets.load(card.dataset, "train", card.input_shape)
    return x[:batch_size], y[:batch_size]


def torch_sequence_model(name: str, batch_size: int):
    """(net, optimizer, inputs tuple, targets, loss) of a sequence model in PyTorch."""
    import numpy as np
    import torch
    from torch import nn

    from zoo_jax import registry
    from zoo_jax.models.attention import sinusoidal_positions

    card = registry.get_card(name)
    model = registry.get_model(name)
    x, y = (torch.from_numpy(a.astype(np.int64)) for a in sequence_batch(name, batch_size))
    if name == "char_rnn":

        class CharLSTM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(model.vocab, model.embed_dim)
                self.lstm = nn.LSTM(model.embed_dim, model.units, batch_first=True)
                self.out = nn.Linear(model.units, model.vocab)

            def forward(self, ids):
                return self.out(self.lstm(self.embed(ids))[0])

        net, inputs, targets, smoothing = CharLSTM(), (x,), y, 0.0
    else:
        positions = torch.from_numpy(np.array(sinusoidal_positions(model.max_len, model.d_model)))

        class DatesTransformer(nn.Module):
            def __init__(self):
                super().__init__()
                d = model.d_model
                self.src_embed = nn.Embedding(model.source_vocab, d)
                self.tgt_embed = nn.Embedding(model.target_vocab, d)
                self.drop = nn.Dropout(model.dropout)
                self.core = nn.Transformer(d, model.num_heads, model.num_layers, model.num_layers,
                                           model.d_ff, model.dropout, batch_first=True)  # fmt: skip
                self.out = nn.Linear(d, model.target_vocab)

            def forward(self, src, tgt_in):
                scale = model.d_model**0.5
                s = self.drop(self.src_embed(src) * scale + positions[: src.shape[1]])
                t = self.drop(self.tgt_embed(tgt_in) * scale + positions[: tgt_in.shape[1]])
                causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])
                pad = src == 0
                h = self.core(s, t, tgt_mask=causal, src_key_padding_mask=pad,
                              memory_key_padding_mask=pad, tgt_is_causal=True)  # fmt: skip
                return self.out(h)

        net, inputs, targets = DatesTransformer(), (x, y[:, :-1]), y[:, 1:]
        smoothing = card.loss_options.get("label_smoothing", 0.0)
    opt = torch.optim.Adam(net.parameters(), card.learning_rate, eps=1e-7)

    def loss(logits):
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), label_smoothing=smoothing
        )

    return net, opt, inputs, loss


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
        if name in SEQUENCE:
            state[name] = torch_sequence_model(name, batch_size)
        else:
            net, opt, shape = torch_model(name)
            x, y = torch.rand(batch_size, *shape), torch.randint(0, 10, (batch_size,))
            loss = lambda logits, y=y: torch.nn.functional.cross_entropy(logits, y)
            state[name] = (net, opt, (x,), loss)
    net, opt, inputs, loss = state[name]
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        opt.zero_grad()
        loss(net(*inputs)).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times


def compare(name: str, batch_size: int, rounds: int, steps: int, torch_state: dict) -> dict:
    """Medians of alternating zoo_jax / PyTorch rounds, as one result row."""
    import torch

    ours, theirs, compile_s = [], [], []
    time_torch(name, batch_size, 3, torch_state)  # warm-up
    for _ in range(rounds):
        result = cli.bench(name, batch_size, steps)
        ours.append(result["step_ms"] / 1e3)
        compile_s.append(result["compile_s"])
        theirs.append(statistics.median(time_torch(name, batch_size, steps, torch_state)))
    jax_s, torch_s = statistics.median(ours), statistics.median(theirs)
    metrics = {
        "zoo_jax_step_ms": round(jax_s * 1e3, 2),
        "torch_step_ms": round(torch_s * 1e3, 2),
        "zoo_jax_images_per_s": round(batch_size / jax_s, 1),
        "torch_images_per_s": round(batch_size / torch_s, 1),
        "ratio": round(torch_s / jax_s, 3),
        "compile_s": round(statistics.median(compile_s), 2),
    }
    if name in SEQUENCE:
        tokens = result["tokens_per_s"] * result["step_ms"] / 1e3  # target tokens per step
        metrics |= {
            "tokens_per_step": round(tokens),
            "zoo_jax_tokens_per_s": round(tokens / jax_s, 1),
            "torch_tokens_per_s": round(tokens / torch_s, 1),
        }
    print(f"{name}: zoo_jax {jax_s * 1e3:.2f} ms, torch {torch_s * 1e3:.2f} ms, "
          f"ratio {metrics['ratio']:.2f}", flush=True)  # fmt: skip
    return {
        "experiment": "bench_vs_torch",
        "row": name,
        "model": name,
        "dataset": "first training batch" if name in SEQUENCE else "random MNIST-shaped batch",
        "config": {
            "batch_size": batch_size,
            "optimizer": result["optimizer"],
            "rounds": rounds,
            "steps_per_round": steps,
            "params": result["params"],
            "torch_params": sum(p.numel() for p in torch_state[name][0].parameters()),
        },
        "metrics": metrics,
        "reference": {
            "source": f"PyTorch {torch.__version__} eager, same process",
            "target_ratio": TARGETS.get(name),
        },
        "wall_s": None,
        "device": common.device() + f", {os.cpu_count()} cores",
        "versions": common.versions() | {"torch": torch.__version__},
        "git": common.git_commit(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128, help="of the seed models")
    parser.add_argument("--models", default=",".join([*TARGETS, *SEQUENCE]))
    parser.add_argument("--out", default=None, help="directory (default: results/bench)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    out = Path(args.out) if args.out else common.RESULTS_DIR / "bench"
    torch_state = {}
    models = args.models.split(",")
    for group, file in ((TARGETS, "bench_vs_torch.json"), (SEQUENCE, "sequence_vs_torch.json")):
        names = [m for m in models if m in group]
        rows = [
            compare(name, SEQUENCE.get(name, args.batch_size), args.rounds, args.steps,
                    torch_state)
            for name in names
        ]  # fmt: skip
        if rows:
            common.write_rows(out / file, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
