"""Time series for the reservoir models: the Mackey–Glass delay differential equation.

`mackey_glass` returns the series ReservoirPy 0.4's `reservoirpy.datasets.mackey_glass`
returns for the same parameters and seed (tested against it), so a forecasting comparison
with ReservoirPy runs on the identical series: the same random history before t = 0 and the
same integration step. That step is ReservoirPy's `_mg_rk4`: the delayed term x(t − τ) held
at its value at the start of the step and the four stages combined as written there (it is
not the textbook RK4 of the delay equation; at h = 1 it is the series the reservoir
literature built on ReservoirPy reports).
"""

from __future__ import annotations

import numpy as np

from zoo_jax.errors import ZooError

RESERVOIRPY_SEED = 5555  # reservoirpy.datasets' default seed


def _step(xt: float, xtau: float, a: float, b: float, n: int, h: float) -> float:
    bh = -b * h
    k1 = bh * xt + a * xtau / (1 + xtau**n)
    k2 = 2 * k1 + bh * k1
    k3 = 2 * k1 + bh * k2
    k4 = k1 + bh * k3
    return xt + (k1 + k2 + k3 + k4) / 6


def mackey_glass(
    n_timesteps: int,
    tau: int = 17,
    a: float = 0.2,
    b: float = 0.1,
    n: int = 10,
    x0: float = 1.2,
    h: float = 1.0,
    seed: int = RESERVOIRPY_SEED,
) -> np.ndarray:
    """`(n_timesteps, 1)` float64 samples of dx/dt = a x(t−τ) / (1 + x(t−τ)^n) − b x(t)
    (Mackey & Glass, Science 197 (1977), doi:10.1126/science.267326), every `h`; chaotic at
    τ = 17. The history before t = 0 is x0 + U(−0.1, 0.1) noise from `seed`."""
    if n_timesteps < 1:
        raise ZooError(f"n_timesteps must be >= 1, got {n_timesteps}")
    if tau < 0 or h <= 0:
        raise ZooError(f"tau must be >= 0 and h > 0, got tau={tau}, h={h}")
    history = int(np.floor(tau / h))
    rng = np.random.default_rng(seed)
    x = np.empty(history + n_timesteps)
    x[:history] = x0 * np.ones(history) + 0.2 * (rng.random(history) - 0.5)
    xt = x0
    for i in range(history, history + n_timesteps):
        x[i] = xt
        xtau = x[i - history] if tau > 0 else 0.0
        xt = _step(xt, xtau, a, b, n, h)
    return x[history:].reshape(-1, 1)
