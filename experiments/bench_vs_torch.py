"""Train-step throughput: zoo_jax (`zoo-jax bench`) vs PyTorch eager on CPU.

Same model, same optimizer, same batch, measured in the same run: each framework in its own
worker process (compiled and warmed up once), the workers timed in alternating rounds, so
load from other processes falls on all alike; the ratio of median step times is what we
report, never absolute times.

- The seed models (Atienza 2018, ch. 1): MLP and CNN with Adam, the SimpleRNN with SGD, and
  the sequential MNIST LSTM (`lstm`: LSTM 256 over 28 rows, input dropout 0.2, dense 10;
  Adam; vs `nn.LSTM`), on 128 random MNIST-shaped examples; targets are minimum ratios. A third worker runs each as a plain
  Flax step, written as the Flax examples write one (`flax_step`): what `jax.jit` of the
  same network gives without zoo_jax's engine and layers. For the LSTMs a fourth worker
  runs PyTorch with oneDNN off (`torch_composed`): PyTorch's default `nn.LSTM` on the CPU is
  oneDNN's fused LSTM kernel, this one ATen's per-step products and element-wise ops.
- The sequence models, in target tokens per second: `char_rnn` (embedding 64,
  LSTM 256, readout; 32 windows of 128 characters; Adam; vs `nn.LSTM`) and `transformer`
  (encoder–decoder, d_model 64, 4 heads, 2 + 2 layers, d_ff 256, label smoothing 0.1; 64
  date pairs, 11 target tokens each; Adam; vs `nn.Transformer`, which adds a final
  LayerNorm to its encoder and decoder stacks: 256 more parameters).

    python -m experiments.bench_vs_torch [--rounds 10 --turn-s 1.5 --models mlp,char_rnn]

Writes `experiments/results/bench/bench_vs_torch.json` (the seed models) and
`bench/sequence_vs_torch.json` (the sequence models).
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from experiments import common
from zoo_jax.errors import ArgumentParser, UnknownNameError, ZooError

TARGETS = {
    "mlp": 2.5,
    "rnn": 1.8,
    "cnn": 1.0,
    "lstm": 1.0,  # sequential MNIST (issue 36)
}  # minimum zoo_jax / torch ratios (the project's targets)
FLAX_PEERS = ("mlp", "rnn", "cnn")  # the seed models, also timed as a plain Flax step
SEQUENCE = {"char_rnn": 32, "transformer": 64}  # batch size of each (examples per step)
SEQUENCE_TARGETS = {"char_rnn": 1.0}  # issue 36: the LSTM no slower than nn.LSTM
# compared here, reported by another experiment: the VAE (`experiments/autoencoders.py`)
GENERATIVE = {"vae": 100}
# worker kinds; flax: the seed models only; torch_composed: the LSTMs' PyTorch step with
# oneDNN off, so `nn.LSTM` is ATen's per-step products and element-wise ops instead of
# oneDNN's fused LSTM primitive (PyTorch's default on the CPU)
FRAMEWORKS = ("jax", "torch", "flax", "torch_composed")
ONEDNN_LSTMS = ("lstm", "char_rnn")
SETTLE = 3  # steps of each turn not counted (see `compare`)


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

    if name == "vae":
        return torch_vae(), None, (784,)
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

    class SeedRecurrent(nn.Module):  # Keras SimpleRNN / LSTM(256, dropout=0.2) + Dense(10)
        def __init__(self, layer):
            super().__init__()
            self.drop, self.rnn, self.out = (
                nn.Dropout(0.2),
                layer(28, 256, batch_first=True),
                nn.Linear(256, 10),
            )

        def forward(self, x):
            mask = self.drop(torch.ones_like(x[:, :1]))  # one input mask for every step
            return self.out(self.rnn(x * mask)[0][:, -1])

    if name == "lstm":
        net = SeedRecurrent(nn.LSTM)
        return net, torch.optim.Adam(net.parameters(), 1e-3, eps=1e-7), (28, 28)
    net = SeedRecurrent(nn.RNN)
    return net, torch.optim.SGD(net.parameters(), 0.01), (28, 28)


def torch_vae():
    """The `vae` card in PyTorch: 784-200-200-(2 x 50) tanh encoder, 50-200-200-784 tanh
    decoder, the input binarised at every step, −ELBO of one sample (Bernoulli decoder,
    analytic KL) as its output; Adam as Keras's (ε 1e-7)."""
    import torch
    from torch import nn

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200),
                                     nn.Tanh(), nn.Linear(200, 100))  # fmt: skip
            self.dec = nn.Sequential(nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200),
                                     nn.Tanh(), nn.Linear(200, 784))  # fmt: skip

        def forward(self, x):
            x = torch.bernoulli(x)
            mean, log_var = self.enc(x).chunk(2, -1)
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
            bce = nn.functional.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none")
            kl = 0.5 * (log_var.exp() + mean**2 - 1 - log_var).sum(-1)
            return (bce.sum(-1) + kl).mean()

    net = VAE()
    net.opt = torch.optim.Adam(net.parameters(), 1e-3, eps=1e-7)
    return net


def flax_step(name: str, batch_size: int):
    """A seed model as a plain Flax train step, the way the Flax examples write one:
    `flax.linen` layers (`Dense`, `Conv`, `max_pool`, `Dropout`, `RNN(SimpleCell)`), a
    `train_state.TrainState` with optax's Adam or SGD, softmax cross-entropy, and
    `jax.jit` of the whole step with the state donated. None of zoo_jax's engine, layers or
    compiler options. The same networks as `torch_model` (the MLP: 784-256-256-10 with
    dropout 0.45; the CNN: three 3×3 / 64 convolutions, two 2×2 pools, dropout 0.2; the
    SimpleRNN: 256 units, one input-dropout mask of 0.2 for every step) and the same
    optimizers (Adam 1e-3 with ε = 1e-7, SGD 0.01). Returns the parameter count,
    `time_steps(n)` (as `bench.prepare_bench`'s) and `last_loss()`, the loss of the last step."""
    import flax.linen as nn
    import jax
    import numpy as np
    import optax
    from flax.training import train_state

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            x = x.reshape(len(x), -1)
            for _ in range(2):
                x = nn.Dropout(0.45, deterministic=not train)(nn.relu(nn.Dense(256)(x)))
            return nn.Dense(10)(x)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            for i in range(3):
                x = nn.relu(nn.Conv(64, (3, 3), padding="VALID")(x))
                x = nn.max_pool(x, (2, 2), (2, 2)) if i < 2 else x
            return nn.Dense(10)(nn.Dropout(0.2, deterministic=not train)(x.reshape(len(x), -1)))

    class RNN(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            x = nn.Dropout(0.2, broadcast_dims=(1,), deterministic=not train)(x)
            return nn.Dense(10)(nn.RNN(nn.SimpleCell(256))(x)[:, -1])

    adam = optax.adam(1e-3, eps=1e-7)
    model, shape, tx = {
        "mlp": (MLP(), (784,), adam),
        "cnn": (CNN(), (28, 28, 1), adam),
        "rnn": (RNN(), (28, 28), optax.sgd(0.01)),
    }[name]
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, *shape), dtype=np.float32)
    y = rng.integers(0, 10, batch_size).astype(np.int32)
    params = jax.jit(lambda key: model.init(key, x, False))(jax.random.PRNGKey(0))["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state, x, y, key):
        key = jax.random.fold_in(key, state.step)

        def loss_fn(params):
            logits = model.apply({"params": params}, x, True, rngs={"dropout": key})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    carried = {"state": state, "loss": None}
    args = (jax.device_put(x), jax.device_put(y), jax.random.PRNGKey(1))

    def time_steps(n: int) -> list[float]:
        state, times = carried["state"], []
        for _ in range(n):
            t = time.perf_counter()
            state, loss = train_step(state, *args)
            jax.block_until_ready(loss)
            times.append(time.perf_counter() - t)
        carried["state"], carried["loss"] = state, loss
        return times

    return sum(p.size for p in jax.tree.leaves(params)), time_steps, lambda: float(carried["loss"])


def time_torch(name: str, batch_size: int, steps: int, state: dict) -> list[float]:
    import torch

    if name not in state:
        if name in SEQUENCE:
            state[name] = torch_sequence_model(name, batch_size)
        else:
            net, opt, shape = torch_model(name)
            x, y = torch.rand(batch_size, *shape), torch.randint(0, 10, (batch_size,))
            loss = lambda logits, y=y: torch.nn.functional.cross_entropy(logits, y)
            if name in GENERATIVE:  # the model returns its own objective
                opt, loss = net.opt, lambda objective: objective
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


def prepare_torch(
    name: str, batch_size: int, onednn: bool = True
) -> tuple[dict, Callable[[int], list[float]]]:
    """The PyTorch twin of `zoo_jax.bench.prepare_bench`: facts, and `time_steps(n)`. With
    `onednn=False` PyTorch's oneDNN (mkldnn) paths are off in this process."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.backends.mkldnn.enabled = onednn
    state = {}
    time_torch(name, batch_size, 3, state)  # warm-up (allocator, first-call paths)
    info = {
        "params": sum(p.numel() for p in state[name][0].parameters()),
        "threads": torch.get_num_threads(),
        "version": torch.__version__,
    }
    return info, lambda n: time_torch(name, batch_size, n, state)


def worker(framework: str, name: str, batch_size: int) -> None:
    """Serve timing requests on stdin: print the facts as one JSON line, then for each line
    `n` run n train steps and print their seconds as a JSON list. Idle between requests."""
    if framework == "jax":
        from zoo_jax import bench

        info, time_steps = bench.prepare_bench(name, batch_size)
        info.pop("traces")
    elif framework == "flax":  # its version is in the row's `versions` already
        params, time_steps, _ = flax_step(name, batch_size)
        time_steps(3)  # compile and warm up
        info = {"params": params}
    else:
        info, time_steps = prepare_torch(name, batch_size, onednn=framework == "torch")
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        print(json.dumps(time_steps(int(line))), flush=True)


class Worker:
    """A `worker` process of one framework, driven over its stdin / stdout."""

    def __init__(self, framework: str, name: str, batch_size: int):
        argv = [sys.executable, "-m", "experiments.bench_vs_torch", "--worker", framework]
        argv += ["--models", name, "--batch-size", str(batch_size)]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)  # fmt: skip
        self.info = self._reply()

    def _reply(self):
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.process.args[4]} worker died (exit {self.process.wait()})")
        return json.loads(line)

    def time_steps(self, n: int) -> list[float]:
        self.process.stdin.write(f"{n}\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def compare(name: str, batch_size: int, rounds: int, turn_s: float) -> dict:
    """Median step times of zoo_jax and PyTorch (and of the plain Flax step, for a seed
    model), timed in alternating rounds, as a result row.

    Each framework runs in its own worker process, compiled and warmed up once, and the
    workers take turns of about `turn_s` seconds each (at least 15 steps; the order reverses
    every round), so a slow spell of the shared machine falls on all alike. The first
    `SETTLE` steps of each turn are not counted: after another's turn, threads and caches
    wake up cold (2-3x slower steps in a trial). In one process, instead, the two runtimes'
    thread pools competed and slowed both steps by 1.3-1.6x.
    """
    kinds = [*FRAMEWORKS[:2], *(["flax"] if name in FLAX_PEERS else []),
             *(["torch_composed"] if name in ONEDNN_LSTMS else [])]  # fmt: skip
    workers = {kind: Worker(kind, name, batch_size) for kind in kinds}
    steps = {
        kind: max(15, math.ceil(turn_s / statistics.median(w.time_steps(5))))
        for kind, w in workers.items()
    }
    times = {kind: [] for kind in workers}
    by_round = {kind: [] for kind in workers}  # torch's median / this worker's, per round
    for r in range(rounds):
        turns = {}
        for kind in list(workers)[:: 1 if r % 2 else -1]:
            time.sleep(0.2)
            turns[kind] = workers[kind].time_steps(steps[kind])[SETTLE:]
            times[kind] += turns[kind]
        torch_median = statistics.median(turns["torch"])
        for kind in workers:
            by_round[kind].append(torch_median / statistics.median(turns[kind]))
    for done in workers.values():
        done.close()
    result, torch_info = workers["jax"].info, workers["torch"].info
    median_s = {kind: statistics.median(t) for kind, t in times.items()}
    jax_s, torch_s = median_s["jax"], median_s["torch"]
    metrics = {
        "zoo_jax_step_ms": round(jax_s * 1e3, 2),
        "torch_step_ms": round(torch_s * 1e3, 2),
        "zoo_jax_images_per_s": round(batch_size / jax_s, 1),
        "torch_images_per_s": round(batch_size / torch_s, 1),
        "ratio": round(torch_s / jax_s, 3),
        "ratio_by_round": [round(x, 3) for x in by_round["jax"]],
        "compile_s": result["compile_s"],
        "train_flops_per_step": result["train_flops"],
    }
    peer = ""
    if "flax" in workers:  # the plain Flax step of the same network: torch / flax, flax / ours
        flax_s = median_s["flax"]
        metrics |= {
            "flax_step_ms": round(flax_s * 1e3, 2),
            "flax_images_per_s": round(batch_size / flax_s, 1),
            "flax_ratio": round(torch_s / flax_s, 3),
            "flax_ratio_by_round": [round(x, 3) for x in by_round["flax"]],
            "zoo_jax_vs_flax": round(flax_s / jax_s, 3),
        }
        peer = f", plain flax {flax_s * 1e3:.2f} ms (ratio {metrics['flax_ratio']:.2f})"
    if "torch_composed" in workers:  # nn.LSTM without oneDNN's fused primitive
        composed_s = median_s["torch_composed"]
        metrics |= {
            "torch_composed_step_ms": round(composed_s * 1e3, 2),
            "torch_composed_ratio": round(composed_s / jax_s, 3),
            "torch_composed_ratio_by_round": [
                round(ours / composed, 3)
                for ours, composed in zip(by_round["jax"], by_round["torch_composed"], strict=True)
            ],
        }
        peer += (f", torch without oneDNN {composed_s * 1e3:.2f} ms "
                 f"(ratio {metrics['torch_composed_ratio']:.2f})")  # fmt: skip
    if name in SEQUENCE:
        tokens = result["target_tokens"]
        metrics |= {
            "tokens_per_step": tokens,
            "zoo_jax_tokens_per_s": round(tokens / jax_s, 1),
            "torch_tokens_per_s": round(tokens / torch_s, 1),
        }
    rounds_ = by_round["jax"]
    print(f"{name}: zoo_jax {jax_s * 1e3:.2f} ms, torch {torch_s * 1e3:.2f} ms, ratio "
          f"{metrics['ratio']:.2f} (rounds {min(rounds_):.2f}-{max(rounds_):.2f}){peer}", flush=True)  # fmt: skip
    return {
        "experiment": "bench_vs_torch",
        "row": name,
        "model": name,
        "dataset": "first training batch" if name in SEQUENCE else "random MNIST-shaped batch",
        "config": {
            "batch_size": batch_size,
            "optimizer": result["optimizer"],
            "rounds": rounds,
            "steps_per_turn": {{"jax": "zoo_jax"}.get(k, k): n for k, n in steps.items()},
            "settle_steps": SETTLE,
            "params": result["params"],
            "torch_params": torch_info["params"],
            **({"flax_params": workers["flax"].info["params"]} if "flax" in workers else {}),
        },
        "metrics": metrics,
        "reference": {
            "source": f"PyTorch {torch_info['version']} eager, {torch_info['threads']} threads, "
            "own process, alternating rounds",
            "target_ratio": TARGETS.get(name, SEQUENCE_TARGETS.get(name)),
        },
        "wall_s": None,
        "device": f"{result['backend']}:{result['device_kind']} x1, {os.cpu_count()} cores, "
        f"{common.cpu_model()}",
        "versions": common.versions() | {"torch": torch_info["version"]},
        "git": common.git_commit(),
    }


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--turn-s", type=float, default=1.5, help="seconds of steps per turn")
    parser.add_argument("--batch-size", type=int, default=128, help="of the seed models")
    parser.add_argument("--models", default=",".join([*TARGETS, *SEQUENCE]))
    parser.add_argument("--out", default=None, help="directory (default: results/bench)")
    parser.add_argument("--worker", choices=FRAMEWORKS, help="serve one model (internal)")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.models, args.batch_size)
        return 0
    out = Path(args.out) if args.out else common.RESULTS_DIR / "bench"
    models = args.models.split(",")
    for name in models:
        if name not in TARGETS and name not in SEQUENCE:
            raise UnknownNameError("model to compare", name, [*TARGETS, *SEQUENCE])
    if args.rounds < 1 or args.turn_s <= 0 or args.batch_size < 1:
        raise ZooError("--rounds and --batch-size must be >= 1 and --turn-s > 0")
    for group, file in ((TARGETS, "bench_vs_torch.json"), (SEQUENCE, "sequence_vs_torch.json")):
        names = [m for m in models if m in group]
        rows = [
            compare(name, SEQUENCE.get(name, args.batch_size), args.rounds, args.turn_s)
            for name in names
        ]
        if rows:
            common.write_rows(out / file, rows)
    return 0


def _spread(metrics: dict, key: str = "ratio_by_round") -> str:
    rounds = metrics.get(key)
    return f"{min(rounds):.2f}–{max(rounds):.2f}×" if rounds else ""


def _composed(metrics: dict) -> str:
    """The ratio against PyTorch with oneDNN off, with its rounds' range ("–" if not timed)."""
    if "torch_composed_ratio" not in metrics:
        return "–"
    return (f"{metrics['torch_composed_ratio']:.2f}× "
            f"({_spread(metrics, 'torch_composed_ratio_by_round')})")  # fmt: skip


def bench_table(rows: list[dict]) -> list[str]:
    out = [
        "Train-step throughput at the same batch, zoo_jax `jax.jit` (`zoo-jax bench`) vs PyTorch",
        "eager, each in its own process, timed in alternating rounds; the ratio is of the median",
        "step times (torch / zoo_jax), with the range of the per-round ratios beside it. The",
        "plain Flax columns time the same network as a plain Flax step (linen layers, optax,",
        "`jax.jit`, as the Flax examples write one) in the same rounds; for the LSTM, the last",
        "column is the ratio against PyTorch with oneDNN off (`nn.LSTM` as ATen's per-step",
        "products instead of oneDNN's fused LSTM kernel), timed in the same rounds",
        "(`python -m experiments.bench_vs_torch`).",
        "",
        "| model | optimizer | batch | zoo_jax ms/step | torch ms/step | zoo_jax img/s | "
        "torch img/s | ratio | rounds | plain Flax ms/step | plain Flax ratio | target | device "
        "| ratio vs torch, oneDNN off |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        m = r["metrics"]
        if r["reference"].get("target_ratio") is None or "tokens_per_step" in m:
            continue  # the sequence models: `sequence_bench_table`
        met = "met" if m["ratio"] >= r["reference"]["target_ratio"] else "**missed**"
        flax = ("–", "–")  # rows measured before the plain Flax worker existed
        if "flax_step_ms" in m:
            spread = _spread(m, "flax_ratio_by_round")
            flax = (m["flax_step_ms"], f"{m['flax_ratio']:.2f}× ({spread})")
        out.append(
            f"| {r['model']} | {r['config']['optimizer']} | {r['config']['batch_size']} | "
            f"{m['zoo_jax_step_ms']} | {m['torch_step_ms']} | {m['zoo_jax_images_per_s']:,.0f} | "
            f"{m['torch_images_per_s']:,.0f} | **{m['ratio']:.2f}×** | {_spread(m)} | "
            f"{flax[0]} | {flax[1]} | ≥ {r['reference']['target_ratio']}× ({met}) | {r['device']} "
            f"| {_composed(m)} |"
        )
    return [*out, ""]


def sequence_bench_table(rows: list[dict]) -> list[str]:
    out = [
        "The sequence models in target tokens per second, zoo_jax vs PyTorch eager (`nn.LSTM`,",
        "`nn.Transformer`), same batch, alternating rounds (`python -m experiments.bench_vs_torch`);",
        "the last column as in the table above.",
        "",
        "| model | batch | tokens/step | params (ours / torch) | zoo_jax tokens/s | "
        "torch tokens/s | ratio | rounds | target | compile s | device | ratio vs torch, oneDNN off |",
        "|---|---:|---:|---|---:|---:|---:|---|---|---:|---|---:|",
    ]
    for r in rows:
        m, cfg = r["metrics"], r["config"]
        target = r["reference"].get("target_ratio")
        verdict = "–" if target is None else (
            f"≥ {target}× ({'met' if m['ratio'] >= target else '**missed**'})"
        )  # fmt: skip
        out.append(
            f"| {r['model']} | {cfg['batch_size']} | {m['tokens_per_step']:,} | "
            f"{cfg['params']:,} / {cfg['torch_params']:,} | {m['zoo_jax_tokens_per_s']:,.0f} | "
            f"{m['torch_tokens_per_s']:,.0f} | **{m['ratio']:.2f}×** | {_spread(m)} | {verdict} | "
            f"{m['compile_s']} | {r['device']} | {_composed(m)} |"
        )
    return [*out, ""]


def section(rows: list[dict], by_experiment: dict[str, list[dict]]) -> list[str]:
    """This experiment's section of RESULTS.md (`experiments.report` collects it)."""
    sequence = [r for r in rows if "tokens_per_step" in r["metrics"]]
    return bench_table(rows) + (sequence_bench_table(sequence) if sequence else [])


def readme_bench(rows: list[dict]) -> str:
    """The README's speed table: the seed models' rows, then the sequence models'."""
    sequence = [r for r in rows if "tokens_per_step" in r["metrics"]]
    table = bench_table(rows)
    first_row = next((i for i, line in enumerate(table) if line.startswith("|")), len(table))
    text = "\n".join(table[first_row:]).strip()
    if sequence:  # the LSTM and the Transformer in tokens/s, with how they were measured
        text += "\n\n" + "\n".join(sequence_bench_table(sequence)).strip()
    return text


# README blocks this experiment's rows fill (`<!-- BEGIN name -->` … `<!-- END name -->`)
README_BLOCKS = {"bench": readme_bench}


if __name__ == "__main__":
    sys.exit(common.entry(main))
