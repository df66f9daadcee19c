"""Model families, one file each; each ends with its `CARDS`. Find a model by name through
`zoo_jax.registry`, which collects the cards of the modules listed here."""

from zoo_jax.models import (
    adversarial,
    attention,
    autoencoders,
    capsules,
    convolutional,
    energy,
    feedforward,
    markov,
    memory,
    recurrent,
    reservoir,
    shallow,
    systems,
)

# One line per family module: adding a family adds its module here.
FAMILIES = (
    feedforward,
    convolutional,
    recurrent,
    attention,
    shallow,
    reservoir,
    markov,
    energy,
    adversarial,
    autoencoders,
    memory,
    capsules,
    systems,
)
