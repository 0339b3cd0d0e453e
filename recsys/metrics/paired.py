"""Paired comparison of two cells (e.g. ReLU baseline vs SmeLU candidate): PD ratio and AUC difference.

Setting. Each cell has R replicas; replica r of the baseline and replica r of the candidate share their noise
seed (same data order), and every replica scored the same T held-out examples: predictions [R, T] per cell,
labels [T]. Replicas that share a data order share most of their PD (paper-notes.md, "Pairing"), so resampling
the two cells independently mixes that shared noise into the comparison; resampling them *together* cancels
it. Reference: G. I. Shamir and D. Lin, "Real World Large Scale Recommendation Systems Reproducibility and
Smooth Activations", 2022 (arXiv:2202.06499); /work/shared/paper-notes.md ("PD is noisy", "Pairing").

Statistics of a cell (c_r: how often replica r is drawn, w_t: weight of example t; the point estimates use
c_r = 1 and w_t = 1):

    d_ijt  = 2·|p_it − p_jt| / (p_it + p_jt)            relative PD term, eq. 2 (`pd.relative_pd_terms`: 0 when
                                                        both 2·|Δ| and the sum are below 1e-7, TFMA's rule)
    m_ij   = Σ_t w_t d_ijt / Σ_t w_t                    weighted PD of the replica pair (i, j)
    PD     = Σ_{i<j} c_i c_j m_ij / Σ_{i<j} c_i c_j     mean PD over the pairs of *distinct* drawn replicas
    AUC_r  = Σ_{y_t=1} Σ_{y_τ=0} w_t w_τ (1[p_rt > p_rτ] + ½·1[p_rt = p_rτ]) / (Σ_{y=1} w · Σ_{y=0} w)
    AUC    = Σ_r c_r AUC_r / R                          mean over replicas of each replica's AUC (eq. 1)

PD over drawn replicas. Drawing R replicas with replacement gives a multiset; the pairs are all pairs of its
members with *different* replica indices, so pair (i, j) counts c_i·c_j times and a replica drawn twice is
never paired with itself (that pair would add a PD of exactly 0 that no two real trainings show). This is the
same convention as the study's `replica_bootstrap_ci`. A resample that draws a single distinct replica has no
pair; it is dropped (from both cells, since the draw is shared). With R = 2 that is half of all resamples, and
the interval then says nothing about another pair of trainings: use more replicas (≥ 5 recommended).

AUC choice. The mean of the replicas' own AUCs (what the study reports per cell), not the AUC of the mean
prediction: the latter is an ensemble's accuracy, a different model than the one whose PD is measured.

Resampling. Resample b draws ONE replica multiset (R indices with replacement, `Generator.integers`) and ONE
set of example weights (independent Poisson(1) counts, the Poisson bootstrap as in
`recsys.metrics.bootstrap`); both cells are evaluated under the same draw. Draw order, for reproducibility:
all B replica draws first (shape [B, R]), then the example weights in blocks of resamples (shape [b, T], b
chosen from T so a block holds about 4M weights), each as an inverse-CDF lookup of uint16 draws in a table of
2**16 Poisson(1) quantiles (every count's probability within 1e-5 of Poisson(1); counts above 8 never drawn).

Intervals (percentile bootstrap at level `confidence`, resamples whose statistic is undefined dropped):
- paired PD ratio: percentiles of PD_cand,b / PD_base,b over the shared resamples b.
- unpaired PD ratio: percentiles of PD_cand,b / PD_base,b+1 (indices mod B): the two cells come from
  *different*, independent resamples, i.e. each cell is resampled on its own, at no extra cost.
- AUC difference: percentiles of AUC_cand,b − AUC_base,b over the shared resamples.
Verdict: "lower" when the whole interval lies below the null value (ratio 1, difference 0), "higher" when it
lies above, "not resolved" otherwise (an interval that touches the null within 1e-12 counts as touching it).

Power figure (minimal detectable change). With s the standard deviation of log(PD_cand,b / PD_base,b) over the
paired resamples (the bootstrap standard error of the log ratio, assumed the same under the null), a
two-sided test at level α = 1 − confidence has power `power` against a true ratio ρ when |log ρ| ≥
(z_{1−α/2} + z_power)·s. The figure reported is

    detectable change = exp((z_{1−α/2} + z_power)·s) − 1

a fraction: 0.15 means these R replicas and T examples would resolve a 15% higher PD (equivalently a
1 − 1/1.15 = 13% lower PD) with probability `power`. For the AUC difference the analogue is (z_{1−α/2} +
z_power)·sd of the difference, in AUC units.
"""
from __future__ import annotations

import functools
import math
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from recsys.metrics import accuracy, validation
from recsys.metrics import pd as pd_lib

LOWER = "lower"
HIGHER = "higher"
NOT_RESOLVED = "not resolved"

#: Example weights per resample block (B_block · T): 4M float64 weights = 32 MB; a block needs a few such arrays.
_BLOCK_ELEMENTS = 1 << 22
_TABLE_BITS = 16
#: An interval endpoint within this (relative) distance of the null value counts as touching it, so that two
#: identical cells, whose resampled ratios are 1 up to rounding, are never given a verdict.
_VERDICT_TOLERANCE = 1e-12


class PairedResamples(NamedTuple):
    """Both cells' statistics under each of the B shared resamples ([B] arrays; NaN where undefined)."""

    baseline_pd: np.ndarray
    candidate_pd: np.ndarray
    baseline_auc: np.ndarray | None
    candidate_auc: np.ndarray | None


class PDRatio(NamedTuple):
    """Result of `paired_pd_ratio`. Intervals are [low, high] lists; None where undefined."""

    ratio: float | None
    ci: list[float] | None
    ci_unpaired: list[float] | None
    verdict: str
    detectable_change: float | None
    log_ratio_sd: float | None
    baseline_pd: float
    candidate_pd: float
    resamples_used: int


class AUCDifference(NamedTuple):
    """Result of `paired_auc_difference`. The interval is a [low, high] list; None where undefined."""

    difference: float
    ci: list[float] | None
    verdict: str
    detectable_change: float | None
    sd: float | None
    baseline_auc: float
    candidate_auc: float
    resamples_used: int


@functools.cache
def _poisson_table() -> np.ndarray:
    """Poisson(1) quantiles at the midpoints of 2**16 equal probability steps (inverse-CDF lookup table)."""
    k = np.arange(20)
    cdf = np.cumsum(np.exp(-1.0) / np.array([math.factorial(int(i)) for i in k]))
    size = 1 << _TABLE_BITS
    table = np.searchsorted(cdf, (np.arange(size) + 0.5) / size, side="left").astype(np.float64)
    table.flags.writeable = False
    return table


def draw_example_weights(rng: np.random.Generator, resamples: int, examples: int) -> np.ndarray:
    """[resamples, examples] Poisson(1) example weights (float64 integers) from `rng`, by table lookup."""
    draws = rng.integers(0, 1 << _TABLE_BITS, size=(resamples, examples), dtype=np.uint16)
    return _poisson_table()[draws]


def replica_counts(picks: np.ndarray, replicas: int) -> np.ndarray:
    """[B, R] float64 counts c_r of each replica in each row of drawn replica indices `picks` ([B, R])."""
    counts = np.zeros((picks.shape[0], replicas))
    np.add.at(counts, (np.arange(picks.shape[0])[:, None], picks), 1.0)
    return counts


def block_size(num_resamples: int, examples: int) -> int:
    """How many resamples' example weights are drawn (and held) at once for `examples` examples."""
    return max(1, min(num_resamples, _BLOCK_ELEMENTS // examples))


class _Ranking(NamedTuple):
    """One replica's predictions in the form the weighted AUC needs (see `_weighted_aucs`)."""

    negative_order: np.ndarray  # positions in the negatives' array, by increasing prediction
    below: np.ndarray           # per positive: negatives scored strictly below it
    below_or_tied: np.ndarray   # per positive: negatives scored below or equal
    has_ties: bool


def _ranking(p: np.ndarray, positive: np.ndarray) -> _Ranking:
    negatives = p[~positive]
    order = np.argsort(negatives, kind="stable")
    sorted_negatives = negatives[order]
    scores = p[positive]
    below = np.searchsorted(sorted_negatives, scores, side="left")
    below_or_tied = np.searchsorted(sorted_negatives, scores, side="right")
    return _Ranking(order, below, below_or_tied, bool((below != below_or_tied).any()))


def _weighted_aucs(
    ranking: _Ranking, positive_weights: np.ndarray, negative_weights: np.ndarray, denominator: np.ndarray
) -> np.ndarray:
    """[b] weighted AUCs of one replica under b weightings ([b, P] positives', [b, N] negatives' weights).

    With C_k the total weight of the k lowest-scored negatives, a positive with `below` = k_lo negatives
    strictly below it and `below_or_tied` = k_hi at or below it contributes w_t·(C_{k_lo} + C_{k_hi})/2: the
    negatives below it fully, the tied ones half. Weights are integer counts, so every sum is exact in float64.
    """
    cumulative = np.zeros((negative_weights.shape[0], negative_weights.shape[1] + 1))
    np.cumsum(negative_weights[:, ranking.negative_order], axis=1, out=cumulative[:, 1:])
    inner = cumulative[:, ranking.below_or_tied]
    if ranking.has_ties:
        inner += cumulative[:, ranking.below]
    else:
        inner *= 2.0
    twice_correct = np.einsum("bp,bp->b", positive_weights, inner)
    with np.errstate(invalid="ignore", divide="ignore"):
        return twice_correct / denominator


def _check_predictions(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must have shape [replicas, examples]. Received shape {array.shape}")
    if array.dtype.kind not in "fiub":
        raise ValueError(f"`{name}` must hold probabilities. Received dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if array.shape[0] < 2:
        raise ValueError(
            f"`{name}` needs at least 2 replicas (rows) to measure PD. Received shape {array.shape}")
    if array.shape[1] < 1:
        raise ValueError(f"`{name}` needs at least 1 example (column). Received shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"`{name}` must be finite. Received {array[where].item()!r} at [replica, example] = {where}")
    bad = (array < 0.0) | (array > 1.0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"`{name}` must be probabilities in [0, 1]. "
            f"Received {array[where].item()!r} at [replica, example] = {where}")
    return array


def _check_cells(baseline, candidate) -> tuple[np.ndarray, np.ndarray]:
    base = _check_predictions(baseline, "baseline_predictions")
    cand = _check_predictions(candidate, "candidate_predictions")
    if base.shape != cand.shape:
        raise ValueError(
            "`baseline_predictions` and `candidate_predictions` must have the same shape [replicas, examples] "
            f"(replica r of both cells shares its noise seed). Received {base.shape} and {cand.shape}")
    return base, cand


def _check_labels(labels, examples: int) -> np.ndarray:
    y = validation.check_labels(labels, "labels")
    if y.size != examples:
        raise ValueError(
            f"`labels` must have one entry per example ({examples}, the predictions' second axis). "
            f"Received {y.size}")
    positives = int(np.count_nonzero(y))
    if positives == 0 or positives == y.size:
        raise ValueError(
            "`labels` must hold both classes (AUC is undefined otherwise). "
            f"Received {positives} positives, {y.size - positives} negatives")
    return y.astype(bool)


def _check_resampling(num_resamples: int, seed: int) -> None:
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, int | np.integer) or num_resamples < 2:
        raise ValueError(f"`num_resamples` must be an integer >= 2. Received: num_resamples={num_resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer (results are seeded). Received: seed={seed!r}")


def _check_options(num_resamples: int, confidence: float, power: float, seed: int) -> None:
    _check_resampling(num_resamples, seed)
    if isinstance(confidence, bool) or not isinstance(confidence, float | int) or not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be a number in (0, 1), e.g. 0.95. Received: confidence={confidence!r}")
    if isinstance(power, bool) or not isinstance(power, float | int) or not 0.0 < power < 1.0:
        raise ValueError(f"`power` must be a number in (0, 1), e.g. 0.8. Received: power={power!r}")


def _pair_terms(predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair indices ([P, 2]) and per-example relative PD terms ([P, T]) of every replica pair i < j."""
    first, second = np.triu_indices(predictions.shape[0], 1)
    terms = np.stack([pd_lib.relative_pd_terms_unchecked(predictions[i], predictions[j])
                      for i, j in zip(first, second, strict=True)])
    return np.stack([first, second], axis=1), terms


def _pd_under(counts: np.ndarray, pair_means: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    pair_weights = counts[:, pairs[:, 0]] * counts[:, pairs[:, 1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pair_weights * pair_means).sum(axis=1) / pair_weights.sum(axis=1)


def paired_bootstrap(
    baseline_predictions, candidate_predictions, labels=None, num_resamples: int = 1000, seed: int = 0
) -> PairedResamples:
    """Both cells' PD (and, given `labels`, mean replica AUC) under B shared replica-and-example resamples.

    See the module docstring for the statistics, the pairing of drawn replicas and the draw order. A
    resample's PD is NaN when it drew a single distinct replica (no pair) or all example weights are 0; its
    AUC is NaN when the weights leave one class empty. The PD values do not depend on whether `labels` is
    given (the draws are the same).
    """
    _check_resampling(num_resamples, seed)
    base, cand = _check_cells(baseline_predictions, candidate_predictions)
    positive = None if labels is None else _check_labels(labels, base.shape[1])
    return _bootstrap(base, cand, positive, num_resamples, seed)[0]


def _bootstrap(
    base: np.ndarray, cand: np.ndarray, positive: np.ndarray | None, num_resamples: int, seed: int
) -> tuple[PairedResamples, tuple[float, float]]:
    """`paired_bootstrap` on checked inputs; also returns both cells' PD point estimates (all pairs, w = 1)."""
    replicas, examples = base.shape
    pairs, base_terms = _pair_terms(base)
    _, cand_terms = _pair_terms(cand)
    point = (float(base_terms.mean()), float(cand_terms.mean()))
    num_pairs = pairs.shape[0]
    # Examples-major, both cells side by side: one matrix product per block gives every pair's weighted sum.
    terms_by_example = np.ascontiguousarray(np.concatenate([base_terms, cand_terms]).T)
    del base_terms, cand_terms
    if positive is not None:
        rankings = [[_ranking(p, positive) for p in cell] for cell in (base, cand)]

    rng = np.random.default_rng(seed)
    counts = replica_counts(rng.integers(0, replicas, size=(num_resamples, replicas)), replicas)
    pd_values = np.empty((2, num_resamples))
    auc_values = np.empty((2, num_resamples)) if positive is not None else None
    block = block_size(num_resamples, examples)
    for start in range(0, num_resamples, block):
        stop = min(start + block, num_resamples)
        weights = draw_example_weights(rng, stop - start, examples)
        totals = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pair_means = (weights @ terms_by_example) / totals[:, None]
        for cell in range(2):
            pd_values[cell, start:stop] = _pd_under(
                counts[start:stop], pair_means[:, cell * num_pairs:(cell + 1) * num_pairs], pairs)
        if positive is None:
            continue
        positive_weights = weights[:, positive]
        negative_weights = weights[:, ~positive]
        denominator = 2.0 * positive_weights.sum(axis=1) * negative_weights.sum(axis=1)
        for cell in range(2):
            per_replica = np.stack([_weighted_aucs(r, positive_weights, negative_weights, denominator)
                                    for r in rankings[cell]], axis=1)
            auc_values[cell, start:stop] = (counts[start:stop] * per_replica).sum(axis=1) / replicas
    resamples = PairedResamples(
        pd_values[0], pd_values[1],
        None if auc_values is None else auc_values[0], None if auc_values is None else auc_values[1])
    return resamples, point


def _interval(values: np.ndarray, confidence: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def verdict(interval: list[float] | None, null: float) -> str:
    """"lower" / "higher" when the whole `interval` lies below / above `null`, else "not resolved"."""
    if interval is None:
        return NOT_RESOLVED
    margin = _VERDICT_TOLERANCE * max(1.0, abs(null))
    if interval[1] < null - margin:
        return LOWER
    if interval[0] > null + margin:
        return HIGHER
    return NOT_RESOLVED


def z_sum(confidence: float, power: float) -> float:
    """z_{1−α/2} + z_power of the normal distribution (α = 1 − confidence): the power figure's multiplier."""
    normal = NormalDist()
    return normal.inv_cdf(1.0 - (1.0 - confidence) / 2.0) + normal.inv_cdf(power)


def _sd(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if values.size >= 2 else None


def _pd_ratio_from(
    point: tuple[float, float], resamples: PairedResamples, confidence: float, power: float
) -> PDRatio:
    baseline_pd, candidate_pd = point
    defined = np.isfinite(resamples.baseline_pd) & np.isfinite(resamples.candidate_pd) & (resamples.baseline_pd > 0)
    base_b, cand_b = resamples.baseline_pd[defined], resamples.candidate_pd[defined]
    if baseline_pd == 0.0 or base_b.size == 0:
        return PDRatio(None, None, None, NOT_RESOLVED, None, None, baseline_pd, candidate_pd, int(base_b.size))
    ratios = cand_b / base_b
    ci = _interval(ratios, confidence)
    # Each cell from a different resample (b and b + 1): independent draws of each cell's bootstrap distribution.
    with np.errstate(invalid="ignore", divide="ignore"):
        unpaired = cand_b / np.roll(base_b, -1)
        log_ratios = np.log(ratios)
    log_sd = _sd(log_ratios)
    detectable = None if log_sd is None else math.expm1(z_sum(confidence, power) * log_sd)
    return PDRatio(candidate_pd / baseline_pd, ci, _interval(unpaired, confidence), verdict(ci, 1.0), detectable,
                   log_sd, baseline_pd, candidate_pd, int(base_b.size))


def _auc_difference_from(
    base: np.ndarray, cand: np.ndarray, labels: np.ndarray, resamples: PairedResamples, confidence: float,
    power: float,
) -> AUCDifference:
    baseline_auc = float(np.mean([accuracy.auc(labels, p) for p in base]))
    candidate_auc = float(np.mean([accuracy.auc(labels, p) for p in cand]))
    differences = resamples.candidate_auc - resamples.baseline_auc
    differences = differences[np.isfinite(differences)]
    ci = _interval(differences, confidence)
    sd = _sd(differences)
    detectable = None if sd is None else z_sum(confidence, power) * sd
    return AUCDifference(candidate_auc - baseline_auc, ci, verdict(ci, 0.0), detectable, sd, baseline_auc,
                         candidate_auc, int(differences.size))


def paired_pd_ratio(
    baseline_predictions,
    candidate_predictions,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    power: float = 0.8,
    seed: int = 0,
) -> PDRatio:
    """PD_candidate / PD_baseline with its paired and unpaired bootstrap intervals, verdict and power figure.

    Point estimate: the ratio of the cells' mean relative PD over all replica pairs i < j (eq. 2). Intervals,
    verdict (null ratio 1) and `detectable_change` as defined in the module docstring. `ratio` and the
    intervals are None when the baseline's PD is 0 (the ratio is undefined).
    """
    _check_options(num_resamples, confidence, power, seed)
    base, cand = _check_cells(baseline_predictions, candidate_predictions)
    resamples, point = _bootstrap(base, cand, None, num_resamples, seed)
    return _pd_ratio_from(point, resamples, confidence, power)


def paired_auc_difference(
    baseline_predictions,
    candidate_predictions,
    labels,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    power: float = 0.8,
    seed: int = 0,
) -> AUCDifference:
    """AUC_candidate − AUC_baseline (each the mean of its replicas' AUCs) with its paired bootstrap interval.

    The same shared replica-and-example resamples as `paired_pd_ratio` (same `seed`, same draws); each
    replica's AUC under example weights is the exact weighted rank AUC, ties counting half. Verdict against
    a difference of 0: "higher" means the candidate is more accurate.
    """
    _check_options(num_resamples, confidence, power, seed)
    base, cand = _check_cells(baseline_predictions, candidate_predictions)
    y = _check_labels(labels, base.shape[1])
    resamples, _ = _bootstrap(base, cand, y, num_resamples, seed)
    return _auc_difference_from(base, cand, y, resamples, confidence, power)


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def compare_cells(
    baseline_predictions,
    candidate_predictions,
    labels,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    power: float = 0.8,
    seed: int = 0,
) -> dict[str, Any]:
    """`paired_pd_ratio` and `paired_auc_difference` from one shared bootstrap, as a JSON-ready dict.

    Keys: pd_ratio, pd_ratio_ci, pd_ratio_ci_unpaired, pd_ratio_verdict, pd_ratio_detectable_change,
    pd_ratio_log_sd, baseline_pd, candidate_pd, auc_difference, auc_difference_ci, auc_difference_verdict,
    auc_difference_detectable_change, baseline_auc, candidate_auc, replicas, examples, num_resamples,
    pd_resamples_used, auc_resamples_used, confidence, power, seed. Values are floats, ints, strings, None or
    [low, high] lists; PD values are fractions. Deterministic for a given `seed`.

    Cost: the PD part is one matrix product per block of resamples, O(B·T·R²) flops in BLAS; the exact
    weighted AUC needs a gather and a cumulative sum per resample and replica, O(B·T·R) memory-bound passes,
    and dominates (R = 8, T = 200k, B = 1000: about 4 s for the PD ratio alone, about 35 s with the AUC, on
    one busy core). Under a loaded machine multi-threaded OpenBLAS can be several times slower than one thread
    (OPENBLAS_NUM_THREADS=1).
    """
    _check_options(num_resamples, confidence, power, seed)
    base, cand = _check_cells(baseline_predictions, candidate_predictions)
    y = _check_labels(labels, base.shape[1])
    resamples, point = _bootstrap(base, cand, y, num_resamples, seed)
    ratio = _pd_ratio_from(point, resamples, confidence, power)
    difference = _auc_difference_from(base, cand, y, resamples, confidence, power)
    return {
        "pd_ratio": _number(ratio.ratio),
        "pd_ratio_ci": ratio.ci,
        "pd_ratio_ci_unpaired": ratio.ci_unpaired,
        "pd_ratio_verdict": ratio.verdict,
        "pd_ratio_detectable_change": _number(ratio.detectable_change),
        "pd_ratio_log_sd": _number(ratio.log_ratio_sd),
        "baseline_pd": _number(ratio.baseline_pd),
        "candidate_pd": _number(ratio.candidate_pd),
        "auc_difference": _number(difference.difference),
        "auc_difference_ci": difference.ci,
        "auc_difference_verdict": difference.verdict,
        "auc_difference_detectable_change": _number(difference.detectable_change),
        "baseline_auc": _number(difference.baseline_auc),
        "candidate_auc": _number(difference.candidate_auc),
        "replicas": int(base.shape[0]),
        "examples": int(base.shape[1]),
        "num_resamples": int(num_resamples),
        "pd_resamples_used": ratio.resamples_used,
        "auc_resamples_used": difference.resamples_used,
        "confidence": float(confidence),
        "power": float(power),
        "seed": int(seed),
    }
