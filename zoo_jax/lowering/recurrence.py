"""A recurrent layer's loop with a gradient that does its weight products after the loop."""

from __future__ import annotations

import functools

import jax
from jax import lax

from zoo_jax.lowering.backend import lowering_is_plain


def _hidden(carry):
    """h, the part of a carry the recurrent kernel multiplies (the last one)."""
    return carry[-1] if isinstance(carry, tuple) else carry


def linear_recurrence(gates, carry, xs, kernel, recurrent, bias):
    """A cell whose step is `carry, y = gates(x_t W + h_{t-1} U + b, carry)` (h the carry's
    last part, `gates` element-wise and free of parameters) over time-major `xs` (time,
    batch, features). Returns (the last carry, every y stacked on the time axis).

    The function of `lax.scan` over the step, with a cheaper gradient: autodiff of the scan
    adds x_tᵀ δ_t and h_{t-1}ᵀ δ_t into the weights' gradients at every step; here the
    backward loop carries only δ back through time, and W's, U's, b's and the inputs'
    gradients are one product each after it. Under `plain_lowering` it is the plain scan
    (so XLA counts one step's products, as for any scan). JAX cannot differentiate the fast
    form in forward mode (`jax.jvp`); its gradient is tested against autodiff's of the scan.
    """
    if lowering_is_plain():
        return _recurrence_forward(gates, carry, xs, kernel, recurrent, bias)[0]
    return _linear_recurrence(gates, carry, xs, kernel, recurrent, bias)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _linear_recurrence(gates, carry, xs, kernel, recurrent, bias):
    return _recurrence_forward(gates, carry, xs, kernel, recurrent, bias)[0]


def _recurrence_forward(gates, carry, xs, kernel, recurrent, bias):
    def step(carry, x_t):
        z = x_t @ kernel + _hidden(carry) @ recurrent + bias
        new_carry, y = gates(z, carry)
        return new_carry, (y, z, carry)

    last, (ys, zs, carries) = lax.scan(step, carry, xs)
    return (last, ys), (xs, zs, carries, kernel, recurrent)


def _recurrence_backward(gates, residuals, cotangents):
    xs, zs, carries, kernel, recurrent = residuals
    d_last, d_ys = cotangents
    # Uᵀ copied once (the barrier keeps XLA from folding the transpose back into the
    # product): each step multiplies by a plain operand, not a transposed one.
    recurrent_t = lax.optimization_barrier(recurrent.T)

    def step(d_carry, inputs):
        d_y, z, carry = inputs
        _, gates_vjp = jax.vjp(gates, z, carry)
        d_z, d_previous = gates_vjp((d_carry, d_y))
        d_h = _hidden(d_previous) + d_z @ recurrent_t
        d_previous = (*d_previous[:-1], d_h) if isinstance(d_previous, tuple) else d_h
        return d_previous, d_z

    d_carry, d_zs = lax.scan(step, d_last, (d_ys, zs, carries), reverse=True)
    d_z = d_zs.reshape(-1, d_zs.shape[-1])
    d_kernel = xs.reshape(-1, xs.shape[-1]).T @ d_z
    d_recurrent = _hidden(carries).reshape(-1, recurrent.shape[0]).T @ d_z
    d_xs = (d_z @ kernel.T).reshape(xs.shape)
    return d_carry, d_xs, d_kernel, d_recurrent, d_z.sum(0)


_linear_recurrence.defvjp(_recurrence_forward, _recurrence_backward)
