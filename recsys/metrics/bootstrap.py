"""Seeded bootstrap confidence intervals for any metric.

Two estimators:
- `bootstrap_ci(metric, *arrays)`: the classic percentile bootstrap. Resamples examples with replacement,
  recomputes `metric` on every resample. Works for any metric (AUC, PQAUC, PD, ...).
- `bootstrap_mean_ci(terms)` / `bootstrap_mean_ci_from_chunks(chunks)`: for metrics that are means of
  per-example terms (relative/absolute PD, logloss, KL). Uses the Poisson bootstrap (each example weighted by
  an independent Poisson(1) count; Hanley & MacGibbon 2006, Chamandy et al. 2012), processed in chunks of
  examples, so memory stays bounded however many examples there are, and one set of weights serves many
  statistics at once (every model pair).
Both are deterministic for a given `seed`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

from recsys.metrics import validation


class Interval(NamedTuple):
    """A two-sided confidence interval."""

    low: float
    high: float


def _check_options(num_resamples: int, confidence: float) -> None:
    if not isinstance(num_resamples, int | np.integer) or num_resamples < 2:
        raise ValueError(f"`num_resamples` must be an integer >= 2. Received: num_resamples={num_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1). Received: confidence={confidence!r}")


def _percentile_interval(values: np.ndarray, confidence: float, axis: int = 0) -> np.ndarray:
    tail = (1.0 - confidence) / 2.0 * 100.0
    return np.nanpercentile(values, [tail, 100.0 - tail], axis=axis)


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays,
    num_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap interval of `metric(*arrays)`, resampling examples (rows) with replacement.

    Every array is indexed by the same resampled example indices, so e.g. `bootstrap_ci(auc, labels, p)` or
    `bootstrap_ci(relative_pd, p1, p2)` keeps examples aligned. Resamples where `metric` returns NaN are
    ignored; a `ValueError` from `metric` (e.g. a resample with one class for AUC) propagates.
    """
    _check_options(num_resamples, confidence)
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array to resample.")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = validation.check_same_length(**{f"arrays[{i}]": a for i, a in enumerate(arrays)})
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one example.")
    rng = np.random.default_rng(seed)
    values = np.empty(num_resamples)
    for r in range(num_resamples):
        index = rng.integers(0, n, n)
        values[r] = metric(*(a[index] for a in arrays))
    if np.isnan(values).all():
        return Interval(float("nan"), float("nan"))
    low, high = _percentile_interval(values, confidence)
    return Interval(float(low), float(high))


_TABLE_SIZE = 1 << 16


@functools.cache
def _poisson_table() -> np.ndarray:
    """Poisson(1) quantiles at the midpoints of 2**16 equal probability steps, for inverse-CDF sampling."""
    from scipy.stats import poisson

    return poisson.ppf((np.arange(_TABLE_SIZE) + 0.5) / _TABLE_SIZE, 1.0)


def bootstrap_mean_ci_from_chunks(
    chunks: Iterable[np.ndarray],
    num_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Interval]:
    """Poisson-bootstrap intervals for the means of K statistics whose per-example terms arrive in chunks.

    Each chunk is a [K, c] array: the terms of the next c examples. The terms never need to be in memory at
    once (memory O(num_resamples · c + K · num_resamples)), and all K statistics share the same weights.
    The weights depend on `seed` and the chunk sizes. They are Poisson(1) counts drawn by inverse-CDF lookup at
    2**-16 probability resolution (each count's probability within 1e-5 of Poisson(1); counts above 8, whose
    total probability is 1e-6, are never drawn), which is several times faster than exact Poisson sampling.
    """
    _check_options(num_resamples, confidence)
    table = _poisson_table()
    rng = np.random.default_rng(seed)
    weighted_sums: np.ndarray | None = None
    weight_totals = np.zeros(num_resamples)
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or (weighted_sums is not None and chunk.shape[0] != weighted_sums.shape[1]):
            raise ValueError(f"Every chunk must have shape [K, c] with the same K. Received shape {chunk.shape}")
        if np.isnan(chunk).any():
            raise ValueError("`terms` must not contain NaN.")
        if weighted_sums is None:
            weighted_sums = np.zeros((num_resamples, chunk.shape[0]))
        weights = table[rng.integers(0, _TABLE_SIZE, size=(num_resamples, chunk.shape[1]), dtype=np.uint16)]
        weighted_sums += weights @ chunk.T
        weight_totals += weights.sum(axis=1)
    if weighted_sums is None or not weight_totals.any():
        raise ValueError("`terms` must hold at least one example.")
    # A resample whose weights are all zero (likely only for a handful of examples) has no mean; it is dropped.
    with np.errstate(invalid="ignore", divide="ignore"):
        means = weighted_sums / weight_totals[:, None]
    bounds = _percentile_interval(means, confidence)
    return [Interval(float(lo), float(hi)) for lo, hi in zip(bounds[0], bounds[1], strict=True)]


def bootstrap_mean_ci(
    terms,
    num_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    chunk_size: int = 16_384,
) -> Interval | list[Interval]:
    """Poisson-bootstrap interval for the mean of per-example `terms`.

    `terms` is [T] (one statistic) or [K, T] (K statistics on the same examples, e.g. one row per model
    pair; all rows share the same bootstrap weights, so their intervals are jointly consistent). Returns one
    `Interval`, or a list of K. See `bootstrap_mean_ci_from_chunks` for the weights and the memory bound.
    """
    array = np.asarray(terms, dtype=np.float64)
    single = array.ndim == 1
    if single:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"`terms` must have shape [T] or [K, T] with T >= 1. Received shape {np.shape(terms)}")
    if not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer. Received: chunk_size={chunk_size!r}")
    chunks = (array[:, start:start + chunk_size] for start in range(0, array.shape[1], chunk_size))
    intervals = bootstrap_mean_ci_from_chunks(chunks, num_resamples, confidence, seed)
    return intervals[0] if single else intervals
