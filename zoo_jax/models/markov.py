"""The order-k character Markov chain, learned by counting: exact n-gram count tables kept
as fixed-size sorted arrays, so counting, smoothing and sampling are jitted like any model.

Chart node `markov_chain` (Markov, 1913; the smoothing of Chen & Goodman, "An empirical study
of smoothing techniques for language modeling", Computer Speech & Language 13 (1999),
doi:10.1006/csla.1999.0128). P(x_t | x_{t−k} … x_{t−1}) from the counts of the training
text's (k+1)-grams, smoothed by

- add-δ (Lidstone): (c(h w) + δ) / (c(h) + δ V), or
- interpolated Kneser–Ney (Kneser & Ney 1995; Chen & Goodman 1999, eq. 17): the highest
  order discounts raw counts, every lower order discounts continuation counts N1+(• h w)
  (how many distinct characters precede h w), each order interpolated with the next lower
  by the mass D N1+(h •) / c(h) its discount freed; the unigram level is interpolated with
  the uniform 1/V, so no character has probability 0. One discount per order,
  D = n1 / (n1 + 2 n2) (Ney, Essen & Kneser 1994) from that order's counts of counts, or a
  fixed `discount`.

A context never seen at an order passes its whole mass to the next lower order (as NLTK's
interpolated models do); the first characters of a window, with fewer than k before them,
use the orders their context allows.

Count tables: one per n-gram length m = 1 … k+1, `capacity` rows of (key_hi, key_lo, count)
sorted by key; an n-gram's key is its characters in base V, the first four in `hi` and the
rest in `lo` (int32 both, so k ≤ 7 with V ≤ 97), empty rows `EMPTY` at the end. Learning
merges a batch's n-grams into each table by one sort (`merge_counts`); the learner
(`learners.MarkovChainLearner`) gathers the devices' batches first, so every device holds the
same exact table. A table that would need more than `capacity` distinct n-grams flags the
step as failed rather than drop any. Parameters, as `count_params` counts them, are these
table slots.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from zoo_jax.errors import InputError, ZooError
from zoo_jax.models import checks
from zoo_jax.registry import ZooCard

EMPTY = 2**31 - 1  # the key of an empty row: after every real key
HEAD = 4  # characters in key_hi
MAX_ORDER = 7
SMOOTHINGS = ("kneser_ney", "add_delta")


def ngram_keys(grams: jax.Array, base: int) -> tuple[jax.Array, jax.Array]:
    """(key_hi, key_lo) of n-grams `(..., m)` of ids in [0, base): lexicographic order of the
    characters is the order of (hi, lo)."""
    m = grams.shape[-1]
    digits = lambda part: sum(
        part[..., i] * base ** (part.shape[-1] - 1 - i) for i in range(part.shape[-1])
    )
    hi = digits(grams[..., :HEAD]).astype(jnp.int32)
    lo = digits(grams[..., HEAD:]).astype(jnp.int32) if m > HEAD else jnp.zeros_like(hi)
    return hi, lo


def group_keys(hi, lo, values, capacity: int):
    """Rows with equal (hi, lo) merged: the first `capacity` distinct keys in order, the sum
    of `values` and the number of rows of each, and how many distinct real keys there were."""
    hi, lo, values = lax.sort((hi, lo, values), num_keys=2)
    new = jnp.concatenate([jnp.ones(1, bool), (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])])
    group = jnp.cumsum(new) - 1
    n = len(hi)
    out_hi = jnp.full(n, EMPTY, jnp.int32).at[group].set(hi)
    out_lo = jnp.full(n, EMPTY, jnp.int32).at[group].set(lo)
    sums = jax.ops.segment_sum(values, group, n)
    rows = jax.ops.segment_sum((hi != EMPTY).astype(jnp.int32), group, n)
    distinct = jnp.sum(new & (hi != EMPTY))
    pad = max(capacity - n, 0)
    fit = lambda a, fill: jnp.concatenate([a, jnp.full(pad, fill, a.dtype)])[:capacity]
    return fit(out_hi, EMPTY), fit(out_lo, EMPTY), fit(sums, 0), fit(rows, 0), distinct


def merge_counts(table: dict, grams: jax.Array, base: int):
    """`table` with the n-grams `(count, m)` added; and whether they all fit."""
    hi, lo = ngram_keys(grams, base)
    capacity = len(table["hi"])
    hi, lo, counts, _, distinct = group_keys(
        jnp.concatenate([table["hi"], hi]), jnp.concatenate([table["lo"], lo]),
        jnp.concatenate([table["count"], jnp.ones(len(grams), jnp.int32)]), capacity,
    )  # fmt: skip
    return {"hi": hi, "lo": lo, "count": counts}, distinct <= capacity


def _decode(hi, lo, m: int, base: int) -> jax.Array:
    """The characters `(rows, m)` of keys of n-grams of length m (empty rows: garbage)."""
    head = min(m, HEAD)
    chars = [(hi // base ** (head - 1 - i)) % base for i in range(head)]
    chars += [(lo // base ** (m - head - 1 - i)) % base for i in range(m - head)]
    return jnp.stack(chars, -1)


def regroup(table: dict, m: int, base: int, keep: str, capacity: int):
    """Group the rows of a table of m-grams by their first (`keep="prefix"`) or last
    (`"suffix"`) m − 1 characters: per (m−1)-gram, the sum of `count` and the number of
    rows. The suffix grouping of raw counts gives continuation counts N1+(• g)."""
    used = table["hi"] != EMPTY
    chars = _decode(table["hi"], table["lo"], m, base)
    part = chars[:, :-1] if keep == "prefix" else chars[:, 1:]
    hi, lo = ngram_keys(part, base)
    hi, lo = jnp.where(used, hi, EMPTY), jnp.where(used, lo, EMPTY)
    hi, lo, sums, rows, _ = group_keys(hi, lo, jnp.where(used, table["count"], 0), capacity)
    return {"hi": hi, "lo": lo, "count": sums, "rows": rows}


def find(table: dict, hi: jax.Array, lo: jax.Array) -> jax.Array:
    """For each query key, the index of the first row ≥ it (a vectorised binary search)."""
    n = len(table["hi"])
    start, end = jnp.zeros_like(hi), jnp.full_like(hi, n)

    def halve(_, bounds):
        start, end = bounds
        mid = (start + end) // 2
        at = jnp.minimum(mid, n - 1)
        th, tl = table["hi"][at], table["lo"][at]
        less = (th < hi) | ((th == hi) & (tl < lo))
        less = less & (start < end)
        return jnp.where(less, mid + 1, start), jnp.where(less, end, jnp.maximum(mid, start))

    start, _ = lax.fori_loop(0, math.ceil(math.log2(n + 1)) + 1, halve, (start, end))
    return start


def lookup(table: dict, grams: jax.Array, base: int, field: str = "count") -> jax.Array:
    """`table[field]` of each n-gram of `grams` `(..., m)` (0 where absent)."""
    hi, lo = ngram_keys(grams, base)
    at = jnp.minimum(find(table, hi, lo), len(table["hi"]) - 1)
    hit = (table["hi"][at] == hi) & (table["lo"][at] == lo)
    return jnp.where(hit, table[field][at], 0)


def following(table: dict, context: jax.Array, m: int, base: int, field: str = "count"):
    """`table[field]` of (context, w) for every character w: `(..., base)` (0 where absent).
    The rows of one context are contiguous and follow its key with w = 0: one search, then
    `base` rows read, each kept if its key's first m − 1 characters are the context's."""
    first = jnp.concatenate([context, jnp.zeros((*context.shape[:-1], 1), context.dtype)], -1)
    hi, lo = ngram_keys(first, base)
    start = find(table, hi, lo)
    at = jnp.minimum(start[..., None] + jnp.arange(base), len(table["hi"]) - 1)
    rows_hi, rows_lo = table["hi"][at], table["lo"][at]
    if m > HEAD:
        same = (rows_hi == hi[..., None]) & (rows_lo // base == (lo // base)[..., None])
        last = rows_lo % base
    else:
        same = rows_hi // base == (hi // base)[..., None]
        last = rows_hi % base
    same = same & (rows_hi != EMPTY)
    values = jnp.where(same, table[field][at], 0).reshape(-1, base)
    last = jnp.where(same, last, base).reshape(-1, base)  # rows past the context: dropped
    rows = jnp.arange(len(values))[:, None]
    out = jnp.zeros((len(values), base + 1), values.dtype).at[rows, last].add(values)
    return out[:, :base].reshape(*context.shape[:-1], base)


def kn_discount(values: jax.Array) -> jax.Array:
    """D = n1 / (n1 + 2 n2) of the counts `values`; 0.5 where no count is 1 (D would be 0:
    no mass left for unseen characters, which then have probability 0)."""
    n1, n2 = jnp.sum(values == 1), jnp.sum(values == 2)
    return jnp.where(n1 > 0, n1 / jnp.maximum(n1 + 2 * n2, 1), 0.5).astype(jnp.float32)


class MarkovChain(nn.Module):
    """An order-`order` Markov chain over `vocab_size` characters (see the module's
    docstring): `params` are the count tables `counts_1` … `counts_{order+1}`.

    `smoothing` "kneser_ney" (with `discount` None: estimated per order) or "add_delta"
    (`delta`). `__call__(ids)` gives the log-probabilities `(batch, time, vocab)` of the
    next character after each prefix of the windows `ids` `(batch, time)`;
    `statistics()` the smoothing's derived tables, `distribution(stats, context)` the next
    character's probabilities after contexts `(..., order)`, `generate`.
    """

    order: int = 3
    vocab_size: int = 97
    smoothing: str = "kneser_ney"
    delta: float = 0.01
    discount: float | None = None
    capacity: int = 2**19

    def setup(self):
        if not isinstance(self.order, int) or not 1 <= self.order <= MAX_ORDER:
            raise ZooError(f"markov_chain order must be an integer in [1, {MAX_ORDER}] "
                           f"(keys hold {MAX_ORDER + 1} characters), got {self.order!r}")  # fmt: skip
        if self.smoothing not in SMOOTHINGS:
            raise ZooError(f"markov_chain smoothing must be one of {SMOOTHINGS}, "
                           f"got {self.smoothing!r}")  # fmt: skip
        if not 2 <= self.vocab_size <= 97:
            raise ZooError(f"markov_chain vocab_size must be in [2, 97], got {self.vocab_size}")
        if not self.delta > 0:
            raise ZooError(f"markov_chain delta must be > 0, got {self.delta!r}")
        if self.discount is not None and not 0 < self.discount < 1:
            raise ZooError(f"markov_chain discount must be in (0, 1), got {self.discount!r}")
        if self.capacity < 1:
            raise ZooError(f"markov_chain capacity must be >= 1, got {self.capacity}")
        self.tables = {
            f"counts_{m}": {
                "hi": self.param(f"counts_{m}_hi", nn.initializers.constant(EMPTY),
                                 (self.capacity,), jnp.int32),
                "lo": self.param(f"counts_{m}_lo", nn.initializers.constant(EMPTY),
                                 (self.capacity,), jnp.int32),
                "count": self.param(f"counts_{m}_count", nn.initializers.zeros,
                                    (self.capacity,), jnp.int32),
            }
            for m in range(1, self.order + 2)
        }  # fmt: skip

    def statistics(self) -> dict:
        """What the smoothing reads, derived from the count tables: per order j (context
        length), the table of (h, w) values, the per-context totals, and the discount."""
        base, k, cap = self.vocab_size, self.order, self.capacity
        raw = lambda m: jax.tree.map(jnp.asarray, self.tables[f"counts_{m}"])
        stats = {}
        for j in range(k + 1):
            if self.smoothing == "add_delta" or j == k:
                grams = raw(j + 1)
            else:  # continuation counts: distinct characters before each (j+1)-gram
                cont = regroup(raw(j + 2), j + 2, base, "suffix", cap)
                grams = {"hi": cont["hi"], "lo": cont["lo"], "count": cont["rows"]}
            if j == 0:
                unigram = following(grams, jnp.zeros((0,), jnp.int32), 1, base)
                totals = {"count": jnp.sum(unigram), "rows": jnp.sum(unigram > 0)}
            else:
                totals = regroup(grams, j + 1, base, "prefix", cap)
            used = grams["hi"] != EMPTY
            discount = (kn_discount(jnp.where(used, grams["count"], 0))
                        if self.discount is None else jnp.float32(self.discount))  # fmt: skip
            stats[j] = {"grams": grams, "totals": totals, "discount": discount}
        return stats

    def _orders(self, stats, context, known):
        """The next character's probabilities `(..., V)` after `context` `(..., k)` of which
        the last `known` `(...)` characters are real (the rest are padding)."""
        base, k = self.vocab_size, self.order
        uniform = jnp.full((*context.shape[:-1], base), 1.0 / base)
        if self.smoothing == "add_delta":
            j = jnp.minimum(known, k)
            p = uniform
            for order in range(k + 1):
                s = stats[order]
                h = context[..., k - order :]
                counts = following(s["grams"], h, order + 1, base).astype(jnp.float32)
                total = counts.sum(-1, keepdims=True)
                here = (counts + self.delta) / (total + self.delta * base)
                p = jnp.where((j == order)[..., None], here, p)
            return p
        p = uniform
        for order in range(k + 1):
            s = stats[order]
            h = context[..., k - order :]
            counts = following(s["grams"], h, order + 1, base).astype(jnp.float32)
            if order == 0:
                total, rows = s["totals"]["count"], s["totals"]["rows"]
                total = jnp.broadcast_to(total, counts.shape[:-1]).astype(jnp.float32)
                rows = jnp.broadcast_to(rows, counts.shape[:-1]).astype(jnp.float32)
            else:
                total = lookup(s["totals"], h, base, "count").astype(jnp.float32)
                rows = lookup(s["totals"], h, base, "rows").astype(jnp.float32)
            d = s["discount"]
            seen = (total > 0) & (order <= known)
            safe = jnp.maximum(total, 1.0)[..., None]
            here = jnp.maximum(counts - d, 0.0) / safe + (d * rows)[..., None] / safe * p
            p = jnp.where(seen[..., None], here, p)
        return p

    def distribution(self, stats, context: jax.Array, known=None) -> jax.Array:
        """P(next | context) `(..., V)` for contexts `(..., order)` of ids."""
        known = jnp.full(context.shape[:-1], self.order) if known is None else known
        return self._orders(stats, context, known)

    def __call__(self, ids: jax.Array, *, train: bool = False) -> jax.Array:
        ids = checks.token_ids(ids, "markov_chain")
        k, t = self.order, ids.shape[1]
        padded = jnp.concatenate([jnp.zeros((len(ids), k), ids.dtype), ids], 1)
        # the k characters before each next-character prediction, and how many are real
        contexts = jnp.stack([padded[:, i + 1 : i + k + 1] for i in range(t)], 1)
        known = jnp.minimum(jnp.arange(1, t + 1), k)
        p = self._orders(self.statistics(), contexts, jnp.broadcast_to(known, ids.shape))
        return jnp.log(p)

    def generate(self, prompt: jax.Array, steps: int, rng: jax.Array, temperature=1.0):
        """`steps` characters sampled after `prompt` `(length,)` ids (length ≥ order)."""
        if prompt.shape[-1] < self.order:
            raise InputError(f"the prompt needs at least {self.order} characters (the chain's "
                             f"order), got {prompt.shape[-1]}")  # fmt: skip
        if not temperature > 0:
            raise ZooError(f"temperature must be > 0, got {temperature!r}")
        stats = self.statistics()

        def step(context, key):
            p = self.distribution(stats, context)
            logits = jnp.log(p) / temperature
            nxt = jax.random.categorical(key, logits).astype(context.dtype)
            return jnp.concatenate([context[1:], nxt[None]]), nxt

        _, out = lax.scan(step, prompt[-self.order :], jax.random.split(rng, steps))
        return out


def windows_with_last(inputs: jax.Array, labels: jax.Array) -> jax.Array:
    """A language-model batch's whole windows: the inputs and the last label."""
    return jnp.concatenate([inputs, labels[:, -1:]], 1)


CARDS = [
    ZooCard(
        name="markov_chain",
        family="energy",
        chart_node="markov_chain",
        reference="Markov 1913; Kneser & Ney 1995; Chen & Goodman 1999, doi:10.1006/csla.1999.0128",
        build=MarkovChain,
        input_shape=(128,),
        input_layout="N,T (character ids)",
        num_classes=97,
        learner="markov_counts",
        dataset="chars",
        loss="sparse_categorical_crossentropy",
        epochs=1,
        batch_size=256,
        description="order-3 character chain, interpolated Kneser-Ney, exact counts",
        test_overrides={"order": 2, "capacity": 4096},
        param_convention="count-table slots (key pair and count per n-gram, capacity per order)",
        input_kind="tokens",
    ),
]
