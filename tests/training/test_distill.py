"""Distillation in the trainer (`config.distill`, recsys.training.distill): real runs, real SavedModel teachers."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from recsys.data.input import make_dataset
from recsys.training import task
from recsys.training.distill import DistillSpec
from recsys.training.export import export_saved_model
from recsys.training.loop import Trainer
from tests.conftest import CRITEO_SAMPLE
from tests.entry_points import run_main
from tests.training.helpers import (
    FEATURES,
    REPO_ROOT,
    small_config,
    subprocess_env,
    train_command,
    workdir_at_checkpoint,
)

pytestmark = pytest.mark.usefixtures("restore_determinism")


def _student_weights(trainer: Trainer) -> list[np.ndarray]:
    return [v.numpy() for v in trainer.states[0].model.variables]


def test_weight_zero_equals_plain_training_exactly(stream, plain_run, tmp_path):
    plain = plain_run[0]  # small_config(stream), exported too (conftest.py): the same training
    distilled = Trainer(small_config(stream, **{"distill.teacher": "online", "distill.weight": 0.0}),
                        str(tmp_path / "distilled"))
    metrics = distilled.run().metrics
    assert len(distilled.states) == 2 and metrics["distill_weight"] == 0.0
    for a, b in zip(_student_weights(plain), _student_weights(distilled), strict=True):
        np.testing.assert_array_equal(a, b)
    # The teacher really trained (it is not the student: other init), and reported its own progressive AUC.
    assert 0.0 < metrics["teacher_progressive_auc"] < 1.0
    assert not np.array_equal(distilled.states[1].model.variables[0].numpy(), _student_weights(distilled)[0])


def test_teacher_predictions_for_a_batch_come_before_any_update_on_it(stream, tmp_path):
    config = small_config(stream, **{"distill.teacher": "online", "distill.weight": 0.7, "data.shuffle": "none",
                                     "data.max_examples": 128})
    trainer = Trainer(config, str(tmp_path / "run"), record_predictions=True)
    trainer.run()
    recorded_teacher = [probabilities[1] for _, probabilities in trainer.recorded]
    assert len(recorded_teacher) == 2

    # A fresh copy of the teacher (same spec and seed) scores batch 1, trains on it, scores batch 2.
    batches = list(make_dataset(stream, FEATURES, 64).take(3))
    fresh = task.build_model_state(trainer.mode.teacher_spec(), "label", config.optimizer, int(config.seed.init) + 1,
                                   trainer._new_metrics)
    strategy = tf.distribute.get_strategy()
    train_step = task.make_synchronous_step(strategy, lambda batch: task.replica_train_step([fresh], batch, "label"))
    expected = []
    for batch in batches[:2]:
        expected.append(tf.sigmoid(fresh.model(batch, training=False)).numpy())
        train_step(batch)
    after_own_update = tf.sigmoid(fresh.model(batches[1], training=False)).numpy()
    for got, want in zip(recorded_teacher, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # Predictions from a teacher that had trained on batch 2 would differ measurably.
    assert np.max(np.abs(after_own_update - recorded_teacher[1])) > 1e-4
    # The student's recorded predictions are its own, not the teacher's.
    assert np.max(np.abs(trainer.recorded[0][1][0] - recorded_teacher[0])) > 1e-4


def _score(path: str, serialized: tf.Tensor) -> np.ndarray:
    return tf.saved_model.load(path).signatures["serving_default"](examples=serialized)["probabilities"].numpy()


def test_self_distilled_student_stays_closer_to_its_teacher(stream, plain_run, tmp_path):
    base = small_config(stream, export_saved_model=True)
    init = Trainer(base, str(tmp_path / "init"))
    teacher_path = str(tmp_path / "teacher")
    export_saved_model(init.states[0].model, init.features, teacher_path)  # 0 steps: the student's own init

    distilled = small_config(stream, export_saved_model=True,
                             **{"distill.teacher": teacher_path, "distill.weight": 0.9, "distill.temperature": 1.0})
    Trainer(distilled, str(tmp_path / "distilled")).run()
    plain = plain_run[2]  # `base` trained (conftest.py)

    serialized = next(iter(make_dataset(stream, FEATURES, 1200, keep_serialized=True)))["__serialized__"]
    teacher = _score(teacher_path, serialized)
    gap_distilled = np.mean(np.abs(_score(str(tmp_path / "distilled" / "saved_model"), serialized) - teacher))
    gap_plain = np.mean(np.abs(_score(str(plain / "saved_model"), serialized) - teacher))
    assert gap_distilled < 0.5 * gap_plain, (gap_distilled, gap_plain)


@pytest.mark.parametrize(
    "overrides, message",
    [({"distill.weight": 1.5}, "weight=1.5"), ({"distill.temperature": 0.0}, "temperature=0.0"),
     ({"distill.teacher": "/no/such/dir"}, "/no/such/dir")],
)
def test_bad_distill_config_is_refused(stream, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        DistillSpec.from_config(small_config(stream, **overrides).distill)


def test_teacher_with_other_features_is_refused(stream, tmp_path):
    from recsys.testing import toy_feature_set

    other = toy_feature_set(num_numeric=2, vocab_sizes=(10, 99))
    init = Trainer(small_config(stream), str(tmp_path / "init"))
    path = str(tmp_path / "teacher")
    export_saved_model(init.states[0].model, init.features, path,
                       extra_files={"features.json": json.dumps(other.to_json())})
    with pytest.raises(ValueError, match="other features: C2"):
        Trainer(small_config(stream, **{"distill.teacher": path}), str(tmp_path / "run"))


def test_cli_fails_fast_on_a_teacher_without_the_serving_signature(stream, tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: {"scores": x * 2.0}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "wrong"), signatures={"predict": module.f})
    # The job's main in this process (issue 17: a fresh Python with TensorFlow costs seconds); the command's own
    # process runs in tests/pipelines/test_console.py and tests/training/test_resume.py.
    result = run_main("pipelines.train", *train_command(tmp_path / "run", stream,
                                                        **{"distill.teacher": str(tmp_path / "wrong")})[3:])
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "no 'serving_default' signature" in last and "predict" in last, last
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


# Slow (issue 17): preprocess + two CLI trainings; each part has its own default-suite test (docs/performance.md).
@pytest.mark.slow
def test_distill_smoke_end_to_end_on_the_bundled_sample(tmp_path):
    """Preprocess the bundled Criteo rows, train an online teacher + student, then distil from the exported teacher."""
    env = subprocess_env()
    data_dir = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "pipelines.preprocess", f"--input={CRITEO_SAMPLE}",
                    f"--output_dir={data_dir}", "--rows_per_shard=5000"],
                   cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=300)
    glob = str(data_dir / "part-*.tfrecord.gz")

    def train(workdir, *extra):
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.train", "--config=configs/distill_smoke.py", f"--workdir={workdir}",
             f"--config.data.train={glob}", *extra],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        with open(os.path.join(workdir, "metrics.json")) as f:
            return json.load(f)

    online = train(tmp_path / "online")
    assert online["examples"] == 10_000 and online["distill_weight"] == 0.5
    # 10k rows, one pass, a tiny model: both learn a little (one measured run: teacher AUC 0.549).
    assert 0.5 < online["teacher_progressive_auc"] < 1.0 and 0.5 < online["progressive_auc"] < 1.0
    teacher = str(tmp_path / "online" / "saved_model_teacher")
    assert os.path.isdir(teacher) and os.path.isdir(tmp_path / "online" / "saved_model")

    student = train(tmp_path / "student", f"--config.distill.teacher={teacher}")
    assert student["distill_teacher"] == teacher and "teacher_progressive_auc" not in student
    assert 0.5 < student["progressive_auc"] < 1.0
    for name in ("config.json", "checkpoints", "tb", "saved_model"):
        assert os.path.exists(tmp_path / "student" / name), name


def test_online_teacher_run_resumes_exactly(stream, tmp_path):
    """Killed after step 5 and rerun: students, teacher, optimizer slots, progressive metrics (teacher's too), the
    students' PD and the progress curve end as in an uninterrupted run."""
    from recsys.training.loop import train

    overrides = {"replicas.count": 2, "replicas.noise": "init", "distill.teacher": "online", "distill.weight": 0.5,
                 "distill.teacher_activation": "gsmelu:trainable=true", "keep_checkpoints": 100}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    reference = train(small_config(stream, **overrides), str(straight)).metrics
    workdir_at_checkpoint(straight, resumed, 5)
    trainer = Trainer(small_config(stream, **overrides), str(resumed), record_predictions=True)
    metrics = trainer.run().metrics
    assert len(trainer.recorded) == reference["steps"] - 5
    timing = {"examples_per_sec", "train_seconds", "steady_examples_per_sec", "progressive_metrics_seconds"}
    assert {k: v for k, v in metrics.items() if k not in timing} == {
        k: v for k, v in reference.items() if k not in timing}
    assert reference["teacher_progressive_auc"] is not None and reference["progressive_relative_pd"] > 0
    straight_reader = tf.train.load_checkpoint(str(straight / "checkpoints"))
    resumed_reader = tf.train.load_checkpoint(str(resumed / "checkpoints"))
    names = [n for n in straight_reader.get_variable_to_shape_map()
             if not n.startswith(("train_seconds", "_CHECKPOINTABLE_OBJECT_GRAPH"))]
    assert any(n.startswith("models/2/") for n in names)  # the teacher (third model) is checkpointed
    assert any(n.startswith("progress_curve/") for n in names) and any(n.startswith("replica_pd/") for n in names)
    for name in names:
        assert np.array_equal(straight_reader.get_tensor(name), resumed_reader.get_tensor(name)), name
