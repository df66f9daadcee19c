"""Scores of generated images and text: what a frozen classifier (the judge) says of images,
the Parzen-window log-likelihood of the GAN papers, and BLEU of captions.

    score = classifier_score(judge_probabilities)             # exp(E_x KL(p(y|x) ‖ p(y)))
    distance = frechet_distance(sample_features, test_features)
    ll = parzen_log_likelihood(samples, test_images, sigma)   # nats per test image

- `classifier_score` is the Inception score of Salimans et al. 2016 (arXiv:1606.03498)
  with the project's MNIST classifier in place of Inception: at most the number of classes,
  reached by samples that are each classified with certainty and cover the classes evenly.
- `frechet_distance` is the FID of Heusel et al. 2017 (arXiv:1706.08500) on the judge's
  penultimate features: ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½), in float64; Tr (Σ₁Σ₂)^½ is
  the sum of the square roots of the eigenvalues of Σ₁^½ Σ₂ Σ₁^½ (symmetric, positive
  semi-definite), so no non-symmetric matrix square root is taken.
- `bleu`: corpus BLEU of Papineni et al. 2002 (ACL, "BLEU: a method for automatic
  evaluation of machine translation"): the geometric mean of the modified n-gram precisions
  (n = 1 … 4, counts clipped by the references', summed over the corpus before dividing)
  times the brevity penalty exp(min(0, 1 − r / c)), r the reference length closest to each
  hypothesis's, c the hypotheses' total length; the score NLTK's `corpus_bleu` gives
  without smoothing (0 when an order has no match).
- `parzen_log_likelihood`: the mean over test images of log (1/m) Σⱼ N(x; sⱼ, σ²I), the
  estimate of Goodfellow et al. 2014 (Table 1, after Breuleux et al. 2011), σ chosen on
  validation images by `best_parzen_sigma`. It is known to be a poor measure of a model's
  likelihood in high dimensions (Theis, van den Oord & Bethge 2016, arXiv:1511.01844).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from zoo_jax.errors import InputError


def classifier_score(probabilities: np.ndarray) -> float:
    """exp(mean over samples of KL(p(y|x) ‖ p(y))), p(y) the samples' mean prediction."""
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise InputError("classifier_score takes (samples, classes) probabilities")
    marginal = p.mean(0, keepdims=True)
    kl = np.sum(p * (np.log(np.clip(p, 1e-30, None)) - np.log(np.clip(marginal, 1e-30, None))), 1)
    return float(np.exp(kl.mean()))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of feature vectors."""
    a, b = (np.asarray(f, np.float64) for f in (features_a, features_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise InputError("frechet_distance takes two (samples, features) arrays of one width")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = np.sum(np.sqrt(np.clip(cross, 0, None)))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


@jax.jit
def _parzen_chunk(x, samples, sigmas):
    """log (1/m) Σⱼ N(x; sⱼ, σ²I) for each row of `x` and each σ: `(len(sigmas), len(x))`."""
    mm = lambda a, b: jnp.matmul(a, b, precision="highest")
    d2 = jnp.sum(x * x, 1)[:, None] + jnp.sum(samples * samples, 1)[None] - 2 * mm(x, samples.T)
    d2 = jnp.maximum(d2, 0.0)
    dim, m = x.shape[1], samples.shape[0]

    def one(sigma):
        log_norm = -0.5 * dim * jnp.log(2 * jnp.pi * sigma**2) - jnp.log(m)
        return jax.nn.logsumexp(-d2 / (2 * sigma**2), axis=1) + log_norm

    return jax.vmap(one)(sigmas)


def _parzen(samples: np.ndarray, x: np.ndarray, sigmas, chunk: int = 500) -> np.ndarray:
    """log-likelihood (nats) of each row of `x` under the Parzen window of `samples` (both
    flattened; float32 with exact products) for each σ: `(len(sigmas), len(x))` float64."""
    s = jnp.asarray(np.reshape(samples, (len(samples), -1)), jnp.float32)
    xs = np.reshape(x, (len(x), -1)).astype(np.float32)
    if s.shape[1] != xs.shape[1]:
        raise InputError(f"samples have {s.shape[1]} values each, the data {xs.shape[1]}")
    sig = jnp.asarray(np.atleast_1d(sigmas), jnp.float32)
    if not bool(jnp.all(sig > 0)):
        raise InputError("Parzen window widths must be > 0")
    parts = [np.asarray(_parzen_chunk(jnp.asarray(xs[i : i + chunk]), s, sig))
             for i in range(0, len(xs), chunk)]  # fmt: skip
    return np.concatenate(parts, 1).astype(np.float64)


def best_parzen_sigma(samples: np.ndarray, validation: np.ndarray, sigmas=None) -> float:
    """The window width of `sigmas` (default 20 from 0.05 to 0.5, log-spaced) with the
    highest mean log-likelihood of `validation`, as Goodfellow et al. chose theirs."""
    sigmas = np.geomspace(0.05, 0.5, 20) if sigmas is None else np.asarray(sigmas)
    return float(sigmas[int(np.argmax(_parzen(samples, validation, sigmas).mean(1)))])


def parzen_log_likelihood(samples: np.ndarray, x: np.ndarray, sigma: float) -> tuple[float, float]:
    """Mean log-likelihood of the rows of `x` (nats) and its standard error, as the papers
    report it (225 ± 2)."""
    per = _parzen(samples, x, [sigma])[0]
    return float(per.mean()), float(per.std(ddof=1) / math.sqrt(len(per)))


def class_histogram(predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """The share of samples the judge assigns to each class."""
    return np.bincount(np.asarray(predicted), minlength=num_classes) / len(predicted)


def _ngrams(words: Sequence, n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def bleu(references: Sequence[Sequence[Sequence]], hypotheses: Sequence[Sequence],
         max_n: int = 4) -> float:  # fmt: skip
    """Corpus BLEU-`max_n` of `hypotheses` (each a sequence of words or ids) against their
    `references` (each a list of word sequences), in [0, 1]."""
    if len(references) != len(hypotheses) or not hypotheses:
        raise InputError(f"bleu takes one list of references per hypothesis, got "
                         f"{len(references)} for {len(hypotheses)}")  # fmt: skip
    matched, total = np.zeros(max_n), np.zeros(max_n)
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses, strict=True):
        hyp = list(hyp)
        if not refs:
            raise InputError("every hypothesis needs at least one reference")
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            most = Counter()
            for r in refs:
                most |= _ngrams(list(r), n)
            matched[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_len == 0 or np.any(matched == 0):
        return 0.0
    log_precision = np.mean(np.log(matched) - np.log(total))
    brevity = min(0.0, 1.0 - ref_len / hyp_len)
    return float(math.exp(brevity + log_precision))
