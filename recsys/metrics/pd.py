"""Prediction difference (PD): how much two (or more) models' predictions on the same examples differ.

Reference: G. I. Shamir and D. Lin, "Real World Large Scale Recommendation Systems Reproducibility and
Smooth Activations", 2022 (arXiv:2202.06499), eq. 2. Every function here returns a **fraction**
(0.07, not 7%); reports may print it as a percent.

All functions are vectorised NumPy over the examples; per-example "terms" functions are exposed so that
bootstrap intervals, histograms and the streaming accumulators reuse exactly the same arithmetic.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from recsys.metrics import validation
from recsys.metrics.queries import QueryLayout

#: TF Model Analysis' near-zero rule of its "symmetric prediction difference" (`_K_EPSILON` in
#: tensorflow_model_analysis/metrics/prediction_difference_metrics.py): a relative-PD term is 0 when its numerator
#: 2·|p1 − p2| *and* its denominator p1 + p2 are both below this, which avoids 0/0. A pair such as (9e-8, 0) keeps
#: its term of 2, and (9e-8, 8e-8) its 2·1e-8/1.7e-7, as in TFMA.
PD_ZERO_THRESHOLD = 1e-7

#: Probabilities are clipped to [eps, 1 - eps] before logs in the KL divergence.
KL_EPSILON = 1e-7


def _pair(p1, p2) -> tuple[np.ndarray, np.ndarray]:
    a = validation.check_probabilities(p1, "p1")
    b = validation.check_probabilities(p2, "p2")
    validation.check_same_length(p1=a, p2=b)
    return a, b


def relative_pd_terms(p1, p2, threshold: float = PD_ZERO_THRESHOLD) -> np.ndarray:
    """Per-example relative PD, 2·|p1 − p2| / (p1 + p2); 0 when numerator and denominator are below `threshold`."""
    a, b = _pair(p1, p2)
    return relative_pd_terms_unchecked(a, b, threshold)


def relative_pd_terms_unchecked(a: np.ndarray, b: np.ndarray, threshold: float = PD_ZERO_THRESHOLD) -> np.ndarray:
    """`relative_pd_terms` for inputs already validated (float64 arrays of equal length): for hot loops."""
    terms = np.subtract(a, b)
    np.abs(terms, out=terms)
    terms *= 2.0
    total = np.add(a, b)
    # TFMA's rule: where 2·|Δ| and the sum are both below the threshold the term is 0; dividing by 1 there keeps
    # it finite. The mask is only built when some sum is small enough for it to matter (rare, one reduction).
    if total.min() < threshold:
        tiny = (terms < threshold) & (total < threshold)
        terms[tiny] = 0.0
        total[tiny] = 1.0
    return np.divide(terms, total, out=terms)


def relative_pd(p1, p2, threshold: float = PD_ZERO_THRESHOLD) -> float:
    """Relative prediction difference (eq. 2), as a fraction in [0, 2].

        Δr = (1/T) Σ_t 2·|p_t1 − p_t2| / (p_t1 + p_t2)

    A term is 0 when 2·|p_t1 − p_t2| < `threshold` and p_t1 + p_t2 < `threshold` (default 1e-7: TF Model
    Analysis' rule, `PD_ZERO_THRESHOLD`). Symmetric in p1, p2.
    """
    return float(np.mean(relative_pd_terms(p1, p2, threshold)))


def absolute_pd_terms(p1, p2) -> np.ndarray:
    """Per-example absolute PD |p1 − p2|."""
    a, b = _pair(p1, p2)
    return np.abs(a - b)


def absolute_pd(p1, p2) -> float:
    """Absolute prediction difference (1/T) Σ_t |p_t1 − p_t2|, a fraction in [0, 1]."""
    return float(np.mean(absolute_pd_terms(p1, p2)))


def all_pairs(count: int) -> list[tuple[int, int]]:
    """Every unordered pair (i, j), i < j, of `count` models, in lexicographic order."""
    return list(itertools.combinations(range(count), 2))


def pair_terms(
    predictions: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    terms: Callable[[np.ndarray, np.ndarray], np.ndarray] = relative_pd_terms,
) -> np.ndarray:
    """[P, T] per-example `terms` (default: relative PD, eq. 2) of each pair (i, j) of rows of `predictions`.

    `predictions` is [M, T] (or a block of its columns, so that bootstrap passes can work chunk by chunk).
    """
    return np.stack([terms(predictions[i], predictions[j]) for i, j in pairs])


def per_example_std(predictions, relative: bool = False, threshold: float = PD_ZERO_THRESHOLD) -> np.ndarray:
    """Per-example standard deviation of the predictions of M ≥ 3 models (sample std, ddof = 1).

    `predictions` has shape [M, T]. With `relative=True` each std is divided by the example's mean
    prediction (0 where the mean is below `threshold`, as in the relative PD rule).
    """
    array = validation.check_model_predictions(predictions, min_models=3)
    # Row by row with [T]-sized temporaries: a few passes over memory instead of [M, T]-sized intermediates.
    mean = array.sum(axis=0)
    mean /= array.shape[0]
    variance = np.zeros_like(mean)
    deviation = np.empty_like(mean)
    for row in array:
        np.subtract(row, mean, out=deviation)
        deviation *= deviation
        variance += deviation
    variance /= array.shape[0] - 1
    std = np.sqrt(variance, out=variance)
    if relative:
        tiny = mean < threshold
        if tiny.any():
            mean[tiny] = 1.0
            std[tiny] = 0.0
        std /= mean
    return std


def mean_std(predictions, relative: bool = False, threshold: float = PD_ZERO_THRESHOLD) -> float:
    """Mean over examples of `per_example_std` (the PD of M ≥ 3 models as one number)."""
    return float(np.mean(per_example_std(predictions, relative, threshold)))


def symmetric_kl_terms(p1, p2, eps: float = KL_EPSILON) -> np.ndarray:
    """Per-example symmetric Bernoulli KL, KL(p1‖p2) + KL(p2‖p1) = (p1 − p2)·(logit p1 − logit p2), in nats."""
    a, b = _pair(p1, p2)
    a = np.clip(a, eps, 1.0 - eps)
    b = np.clip(b, eps, 1.0 - eps)
    # logit a − logit b = log(a(1 − b) / (b(1 − a))): one log instead of four, and exactly 0 for equal inputs.
    numerator = np.subtract(1.0, b)
    numerator *= a
    denominator = np.subtract(1.0, a)
    denominator *= b
    np.divide(numerator, denominator, out=numerator)
    np.log(numerator, out=numerator)
    a -= b
    return np.multiply(a, numerator, out=a)


def symmetric_kl(p1, p2, eps: float = KL_EPSILON) -> float:
    """Mean symmetric (Jeffreys) KL divergence between Bernoulli(p1) and Bernoulli(p2), in nats.

    Probabilities are clipped to [eps, 1 − eps] first (default 1e-7), so the result is finite.
    """
    return float(np.mean(symmetric_kl_terms(p1, p2, eps)))


def flip_rate(p1, p2, threshold: float = 0.5) -> float:
    """Share of examples whose decision `p >= threshold` differs between the two models."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1]. Received: threshold={threshold!r}")
    a, b = _pair(p1, p2)
    return float(np.count_nonzero((a >= threshold) != (b >= threshold)) / a.size)


def swap_rate(p1, p2, query_ids, max_block_elements: int = 1 << 20) -> float:
    """Share of item pairs within a query whose order differs between the two models.

    A pair (i, j) of one query "differs" when sign(p1_i − p1_j) ≠ sign(p2_i − p2_j), so a tie in one model
    and a strict order in the other counts as a swap. Pairs are pooled over queries (a query with n items
    contributes n(n−1)/2 pairs); queries with a single item contribute none. Returns 0.0 when no query has
    two items. Cost O(Σ n_q²) time; memory bounded by `max_block_elements` per vectorised block.
    """
    a, b = _pair(p1, p2)
    layout = QueryLayout(query_ids)
    validation.check_same_length(p1=a, query_ids=layout.codes)
    total_pairs = int((layout.sizes * (layout.sizes - 1) // 2).sum())
    if total_pairs == 0:
        return 0.0
    swapped = 0
    for queries, length in layout.blocks(max_block_elements, quadratic=True):
        pa, valid = layout.padded(a, queries, length, 0.0)
        pb, _ = layout.padded(b, queries, length, 0.0)
        first, second = np.triu_indices(length, 1)
        # A lone query too long for one block is compared in slices of its pairs.
        step = first.size if queries.size > 1 else max(1, max_block_elements // 2)
        for s in range(0, first.size, step):
            i, j = first[s:s + step], second[s:s + step]
            differs = np.sign(pa[:, i] - pa[:, j]) != np.sign(pb[:, i] - pb[:, j])
            differs &= valid[:, j]  # j > i and valid entries form a prefix, so j valid means the pair is real
            swapped += int(np.count_nonzero(differs))
    return swapped / total_pairs


def topk_overlap(p1, p2, query_ids, k: int, max_block_elements: int = 1 << 22) -> float:
    """Mean over queries of |top-k(p1) ∩ top-k(p2)| / min(k, n_q).

    Each query's top k items by descending prediction; ties are broken by the examples' input order, the same
    way for both models. 1.0 means every query shows the same top-k set; every query has equal weight.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
    a, b = _pair(p1, p2)
    layout = QueryLayout(query_ids)
    validation.check_same_length(p1=a, query_ids=layout.codes)
    shared = np.zeros(layout.num_queries)
    descending = (-a, -b)
    for queries, length in layout.blocks(max_block_elements):
        top = min(k, length)
        in_top = []
        for negated in descending:
            # Padding sorts last (fill +inf); the stable sort keeps input order among tied predictions.
            matrix, valid = layout.padded(negated, queries, length, np.inf)
            chosen = np.zeros(matrix.shape, dtype=bool)
            np.put_along_axis(chosen, np.argsort(matrix, axis=1, kind="stable")[:, :top], True, axis=1)
            in_top.append(chosen & valid)
        shared[queries] = np.count_nonzero(in_top[0] & in_top[1], axis=1)
    return float(np.mean(shared / np.minimum(layout.sizes, k)))
