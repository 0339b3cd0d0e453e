"""The comparison report: per-pair numbers, ensemble arithmetic, summary, Markdown, plot points."""
import json

import numpy as np
import pytest

from recsys import metrics
from recsys.metrics import report as report_lib


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    base = rng.beta(1.0, 4.0, 3000)
    predictions = np.clip(base + rng.normal(0, 0.03, (5, base.size)), 0, 1)
    labels = (rng.random(base.size) < base).astype(int)
    queries = rng.integers(0, 150, base.size)
    return predictions, labels, queries


def test_pairs_and_summary_use_the_library_functions(data):
    predictions, labels, queries = data
    names = ["a", "b", "c"]
    result = report_lib.compare_predictions(names, predictions[:3], labels, queries, bootstrap_resamples=20)
    report = result.report
    json.dumps(report, allow_nan=False)  # JSON-ready
    assert [m["name"] for m in report["models"]] == names
    assert report["models"][1]["auc"] == metrics.auc(labels, predictions[1])
    assert report["models"][1]["logloss"] == metrics.logloss(labels, predictions[1])
    assert report["models"][1]["calibration"] == metrics.calibration(labels, predictions[1])
    assert report["models"][1]["pqauc"] == metrics.pqauc(labels, predictions[1], queries).value
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [("a", "b"), ("a", "c"), ("b", "c")]
    pair = report["pairs"][2]
    assert pair["relative_pd"] == pytest.approx(metrics.relative_pd(predictions[1], predictions[2]), rel=1e-14)
    assert pair["absolute_pd"] == pytest.approx(metrics.absolute_pd(predictions[1], predictions[2]), rel=1e-14)
    assert pair["swap_rate"] == metrics.swap_rate(predictions[1], predictions[2], queries)
    assert pair["relative_pd_ci"][0] < pair["relative_pd"] < pair["relative_pd_ci"][1]
    # One bootstrap pass for all pairs gives each pair the same weights it would get alone.
    rel = metrics.relative_pd_terms(predictions[1], predictions[2])
    alone = metrics.bootstrap_mean_ci(rel, num_resamples=20, chunk_size=report_lib.BOOTSTRAP_CHUNK)
    assert pair["relative_pd_ci"] == pytest.approx(list(alone), rel=1e-12)
    summary = report["summary"]
    assert summary["mean_relative_pd"] == pytest.approx(np.mean([p["relative_pd"] for p in report["pairs"]]))
    assert summary["mean_relative_pd_ci"][0] < summary["mean_relative_pd"] < summary["mean_relative_pd_ci"][1]
    matrix = np.array(summary["relative_pd_matrix"])
    np.testing.assert_array_equal(matrix, matrix.T)
    assert matrix[0, 2] == report["pairs"][1]["relative_pd"] and matrix[1, 1] == 0.0
    assert summary["mean_per_example_std"] == metrics.mean_std(predictions[:3])
    assert report["ensembles"] == {"size": None, "models": [], "pairs": []}
    assert set(result.histograms) == {"mean over pairs", "a vs b", "a vs c", "b vs c"}
    assert sum(result.histograms["a vs b"][0]) + result.histograms["a vs b"][1] == labels.size


def test_ensemble_arithmetic(data):
    predictions, labels, _ = data
    names = ["m1", "m2", "m3", "m4", "m5"]
    report = report_lib.compare_predictions(names, predictions, labels, ensemble_size=2, bootstrap_resamples=0).report
    ensembles = report["ensembles"]
    first = (predictions[0] + predictions[1]) / 2
    second = (predictions[2] + predictions[3]) / 2
    assert [e["members"] for e in ensembles["models"]] == [["m1", "m2"], ["m3", "m4"]]
    assert ensembles["unused_models"] == ["m5"]
    assert ensembles["models"][0]["auc"] == metrics.auc(labels, first)
    assert ensembles["models"][1]["logloss"] == pytest.approx(metrics.logloss(labels, second), rel=1e-14)
    assert ensembles["pairs"][0]["relative_pd"] == pytest.approx(metrics.relative_pd(first, second), rel=1e-14)
    assert ensembles["mean_relative_pd"] == pytest.approx(metrics.relative_pd(first, second), rel=1e-14)
    # Averaging cancels independent noise: ensembles differ less than single models.
    assert ensembles["mean_relative_pd"] < report["summary"]["mean_relative_pd"]
    assert report["pairs"][0]["relative_pd_ci"] is None  # bootstrap off
    with pytest.raises(ValueError, match="ensemble_size=3 needs at least 6 models"):
        report_lib.compare_predictions(names, predictions, labels, ensemble_size=3)


def test_markdown_and_plot_points(data):
    predictions, labels, queries = data
    report = report_lib.compare_predictions(["base", "new"], predictions[:2], labels, queries,
                                            bootstrap_resamples=10).report
    text = report_lib.to_markdown(report)
    assert "| a | b | relative PD |" in text
    assert f"{100 * report['pairs'][0]['relative_pd']:.2f}%" in text
    points = report_lib.pd_vs_accuracy_points(report)
    assert report_lib.accuracy_key(report) == "pqauc"
    assert [p["name"] for p in points] == ["base", "new"]
    assert points[0]["loss_change_pct"] == 0.0
    base_loss, new_loss = 1 - report["models"][0]["pqauc"], 1 - report["models"][1]["pqauc"]
    assert points[1]["loss_change_pct"] == pytest.approx(100 * (new_loss - base_loss) / base_loss)
    assert points[0]["relative_pd"] == points[1]["relative_pd"] == report["pairs"][0]["relative_pd"]


def test_invalid_report_inputs(data):
    predictions, labels, _ = data
    with pytest.raises(ValueError, match="at least 2 models"):
        report_lib.compare_predictions(["a"], predictions[:1], labels)
    with pytest.raises(ValueError, match="Length mismatch"):
        report_lib.compare_predictions(["a", "b"], predictions[:2], labels[:10])
    with pytest.raises(ValueError, match="unique"):
        report_lib.compare_predictions(["a", "a"], predictions[:2], labels)


@pytest.mark.parametrize(
    "bad_value, message",
    [
        (1.5, "`predictions` must be probabilities in [0, 1]. Received 1.5 for model new, example 7"),
        (np.nan, "`predictions` must not contain NaN. Received NaN for model new, example 7"),
    ],
)
def test_a_bad_prediction_names_the_model_and_the_example(bad_value, message):
    # Not the index into the flattened [models, examples] array (2007 here).
    predictions = np.full((2, 2000), 0.25)
    predictions[1, 7] = bad_value
    labels = np.arange(2000) % 2
    with pytest.raises(ValueError) as info:
        report_lib.compare_predictions(["old", "new"], predictions, labels)
    assert str(info.value) == message


def test_check_model_predictions_without_names_gives_the_row():
    from recsys.metrics import validation

    with pytest.raises(ValueError) as info:
        validation.check_model_predictions([[0.1, 0.2], [0.3, -1.0]], min_models=2)
    assert str(info.value) == "`predictions` must be probabilities in [0, 1]. Received -1.0 for model 1, example 1"
