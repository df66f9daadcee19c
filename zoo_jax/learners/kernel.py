"""A Gaussian-kernel SVM solved in its dual, on device: the exact kernel machine the
`support_vector_machine` card (random Fourier features, primal hinge) approximates, for
training sets whose n × n kernel fits in memory (10,000 MNIST images: 400 MB).

Multi-class by one-vs-rest (Vapnik 1998; Rifkin & Klautau 2004 find it as accurate as the
others when the binary machines are well tuned): for each class c a binary SVM with labels
y_ic = ±1, whose dual

    max_α  Σ_i α_i − ½ Σ_ij α_i α_j y_i y_j (K_ij + 1),   0 ≤ α_i ≤ C

is solved for all classes at once by FISTA (Beck & Teboulle 2009) with the box projection
and adaptive restart (O'Donoghue & Candès 2015), step 1/L, L the largest eigenvalue of K + 1 (power iteration). The bias is the weight of a
constant feature (the "+ 1"), so it is regularised like the rest and there is no equality
constraint: LIBSVM (sklearn's `SVC`) keeps an unregularised bias and decides one-vs-one, so
the two differ slightly by construction. Decision: f_c(x) = Σ_i α_ic y_ic (k(x_i, x) + 1),
class argmax_c f_c(x).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from zoo_jax.errors import InputError, ZooError
from zoo_jax.models.shallow import squared_distances


def gaussian_kernel(a: jax.Array, b: jax.Array, gamma: float) -> jax.Array:
    """exp(−γ ‖a_i − b_j‖²) `(len(a), len(b))`."""
    return jnp.exp(-gamma * squared_distances(a, b))


@dataclasses.dataclass(frozen=True)
class KernelSVM:
    """A trained machine: its training inputs, the dual coefficients α_ic y_ic `(n,
    classes)`, γ, and how the solve ended (`iterations`, `gap`: the duality gap per
    example, worst class)."""

    x: jax.Array
    coef: jax.Array
    gamma: float
    iterations: int
    gap: float

    def decision_function(self, x: np.ndarray, batch: int = 2000) -> np.ndarray:
        """f_c(x) `(n, classes)`, computed `batch` rows at a time."""
        scores = [
            _scores(self.x, self.coef, jnp.asarray(x[i : i + batch], jnp.float32), self.gamma)
            for i in range(0, len(x), batch)
        ]
        return np.concatenate([np.asarray(s) for s in scores])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.decision_function(x).argmax(-1)

    @property
    def support_vectors(self) -> int:
        """Training examples with α > 0 for at least one class."""
        return int((jnp.abs(self.coef) > 0).any(-1).sum())


@functools.partial(jax.jit, static_argnames="gamma")
def _scores(x_train, coef, x, gamma):
    return jnp.matmul(gaussian_kernel(x, x_train, gamma) + 1.0, coef, precision="highest")


@functools.partial(jax.jit, static_argnames=("num_classes", "iterations"))
def _solve(x, y, c, gamma, num_classes, iterations):
    k = gaussian_kernel(x, x, gamma) + 1.0
    signs = 2.0 * jax.nn.one_hot(y, num_classes) - 1.0  # (n, classes)
    matmul = functools.partial(jnp.matmul, precision="highest")

    def power(v, _):
        v = matmul(k, v)
        return v / jnp.linalg.norm(v), None

    v, _ = lax.scan(power, jnp.ones(len(k)) / len(k) ** 0.5, None, length=50)
    lipschitz = 1.01 * v @ matmul(k, v)  # a hair above λ_max: the step stays stable

    def gradient(alpha):  # of the negated dual, Q α − 1 per class
        return signs * matmul(k, signs * alpha) - 1.0

    def step(carry, _):
        alpha, momentum, t = carry
        new = jnp.clip(momentum - gradient(momentum) / lipschitz, 0.0, c)
        # adaptive restart (O'Donoghue & Candès 2015), per class: momentum that points uphill
        # is dropped, which spares FISTA its oscillations on these ill-conditioned duals
        uphill = jnp.sum((momentum - new) * (new - alpha), 0) > 0
        t = jnp.where(uphill, 1.0, t)
        t_next = (1 + jnp.sqrt(1 + 4 * t**2)) / 2
        return (new, new + (t - 1) / t_next * (new - alpha), t_next), None

    zeros = jnp.zeros_like(signs)
    start = (zeros, zeros, jnp.ones(num_classes))
    (alpha, _, _), _ = lax.scan(step, start, None, length=iterations)
    # duality gap per class: primal hinge objective minus the dual objective, per example
    margins = signs * matmul(k, signs * alpha)
    quadratic = jnp.sum(alpha * margins, 0)
    primal = 0.5 * quadratic + c * jnp.sum(jnp.maximum(0.0, 1.0 - margins), 0)
    dual = jnp.sum(alpha, 0) - 0.5 * quadratic
    return signs * alpha, jnp.max((primal - dual) / len(k))


def fit_kernel_svm(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    c: float = 1.0,
    gamma: float,
    iterations: int = 2000,
) -> KernelSVM:
    """One-vs-rest Gaussian-kernel SVMs on `x` `(n, features)`, labels `y` in
    `[0, num_classes)`, box `c`, kernel width `gamma` (module docstring)."""
    if not gamma > 0:
        raise ZooError(f"the kernel width gamma must be > 0, got {gamma!r}")
    if not c > 0:
        raise ZooError(f"C must be > 0, got {c!r}")
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    if not np.isfinite(x).all():
        raise InputError("inputs contain non-finite values (NaN or inf)")
    if np.min(y) < 0 or np.max(y) >= num_classes:
        raise InputError(f"labels must lie in [0, {num_classes})")
    coef, gap = _solve(jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.float32(c), float(gamma),
                       num_classes, iterations)  # fmt: skip
    return KernelSVM(jnp.asarray(x), coef, float(gamma), iterations, float(gap))
