"""Reservoir computing: the echo state network and the liquid state machine.

Chart nodes: `echo_state_network`, `liquid_state_machine`. A fixed random recurrent network
(the reservoir, in the `constants` collection) is driven by the input and run with
`lax.scan`; only a linear readout of its states learns, by ridge regression
(`learners.RidgeLearner`: `features` → the Dense layer `readout`). `params` (and
`count_params`) hold the readout alone.
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from zoo_jax.errors import ZooError
from zoo_jax.registry import ZooCard


def spectral_radius(w: jax.Array) -> jax.Array:
    """max |eigenvalue| of a square matrix, by LAPACK on the host (`jax.pure_callback`):
    XLA has no general eigensolver on every backend, and this runs once, at `init`."""
    host = lambda m: np.float32(np.max(np.abs(np.linalg.eigvals(np.asarray(m, np.float64)))))
    # float32 across the callback: JAX converts a callback's result under the x64 setting of
    # the thread that runs it, which is not the caller's `jax.enable_x64` context
    radius = jax.pure_callback(host, jax.ShapeDtypeStruct((), jnp.float32), w)
    return radius.astype(w.dtype)


def _sparse(key, shape, density, draw):
    keep = jax.random.bernoulli(key, density, shape)
    return jnp.where(keep, draw(jax.random.fold_in(key, 1), shape), 0.0)


class Reservoir(nn.Module):
    """Leaky tanh units (Jaeger & Haas 2004, the conventions of ReservoirPy 0.4's
    `Reservoir`): x[t+1] = (1 − a) x[t] + a tanh(W x[t] + W_in u[t+1] + b).

    W: normal entries kept with probability `connectivity`, scaled to `spectral_radius`;
    W_in: ±1 entries kept with probability `input_connectivity`, times `input_scaling`;
    b: ±`bias_scaling` with the same probability (0: no bias, ReservoirPy's default).
    """

    units: int
    spectral_radius: float = 0.9
    leak: float = 1.0
    input_scaling: float = 1.0
    connectivity: float = 0.1
    input_connectivity: float = 0.1
    bias_scaling: float = 0.0

    @nn.compact
    def __call__(self, u: jax.Array, initial: jax.Array | None = None) -> jax.Array:
        """States `(batch, time, units)` for inputs `(batch, time, channels)`, from
        `initial` `(batch, units)` (zeros by default)."""
        n, d = self.units, u.shape[-1]
        key = lambda: self.make_rng("params")
        signs = lambda k, shape: jax.random.rademacher(k, shape, jnp.float32)

        def recurrent():
            w = _sparse(key(), (n, n), self.connectivity, jax.random.normal)
            return w * (self.spectral_radius / jnp.maximum(spectral_radius(w), 1e-12))

        w = self.variable("constants", "recurrent", recurrent)
        w_in = self.variable(
            "constants", "input",
            lambda: self.input_scaling * _sparse(key(), (d, n), self.input_connectivity, signs),
        )  # fmt: skip
        b = self.variable(
            "constants", "bias",
            lambda: self.bias_scaling * _sparse(key(), (n,), self.input_connectivity, signs),
        )  # fmt: skip
        drive = jnp.matmul(u, w_in.value, precision="highest") + b.value  # (batch, time, units)
        a = self.leak

        def step(x, drive_t):
            x = (1 - a) * x + a * jnp.tanh(jnp.matmul(x, w.value.T, precision="highest") + drive_t)
            return x, x

        start = jnp.zeros((u.shape[0], n), drive.dtype) if initial is None else initial
        _, states = lax.scan(step, start, jnp.swapaxes(drive, 0, 1))
        return jnp.swapaxes(states, 0, 1)


class EchoStateNetwork(nn.Module):
    """Echo state network (Jaeger, "The 'echo state' approach to analysing and training
    recurrent neural networks", GMD Report 148 (2001); Jaeger & Haas, "Harnessing
    nonlinearity", Science 304 (2004), doi:10.1126/science.1091277).

    Input `(batch, time, channels)`. `states` gives the reservoir's states; `features` (what
    a classifier's readout sees) the last state and the mean state over time, concatenated;
    `__call__` the readout of the features. For forecasting (`experiments/shallow.py`) a
    readout is fitted on the states of every step and `generate` runs the network free,
    its prediction fed back as the next input.
    """

    units: int = 500
    spectral_radius: float = 0.9
    leak: float = 0.3
    input_scaling: float = 1.0
    connectivity: float = 0.1
    input_connectivity: float = 0.1
    bias_scaling: float = 0.0
    num_classes: int = 10
    ridge: float = 1e-4

    def setup(self):
        if not self.spectral_radius > 0:
            raise ZooError(f"spectral_radius must be > 0, got {self.spectral_radius!r}")
        if not 0 < self.leak <= 1:
            raise ZooError(f"leak must be in (0, 1], got {self.leak!r}")
        if self.units < 1:
            raise ZooError(f"units must be >= 1, got {self.units!r}")
        for name in ("connectivity", "input_connectivity"):
            if not 0 < getattr(self, name) <= 1:
                raise ZooError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        self.reservoir = Reservoir(
            self.units, self.spectral_radius, self.leak, self.input_scaling,
            self.connectivity, self.input_connectivity, self.bias_scaling,
        )  # fmt: skip
        self.readout = nn.Dense(self.num_classes)

    def states(self, u: jax.Array, initial: jax.Array | None = None) -> jax.Array:
        """States in the default float type: float32, or float64 under `jax.enable_x64` (a
        ridge readout with a tiny λ, as in forecasting, needs float64's precision)."""
        return self.reservoir(u.astype(jnp.result_type(float)), initial)

    def features(self, u: jax.Array) -> jax.Array:
        s = self.states(u)
        return jnp.concatenate([s[:, -1], s.mean(1)], -1)

    def __call__(self, u: jax.Array, *, train: bool = False) -> jax.Array:
        return self.readout(self.features(u))

    def generate(
        self, state: jax.Array, first: jax.Array, steps: int, kernel: jax.Array, bias: jax.Array
    ) -> jax.Array:
        """`steps` outputs `(batch, steps, outputs)` of the free-running network: from
        reservoir state `state` `(batch, units)` and input `first` `(batch, 1, channels)`,
        the readout `states @ kernel + bias` (fitted on the states, e.g. by
        `learners.closed_form.ridge_solve`) gives each output, which is the next input."""

        def step(carry, _):
            x, u = carry
            x = self.states(u, x)[:, -1]
            y = jnp.matmul(x, kernel, precision="highest") + bias
            return (x, y[:, None]), y

        _, ys = lax.scan(step, (state, first), None, length=steps)
        return jnp.swapaxes(ys, 0, 1)


class LiquidStateMachine(nn.Module):
    """Liquid state machine (Maass, Natschläger & Markram, "Real-time computing without
    stable states", Neural Computation 14 (2002), doi:10.1162/089976602760407955).

    A column of leaky integrate-and-fire neurons on the integer grid `column` (15×3×3 = 135,
    the paper's), `inhibitory` of them inhibitory, drawn at random. Neuron a connects to b
    with probability C · exp(−(D(a, b)/λ)²), D their distance, C by the pair's types (EE 0.3,
    EI 0.2, IE 0.4, II 0.1), with weights EE 30, EI 60, IE −19, II −19 (the paper's nA; here
    mV across the paper's 1 MΩ input resistance). Membrane: τ_m 30 ms, threshold 15 mV, reset
    13.5 mV, a background drive of 13.5 mV, refractory 3 ms (E) / 2 ms (I); synaptic
    currents decay with τ_s 3 ms (E) / 6 ms (I). Static synapses: the paper's dynamic
    (depressing / facilitating) synapses are left out. Simulated in 1 ms steps by `lax.scan`.

    Input: `(batch, frames, channels)` values in [0, 1] (the FSDD spectrogram). Encoding:
    each channel is a regular spike train whose rate follows its value, `max_rate` spikes per
    ms at 1, by integrate-and-fire (a spike each time the running sum of value × max_rate
    passes an integer), `steps_per_frame` 1 ms steps per frame. Each channel reaches a
    neuron with probability `input_connectivity`, weight `input_weight` (E) or half of it (I).

    Readout features: the spike trains low-pass filtered (τ 30 ms), averaged over
    `segments` equal spans of time: `(batch, neurons × segments)`.
    """

    column: tuple[int, int, int] = (15, 3, 3)
    connection_length: float = 2.0  # λ
    inhibitory: float = 0.2
    input_connectivity: float = 0.3
    input_weight: float = 18.0
    weight_scale: float = 1.0
    max_rate: float = 0.2
    steps_per_frame: int = 10
    segments: int = 4
    num_classes: int = 10
    ridge: float = 1e-3

    def setup(self):
        if min(self.column) < 1:
            raise ZooError(f"column must have sizes >= 1, got {self.column!r}")
        if not self.connection_length > 0:
            raise ZooError(f"connection_length must be > 0, got {self.connection_length!r}")
        if self.steps_per_frame < 1 or self.segments < 1:
            raise ZooError("steps_per_frame and segments must be >= 1")
        self.column_net = SpikingColumn(
            self.column, self.connection_length, self.inhibitory, self.input_connectivity,
            self.input_weight, self.weight_scale,
        )  # fmt: skip
        self.readout = nn.Dense(self.num_classes)

    def spikes(self, u: jax.Array) -> jax.Array:
        """The input's spike trains `(batch, frames × steps_per_frame, channels)`."""
        rates = jnp.repeat(u.astype(jnp.float32) * self.max_rate, self.steps_per_frame, axis=1)
        counts = jnp.floor(jnp.cumsum(rates, axis=1))
        return jnp.diff(counts, axis=1, prepend=jnp.zeros_like(counts[:, :1]))

    def traces(self, u: jax.Array) -> jax.Array:
        """Low-pass filtered spike trains of the column `(batch, time, neurons)`."""
        return self.column_net(self.spikes(u))

    def features(self, u: jax.Array) -> jax.Array:
        traces = self.traces(u)
        b, t, n = traces.shape
        spans = traces[:, : t - t % self.segments].reshape(b, self.segments, -1, n).mean(2)
        return spans.reshape(b, -1)

    def __call__(self, u: jax.Array, *, train: bool = False) -> jax.Array:
        return self.readout(self.features(u))


class SpikingColumn(nn.Module):
    """The liquid: wiring in `constants`, leaky integrate-and-fire dynamics in 1 ms steps
    (`LiquidStateMachine` gives the numbers and their sources)."""

    column: tuple[int, int, int]
    connection_length: float
    inhibitory: float
    input_connectivity: float
    input_weight: float
    weight_scale: float

    def _wiring(self, channels: int):
        n = int(np.prod(self.column))
        positions = np.stack(np.meshgrid(*map(np.arange, self.column), indexing="ij"), -1)
        distance = np.linalg.norm(positions.reshape(n, 1, 3) - positions.reshape(1, n, 3), axis=-1)
        reach = jnp.asarray(np.exp(-((distance / self.connection_length) ** 2)) * (1 - np.eye(n)))

        def draw():
            k_type, k_syn, k_in = jax.random.split(self.make_rng("params"), 3)
            inhibitory = jax.random.bernoulli(k_type, self.inhibitory, (n,))
            pre, post = inhibitory[:, None], inhibitory[None, :]
            c = jnp.where(pre, jnp.where(post, 0.1, 0.4), jnp.where(post, 0.2, 0.3))
            w = jnp.where(pre, -19.0, jnp.where(post, 60.0, 30.0))
            synapses = jnp.where(jax.random.bernoulli(k_syn, c * reach), self.weight_scale * w, 0.0)
            inputs = jax.random.bernoulli(k_in, self.input_connectivity, (channels, n))
            w_in = inputs * jnp.where(inhibitory, 0.5, 1.0) * self.input_weight
            return {"inhibitory": inhibitory.astype(jnp.float32), "synapses": synapses,
                    "input": w_in.astype(jnp.float32)}  # fmt: skip

        return self.variable("constants", "wiring", draw).value

    @nn.compact
    def __call__(self, spikes: jax.Array) -> jax.Array:
        wiring = self._wiring(spikes.shape[-1])
        inh = wiring["inhibitory"]
        refractory = jnp.where(inh > 0, 2.0, 3.0)
        decay_m = decay_trace = jnp.exp(-1 / 30.0)  # τ_m and the readout's filter: 30 ms
        batch, n = spikes.shape[0], len(inh)
        drive_in = jnp.matmul(spikes, wiring["input"], precision="highest")

        def step(carry, drive_t):
            v, current_e, current_i, resting, trace = carry
            v = jnp.where(resting > 0, 13.5, v + (1 - decay_m) * (13.5 + current_e + current_i - v))
            fired = (v >= 15.0).astype(jnp.float32)
            v = jnp.where(fired > 0, 13.5, v)
            resting = jnp.where(fired > 0, refractory, jnp.maximum(resting - 1, 0))
            # synaptic currents from E and I neurons decay with their own τ_s (3 and 6 ms)
            current_e = current_e * jnp.exp(-1 / 3.0) + (fired * (1 - inh)) @ wiring["synapses"]
            current_e = current_e + drive_t
            current_i = current_i * jnp.exp(-1 / 6.0) + (fired * inh) @ wiring["synapses"]
            trace = decay_trace * trace + fired
            return (v, current_e, current_i, resting, trace), trace

        zeros = jnp.zeros((batch, n))
        start = (zeros + 13.5, zeros, zeros, zeros, zeros)
        _, traces = lax.scan(step, start, jnp.swapaxes(drive_in, 0, 1))
        return jnp.swapaxes(traces, 0, 1)


# --- the cards of this family (zoo_jax.registry collects them) ------------------------------------

# What both cards share: spoken digits, one pass adding the readout's statistics.
_card = partial(ZooCard, family="reservoir", input_shape=(100, 16), learner="ridge",
                input_layout="N,T,F (1 s of 16 log-mel bands every 10 ms)", dataset="fsdd",
                epochs=1, batch_size=100)  # fmt: skip
CARDS = [
    _card(
        name="echo_state_network",
        chart_node="echo_state_network",
        reference="Jaeger 2001 (GMD Report 148); Jaeger & Haas 2004, doi:10.1126/science.1091277",
        build=EchoStateNetwork,
        description="500 leaky tanh units (leak 0.3), readout of the last and mean states",
        test_overrides={"units": 32},
    ),
    _card(
        name="liquid_state_machine",
        chart_node="liquid_state_machine",
        reference="Maass, Natschläger & Markram 2002, doi:10.1162/089976602760407955",
        build=LiquidStateMachine,
        description="135 leaky integrate-and-fire neurons (15x3x3), spikes in 1 ms steps",
        test_overrides={"column": (3, 2, 2), "steps_per_frame": 2},
    ),
]
