"""How Show, Attend and Tell learns: soft attention by backpropagation with the doubly
stochastic regularisation, hard attention by the paper's variational lower bound."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax import losses
from zoo_jax.errors import ZooError
from zoo_jax.learners.base import apply_gradients, mean_over
from zoo_jax.learners.translation import TranslationLearner
from zoo_jax.models.systems import ShowAttendTell, doubly_stochastic_penalty

if TYPE_CHECKING:
    from zoo_jax.train.run import Run

BASELINE_DECAY = 0.9  # Xu et al. sec. 4.1: b_k = 0.9 b_{k−1} + 0.1 log p(y | s̃_k, a)


@dataclasses.dataclass(frozen=True)
class CaptionLearner(TranslationLearner):
    """Teacher-forced captioning (Xu et al. 2015) of `systems.ShowAttendTell`: labels are
    BOS + caption + EOS (PAD-padded); the model reads the image and the labels without
    their last token and is scored on the labels without their first.

    Soft attention minimises the words' negative log-likelihood plus `alpha_c` × Σ_i (1 −
    Σ_t α_ti)² per caption (eq. 14; the paper's code's `alpha_c` = 1). Hard attention
    maximises the lower bound L_s (eq. 12) with one sampled location sequence s̃ per
    caption: the gradient of log p(y | s̃, a), plus `reinforce_weight` × (log p(y | s̃, a)
    − b) × the gradient of log p(s̃ | a), plus `entropy_weight` × the gradient of the
    attention's entropy H[s̃] (λ_r, λ_e of eq. 12: 1 and the code's 0.002); b is the moving
    average of log p(y | s̃, a) over minibatches (`BASELINE_DECAY`), kept in the state's
    `model_state["reinforce"]`. Half the images read the expected context instead of a
    sample (`AttendStep`) and have no score-function term. Both objectives are per caption,
    divided by the minibatch's word count, so `loss` (reported) is the mean word
    cross-entropy.

    Metrics as `TranslationLearner`'s: `loss` and `token_accuracy` (teacher-forced, per
    word), and in evaluation `exact_match` (greedy decoding, the whole caption right).
    """

    alpha_c: float = 1.0
    reinforce_weight: float = 1.0
    entropy_weight: float = 0.002

    @classmethod
    def check_config(cls, run: Run) -> None:
        super().check_config(run)
        cfg = run.config
        if cfg.loss != "sparse_categorical_crossentropy" or cfg.loss_options:
            raise ZooError(f"{cfg.model} learns by the words' cross-entropy "
                           "(sparse_categorical_crossentropy), without loss options")  # fmt: skip

    @classmethod
    def from_config(cls, run: Run, total_steps: int | None = None) -> CaptionLearner:
        cfg = run.config
        return cls(model=run.model(), loss=losses.for_classifier(cfg.loss),
                   optimizer=run.optimizer(total_steps), l1=cfg.l1, l2=cfg.l2)  # fmt: skip

    def __post_init__(self):
        if not isinstance(self.model, ShowAttendTell):
            raise ZooError("the captioning learner trains ShowAttendTell models")

    @property
    def hard(self) -> bool:
        return self.model.attention == "hard"

    def init(self, rng, sample_batch):
        state = super().init(rng, sample_batch)
        if not self.hard:
            return state
        reinforce = {"reinforce": {"baseline": jnp.zeros((), jnp.float32)}}
        return state.replace(model_state={**state.model_state, **reinforce})

    def update(self, state, batch, rng, *, axis_name=None):
        if axis_name is not None:  # dropout masks and samples of their own on each device
            rng = jax.random.fold_in(rng, lax.axis_index(axis_name))
        labels = batch["labels"]
        targets = labels[:, 1:]
        mask = self._target_weights(targets)
        # the mean word count of the devices: their pmean-ed gradients are then the global
        # batch's (Σ over every caption / every word), as one device computes them
        words = mean_over(jnp.sum(mask), axis_name)

        def objective(params):
            out = self.model_apply({"params": params}, batch["inputs"], labels[:, :-1],
                                   train=True, rngs={"dropout": rng},
                                   method="teacher_forced")  # fmt: skip
            nll = jnp.sum(self.loss(targets, out.logits) * mask, -1)  # −log p(y | s̃, a)
            total = jnp.sum(nll)
            extra = {}
            if self.hard:
                log_py = -nll
                advantage = lax.stop_gradient(log_py - state.model_state["reinforce"]["baseline"])
                location = jnp.sum(out.location_logp * mask, -1)
                entropy = jnp.sum(out.entropy * mask, -1)
                total = total - jnp.sum(self.reinforce_weight * advantage * location
                                        + self.entropy_weight * entropy)  # fmt: skip
                extra["log_py"] = jnp.mean(log_py)
            elif self.alpha_c:
                total = total + self.alpha_c * jnp.sum(doubly_stochastic_penalty(out.weights, mask))
            hits = jnp.sum((jnp.argmax(out.logits, -1) == targets) * mask) / words
            return total / words, (jnp.sum(nll) / words, hits, extra)

        grads, (data_loss, accuracy, extra) = jax.grad(objective, has_aux=True)(state.params)
        model_state = state.model_state
        if self.hard:
            old = model_state["reinforce"]["baseline"]
            log_py = mean_over(extra["log_py"], axis_name)
            baseline = BASELINE_DECAY * old + (1 - BASELINE_DECAY) * log_py
            model_state = {**model_state, "reinforce": {"baseline": baseline}}
        new, metrics = apply_gradients(self.optimizer, state, grads, data_loss, model_state,
                                       axis_name)  # fmt: skip
        accuracy = mean_over(accuracy, axis_name)
        return new.replace(step=state.step + 1), metrics | {"token_accuracy": accuracy}
