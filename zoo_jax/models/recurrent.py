"""Recurrent layers and classifiers over sequences, built from the cells of `cells.py`.

Chart nodes: `rnn`, `jordan_network`, `lstm`, `peephole_lstm`, `gru`,
`multiplicative_lstm`, `stacked_lstm`. The loop over time is one `nn.scan` (`lax.scan`),
never Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.data import text
from zoo_jax.errors import UnknownNameError, ZooError
from zoo_jax.models import blocks, cells, checks
from zoo_jax.registry import SEED_003, ZooCard


def _step(cell, carry, inputs, constants, zero_output_for_mask):
    x, keep = inputs
    new_carry, y = cell(carry, x) if constants is None else cell(carry, x, constants)
    if keep is None:  # no mask: every step counts, and the loop body stays free of selects
        return new_carry, y
    # A masked step (keep False) leaves the state as it was and outputs the previous output,
    # which, as Keras assumes, is the carry's last part (h; Jordan's y), or zeros.
    where = lambda n, o: jnp.where(keep.reshape(-1, *[1] * (n.ndim - 1)), n, o)
    previous = carry[-1] if isinstance(carry, tuple) else carry
    y = where(y, jnp.zeros_like(y) if zero_output_for_mask else previous)
    return jax.tree.map(where, new_carry, carry), y


class Recurrent(nn.Module):
    """The textbooks' RNN base layer: a cell scanned over `(batch, time, features)`.

    What Keras's `RNN` has: `initial_state` (the cell's carry; default zeros), `constants`
    passed to every call of the cell (`cell(carry, x, constants)`, e.g. an encoder's outputs
    for attention), a `(batch, time)` boolean `mask` (a masked step leaves the state as it was
    and outputs the previous output, or zeros with `zero_output_for_mask`), the whole sequence
    or the last output (`return_sequences`), the final carry too (`return_state`) and
    `go_backwards` (outputs in the reversed order, as Keras returns them). The loop is one
    `lax.scan` (`nn.scan`), parameters shared across steps. Without a mask or constants, a
    cell with `runs_sequences` (the LSTM) is given the whole sequence and runs that scan
    itself, with a gradient that is cheaper to compute (`lowering.linear_recurrence`); the
    parameters and the function are the same. Stacking is a sequence of these;
    `bidirectional` wraps two.
    """

    cell: nn.RNNCellBase
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    zero_output_for_mask: bool = False

    @nn.compact
    def __call__(self, x, *, mask=None, initial_state=None, constants=None):
        if x.ndim < 3:
            raise ZooError(f"a recurrent layer takes (batch, time, features), got shape {x.shape}")
        batch, steps = x.shape[:2]
        keep = None if mask is None else jnp.asarray(mask, bool)
        if keep is not None and keep.shape != (batch, steps):
            raise ZooError(f"mask must be (batch, time) = {(batch, steps)}, got {keep.shape}")
        if self.go_backwards:
            x = x[:, ::-1]
            keep = None if keep is None else keep[:, ::-1]
        carry = initial_state
        if carry is None:
            carry = self.cell.initialize_carry(jax.random.PRNGKey(0), x[:, 0].shape)
        own_loop = getattr(self.cell, "runs_sequences", False)
        if keep is None and constants is None and own_loop:
            carry, ys = self.cell(carry, x, sequence=True)  # its own loop and gradient
        else:
            scan = nn.scan(
                _step,
                variable_broadcast="params",
                split_rngs={"params": False, "dropout": True},
                in_axes=(1, nn.broadcast, nn.broadcast),
                out_axes=1,
            )
            carry, ys = scan(self.cell, carry, (x, keep), constants, self.zero_output_for_mask)
        out = ys if self.return_sequences else ys[:, -1]
        return (out, carry) if self.return_state else out


class Bidirectional(nn.Module):
    """Keras's `Bidirectional`: the forward layer and a `go_backwards` copy of the backward
    one, whose sequence output is flipped back to time order, merged by `merge` (concat,
    sum, mul or ave)."""

    forward: Recurrent
    backward: Recurrent
    merge: str = "concat"

    @nn.compact
    def __call__(self, x, *, mask=None):
        forward = self.forward.clone(parent=self, name="forward_layer", return_state=False)
        backward = self.backward.clone(
            parent=self, name="backward_layer", go_backwards=True, return_state=False
        )
        y_f, y_b = forward(x, mask=mask), backward(x, mask=mask)
        if forward.return_sequences:
            y_b = y_b[:, ::-1]
        merges = {
            "concat": lambda a, b: jnp.concatenate([a, b], -1),
            "sum": jnp.add,
            "mul": jnp.multiply,
            "ave": lambda a, b: (a + b) / 2,
        }
        if self.merge not in merges:
            raise ZooError(f"merge must be one of {', '.join(merges)}, got {self.merge!r}")
        return merges[self.merge](y_f, y_b)


class RecurrentClassifier(nn.Module):
    """Recurrent layers (stacked, optionally bidirectional) read at the last step, then a
    dense readout.

    Reference: Elman, "Finding structure in time", Cognitive Science 14(2), 1990,
    doi:10.1207/s15516709cog1402_1; the seed configuration is the MNIST row-sequence
    classifier of Atienza (2018) ch. 1 (Fig. 1.5.1: SimpleRNN(256,
    dropout=0.2), Dense 10). `cell` is a name of `cells.CELLS` (`cell_options` its fields,
    e.g. `{"reset_after": false}` for Cho's GRU); `units` an int or one int per stacked
    layer (every layer but the last returns its sequence to the next, as a stacked Keras
    LSTM does).

    Convention: Keras — Glorot-uniform kernels, orthogonal recurrent kernels, zero biases
    (forget gate one); `dropout` drops *inputs* with one mask shared by every time step
    (Keras's `dropout=` argument, not recurrent dropout).

    Input: `(batch, time, features)` floats. Output: `(batch, num_classes)` logits.
    """

    units: int | Sequence[int] = 256
    num_classes: int = 10
    cell: str = "elman"
    cell_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    bidirectional: bool = False
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if self.cell not in cells.CELLS:
            raise UnknownNameError("cell", self.cell, list(cells.CELLS))
        x = checks.feature_sequences(x, f"{self.cell} classifier")
        # broadcast_dims=(1,): the same input mask at every time step, as Keras does.
        x = blocks.Dropout(self.dropout, broadcast_dims=(1,), deterministic=not train)(x)
        sizes = [self.units] if isinstance(self.units, int) else list(self.units)
        if not sizes:  # the readout would classify every time step
            raise ZooError(f"{self.cell} classifier units must name at least one layer, got []")
        for depth, units in enumerate(sizes):
            layer = partial(self._layer, units, return_sequences=depth < len(sizes) - 1)
            x = Bidirectional(layer(), layer())(x) if self.bidirectional else layer()(x)
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.glorot_uniform())(x)

    def _layer(self, units: int, *, return_sequences: bool) -> Recurrent:
        cell = cells.CELLS[self.cell](units, **self.cell_options)
        return Recurrent(cell, return_sequences=return_sequences)


class ConvLSTMClassifier(nn.Module):
    """A ConvLSTM (Shi et al. 2015, arXiv:1506.04214; Keras `ConvLSTM2D`) over a sequence of
    frames, its last output flattened into a dense readout. The recurrent state is an image:
    each step convolves the frame and the previous state instead of multiplying vectors.

    Input: `(batch, time, height, width, channels)`. The registered training configuration
    reads an MNIST image as 4 frames of 7 × 28 pixel strips, top to bottom.
    """

    filters: int = 16
    kernel_size: tuple[int, int] = (3, 3)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if x.ndim != 5:
            raise ZooError(f"ConvLSTM takes (batch, time, height, width, channels), got {x.shape}")
        h = Recurrent(cells.ConvLSTMCell(self.filters, tuple(self.kernel_size)))(x)
        flat = h.reshape(len(h), -1)
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.glorot_uniform())(flat)


class RecurrentLM(nn.Module):
    """A character-level language model: embedding → stacked recurrent layers (every one
    returning its sequence) → a dense readout of next-token logits at every position
    (Graves 2013, arXiv:1308.0850; Karpathy's char-rnn). `cell` names a cell of
    `cells.CELLS`; Jordan's cell feeds back its own output layer (`output_units` = units).

    Input: `(batch, time)` token ids. Output: `(batch, time, vocab)` logits, position t
    predicting token t + 1. Dropout (between layers and before the readout) as Zaremba et
    al. 2014 use it, on non-recurrent connections only.
    """

    vocab: int
    units: int | Sequence[int] = 256
    cell: str = "lstm"
    cell_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    embed_dim: int = 64
    dropout: float = 0.0

    @nn.compact
    def __call__(self, ids: jax.Array, *, train: bool = False) -> jax.Array:
        if self.cell not in cells.CELLS:
            raise UnknownNameError("cell", self.cell, list(cells.CELLS))
        x = nn.Embed(self.vocab, self.embed_dim)(checks.token_ids(ids, "a language model"))
        for units in [self.units] if isinstance(self.units, int) else list(self.units):
            x = Recurrent(cells.CELLS[self.cell](units, **self.cell_options),
                          return_sequences=True)(x)  # fmt: skip
            x = blocks.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.vocab, kernel_init=nn.initializers.glorot_uniform())(x)


# Seed `003_…`: SimpleRNN(256) over the 28 rows of an MNIST image (75,530 parameters).
SeedRNN = partial(RecurrentClassifier, units=256, cell="elman", dropout=0.2)


# --- the cards of this family (zoo_jax.registry collects them) ------------------------------------

_TOKENS = "N,T token ids"
_CHAR_LEN = 128  # characters per training window (truncated BPTT length)


def _recurrent(name, node, cell, reference, description, **kw) -> ZooCard:
    """A sequential-MNIST classifier of the recurrent zoo: the seed's SimpleRNN(256,
    dropout 0.2) + Dense 10 with another cell (Atienza's ch. 1 swaps in LSTM and GRU so)."""
    return ZooCard(
        name=name,
        family="recurrent",
        chart_node=node,
        reference=reference,
        build=partial(RecurrentClassifier, cell=cell, **kw.pop("model", {})),
        input_shape=(28, 28),
        input_layout="N,T,F (28 rows of 28 pixels)",
        description=description,
        test_overrides={"units": 8, "dropout": 0.0, **kw.pop("test_overrides", {})},
        **kw,
    )


_HOCHREITER = "Hochreiter & Schmidhuber 1997, doi:10.1162/neco.1997.9.8.1735"
CARDS = [
    ZooCard(
        name="rnn",
        family="recurrent",
        chart_node="rnn",
        reference=f"Elman 1990, doi:10.1207/s15516709cog1402_1; {SEED_003}",
        build=SeedRNN,
        input_shape=(28, 28),
        input_layout="N,T,F (28 rows of 28 pixels)",
        optimizer="sgd",
        epochs=20,
        description="SimpleRNN(256, dropout 0.2) over the 28 image rows, dense 10",
        test_overrides={"units": 8, "dropout": 0.0},
    ),
    ZooCard(
        name="char_rnn", family="recurrent", chart_node="lstm",
        reference="Graves 2013, arXiv:1308.0850; Karpathy's char-rnn (2015)",
        build=partial(RecurrentLM, vocab=text.CHAR_VOCAB_SIZE),
        input_shape=(_CHAR_LEN,), input_layout=_TOKENS, input_kind="tokens",
        num_classes=text.CHAR_VOCAB_SIZE, dataset="chars", learning_rate=3e-3, epochs=20,
        batch_size=32,
        description="character language model: embed 64, a recurrent layer (cell option: "
                    "lstm, elman, jordan, peephole_lstm, gru, mlstm) of 256, next-char readout",
        test_overrides={"units": 8, "embed_dim": 4},
    ),
    _recurrent("jordan", "jordan_network", "jordan", "Jordan 1986, ICS report 8604",
               "Jordan network: the previous output feeds the hidden layer (256)"),
    _recurrent("lstm", "lstm", "lstm", f"{_HOCHREITER}; Gers et al. 2000; {SEED_003}",
               "LSTM(256, dropout 0.2) over the 28 image rows, dense 10 (Keras LSTM)"),
    _recurrent("peephole_lstm", "peephole_lstm", "peephole_lstm",
               "Gers & Schmidhuber 2000, doi:10.1109/IJCNN.2000.861302",
               "LSTM(256) whose gates also see the cell state (peepholes)"),
    _recurrent("gru", "gru", "gru", f"Cho et al. 2014, arXiv:1406.1078; {SEED_003}",
               "GRU(256, dropout 0.2), Keras's reset-after form (cuDNN's)"),
    _recurrent("gru_cho", "gru", "gru", "Cho et al. 2014, arXiv:1406.1078",
               "GRU(256) with the reset gate before the recurrent product (the paper's)",
               model={"cell_options": {"reset_after": False}}),
    _recurrent("mlstm", "multiplicative_lstm", "mlstm", "Krause et al. 2016, arXiv:1609.07959",
               "multiplicative LSTM(256): input-dependent recurrent transitions"),
    _recurrent("stacked_lstm", "stacked_lstm", "lstm", f"{_HOCHREITER}; Graves et al. 2013",
               "two stacked LSTM(256) layers, the first returning its sequence",
               model={"units": (256, 256)}, test_overrides={"units": (8, 8)}),
    _recurrent("bilstm", "lstm", "lstm", "Schuster & Paliwal 1997; Graves & Schmidhuber 2005",
               "bidirectional LSTM(128 + 128), outputs concatenated", model={"units": 128,
               "bidirectional": True}),
    ZooCard(
        name="conv_lstm", family="recurrent", chart_node="lstm",
        reference="Shi et al. 2015, arXiv:1506.04214 (Keras ConvLSTM2D)",
        build=ConvLSTMClassifier, input_shape=(4, 7, 28, 1),
        input_layout="N,T,H,W,C (an image as 4 frames of 7x28 strips)",
        epochs=5,
        description="ConvLSTM(16 filters, 3x3) over 4 frames, last state flattened, dense 10",
        test_overrides={"filters": 2},
    ),
]  # fmt: skip
