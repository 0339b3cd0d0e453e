"""Co-distillation (`config.codistill.weight`), distillation with replicas, and the progressive AUC curve."""
import os

import numpy as np
import pytest
import tensorflow as tf

from recsys.data.input import make_dataset
from recsys.training import task
from recsys.training.loop import Trainer
from tests.training.helpers import FEATURES, small_config

pytestmark = pytest.mark.usefixtures("restore_determinism")


def _weights(state) -> list[np.ndarray]:
    return [v.numpy() for v in state.model.variables]


def _manual_step(trainer: Trainer, batch, weight: float, peers_after_update: bool) -> list[list[np.ndarray]]:
    """Fresh copies of the trainer's two models, one co-distilled step on `batch` written out by hand.

    peers_after_update: the wrong order (model 1 learns from model 0 *after* model 0 trained on the batch).
    """
    config = trainer.config
    states = [task.build_model_state(trainer.spec, "label", config.optimizer, seed, trainer._new_metrics)
              for seed in trainer.plan.init_seeds]
    count = float(batch["label"].shape[0])
    logits_before = [s.model(batch, training=False) for s in states]
    for r, state in enumerate(states):
        peer = states[1 - r]
        peer_logits = peer.model(batch, training=False) if peers_after_update else logits_before[1 - r]
        target = tf.sigmoid(peer_logits)
        variables = state.model.embedding_variables + state.model.dense_variables
        with tf.GradientTape() as tape:
            logits = state.model(batch, training=True)
            soft = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
            loss = tf.reduce_sum((1 - weight) * state.model.per_example_loss(batch, logits) + weight * soft) / count
        gradients = tape.gradient(loss, variables)
        split = len(state.model.embedding_variables)
        state.embedding_optimizer.apply_gradients(zip(gradients[:split], variables[:split], strict=True))
        state.dense_optimizer.apply_gradients(zip(gradients[split:], variables[split:], strict=True))
    return [_weights(s) for s in states]


def test_codistilled_step_uses_the_peers_pre_update_predictions(stream, tmp_path):
    config = small_config(stream, **{"replicas.count": 2, "replicas.noise": "init", "data.shuffle": "none",
                                     "data.max_examples": 64, "codistill.weight": 0.6})
    trainer = Trainer(config, str(tmp_path / "run"))
    metrics = trainer.run().metrics
    assert metrics["codistill_weight"] == 0.6 and metrics["steps"] == 1
    got = [_weights(s) for s in trainer.states]

    batch = next(iter(make_dataset(stream, FEATURES, 64)))
    want = _manual_step(trainer, batch, 0.6, peers_after_update=False)
    wrong = _manual_step(trainer, batch, 0.6, peers_after_update=True)
    for model_got, model_want in zip(got, want, strict=True):
        for a, b in zip(model_got, model_want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The wrong order gives measurably different weights for model 1, so the check above can fail.
    assert max(np.max(np.abs(a - b)) for a, b in zip(got[1], wrong[1], strict=True)) > 1e-5


def _final_pd(trainer: Trainer, batch) -> float:
    from recsys.metrics import pd as pd_lib

    p = [tf.sigmoid(state.model(batch, training=False)).numpy() for state in trainer.states]
    return pd_lib.relative_pd(p[0], p[1])


# The init case is slow (issue 17): the same effect under the other noise source.
@pytest.mark.parametrize("noise", ["shuffle", pytest.param("init", marks=pytest.mark.slow)])
def test_codistillation_lowers_pd(stream, tmp_path, noise):
    base = {"replicas.count": 2, "replicas.noise": noise, "optimizer.dense_learning_rate": 0.2}
    plain = Trainer(small_config(stream, **base), str(tmp_path / "plain"))
    plain_metrics = plain.run().metrics
    codistilled = Trainer(small_config(stream, **base, **{"codistill.weight": 0.8}), str(tmp_path / "codistilled"))
    metrics = codistilled.run().metrics
    assert plain_metrics["progressive_pd_examples"] == metrics["progressive_pd_examples"] == 1200
    batch = next(iter(make_dataset(stream, FEATURES, 1200)))
    assert _final_pd(codistilled, batch) < 0.7 * _final_pd(plain, batch), (
        _final_pd(codistilled, batch), _final_pd(plain, batch))


@pytest.mark.parametrize("overrides, message", [
    ({"codistill.weight": 0.5}, "replicas.count is 1"),
    ({"codistill.weight": 1.0, "replicas.count": 2}, "in [0, 1) (0 = off). Received: 1.0"),
    ({"codistill.weight": -0.1, "replicas.count": 2}, "Received: -0.1"),
    ({"codistill.weight": 0.5, "replicas.count": 2, "replicas.noise": "init", "distill.teacher": "online"},
     "not both"),
    ({"replicas.count": 2, "replicas.noise": "shuffle", "distill.teacher": "online"}, "Use replicas.noise='init'"),
])
def test_bad_codistill_configs_are_refused(stream, tmp_path, overrides, message):
    with pytest.raises(ValueError) as error:
        Trainer(small_config(stream, **overrides), str(tmp_path / "run"))
    assert message in str(error.value)


def test_online_teacher_with_student_replicas(stream, tmp_path):
    """R = 2 students on one order learn from one online teacher; each student is exported, and so is the
    teacher; the students' PD and the teacher's progressive AUC are reported."""
    config = small_config(stream, export_saved_model=True, **{
        "replicas.count": 2, "replicas.noise": "init", "data.shuffle": "none", "distill.teacher": "online",
        "distill.weight": 0.7,
        "distill.teacher_activation": "gsmelu:trainable=true"})
    trainer = Trainer(config, str(tmp_path / "run"), record_predictions=True)
    metrics = trainer.run().metrics
    assert len(trainer.states) == 3 and len(metrics["models"]) == 2
    assert 0.0 < metrics["teacher_progressive_auc"] < 1.0
    assert metrics["progressive_relative_pd"] > 0 and metrics["progressive_pd_examples"] == 1200
    for name in ("saved_model", "saved_model_1", "saved_model_teacher"):
        assert os.path.isdir(tmp_path / "run" / name), name
    # The teacher is initialised apart from both students (init seeds 0, 1 → teacher 2).
    teacher_init = task.build_model_state(trainer.mode.teacher_spec(), "label", config.optimizer, 2,
                                          trainer._new_metrics)
    batch = next(iter(make_dataset(stream, FEATURES, 64)))
    np.testing.assert_allclose(trainer.recorded[0][1][2], tf.sigmoid(teacher_init.model(batch)).numpy(),
                               rtol=0, atol=1e-6)


def test_progress_curve_ends_at_the_final_progressive_auc(stream, tmp_path):
    config = small_config(stream, **{"replicas.count": 2, "replicas.noise": "init"})
    metrics = Trainer(config, str(tmp_path / "run")).run().metrics
    curve = metrics["progressive_curve"]
    examples = curve["examples"]
    assert examples == sorted(set(examples)) and examples[-1] == metrics["examples"] == 1200
    assert len(curve["auc"]) == 2 and all(len(row) == len(examples) for row in curve["auc"] + curve["window_auc"])
    assert curve["auc"][0][-1] == metrics["progressive_auc"]
    assert curve["auc"][1][-1] == metrics["models"][1]["progressive_auc"]
    assert len(examples) >= 1200 // (64 * 5)  # a point at least at every log step (5 steps of 64)


def test_saved_model_teacher_with_student_replicas(stream, tmp_path):
    """Two students (init noise) of one frozen SavedModel teacher: both are pulled towards it."""
    from recsys.training.export import export_saved_model

    base = small_config(stream, **{"replicas.count": 2, "replicas.noise": "init"})
    init = Trainer(base, str(tmp_path / "init"))
    teacher_path = str(tmp_path / "teacher")
    export_saved_model(init.states[0].model, init.features, teacher_path)  # a constant-ish, untrained teacher

    students = Trainer(small_config(stream, **{"replicas.count": 2, "replicas.noise": "init",
                                               "distill.teacher": teacher_path, "distill.weight": 0.9}),
                       str(tmp_path / "students"))
    students.run()
    plain = Trainer(base, str(tmp_path / "plain"))
    plain.run()
    assert len(students.states) == 2  # no online teacher state
    batch = next(iter(make_dataset(stream, FEATURES, 1200)))
    teacher = tf.sigmoid(init.states[0].model(batch)).numpy()
    for r in range(2):
        gap_distilled = np.mean(np.abs(tf.sigmoid(students.states[r].model(batch)).numpy() - teacher))
        gap_plain = np.mean(np.abs(tf.sigmoid(plain.states[r].model(batch)).numpy() - teacher))
        assert gap_distilled < 0.5 * gap_plain, (r, gap_distilled, gap_plain)


def test_checkpoint_without_a_progress_curve_still_resumes(stream, tmp_path):
    """A checkpoint written before `progress_curve` existed (simulated: checkpoint 5 re-saved without it) resumes;
    the curve then starts at the resume point, and the metrics end as in an uninterrupted run."""
    from recsys.training.loop import train
    from tests.training.helpers import workdir_at_checkpoint

    overrides = {"keep_checkpoints": 100}
    straight, legacy = tmp_path / "straight", tmp_path / "legacy"
    reference = train(small_config(stream, **overrides), str(straight)).metrics
    trainer = Trainer(small_config(stream, **overrides), str(tmp_path / "scratch"))
    objects = trainer.checkpoint._objects
    tf.train.Checkpoint(**objects).restore(str(straight / "checkpoints" / "ckpt-5")).assert_existing_objects_matched()
    old_format = tf.train.Checkpoint(**{k: v for k, v in objects.items() if k != "progress_curve"})
    tf.train.CheckpointManager(old_format, str(legacy / "checkpoints"), max_to_keep=1,
                               checkpoint_name="ckpt").save(checkpoint_number=5)
    (legacy / "config.json").write_text((straight / "config.json").read_text())
    saved = tf.train.load_checkpoint(str(legacy / "checkpoints" / "ckpt-5")).get_variable_to_shape_map()
    assert not any(name.startswith("progress_curve") for name in saved)
    workdir_at_checkpoint(legacy, tmp_path / "resumed", 5)

    metrics = Trainer(small_config(stream, **overrides), str(tmp_path / "resumed")).run().metrics
    assert metrics["progressive_auc"] == reference["progressive_auc"]
    assert metrics["examples"] == reference["examples"] and metrics["steps"] == reference["steps"]
    curve = metrics["progressive_curve"]["examples"]
    assert curve == [x for x in reference["progressive_curve"]["examples"] if x > 5 * 64] and curve
