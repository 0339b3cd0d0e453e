"""recsys.study.power: the paired power figure on subsets of the replicas and the fitted replica count."""
import math

import numpy as np
import pytest

from recsys.study.power import power_by_replicas


def _cells(replicas=8, examples=3000, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.3, examples)
    shared = rng.normal(0, 0.3, (replicas, 1)) + rng.normal(0, 0.2, (replicas, examples))  # replica r's noise
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    logit = np.log(base / (1 - base))
    own = rng.normal(0, 0.3, (replicas, 1)) + rng.normal(0, 0.1, (replicas, examples))  # the candidate's own noise
    return sigmoid(logit + shared), sigmoid(logit + 0.8 * shared + own)


def test_measured_points_and_fit():
    baseline, candidate = _cells(replicas=12)
    result = power_by_replicas(baseline, candidate, [3, 6, 12], resamples=100)
    points = result["points"]
    assert [p["replicas"] for p in points] == [3, 6, 12] and [p["pairs"] for p in points] == [3, 15, 66]
    # More replicas resolve smaller changes (3 vs 66 pairs: clear on every seed tried).
    assert points[0]["detectable_change"] > points[-1]["detectable_change"]
    fit = result["fit"]
    z = 1.959964 + 0.841621
    # The fit reproduces the mean scaled spread and solves exp(z·c/sqrt(P)) − 1 = target for P.
    assert fit["c"] == pytest.approx(np.mean([p["log_ratio_sd"] * math.sqrt(p["pairs"]) for p in points]))
    assert math.expm1(z * fit["c"] / math.sqrt(fit["pairs_needed"])) == pytest.approx(0.15, rel=1e-4)
    r = fit["replicas_needed"]
    assert r * (r - 1) / 2 >= fit["pairs_needed"] > (r - 1) * (r - 2) / 2


def test_replica_counts_are_checked():
    baseline, candidate = _cells(replicas=4)
    with pytest.raises(ValueError, match=r"replica counts must be in \[3, 4\].*\[2, 5\]"):
        power_by_replicas(baseline, candidate, [2, 3, 5])
