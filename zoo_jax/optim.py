"""The eight classic optimizers as optax chains, numerically equal to Keras 3; learning-rate
schedules, gradient clipping, decoupled weight decay, max-norm, and the Keras penalties.

    >>> import jax.numpy as jnp
    >>> from zoo_jax import optim
    >>> tx = optim.make("adam", learning_rate=1e-4, clipnorm=1.0)   # an optax transform
    >>> tx = optim.make("sgd", learning_rate=optim.schedule(
    ...     "cosine_decay", 0.1, decay_steps=10_000), momentum=0.9)
    >>> params = {"w": jnp.ones(3)}
    >>> updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    >>> [round(float(u), 3) for u in updates["w"]]   # −lr · g on the first step
    [-0.1, -0.1, -0.1]

Each optimizer is checked against `keras.optimizers.*` (KERAS_BACKEND=jax) fed the same
gradients: relative difference <= 1e-5 in float32 after 100 steps (tests/test_optim.py).
Defaults are the textbook chapter's ("Neural network collection", its optimizer section), which are Keras's except where the chapter
says otherwise (AdaDelta lr 1.0, Adamax and Nadam lr 0.002; Keras 3 uses 0.001 for those).
ε = 1e-7 everywhere (Keras's backend epsilon; optax's default is 1e-8).

Each builder below (`_sgd`, …, `_nadam`) states its update rule and reference, and quotes
the chapter's printed formula where Keras differs. Notation: g gradient, α learning rate (a
float or a schedule of the step t = 1, 2, …), all products element-wise.

Options every optimizer takes, under Keras's names and applied in Keras's order — clip the
gradient, compute the update, decay the weights:
`clipnorm` (each gradient tensor's L2 norm), `global_clipnorm` (all tensors together),
`clipvalue` (element-wise), `weight_decay` (decoupled: w ← w − α·λ·w, Loshchilov & Hutter
2019). Unlike Keras, whose `weight_decay` decays every variable, ours decays kernels only,
as the penalties do; pass `decay_mask=lambda params: ...` to choose.
`max_norm` is Keras's `MaxNorm` kernel constraint (Srebro & Shraibman 2005; Srivastava et al.
2014 with dropout): after each update every unit's incoming weight vector is rescaled to
norm <= c — projected gradient descent (`004_…`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from zoo_jax.errors import UnknownNameError, ZooError

_EPS = 1e-7
EPSILON_PLACEMENTS = ("keras", "paper", "chapter")
Schedule = Callable[[jax.Array], jax.Array]
LearningRate = float | Schedule


# --- the three Keras update rules optax does not have exactly -------------------------------


class _MomentsState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any  # AMSGrad's running max of nu (empty when unused)


class _NadamState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any
    mu_product: jax.Array  # Πₜ, the product of the momentum schedule so far


def _zeros(params):
    return jax.tree.map(jnp.zeros_like, params)


def scale_by_keras_adam(
    beta_1: float, beta_2: float, epsilon: float, amsgrad: bool, epsilon_placement: str
) -> optax.GradientTransformation:
    """Adam's direction, to be scaled by −α (the formula: `_adam`)."""

    def init(params):
        nu_max = _zeros(params) if amsgrad else ()
        return _MomentsState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params), nu_max)

    def update(grads, state, params=None):
        t = (state.count + 1).astype(jnp.float32)
        mu = jax.tree.map(lambda m, g: m + (g - m) * (1 - beta_1), state.mu, grads)
        nu = jax.tree.map(lambda v, g: v + (g * g - v) * (1 - beta_2), state.nu, grads)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu) if amsgrad else ()
        nu_used = nu_max if amsgrad else nu
        c1, c2 = 1 - beta_1**t, 1 - beta_2**t
        if epsilon_placement == "keras":
            direction = lambda m, v: m * (jnp.sqrt(c2) / c1) / (jnp.sqrt(v) + epsilon)
        elif epsilon_placement == "paper":
            direction = lambda m, v: (m / c1) / (jnp.sqrt(v / c2) + epsilon)
        else:
            direction = lambda m, v: (m / c1) / jnp.sqrt(v / c2 + epsilon)
        updates = jax.tree.map(direction, mu, nu_used)
        return updates, _MomentsState(state.count + 1, mu, nu, nu_max)

    return optax.GradientTransformation(init, update)


def scale_by_keras_adamax(beta_1: float, beta_2: float, epsilon: float):
    """Adamax's direction m / ((1 − β₁ᵗ)(u + ε)), to be scaled by −α."""

    def init(params):
        return _MomentsState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params), ())

    def update(grads, state, params=None):
        t = (state.count + 1).astype(jnp.float32)
        mu = jax.tree.map(lambda m, g: m + (g - m) * (1 - beta_1), state.mu, grads)
        nu = jax.tree.map(lambda u, g: jnp.maximum(beta_2 * u, jnp.abs(g)), state.nu, grads)
        c1 = 1 - beta_1**t
        updates = jax.tree.map(lambda m, u: m / (c1 * (u + epsilon)), mu, nu)
        return updates, _MomentsState(state.count + 1, mu, nu, ())

    return optax.GradientTransformation(init, update)


def scale_by_keras_nadam(beta_1: float, beta_2: float, epsilon: float, epsilon_placement: str):
    """Nadam's direction with Keras 3's momentum schedule, to be scaled by −α."""
    # Keras's Nadam rounds β to float32 before forming 1 − β (its Adam does not): with
    # β₂ = 0.999 that is a 1.3e-5 relative change of v̂, so we round the same way.
    beta_1, beta_2 = jnp.float32(beta_1), jnp.float32(beta_2)

    def init(params):
        return _NadamState(
            jnp.zeros([], jnp.int32), _zeros(params), _zeros(params), jnp.ones([], jnp.float32)
        )

    def update(grads, state, params=None):
        t = (state.count + 1).astype(jnp.float32)
        mu_t = beta_1 * (1.0 - 0.5 * 0.96**t)
        mu_next = beta_1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        product = state.mu_product * beta_1 * (1.0 - 0.5 * 0.96**t)  # Keras's rounding order
        product_next = product * mu_next
        mu = jax.tree.map(lambda m, g: m + (g - m) * (1 - beta_1), state.mu, grads)
        nu = jax.tree.map(lambda v, g: v + (g * g - v) * (1 - beta_2), state.nu, grads)
        c2 = 1 - beta_2**t

        def direction(m, v, g):
            m_hat = mu_next * m / (1 - product_next) + (1 - mu_t) * g / (1 - product)
            if epsilon_placement == "chapter":
                return m_hat / jnp.sqrt(v / c2 + epsilon)
            return m_hat / (jnp.sqrt(v / c2) + epsilon)  # Keras and Dozat agree here

        updates = jax.tree.map(direction, mu, nu, grads)
        return updates, _NadamState(state.count + 1, mu, nu, product)

    return optax.GradientTransformation(init, update)


# --- the eight optimizers -------------------------------------------------------------------
# Each builder takes the learning rate (float or schedule) and Keras's hyperparameter names,
# and returns the transform from gradient to the update added to the params.


def _lr(learning_rate: LearningRate) -> optax.GradientTransformation:
    return optax.scale_by_learning_rate(learning_rate)


def _sgd(learning_rate, momentum, nesterov=False):
    """Robbins & Monro 1951; momentum: Polyak 1964. Keras `SGD(momentum, nesterov)`.
    m ← μ·m − α·g;  w ← w + m   (μ = 0: w ← w − α·g)
    """
    # Scaling before the trace accumulates α·g, as Keras's velocity does, so the two agree
    # under a learning-rate schedule too.
    if not momentum:
        return _lr(learning_rate)
    return optax.chain(_lr(learning_rate), optax.trace(momentum, nesterov=nesterov))


def _nag(learning_rate, momentum):
    """Nesterov 1983, in the form of Sutskever et al. 2013. Keras `SGD(nesterov=True)`.
    m ← μ·m − α·g;  w ← w + μ·m − α·g.
    The chapter prints a dampened momentum m ← β·m + (1 − β)·g; Keras (and we) do not dampen.
    """
    return _sgd(learning_rate, momentum, nesterov=True)


def _rmsprop(learning_rate, rho, momentum, epsilon, centered):
    """Hinton, Coursera lecture 6e (2012). Keras `RMSprop(rho, momentum, centered)`.
    v ← ρ·v + (1 − ρ)·g²;  Δ = α·g / √(v + ε)   (centered: √(v − ḡ² + ε), ḡ the mean of g);
    with momentum μ: m ← μ·m + Δ, w ← w − m; else w ← w − Δ. ε inside the root, as printed.
    """
    scale = optax.scale_by_stddev if centered else optax.scale_by_rms
    parts = [scale(decay=rho, eps=epsilon, eps_in_sqrt=True), _lr(learning_rate)]
    if momentum:
        parts.append(optax.trace(momentum))
    return optax.chain(*parts)


def _adagrad(learning_rate, initial_accumulator_value, epsilon):
    """Duchi, Hazan & Singer, JMLR 2011. Keras `Adagrad`.
    v ← v + g²  (v₀ = initial_accumulator_value = 0.1);  w ← w − α·g / √(v + ε).
    """
    return optax.chain(optax.scale_by_rss(initial_accumulator_value, epsilon), _lr(learning_rate))


def _adadelta(learning_rate, rho, epsilon):
    """Zeiler 2012, arXiv:1212.5701. Keras `Adadelta`.
    v ← ρ·v + (1 − ρ)·g²;  Δ = −√(D + ε) / √(v + ε) · g;  D ← ρ·D + (1 − ρ)·Δ²;  w ← w + α·Δ.
    """
    return optax.chain(optax.scale_by_adadelta(rho, epsilon), _lr(learning_rate))


def _adam(learning_rate, beta_1, beta_2, epsilon, amsgrad, epsilon_placement):
    """Kingma & Ba, ICLR 2015. Keras `Adam(amsgrad)`.
    m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;
    w ← w − α·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)   (`epsilon_placement="keras"`, default).
    The paper puts ε against the corrected moment, m̂ / (√v̂ + ε) (`"paper"`, also optax's);
    the chapter prints m̂ / √(v̂ + ε) (`"chapter"`). They differ when √v̂ is near ε.
    """
    return optax.chain(
        scale_by_keras_adam(beta_1, beta_2, epsilon, amsgrad, epsilon_placement),
        _lr(learning_rate),
    )


def _adamax(learning_rate, beta_1, beta_2, epsilon):
    """Kingma & Ba 2015, §7.1. Keras `Adamax`.
    m ← β₁·m + (1 − β₁)·g;  u ← max(β₂·u, |g|);  w ← w − α/(1 − β₁ᵗ) · m / (u + ε).
    The chapter prints no ε; optax puts it inside the max, which is why this is ours.
    """
    return optax.chain(scale_by_keras_adamax(beta_1, beta_2, epsilon), _lr(learning_rate))


def _nadam(learning_rate, beta_1, beta_2, epsilon, epsilon_placement):
    """Dozat, "Incorporating Nesterov momentum into Adam", ICLR workshop 2016.
    Keras `Nadam`: a momentum schedule μₜ = β₁·(1 − ½·0.96ᵗ), Πₜ = μ₁⋯μₜ,
    m̂ = μₜ₊₁·m / (1 − Πₜ₊₁) + (1 − μₜ)·g / (1 − Πₜ);  v̂ = v / (1 − β₂ᵗ);
    w ← w − α·m̂ / (√v̂ + ε). Dozat's schedule is 0.96^(t/250) (Keras 2 used that); Keras 3
    uses 0.96ᵗ and so do we. The chapter prints the unscheduled β₁·m̂ + (1 − β₁)/(1 − β₁ᵗ)·g
    and ε inside the root; `optax.nadam` is also unscheduled.
    """
    return optax.chain(
        scale_by_keras_nadam(beta_1, beta_2, epsilon, epsilon_placement), _lr(learning_rate)
    )


_ADAM_BETAS = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": _EPS}

# name -> (builder, defaults, Keras equivalent).
OPTIMIZERS: dict[str, tuple[Callable[..., optax.GradientTransformation], dict[str, Any], str]] = {
    "sgd": (
        _sgd,
        {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
        "keras.optimizers.SGD",
    ),
    "nag": (_nag, {"learning_rate": 0.01, "momentum": 0.9}, "keras.optimizers.SGD(nesterov=True)"),
    "rmsprop": (
        _rmsprop,
        {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": _EPS, "centered": False},
        "keras.optimizers.RMSprop",
    ),
    "adagrad": (
        _adagrad,
        {"learning_rate": 0.01, "initial_accumulator_value": 0.1, "epsilon": _EPS},
        "keras.optimizers.Adagrad",
    ),
    "adadelta": (
        _adadelta,
        {"learning_rate": 1.0, "rho": 0.95, "epsilon": _EPS},
        "keras.optimizers.Adadelta",
    ),
    "adam": (
        _adam,
        {"learning_rate": 0.001, **_ADAM_BETAS, "amsgrad": False, "epsilon_placement": "keras"},
        "keras.optimizers.Adam",
    ),
    "adamax": (_adamax, {"learning_rate": 0.002, **_ADAM_BETAS}, "keras.optimizers.Adamax"),
    "nadam": (
        _nadam,
        {"learning_rate": 0.002, **_ADAM_BETAS, "epsilon_placement": "keras"},
        "keras.optimizers.Nadam",
    ),
}

# Options of every optimizer (Keras's base-optimizer arguments, plus the MaxNorm constraint).
COMMON_OPTIONS: dict[str, Any] = {
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "weight_decay": None,
    "max_norm": None,
}
_BOOLEAN = {"nesterov", "amsgrad", "centered"}
_CHOICES = {"epsilon_placement": EPSILON_PLACEMENTS}
_CLIPPING = ("clipnorm", "global_clipnorm", "clipvalue")


def defaults(name: str) -> dict[str, Any]:
    """The default hyperparameters of optimizer `name` (Keras names)."""
    if name not in OPTIMIZERS:
        raise UnknownNameError("optimizer", name, OPTIMIZERS)
    return dict(OPTIMIZERS[name][1])


def _check_value(name: str, key: str, value: Any) -> None:
    if key in _BOOLEAN:
        if not isinstance(value, bool):
            raise ZooError(f"{name} {key} must be true or false, got {value!r}")
    elif key in _CHOICES:
        if value not in _CHOICES[key]:
            raise UnknownNameError(f"{key} of {name!r}", str(value), _CHOICES[key])
    elif key == "learning_rate" and callable(value):
        return
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ZooError(f"{name} {key} must be a number, got {value!r}")
    elif not (jnp.isfinite(value) and value >= 0):
        raise ZooError(f"{name} {key} must be a finite number >= 0, got {value!r}")
    elif key in ("rho", "beta_1", "beta_2", "momentum") and value >= 1:
        raise ZooError(f"{name} {key} must be in [0, 1), got {value!r}")
    elif key in _CLIPPING and value == 0:  # Keras takes 0 and then zeroes every gradient
        raise ZooError(f"{name} {key} must be > 0 (0 would zero every gradient), got {value!r}")
    elif key == "max_norm" and value == 0:
        raise ZooError(f"{name} max_norm must be > 0 (0 would zero every kernel), got {value!r}")


def make(
    name: str, *, decay_mask: Callable[[Any], Any] | None = None, **hparams: Any
) -> optax.GradientTransformation:
    """Build optimizer `name`; `hparams` override its defaults (Keras names, see `defaults`)
    and may set the common options (`COMMON_OPTIONS`). A value of `None` keeps the default.

    `learning_rate` may be a float or a schedule (`schedule(...)` or any optax schedule).
    Unknown names, unknown hyperparameters and out-of-range values raise a `ZooError`.
    """
    params = defaults(name)
    common = dict(COMMON_OPTIONS)
    for key, value in hparams.items():
        target = params if key in params else common if key in common else None
        if target is None:
            raise UnknownNameError(f"hyperparameter of {name!r}", key, [*params, *common])
        if value is not None:
            _check_value(name, key, value)
            target[key] = value
    clipping = [k for k in _CLIPPING if common[k] is not None]
    if len(clipping) > 1:  # as Keras
        raise ZooError(f"only one of clipnorm, global_clipnorm, clipvalue; got {clipping}")
    builder = OPTIMIZERS[name][0]
    parts = []
    if common["clipvalue"] is not None:
        parts.append(optax.clip(common["clipvalue"]))
    if common["clipnorm"] is not None:
        parts.append(clip_by_norm(common["clipnorm"]))
    if common["global_clipnorm"] is not None:
        parts.append(optax.clip_by_global_norm(common["global_clipnorm"]))
    parts.append(builder(**params))
    if common["weight_decay"]:
        parts.append(
            decoupled_weight_decay(common["weight_decay"], params["learning_rate"], decay_mask)
        )
    if common["max_norm"] is not None:
        parts.append(max_norm(common["max_norm"]))
    return parts[0] if len(parts) == 1 else optax.chain(*parts)


def describe() -> list[dict[str, Any]]:
    """One row per optimizer: name, defaults, Keras equivalent (for `zoo-jax list`)."""
    return [
        {"name": name, "defaults": dict(spec[1]), "keras": spec[2]}
        for name, spec in OPTIMIZERS.items()
    ]


# --- clipping, decay, constraints -----------------------------------------------------------


def clip_by_norm(max_norm_value: float) -> optax.GradientTransformation:
    """Keras's `clipnorm`: each gradient tensor g ← g·c / max(‖g‖, c)."""

    def clip(g):
        norm = jnp.sqrt(jnp.sum(g * g))
        return g * max_norm_value / jnp.maximum(norm, max_norm_value)

    return optax.stateless(lambda updates, params=None: jax.tree.map(clip, updates))


def is_kernel(path: tuple, leaf: jax.Array) -> bool:
    """Keras applies kernel regularizers to weight matrices, never to biases."""
    return getattr(path[-1], "key", None) == "kernel"


def kernel_mask(params: Any) -> Any:
    """True on every kernel leaf of `params`."""
    return jax.tree_util.tree_map_with_path(is_kernel, params)


class _CountState(NamedTuple):
    count: jax.Array


def decoupled_weight_decay(
    weight_decay: float, learning_rate: LearningRate, mask: Callable[[Any], Any] | None = None
) -> optax.GradientTransformation:
    """w ← w − α·λ·w after the optimizer's update, with α the current learning rate."""
    mask = mask or kernel_mask
    lr = learning_rate if callable(learning_rate) else (lambda count: learning_rate)

    def init(params):
        return _CountState(jnp.zeros([], jnp.int32))

    def update(updates, state, params):
        rate = lr(state.count) * weight_decay
        decay = lambda u, w, on: u - rate * w if on else u
        updates = jax.tree.map(decay, updates, params, mask(params))
        return updates, _CountState(state.count + 1)

    return optax.GradientTransformation(init, update)


def project_max_norm(kernel: jax.Array, max_value: float) -> jax.Array:
    """Keras `MaxNorm(max_value)`: rescale each unit's incoming weights (all axes but the
    last: `axis=0` of a Dense kernel, `axis=[0, 1, 2]` of a Conv2D kernel) to norm <= c."""
    if kernel.ndim < 2:
        return kernel
    norms = jnp.sqrt(jnp.sum(kernel * kernel, axis=tuple(range(kernel.ndim - 1)), keepdims=True))
    return kernel * (jnp.clip(norms, 0, max_value) / (_EPS + norms))


def max_norm(max_value: float, mask: Callable[[Any], Any] | None = None):
    """The max-norm constraint as the last transform: the update lands on the projection."""
    mask = mask or kernel_mask

    def update(updates, state, params):
        def project(u, w, on):
            return project_max_norm(w + u, max_value) - w if on else u

        return jax.tree.map(project, updates, params, mask(params)), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def regularization_penalty(params: Any, l1: float = 0.0, l2: float = 0.0) -> jax.Array:
    """Keras `l1_l2(l1, l2)` summed over every kernel: l1·Σ|w| + l2·Σw² (biases excluded).
    `l1` alone is Keras's `l1`, `l2` alone its `l2`, both the elastic net."""
    total = jnp.zeros((), jnp.float32)
    if not (l1 or l2):
        return total
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if is_kernel(path, leaf):
            total = total + l1 * jnp.sum(jnp.abs(leaf)) + l2 * jnp.sum(jnp.square(leaf))
    return total


# --- learning-rate schedules (Keras's names and arguments) ----------------------------------


def _exponential_decay(lr, decay_steps, decay_rate=0.1, staircase=False):
    return optax.exponential_decay(lr, decay_steps, decay_rate, staircase=staircase)


def _inverse_time_decay(lr, decay_steps, decay_rate=1.0, staircase=False):
    def rate(step):
        p = step / decay_steps
        return lr / (1 + decay_rate * (jnp.floor(p) if staircase else p))

    return rate


def _cosine_decay(lr, decay_steps, alpha=0.0):
    return optax.cosine_decay_schedule(lr, decay_steps, alpha)


def _polynomial_decay(lr, decay_steps, end_learning_rate=1e-4, power=1.0):
    return optax.polynomial_schedule(lr, end_learning_rate, power, decay_steps)


def _piecewise_constant_decay(lr, boundaries, values):
    if len(values) != len(boundaries) + 1:
        raise ZooError("piecewise_constant_decay needs one more value than boundaries")
    bounds, vals = jnp.asarray(boundaries), jnp.asarray(values, jnp.float32)
    return lambda step: vals[jnp.sum(step > bounds)]


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "exponential_decay": _exponential_decay,
    "inverse_time_decay": _inverse_time_decay,
    "cosine_decay": _cosine_decay,
    "polynomial_decay": _polynomial_decay,
    "piecewise_constant_decay": _piecewise_constant_decay,
}


# What each option must be. Keras checks none of the ranges: a negative decay rate, alpha,
# power or rate in `values` gives negative or NaN learning rates (a run that ends in NaN).
_SCHEDULE_OPTION_KINDS = {
    "staircase": "true or false",
    "decay_steps": "a finite number > 0",
    "decay_rate": "a finite number > 0",
    "power": "a finite number > 0",
    "alpha": "a finite number in [0, 1]",
    "end_learning_rate": "a finite number >= 0",
    "boundaries": "a list of finite numbers",
    "values": "a list of finite numbers >= 0 (learning rates)",
}
_SCHEDULE_OPTION_RANGES = {
    "decay_steps": lambda v: v > 0,
    "decay_rate": lambda v: v > 0,
    "power": lambda v: v > 0,
    "alpha": lambda v: 0 <= v <= 1,
    "end_learning_rate": lambda v: v >= 0,
}


def _valid_schedule_option(key: str, value: Any) -> bool:
    finite = lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if key == "staircase":
        return isinstance(value, bool)
    if key == "boundaries":
        return isinstance(value, list | tuple) and all(map(finite, value))
    if key == "values":
        return isinstance(value, list | tuple) and all(finite(v) and v >= 0 for v in value)
    return finite(value) and _SCHEDULE_OPTION_RANGES.get(key, lambda v: True)(value)


def schedule(name: str, learning_rate: float, **options: Any) -> Schedule:
    """The Keras schedule `name` (`keras.optimizers.schedules.*`, snake_case) starting at
    `learning_rate`. `decay_steps` is required by all but piecewise_constant_decay (the
    training loop passes the run's total number of steps when the config leaves it out)."""
    if name not in SCHEDULES:
        raise UnknownNameError("learning-rate schedule", name, SCHEDULES)
    accepted = list(inspect.signature(SCHEDULES[name]).parameters)[1:]
    for key in options:
        if key not in accepted:
            raise UnknownNameError(f"option of schedule {name!r}", key, accepted)
    missing = [
        k
        for k, p in inspect.signature(SCHEDULES[name]).parameters.items()
        if k != "lr" and p.default is inspect.Parameter.empty and k not in options
    ]
    if missing:
        raise ZooError(f"schedule {name!r} needs {', '.join(missing)}")
    for key, value in options.items():
        if not _valid_schedule_option(key, value):
            want = _SCHEDULE_OPTION_KINDS.get(key, "a finite number")
            raise ZooError(f"schedule {name!r} {key} must be {want}, got {value!r}")
    return SCHEDULES[name](learning_rate, **options)
