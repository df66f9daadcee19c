"""Sequence to sequence with teacher forcing, scored by greedy decoding."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from zoo_jax.learners.base import sum_over
from zoo_jax.learners.gradient import GradientLearner


@dataclasses.dataclass(frozen=True)
class TranslationLearner(GradientLearner):
    """Sequence to sequence with teacher forcing (Williams & Zipser 1989; Sutskever et al.
    2014): labels are BOS + target + EOS (PAD-padded); the model reads the source and the
    labels without their last token and is scored on the labels without their first, per
    token (PAD positions weigh 0 in training and evaluation). Works for every model with
    `model(source, target_in)` and a `greedy(source, max_len)` method (`attention.Seq2Seq`,
    `attention.Transformer`).

    Metrics: `loss` and `token_accuracy`, teacher-forced, per token (training and
    evaluation), and `exact_match` (evaluation only): greedy decoding without teacher forcing,
    the share of sequences right in every token up to and including EOS. Evaluation's `loss`
    is the teacher-forced mean token loss of each sequence.
    """

    metrics = ("loss", "token_accuracy", "exact_match")
    pad_id: int = 0

    @staticmethod
    def model_args(inputs):
        """The source and a one-token target prefix (parameters do not depend on its length)."""
        return inputs, np.ones((inputs.shape[0], 1), np.int32)

    @staticmethod
    def predicted_tokens(labels) -> int:
        return labels[:, 1:].size  # BOS is given, not predicted

    def _forward(self, params, model_state, batch, *, train: bool, rng=None):
        labels = batch["labels"]
        logits, model_state = self._apply(
            params, model_state, batch["inputs"], train=train, rng=rng, extra=(labels[:, :-1],)
        )
        return logits, labels[:, 1:], model_state

    def _target_weights(self, targets):
        return (targets != self.pad_id).astype(jnp.float32)

    def update(self, state, batch, rng, *, axis_name=None):
        state, metrics = super().update(state, batch, rng, axis_name=axis_name)
        metrics["token_accuracy"] = metrics.pop("accuracy")  # per token, teacher-forced
        return state, metrics

    def evaluate(self, state, batch, *, axis_name=None):
        variables = {"params": state.params, **state.model_state}
        logits, targets, _ = self._forward(state.params, state.model_state, batch, train=False)
        real = (targets != self.pad_id).astype(jnp.float32)
        per_sequence = jnp.sum(self.loss(targets, logits) * real, -1) / jnp.maximum(real.sum(-1), 1)
        hits = jnp.sum((jnp.argmax(logits, -1) == targets) * real, -1) / jnp.maximum(
            real.sum(-1), 1
        )
        tokens, _ = self.model_apply(variables, batch["inputs"], targets.shape[1], method="greedy")
        exact = jnp.all((tokens == targets) | (targets == self.pad_id), axis=-1)
        weight = batch["weight"]
        return {
            "loss": sum_over(jnp.sum(weight * per_sequence), axis_name),
            "token_accuracy": sum_over(jnp.sum(weight * hits), axis_name),
            "exact_match": sum_over(jnp.sum(weight * exact), axis_name),
            "count": sum_over(jnp.sum(weight), axis_name),
        }
