"""recsys.metrics.comparison: the comparator's inputs (records, prediction files, model names) and outputs."""
import json

import numpy as np
import pytest

from recsys.metrics import comparison, report
from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords


def test_model_names_follow_the_trainer_workdir_layout(tmp_path):
    taken: set[str] = set()
    for sub in ("relu", "relu/saved_model", "relu/saved_model_1", "smelu/saved_model_1"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    names = [comparison.model_name(str(tmp_path / sub), taken) for sub in
             ("relu", "relu/saved_model", "relu/saved_model_1", "smelu/saved_model_1")]
    assert names == ["relu", "relu_2", "relu_r1", "smelu_r1"]
    assert comparison.model_name(str(tmp_path / "scores" / "new.npy"), taken) == "new"


def test_load_column_reads_npy_and_text_and_names_bad_files(tmp_path):
    np.save(tmp_path / "p.npy", np.array([[0.1], [0.2]], np.float32))
    np.testing.assert_array_equal(comparison.load_column(str(tmp_path / "p.npy")), np.array([0.1, 0.2], np.float32))
    (tmp_path / "p.txt").write_text("0.5\n0.25\n1\n")
    np.testing.assert_array_equal(comparison.load_column(str(tmp_path / "p.txt")), [0.5, 0.25, 1.0])
    with pytest.raises(comparison.ComparisonInputError, match="file not found: /no/such.npy"):
        comparison.load_column("/no/such.npy")
    (tmp_path / "bad.txt").write_text("0.5 oops\n")
    with pytest.raises(comparison.ComparisonInputError, match="cannot read .*bad.txt: "):
        comparison.load_column(str(tmp_path / "bad.txt"))
    np.save(tmp_path / "wide.npy", np.zeros((3, 2)))
    with pytest.raises(comparison.ComparisonInputError, match=r"must hold one column of numbers; got shape \(3, 2\)"):
        comparison.load_column(str(tmp_path / "wide.npy"))


def test_score_records_reads_once_in_file_order(tmp_path):
    import tensorflow as tf

    from recsys.serving.scorer import SavedModelScorer

    features = toy_feature_set()
    write_toy_tfrecords(str(tmp_path / "eval-0.tfrecord.gz"), features, 30, seed=1)
    write_toy_tfrecords(str(tmp_path / "eval-1.tfrecord"), features, 20, seed=2)
    export_toy_saved_model(str(tmp_path / "model"), features, seed=0)
    scored = comparison.score_records(str(tmp_path / "eval-*"), features, [SavedModelScorer(str(tmp_path / "model"))],
                                      "C1", batch_size=16)
    records = list(tf.data.TFRecordDataset(str(tmp_path / "eval-0.tfrecord.gz"), compression_type="GZIP"))
    records += list(tf.data.TFRecordDataset(str(tmp_path / "eval-1.tfrecord")))
    parsed = tf.io.parse_example(tf.stack(records), features.parse_spec())
    np.testing.assert_array_equal(scored.labels, parsed["label"].numpy())
    np.testing.assert_array_equal(scored.query_ids, parsed["C1"].numpy())
    want = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"](
        examples=tf.stack(records))["probabilities"].numpy()
    assert len(scored.predictions) == 1 and scored.predictions[0].dtype == np.float32
    np.testing.assert_array_equal(scored.predictions[0], want)

    labels_only = comparison.score_records(str(tmp_path / "eval-*"), features, [], None, batch_size=7)
    assert labels_only.query_ids is None and labels_only.predictions == [] and labels_only.labels.size == 50
    with pytest.raises(comparison.ComparisonInputError, match="no files match .*nothing-"):
        comparison.score_records(str(tmp_path / "nothing-*"), features, [], None, batch_size=7)
    (tmp_path / "junk.tfrecord").write_bytes(b"not a TFRecord file" * 10)
    with pytest.raises(comparison.ComparisonInputError, match="cannot read or parse .*junk"):
        comparison.score_records(str(tmp_path / "junk.tfrecord"), features, [], None, batch_size=7)


def test_write_outputs_writes_the_report_files(tmp_path):
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.3).astype(np.int64)
    predictions = np.clip(rng.random((2, 200)), 0.01, 0.99)
    result = report.compare_predictions(["a", "b"], predictions, labels, None, bootstrap_resamples=0)
    comparison.write_outputs(str(tmp_path / "out"), result)
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [m["name"] for m in written["models"]] == ["a", "b"]
    assert (tmp_path / "out" / "report.md").read_text() == report.to_markdown(result.report)
    assert (tmp_path / "out" / "pd_vs_auc.png").stat().st_size > 0 and (tmp_path / "out" / "pd_hist.png").exists()
