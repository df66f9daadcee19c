"""Energy-based and probabilistic models: the Hopfield network (Hebb and Storkey storage,
and the modern continuous variant), the bidirectional associative memory, the Boltzmann
machine, the restricted Boltzmann machine and the deep belief network.

Chart nodes: `hopfield_network`, `bidirectional_associative_memory`, `boltzmann_machine`,
`restricted_boltzmann_machine`, `deep_belief_network` (the order-k Markov chain, a counting
model, is `markov.py`). None of them learns by backpropagating a loss: each card names its
learner (`zoo_jax.learners.energy`) and the models here define what the papers define, an
energy and the updates that descend it (or sample from its Gibbs distribution). The pure
functions (`hebb_weights`, `storkey_weights`, `hopfield_recall`, `bam_recall`, `rbm_*`,
`ais_log_partition`) are the papers' equations; the modules hold their parameters.

States: the Hopfield network and the BAM use bipolar units ±1 (Hopfield 1982 used 0/1; ±1 is
the convention of Amit, Gutfreund & Sompolinsky's capacity and of Storkey 1997), the
Boltzmann machines binary units 0/1. Images in [0, 1] become states by thresholding at 0.5
(`binary_states`); anything outside [0, 1] is refused.
"""

from __future__ import annotations

import itertools
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from zoo_jax.errors import InputError, ZooError
from zoo_jax.models import checks
from zoo_jax.registry import ZooCard

HIGHEST = partial(jnp.matmul, precision="highest")  # no TF32 in sums of ±1 products


def _positive(model: str, **values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ZooError(f"{model} {key} must be > 0, got {value!r}")


def check_bipolar(patterns: jax.Array, what: str = "patterns") -> jax.Array:
    """`patterns` checked as ±1 (on concrete arrays; under jit the caller checked them)."""
    if not isinstance(patterns, jax.core.Tracer):
        values = jnp.unique(jnp.asarray(patterns))
        if not bool(jnp.all((values == 1) | (values == -1))):
            raise InputError(f"{what} must be bipolar (+1 / -1), got values {values[:5]}")
    return jnp.asarray(patterns, jnp.float32)


def binary_states(x: jax.Array, model: str, bipolar: bool = False) -> jax.Array:
    """Inputs in [0, 1] as binary states: 1 where x > 0.5, else 0 (or −1 when `bipolar`),
    flattened to `(batch, units)`."""
    x = checks.flatten(checks.floats(x, model), model)
    on = x > 0.5
    return jnp.where(on, 1.0, -1.0 if bipolar else 0.0)


def sign_keep(field: jax.Array, state: jax.Array) -> jax.Array:
    """sign(field), keeping the current state where the field is exactly 0 (so an update
    never raises the energy on a tie)."""
    return jnp.where(field > 0, 1.0, jnp.where(field < 0, -1.0, state))


# --- the Hopfield network ---------------------------------------------------------------------


def hebb_weights(patterns: jax.Array) -> jax.Array:
    """Hebb's outer-product rule: W = (1/N) Σ_μ ξ^μ ξ^μᵀ with a zero diagonal (Hopfield
    1982, eq. 2 in the ±1 form), for `patterns` `(P, N)` of ±1."""
    p = check_bipolar(patterns)
    w = HIGHEST(p.T, p) / p.shape[1]
    return w * (1 - jnp.eye(p.shape[1]))


def storkey_weights(patterns: jax.Array) -> jax.Array:
    """Storkey's incremental rule (Storkey, "Increasing the capacity of a Hopfield network
    without sacrificing functionality", ICANN 1997), one pattern ξ at a time:
    w_ij += (ξ_i ξ_j − ξ_i h_ji − h_ij ξ_j) / N, with the local field
    h_ij = Σ_{k≠i,j} w_ik ξ_k. The diagonal is kept at zero."""
    p = check_bipolar(patterns)
    n = p.shape[1]
    off = 1 - jnp.eye(n)

    def store(w, xi):
        field = HIGHEST(w, xi)  # Σ_k w_ik ξ_k (w_ii = 0)
        h = field[:, None] - w * xi[None, :]  # h_ij: without k = j
        w = w + (jnp.outer(xi, xi) - xi[:, None] * h.T - h * xi[None, :]) / n
        return w * off, None

    w, _ = lax.scan(store, jnp.zeros((n, n), jnp.float32), p)
    return w


def hopfield_energy(w: jax.Array, s: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """E(s) = −½ sᵀ W s − bᵀ s, per state of `s` `(..., N)`."""
    e = -0.5 * jnp.sum(HIGHEST(s, w) * s, -1)
    return e if bias is None else e - s @ bias


def hopfield_recall(
    w: jax.Array, s: jax.Array, sweeps: int, *, synchronous: bool = False, order=None
) -> jax.Array:
    """`sweeps` updates of states `s` `(batch, N)`, ±1.

    Asynchronous (Hopfield 1982): one unit at a time, s_i ← sign(Σ_j w_ij s_j), in `order`
    (a permutation of the units; index order when None); with a symmetric W and a zero
    diagonal the energy never rises. Synchronous: every unit at once, s ← sign(W s): it may
    end in a 2-cycle, and what never rises is Bruck's (1990) −s(t)ᵀ W s(t−1).
    """
    if synchronous:
        return lax.fori_loop(0, sweeps, lambda _, s: sign_keep(HIGHEST(s, w), s), s)
    order = jnp.arange(w.shape[0]) if order is None else order

    def unit(i, s):
        k = order[i]
        field = HIGHEST(s, w[:, k])
        return s.at[:, k].set(sign_keep(field, s[:, k]))

    return lax.fori_loop(0, sweeps * w.shape[0], lambda t, s: unit(t % w.shape[0], s), s)


class HopfieldNetwork(nn.Module):
    """A Hopfield network of `units` bipolar units (Hopfield, "Neural networks and physical
    systems with emergent collective computational abilities", PNAS 79 (1982),
    doi:10.1073/pnas.79.8.2554): symmetric `weights` with a zero diagonal, no thresholds.

    `rule` ("hebb" or "storkey") is how the learner stores patterns; `__call__` recalls from
    `(batch, units)` ±1 states, `sweeps` asynchronous sweeps (or synchronous steps when
    `synchronous`).
    """

    units: int = 784
    rule: str = "hebb"
    sweeps: int = 10
    synchronous: bool = False

    def setup(self):
        _positive("hopfield_network", units=self.units, sweeps=self.sweeps)
        if self.rule not in STORAGE_RULES:
            raise ZooError(f"hopfield_network rule must be one of {sorted(STORAGE_RULES)}, "
                           f"got {self.rule!r}")  # fmt: skip
        self.weights = self.param("weights", nn.initializers.zeros, (self.units, self.units))

    def store(self, patterns: jax.Array) -> jax.Array:
        """The weights that store `patterns` `(P, units)` by this network's rule."""
        return STORAGE_RULES[self.rule](patterns)

    def energy(self, s: jax.Array) -> jax.Array:
        return hopfield_energy(self.weights, s)

    def __call__(self, s: jax.Array, *, train: bool = False) -> jax.Array:
        return hopfield_recall(self.weights, s, self.sweeps, synchronous=self.synchronous)


STORAGE_RULES = {"hebb": hebb_weights, "storkey": storkey_weights}


def modern_hopfield_update(memories: jax.Array, xi: jax.Array, beta: float) -> jax.Array:
    """ξ ← Xᵀ softmax(β X ξ) for memories X `(P, N)` and states ξ `(batch, N)` (Ramsauer et
    al., "Hopfield networks is all you need", ICLR 2021, eq. 3)."""
    return HIGHEST(jax.nn.softmax(beta * HIGHEST(xi, memories.T), -1), memories)


def modern_hopfield_energy(memories: jax.Array, xi: jax.Array, beta: float) -> jax.Array:
    """E(ξ) = −lse(β, Xξ) + ½ ξᵀξ + β⁻¹ log P + ½ M², M the largest memory norm (Ramsauer
    et al. 2021, eq. 2); the update above never raises it."""
    p = memories.shape[0]
    m = jnp.max(jnp.linalg.norm(memories, axis=-1))
    lse = jax.nn.logsumexp(beta * HIGHEST(xi, memories.T), -1) / beta
    return -lse + 0.5 * jnp.sum(xi * xi, -1) + jnp.log(p) / beta + 0.5 * m**2


class ModernHopfieldNetwork(nn.Module):
    """The modern continuous Hopfield network (Ramsauer et al. 2021): `memories` stored
    patterns `(memories, units)` retrieved by `modern_hopfield_update` with inverse
    temperature `beta`, `steps` times (one step retrieves in the paper's regime). Recall
    from ±1 states returns the sign of the retrieved pattern."""

    units: int = 784
    memories: int = 10
    beta: float = 1.0
    steps: int = 1

    def setup(self):
        _positive("modern_hopfield", units=self.units, memories=self.memories,
                  beta=self.beta, steps=self.steps)  # fmt: skip
        self.patterns = self.param("patterns", nn.initializers.zeros, (self.memories, self.units))

    def energy(self, xi: jax.Array) -> jax.Array:
        return modern_hopfield_energy(self.patterns, xi, self.beta)

    def __call__(self, s: jax.Array, *, train: bool = False) -> jax.Array:
        step = lambda _, xi: modern_hopfield_update(self.patterns, xi, self.beta)
        return sign_keep(lax.fori_loop(0, self.steps, step, s), s)


# --- the bidirectional associative memory --------------------------------------------------------


def bam_weights(x: jax.Array, y: jax.Array) -> jax.Array:
    """Kosko's correlation matrix W = Σ_k x_k y_kᵀ of bipolar pairs `(P, X)`, `(P, Y)`
    (Kosko, "Bidirectional associative memories", IEEE SMC 18 (1988),
    doi:10.1109/21.87054)."""
    return HIGHEST(check_bipolar(x, "x patterns").T, check_bipolar(y, "y patterns"))


def bam_energy(w: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """E(x, y) = −xᵀ W y."""
    return -jnp.sum(HIGHEST(x, w) * y, -1)


def bam_recall(w: jax.Array, x: jax.Array, y: jax.Array, steps: int):
    """`steps` round trips y ← sign(Wᵀx), x ← sign(W y) (ties keep the state): the energy
    never rises, and the pair settles in a stable state."""

    def trip(_, xy):
        x, y = xy
        y = sign_keep(HIGHEST(x, w), y)
        return sign_keep(HIGHEST(y, w.T), x), y

    return lax.fori_loop(0, steps, trip, (x, y))


class BidirectionalAssociativeMemory(nn.Module):
    """Kosko's BAM between an `x` layer of `x_units` and a `y` layer of `y_units` bipolar
    units; `weights` `(x_units, y_units)`. `__call__(x)` starts from x and the y that x
    drives, and returns the settled pair; `backward(y)` recalls from the y side."""

    x_units: int = 784
    y_units: int = 16
    steps: int = 10

    def setup(self):
        _positive("bam", x_units=self.x_units, y_units=self.y_units, steps=self.steps)
        self.weights = self.param("weights", nn.initializers.zeros, (self.x_units, self.y_units))

    def energy(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return bam_energy(self.weights, x, y)

    def __call__(self, x: jax.Array, *, train: bool = False):
        y = sign_keep(HIGHEST(x, self.weights), -jnp.ones((len(x), self.y_units)))
        return bam_recall(self.weights, x, y, self.steps)

    def backward(self, y: jax.Array):
        x = sign_keep(HIGHEST(y, self.weights.T), -jnp.ones((len(y), self.x_units)))
        x, y = bam_recall(self.weights, x, y, self.steps)
        return x, y


# --- the Boltzmann machine ------------------------------------------------------------------


def encoder_connections(group: int, hidden: int) -> jax.Array:
    """Which pairs of the n-h-n encoder's units are connected (Ackley, Hinton & Sejnowski
    1985, Fig. 2): units are [V1 (group), V2 (group), H (hidden)]; every pair within V1,
    within V2 and within H, and V1–H, V2–H, but never V1–V2 (the code must pass through H)."""
    n = 2 * group + hidden
    kind = jnp.array([0] * group + [1] * group + [2] * hidden)
    apart = ((kind[:, None] == 0) & (kind[None, :] == 1)) | (
        (kind[:, None] == 1) & (kind[None, :] == 0)
    )
    return (~apart & ~jnp.eye(n, dtype=bool)).astype(jnp.float32)


def boltzmann_energy(w: jax.Array, b: jax.Array, s: jax.Array) -> jax.Array:
    """E(s) = −½ sᵀ W s − bᵀ s for binary states `(..., n)` (W symmetric, zero diagonal)."""
    return -0.5 * jnp.sum(HIGHEST(s, w) * s, -1) - s @ b


def boltzmann_sweeps(w, b, s, free, temperatures, rng):
    """One asynchronous Gibbs sweep per entry of `temperatures`: each free unit (where
    `free` `(batch, n)` is 1) in turn takes state 1 with probability σ(ΔE_i / T), ΔE_i =
    Σ_j w_ij s_j + b_i (Ackley, Hinton & Sejnowski 1985, eq. 3); clamped units keep theirs."""
    n = w.shape[0]

    def sweep(s, xs):
        temperature, key = xs
        order = jax.random.permutation(key, n)
        draws = jax.random.uniform(jax.random.fold_in(key, 1), (n, *s.shape[:-1]))

        def unit(i, s):
            k = order[i]
            gap = HIGHEST(s, w[:, k]) + b[k]
            on = (draws[i] < jax.nn.sigmoid(gap / temperature)).astype(s.dtype)
            return s.at[..., k].set(jnp.where(free[..., k] > 0, on, s[..., k]))

        return lax.fori_loop(0, n, unit, s), None

    keys = jax.random.split(rng, len(temperatures))
    s, _ = lax.scan(sweep, s, (temperatures, keys))
    return s


# NumPy, not a device array: importing the package must not start a backend (a multi-process
# run joins `jax.distributed` first)
ANNEALING = np.array([20.0, 20.0, 15.0, 15.0, 12.0, 12.0, 10.0, 10.0, 10.0, 10.0], np.float32)
FINAL_T = 10.0


class BoltzmannMachine(nn.Module):
    """The Boltzmann machine of Ackley, Hinton & Sejnowski ("A learning algorithm for
    Boltzmann machines", Cognitive Science 9 (1985), doi:10.1207/s15516709cog0901_7) for the
    n-h-n encoder problem: two visible groups of `group` units and `hidden` hidden units,
    binary 0/1, symmetric `weights` on the pairs of `encoder_connections` and a `bias` (the
    paper's threshold, negated) per unit.

    The paper's annealing (`ANNEALING`: 2 sweeps at T = 20, 2 at 15, 2 at 12, 4 at 10) then
    `statistics_sweeps` sweeps at T = 10 to estimate co-occurrences (`temperature` scales
    the schedule to end elsewhere). `__call__(x)` clamps V1 to x's first group, anneals the
    rest and returns V2's states (the code read back).
    """

    group: int = 4
    hidden: int = 2
    statistics_sweeps: int = 10
    temperature: float = FINAL_T

    def setup(self):
        _positive("boltzmann_machine", group=self.group, hidden=self.hidden,
                  statistics_sweeps=self.statistics_sweeps, temperature=self.temperature)  # fmt: skip
        n = self.units
        self.weights = self.param("weights", nn.initializers.zeros, (n, n))
        self.bias = self.param("bias", nn.initializers.zeros, (n,))

    @property
    def units(self) -> int:
        return 2 * self.group + self.hidden

    def connections(self) -> jax.Array:
        return encoder_connections(self.group, self.hidden)

    def energy(self, s: jax.Array) -> jax.Array:
        return boltzmann_energy(self.weights * self.connections(), self.bias, s)

    def anneal(self, s, free, rng, sweeps_after: int = 0):
        """The annealing schedule, scaled to end at `temperature`, then `sweeps_after`
        sweeps there."""
        schedule = ANNEALING * (self.temperature / FINAL_T)
        temperatures = jnp.concatenate([schedule, jnp.full((sweeps_after,), self.temperature)])
        return boltzmann_sweeps(self.weights * self.connections(), self.bias, s, free,
                                temperatures, rng)  # fmt: skip

    def __call__(self, x: jax.Array, *, train: bool = False, rng=None) -> jax.Array:
        x = checks.flatten(checks.floats(x, "boltzmann_machine"), "boltzmann_machine")
        if x.shape[-1] != 2 * self.group:
            raise InputError(f"boltzmann_machine with groups of {self.group} takes "
                             f"{2 * self.group} visible units, got {x.shape[-1]}")  # fmt: skip
        rng = jax.random.PRNGKey(0) if rng is None else rng
        g = self.group
        s = jnp.zeros((len(x), self.units)).at[:, :g].set(x[:, :g])
        free = jnp.ones_like(s).at[:, :g].set(0.0)
        s = self.anneal(s, free, rng)
        return s[:, g : 2 * g]


# --- the restricted Boltzmann machine ---------------------------------------------------------


def rbm_hidden_input(params, v):
    return HIGHEST(v, params["kernel"]) + params["hidden_bias"]


def rbm_free_energy(params, v, gaussian: bool = False):
    """F(v) = −log Σ_h exp(−E(v, h)): −bᵀv − Σ_j softplus(c_j + vᵀW_j) for binary visibles,
    ½‖v − b‖² − Σ_j softplus(c_j + vᵀW_j) for unit-variance Gaussian ones (Hinton, "A
    practical guide to training RBMs", 2010, §13.2)."""
    hidden = jnp.sum(jax.nn.softplus(rbm_hidden_input(params, v)), -1)
    b = params["visible_bias"]
    visible = 0.5 * jnp.sum((v - b) ** 2, -1) if gaussian else -(v @ b)
    return visible - hidden


def rbm_energy(params, v, h, gaussian: bool = False):
    """E(v, h) = −bᵀv − cᵀh − vᵀWh (the first term ½‖v − b‖² for Gaussian visibles)."""
    b, c = params["visible_bias"], params["hidden_bias"]
    visible = 0.5 * jnp.sum((v - b) ** 2, -1) if gaussian else -(v @ b)
    return visible - h @ c - jnp.sum(HIGHEST(v, params["kernel"]) * h, -1)


def rbm_visible_mean(params, h, gaussian: bool = False):
    """E[v | h]: σ(b + W h), or b + W h for Gaussian visibles."""
    a = HIGHEST(h, params["kernel"].T) + params["visible_bias"]
    return a if gaussian else jax.nn.sigmoid(a)


def rbm_gibbs(params, v, rng, steps: int, gaussian: bool = False, hidden_probs=None):
    """`steps` alternating Gibbs steps v → h → v from `v`. Returns the last v sample, the
    hidden probabilities of the last v (the negative phase's statistics use them, Hinton
    2010 §3), and the visible means of the first step (a reconstruction). `hidden_probs`:
    p(h = 1 | v) of the start when the caller has it (one product fewer)."""

    def step(carry, key):
        v, p = carry
        kh, kv = jax.random.split(key)
        h = jax.random.bernoulli(kh, p).astype(v.dtype)
        mean = rbm_visible_mean(params, h, gaussian)
        if gaussian:
            v = mean + jax.random.normal(kv, mean.shape, mean.dtype)
        else:
            v = jax.random.bernoulli(kv, mean).astype(v.dtype)
        return (v, jax.nn.sigmoid(rbm_hidden_input(params, v))), mean

    p0 = jax.nn.sigmoid(rbm_hidden_input(params, v)) if hidden_probs is None else hidden_probs
    keys = jax.random.split(rng, steps)
    # the first step outside the loop: its visible means are the reconstruction returned
    carry, first_mean = step((v, p0), keys[0])
    (v, p), _ = lax.scan(step, carry, keys[1:])
    return v, p, first_mean


class RestrictedBoltzmannMachine(nn.Module):
    """A restricted Boltzmann machine (Smolensky 1986; Hinton, "Training products of experts
    by minimizing contrastive divergence", Neural Computation 14 (2002),
    doi:10.1162/089976602760128018): `visible` units, `hidden` binary units, `kernel`
    `(visible, hidden)` drawn from N(0, 0.01²) and zero biases (Hinton 2010, §8).

    `visible_type` "bernoulli" (binary) or "gaussian" (unit variance: standardise the data);
    `cd_steps` (k) and `persistent` say how `learners.ContrastiveDivergenceLearner` trains it.
    `__call__(v)` is the hidden units' probabilities (the features a DBN passes up);
    `free_energy(v)`, `reconstruct(v)` (one mean-field round trip) and `energy(v, h)`.
    """

    visible: int = 784
    hidden: int = 500
    visible_type: str = "bernoulli"
    cd_steps: int = 1  # k of CD-k (the learner's)
    persistent: bool = False  # persistent CD (the learner's)

    def setup(self):
        _positive("rbm", visible=self.visible, hidden=self.hidden, cd_steps=self.cd_steps)
        if self.visible_type not in ("bernoulli", "gaussian"):
            raise ZooError(f"rbm visible_type must be 'bernoulli' or 'gaussian', "
                           f"got {self.visible_type!r}")  # fmt: skip
        init = nn.initializers.normal(0.01)
        self.kernel = self.param("kernel", init, (self.visible, self.hidden))
        self.visible_bias = self.param("visible_bias", nn.initializers.zeros, (self.visible,))
        self.hidden_bias = self.param("hidden_bias", nn.initializers.zeros, (self.hidden,))

    @property
    def gaussian(self) -> bool:
        return self.visible_type == "gaussian"

    def _params(self):
        return {"kernel": self.kernel, "visible_bias": self.visible_bias,
                "hidden_bias": self.hidden_bias}  # fmt: skip

    def _visible(self, v):
        v = checks.flatten(checks.floats(v, "rbm"), "rbm")
        if v.shape[-1] != self.visible:
            raise InputError(f"rbm with {self.visible} visible units got {v.shape[-1]} features")
        return v

    def free_energy(self, v):
        return rbm_free_energy(self._params(), self._visible(v), self.gaussian)

    def energy(self, v, h):
        return rbm_energy(self._params(), self._visible(v), h, self.gaussian)

    def reconstruct(self, v):
        h = jax.nn.sigmoid(rbm_hidden_input(self._params(), self._visible(v)))
        return rbm_visible_mean(self._params(), h, self.gaussian)

    def __call__(self, v, *, train: bool = False):
        return jax.nn.sigmoid(rbm_hidden_input(self._params(), self._visible(v)))


def base_rate_bias(v: jax.Array, smoothing: float = 0.05) -> jax.Array:
    """The visible biases of the AIS base-rate RBM (no hidden weights): the log-odds of each
    pixel's mean over data `v`, its mean smoothed toward ½ (Salakhutdinov & Murray 2008, §4)."""
    p = (jnp.mean(v, 0) + smoothing) / (1 + 2 * smoothing)
    return jnp.log(p) - jnp.log1p(-p)


def ais_betas(counts=(500, 4000, 10000), edges=(0.0, 0.5, 0.9, 1.0)) -> jax.Array:
    """The inverse temperatures of Salakhutdinov & Murray 2008, §4: 500 from 0 to 0.5, 4,000
    from 0.5 to 0.9 and 10,000 from 0.9 to 1 (14,500 intermediate distributions)."""
    parts = [
        jnp.linspace(a, b, n, endpoint=False)
        for n, a, b in zip(counts, edges, edges[1:], strict=False)
    ]
    return jnp.concatenate([*parts, jnp.ones(1)])


def ais_log_partition(params, base_bias, rng, *, runs: int = 100, betas=None):
    """log Z of a Bernoulli RBM by annealed importance sampling (Neal 2001; Salakhutdinov &
    Murray, "On the quantitative analysis of deep belief networks", ICML 2008,
    doi:10.1145/1390156.1390266): `runs` chains from the base-rate model p_A (biases
    `base_bias`, no weights, log Z_A = Σ softplus(b_A) + H log 2) through p_β ∝ p_A^{1−β}
    p_B^β. Returns (log Ẑ, the log weights per run); log Ẑ = log Z_A + log mean w."""
    betas = ais_betas() if betas is None else betas
    w_kernel, b, c = params["kernel"], params["visible_bias"], params["hidden_bias"]
    hidden = w_kernel.shape[1]

    def log_p(v, beta):  # log p*_β(v), the hidden units summed out
        return ((1 - beta) * (v @ base_bias) + beta * (v @ b)
                + jnp.sum(jax.nn.softplus(beta * (HIGHEST(v, w_kernel) + c)), -1))  # fmt: skip

    v0_key, rng = jax.random.split(rng)
    v = jax.random.bernoulli(v0_key, jax.nn.sigmoid(base_bias), (runs, len(b))).astype(jnp.float32)

    def step(carry, xs):
        v, log_w = carry
        beta_prev, beta, key = xs
        log_w = log_w + log_p(v, beta) - log_p(v, beta_prev)
        kh, kv = jax.random.split(key)
        h = jax.random.bernoulli(kh, jax.nn.sigmoid(beta * (HIGHEST(v, w_kernel) + c)))
        a = (1 - beta) * base_bias + beta * (HIGHEST(h.astype(jnp.float32), w_kernel.T) + b)
        v = jax.random.bernoulli(kv, jax.nn.sigmoid(a)).astype(jnp.float32)
        return (v, log_w), None

    keys = jax.random.split(rng, len(betas) - 1)
    (_, log_w), _ = lax.scan(step, (v, jnp.zeros(runs)), (betas[:-1], betas[1:], keys))
    log_za = jnp.sum(jax.nn.softplus(base_bias)) + hidden * jnp.log(2.0)
    return log_za + jax.nn.logsumexp(log_w) - jnp.log(runs), log_w


def exact_log_partition(params, gaussian: bool = False) -> jax.Array:
    """log Z of a small Bernoulli RBM by enumerating every visible state (≤ 20 units)."""
    visible = params["kernel"].shape[0]
    if gaussian or visible > 20:
        raise ZooError("exact_log_partition enumerates ≤ 20 binary visible units")
    states = ((jnp.arange(2**visible)[:, None] >> jnp.arange(visible)) & 1).astype(jnp.float32)
    return jax.nn.logsumexp(-rbm_free_energy(params, states))


# --- the deep belief network ------------------------------------------------------------------


class DeepBeliefNetwork(nn.Module):
    """A deep belief network (Hinton, Osindero & Teh, "A fast learning algorithm for deep
    belief nets", Neural Computation 18 (2006), doi:10.1162/neco.2006.18.7.1527): a stack of
    RBMs, 784-500-500, and a top RBM of 2,000 hidden units whose visible layer is the last
    500 units joined with the 10 label units (the paper's associative memory).

    `free_energy_scores(x)` passes the image up by the RBMs' hidden probabilities and scores
    each label y by −F(h, y), the top RBM's free energy with the label units clamped to y:
    the paper's classification (the label of lowest free energy). `__call__(x)` gives the
    logits of the feed-forward network the stack defines (see there), which fine-tuning by
    backpropagation trains (Hinton et al. fine-tune by the up-down algorithm instead;
    `learners.DBNLearner` says which it does). `generate(y, rng, steps)` runs alternating
    Gibbs sampling in the top RBM with the label clamped, then passes down: apply it to
    the generative weights (the learner's `model_state["generative"]`).
    """

    layers: tuple[int, ...] = (500, 500, 2000)
    num_classes: int = 10
    visible: int = 784

    def setup(self):
        if len(self.layers) < 2 or min(self.layers) < 1:
            raise ZooError(f"deep_belief_network layers must be ≥ 2 positive sizes, "
                           f"got {self.layers}")  # fmt: skip
        sizes = (self.visible, *self.layers[:-1])
        self.rbms = [
            RestrictedBoltzmannMachine(a, b, name=f"rbm{i}")
            for i, (a, b) in enumerate(itertools.pairwise(sizes))
        ]
        self.top = RestrictedBoltzmannMachine(
            self.layers[-2] + self.num_classes, self.layers[-1], name="top"
        )

    def up(self, x):
        h = checks.flatten(checks.floats(x, "deep_belief_network"), "deep_belief_network")
        for rbm in self.rbms:
            h = rbm(h)
        return h

    def label_scores(self, h):
        """−F([h, y]) for each label y `(batch, classes)`: the top RBM's free energy with the
        label units clamped (the paper's classifier: the label of lowest free energy)."""
        labels = jnp.eye(self.num_classes)
        joined = jnp.concatenate(
            [jnp.repeat(h[:, None], self.num_classes, 1),
             jnp.broadcast_to(labels, (len(h), *labels.shape))], -1)  # fmt: skip
        return -self.top.free_energy(joined.reshape(-1, joined.shape[-1])).reshape(len(h), -1)

    def free_energy_scores(self, x):
        return self.label_scores(self.up(x))

    def __call__(self, x, *, train: bool = False):
        """Label logits of a feed-forward pass: the image up the RBMs, the top RBM's hidden
        probabilities driven by the pen layer alone, then the label units' log-odds given
        them, b_y + U_y · h_top (the top RBM's own label conditional, so the pretrained
        weights are its starting point; what backpropagation fine-tunes)."""
        h = self.up(x)
        pen = self.layers[-2]
        if self.is_initializing():  # create the top RBM's parameters before reading them
            self.top(jnp.zeros((1, pen + self.num_classes)))
        top = self.top.variables["params"]
        hidden = jax.nn.sigmoid(HIGHEST(h, top["kernel"][:pen]) + top["hidden_bias"])
        return HIGHEST(hidden, top["kernel"][pen:].T) + top["visible_bias"][pen:]

    def generate(self, labels, rng, steps: int = 1000):
        """Images for `labels` `(n,)`: `steps` Gibbs steps in the top RBM with the label units
        clamped, from a random pen state, then one top-down pass of visible means."""
        top = self.top.variables["params"]
        n, k = len(labels), self.num_classes
        y = jax.nn.one_hot(labels, k)
        pen = self.layers[-2]
        init_key, rng = jax.random.split(rng)
        v = jax.random.bernoulli(init_key, 0.5, (n, pen)).astype(jnp.float32)

        def step(v, key):
            kh, kv = jax.random.split(key)
            joined = jnp.concatenate([v, y], -1)
            h = jax.random.bernoulli(kh, jax.nn.sigmoid(rbm_hidden_input(top, joined)))
            mean = rbm_visible_mean(top, h.astype(jnp.float32))[:, :pen]
            return jax.random.bernoulli(kv, mean).astype(jnp.float32), None

        v, _ = lax.scan(step, v, jax.random.split(rng, steps))
        for rbm in reversed(self.rbms):
            v = rbm_visible_mean(rbm.variables["params"], v)
        return v


_card = partial(ZooCard, family="energy", input_shape=(784,),
                input_layout="N,F (flattened 28x28 image, thresholded at 0.5)")  # fmt: skip
CARDS = [
    _card(
        name="hopfield_network",
        chart_node="hopfield_network",
        reference="Hopfield 1982, doi:10.1073/pnas.79.8.2554; Storkey 1997 (rule=storkey)",
        build=HopfieldNetwork,
        learner="associative_memory",
        epochs=1,
        batch_size=500,
        description="784 bipolar units storing the 10 class prototypes (Hebb)",
        test_overrides={"sweeps": 2},
        param_convention="weights (units x units, zero diagonal)",
    ),
    _card(
        name="modern_hopfield",
        chart_node="hopfield_network",
        reference="Ramsauer et al. 2021, arXiv:2008.02217",
        build=ModernHopfieldNetwork,
        learner="associative_memory",
        epochs=1,
        batch_size=500,
        description="continuous Hopfield network: the 10 class prototypes as memories",
        param_convention="stored patterns (memories x units)",
    ),
    _card(
        name="bam",
        chart_node="bidirectional_associative_memory",
        reference="Kosko 1988, doi:10.1109/21.87054",
        build=BidirectionalAssociativeMemory,
        learner="associative_memory",
        epochs=1,
        batch_size=500,
        description="class prototypes (784 units) <-> 16-bit Hadamard class codes",
        param_convention="weights (x_units x y_units)",
    ),
    _card(
        name="boltzmann_machine",
        chart_node="boltzmann_machine",
        reference="Ackley, Hinton & Sejnowski 1985, doi:10.1207/s15516709cog0901_7",
        build=BoltzmannMachine,
        input_shape=(8,),
        input_layout="N,F (V1 then V2, 0/1)",
        num_classes=4,
        learner="boltzmann",
        dataset="encoder",
        learning_rate=20.0,
        epochs=300,
        batch_size=4,
        description="the 4-2-4 encoder: 8 visible and 2 hidden stochastic binary units",
        test_overrides={"statistics_sweeps": 2},
        param_convention="weights (units x units, masked to the encoder's pairs) and biases",
    ),
    _card(
        name="rbm",
        chart_node="restricted_boltzmann_machine",
        reference="Hinton 2002, doi:10.1162/089976602760128018; Tieleman 2008 (persistent=true)",
        build=RestrictedBoltzmannMachine,
        learner="contrastive_divergence",
        optimizer="sgd",
        learning_rate=0.1,
        epochs=10,
        batch_size=100,
        description="784-500 Bernoulli RBM trained by CD-1",
        test_overrides={"hidden": 16},
    ),
    _card(
        name="deep_belief_network",
        chart_node="deep_belief_network",
        reference="Hinton, Osindero & Teh 2006, doi:10.1162/neco.2006.18.7.1527",
        build=DeepBeliefNetwork,
        learner="dbn",
        learning_rate=1e-4,
        epochs=40,
        batch_size=100,
        description="784-500-500-2000 (+10 labels at the top): greedy CD-1, then fine-tuning",
        test_overrides={"layers": (16, 16, 32)},
    ),
]
