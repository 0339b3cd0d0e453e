"""AUC, PQAUC, logloss, calibration: brute-force pair counts, hand examples, scikit-learn references."""
import itertools

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from recsys import metrics


def _brute_force_auc(y, p):
    pairs = [(i, j) for i, j in itertools.product(range(len(y)), repeat=2) if y[i] == 1 and y[j] == 0]
    return np.mean([(p[i] > p[j]) + 0.5 * (p[i] == p[j]) for i, j in pairs])


@pytest.mark.parametrize("n", [2, 7, 40, 150])
def test_auc_equals_brute_force_pair_count_with_ties(n):
    rng = np.random.default_rng(n)
    for _ in range(10):
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            y[0] = 1 - y[0]
        p = rng.integers(0, 5, n) / 4.0  # heavy ties, including 0.0 and 1.0
        assert metrics.auc(y, p) == pytest.approx(_brute_force_auc(y, p), abs=1e-15)


def test_auc_hand_example_and_sklearn():
    # Pairs (pos, neg): (0.8, 0.3) right, (0.8, 0.8) tie, (0.4, 0.3) right, (0.4, 0.8) wrong -> 2.5 / 4.
    assert metrics.auc([1, 0, 0, 1], [0.8, 0.3, 0.8, 0.4]) == 0.625
    rng = np.random.default_rng(0)
    p = rng.random(100_000).astype(np.float32)  # float32 predictions tie now and then, as exported models do
    y = rng.random(100_000) < p
    assert abs(metrics.auc(y, p) - roc_auc_score(y, p)) < 1e-9
    assert metrics.auc(y, np.round(p, 2)) == pytest.approx(roc_auc_score(y, np.round(p, 2)), abs=1e-9)


def test_auc_signed_zero_ties_with_zero():
    assert metrics.auc([1, 0], [-0.0, 0.0]) == 0.5


def test_auc_with_one_class_is_a_value_error():
    with pytest.raises(ValueError, match="AUC is undefined when `labels` holds one class. Received 0 positives"):
        metrics.auc([0, 0, 0], [0.1, 0.2, 0.3])


def test_auc_from_histograms_matches_auc_on_binned_scores():
    rng = np.random.default_rng(4)
    bins = rng.integers(0, 50, 5000)
    y = rng.random(5000) < bins / 60
    positive = np.bincount(bins[y], minlength=50)
    negative = np.bincount(bins[~y], minlength=50)
    assert metrics.auc_from_histograms(positive, negative) == pytest.approx(metrics.auc(y, bins / 49), abs=1e-15)
    assert np.isnan(metrics.auc_from_histograms(positive, np.zeros(50)))


def test_pqauc_hand_example():
    labels = [1, 0, 0, 1, 1, 0, 0, 0, 1]
    predictions = [0.8, 0.3, 0.8, 0.2, 0.6, 0.4, 0.5, 0.5, 0.9]
    queries = ["q1", "q1", "q1", "q2", "q2", "q2", "q3", "q3", "q4"]
    # q1: 1 + ½ of 2 pairs; q2: 0 + 1 of 2 pairs; q3 (no click) and q4 (only a click) are skipped.
    result = metrics.pqauc(labels, predictions, queries)
    assert result == metrics.PQAUC(value=(1.5 + 1.0) / 4, queries=2, skipped_queries=2)
    assert np.isnan(metrics.pqauc([0, 0], [0.1, 0.2], [1, 2]).value)


@pytest.mark.parametrize("block", [1, 5, 1 << 22])
def test_pqauc_equals_pair_weighted_brute_force(block):
    rng = np.random.default_rng(5)
    y, p, q = rng.integers(0, 2, 300), rng.integers(0, 8, 300) / 7.0, rng.integers(0, 25, 300) * 1000
    numerator = pairs = skipped = 0
    for query in np.unique(q):
        m = q == query
        positives = y[m].sum()
        if positives in (0, m.sum()):
            skipped += 1
            continue
        weight = positives * (m.sum() - positives)
        numerator += _brute_force_auc(y[m], p[m]) * weight
        pairs += weight
    result = metrics.pqauc(y, p, q, max_block_elements=block)
    assert result.value == pytest.approx(numerator / pairs, abs=1e-12)
    assert result.skipped_queries == skipped
    assert result.queries == len(np.unique(q)) - skipped
    # One query holding everything is the global AUC.
    assert metrics.pqauc(y, p, np.zeros(300)).value == pytest.approx(metrics.auc(y, p), abs=1e-15)


def test_logloss_hand_value_clip_and_sklearn():
    assert metrics.logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2, rel=1e-14)
    # A confidently wrong prediction costs −log(1e-7), not infinity.
    assert metrics.logloss([0], [1.0]) == pytest.approx(-np.log(metrics.LOGLOSS_EPSILON), rel=1e-12)
    rng = np.random.default_rng(6)
    p = rng.uniform(0.01, 0.99, 1000)
    y = rng.random(1000) < p
    assert metrics.logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-12)


def test_calibration():
    assert metrics.calibration([1, 0, 0, 1], [0.5, 0.5, 0.25, 0.25]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no positives"):
        metrics.calibration([0, 0], [0.1, 0.2])


@pytest.mark.parametrize(
    "labels, predictions, message",
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "`labels` must be 0 or 1. Received 2 at index 2"),
        ([0, 1, 0.5], [0.1, 0.2, 0.3], "`labels` must be 0 or 1. Received 0.5 at index 2"),
        ([0, 1], [0.1, np.nan], "`predictions` must not contain NaN"),
        ([0, 1], [0.1, 2.0], r"`predictions` must be probabilities in \[0, 1\]"),
        ([0, 1], [0.1, 0.2, 0.3], "Length mismatch: labels=2, predictions=3"),
        (["a", "b"], [0.1, 0.2], "`labels` must hold numbers"),
    ],
)
def test_invalid_inputs(labels, predictions, message):
    for fn in (metrics.auc, metrics.logloss, metrics.calibration):
        with pytest.raises(ValueError, match=message):
            fn(labels, predictions)


def test_auc_loss_change_pct_sign_and_formula():
    # AUC loss 0.22 vs the baseline's 0.20: 10% worse; 0.18 vs 0.20: 10% better.
    assert metrics.auc_loss_change_pct(0.78, 0.80) == pytest.approx(10.0)
    assert metrics.auc_loss_change_pct(0.82, 0.80) == pytest.approx(-10.0)
    assert metrics.auc_loss_change_pct(0.80, 0.80) == 0.0
    assert metrics.auc_loss_change_pct(0.7, 1.0) is None
    assert metrics.auc_loss_change_pct(None, 0.8) is None
    assert metrics.auc_loss_change_pct(0.8, None) is None
