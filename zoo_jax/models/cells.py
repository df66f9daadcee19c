"""Recurrent cells: Elman, Jordan, LSTM, peephole LSTM, GRU (both resets), mLSTM, ConvLSTM.

Every cell is a `flax.linen.RNNCellBase`: `cell(carry, x_t) -> (carry, y_t)` for one time
step, so `flax.linen.RNN` (a `lax.scan`) runs it over a sequence and
`flax.linen.Bidirectional` runs two of them. Parameters carry Keras 3's names and layouts
(`kernel` `(in, k·units)`, `recurrent_kernel` `(units, k·units)`, `bias`; gate order i, f,
c, o for the LSTMs, z, r, h for the GRU), so Keras weights load by name and the three cells
Keras has (SimpleRNN, LSTM, GRU) equal its layers given the same weights. Initialisers are
Keras's: Glorot-uniform kernels, orthogonal recurrent kernels, zero biases, and a forget-gate
bias of one (`unit_forget_bias`).

References: Elman, Cognitive Science 14(2), 1990; Jordan, ICS report 8604, 1986; Hochreiter &
Schmidhuber, Neural Computation 9(8), 1997, with the forget gate of Gers, Schmidhuber &
Cummins 2000; peepholes: Gers & Schmidhuber, IJCNN 2000; GRU: Cho et al. 2014,
arXiv:1406.1078 (reset before the recurrent product) and cuDNN / Keras (reset after);
multiplicative LSTM: Krause et al. 2016, arXiv:1609.07959; ConvLSTM: Shi et al. 2015,
arXiv:1506.04214.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax import lowering
from zoo_jax.models import blocks

glorot = nn.initializers.glorot_uniform()
orthogonal = nn.initializers.orthogonal()
zeros = nn.initializers.zeros_init()


def _forget_bias_one(units: int, gates: int = 4, forget: int = 1):
    """Keras's `unit_forget_bias`: zeros, ones for the forget gate's slice."""

    def init(key, shape, dtype=jnp.float32):
        return jnp.zeros(shape, dtype).at[forget * units : (forget + 1) * units].set(1.0)

    return init


def _lstm_gates(gate, act, z, carry):
    """The LSTM's step after its products: z = [i, f, c̃, o] pre-activations."""
    c, _ = carry
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = gate(f) * c + gate(i) * act(g)
    h = gate(o) * act(c)
    return (c, h), h


class _Cell(nn.RNNCellBase):
    """What the vector cells share: `units`, a zero initial carry of `carry_parts` arrays."""

    units: int
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    carry_parts = 1  # h; the LSTMs also carry c

    def initialize_carry(self, rng, input_shape):
        shape = (*input_shape[:-1], self.units)
        carry = tuple(jnp.zeros(shape) for _ in range(self.carry_parts))
        return carry if self.carry_parts > 1 else carry[0]

    @property
    def num_feature_axes(self) -> int:
        return 1

    def act(self, x):
        return blocks.activation(self.activation)(x)

    def gate(self, x):
        return blocks.activation(self.recurrent_activation)(x)

    def weights(self, x, gates: int, *, bias: Any = zeros):
        kernel = self.param("kernel", glorot, (x.shape[-1], gates * self.units))
        recurrent = self.param("recurrent_kernel", orthogonal, (self.units, gates * self.units))
        b = self.param("bias", bias, (gates * self.units,))
        return kernel, recurrent, b


class ElmanCell(_Cell):
    """Keras `SimpleRNN`: h_t = tanh(x_t W + h_{t-1} U + b). Carry and output: h."""

    @nn.compact
    def __call__(self, h, x):
        kernel, recurrent, bias = self.weights(x, 1)
        h = self.act(x @ kernel + h @ recurrent + bias)
        return h, h


class JordanCell(_Cell):
    """Jordan (1986): the network's previous *output* y_{t-1}, not its hidden state, feeds
    the hidden layer: h_t = tanh(x_t W + y_{t-1} U + b), y_t = σ_y(h_t V + c) with
    `output_units` outputs (`output_activation`, default tanh). Carry and output: y.
    Parameters: `kernel` (in, units), `recurrent_kernel` (output_units, units), `bias`,
    `output_kernel` (units, output_units), `output_bias`."""

    output_units: int = 0  # 0: as many as units
    output_activation: str = "tanh"

    def initialize_carry(self, rng, input_shape):
        return jnp.zeros((*input_shape[:-1], self.output_units or self.units))

    @nn.compact
    def __call__(self, y, x):
        out = self.output_units or self.units
        kernel = self.param("kernel", glorot, (x.shape[-1], self.units))
        recurrent = self.param("recurrent_kernel", orthogonal, (out, self.units))
        bias = self.param("bias", zeros, (self.units,))
        h = self.act(x @ kernel + y @ recurrent + bias)
        v = self.param("output_kernel", glorot, (self.units, out))
        y = blocks.activation(self.output_activation)(
            h @ v + self.param("output_bias", zeros, (out,))
        )
        return y, y


class LSTMCell(_Cell):
    """Keras `LSTM` (forget gate, no peepholes): [i, f, c̃, o] = x_t W + h_{t-1} U + b;
    c_t = σ(f) c_{t-1} + σ(i) tanh(c̃); h_t = σ(o) tanh(c_t). Carry (c, h); output h."""

    carry_parts = 2

    @nn.compact
    def __call__(self, carry, x, *, sequence: bool = False):
        """One step; with `sequence=True` (see `runs_sequences`) the whole `(batch, time,
        features)` input through `linear_recurrence`: (last carry, (batch, time, units))."""
        kernel, recurrent, bias = self.weights(x, 4, bias=_forget_bias_one(self.units))
        if not sequence:
            return _lstm_gates(
                self.gate, self.act, x @ kernel + carry[-1] @ recurrent + bias, carry
            )
        gate, act = (blocks.activation(n) for n in (self.recurrent_activation, self.activation))
        gates = functools.partial(_lstm_gates, gate, act)
        carry, ys = lowering.linear_recurrence(
            gates, carry, jnp.swapaxes(x, 0, 1), kernel, recurrent, bias
        )
        return carry, jnp.swapaxes(ys, 0, 1)

    @property
    def runs_sequences(self) -> bool:
        """Whether `Recurrent` may call it with `sequence=True`: its activations have no
        parameters (a PReLU has, and would be created inside the custom gradient)."""
        return "prelu" not in (self.activation, self.recurrent_activation)


class PeepholeLSTMCell(_Cell):
    """Gers & Schmidhuber (2000): the gates also see the cell state through diagonal
    "peephole" weights — i and f the previous state c_{t-1}, o the new state c_t:
    i = σ(x W_i + h U_i + p_i ⊙ c_{t-1} + b_i), f likewise with p_f,
    c_t = f c_{t-1} + i tanh(x W_c + h U_c + b_c), o = σ(x W_o + h U_o + p_o ⊙ c_t + b_o),
    h_t = o tanh(c_t). Parameters as `LSTMCell` plus `peepholes` (3, units) for i, f, o."""

    carry_parts = 2

    @nn.compact
    def __call__(self, carry, x):
        c, h = carry
        kernel, recurrent, bias = self.weights(x, 4, bias=_forget_bias_one(self.units))
        peep = self.param("peepholes", glorot, (3, self.units))
        i, f, g, o = jnp.split(x @ kernel + h @ recurrent + bias, 4, axis=-1)
        i = self.gate(i + peep[0] * c)
        f = self.gate(f + peep[1] * c)
        c = f * c + i * self.act(g)
        h = self.gate(o + peep[2] * c) * self.act(c)
        return (c, h), h


class GRUCell(_Cell):
    """Keras `GRU`. [z, r, ĥ] gates; h_t = z h_{t-1} + (1 − z) ĥ.

    `reset_after=True` (Keras's default, cuDNN's): ĥ = tanh(x W_h + b_h + r ⊙ (h U_h + b'_h)),
    `bias` (2, 3·units) holds the input and the recurrent biases. `reset_after=False` (Cho et
    al. 2014): ĥ = tanh(x W_h + (r ⊙ h) U_h + b_h), one bias (3·units,). Carry and output: h.
    """

    reset_after: bool = True

    @nn.compact
    def __call__(self, h, x):
        units = self.units
        kernel = self.param("kernel", glorot, (x.shape[-1], 3 * units))
        recurrent = self.param("recurrent_kernel", orthogonal, (units, 3 * units))
        if self.reset_after:
            bias = self.param("bias", zeros, (2, 3 * units))
            xz, xr, xh = jnp.split(x @ kernel + bias[0], 3, axis=-1)
            hz, hr, hh = jnp.split(h @ recurrent + bias[1], 3, axis=-1)
            z, r = self.gate(xz + hz), self.gate(xr + hr)
            candidate = self.act(xh + r * hh)
        else:
            bias = self.param("bias", zeros, (3 * units,))
            xz, xr, xh = jnp.split(x @ kernel + bias, 3, axis=-1)
            hz, hr = jnp.split(h @ recurrent[:, : 2 * units], 2, axis=-1)
            z, r = self.gate(xz + hz), self.gate(xr + hr)
            candidate = self.act(xh + (r * h) @ recurrent[:, 2 * units :])
        h = z * h + (1 - z) * candidate
        return h, h


class MultiplicativeLSTMCell(_Cell):
    """Krause et al. (2016), eqs. 18–23: an intermediate state m_t = (x_t W_mx) ⊙ (h_{t-1}
    W_mh) replaces h_{t-1} in every LSTM gate, so each input chooses its own recurrent
    transition: [i, f, ĥ, o] = x_t W + m_t U + b; c_t = σ(f) c_{t-1} + σ(i) tanh(ĥ);
    h_t = tanh(c_t) σ(o). Parameters as `LSTMCell` plus `multiplicative_kernel` (in, units)
    and `multiplicative_recurrent_kernel` (units, units). Carry (c, h); output h."""

    carry_parts = 2

    @nn.compact
    def __call__(self, carry, x):
        c, h = carry
        kernel, recurrent, bias = self.weights(x, 4, bias=_forget_bias_one(self.units))
        w_mx = self.param("multiplicative_kernel", glorot, (x.shape[-1], self.units))
        w_mh = self.param("multiplicative_recurrent_kernel", orthogonal, (self.units, self.units))
        m = (x @ w_mx) * (h @ w_mh)
        i, f, g, o = jnp.split(x @ kernel + m @ recurrent + bias, 4, axis=-1)
        c = self.gate(f) * c + self.gate(i) * self.act(g)
        h = self.act(c) * self.gate(o)
        return (c, h), h


class ConvLSTMCell(nn.RNNCellBase):
    """Keras `ConvLSTM2D` (Shi et al. 2015 without their peepholes): the LSTM's products are
    `kernel_size` convolutions ("same" padding, stride 1) over (height, width, channels)
    frames: [i, f, c̃, o] = conv(x_t, W) + conv(h_{t-1}, U) + b. Carry (c, h); output h,
    each `(batch, height, width, filters)`."""

    filters: int
    kernel_size: tuple[int, int] = (3, 3)

    def initialize_carry(self, rng, input_shape):
        shape = (*input_shape[:-1], self.filters)
        return jnp.zeros(shape), jnp.zeros(shape)

    @property
    def num_feature_axes(self) -> int:
        return 3

    @nn.compact
    def __call__(self, carry, x):
        c, h = carry
        kh, kw = self.kernel_size
        n = 4 * self.filters
        kernel = self.param("kernel", glorot, (kh, kw, x.shape[-1], n))
        recurrent = self.param("recurrent_kernel", orthogonal, (kh, kw, self.filters, n))
        bias = self.param("bias", _forget_bias_one(self.filters), (n,))
        conv = lowering.frame_conv2d
        i, f, g, o = jnp.split(conv(x, kernel) + conv(h, recurrent) + bias, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h


CELLS: dict[str, type[nn.RNNCellBase]] = {
    "elman": ElmanCell,
    "jordan": JordanCell,
    "lstm": LSTMCell,
    "peephole_lstm": PeepholeLSTMCell,
    "gru": GRUCell,
    "mlstm": MultiplicativeLSTMCell,
    "conv_lstm": ConvLSTMCell,
}
