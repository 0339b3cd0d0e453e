"""Accuracy metrics of a CTR model: AUC, per-query AUC (PQAUC), logloss and calibration.

AUC follows the paper's eq. 1 (Shamir & Lin 2022, arXiv:2202.06499): the share of positive–negative pairs
ordered correctly, ties counting half; AUC loss is 1 − AUC. All functions are vectorised NumPy and
validate their inputs (`recsys.metrics.validation`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recsys.metrics import validation
from recsys.metrics.queries import QueryLayout

#: Predictions are clipped to [eps, 1 − eps] before the log in logloss, so a confidently wrong prediction
#: costs at most −log(1e-7) ≈ 16.1 nats instead of infinity. 1e-7 is also the resolution of float32
#: probabilities near 1, which is what models export.
LOGLOSS_EPSILON = 1e-7


def _labels_and_predictions(labels, predictions) -> tuple[np.ndarray, np.ndarray]:
    y = validation.check_labels(labels, "labels")
    p = validation.check_probabilities(predictions, "predictions")
    validation.check_same_length(labels=y, predictions=p)
    return y, p


def _tie_groups(positive: np.ndarray, same_as_previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each group of tied, adjacent sorted elements: positives·negatives in it, and its first position.

    `same_as_previous[i]` says element i + 1 ties with element i. Only elements inside groups of two or
    more are gathered, so data with few ties costs little beyond the comparison pass.
    """
    in_group = np.zeros(positive.size, dtype=bool)
    in_group[1:] = same_as_previous
    in_group[:-1] |= same_as_previous
    members = np.flatnonzero(in_group)
    first = np.ones(members.size, dtype=bool)
    first[1:] = ~same_as_previous[members[1:] - 1]
    starts = np.flatnonzero(first)
    pos = np.add.reduceat(positive[members].astype(np.int64), starts)
    size = np.diff(np.append(starts, members.size))
    return pos * (size - pos), members[starts]


def _sort_keys(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """uint64 keys ordering examples by prediction, then label (negatives first among ties).

    Non-negative float64 values order like their bit patterns; the sign bit (set only by -0.0) is shifted
    out, which maps -0.0 onto 0.0 as it should. Probabilities stay below 2**62, so the shift loses nothing.
    """
    keys = p.view(np.uint64) << np.uint64(1)
    keys |= y.astype(np.uint64)
    return keys


def auc(labels, predictions) -> float:
    """Area under the ROC curve, exact, with tied predictions counting half a correctly ordered pair.

        AUC = (1 / (P·N)) Σ_{y_t=1} Σ_{y_τ=0} (1[p_t > p_τ] + ½·1[p_t = p_τ])

    Computed in O(n log n) with one sort of 64-bit keys (prediction bits, label in the lowest bit): in that
    order every positive is preceded by exactly the negatives scored below or equal to it, so the rank sum
    gives the pair count, and only tie groups need a correction. Equals scikit-learn's `roc_auc_score`.
    Raises `ValueError` if `labels` holds only one class (AUC is undefined).
    """
    y, p = _labels_and_predictions(labels, predictions)
    positives = int(np.count_nonzero(y))
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            f"AUC is undefined when `labels` holds one class. Received {positives} positives, {negatives} negatives"
        )
    keys = _sort_keys(y, p)
    keys.sort()
    is_positive = (keys & np.uint64(1)).astype(bool)
    positions = np.flatnonzero(is_positive)
    # Σ over positives of (negatives before it) = Σ positions − Σ (positives before it).
    below_or_equal = int(positions.sum(dtype=np.int64)) - positives * (positives - 1) // 2
    values = keys >> np.uint64(1)
    same = values[1:] == values[:-1]
    tied_pairs = int(_tie_groups(is_positive, same)[0].sum()) if same.any() else 0
    return (2 * below_or_equal - tied_pairs) / (2 * positives * negatives)


def auc_from_histograms(positive_counts: np.ndarray, negative_counts: np.ndarray) -> float:
    """AUC (ties half) from per-bin counts of positives and negatives, bins in increasing score order.

    Exact for the binned scores; used by the streaming accumulator, whose memory is the two histograms.
    Returns NaN when either class is absent.
    """
    pos = np.asarray(positive_counts, dtype=np.int64)
    neg = np.asarray(negative_counts, dtype=np.int64)
    if pos.shape != neg.shape or pos.ndim != 1:
        raise ValueError(f"Histograms must be 1-D and equal in shape. Received {pos.shape} and {neg.shape}")
    total_pos, total_neg = int(pos.sum()), int(neg.sum())
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    if 2 * total_pos * total_neg < 2**62:
        numerator = 2 * int(np.dot(pos, below)) + int(np.dot(pos, neg))  # exact in int64 up to ~2e9 examples
    else:
        numerator = 2 * float(np.dot(pos.astype(np.float64), below)) + float(np.dot(pos.astype(np.float64), neg))
    return numerator / (2 * total_pos * total_neg)


def auc_loss_change_pct(auc: float | None, baseline_auc: float | None) -> float | None:
    """100·(L − L_baseline)/L_baseline with AUC loss L = 1 − AUC (or PQAUC): negative means more accurate.

    The y axis of the paper's Fig. 4 (loss change in % from a ReLU baseline). None when either value is unknown
    or the baseline is perfect (no loss to compare with).
    """
    if auc is None or baseline_auc is None:
        return None
    baseline_loss = 1.0 - float(baseline_auc)
    if baseline_loss <= 0.0:
        return None
    return 100.0 * ((1.0 - float(auc)) - baseline_loss) / baseline_loss


def logloss_terms(labels, predictions, eps: float = LOGLOSS_EPSILON) -> np.ndarray:
    """Per-example cross-entropy −[y·log p + (1 − y)·log(1 − p)], p clipped to [eps, 1 − eps]."""
    y, p = _labels_and_predictions(labels, predictions)
    return logloss_terms_unchecked(y, p, eps)


def logloss_terms_unchecked(y: np.ndarray, p: np.ndarray, eps: float = LOGLOSS_EPSILON) -> np.ndarray:
    """`logloss_terms` for inputs already validated (int8 labels, float64 probabilities): for hot loops."""
    likelihood = np.where(y.astype(bool), p, 1.0 - p)
    np.maximum(likelihood, eps, out=likelihood)
    np.minimum(likelihood, 1.0 - eps, out=likelihood)
    np.log(likelihood, out=likelihood)
    return np.negative(likelihood, out=likelihood)


def logloss(labels, predictions, eps: float = LOGLOSS_EPSILON) -> float:
    """Mean cross-entropy in nats, predictions clipped to [eps, 1 − eps] (eps = 1e-7 by default)."""
    return float(np.mean(logloss_terms(labels, predictions, eps)))


def calibration(labels, predictions) -> float:
    """Mean prediction divided by the observed click-through rate (1.0 is perfectly calibrated overall).

    Raises `ValueError` when `labels` has no positives (the ratio is undefined).
    """
    y, p = _labels_and_predictions(labels, predictions)
    clicks = int(np.count_nonzero(y))
    if clicks == 0:
        raise ValueError(f"Calibration is undefined when `labels` has no positives. Received {y.size} negatives")
    return float(p.sum() / clicks)


class PQAUC(NamedTuple):
    """Result of `pqauc`: the pair-weighted per-query AUC and how many queries were used or skipped."""

    value: float
    queries: int
    skipped_queries: int


def pqauc(labels, predictions, query_ids, max_block_elements: int = 1 << 22) -> PQAUC:
    """Per-query AUC averaged over queries with weight P_q·N_q (the query's positive–negative pairs).

        PQAUC = Σ_q P_q N_q AUC_q / Σ_q P_q N_q

    i.e. the share of correctly ordered positive–negative pairs *within* queries, ties counting half.
    Queries with only one class have no pairs: they are skipped and counted in `skipped_queries`.
    `value` is NaN when no query has both classes. `query_ids` may be any sortable dtype.
    """
    y, p = _labels_and_predictions(labels, predictions)
    layout = QueryLayout(query_ids)
    validation.check_same_length(labels=y, query_ids=layout.codes)
    keys = _sort_keys(y, p)
    padding = np.iinfo(np.uint64).max  # sorts after every real key, and its value part matches none
    below_or_equal = np.zeros(layout.num_queries, dtype=np.int64)
    tied = np.zeros(layout.num_queries, dtype=np.int64)
    for queries, length in layout.blocks(max_block_elements):
        # Row by row, the same rank-sum computation as `auc`, on each query's sorted keys.
        matrix, _ = layout.padded(keys, queries, length, padding)
        matrix.sort(axis=1)
        valid = matrix != padding
        is_positive = ((matrix & np.uint64(1)) == 1) & valid
        positions = np.arange(length, dtype=np.int64)
        positives = np.count_nonzero(is_positive, axis=1)
        below_or_equal[queries] = (is_positive * positions).sum(axis=1) - positives * (positives - 1) // 2
        values = matrix >> np.uint64(1)
        same = np.zeros(matrix.shape, dtype=bool)
        same[:, :-1] = (values[:, 1:] == values[:, :-1]) & valid[:, 1:]
        same = same.reshape(-1)[:-1]  # a row's last element never ties with the next row's first
        if same.any():
            group_pairs, group_first = _tie_groups(is_positive.reshape(-1), same)
            np.add.at(tied, queries[group_first // length], group_pairs)
    pos = np.bincount(layout.codes, weights=y, minlength=layout.num_queries).astype(np.int64)
    pairs = pos * (layout.sizes - pos)
    used = pairs > 0
    skipped = int(layout.num_queries - np.count_nonzero(used))
    if not used.any():
        return PQAUC(float("nan"), 0, skipped)
    numerator = int((2 * below_or_equal[used] - tied[used]).sum())
    return PQAUC(numerator / (2 * int(pairs[used].sum())), int(np.count_nonzero(used)), skipped)
