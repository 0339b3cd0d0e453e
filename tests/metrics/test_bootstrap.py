"""Bootstrap intervals: seeded, cover the estimate, agree with each other and with the normal approximation."""
import numpy as np
import pytest

from recsys import metrics
from recsys.metrics import bootstrap
from recsys.metrics import report as report_lib


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


@pytest.fixture(scope="module")
def four_models():
    rng = np.random.default_rng(7)
    base = rng.uniform(0.02, 0.6, 20_000)  # more than one 16,384-example chunk
    predictions = np.stack([np.clip(base * rng.uniform(0.7, 1.3, base.size), 0, 1) for _ in range(4)])
    labels = (rng.uniform(size=base.size) < base).astype(float)
    return predictions, labels


def test_intervals_reproduce_recorded_values(four_models):
    # Recorded from the code before the study's bootstrap moved into recsys.metrics (commit 984f117): the same
    # weight draws in the same order give the same intervals, so published results.json/report.json stand.
    # (rel=1e-12 leaves room for BLAS rounding on another machine; a changed draw moves them by ~1e-3.)
    predictions, labels = four_models
    pairs = metrics.all_pairs(4)
    terms = metrics.pair_terms(predictions, pairs)
    replica = metrics.replica_bootstrap_ci(terms, pairs, 4, num_resamples=40, seed=3)
    assert list(replica) == pytest.approx([0.19976501412378433, 0.2037036218703862], rel=1e-12, abs=0)
    pair = metrics.pair_bootstrap_ci(terms, num_resamples=40, seed=3)
    assert list(pair) == pytest.approx([0.1996174466168348, 0.2024847696846541], rel=1e-12, abs=0)
    report = report_lib.compare_predictions(["a", "b", "c", "d"], predictions, labels, bootstrap_resamples=40,
                                            seed=3).report
    assert report["pairs"][0]["relative_pd_ci"] == pytest.approx(
        [0.20034568002577835, 0.20459365906792035], rel=1e-12, abs=0)
    assert report["pairs"][5]["absolute_pd_ci"] == pytest.approx(
        [0.0615714218497682, 0.06300063644132105], rel=1e-12, abs=0)
    assert report["summary"]["mean_relative_pd_ci"] == pytest.approx(
        [0.20019064072219678, 0.20243095071856032], rel=1e-12, abs=0)
    assert report["summary"]["mean_absolute_pd_ci"] == pytest.approx(
        [0.061640151970022455, 0.06256171668135856], rel=1e-12, abs=0)


def test_replica_bootstrap_of_one_pair_keeps_the_resamples_that_draw_both_models(four_models):
    # Two models: a resample draws both (one pair) or one twice (no pair, dropped). The kept resamples' example
    # weights are those of the pair bootstrap (drawn first, from the same seed), so its values are a subset.
    predictions, _ = four_models
    terms = metrics.pair_terms(predictions[:2], [(0, 1)])
    means = bootstrap.poisson_resample_means(bootstrap.column_chunks(terms, 16_384), 200,
                                             np.random.default_rng(1), bootstrap.POISSON_EXACT)[:, 0]
    replica = metrics.replica_bootstrap_ci(terms, [(0, 1)], 2, num_resamples=200, seed=1)
    pair = metrics.pair_bootstrap_ci(terms, num_resamples=200, seed=1)
    assert pair == pytest.approx(np.percentile(means, [2.5, 97.5]), rel=1e-12)
    assert means.min() <= replica.low < terms.mean() < replica.high <= means.max()


def test_study_bootstrap_options_are_checked():
    terms = np.full((1, 10), 0.1)
    with pytest.raises(ValueError, match="num_resamples"):
        metrics.replica_bootstrap_ci(terms, [(0, 1)], 2, num_resamples=1)
    with pytest.raises(ValueError, match="analysis.bootstrap"):
        bootstrap.check_options(True, 0.9, "analysis.bootstrap", "analysis.confidence")
    with pytest.raises(ValueError, match="analysis.confidence"):
        bootstrap.check_options(10, 1.0, "analysis.bootstrap", "analysis.confidence")
    with pytest.raises(ValueError, match="sampler"):
        bootstrap.poisson_resample_means([terms], 10, np.random.default_rng(0), sampler="normal")
