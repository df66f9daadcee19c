"""Shallow, kernel and competitive learners: the perceptron, the RBF network, the extreme learning machine, the Kohonen map and the support vector machine.

Chart nodes: `perceptron`, `rbf_network`, `extreme_learning_machine`,
`kohonen_network`, `support_vector_machine`. Most of them do not learn by backpropagation:
each card names its learner (`zoo_jax.learners`): the perceptron rule, a ridge readout solved
in closed form, k-means then ridge, the self-organising map's competitive update. The
models here only compute; what is frozen at random (an ELM's hidden layer, a random-feature
map) sits in the `constants` collection, so `params` (and `count_params`) hold only what is
learned.

Every model takes `(batch, *features)` floats and flattens them; `__call__` gives class
scores `(batch, num_classes)`; a closed-form learner reads `features` and fits the Dense
layer called `readout`.
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo_jax.errors import ZooError
from zoo_jax.models import blocks, checks
from zoo_jax.registry import ZooCard

LECUN_1998 = "LeCun et al. 1998, doi:10.1109/5.726791, Fig. 9"  # the MNIST error table


def _flatten(x: jax.Array, model: nn.Module) -> jax.Array:
    """`(batch, features)` floats (`models.checks`: uint8 pixels are refused, not rescaled)."""
    name = type(model).__name__
    return checks.flatten(checks.floats(x, name), name)


def _positive(model: str, **values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ZooError(f"{model} {key} must be > 0, got {value!r}")


class Perceptron(nn.Module):
    """Rosenblatt's perceptron, multi-class: one weight vector per class, the class of the
    largest score wins (Rosenblatt, "The perceptron: a probabilistic model for information
    storage and organization in the brain", Psychological Review 65 (1958),
    doi:10.1037/h0042519; the multi-class form of Collins 2002 / Crammer & Singer 2003).

    Parameters `kernel` `(features, classes)` and `bias`, both starting at zero; the learner
    (`learners.PerceptronLearner`) changes them only on mistakes.
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = _flatten(x, self)
        kernel = self.param("kernel", nn.initializers.zeros, (x.shape[-1], self.num_classes))
        bias = self.param("bias", nn.initializers.zeros, (self.num_classes,))
        return x @ kernel + bias


class FeatureReadout(nn.Module):
    """A feature map `hidden` (frozen at random or learned) and a Dense `readout` of it: the
    form the closed-form learners fit (`learners.closed_form`). A subclass defines
    `hidden_layer()`, the module to call `hidden`, and may check its attributes in
    `check()`."""

    def check(self) -> None:
        pass

    def setup(self):
        self.check()
        self.hidden = self.hidden_layer()
        self.readout = nn.Dense(self.num_classes)

    def features(self, x: jax.Array) -> jax.Array:
        return self.hidden(x)

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        return self.readout(self.features(x))


class ExtremeLearningMachine(FeatureReadout):
    """A random, frozen hidden layer and a linear readout solved by ridge regression (Huang,
    Zhu & Siew, "Extreme learning machine: theory and applications", Neurocomputing 70
    (2006), doi:10.1016/j.neucom.2005.12.126).

    Hidden layer `g(x W + b)`, `W ~ N(0, input_scale² / features)`, `b ~ N(0, 1)`, in the
    `constants` collection (the paper draws uniform weights in [-1, 1]; the scale here
    follows the fan-in, and `input_scale` is chosen on a validation split: at 1 the sigmoid
    stays in its linear part and the machine is little better than a linear model).
    `ridge` is λ of the readout's solve (`learners.RidgeLearner`).
    """

    units: int = 1000
    num_classes: int = 10
    activation: str = "sigmoid"
    input_scale: float = 10.0
    ridge: float = 1e-3

    def check(self) -> None:
        _positive("extreme_learning_machine", units=self.units, ridge=self.ridge)

    def hidden_layer(self) -> nn.Module:
        return RandomLayer(self.units, self.activation, self.input_scale)


class RandomLayer(nn.Module):
    """`activation(x W + b)` with W ~ N(0, scale² / fan-in), b ~ N(0, 1), both frozen
    (`constants`): an ELM's hidden layer."""

    units: int
    activation: str = "sigmoid"
    scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _flatten(x, self)
        d = x.shape[-1]
        normal = lambda shape: jax.random.normal(self.make_rng("params"), shape)
        w = self.variable(
            "constants", "kernel", lambda: self.scale / d**0.5 * normal((d, self.units))
        )
        b = self.variable("constants", "bias", lambda: normal((self.units,)))
        return blocks.activation(self.activation)(
            jnp.matmul(x, w.value, precision="highest") + b.value
        )


class RBFNetwork(FeatureReadout):
    """Radial basis function network: Gaussian units around `centres` points, a linear
    readout (Broomhead & Lowe, "Multivariable functional interpolation and adaptive
    networks", Complex Systems 2 (1988)).

    φ_k(x) = exp(−‖x − c_k‖² / (2σ²)) with one width σ = exp(`log_width`). The learner
    (`learners.KMeansRidgeLearner`) places the centres by k-means, sets σ to `width_scale` ×
    the mean distance from a centre to its nearest neighbour, and solves the readout by ridge
    regression; all three are `params`, so the network can then be fine-tuned end to end by
    gradient descent. `width_scale` is chosen on a validation split (`experiments/shallow.py`):
    textbook rules such as σ = d_max/√(2K) are far too narrow on MNIST.
    """

    centres: int = 1000
    num_classes: int = 10
    width_scale: float = 1.0
    ridge: float = 1e-3

    def check(self) -> None:
        _positive("rbf_network", centres=self.centres, width_scale=self.width_scale,
                  ridge=self.ridge)  # fmt: skip

    def hidden_layer(self) -> nn.Module:
        return GaussianUnits(self.centres)


class GaussianUnits(nn.Module):
    """exp(−‖x − c_k‖² / (2σ²)) for `units` centres c_k (`centres`) and σ = exp(`log_width`)."""

    units: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _flatten(x, self)
        c = self.param("centres", nn.initializers.zeros, (self.units, x.shape[-1]))
        log_width = self.param("log_width", nn.initializers.zeros, ())
        return jnp.exp(-squared_distances(x, c) / (2 * jnp.exp(2 * log_width)))


def squared_distances(x: jax.Array, c: jax.Array) -> jax.Array:
    """‖x_i − c_k‖² `(n, k)` by one matmul (clipped at 0 against rounding)."""
    d2 = (
        jnp.sum(x * x, -1, keepdims=True)
        - 2 * jnp.matmul(x, c.T, precision="highest")
        + jnp.sum(c * c, -1)
    )
    return jnp.maximum(d2, 0.0)


class KohonenMap(nn.Module):
    """A self-organising map: `rows` × `cols` nodes on a rectangular grid, each with a
    codebook vector (Kohonen, "Self-organized formation of topologically correct feature
    maps", Biological Cybernetics 43 (1982), doi:10.1007/BF00337288).

    `params["codebook"]` `(rows · cols, features)`, node k at grid position
    `(k // cols, k % cols)`. `__call__` gives the negative distances to the nodes (the best
    matching unit scores highest); `learners.SOMLearner` trains it and labels the nodes for
    classification. Two training options live here so a run can set them: `sigma`, the
    neighbourhood's starting radius in grid steps (None: max(rows, cols) / 4), and
    `batch_map` (Kohonen's batch map instead of the online rule).
    """

    rows: int = 10
    cols: int = 10
    sigma: float | None = None
    batch_map: bool = False

    @property
    def radius(self) -> float:
        return self.sigma if self.sigma is not None else max(self.rows, self.cols) / 4

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if self.rows < 1 or self.cols < 1 or self.rows * self.cols < 2:
            raise ZooError(
                f"kohonen_network needs a map of 2 nodes or more, got {self.rows}x{self.cols}"
            )
        if self.sigma is not None:
            _positive("kohonen_network", sigma=self.sigma)
        x = _flatten(x, self)
        codebook = self.param(
            "codebook", nn.initializers.uniform(1.0), (self.rows * self.cols, x.shape[-1])
        )
        return -jnp.sqrt(squared_distances(x, codebook))

    @nn.nowrap
    def grid(self) -> jax.Array:
        """The nodes' grid coordinates `(rows · cols, 2)`."""
        r, c = jnp.meshgrid(jnp.arange(self.rows), jnp.arange(self.cols), indexing="ij")
        return jnp.stack([r.ravel(), c.ravel()], -1).astype(jnp.float32)


class RandomFeatureSVM(FeatureReadout):
    """A Gaussian-kernel SVM in the primal: random Fourier features (Rahimi & Recht, "Random
    features for large-scale kernel machines", NeurIPS 2007) and a linear layer trained on the
    multi-class hinge loss of Crammer & Singer (2001) (`categorical_hinge`), the path that
    scales to all 60,000 images (Cortes & Vapnik, "Support-vector networks", Machine Learning
    20 (1995), doi:10.1007/BF00994018).

    z(x) = √(2/D) cos(x W + b), W ~ N(0, 2γ), b ~ U[0, 2π), so z(x)·z(y) ≈ exp(−γ‖x − y‖²),
    the kernel of `learners.kernel.fit_kernel_svm` with the same γ. W and b are `constants`.
    """

    features_dim: int = 4096
    gamma: float = 0.02
    num_classes: int = 10

    def check(self) -> None:
        _positive("support_vector_machine", features_dim=self.features_dim, gamma=self.gamma)

    def hidden_layer(self) -> nn.Module:
        return RandomFourierFeatures(self.features_dim, self.gamma)


class RandomFourierFeatures(nn.Module):
    """√(2/D) cos(x W + b), W ~ N(0, 2γ), b ~ U[0, 2π), frozen (`constants`)."""

    units: int
    gamma: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _flatten(x, self)
        key = lambda: self.make_rng("params")
        w = self.variable(
            "constants", "kernel",
            lambda: (2 * self.gamma) ** 0.5 * jax.random.normal(key(), (x.shape[-1], self.units)),
        )  # fmt: skip
        b = self.variable(
            "constants", "bias",
            lambda: jax.random.uniform(key(), (self.units,), maxval=2 * jnp.pi),
        )  # fmt: skip
        z = jnp.matmul(x, w.value, precision="highest") + b.value
        return (2.0 / self.units) ** 0.5 * jnp.cos(z)


# --- the cards of this family (zoo_jax.registry collects them) ------------------------------------

# What every card of this family shares: flattened 28×28 images.
_card = partial(ZooCard, family="shallow", input_shape=(784,),
                input_layout="N,F (flattened 28x28 image)")  # fmt: skip
CARDS = [
    _card(
        name="perceptron",
        chart_node="perceptron",
        reference="Rosenblatt 1958, doi:10.1037/h0042519",
        build=Perceptron,
        learner="perceptron",
        epochs=10,
        batch_size=100,
        description="multi-class perceptron rule (mistake-driven), last iterate",
    ),
    _card(
        name="averaged_perceptron",
        chart_node="perceptron",
        reference="Freund & Schapire 1999, doi:10.1023/A:1007662407062; Collins 2002",
        build=Perceptron,
        learner="averaged_perceptron",
        epochs=10,
        batch_size=100,
        description="the perceptron rule, predicting with the average of every iterate",
    ),
    _card(
        name="extreme_learning_machine",
        chart_node="extreme_learning_machine",
        reference="Huang, Zhu & Siew 2006, doi:10.1016/j.neucom.2005.12.126",
        build=ExtremeLearningMachine,
        learner="ridge",
        epochs=1,
        batch_size=500,
        description="1,000 random sigmoid units, ridge readout",
        test_overrides={"units": 64},
    ),
    _card(
        name="rbf_network",
        chart_node="rbf_network",
        reference=f"Broomhead & Lowe 1988; {LECUN_1998} (RBF network: 3.6 %)",
        build=RBFNetwork,
        learner="kmeans_ridge",
        epochs=4,
        batch_size=500,
        description="1,000 Gaussian units by k-means (3 epochs), ridge readout (1 epoch)",
        test_overrides={"centres": 32},
    ),
    _card(
        name="kohonen_network",
        chart_node="kohonen_network",
        reference="Kohonen 1982, doi:10.1007/BF00337288",
        build=KohonenMap,
        learner="som",
        learning_rate=0.5,
        epochs=2,
        batch_size=100,
        description="10x10 self-organising map, online updates, nodes labelled by majority",
        test_overrides={"rows": 3, "cols": 4},
    ),
    _card(
        name="support_vector_machine",
        chart_node="support_vector_machine",
        reference="Cortes & Vapnik 1995, doi:10.1007/BF00994018; Rahimi & Recht 2007",
        build=RandomFeatureSVM,
        loss="categorical_hinge",
        learning_rate=1e-3,
        epochs=10,
        description="Gaussian-kernel SVM: 4,096 random Fourier features, Crammer-Singer hinge",
        test_overrides={"features_dim": 64},
    ),
]
