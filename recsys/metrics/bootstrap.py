"""Seeded bootstrap confidence intervals for any metric, over examples and over models.

Over examples:
- `bootstrap_ci(metric, *arrays)`: the classic percentile bootstrap. Resamples examples with replacement,
  recomputes `metric` on every resample. Works for any metric (AUC, PQAUC, PD, ...).
- `bootstrap_mean_ci(terms)` / `bootstrap_mean_ci_from_chunks(chunks)`: for metrics that are means of
  per-example terms (relative/absolute PD, logloss, KL). Uses the Poisson bootstrap (each example weighted by
  an independent Poisson(1) count; Hanley & MacGibbon 2006, Chamandy et al. 2012), processed in chunks of
  examples, so memory stays bounded however many examples there are, and one set of weights serves many
  statistics at once (every model pair).

Over models and examples (the study's intervals of a mean PD over pairs):
- `replica_bootstrap_ci(terms, pairs, num_models)`: resamples the models (replicas) and the examples; pairs
  sharing a model are correlated, so models rather than pairs are drawn.
- `pair_bootstrap_ci(terms)`: resamples the rows (independent pairs, e.g. disjoint ensembles) and the examples.
These draw exact Poisson(1) example weights (`POISSON_EXACT`), the comparator's intervals the inverse-CDF table
(`POISSON_TABLE`); each keeps its own so that published results reproduce draw for draw.

All are deterministic for a given `seed`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np

from recsys.metrics import validation


class Interval(NamedTuple):
    """A two-sided confidence interval."""

    low: float
    high: float


def check_options(
    num_resamples: int,
    confidence: float,
    resamples_name: str = "num_resamples",
    confidence_name: str = "confidence",
) -> None:
    """Raises ValueError unless `num_resamples` is an integer >= 2 and `confidence` is in (0, 1).

    The names are those the caller's user knows the options by (e.g. a config key), used in the message.
    """
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, int | np.integer) or num_resamples < 2:
        raise ValueError(
            f"`{resamples_name}` must be an integer >= 2. Received: {resamples_name}={num_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`{confidence_name}` must be in (0, 1). Received: {confidence_name}={confidence!r}")


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer. Received: chunk_size={chunk_size!r}")


def _percentile_interval(values: np.ndarray, confidence: float, axis: int = 0) -> np.ndarray:
    """[2, ...] lower and upper percentile bounds along `axis`, NaN values (resamples without a value) ignored."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    return np.nanpercentile(values, [tail, 100.0 - tail], axis=axis)


def _interval_or_none(values: np.ndarray, confidence: float) -> Interval | None:
    """The percentile interval of the non-NaN `values` ([B]), or None when every resample is NaN."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    low, high = _percentile_interval(values, confidence)
    return Interval(float(low), float(high))


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
    check_options(num_resamples, confidence)
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


def _table_poisson_weights(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return _poisson_table()[rng.integers(0, _TABLE_SIZE, size=shape, dtype=np.uint16)]


def _exact_poisson_weights(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.poisson(1.0, size=shape).astype(np.float64)


#: Poisson(1) example weights by inverse-CDF lookup at 2**-16 probability resolution (each count's probability
#: within 1e-5 of Poisson(1); counts above 8, whose total probability is 1e-6, are never drawn): several times
#: faster than exact sampling. The comparator's intervals use it.
POISSON_TABLE = "table"
#: Exact Poisson(1) example weights (`Generator.poisson`). The study's intervals use it.
POISSON_EXACT = "exact"
_WEIGHT_SAMPLERS = {POISSON_TABLE: _table_poisson_weights, POISSON_EXACT: _exact_poisson_weights}


def column_chunks(array: np.ndarray, chunk_size: int):
    """Yields consecutive column blocks `array[..., start:start + chunk_size]` (views) of an [..., T] array."""
    for start in range(0, array.shape[-1], chunk_size):
        yield array[..., start:start + chunk_size]


def poisson_resample_means(
    chunks: Iterable[np.ndarray],
    num_resamples: int,
    rng: np.random.Generator,
    sampler: str = POISSON_TABLE,
) -> np.ndarray:
    """[num_resamples, K]: the means of K statistics under independent Poisson(1) weightings of the examples.

    Each chunk is a [K, c] array: the terms of the next c examples, whose weights are drawn from `rng` (a
    [num_resamples, c] block per chunk, in chunk order). Memory is O(num_resamples · c + K · num_resamples)
    however many examples there are. A resample whose weights are all zero has no mean (NaN).
    """
    draw = _WEIGHT_SAMPLERS.get(sampler)
    if draw is None:
        raise ValueError(f"`sampler` must be one of {sorted(_WEIGHT_SAMPLERS)}. Received: sampler={sampler!r}")
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
        weights = draw(rng, (num_resamples, chunk.shape[1]))
        weighted_sums += weights @ chunk.T
        weight_totals += weights.sum(axis=1)
    if weighted_sums is None or not weight_totals.any():
        raise ValueError("`terms` must hold at least one example.")
    with np.errstate(invalid="ignore", divide="ignore"):
        return weighted_sums / weight_totals[:, None]


def bootstrap_mean_ci_from_chunks(
    chunks: Iterable[np.ndarray],
    num_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[Interval]:
    """Poisson-bootstrap intervals for the means of K statistics whose per-example terms arrive in chunks.

    Each chunk is a [K, c] array: the terms of the next c examples. The terms never need to be in memory at
    once (memory O(num_resamples · c + K · num_resamples)), and all K statistics share the same weights.
    The weights depend on `seed` and the chunk sizes; they are drawn from the inverse-CDF table
    (`POISSON_TABLE`). A resample whose weights are all zero (likely only for a handful of examples) is dropped.
    """
    check_options(num_resamples, confidence)
    means = poisson_resample_means(chunks, num_resamples, np.random.default_rng(seed), POISSON_TABLE)
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
    _check_chunk_size(chunk_size)
    intervals = bootstrap_mean_ci_from_chunks(column_chunks(array, chunk_size), num_resamples, confidence, seed)
    return intervals[0] if single else intervals


def _exact_resample_means(
    terms, num_resamples: int, confidence: float, seed: int, chunk_size: int
) -> tuple[np.ndarray, np.random.Generator]:
    """[B, P] row means of `terms` under exact Poisson example weights, and the generator to draw models from."""
    check_options(num_resamples, confidence)
    _check_chunk_size(chunk_size)
    rng = np.random.default_rng(seed)
    chunks = column_chunks(np.asarray(terms, dtype=np.float64), chunk_size)
    return poisson_resample_means(chunks, num_resamples, rng, POISSON_EXACT), rng


def replica_bootstrap_ci(
    terms: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    num_models: int,
    num_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    chunk_size: int = 16_384,
) -> Interval | None:
    """Interval of the mean over `pairs` of a per-pair mean, resampling the models and the examples.

    `terms` is [P, T]: row p holds the per-example terms (e.g. relative PD) of `pairs[p]` = (i, j) of
    `num_models` models. Each resample draws exact Poisson(1) weights for the examples (in chunks of
    `chunk_size`) and then `num_models` models with replacement (one multinomial draw); its statistic is the
    weighted mean of the pairs' weighted means, pair (i, j) counting c_i·c_j times when model i was drawn c_i
    times, so only pairs of distinct drawn models count. Resamples that draw a single distinct model have no
    pair and are dropped. Returns None when no resample has a pair.
    """
    means, rng = _exact_resample_means(terms, num_resamples, confidence, seed, chunk_size)
    counts = rng.multinomial(num_models, np.full(num_models, 1.0 / num_models), size=num_resamples)
    index = np.asarray(pairs)
    pair_weights = counts[:, index[:, 0]] * counts[:, index[:, 1]]
    totals = pair_weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = (pair_weights * means).sum(axis=1) / totals
    return _interval_or_none(statistic[totals > 0], confidence)


def pair_bootstrap_ci(
    terms: np.ndarray,
    num_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    chunk_size: int = 16_384,
) -> Interval | None:
    """Interval of the mean over the P rows of `terms` ([P, T]) of their means, resampling rows and examples.

    For rows that are independent of each other (e.g. pairs of disjoint ensembles). Each resample draws exact
    Poisson(1) example weights (in chunks of `chunk_size`), then P rows with replacement (one multinomial
    draw). Resamples whose example weights are all zero have no mean and are dropped.
    """
    means, rng = _exact_resample_means(terms, num_resamples, confidence, seed, chunk_size)
    count = means.shape[1]
    draws = rng.multinomial(count, np.full(count, 1.0 / count), size=num_resamples)
    statistic = (draws * means).sum(axis=1) / count
    return _interval_or_none(statistic, confidence)
