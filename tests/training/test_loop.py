"""The online loop in process: score-before-train, outputs, checkpoints, finished reruns, NaN guard, bad input."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from recsys.data import input as input_lib
from recsys.data.input import InputDataError
from recsys.metrics.streaming import ProgressiveMetrics
from recsys.training import task
from recsys.training.loop import NonFiniteLossError, Trainer, train
from tests.training.helpers import FEATURES, small_config, toy_rows, write_examples, write_stream

TIMING_KEYS = ("examples_per_sec", "train_seconds", "steady_examples_per_sec", "progressive_metrics_seconds")


def _metrics(workdir) -> dict:
    return json.loads((workdir / "metrics.json").read_text())


def test_progressive_metrics_equal_a_manual_score_then_train_loop(stream, tmp_path):
    config = small_config(stream, **{"model.activation": "smelu:beta=1;relu"})
    trainer = Trainer(config, str(tmp_path / "run"))
    outputs = trainer.run()

    # Manual reference: the same stream and initialisation; score each batch with a separate forward pass,
    # then train on it. Also record what train-then-score would have given, to show the test can tell them apart.
    # The training forward pass runs fused kernels (layer norm, SmeLU) that equal the inference ops up to float
    # rounding (checked here too); scoring uses it so that the comparison is exact up to rounding of the sums.
    manual = task.build_model_state(trainer.spec, "label", config.optimizer, init_seed=config.seed.init,
                                    metrics_factory=lambda: ProgressiveMetrics(window=config.metrics_window,
                                                                               auc_bins=config.metrics_auc_bins))
    after_update = ProgressiveMetrics(window=config.metrics_window)
    step = tf.function(lambda batch: task.replica_train_step([manual], batch, "label"))
    score = tf.function(lambda batch, training: tf.sigmoid(manual.model(batch, training=training)))
    for batch in trainer.source.dataset(config.data.batch_size):
        scores = score(batch, True).numpy()
        np.testing.assert_allclose(score(batch, False).numpy(), scores, rtol=1e-5)
        manual.metrics.update(batch["label"].numpy(), scores)
        step(batch)
        after_update.update(batch["label"].numpy(), score(batch, True).numpy())

    expected = manual.metrics.result()
    got = outputs.metrics
    assert got["examples"] == expected["examples"] == 1200
    for key in ("auc", "logloss", "calibration", "window_auc", "window_logloss", "window_calibration"):
        assert got[f"progressive_{key}"] == pytest.approx(expected[key], rel=1e-6, abs=1e-7), key
    assert abs(after_update.result()["logloss"] - expected["logloss"]) > 1e-4
    for trained, reference in zip(trainer.states[0].model.variables, manual.model.variables, strict=True):
        np.testing.assert_allclose(trained.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


def test_outputs_and_metrics_json(stream, plain_run):
    _, returned, workdir = plain_run  # small_config(stream, export_saved_model=True), trained once (conftest.py)
    metrics = _metrics(workdir)
    assert metrics == returned
    for key in ("examples", "progressive_auc", "progressive_logloss", "progressive_calibration", "examples_per_sec",
                "progressive_window_auc", "steps"):
        assert key in metrics, key
    assert metrics["examples"] == 1200 and metrics["steps"] == 19  # 18 full batches of 64 + one of 48
    assert 0 < metrics["progressive_auc"] < 1 and metrics["progressive_logloss"] > 0
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["data"]["features"] == os.path.join(os.path.dirname(stream), "features.json")
    assert saved["model"]["hidden_units"] == [16, 8]
    assert (workdir / "saved_model" / "saved_model.pb").exists()
    assert list((workdir / "tb").iterdir())
    # keep_checkpoints=2: the final one and one before it.
    index_files = sorted(p.name for p in (workdir / "checkpoints").glob("ckpt-*.index"))
    assert index_files == ["ckpt-15.index", "ckpt-19.index"]
    scores = tf.saved_model.load(str(workdir / "saved_model")).signatures["serving_default"]
    first = next(iter(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(stream)), "GZIP").batch(5)))
    assert scores(examples=first)["probabilities"].shape == (5,)


def test_finished_workdir_rerun_changes_nothing_and_restores_missing_outputs(stream, tmp_path):
    workdir = tmp_path / "run"
    config = small_config(stream, export_saved_model=True)
    first = train(config, str(workdir)).metrics
    watched = [workdir / "metrics.json", workdir / "saved_model" / "saved_model.pb",
               workdir / "checkpoints" / "checkpoint"]
    stamps = [p.stat().st_mtime_ns for p in watched]
    # A finished run is resumable with different logging/checkpoint settings: nothing is trained.
    again = train(small_config(stream, export_saved_model=True, log_every_steps=7), str(workdir)).metrics
    assert [p.stat().st_mtime_ns for p in watched] == stamps
    assert {k: v for k, v in again.items() if k not in TIMING_KEYS} == {
        k: v for k, v in first.items() if k not in TIMING_KEYS}
    # Outputs lost after the final checkpoint are rebuilt from it.
    (workdir / "metrics.json").unlink()
    tf.io.gfile.rmtree(str(workdir / "saved_model"))
    train(config, str(workdir))
    assert {k: v for k, v in _metrics(workdir).items() if k not in TIMING_KEYS} == {
        k: v for k, v in first.items() if k not in TIMING_KEYS}
    assert (workdir / "saved_model" / "saved_model.pb").exists()


def test_a_different_config_is_refused_on_resume(stream, tmp_path):
    workdir = str(tmp_path / "run")
    train(small_config(stream, **{"data.max_examples": 128}), workdir)
    with pytest.raises(ValueError, match=r"different config.*model\.activation: 'relu' -> 'smelu'"):
        train(small_config(stream, **{"data.max_examples": 128, "model.activation": "smelu"}), workdir)


def test_max_examples_stops_at_the_batch_boundary(stream, tmp_path):
    metrics = train(small_config(stream, **{"data.max_examples": 100}), str(tmp_path / "run")).metrics
    assert metrics["examples"] == 128 and metrics["steps"] == 2


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    rows = toy_rows(1000)
    rows[700]["I1"] = float("nan")  # in step 11 (examples 641..704) with batch 64 and no shuffling
    data = tmp_path / "data"
    data.mkdir()
    FEATURES.save(str(data / "features.json"))
    write_examples(data / "part-00000.tfrecord.gz", rows)
    workdir = tmp_path / "run"
    config = small_config(str(data / "part-*.tfrecord.gz"), **{"data.shuffle": "none", "checkpoint_every_steps": 3})
    with pytest.raises(NonFiniteLossError, match=r"at step 11 \(examples 641\.\.704\).*ckpt-9"):
        train(config, str(workdir))
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-9")
    assert not (workdir / "metrics.json").exists()
    reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
    assert reader.get_tensor("examples/.ATTRIBUTES/VARIABLE_VALUE") == 9 * 64


def _error(config, workdir):
    with pytest.raises(Exception) as info:
        train(config, str(workdir))
    return info


def test_missing_glob_fails_fast(tmp_path):
    info = _error(small_config(str(tmp_path / "nothing" / "part-*")), tmp_path / "run")
    assert info.type is FileNotFoundError and "matches no files" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_missing_features_file(tmp_path):
    write_examples(tmp_path / "part-0.tfrecord", toy_rows(3))
    info = _error(small_config(str(tmp_path / "part-*")), tmp_path / "run")
    assert info.type is FileNotFoundError and "features.json" in str(info.value)


def test_empty_input_fails_fast(tmp_path):
    FEATURES.save(str(tmp_path / "features.json"))
    write_examples(tmp_path / "part-0.tfrecord.gz", [])
    info = _error(small_config(str(tmp_path / "part-*")), tmp_path / "run")
    assert info.type is InputDataError and "hold no records" in str(info.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda row: row.pop("C2"), r"features \['C2'\] are missing"),
        (lambda row: row.update(C3=1), r"features \['C3'\] are not in features.json"),
        (lambda row: row.update(C1=10), r"categorical 'C1' has id 10 outside \[0, vocab_size=10\)"),
        (lambda row: row.update(I1=1), "feature 'I1' is int64_list, features.json says float32"),
        (lambda row: row.update(label=2), "label 'label' is 2"),
    ],
)
def test_records_that_do_not_match_features_json(tmp_path, change, message):
    rows = toy_rows(20)
    change(rows[13])
    FEATURES.save(str(tmp_path / "features.json"))
    write_examples(tmp_path / "part-0.tfrecord.gz", rows)
    info = _error(small_config(str(tmp_path / "part-*")), tmp_path / "run")
    assert info.type is InputDataError
    assert "Record 13" in str(info.value) and info.match(message)


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"strategy": "gpu"}, ValueError, "`config.strategy` must be one of"),
        ({"strategy": "tpu"}, ValueError, "strategy='tpu' needs static shapes"),
        ({"data.shuffle": "random"}, ValueError, "`config.data.shuffle` must be one of"),
        ({"optimizer.dense": "rmsprop"}, ValueError, "`config.optimizer.dense` must be one of"),
        ({"optimizer.embedding_learning_rate": 0.0}, ValueError, "embedding_learning_rate` must be positive"),
        ({"checkpoint_every_steps": 0}, ValueError, "checkpoint_every_steps` must be a positive integer"),
        ({"model.categorical": "C1,C7"}, ValueError, "'C7', which is not a categorical feature"),
    ],
)
def test_bad_config(stream, tmp_path, overrides, error, message):
    info = _error(small_config(stream, **overrides), tmp_path / "run")
    assert info.type is error and info.match(message)


def test_data_stream_has_the_expected_length_from_summary_json(tmp_path):
    glob = write_stream(tmp_path / "d", shards=2, rows=10)
    (tmp_path / "d" / "summary.json").write_text(json.dumps({"rows_in": 21, "rows_ok": 20, "rows_bad": 1}))
    trainer = Trainer(small_config(glob), str(tmp_path / "run"))
    assert trainer.source.expected_examples() == 20
    assert trainer.source.expected_examples(max_examples=7) == 7
    # A subset of the shards: counted, as summary.json lists no per-shard rows here.
    only_one = Trainer(small_config(str(tmp_path / "d" / "part-00000*")), str(tmp_path / "run2"))
    assert only_one.source.expected_examples() == 10
    # With per-shard rows (as the preprocessing job writes them), a subset is the sum of its shards' rows.
    names = sorted(p.name for p in (tmp_path / "d").glob("part-*"))
    (tmp_path / "d" / "summary.json").write_text(json.dumps(
        {"rows_in": 21, "rows_ok": 20, "rows_bad": 1, "shards": [{"name": names[0], "rows": 9}]}))
    assert only_one.source.expected_examples() == 9  # from summary.json, not counted
    input_lib.COUNT_LIMIT_BYTES, limit = 0, input_lib.COUNT_LIMIT_BYTES
    try:
        unknown = Trainer(small_config(str(tmp_path / "d" / "part-00001*")), str(tmp_path / "run3"))
        assert unknown.source.expected_examples() is None  # not listed and too big to count
    finally:
        input_lib.COUNT_LIMIT_BYTES = limit


def test_tensorboard_scalars(stream, tmp_path):
    from recsys.training.summaries import read_scalars

    metrics = train(small_config(stream, **{"data.max_examples": 640}), str(tmp_path / "run")).metrics
    scalars = read_scalars(str(tmp_path / "run" / "tb"))
    assert {"progressive/auc", "progressive/logloss", "progressive/window_calibration", "train/loss",
            "train/examples_per_sec"} <= set(scalars)
    assert [step for step, _ in scalars["train/loss"]] == [320, 640]  # x-axis: examples, every 5 steps of 64
    # Curves: the last point of each progressive metric is the run's final value (stored as float32).
    for key in ("auc", "logloss", "calibration"):
        assert scalars[f"progressive/{key}"][-1] == (640, pytest.approx(metrics[f"progressive_{key}"], rel=1e-6))


def test_summaries_are_tensorboard_scalars_and_read_back(tmp_path):
    from recsys.training.summaries import read_scalars

    # tf.summary.scalar hands over to the pinned tensorboard package (it raises without it); only its scalars are
    # read back, through TensorBoard's own event-file reader.
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step, value in ((10, 0.5), (20, 0.25)):
            tf.summary.scalar("progressive/auc/model_1", value, step=step)
        tf.summary.text("notes", "not a scalar", step=1)
    writer.flush()
    assert read_scalars(str(tmp_path)) == {"progressive/auc/model_1": [(10, 0.5), (20, 0.25)]}


def test_several_models_share_one_stream(stream, tmp_path):
    workdir = tmp_path / "run"
    config = small_config(stream, **{"data.max_examples": 256, "export_saved_model": True})
    trainer = Trainer(config, str(workdir), num_models=2)
    metrics = trainer.run().metrics
    assert len(metrics["models"]) == 2 and metrics["models"][0] == metrics["models"][1]
    assert (workdir / "saved_model").exists() and (workdir / "saved_model_1").exists()
    single = train(config, str(tmp_path / "single")).metrics
    assert metrics["progressive_logloss"] == pytest.approx(single["progressive_logloss"], rel=1e-6)
