"""Recurrent networks: Elman (SimpleRNN) classifiers over sequences.

Chart node: `rnn`. The loop over time is `flax.linen.RNN` (a `lax.scan`), never Python.
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax

CELLS = {
    "simple": nn.SimpleCell,
    "lstm": nn.OptimizedLSTMCell,
    "gru": nn.GRUCell,
}


class RecurrentClassifier(nn.Module):
    """A recurrent layer read at its last step, then a dense readout.

    Reference: Elman, "Finding structure in time", Cognitive Science 14(2), 1990,
    doi:10.1207/s15516709cog1402_1; configured as the MNIST row-sequence classifier of
    Atienza (2018) ch. 1 (seed `003_…`, Fig. 1.5.1: SimpleRNN(256, dropout=0.2), Dense 10).

    Convention: Keras `SimpleRNN` — h_t = tanh(x_t W + h_{t-1} U + b), Glorot-uniform W,
    orthogonal U, zero b, one bias; `dropout` drops *inputs* with one mask shared by every
    time step (Keras's `dropout=` argument, not recurrent dropout).

    Input: `(batch, time, features)` floats. Output: `(batch, num_classes)` logits.
    """

    units: int = 256
    num_classes: int = 10
    cell: str = "simple"
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        # broadcast_dims=(1,): the same input mask at every time step, as Keras does.
        x = nn.Dropout(self.dropout, broadcast_dims=(1,), deterministic=not train)(x)
        cell = CELLS[self.cell](
            features=self.units,
            kernel_init=nn.initializers.glorot_uniform(),
            recurrent_kernel_init=nn.initializers.orthogonal(),
        )
        h = nn.RNN(cell)(x)[:, -1]
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.glorot_uniform())(h)


# Seed `003_…`: SimpleRNN(256) over the 28 rows of an MNIST image (75,530 parameters).
SeedRNN = partial(RecurrentClassifier, units=256, cell="simple", dropout=0.2)
TinyRNN = partial(RecurrentClassifier, units=8, cell="simple", dropout=0.0)
