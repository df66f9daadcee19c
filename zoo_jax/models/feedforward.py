"""Feed-forward networks: the multilayer perceptron / deep feed-forward net.

Chart nodes: `feed_forward` (one hidden layer: LeCun et al. 1998's 784-800-10 row) and
`deep_feed_forward` (two or more: the seed's 784-256-256-10).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax

from zoo_jax.models import blocks, checks
from zoo_jax.registry import SEED_003, ZooCard


class MLP(nn.Module):
    """Multilayer perceptron: Dense → activation → dropout per hidden layer, Dense readout.

    Reference: Rumelhart, Hinton & Williams, "Learning representations by back-propagating
    errors", Nature 323 (1986), doi:10.1038/323533a0; configured as the MNIST classifier of
    Atienza, *Advanced Deep Learning with Keras* (2018), ch. 1 (Fig. 1.3.3).

    Convention: Keras `Dense` defaults (Glorot-uniform kernels, zero biases). The readout
    returns logits; the softmax of the Keras model is folded into the cross-entropy loss.
    `activation` is any name of `zoo_jax.activations.NAMES`; "maxout" makes each hidden layer
    a `blocks.Maxout` of `maxout_pieces` pieces (it replaces the Dense layer).

    Input: `(batch, *features)` floats, flattened to `(batch, prod(features))`.
    Output: `(batch, num_classes)` logits.
    """

    hidden: Sequence[int] = (256, 256)
    num_classes: int = 10
    activation: str = "relu"
    dropout: float = 0.45
    maxout_pieces: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        dense = partial(nn.Dense, kernel_init=nn.initializers.glorot_uniform())
        x = checks.floats(x, "MLP").reshape((x.shape[0], -1))
        for width in self.hidden:
            if self.activation == "maxout":
                x = blocks.Maxout(width, self.maxout_pieces)(x)
            else:
                x = blocks.activation(self.activation)(dense(width)(x))
            x = blocks.Dropout(self.dropout, deterministic=not train)(x)
        return dense(self.num_classes)(x)


# The seed's classifier: 784-256-256-10, ReLU, dropout 0.45 (269,322 parameters).
SeedMLP = partial(MLP, hidden=(256, 256), dropout=0.45)


# --- the cards of this family (zoo_jax.registry collects them) ------------------------------------

CARDS = [
    ZooCard(
        name="mlp",
        family="feedforward",
        chart_node="deep_feed_forward",
        reference=f"Rumelhart et al. 1986, doi:10.1038/323533a0; {SEED_003}",
        build=SeedMLP,
        input_shape=(784,),
        input_layout="N,F (flattened 28x28 image)",
        epochs=20,
        description="784-256-256-10 MLP, ReLU, dropout 0.45",
        test_overrides={"hidden": (16,), "dropout": 0.0},
    ),
    ZooCard(
        name="feed_forward",
        family="feedforward",
        chart_node="feed_forward",
        reference=(
            "Rumelhart et al. 1986, doi:10.1038/323533a0; LeCun et al. 1998, "
            "doi:10.1109/5.726791, Fig. 9 (2-layer NN, 800 HU, cross-entropy: 1.6 %)"
        ),
        build=partial(MLP, hidden=(800,), dropout=0.0),
        input_shape=(784,),
        input_layout="N,F (flattened 28x28 image)",
        epochs=20,
        description="784-800-10, ReLU, cross-entropy: the one-hidden-layer net",
        test_overrides={"hidden": (16,)},
    ),
]
