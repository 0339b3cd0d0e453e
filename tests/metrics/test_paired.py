"""Paired cell comparison: brute force on a tiny case, pairing, verdicts, the power figure, bad inputs."""
import itertools
import json

import numpy as np
import pytest
from scipy.stats import poisson

from recsys.metrics import paired


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cells(replicas, examples, seed=0, offset_sd=0.6, noise_sd=0.15, candidate_scale=0.85, scale_jitter=0.0):
    """Two cells whose replica r shares a per-replica offset (same data order); the candidate's is scaled."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(-1.2, 1.0, examples)
    labels = (rng.random(examples) < _sigmoid(truth)).astype(np.int8)
    direction = rng.normal(0.0, 1.0, (replicas, examples))  # how replica r's data order bends its predictions
    offset = rng.normal(0.0, offset_sd, (replicas, 1)) * direction + rng.normal(0.0, noise_sd, (replicas, examples))
    scale = candidate_scale * (1.0 + scale_jitter * rng.normal(0.0, 1.0, (replicas, 1)))
    baseline = _sigmoid(truth + offset)
    candidate = _sigmoid(truth + scale * offset)
    return baseline, candidate, labels


def _brute_weighted_auc(labels, p, w):
    correct = positives = negatives = 0.0
    for t in range(len(labels)):
        if labels[t] == 1:
            positives += w[t]
        else:
            negatives += w[t]
        for u in range(len(labels)):
            if labels[t] == 1 and labels[u] == 0:
                correct += w[t] * w[u] * (1.0 if p[t] > p[u] else 0.5 if p[t] == p[u] else 0.0)
    if positives == 0 or negatives == 0:
        return float("nan")
    return correct / (positives * negatives)


def _brute_pd(predictions, drawn, w):
    values = []
    for a, b in itertools.combinations(range(len(drawn)), 2):
        if drawn[a] == drawn[b]:
            continue  # a replica drawn twice is not paired with itself
        p, q = predictions[drawn[a]], predictions[drawn[b]]
        terms = [2.0 * abs(x - y) / (x + y) for x, y in zip(p, q, strict=True)]
        values.append(sum(wt * d for wt, d in zip(w, terms, strict=True)) / sum(w))
    return float(np.mean(values)) if values else float("nan")


def test_paired_bootstrap_equals_brute_force_on_a_tiny_case():
    replicas, examples, resamples, seed = 3, 6, 9, 5
    rng = np.random.default_rng(11)
    # Rounded to one decimal so that tied predictions (AUC counts them half) occur within and across classes.
    baseline = np.round(rng.uniform(0.1, 0.9, (replicas, examples)), 1)
    candidate = np.round(rng.uniform(0.1, 0.9, (replicas, examples)), 1)
    labels = np.array([1, 0, 1, 0, 0, 1])

    # The documented draw order: R replica indices per resample, then Poisson(1) weights by table lookup.
    draws = np.random.default_rng(seed)
    picks = draws.integers(0, replicas, size=(resamples, replicas))
    table = poisson.ppf((np.arange(1 << 16) + 0.5) / (1 << 16), 1.0)
    assert paired.block_size(resamples, examples) == resamples  # one block: weights drawn as one [B, T] array
    weights = table[draws.integers(0, 1 << 16, size=(resamples, examples), dtype=np.uint16)]

    expected = {name: [] for name in ("baseline_pd", "candidate_pd", "baseline_auc", "candidate_auc")}
    for drawn, w in zip(picks, weights, strict=True):
        for cell, predictions in (("baseline", baseline), ("candidate", candidate)):
            expected[f"{cell}_pd"].append(_brute_pd(predictions, drawn, w))
            expected[f"{cell}_auc"].append(np.mean([_brute_weighted_auc(labels, predictions[r], w) for r in drawn]))

    result = paired.paired_bootstrap(baseline, candidate, labels, num_resamples=resamples, seed=seed)
    for name, values in expected.items():
        np.testing.assert_allclose(getattr(result, name), values, rtol=1e-12, equal_nan=True, err_msg=name)
    assert np.isfinite(result.baseline_pd).sum() >= 5 and np.isfinite(result.baseline_auc).sum() >= 5

    # The ratio and its intervals are percentiles of exactly these values (unpaired: cells from resamples b, b+1).
    ratio = paired.paired_pd_ratio(baseline, candidate, num_resamples=resamples, seed=seed)
    keep = np.isfinite(expected["baseline_pd"])
    base, cand = np.asarray(expected["baseline_pd"])[keep], np.asarray(expected["candidate_pd"])[keep]
    np.testing.assert_allclose(ratio.ci, np.percentile(cand / base, [2.5, 97.5]), rtol=1e-12)
    np.testing.assert_allclose(ratio.ci_unpaired, np.percentile(cand / np.roll(base, -1), [2.5, 97.5]), rtol=1e-12)
    full = [_brute_pd(cell, list(range(replicas)), np.ones(examples)) for cell in (baseline, candidate)]
    assert ratio.ratio == pytest.approx(full[1] / full[0], rel=1e-12)
    assert ratio.resamples_used == keep.sum()


def test_pairing_narrows_the_interval_when_replicas_share_noise():
    baseline, candidate, labels = _cells(replicas=6, examples=1500, offset_sd=0.8, noise_sd=0.05)
    result = paired.paired_pd_ratio(baseline, candidate, num_resamples=200, seed=1)
    paired_width = result.ci[1] - result.ci[0]
    unpaired_width = result.ci_unpaired[1] - result.ci_unpaired[0]
    assert result.ci[0] <= result.ratio <= result.ci[1]
    assert paired_width < 0.25 * unpaired_width, (result.ci, result.ci_unpaired)


def test_verdicts_lower_higher_and_identical_cells():
    baseline, candidate, labels = _cells(replicas=5, examples=1500, candidate_scale=0.6)
    lower = paired.compare_cells(baseline, candidate, labels, num_resamples=150, seed=2)
    assert lower["pd_ratio"] < 0.75 and lower["pd_ratio_verdict"] == "lower"
    higher = paired.compare_cells(candidate, baseline, labels, num_resamples=150, seed=2)
    assert higher["pd_ratio_verdict"] == "higher"
    # The noisier baseline is less accurate, so the candidate's AUC is higher, and swapping the cells flips it.
    assert lower["auc_difference"] > 0 and lower["auc_difference_verdict"] == "higher"
    assert higher["auc_difference_verdict"] == "lower"

    same = paired.compare_cells(baseline, baseline.copy(), labels, num_resamples=150, seed=2)
    assert same["pd_ratio"] == 1.0 and same["pd_ratio_ci"] == [1.0, 1.0]
    assert same["pd_ratio_verdict"] == "not resolved"
    assert same["auc_difference"] == 0.0 and same["auc_difference_ci"] == [0.0, 0.0]
    assert same["auc_difference_verdict"] == "not resolved"


def test_verdict_rule():
    assert paired.verdict([0.7, 0.95], 1.0) == "lower"
    assert paired.verdict([1.01, 1.3], 1.0) == "higher"
    assert paired.verdict([0.9, 1.1], 1.0) == "not resolved"
    assert paired.verdict([0.8, 1.0], 1.0) == "not resolved"  # touching the null does not resolve
    assert paired.verdict(None, 0.0) == "not resolved"


def test_detectable_change_shrinks_with_more_replicas_examples_or_less_noise():
    def detectable(replicas, examples, jitter=0.1):
        # `jitter`: how much the candidate/baseline PD ratio varies from one replica (data order) to the next.
        baseline, candidate, _ = _cells(replicas, examples, seed=3, scale_jitter=jitter)
        return paired.paired_pd_ratio(baseline, candidate, num_resamples=200, seed=0).detectable_change

    reference = detectable(4, 500)
    assert 0.0 < reference < 1.0
    # The definition: exp((z_{1-α/2} + z_power)·sd(log ratio)) − 1, sd over the paired resamples.
    baseline, candidate, _ = _cells(4, 500, seed=3, scale_jitter=0.1)
    result = paired.paired_pd_ratio(baseline, candidate, num_resamples=200, confidence=0.9, power=0.9, seed=0)
    draws = paired.paired_bootstrap(baseline, candidate, num_resamples=200, seed=0)
    log_ratios = np.log(draws.candidate_pd / draws.baseline_pd)
    log_sd = np.std(log_ratios[np.isfinite(log_ratios)], ddof=1)  # resamples that drew one replica have no PD
    assert result.log_ratio_sd == pytest.approx(log_sd, rel=1e-12)
    assert result.detectable_change == pytest.approx(np.expm1((1.6448536 + 1.2815516) * log_sd), rel=1e-6)
    assert detectable(16, 500) < 0.7 * reference
    assert detectable(4, 8000) < 0.7 * reference
    assert detectable(4, 500, jitter=0.01) < 0.7 * reference


def test_compare_cells_is_json_ready_and_seeded():
    baseline, candidate, labels = _cells(replicas=3, examples=300)
    first = paired.compare_cells(baseline, candidate, labels, num_resamples=50, confidence=0.9, seed=7)
    assert first == paired.compare_cells(baseline, candidate, labels, num_resamples=50, confidence=0.9, seed=7)
    assert first["pd_ratio_ci"] != paired.compare_cells(
        baseline, candidate, labels, num_resamples=50, confidence=0.9, seed=8)["pd_ratio_ci"]
    assert json.loads(json.dumps(first)) == first
    for key in ("pd_ratio", "pd_ratio_ci", "pd_ratio_ci_unpaired", "pd_ratio_verdict", "auc_difference",
                "auc_difference_ci", "auc_difference_verdict", "pd_ratio_detectable_change"):
        assert first[key] is not None, key
    assert (first["replicas"], first["examples"], first["num_resamples"], first["confidence"]) == (3, 300, 50, 0.9)
    # The PD part does not depend on whether the AUC is computed too: the draws are the same.
    alone = paired.paired_pd_ratio(baseline, candidate, num_resamples=50, confidence=0.9, seed=7)
    assert alone.ci == first["pd_ratio_ci"]
    auc = paired.paired_auc_difference(baseline, candidate, labels, num_resamples=50, confidence=0.9, seed=7)
    assert auc.ci == first["auc_difference_ci"]


_P = np.full((3, 4), 0.5)
_Y = np.array([0, 1, 0, 1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(candidate_predictions=np.full((4, 4), 0.5)), r"same shape .* Received \(3, 4\) and \(4, 4\)"),
        (dict(baseline_predictions=_P[:1], candidate_predictions=_P[:1]), r"at least 2 replicas .*\(1, 4\)"),
        (dict(baseline_predictions=_P[0]), r"`baseline_predictions` must have shape \[replicas, examples\]"),
        (dict(candidate_predictions=np.where(np.eye(3, 4) > 0, np.nan, 0.5)), r"`candidate_predictions` must be "
         r"finite. Received nan at \[replica, example\] = \(0, 0\)"),
        (dict(baseline_predictions=np.where(np.eye(3, 4) > 0, np.inf, 0.5)), r"must be finite. Received inf"),
        (dict(baseline_predictions=_P + 0.6), r"must be probabilities in \[0, 1\]. Received 1.1"),
        (dict(labels=np.zeros(4)), r"both classes .* Received 0 positives, 4 negatives"),
        (dict(labels=np.array([0, 1, 0])), r"one entry per example \(4.*Received 3"),
        (dict(labels=np.array([0, 1, 2, 1])), r"`labels` must be 0 or 1. Received 2"),
        (dict(confidence=1.0), r"`confidence` must be a number in \(0, 1\).*confidence=1.0"),
        (dict(confidence=95), r"confidence=95"),
        (dict(power=0.0), r"`power` must be a number in \(0, 1\).*power=0.0"),
        (dict(num_resamples=1), r"`num_resamples` must be an integer >= 2. Received: num_resamples=1"),
        (dict(seed=-1), r"`seed` must be a non-negative integer.*seed=-1"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    arguments = dict(baseline_predictions=_P, candidate_predictions=_P, labels=_Y, num_resamples=10)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        paired.compare_cells(**arguments)


def test_zero_baseline_pd_gives_no_ratio():
    candidate = np.array([[0.2, 0.4, 0.6], [0.3, 0.4, 0.5]])
    result = paired.paired_pd_ratio(np.full((2, 3), 0.5), candidate, num_resamples=20)
    assert result.ratio is None and result.ci is None and result.verdict == "not resolved"
