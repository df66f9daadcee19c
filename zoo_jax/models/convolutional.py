"""Convolutional networks: the deep convolutional network (DCN) of the zoo chart.

Chart node: `deep_convolutional_network` — stacks of convolution → ReLU → (pooling), then a
dense head. Reference: LeCun et al., "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998, doi:10.1109/5.726791.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax

from zoo_jax.models import layers


class DeepConvNet(nn.Module):
    """Conv–activation–pool stacks, flatten, dense hidden layers, dropout, dense readout.

    `features[i]` filters of `kernel_size`×`kernel_size` per convolution; a 2×2 max-pool
    (stride 2) follows convolution `i` when `pool_after[i]`. Dropout sits right before the
    readout, as in both seed networks. Initialisers default to Keras's (Glorot-uniform,
    zero bias); the TensorFlow-tutorial CNN overrides them.

    Input: `(batch, height, width, channels)` floats (NHWC).
    Output: `(batch, num_classes)` logits.
    """

    features: Sequence[int] = (64, 64, 64)
    kernel_size: int = 3
    padding: str = "VALID"
    pool_after: Sequence[bool] = (True, True, False)
    hidden: Sequence[int] = ()
    num_classes: int = 10
    dropout: float = 0.2
    activation: str = "relu"  # any element-wise name, or "prelu"
    kernel_init: nn.initializers.Initializer = nn.initializers.glorot_uniform()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if len(self.pool_after) != len(self.features):
            raise ValueError("pool_after needs one entry per convolution")
        init = {"kernel_init": self.kernel_init, "bias_init": self.bias_init}
        for width, pool in zip(self.features, self.pool_after, strict=True):
            k = (self.kernel_size, self.kernel_size)
            x = layers.Conv2D(width, k, padding=self.padding, **init)(x)
            x = layers.activation(self.activation)(x)
            if pool:
                x = layers.max_pool(x, (2, 2), padding=self.padding)
        x = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            x = layers.activation(self.activation)(nn.Dense(width, **init)(x))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, **init)(x)


# Atienza (2018) ch. 1, seed `003_…` Fig. 1.4.2: three 3×3/64 convolutions (VALID), 2×2
# pools after the first two, dropout 0.2, dense 10 (80,266 parameters).
SeedCNN = partial(DeepConvNet, features=(64, 64, 64), pool_after=(True, True, False))

# TensorFlow "Deep MNIST for experts" tutorial, seed `004_…`: 5×5/32 and 5×5/64 SAME
# convolutions, SAME 2×2 pools, FC 1024, dropout 0.5 (keep_prob 0.5), readout; weights
# truncated-normal(σ=0.1), biases 0.1 (3,274,634 parameters).
TutorialCNN = partial(
    DeepConvNet,
    features=(32, 64),
    kernel_size=5,
    padding="SAME",
    pool_after=(True, True),
    hidden=(1024,),
    dropout=0.5,
    kernel_init=nn.initializers.truncated_normal(stddev=0.1),
    bias_init=nn.initializers.constant(0.1),
)

TinyCNN = partial(DeepConvNet, features=(4, 4), pool_after=(True, False), dropout=0.0)
