"""Settling (issue 15): weight averaging, learning-rate schedules and the jitter metric."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from recsys.data import input as input_lib
from recsys.model import ModelSpec
from recsys.training import modes, task
from recsys.training.averaging import AveragingSpec
from recsys.training.loop import Trainer, train
from recsys.training.metrics_record import TrainingMetrics
from recsys.training.replicas import ReplicaPlan
from recsys.training.schedules import ExampleSchedule, ScheduleSpec
from recsys.training.settling import SettlingSpec, SettlingSteps
from recsys.training.summaries import read_scalars
from tests.training.helpers import FEATURES, assert_resume_is_exact, small_config

AVERAGED = {"averaging.ema_decay": 0.9, "averaging.progressive_averaged": True}


def _batch(seed: int, n: int = 16) -> dict[str, tf.Tensor]:
    rng = np.random.default_rng(seed)
    batch = {"label": tf.constant(rng.random(n) < 0.4, tf.int64), "ts": tf.range(n, dtype=tf.int64)}
    for f in FEATURES.numeric:
        batch[f.name] = tf.constant(rng.exponential(size=n), tf.float32)
    for f in FEATURES.categorical:
        batch[f.name] = tf.constant(rng.integers(0, f.vocab_size, n), tf.int64)
    return batch


# --------------------------------------------------------------------------------------------------------------
# Weight averaging.


@pytest.mark.parametrize("every_steps, start_examples", [(1, 0), (1, 32), (3, 0), (3, 48)])
def test_ema_equals_a_hand_computation_over_a_few_steps(every_steps, start_examples):
    """k = every_steps: the average moves only after steps k, 2k, ... (a <- d^k a + (1 - d^k) w, or a <- w while
    step·B <= start_examples); in between it stays exactly as it was. Driven as the modes drive it."""
    config = small_config("unused", **{"model.hidden_units": (4,), "averaging.ema_decay": 0.75,
                                       "averaging.start_examples": start_examples,
                                       "averaging.every_steps": every_steps, "data.batch_size": 16})
    spec = ModelSpec.from_config(config.model, FEATURES)
    settling = SettlingSpec(schedule=ScheduleSpec(batch_size=16), averaging=AveragingSpec.from_config(config))
    state = task.build_model_state(spec, "label", config.optimizer, init_seed=0, metrics_factory=lambda: None,
                                   settling=settling)
    settle = SettlingSteps(tf.distribute.get_strategy(), [state], settling, lambda batch: [batch])
    step = tf.function(lambda batch: task.replica_train_step([state], batch, "label"))
    average = [v.numpy() for v in state.model.trainable_variables]  # starts at the live weights
    stored = average
    for k in range(1, 8):
        batch = _batch(seed=k)
        assert settle.before_step(k, batch) is None  # no jitter
        step(batch)
        settle.after_step(k)
        got = [v.numpy() for v in state.average.model.trainable_variables]
        if k % every_steps:
            for before, now in zip(stored, got, strict=True):
                np.testing.assert_array_equal(now, before)
            continue
        live = [v.numpy() for v in state.model.trainable_variables]
        decay = np.float32(0.75**every_steps) if k * 16 > start_examples else np.float32(0.0)
        average = [decay * a + (np.float32(1) - decay) * w for a, w in zip(average, live, strict=True)]
        for expected, now in zip(average, got, strict=True):
            np.testing.assert_allclose(now, expected, rtol=1e-6, atol=1e-7)
        stored = got
    # The average lags the live weights: it is not just a copy.
    assert not np.allclose(average[-1], live[-1])


def test_average_that_has_not_started_scores_and_exports_like_the_live_model(stream, tmp_path,
                                                                              restore_determinism):
    """start_examples beyond the stream: the average is the live weights after every step, so its score-before-
    train predictions are the live ones exactly (the averaged pass reads the weights before the step's update)."""
    workdir = tmp_path / "run"
    config = small_config(stream, **AVERAGED, **{"averaging.start_examples": 10**6, "export_saved_model": True})
    metrics = train(config, str(workdir)).metrics
    for key in ("auc", "logloss", "calibration"):
        assert metrics[f"progressive_averaged_{key}"] == metrics[f"progressive_{key}"], key


def test_averaged_weights_are_exported_and_scored(stream, tmp_path, restore_determinism):
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(tf.io.gfile.glob(stream)[0], "GZIP").take(64)]

    def serve(path):
        loaded = tf.saved_model.load(str(path))
        return loaded.signatures["serving_default"](examples=tf.constant(serialized))["probabilities"].numpy()

    runs = {}
    for export in ("averaged", "live"):
        config = small_config(stream, **AVERAGED, **{"averaging.export": export, "export_saved_model": True})
        trainer = Trainer(config, str(tmp_path / export))
        runs[export] = trainer.run().metrics, serve(tmp_path / export / "saved_model"), trainer.states[0]
    metrics, averaged_scores, state = runs["averaged"]
    parsed = tf.io.parse_example(serialized, {f.name: tf.io.FixedLenFeature([], tf.int64 if f.type == "int64"
                                                                             else tf.float32)
                                              for f in FEATURES.features})
    np.testing.assert_allclose(averaged_scores, tf.sigmoid(state.average.model(parsed)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(runs["live"][1], tf.sigmoid(state.model(parsed)).numpy(), rtol=1e-5)
    assert not np.allclose(averaged_scores, runs["live"][1], rtol=1e-3)
    # The averaged weights score worse-calibrated/differently than the live ones, and both are reported.
    assert metrics["ema_decay"] == 0.9 and metrics["export_weights"] == "averaged"
    assert metrics["progressive_averaged_logloss"] != metrics["progressive_logloss"]
    assert metrics["averaged_models"][0]["progressive_averaged_auc"] == metrics["progressive_averaged_auc"]
    assert runs["live"][0]["export_weights"] == "live"
    assert {k: v for k, v in runs["live"][0].items() if "export" not in k and "second" not in k
            and "per_sec" not in k and k != "saved_models"} == {
        k: v for k, v in metrics.items() if "export" not in k and "second" not in k and "per_sec" not in k
        and k != "saved_models"}
    scalars = read_scalars(str(tmp_path / "averaged" / "tb"))
    assert "progressive_averaged/auc" in scalars


# k = 1 is slow (issue 17): k = 4 runs the same cross-replica update, on fewer steps.
@pytest.mark.parametrize("every_steps", [pytest.param(1, marks=pytest.mark.slow), 4])
def test_one_device_mirrored_strategy_averages_like_the_default_one(stream, tmp_path, restore_determinism,
                                                                    every_steps):
    """The averaging and snapshot updates go through extended.update under tf.distribute."""
    overrides = {**AVERAGED, "jitter_steps": 3, "data.max_examples": 640, "averaging.every_steps": every_steps}
    default = train(small_config(stream, **overrides), str(tmp_path / "default")).metrics
    mirrored = Trainer(small_config(stream, **overrides), str(tmp_path / "mirrored"),
                       strategy=tf.distribute.MirroredStrategy(["/cpu:0"])).run().metrics
    for key in ("progressive_averaged_auc", "progressive_averaged_logloss", "jitter_relative_pd",
                "jitter_window_relative_pd", "progressive_logloss"):
        assert mirrored[key] == pytest.approx(default[key], rel=1e-5), key


def test_averaging_every_k_steps_resumed_between_two_updates_ends_identical(stream, tmp_path, restore_determinism):
    """every_steps=3 with checkpoints every 5 steps: the run resumed from step 5 (the average last updated at step
    3, next at 6) ends bit-identical to an uninterrupted one."""
    overrides = {**AVERAGED, "averaging.every_steps": 3, "averaging.start_examples": 128, "jitter_steps": 4,
                 "keep_checkpoints": 100}
    reference, variables = assert_resume_is_exact(stream, tmp_path, overrides, step=5)
    assert reference["ema_every_steps"] == 3 and reference["steps"] % 3  # the stream ends between two updates
    assert any(name.startswith("averaged_models") for name in variables)


@pytest.mark.parametrize("overrides, message", [
    ({"averaging.ema_decay": 1.0}, "`config.averaging.ema_decay` must be in [0, 1)"),
    ({"averaging.ema_decay": 0.9, "averaging.every_steps": 0}, "`config.averaging.every_steps` must be an integer"),
    ({"averaging.ema_decay": 0.9, "averaging.every_steps": True}, "`config.averaging.every_steps` must be an integer"),
    ({"averaging.ema_decay": 0.9, "averaging.every_steps": 11},
     "must be at most the average's span 1/(1 - ema_decay) = 10 steps (ema_decay=0.9). Received: every_steps=11"),
    ({"averaging.every_steps": 2}, "`config.averaging.every_steps=2` spaces the updates of the average, but "
                                   "`config.averaging.ema_decay` is 0 (off)"),
    ({"averaging.ema_decay": 0.9, "averaging.export": "best"}, "`config.averaging.export` must be one of"),
    ({"averaging.progressive_averaged": True}, "`config.averaging.ema_decay` is 0 (off)"),
    ({"averaging.ema_decay": 0.9, "averaging.start_examples": -1}, "`config.averaging.start_examples`"),
    ({"jitter_steps": -1}, "`config.jitter_steps` must be an integer >= 0"),
    ({"optimizer.schedule": "step"}, "`config.optimizer.schedule` must be one of"),
    ({"optimizer.schedule": "cosine"}, "set `config.optimizer.schedule_examples` or `config.data.max_examples`"),
    ({"optimizer.schedule": "inverse_sqrt"}, "needs `config.optimizer.warmup_examples` > 0"),
    ({"optimizer.warmup_examples": 100}, "use schedule='warmup'"),
    ({"optimizer.schedule": "linear", "optimizer.decay_floor": 2.0}, "`config.optimizer.decay_floor` must be in"),
])
def test_bad_settling_configs_are_refused(stream, tmp_path, overrides, message, monkeypatch):
    # The stream's length unknown: no summary.json, and too big to count (recsys.data.input.expected_examples).
    monkeypatch.setattr(input_lib, "COUNT_LIMIT_BYTES", 0)
    with pytest.raises(ValueError) as error:
        Trainer(small_config(stream, **overrides), str(tmp_path / "run"))
    assert message in str(error.value)


@pytest.mark.parametrize("overrides", [{"averaging.ema_decay": 0.9}, {"jitter_steps": 5}])
def test_averaging_and_jitter_are_refused_under_parameter_servers(overrides):
    config = small_config("unused", strategy="parameter_server", **overrides)
    with pytest.raises(ValueError, match="not 'parameter_server'"):
        modes.select_mode(config, ReplicaPlan.from_config(config))


# --------------------------------------------------------------------------------------------------------------
# Learning-rate schedules.


def _formula(kind: str, x: float, base=0.1, warmup=1000.0, floor=0.1, total=10_000.0) -> float:
    ramp = min(1.0, x / warmup)
    progress = min(max((x - warmup) / (total - warmup), 0.0), 1.0)
    return base * ramp * {
        "warmup": 1.0,
        "inverse_sqrt": max(floor, math.sqrt(warmup / max(x, warmup))),
        "linear": 1.0 - (1.0 - floor) * progress,
        "cosine": floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)),
    }[kind]


@pytest.mark.parametrize("kind", ["warmup", "inverse_sqrt", "linear", "cosine"])
def test_each_schedule_matches_its_formula(kind):
    schedule = ExampleSchedule(0.1, kind, warmup_examples=1000, decay_floor=0.1, total_examples=10_000,
                               batch_size=100)
    for step in (0, 4, 9, 10, 30, 54, 98, 99, 150):
        x = (step + 1) * 100  # examples including the batch being trained on
        assert float(schedule(step)) == pytest.approx(_formula(kind, x), rel=1e-6), (kind, step)
    assert ExampleSchedule.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_constant_schedule_is_the_plain_learning_rate_and_the_optimizers_follow_the_schedule(stream):
    assert ScheduleSpec().learning_rate(0.05) == 0.05
    config = small_config(stream, **{"optimizer.schedule": "linear", "optimizer.warmup_examples": 128,
                                     "optimizer.decay_floor": 0.2, "optimizer.dense": "sgd",
                                     "data.max_examples": 640})
    spec = SettlingSpec.from_config(config, stream_examples=640)
    assert spec.schedule.total_examples == 640
    optimizer = task.make_dense_optimizer(config.optimizer, spec.schedule)
    weight = tf.Variable(0.0)
    steps = []
    for _ in range(10):  # SGD with gradient 1: each step moves the weight by the rate of that step
        before = weight.numpy()
        optimizer.apply_gradients([(tf.constant(1.0), weight)])
        steps.append(before - weight.numpy())
    base = config.optimizer.dense_learning_rate
    expected = [base * min(1, 64 * k / 128) * (1 - 0.8 * min(max((64 * k - 128) / (640 - 128), 0), 1))
                for k in range(1, 11)]
    np.testing.assert_allclose(steps, expected, rtol=1e-5)
    assert steps[-1] == pytest.approx(0.2 * base, rel=1e-5)  # the floor at the end of the stream


def test_a_decaying_schedule_reads_its_length_from_the_stream(tmp_path):
    stream = tmp_path / "data"
    from tests.training.helpers import write_stream

    pattern = write_stream(stream, shards=1, rows=100)
    (stream / "summary.json").write_text(json.dumps({"rows_ok": 100}))
    trainer = Trainer(small_config(pattern, **{"optimizer.schedule": "cosine"}), str(tmp_path / "run"))
    assert trainer.settling.schedule.total_examples == 100


# --------------------------------------------------------------------------------------------------------------
# Jitter.


def test_jitter_is_zero_for_a_model_that_does_not_train_and_positive_for_one_that_does(stream, plain_run, tmp_path,
                                                                                       restore_determinism):
    config = small_config(stream, **{"jitter_steps": 2})
    frozen = Trainer(config, str(tmp_path / "frozen"))
    for state in frozen.states:
        state.embedding_optimizer.learning_rate = 0.0
        state.dense_optimizer.learning_rate = 0.0
    metrics = frozen.run().metrics
    assert metrics["jitter_measurements"] == 9  # steps 3, 5, ..., 19 of 19
    assert metrics["jitter_relative_pd"] == 0.0 and metrics["jitter_window_relative_pd"] == 0.0

    trained = train(small_config(stream, **{"jitter_steps": 2}), str(tmp_path / "trained")).metrics
    assert trained["jitter_relative_pd"] > 0 and trained["jitter_window_relative_pd"] > 0
    assert trained["jitter_models"][0]["jitter_relative_pd"] == trained["jitter_relative_pd"]
    assert 0 < trained["jitter_snapshot_calibration"] < 10
    # The jitter steps do not change training: the same weights and metrics as without them.
    plain = plain_run[1]  # small_config(stream), exported too (conftest.py): the same training
    assert trained["progressive_logloss"] == plain["progressive_logloss"]
    scalars = read_scalars(str(tmp_path / "trained" / "tb"))
    assert {"jitter/relative_pd", "jitter/window_relative_pd", "jitter/snapshot_calibration"} <= set(scalars)


def test_jitter_and_averaging_per_replica_and_in_the_typed_record(stream, tmp_path, restore_determinism):
    config = small_config(stream, **AVERAGED, **{"jitter_steps": 3, "replicas.count": 2, "data.max_examples": 640})
    outputs = Trainer(config, str(tmp_path / "run")).run()
    metrics = outputs.metrics
    assert len(metrics["jitter_models"]) == len(metrics["averaged_models"]) == 2
    assert metrics["jitter_models"][0] != metrics["jitter_models"][1]
    record = TrainingMetrics.load(str(tmp_path / "run"))
    assert record == outputs.record and record.to_json() == metrics
    assert record.jitter.steps == 3 and record.averaging.models[1].auc == metrics["averaged_models"][1][
        "progressive_averaged_auc"]


def test_the_snapshot_is_exactly_jitter_steps_updates_older(stream, tmp_path, restore_determinism):
    """Jitter steps with N = 2 are 3, 5, ...: step 3 scores its batch with the initial weights, step 5 with the
    weights after 2 updates — checked against a separately trained copy of the model."""
    config = small_config(stream, **{"jitter_steps": 2})
    trainer = Trainer(config, str(tmp_path / "run"))
    results = trainer.mode.results(step=0, examples=0)
    snapshots = [next(results).snapshot_probabilities for _ in range(5)]
    assert [s is not None for s in snapshots] == [False, False, True, False, True]

    manual = task.build_model_state(trainer.spec, "label", config.optimizer, init_seed=config.seed.init,
                                    metrics_factory=lambda: None)
    step = tf.function(lambda batch: task.replica_train_step([manual], batch, "label"))
    score = tf.function(lambda batch: tf.sigmoid(manual.model(batch, training=True)))
    batches = list(trainer.source.dataset(config.data.batch_size).take(5))
    np.testing.assert_allclose(snapshots[2][0], score(batches[2]).numpy(), rtol=1e-5)
    step(batches[0])
    step(batches[1])
    np.testing.assert_allclose(snapshots[4][0], score(batches[4]).numpy(), rtol=1e-5)
