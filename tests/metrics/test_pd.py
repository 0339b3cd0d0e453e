"""PD family: hand-computed values, identities, the 1e-7 rule, ranking metrics against brute force."""
import itertools

import numpy as np
import pytest
from scipy.special import rel_entr

from recsys import metrics


def test_relative_and_absolute_pd_hand_computed():
    p1 = [0.1, 0.5, 0.2, 0.9]
    p2 = [0.3, 0.5, 0.1, 0.6]
    # terms: 2·0.2/0.4 = 1, 0, 2·0.1/0.3 = 2/3, 2·0.3/1.5 = 0.4
    assert metrics.relative_pd(p1, p2) == pytest.approx((1.0 + 0.0 + 2 / 3 + 0.4) / 4, abs=1e-15)
    assert metrics.absolute_pd(p1, p2) == pytest.approx((0.2 + 0.0 + 0.1 + 0.3) / 4, abs=1e-15)
    np.testing.assert_allclose(metrics.relative_pd_terms(p1, p2), [1.0, 0.0, 2 / 3, 0.4], atol=1e-15)


def test_identical_inputs_give_zero_and_functions_are_symmetric():
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    q = rng.random(1000)
    assert metrics.relative_pd(p, p) == 0.0
    assert metrics.absolute_pd(p, p) == 0.0
    assert metrics.symmetric_kl(p, p) == 0.0
    assert metrics.flip_rate(p, p) == 0.0
    for fn in (metrics.relative_pd, metrics.absolute_pd, metrics.symmetric_kl, metrics.flip_rate):
        assert fn(p, q) == pytest.approx(fn(q, p), abs=1e-15), fn.__name__
        assert fn(p, q) > 0.0


def test_relative_pd_zero_threshold_rule():
    # 2·|Δ| and the sum both below 1e-7: the term is 0 (not 0/0 = NaN, not 2·|Δ|/Σ = 1.33).
    assert metrics.relative_pd([1e-8, 0.0], [5e-8, 0.0]) == 0.0
    # Only one below: the ordinary formula applies.
    assert metrics.relative_pd([1e-8], [2e-7]) == pytest.approx(2 * 1.9e-7 / 2.1e-7, rel=1e-12)
    # The threshold is a parameter.
    assert metrics.relative_pd([1e-3], [2e-3], threshold=1e-2) == 0.0
    assert metrics.relative_pd([1.0], [0.0]) == 2.0  # the upper bound of relative PD


def test_relative_pd_near_zero_rule_is_tfma_s():
    # TFMA (prediction_difference_metrics.py) zeroes a term only when 2·|Δ| < 1e-7 *and* p1 + p2 < 1e-7.
    # Both conditions hold: 0, although the formula would give 2·4e-8/6e-8.
    assert metrics.relative_pd([1e-8], [5e-8]) == 0.0
    # Sum below 1e-7 but 2·|Δ| = 1.8e-7 is not: the term keeps its value, 2 (an older rule, "both predictions
    # below 1e-7", gave 0 here).
    assert metrics.relative_pd([9e-8], [0.0]) == 2.0
    # Both predictions below 1e-7 but the sum is not: the ordinary formula, as in TFMA.
    assert metrics.relative_pd([9e-8], [8e-8]) == pytest.approx(2 * 1e-8 / 1.7e-7, rel=1e-9)
    # Exactly at the threshold the term is not zeroed (TFMA compares with <).
    assert metrics.relative_pd([1e-7], [0.0]) == 2.0
    # The per-example terms follow the same rule, element by element.
    np.testing.assert_allclose(
        metrics.relative_pd_terms([1e-8, 9e-8, 9e-8, 0.0], [5e-8, 0.0, 8e-8, 0.0]),
        [0.0, 2.0, 2 * 1e-8 / 1.7e-7, 0.0], rtol=1e-9,
    )


def test_per_example_std_absolute_and_relative():
    predictions = np.array([[0.1, 0.2, 0.0], [0.2, 0.2, 0.0], [0.3, 0.2, 0.0]])
    np.testing.assert_allclose(metrics.per_example_std(predictions), [0.1, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(metrics.per_example_std(predictions, relative=True), [0.5, 0.0, 0.0], atol=1e-15)
    assert metrics.mean_std(predictions) == pytest.approx(0.1 / 3, abs=1e-15)
    with pytest.raises(ValueError, match="at least 3 models"):
        metrics.per_example_std(predictions[:2])


def test_symmetric_kl_hand_value_and_scipy_reference():
    # KL(0.5‖0.25) + KL(0.25‖0.5) = ¼·ln 3.
    assert metrics.symmetric_kl([0.5], [0.25]) == pytest.approx(0.25 * np.log(3.0), rel=1e-12)
    rng = np.random.default_rng(1)
    p, q = rng.uniform(0.01, 0.99, 500), rng.uniform(0.01, 0.99, 500)
    reference = (rel_entr(p, q) + rel_entr(1 - p, 1 - q) + rel_entr(q, p) + rel_entr(1 - q, 1 - p)).mean()
    assert metrics.symmetric_kl(p, q) == pytest.approx(reference, rel=1e-10)
    assert np.isfinite(metrics.symmetric_kl([0.0, 1.0], [1.0, 0.0]))  # clipped, not infinite


def test_flip_rate():
    assert metrics.flip_rate([0.4, 0.6, 0.5], [0.6, 0.6, 0.49]) == pytest.approx(2 / 3)
    assert metrics.flip_rate([0.4, 0.6, 0.5], [0.6, 0.6, 0.49], threshold=0.7) == 0.0
    with pytest.raises(ValueError, match="threshold"):
        metrics.flip_rate([0.1], [0.2], threshold=1.5)


def test_swap_rate_hand_example():
    # Query 7: fully reversed (3 swaps of 3 pairs). Query 9: one pair, same order. Query 8: a single item.
    p1 = [0.1, 0.2, 0.3, 0.5, 0.6, 0.4]
    p2 = [0.3, 0.2, 0.1, 0.1, 0.9, 0.4]
    queries = [7, 7, 7, 9, 9, 8]
    assert metrics.swap_rate(p1, p2, queries) == pytest.approx(3 / 4)
    # A tie in one model against a strict order in the other counts as a swap.
    assert metrics.swap_rate([0.5, 0.5], [0.4, 0.6], [1, 1]) == 1.0
    assert metrics.swap_rate([0.5, 0.5], [0.4, 0.4], [1, 1]) == 0.0
    assert metrics.swap_rate([0.1, 0.2], [0.2, 0.1], ["a", "b"]) == 0.0  # no pair within a query


def _brute_force_swaps(p1, p2, q):
    pairs = [(i, j) for i, j in itertools.combinations(range(len(q)), 2) if q[i] == q[j]]
    return np.mean([np.sign(p1[i] - p1[j]) != np.sign(p2[i] - p2[j]) for i, j in pairs])


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_swap_rate_matches_brute_force_for_any_block_size(block):
    rng = np.random.default_rng(2)
    q = rng.integers(0, 6, 120)
    p1, p2 = rng.integers(0, 6, 120) / 5.0, rng.integers(0, 6, 120) / 5.0  # many ties
    assert metrics.swap_rate(p1, p2, q, max_block_elements=block) == pytest.approx(_brute_force_swaps(p1, p2, q))


def test_topk_overlap_hand_example_and_brute_force():
    # Query 0: top-2 of p1 = items {0, 1}, of p2 = {1, 2} -> 1/2. Query 1 (one item): 1/1.
    p1 = [0.9, 0.8, 0.1, 0.5]
    p2 = [0.1, 0.8, 0.9, 0.2]
    assert metrics.topk_overlap(p1, p2, [0, 0, 0, 1], k=2) == pytest.approx((0.5 + 1.0) / 2)
    rng = np.random.default_rng(3)
    q, p1, p2 = rng.integers(0, 5, 80), rng.integers(0, 4, 80) / 3.0, rng.integers(0, 4, 80) / 3.0
    expected = []
    for query in np.unique(q):
        idx = np.flatnonzero(q == query)
        top1 = set(idx[np.argsort(-p1[idx], kind="stable")[:3]])
        top2 = set(idx[np.argsort(-p2[idx], kind="stable")[:3]])
        expected.append(len(top1 & top2) / min(3, idx.size))
    for block in (1, 10, 1 << 22):
        assert metrics.topk_overlap(p1, p2, q, k=3, max_block_elements=block) == pytest.approx(np.mean(expected))
    assert metrics.topk_overlap(p1, p1, q, k=3) == 1.0
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        metrics.topk_overlap(p1, p2, q, k=0)


@pytest.mark.parametrize(
    "p1, p2, message",
    [
        ([0.1, 0.2], [0.1], "Length mismatch: p1=2, p2=1"),
        ([0.1, np.nan], [0.1, 0.2], "`p1` must not contain NaN. Received NaN at index 1"),
        ([0.1, 0.2], [0.1, 1.5], r"`p2` must be probabilities in \[0, 1\]. Received 1.5 at index 1"),
        ([-0.1], [0.1], r"`p1` must be probabilities in \[0, 1\]"),
        ([], [], "`p1` must not be empty"),
        ([[0.1]], [[0.1]], "`p1` must be a 1-D array"),
    ],
)
def test_invalid_inputs_raise_value_error_saying_which(p1, p2, message):
    with pytest.raises(ValueError, match=message):
        metrics.relative_pd(p1, p2)
