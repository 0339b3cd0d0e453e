"""The study's paired comparison with the baseline cell (issue 14 item 2), without training: the entries equal a
direct `compare_cells` call on the stored predictions, replicas pair by index (first min(R) when R differs), and
pairing narrows the interval when replica r of both cells shares its noise."""
import numpy as np
import pytest

from configs import study_smoke
from recsys.metrics import paired
from recsys.study import analysis, runner


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cells(replicas, examples, seed=0, candidate_scale=0.85, offset_sd=0.8, noise_sd=0.05):
    """A baseline and a candidate cell whose replica r shares a per-replica deviation (the same data order);
    the candidate's deviations are scaled by `candidate_scale` (lower PD)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(-1.2, 1.0, examples)
    labels = (rng.random(examples) < _sigmoid(truth)).astype(np.int8)
    deviation = (rng.normal(0.0, offset_sd, (replicas, 1)) * rng.normal(0.0, 1.0, (replicas, examples))
                 + rng.normal(0.0, noise_sd, (replicas, examples)))
    return _sigmoid(truth + deviation), _sigmoid(truth + candidate_scale * deviation), labels


def _config():
    config = study_smoke.get_config()
    config.analysis.bootstrap = 120
    config.analysis.seed = 3
    return config


def _entries(noise="shuffle"):
    return [
        {"cell": f"{noise}/relu", "noise": noise, "baseline": True, "status": "ok", "ensemble": False},
        {"cell": f"{noise}/relu#ensemble", "noise": noise, "baseline": False, "status": "ok", "ensemble": True},
        {"cell": f"{noise}/smelu_beta1", "noise": noise, "baseline": False, "status": "ok", "ensemble": False},
        {"cell": f"{noise}/swish", "noise": noise, "baseline": False, "status": "failed", "ensemble": False},
    ]


def test_paired_entries_equal_a_direct_compare_cells_call_on_the_first_min_r_replicas():
    baseline, candidate, labels = _cells(replicas=6, examples=800)
    candidate = candidate[:4]  # the baseline trained 6 replicas (for its ensembles), the candidate 4
    entries = _entries()
    config = _config()
    runner.add_paired_comparisons(entries, {"shuffle/relu": baseline, "shuffle/smelu_beta1": candidate}, labels,
                                  config)
    direct = paired.compare_cells(baseline[:4], candidate, labels, num_resamples=120, confidence=0.95, power=0.8,
                                  seed=3)
    smelu = entries[2]
    assert smelu["pd_ratio_to_baseline"] == direct["pd_ratio"]
    assert smelu["pd_ratio_ci"] == direct["pd_ratio_ci"]
    assert smelu["pd_ratio_ci_unpaired"] == direct["pd_ratio_ci_unpaired"]
    assert smelu["pd_verdict"] == direct["pd_ratio_verdict"]
    assert smelu["pd_ratio_detectable_change"] == direct["pd_ratio_detectable_change"]
    assert smelu["auc_difference"] == direct["auc_difference"]
    assert smelu["auc_difference_ci"] == direct["auc_difference_ci"]
    assert smelu["auc_verdict"] == direct["auc_difference_verdict"]
    assert smelu["auc_difference_detectable_change"] == direct["auc_difference_detectable_change"]
    assert smelu["paired_relative_pd"] == direct["candidate_pd"]
    assert smelu["paired_baseline_relative_pd"] == direct["baseline_pd"]
    assert smelu["paired_replicas"] == 4 and smelu["paired_baseline"] == "shuffle/relu"
    assert "first 4 replicas" in smelu["paired_note"] and "the baseline 6" in smelu["paired_note"]
    # Replica 0..3 of the baseline, not any other four.
    other = paired.compare_cells(baseline[2:], candidate, labels, num_resamples=120, seed=3)
    assert smelu["pd_ratio_ci"] != other["pd_ratio_ci"]
    # The baseline itself, ensembles and failed cells carry the keys, empty.
    for entry in (entries[0], entries[1], entries[3]):
        assert all(entry[key] is None for key in (*analysis.PAIRED_KEYS, "paired_baseline"))


def test_each_noise_source_is_compared_with_its_own_baseline():
    shuffle_base, shuffle_cand, labels = _cells(replicas=4, examples=500, seed=1)
    init_base, init_cand, _ = _cells(replicas=4, examples=500, seed=2)
    entries = _entries("shuffle") + _entries("init")
    predictions = {"shuffle/relu": shuffle_base, "shuffle/smelu_beta1": shuffle_cand,
                   "init/relu": init_base, "init/smelu_beta1": init_cand}
    runner.add_paired_comparisons(entries, predictions, labels, _config())
    assert entries[2]["paired_baseline"] == "shuffle/relu" and entries[6]["paired_baseline"] == "init/relu"
    assert entries[6]["pd_ratio_ci"] == paired.compare_cells(init_base, init_cand, labels, 120, seed=3)["pd_ratio_ci"]
    assert entries[2]["paired_note"] is None  # same R: nothing left out


def test_pairing_by_replica_index_narrows_the_ratio_interval():
    baseline, candidate, labels = _cells(replicas=6, examples=1500, candidate_scale=0.7)
    same_order = analysis.paired_to_baseline(baseline, candidate, labels, resamples=200, seed=1)
    paired_width = same_order["pd_ratio_ci"][1] - same_order["pd_ratio_ci"][0]
    unpaired_width = same_order["pd_ratio_ci_unpaired"][1] - same_order["pd_ratio_ci_unpaired"][0]
    assert paired_width < 0.25 * unpaired_width
    assert same_order["pd_verdict"] == "lower" and same_order["pd_ratio_ci"][1] < 0.8
    # The same replicas in another order: replica r no longer shares the baseline's noise, pairing gains nothing.
    shuffled = analysis.paired_to_baseline(baseline, candidate[[1, 2, 3, 4, 5, 0]], labels, resamples=200, seed=1)
    assert shuffled["pd_ratio_to_baseline"] == pytest.approx(same_order["pd_ratio_to_baseline"])
    assert shuffled["pd_ratio_ci"][1] - shuffled["pd_ratio_ci"][0] > 3 * paired_width
    assert shuffled["pd_ratio_detectable_change"] > 3 * same_order["pd_ratio_detectable_change"]


def test_results_md_opens_with_the_verdict_table():
    from recsys.study import report

    baseline, candidate, labels = _cells(replicas=4, examples=600, candidate_scale=0.6)
    entries = [dict(e, label=label, replicas=4, relative_pd=0.1, auc=0.7, parameters=1234)
               for e, label in zip(_entries(), ("ReLU", "ReLU 2-ensemble", "SmeLU β=1", "Swish"), strict=True)]
    runner.add_paired_comparisons(entries, {"shuffle/relu": baseline, "shuffle/smelu_beta1": candidate}, labels,
                                  _config())
    lines = report.verdict_section({"cells": entries, "study": {"analysis": {"bootstrap": 120, "confidence": 0.95,
                                                                             "power": 0.8}}})
    assert lines[0] == "## Verdicts against ReLU (paired)"
    rows = [line for line in lines if line.startswith("| shuffle |")]
    assert rows[0].startswith("| shuffle | ReLU (baseline: PD 10.00%, AUC 0.7000) | 1,234 | 4 | 1 |")
    smelu = entries[2]
    low, high = smelu["pd_ratio_ci"]
    assert rows[1].startswith(f"| shuffle | SmeLU β=1 | 1,234 | 4 | {smelu['pd_ratio_to_baseline']:.2f} "
                              f"[{low:.2f}, {high:.2f}] |")
    assert "| **lower** |" in rows[1] and len(rows) == 2  # ensembles and failed cells have no verdict
    assert report.verdict_section({"cells": entries[:1], "study": {"analysis": {}}}) == []
