"""Bootstrap intervals: seeded, cover the estimate, agree with each other and with the normal approximation."""
import numpy as np
import pytest

from recsys import metrics


def test_bootstrap_ci_is_seeded_and_works_for_any_metric():
    rng = np.random.default_rng(0)
    p = rng.random(2000)
    y = rng.random(2000) < p
    first = metrics.bootstrap_ci(metrics.auc, y, p, num_resamples=50, seed=3)
    assert first == metrics.bootstrap_ci(metrics.auc, y, p, num_resamples=50, seed=3)
    assert first != metrics.bootstrap_ci(metrics.auc, y, p, num_resamples=50, seed=4)
    assert first.low < metrics.auc(y, p) < first.high
    q = np.clip(p + rng.normal(0, 0.05, 2000), 0, 1)
    pd_ci = metrics.bootstrap_ci(metrics.relative_pd, p, q, num_resamples=50)
    assert pd_ci.low < metrics.relative_pd(p, q) < pd_ci.high


def test_mean_intervals_match_the_normal_approximation_and_the_classic_bootstrap():
    rng = np.random.default_rng(1)
    terms = rng.exponential(0.1, 20_000)
    half_width = 1.96 * terms.std() / np.sqrt(terms.size)
    poisson = metrics.bootstrap_mean_ci(terms, num_resamples=300, seed=0, chunk_size=3000)
    classic = metrics.bootstrap_ci(np.mean, terms, num_resamples=300, seed=0)
    for interval in (poisson, classic):
        assert interval.low < terms.mean() < interval.high
        assert interval.high - interval.low == pytest.approx(2 * half_width, rel=0.15)
    assert poisson == metrics.bootstrap_mean_ci(terms, num_resamples=300, seed=0, chunk_size=3000)


def test_bootstrap_mean_ci_rows_share_weights():
    rng = np.random.default_rng(2)
    terms = rng.random((3, 500))
    terms[2] = terms[0]  # identical rows must get identical intervals
    intervals = metrics.bootstrap_mean_ci(terms, num_resamples=100, seed=5)
    assert len(intervals) == 3
    assert intervals[0] == intervals[2]
    alone = metrics.bootstrap_mean_ci(terms[0], num_resamples=100, seed=5)
    assert intervals[0] == pytest.approx(alone, rel=1e-12)  # same weights; only BLAS rounding may differ


def test_invalid_options():
    with pytest.raises(ValueError, match="num_resamples"):
        metrics.bootstrap_ci(np.mean, [1.0, 2.0], num_resamples=1)
    with pytest.raises(ValueError, match="confidence"):
        metrics.bootstrap_mean_ci([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="Length mismatch"):
        metrics.bootstrap_ci(metrics.relative_pd, [0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        metrics.bootstrap_mean_ci([0.1, np.nan])
