"""How the energy-based and probabilistic models learn: by counting (the Markov chain), by
outer products (Hopfield, BAM), from clamped- and free-phase co-occurrences (the Boltzmann
machine), by contrastive divergence (the RBM), greedily then by backpropagation (the DBN).

Each learner is pure and jitted like the gradient learner. Under pmap the Markov chain
gathers the devices' windows (every device keeps the same exact counts), the associative
memories `psum` their class sums, the Boltzmann machine `pmean`s its co-occurrences, and the
RBM and DBN average their contrastive-divergence gradients through the optimizer step
(`base.apply_gradients`); persistent chains stay on their device.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from zoo_jax.data.datasets import encoder_patterns
from zoo_jax.errors import InputError, ZooError
from zoo_jax.learners.base import (
    Batch,
    LearnerDefaults,
    apply_gradients,
    mean_over,
    new_state,
    sum_over,
)
from zoo_jax.models import checks, energy, markov
from zoo_jax.train.state import TrainState

if TYPE_CHECKING:
    from zoo_jax.train.run import Run


def check_unit_interval(x: np.ndarray, model: str) -> None:
    """Binary models read images in [0, 1] (thresholded at 0.5): other values are refused."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo < 0 or hi > 1:
        raise InputError(
            f"{model} takes binary inputs or intensities in [0, 1] (thresholded at 0.5), "
            f"got values in [{lo:g}, {hi:g}]"
        )


def _weighted_sum(weight, values, axis_name):
    return sum_over(jnp.sum(weight * values.astype(jnp.float32)), axis_name)


# --- the Markov chain -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MarkovCountLearner(LearnerDefaults):
    """Counts every n-gram (lengths 1 … k+1) of each training window (the inputs and the
    last label) into the chain's tables; the devices' windows are gathered first under pmap.
    One pass is the whole estimate: updates after the first `steps_per_epoch` leave the
    counts as they are (counting the text twice would double every count). Evaluation
    scores each next character: `loss` in nats per character and `accuracy` of the most
    probable one."""

    model: markov.MarkovChain
    steps_per_epoch: int | None = None  # None: every update counts

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> MarkovCountLearner:
        per_epoch = max((total_steps or 0) // run.config.epochs, 1) if total_steps else None
        return cls(model=run.model(), steps_per_epoch=per_epoch)

    @classmethod
    def check_config(cls, run: Run) -> None:
        order = run.model().order
        if isinstance(order, int) and order >= run.input_shape[0]:
            raise ZooError(f"markov_chain order {order} needs windows longer than {order} "
                           f"characters; the card's windows hold {run.input_shape[0]}")  # fmt: skip

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        ids = jnp.asarray(sample_batch["inputs"][:1])
        params = jax.jit(self.model.init)(rng, ids)["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, {}, {}, rng)

    def update(self, state, batch, rng, *, axis_name=None):
        windows = markov.windows_with_last(batch["inputs"], batch["labels"])
        if axis_name is not None:
            windows = lax.all_gather(windows, axis_name, tiled=True)

        def count(params):
            params, fits = dict(params), jnp.bool_(True)
            for m in range(1, self.model.order + 2):
                grams = jnp.stack(
                    [windows[:, i : windows.shape[1] - m + 1 + i] for i in range(m)], -1
                )
                table = {f: params[f"counts_{m}_{f}"] for f in ("hi", "lo", "count")}
                table, ok = markov.merge_counts(table, grams.reshape(-1, m), self.model.vocab_size)
                params |= {f"counts_{m}_{f}": table[f] for f in table}
                fits = fits & ok
            return params, fits

        first_pass = True if self.steps_per_epoch is None else state.step < self.steps_per_epoch
        params, fits = lax.cond(
            first_pass, count, lambda params: (dict(params), jnp.bool_(True)), state.params
        )
        return state.replace(step=state.step + 1, params=params), {"finite": fits}

    def evaluate(self, state, batch, *, axis_name=None):
        log_p = self.model.apply({"params": state.params}, batch["inputs"])
        labels = batch["labels"]
        nll = -jnp.take_along_axis(log_p, labels[..., None], -1)[..., 0]
        weight = jnp.broadcast_to(batch["weight"][:, None], labels.shape)
        return {
            "loss": _weighted_sum(weight, nll, axis_name),
            "accuracy": _weighted_sum(weight, jnp.argmax(log_p, -1) == labels, axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }


# --- associative memories: Hopfield networks and the BAM --------------------------------------


def class_prototypes(sums: jax.Array) -> jax.Array:
    """Each class's binarised prototype: the per-unit majority of its ±1 examples (a tie: −1)."""
    return jnp.where(sums > 0, 1.0, -1.0)


def hadamard_codes(classes: int, bits: int) -> jax.Array:
    """±1 codes of `bits` bits (a power of 2), rows 1 … `classes` of Sylvester's Hadamard
    matrix: mutually orthogonal and balanced, the easiest pairs for a BAM to keep apart."""
    if bits & (bits - 1) or classes >= bits:
        raise ZooError(f"a BAM's codes need a power-of-2 y_units above the classes "
                       f"({classes}), got {bits}")  # fmt: skip
    h = np.ones((1, 1))
    while len(h) < bits:
        h = np.block([[h, h], [h, -h]])
    return jnp.asarray(h[1 : classes + 1], jnp.float32)


@dataclasses.dataclass(frozen=True)
class AssociativeMemoryLearner(LearnerDefaults):
    """Stores one pattern per class, its prototype (the majority of its training images,
    thresholded at 0.5 and made ±1), in a Hopfield network (Hebb or Storkey), a modern
    Hopfield network (as its memories) or a BAM (paired with `hadamard_codes`).

    `update` adds up each class's ±1 images (`psum` under pmap) in the state's `opt_state`;
    `finalize` stores the prototypes. Evaluation recalls from each test image: `recall` is
    the share of recalls within 1 % of the bits of their class's prototype (for the BAM, that
    reach their class's code exactly), `accuracy` the share whose nearest stored pattern (in
    Hamming distance) is their class's, `energy` the mean energy where recall stopped.
    """

    model: object
    num_classes: int
    metrics: ClassVar[tuple[str, ...]] = ("recall", "accuracy", "energy")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> AssociativeMemoryLearner:
        return cls(model=run.model(), num_classes=run.num_classes)

    @classmethod
    def check_inputs(cls, run: Run, x: np.ndarray) -> None:
        check_unit_interval(x, run.config.model)

    @property
    def bam(self) -> bool:
        return isinstance(self.model, energy.BidirectionalAssociativeMemory)

    def _states(self, inputs):
        return energy.binary_states(inputs, type(self.model).__name__, bipolar=True)

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        s = self._states(jnp.asarray(sample_batch["inputs"][:1]))
        params = jax.jit(self.model.init)(rng, s)["params"]
        sums = jnp.zeros((self.num_classes, s.shape[-1]))
        return TrainState(jnp.zeros((), jnp.int32), params, {"sums": sums}, {}, rng)

    def update(self, state, batch, rng, *, axis_name=None):
        s = self._states(batch["inputs"])
        onehot = jax.nn.one_hot(batch["labels"], self.num_classes)
        sums = state.opt_state["sums"] + sum_over(energy.HIGHEST(onehot.T, s), axis_name)
        new = state.replace(step=state.step + 1, opt_state={"sums": sums})
        return new, {"finite": jnp.isfinite(sums).all()}

    def stored(self, state: TrainState):
        """The stored patterns: the prototypes `(classes, units)`, and for a BAM the codes."""
        prototypes = class_prototypes(state.opt_state["sums"])
        if self.bam:
            return prototypes, hadamard_codes(self.num_classes, self.model.y_units)
        return prototypes, None

    def finalize(self, state: TrainState) -> TrainState:
        prototypes, codes = self.stored(state)
        if self.bam:
            params = {"weights": energy.bam_weights(prototypes, codes)}
        elif isinstance(self.model, energy.ModernHopfieldNetwork):
            params = {"patterns": prototypes}
        else:
            params = {"weights": self.model.store(prototypes)}
        return state.replace(params=params)

    def evaluate(self, state, batch, *, axis_name=None):
        s = self._states(batch["inputs"])
        variables = {"params": state.params}
        prototypes, codes = self.stored(state)
        labels = batch["labels"]
        if self.bam:
            x, y = self.model.apply(variables, s)
            nearest = jnp.argmin(jnp.sum(y[:, None] != codes[None], -1), -1)
            recalled = jnp.all(y == codes[labels], -1)
            e = self.model.apply(variables, x, y, method="energy")
        else:
            x = self.model.apply(variables, s)
            wrong_bits = jnp.mean(x != prototypes[labels], -1)
            recalled = wrong_bits <= 0.01
            nearest = jnp.argmin(jnp.sum(x[:, None] != prototypes[None], -1), -1)
            e = self.model.apply(variables, x, method="energy")
        weight = batch["weight"]
        return {
            "recall": _weighted_sum(weight, recalled, axis_name),
            "accuracy": _weighted_sum(weight, nearest == labels, axis_name),
            "energy": _weighted_sum(weight, e, axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }


# --- the Boltzmann machine ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BoltzmannLearner(LearnerDefaults):
    """Ackley, Hinton & Sejnowski's learning rule, Δw_ij = ε (p⁺_ij − p⁻_ij), from
    co-occurrences p⁺ with the visible units clamped to the batch's patterns and p⁻ with
    every unit free, each estimated over `statistics_sweeps` sweeps at T = 10 after the
    paper's annealing schedule (`energy.ANNEALING`), `repeats` annealings per pattern.
    Clamping is noisy, as in the paper: an on unit is clamped off with probability
    `noise_on`, an off unit on with `noise_off`. One update is one learning cycle over the
    batch (the card: the whole environment, one batch per epoch, so epochs count cycles).
    Co-occurrences are `pmean`-ed under pmap.

    `proportional=False` takes the fixed-size step of the paper's encoder runs instead,
    Δw_ij = ε sign(p⁺_ij − p⁻_ij) with ε = 2; with our estimates of p± (`repeats`
    annealings per pattern) it solved 4-2-4 as often (20 of 20) but 8-3-8 in 7 of 20 runs
    within 4,000 cycles, against 14 of 20 for ε = 20 proportional steps
    (`experiments/energy.py`), so the proportional rule is the default.

    Evaluation clamps V1 to each pattern's first group, anneals, then settles with a
    zero-temperature sweep, `eval_repeats` times per pattern (at T = 10 a trained machine
    still errs on some annealings): `accuracy` is the share of completions whose V2 is the
    pattern's second group, `solved` the share of patterns it completes right more often
    than any other way. A run has solved the encoder when `solved` is 1.
    """

    model: energy.BoltzmannMachine
    learning_rate: float = 20.0
    repeats: int = 4
    noise_on: float = 0.15
    noise_off: float = 0.05
    proportional: bool = True
    eval_repeats: int = 20
    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "solved")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> BoltzmannLearner:
        return cls(model=run.model(), learning_rate=run.config.learning_rate or 20.0)

    @classmethod
    def check_inputs(cls, run: Run, x: np.ndarray) -> None:
        if not np.isin(x, (0.0, 1.0)).all():
            raise InputError(f"{run.config.model} takes binary (0 / 1) patterns")

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        x = jnp.asarray(sample_batch["inputs"][:1], jnp.float32)
        params = jax.jit(self.model.init)(rng, x)["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, {}, {}, rng)

    def _co_occurrences(self, params, s, free, rng):
        """⟨s_i s_j⟩ averaged over the statistics sweeps and the chains `(chains, n)`."""
        model = self.model.bind({"params": params})
        s = model.anneal(s, free, jax.random.fold_in(rng, 0))
        mask = model.connections()
        weights = params["weights"] * mask

        def collect(s, key):
            s = energy.boltzmann_sweeps(weights, params["bias"], s, free,
                                        jnp.full((1,), model.temperature), key)  # fmt: skip
            return s, (jnp.einsum("ci,cj->ij", s, s) / len(s), s.mean(0))

        keys = jax.random.split(jax.random.fold_in(rng, 1), self.model.statistics_sweeps)
        _, (pairs, singles) = lax.scan(collect, s, keys)
        return pairs.mean(0), singles.mean(0)

    def update(self, state, batch, rng, *, axis_name=None):
        x = jnp.asarray(batch["inputs"], jnp.float32)
        x = jnp.repeat(x, self.repeats, 0)
        n, v = self.model.units, x.shape[-1]
        clamp_key, plus_key, minus_key = jax.random.split(jax.random.fold_in(rng, state.step), 3)
        flip = jax.random.uniform(clamp_key, x.shape)
        noisy = jnp.where(x > 0, (flip >= self.noise_on), (flip < self.noise_off)).astype(x.dtype)
        s = jnp.zeros((len(x), n)).at[:, :v].set(noisy)
        clamped = jnp.ones_like(s).at[:, :v].set(0.0)
        plus = self._co_occurrences(state.params, s, clamped, plus_key)
        minus = self._co_occurrences(state.params, jnp.zeros_like(s), jnp.ones_like(s), minus_key)
        plus, minus = mean_over((plus, minus), axis_name)
        mask = self.model.bind({"params": state.params}).connections()
        if self.proportional:
            step = lambda a, b: self.learning_rate * (a - b)
        else:
            step = lambda a, b: self.learning_rate * jnp.sign(a - b)
        params = {
            "weights": state.params["weights"] + step(plus[0], minus[0]) * mask,
            "bias": state.params["bias"] + step(plus[1], minus[1]),
        }
        finite = jnp.isfinite(params["weights"]).all()
        return state.replace(step=state.step + 1, params=params), {"finite": finite}

    def complete(self, params, x, rng):
        """V2 read back with V1 clamped to `x`'s first group: annealed, then a zero-
        temperature sweep."""
        model = self.model.bind({"params": params})
        g = model.group
        s = jnp.zeros((len(x), model.units)).at[:, :g].set(x[:, :g])
        free = jnp.ones_like(s).at[:, :g].set(0.0)
        s = model.anneal(s, free, rng)
        weights = params["weights"] * model.connections()
        s = energy.boltzmann_sweeps(weights, params["bias"], s, free, jnp.full((1,), 1e-6),
                                    jax.random.fold_in(rng, 1))  # fmt: skip
        return s[:, g : 2 * g]

    def evaluate(self, state, batch, *, axis_name=None):
        """Each pattern completed `eval_repeats` times: `accuracy` counts the right
        completions, `solved` the patterns whose most frequent completion is the right one
        (ties with another: not solved)."""
        x = jnp.asarray(batch["inputs"], jnp.float32)
        r, g = self.eval_repeats, self.model.group
        out = self.complete(state.params, jnp.repeat(x, r, 0), state.rng)
        right = jnp.all(out == jnp.repeat(x[:, g : 2 * g], r, 0), -1).reshape(len(x), r)
        code = jnp.sum(out * 2 ** jnp.arange(g), -1).astype(jnp.int32).reshape(len(x), r)
        tally = jnp.sum(jax.nn.one_hot(code, 2**g), 1)  # (patterns, codes)
        target = jnp.sum(x[:, g : 2 * g] * 2 ** jnp.arange(g), -1).astype(jnp.int32)
        hits = jnp.take_along_axis(tally, target[:, None], 1)[:, 0]
        others = jnp.max(jnp.where(jax.nn.one_hot(target, 2**g) > 0, -1.0, tally), -1)
        weight = batch["weight"]
        return {
            "accuracy": _weighted_sum(weight, right.mean(1), axis_name),
            "solved": _weighted_sum(weight, hits > others, axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }


def encoder_trials(learner: BoltzmannLearner, seeds: int, cycles: int, check_every: int = 10):
    """The paper's experiment: `seeds` machines learn the encoder from independent starts,
    each checked every `check_every` cycles (`evaluate`'s `solved`); returns, per seed, the
    first cycle at which every pattern was solved (−1: not within `cycles`) and the share of
    right completions at the end. The seeds run at once (`vmap`)."""
    x, y = encoder_patterns((2 * learner.model.group,))
    batch = {"inputs": x, "labels": y, "weight": np.ones(len(x), np.float32)}

    def trial(seed):
        key = jax.random.PRNGKey(seed)
        state = learner.init(key, batch)

        def block(state, i):
            def cycle(state, j):
                state, _ = learner.update(
                    state, batch, jax.random.fold_in(key, i * check_every + j)
                )
                return state, None

            state, _ = lax.scan(cycle, state, jnp.arange(check_every))
            m = learner.evaluate(state.replace(rng=jax.random.fold_in(state.rng, i)), batch)
            return state, (m["solved"] / len(x), m["accuracy"] / len(x))

        _, (solved, accuracy) = lax.scan(block, state, jnp.arange(cycles // check_every))
        first = jnp.argmax(solved == 1.0)
        return jnp.where(jnp.any(solved == 1.0), (first + 1) * check_every, -1), accuracy[-1]

    first, accuracy = jax.jit(jax.vmap(trial))(jnp.arange(seeds))
    return np.asarray(first), np.asarray(accuracy)


# --- the restricted Boltzmann machine ---------------------------------------------------------


def cd_gradient(params, v0, vk, hk, h0=None):
    """The negative of contrastive divergence's estimate of the log-likelihood gradient
    (Hinton 2002): −(⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model), with hidden probabilities on both sides
    (Hinton 2010, §3; `h0`, those of the data, when the caller has them), averaged over the
    batch."""
    h0 = jax.nn.sigmoid(energy.rbm_hidden_input(params, v0)) if h0 is None else h0
    n = len(v0)
    return {
        "kernel": -(energy.HIGHEST(v0.T, h0) - energy.HIGHEST(vk.T, hk)) / n,
        "visible_bias": -(v0.mean(0) - vk.mean(0)),
        "hidden_bias": -(h0.mean(0) - hk.mean(0)),
    }


@dataclasses.dataclass(frozen=True)
class ContrastiveDivergenceLearner(LearnerDefaults):
    """CD-k (Hinton 2002) or persistent CD (Tieleman, "Training restricted Boltzmann machines
    using approximations to the likelihood gradient", ICML 2008,
    doi:10.1145/1390156.1390290) for an RBM, stepped by the run's optimizer (the card: SGD,
    learning rate 0.1, as sklearn's `BernoulliRBM`).

    CD-k starts the negative chain at the data and runs `k` Gibbs steps; PCD keeps one chain
    per example of the batch across updates (`model_state["chains"]`, per device), started
    at the first batch. Binary visibles: images thresholded at 0.5; Gaussian ones read the
    inputs as they are (standardise them). Metrics: `reconstruction_error` (squared error
    per example of a round trip: in training, the visible means given the sampled hidden
    states of CD's first step, as sklearn and Hinton's code report it; in evaluation,
    mean-field throughout) and `free_energy` (mean F(v)). A CD-1 step is five products of
    the batch with the weights, as sklearn's.
    """

    model: energy.RestrictedBoltzmannMachine
    optimizer: optax.GradientTransformation
    k: int = 1
    persistent: bool = False
    metrics: ClassVar[tuple[str, ...]] = ("reconstruction_error", "free_energy")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None):
        model = run.model()
        return cls(model=model, optimizer=run.optimizer(total_steps),
                   k=model.cd_steps, persistent=model.persistent)  # fmt: skip

    @classmethod
    def check_inputs(cls, run: Run, x: np.ndarray) -> None:
        if not run.model().gaussian:
            check_unit_interval(x, run.config.model)

    def visible(self, inputs) -> jax.Array:
        if self.model.gaussian:
            return checks.flatten(jnp.asarray(inputs, jnp.float32), "rbm")
        return energy.binary_states(inputs, "rbm")

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        v = self.visible(sample_batch["inputs"])
        init_key, rng = jax.random.split(rng)
        state = new_state(self.optimizer, jax.jit(self.model.init)(init_key, v[:1]), rng)
        return state.replace(model_state={"chains": v} if self.persistent else {})

    def update(self, state, batch, rng, *, axis_name=None):
        v0 = self.visible(batch["inputs"])
        gaussian = self.model.gaussian
        h0 = jax.nn.sigmoid(energy.rbm_hidden_input(state.params, v0))
        if self.persistent:
            vk, hk, _ = energy.rbm_gibbs(state.params, state.model_state["chains"], rng,
                                         self.k, gaussian)  # fmt: skip
            recon = energy.rbm_visible_mean(state.params, h0, gaussian)
        else:  # the chain starts at the data: its first step is the data's reconstruction
            vk, hk, recon = energy.rbm_gibbs(state.params, v0, rng, self.k, gaussian, h0)
        grads = cd_gradient(state.params, v0, vk, hk, h0)
        error = jnp.mean(jnp.sum((v0 - recon) ** 2, -1))
        # the chains stay on their device: apply_gradients would average a model_state
        new, metrics = apply_gradients(self.optimizer, state.replace(model_state={}), grads,
                                       error, {}, axis_name)  # fmt: skip
        chains = {"chains": vk} if self.persistent else {}
        new = new.replace(step=state.step + 1, model_state=chains)
        return new, {"reconstruction_error": metrics["loss"], "finite": metrics["finite"]}

    def evaluate(self, state, batch, *, axis_name=None):
        v = self.visible(batch["inputs"])
        variables = {"params": state.params}
        recon = self.model.apply(variables, v, method="reconstruct")
        free = self.model.apply(variables, v, method="free_energy")
        weight = batch["weight"]
        return {
            "reconstruction_error": _weighted_sum(weight, jnp.sum((v - recon) ** 2, -1), axis_name),
            "free_energy": _weighted_sum(weight, free, axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }


# --- the deep belief network --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DBNLearner(LearnerDefaults):
    """Greedy layer-wise training (Hinton, Osindero & Teh 2006), then fine-tuning.

    The run's steps are split in `len(layers) + 1` equal phases: one per RBM, bottom up,
    each trained by CD-1 (SGD, `cd_learning_rate`, momentum 0.9, weight decay 2e-4 as in
    the paper's appendix) on the hidden probabilities of the RBMs below (the top RBM on them
    joined with the one-hot label); the last phase fine-tunes every weight by backpropagating
    the cross-entropy of the feed-forward logits (`DeepBeliefNetwork.__call__`) with the
    run's optimizer: the paper's up-down fine-tuning is not implemented; this is the
    discriminative fine-tuning of Hinton & Salakhutdinov 2006. Each phase has its own
    optimizer state. Fine-tuning unties the recognition weights from the generative ones,
    as the paper's up-down does: `model_state["generative"]` keeps the weights as
    pretraining left them, and `DeepBeliefNetwork.generate` should be applied to those
    (fine-tuned for classification, the tied weights no longer generate digits). The weights start at N(0, 0.01²) (Hinton 2010): without pretraining,
    a sigmoid stack this small at that scale hardly learns by backpropagation.

    Metrics: `loss` (cross-entropy) and `accuracy` of the logits, and
    `free_energy_accuracy`, the paper's generative classification (lowest free energy of
    the top RBM with the label clamped).
    """

    model: energy.DeepBeliefNetwork
    optimizer: optax.GradientTransformation
    phase_steps: int
    cd_learning_rate: float = 0.1
    metrics: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "free_energy_accuracy")

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> DBNLearner:
        model = run.model()
        phases = len(model.layers) + 1  # the RBMs below the top, the top, fine-tuning
        return cls(model=model, optimizer=run.optimizer(total_steps),
                   phase_steps=max((total_steps or 0) // phases, 1))  # fmt: skip

    @classmethod
    def check_inputs(cls, run: Run, x: np.ndarray) -> None:
        check_unit_interval(x, run.config.model)

    @property
    def names(self) -> list[str]:
        return [f"rbm{i}" for i in range(len(self.model.layers) - 1)] + ["top"]

    @property
    def cd_optimizer(self) -> optax.GradientTransformation:
        return optax.chain(optax.add_decayed_weights(2e-4),
                           optax.sgd(self.cd_learning_rate, momentum=0.9))  # fmt: skip

    def init(self, rng: jax.Array, sample_batch: Batch) -> TrainState:
        x = energy.binary_states(sample_batch["inputs"][:1], "deep_belief_network")
        init_key, rng = jax.random.split(rng)
        params = jax.jit(self.model.init)(init_key, x)["params"]
        opt_state = {name: self.cd_optimizer.init(params[name]) for name in self.names}
        opt_state["finetune"] = self.optimizer.init(params)
        # the weights as pretraining leaves them: a copy (donated apart from `params`)
        generative = {"generative": jax.tree.map(jnp.copy, params)}
        return TrainState(jnp.zeros((), jnp.int32), params, opt_state, generative, rng)

    def _layer_input(self, params, x, labels, layer: int):
        h = x
        for i in range(layer):
            h = jax.nn.sigmoid(energy.rbm_hidden_input(params[f"rbm{i}"], h))
        if self.names[layer] == "top":
            h = jnp.concatenate([h, jax.nn.one_hot(labels, self.model.num_classes)], -1)
        return h

    def _pretrain(self, layer: int, state, x, labels, rng, axis_name):
        name = self.names[layer]
        params = state.params[name]
        v0 = self._layer_input(state.params, x, labels, layer)
        h0 = jax.nn.sigmoid(energy.rbm_hidden_input(params, v0))
        vk, hk, _ = energy.rbm_gibbs(params, v0, rng, 1, hidden_probs=h0)
        grads = mean_over(cd_gradient(params, v0, vk, hk, h0), axis_name)
        updates, opt = self.cd_optimizer.update(grads, state.opt_state[name], params)
        recon = jnp.mean(jnp.sum((v0 - vk) ** 2, -1))
        params = state.params | {name: optax.apply_updates(params, updates)}
        new = state.replace(params=params, opt_state=state.opt_state | {name: opt},
                            model_state={"generative": params})  # fmt: skip
        return new, mean_over(recon, axis_name)

    def _loss(self, params, x, labels):
        logits = self.model.apply({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

    def _finetune(self, state, x, labels, axis_name):
        (loss, _), grads = jax.value_and_grad(self._loss, has_aux=True)(state.params, x, labels)
        grads, loss = mean_over((grads, loss), axis_name)
        updates, opt = self.optimizer.update(grads, state.opt_state["finetune"], state.params)
        new = state.replace(params=optax.apply_updates(state.params, updates),
                            opt_state=state.opt_state | {"finetune": opt})  # fmt: skip
        return new, loss

    def update(self, state, batch, rng, *, axis_name=None):
        x = energy.binary_states(batch["inputs"], "deep_belief_network")
        labels = batch["labels"]
        phase = jnp.minimum(state.step // self.phase_steps, len(self.names))
        branches = [
            (lambda s, layer=layer: self._pretrain(layer, s, x, labels, rng, axis_name))
            for layer in range(len(self.names))
        ] + [lambda s: self._finetune(s, x, labels, axis_name)]
        new, loss = lax.switch(phase, branches, state)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.stack([jnp.isfinite(p).all() for p in jax.tree.leaves(new.params)])
        )
        new = lax.cond(finite, lambda: new, lambda: state)
        return new.replace(step=state.step + 1), {"finite": finite}

    def evaluate(self, state, batch, *, axis_name=None):
        x = energy.binary_states(batch["inputs"], "deep_belief_network")
        labels = batch["labels"]
        logits = self.model.apply({"params": state.params}, x)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        scores = self.model.apply({"params": state.params}, x, method="free_energy_scores")
        weight = batch["weight"]
        return {
            "loss": _weighted_sum(weight, losses, axis_name),
            "accuracy": _weighted_sum(weight, jnp.argmax(logits, -1) == labels, axis_name),
            "free_energy_accuracy": _weighted_sum(
                weight, jnp.argmax(scores, -1) == labels, axis_name
            ),
            "count": sum_over(jnp.sum(weight), axis_name),
        }
