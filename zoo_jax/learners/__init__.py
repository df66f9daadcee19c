"""How each kind of model learns: one protocol (`base.Learner`), one file per kind.

A card names its learner by a key of `LEARNERS`; `get` looks it up. Adding a kind of
learning rule adds its file here and one line below.
"""

from zoo_jax.errors import UnknownNameError
from zoo_jax.learners.adversarial import GAN_LOSSES, AdversarialLearner, TextToImageLearner
from zoo_jax.learners.autoencoders import DCIGNLearner, LayerwiseLearner, ReconstructionLearner
from zoo_jax.learners.base import (
    COMPUTE_DTYPES,
    Learner,
    LearnerDefaults,
    apply_gradients,
    init_players,
    mean_over,
    new_state,
    sum_over,
)
from zoo_jax.learners.capsules import CapsuleLearner
from zoo_jax.learners.captioning import CaptionLearner
from zoo_jax.learners.closed_form import KMeansRidgeLearner, RidgeLearner
from zoo_jax.learners.competitive import SOMLearner
from zoo_jax.learners.decoder import ClassDecoderLearner, shift_images
from zoo_jax.learners.energy import (
    AssociativeMemoryLearner,
    BoltzmannLearner,
    ContrastiveDivergenceLearner,
    DBNLearner,
    MarkovCountLearner,
)
from zoo_jax.learners.gradient import AUX_WEIGHT, GradientLearner
from zoo_jax.learners.memory import BitSequenceLearner, LinearStartLearner
from zoo_jax.learners.perceptron import AveragedPerceptronLearner, PerceptronLearner
from zoo_jax.learners.translation import TranslationLearner

LEARNERS: dict[str, type] = {
    "gradient": GradientLearner,
    "class_decoder": ClassDecoderLearner,
    "translation": TranslationLearner,
    "perceptron": PerceptronLearner,
    "averaged_perceptron": AveragedPerceptronLearner,
    "ridge": RidgeLearner,
    "kmeans_ridge": KMeansRidgeLearner,
    "som": SOMLearner,
    "markov_counts": MarkovCountLearner,
    "associative_memory": AssociativeMemoryLearner,
    "boltzmann": BoltzmannLearner,
    "contrastive_divergence": ContrastiveDivergenceLearner,
    "dbn": DBNLearner,
    "adversarial": AdversarialLearner,
    "reconstruction": ReconstructionLearner,
    "layerwise": LayerwiseLearner,
    "dcign": DCIGNLearner,
    "bits": BitSequenceLearner,
    "linear_start": LinearStartLearner,
    "capsule": CapsuleLearner,
    "captioning": CaptionLearner,
    "text_to_image": TextToImageLearner,
}


def get(name: str) -> type:
    """The learner class registered as `name`; unknown names list close matches."""
    try:
        return LEARNERS[name]
    except KeyError:
        raise UnknownNameError("learner", name, LEARNERS) from None


__all__ = [
    "AUX_WEIGHT",
    "COMPUTE_DTYPES",
    "GAN_LOSSES",
    "LEARNERS",
    "AdversarialLearner",
    "AssociativeMemoryLearner",
    "AveragedPerceptronLearner",
    "BitSequenceLearner",
    "BoltzmannLearner",
    "CapsuleLearner",
    "CaptionLearner",
    "ClassDecoderLearner",
    "ContrastiveDivergenceLearner",
    "DBNLearner",
    "DCIGNLearner",
    "GradientLearner",
    "KMeansRidgeLearner",
    "LayerwiseLearner",
    "Learner",
    "LearnerDefaults",
    "LinearStartLearner",
    "MarkovCountLearner",
    "PerceptronLearner",
    "ReconstructionLearner",
    "RidgeLearner",
    "SOMLearner",
    "TextToImageLearner",
    "TranslationLearner",
    "apply_gradients",
    "get",
    "init_players",
    "mean_over",
    "new_state",
    "shift_images",
    "sum_over",
]
