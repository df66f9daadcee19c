"""The judge: one classifier per dataset, trained once by the project and frozen, that the
generative experiments (`deconv_net`, `adversarial`) score their images with.

    judge = Judge.get("mnist")                 # trained on first use, then restored
    judge.predict(images)                      # classes
    judge.probabilities(images), judge.features(images)   # softmax, penultimate layer

The judge is the chart's DCN (`dcn`: two conv–ReLU–pool stages 32 / 64, dense 128,
dropout 0.3) trained `EPOCHS` epochs on the real training images, seed 0. Its run directory
(an ordinary zoo_jax run: orbax checkpoint, config, summary) lives in the user cache,
`~/.cache/zoo_jax/judges/DATASET[-quick]`, so every experiment restores the same weights;
delete it to train again. `features` are the 128 ReLU units before the readout.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache

import jax
import numpy as np

from zoo_jax import lowering
from zoo_jax.data import vision
from zoo_jax.train.loop import RunConfig, fit, restore_run

MODEL = "dcn"
EPOCHS = 3
QUICK = {"epochs": 1, "train_limit": 1024, "test_limit": 500}
BATCH = 500


@dataclasses.dataclass(frozen=True)
class Judge:
    dataset: str
    learner: object
    state: object
    test_accuracy: float
    epochs: int

    @staticmethod
    @cache
    def get(dataset: str, quick: bool = False, data_dir: str | None = None) -> Judge:
        run_dir = vision.cache_dir() / "judges" / (dataset + ("-quick" if quick else ""))
        summary_file = run_dir / "summary.json"
        options = QUICK if quick else {"epochs": EPOCHS}
        if not summary_file.is_file():
            cfg = RunConfig(model=MODEL, dataset=dataset, seed=0, data_dir=data_dir, **options)
            fit(cfg, run_dir, progress=False, log=lambda _: None)
        summary = json.loads(summary_file.read_text())
        _, learner, state, _ = restore_run(run_dir, data_dir)
        return Judge(dataset, learner, state, summary["test"]["accuracy"], summary["epochs"])

    @property
    def _apply(self):
        return _compiled(self.learner.model)

    def _batches(self, images: np.ndarray, out: int):
        variables = {"params": self.state.params, **self.state.model_state}
        parts = [self._apply(variables, np.asarray(images[i : i + BATCH], np.float32))[out]
                 for i in range(0, len(images), BATCH)]  # fmt: skip
        return np.concatenate([np.asarray(p) for p in parts])

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self._batches(images, 0)

    def features(self, images: np.ndarray) -> np.ndarray:
        return self._batches(images, 1)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(jax.nn.softmax(self.logits(images), -1))

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(images), -1)


@cache
def _compiled(model):
    """(logits, penultimate features) of a batch: the hidden Dense layer's output after its
    ReLU, captured on the way to the readout."""

    def apply(variables, x):
        logits, captured = model.apply(variables, x, train=False, capture_intermediates=True)
        hidden = captured["intermediates"][f"Dense_{len(model.hidden) - 1}"]["__call__"][0]
        return logits, jax.nn.relu(hidden)

    # the engine's CPU convolutions, as the judge trained with them
    return jax.jit(apply, compiler_options=lowering.compiler_options())
