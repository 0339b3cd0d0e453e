"""Study arithmetic on hand numbers: AUC-loss change, PD over replica pairs, ensembles, intervals, progressive."""
import numpy as np
import pytest

from recsys.metrics import pair_bootstrap_ci, pair_terms, relative_pd
from recsys.metrics.report import compare_predictions
from recsys.study import analysis
from recsys.study.runner import add_baseline_changes


def test_baseline_changes_use_the_relu_cell_of_the_same_noise():
    entries = [
        {"noise": "shuffle", "baseline": True, "status": "ok", "auc": 0.80, "relative_pd": 0.12},
        {"noise": "shuffle", "baseline": False, "status": "ok", "auc": 0.81, "relative_pd": 0.06},
        {"noise": "init", "baseline": True, "status": "ok", "auc": 0.70, "relative_pd": 0.20},
        {"noise": "init", "baseline": False, "status": "ok", "auc": 0.67, "relative_pd": 0.10},
    ]
    add_baseline_changes(entries)
    assert entries[0]["auc_loss_change_pct"] == 0.0 and entries[0]["relative_pd_vs_relu"] == 1.0
    assert entries[1]["auc_loss_change_pct"] == pytest.approx(100 * (0.19 - 0.20) / 0.20)  # -5%
    assert entries[1]["relative_pd_vs_relu"] == pytest.approx(0.5)
    assert entries[3]["auc_loss_change_pct"] == pytest.approx(100 * (0.33 - 0.30) / 0.30)  # +10%


def test_replica_summary_is_the_mean_pd_over_all_pairs():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.01, 0.5, 500)
    predictions = np.stack([np.clip(base * rng.uniform(0.8, 1.2, 500), 0, 1) for _ in range(4)])
    labels = (rng.uniform(size=500) < base).astype(float)
    summary = analysis.replica_summary(predictions, labels, resamples=100)
    expected = [relative_pd(predictions[i], predictions[j]) for i in range(4) for j in range(i + 1, 4)]
    assert summary["pairs"] == 6
    assert summary["relative_pd"] == pytest.approx(np.mean(expected))
    assert summary["relative_pd_median"] == pytest.approx(np.median(expected))
    assert summary["relative_pd_max"] == pytest.approx(max(expected))
    assert [p["relative_pd"] for p in summary["relative_pd_pairs"]] == pytest.approx(expected)
    low, high = summary["relative_pd_ci"]
    assert low < summary["relative_pd"] < high
    report = compare_predictions(["a", "b", "c", "d"], predictions, labels, bootstrap_resamples=0)
    assert summary["auc"] == pytest.approx(np.mean([m["auc"] for m in report.report["models"]]))
    assert summary["relative_pd"] == pytest.approx(report.report["summary"]["mean_relative_pd"])


def test_replica_bootstrap_sees_one_diverging_replica():
    # Three replicas agree, the fourth differs by 50%: pairs with it have PD 0.4, the others 0.
    base = np.linspace(0.05, 0.5, 1000)
    predictions = np.stack([base, base, base, base * 1.5])
    summary = analysis.replica_summary(predictions, (base > 0.3).astype(float), resamples=400)
    assert summary["relative_pd"] == pytest.approx(0.4 / 2)  # 3 of 6 pairs at 0.4
    assert summary["relative_pd_median"] == pytest.approx(0.2) and summary["relative_pd_max"] == pytest.approx(0.4)
    low, high = summary["relative_pd_ci"]
    # Resampling replicas can leave the diverging one out (PD 0) or draw it often: the interval shows it.
    assert low == pytest.approx(0.0, abs=1e-12) and high > 0.3
    # Examples alone would give a narrow interval: every example's terms are identical here.
    examples_only = pair_bootstrap_ci(pair_terms(predictions, [(0, 3)]), num_resamples=100)
    assert examples_only == pytest.approx([0.4, 0.4])


def test_ensemble_pd_on_hand_numbers():
    predictions = np.array([[0.1, 0.2], [0.3, 0.2], [0.2, 0.4], [0.2, 0.4]])
    labels = np.array([0.0, 1.0])
    summary = analysis.ensemble_summary(predictions, labels, k=2, resamples=50)
    # Splits (01|23): [.2,.2] vs [.2,.4] -> (0 + .4/.6)/2 = 1/3; (02|13) and (03|12): [.15,.3] vs [.25,.3] -> .25.
    assert summary["pairs"] == 3 and summary["ensembles"] == 6
    assert [p["relative_pd"] for p in summary["relative_pd_pairs"]] == pytest.approx([1 / 3, 0.25, 0.25])
    assert summary["relative_pd"] == pytest.approx((1 / 3 + 0.5) / 3)
    assert summary["relative_pd_median"] == pytest.approx(0.25)
    assert summary["relative_pd_max"] == pytest.approx(1 / 3)
    assert summary["relative_pd_pairs"][0]["a"] == [0, 1] and summary["relative_pd_pairs"][0]["b"] == [2, 3]
    # The comparator's ensemble of the first k vs the next k is the study's first split.
    report = compare_predictions(["r0", "r1", "r2", "r3"], predictions, labels, ensemble_size=2,
                                 bootstrap_resamples=0)
    assert report.report["ensembles"]["pairs"][0]["relative_pd"] == pytest.approx(1 / 3)


def test_ensemble_splits_of_six_replicas_into_triples():
    splits = analysis.ensemble_splits(6, 3)
    assert len(splits) == 10  # C(6, 3) / 2
    for a, b in splits:
        assert len(a) == len(b) == 3 and not set(a) & set(b) and set(a) | set(b) == set(range(6))
    assert len(analysis.ensemble_splits(12, 3, max_splits=50)) == 50
    assert analysis.ensemble_splits(12, 3, max_splits=50) == analysis.ensemble_splits(12, 3, max_splits=50)
    with pytest.raises(ValueError, match="at least 2k replicas"):
        analysis.ensemble_splits(5, 3)


def test_progressive_summary_from_replica_mode_and_separate_runs():
    replica_mode = [{
        "examples": 1000, "examples_per_sec": 500.0, "train_seconds": 2.0,
        "progressive_relative_pd": 0.08, "window_relative_pd": 0.07, "progressive_absolute_pd": 0.01,
        "replicas": [{"progressive_auc": 0.70, "progressive_logloss": 0.5}, {"progressive_auc": 0.72,
                                                                             "progressive_logloss": 0.4}],
    }]
    summary = analysis.progressive_summary(replica_mode, replicas=2)
    assert summary["trainer_mode"] == "replicas" and summary["models_per_trainer_run"] == 2
    assert summary["progressive_auc"] == pytest.approx(0.71)
    assert summary["progressive_relative_pd"] == 0.08 and summary["window_relative_pd"] == 0.07
    separate = [{"examples": 1000, "examples_per_sec": 400.0, "train_seconds": 2.5, "progressive_auc": 0.6},
                {"examples": 1000, "examples_per_sec": 600.0, "train_seconds": 1.5, "progressive_auc": 0.8}]
    summary = analysis.progressive_summary(separate, replicas=2)
    assert summary["trainer_mode"] == "separate" and summary["progressive_relative_pd"] is None
    assert summary["examples_per_sec"] == 500.0 and summary["train_seconds"] == 4.0
    assert summary["progressive_auc"] == pytest.approx(0.7)
    # A per-pair matrix of progressive PD reduces to the mean over pairs.
    assert analysis._pd_value([[0, 0.1, 0.3], [0.1, 0, 0.2], [0.3, 0.2, 0]]) == pytest.approx(0.2)


def test_mean_matching_removes_a_global_logit_offset_only():
    rng = np.random.default_rng(1)
    logits = rng.normal(-2.0, 1.0, 2000)
    shifted = np.stack([1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(-(logits + 0.5)))])
    matched = analysis.mean_matched(shifted)
    assert matched.mean(axis=1) == pytest.approx([shifted.mean()] * 2, abs=1e-9)
    assert relative_pd(matched[0], matched[1]) < 1e-6  # same ranking and spread: nothing left
    summary = analysis.replica_summary(shifted, (logits > -1).astype(float), resamples=20)
    assert summary["relative_pd"] > 0.3 and summary["relative_pd_mean_matched"] < 1e-6
    noisy = np.stack([shifted[0], np.clip(shifted[0] * rng.uniform(0.7, 1.3, 2000), 0, 1)])
    assert analysis.replica_summary(noisy, (logits > -1).astype(float), resamples=20)[
        "relative_pd_mean_matched"] > 0.05


def test_examples_to_reach_needs_the_curve_to_stay_above_the_target():
    curve = {"examples": [100, 200, 300, 400, 500], "auc": [0.70, 0.60, 0.66, 0.67, 0.68]}
    assert analysis.examples_to_reach(curve, 0.65) == 300  # the lucky first point does not count
    assert analysis.examples_to_reach(curve, 0.68) == 500
    assert analysis.examples_to_reach(curve, 0.69) is None
    assert analysis.examples_to_reach(None, 0.5) is None


def test_interpolate_at_pd_only_inside_the_range():
    points = [(0.10, 0.70), (0.20, 0.74)]
    assert analysis.interpolate_at_pd(points, 0.15) == pytest.approx(0.72)
    assert analysis.interpolate_at_pd(points, 0.25) is None
    assert analysis.interpolate_at_pd([(0.1, 0.7)], 0.1) == 0.7


def _entry(label, spec, role="", pd=0.1, auc=0.7, curve=None, **extra):
    return {"status": "ok", "ensemble": False, "label": label, "cell": label, "spec": spec, "noise": "init",
            "role": role, "relative_pd": pd, "auc": auc, "progressive_auc_curve": curve, **extra}


def test_distillation_summary_compares_students_with_the_same_activation_alone():
    alone_curve = {"examples": [100, 200, 300], "auc": [0.60, 0.64, 0.66]}
    entries = [
        _entry("SmeLU", "smelu:beta=1", pd=0.15, auc=0.70, curve=alone_curve, progressive_auc=0.66),
        _entry("gSmeLU", "gsmelu:trainable=true", pd=0.30, auc=0.72),
        _entry("student 0.3", "smelu:beta=1", "student", pd=0.20, auc=0.71, weight=0.3,
               teacher="gsmelu:trainable=true", curve={"examples": [100, 200, 300], "auc": [0.62, 0.67, 0.69]}),
        _entry("student 0.7", "smelu:beta=1", "student", pd=0.10, auc=0.69, weight=0.7,
               teacher="gsmelu:trainable=true", curve={"examples": [100, 200, 300], "auc": [0.60, 0.62, 0.65]}),
        _entry("ReLU co", "relu", "codistilled", pd=0.05, auc=0.68, weight=0.5),
    ]
    summary = analysis.distillation_summary(entries)
    assert [s["student"] for s in summary] == ["student 0.3", "student 0.7"]
    first, second = summary
    assert first["alone_relative_pd"] == 0.15 and first["teacher_alone_auc"] == 0.72
    assert first["student_auc_at_alone_pd"] == pytest.approx(0.70)  # halfway between (0.10, 0.69), (0.20, 0.71)
    assert first["examples_to_reach_alone_auc"] == 200 and second["examples_to_reach_alone_auc"] is None
    assert first["alone_examples_to_reach_own_auc"] == 300
    assert first["student_auc_loss_change_vs_alone_pct"] == pytest.approx(100 * (0.29 - 0.30) / 0.30)
    assert [c["label"] for c in first["codistilled"]] == ["ReLU co"]
