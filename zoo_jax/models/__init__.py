"""Model families, one file each. Find a model by name through `zoo_jax.registry`."""
