"""Replica mode: R models on one parsed stream, per-replica orders or inits, progressive PD, exports, resume."""
import json

import numpy as np
import pytest
import tensorflow as tf

from recsys.metrics import pd as pd_lib
from recsys.training.loop import Trainer
from recsys.training.summaries import read_scalars
from tests.training.helpers import assert_resume_is_exact, small_config

WINDOW = 300  # SMALL's shuffle_buffer: not a multiple of the batch (64), so batches straddle windows


def _aligned(recorded, replicas: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per replica: positions in training order, and probabilities sorted by position."""
    positions = [np.concatenate([p[r] for p, _ in recorded]) for r in range(replicas)]
    probabilities = [np.concatenate([q[r] for _, q in recorded]) for r in range(replicas)]
    return positions, [probabilities[r][np.argsort(positions[r], kind="stable")] for r in range(replicas)]


def _serve(path: str, serialized: list[bytes]) -> np.ndarray:
    loaded = tf.saved_model.load(path)
    return loaded.signatures["serving_default"](examples=tf.constant(serialized))["probabilities"].numpy()


def test_shuffle_replicas_see_the_same_examples_per_window_and_pd_matches_recorded_predictions(
        stream, plain_run, tmp_path, restore_determinism):
    workdir = tmp_path / "run"
    config = small_config(stream, **{"replicas.count": 2, "replicas.noise": "shuffle", "export_saved_model": True})
    trainer = Trainer(config, str(workdir), record_predictions=True)
    metrics = trainer.run().metrics

    positions, probabilities = _aligned(trainer.recorded, 2)
    assert positions[0].size == positions[1].size == metrics["examples"] == 1200
    for start in range(0, 1200, WINDOW):  # the same examples per window, in a different order
        window = [positions[r][start:start + WINDOW] for r in range(2)]
        assert np.array_equal(np.sort(window[0]), np.arange(start, start + WINDOW))
        assert np.array_equal(np.sort(window[1]), np.arange(start, start + WINDOW))
        assert (window[0] != window[1]).mean() > 0.9
    # Both start from seed.init: identical weights, so the very first predictions differ only by the order.
    assert not np.array_equal(probabilities[0], probabilities[1])

    # The trainer's progressive PD is recsys.metrics' PD of the aligned score-before-train predictions.
    assert metrics["progressive_pd_examples"] == 1200
    assert metrics["progressive_relative_pd"] == pytest.approx(pd_lib.relative_pd(*probabilities), rel=1e-9)
    assert metrics["progressive_absolute_pd"] == pytest.approx(pd_lib.absolute_pd(*probabilities), rel=1e-9)
    last = [p[-config.metrics_window:] for p in probabilities]  # window = the last 500 examples of the stream
    assert metrics["window_relative_pd"] == pytest.approx(pd_lib.relative_pd(*last), rel=1e-9)
    assert 0 < metrics["progressive_relative_pd"] < 1

    # Replica 0 is exactly an ordinary run (its data seed is seed.data); top-level metrics are replica 0's.
    single = plain_run[1]  # small_config(stream), exported too (conftest.py): the same training
    assert metrics["replicas"][0] == single["replicas"][0]
    assert metrics["progressive_auc"] == single["progressive_auc"] == metrics["replicas"][0]["progressive_auc"]
    assert metrics["replicas"][1]["progressive_logloss"] != metrics["replicas"][0]["progressive_logloss"]
    assert "progressive_relative_pd" not in single

    assert metrics["saved_models"] == [str(workdir / "saved_model"), str(workdir / "saved_model_1")]
    assert json.loads((workdir / "metrics.json").read_text())["saved_models"] == metrics["saved_models"]
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(tf.io.gfile.glob(stream)[0], "GZIP").take(50)]
    scores = [_serve(path, serialized) for path in metrics["saved_models"]]
    assert scores[0].shape == scores[1].shape == (50,)
    assert not np.allclose(scores[0], scores[1])

    scalars = read_scalars(str(workdir / "tb"))
    assert {"progressive_pd/relative_pd", "progressive_pd/window_relative_pd", "progressive/auc/model_1"} <= set(
        scalars)


def test_init_noise_gives_different_initial_predictions_on_one_order(stream, tmp_path, restore_determinism):
    config = small_config(stream, **{"replicas.count": 2, "replicas.noise": "init", "data.max_examples": 640})
    trainer = Trainer(config, str(tmp_path / "run"), record_predictions=True)
    metrics = trainer.run().metrics
    first_positions, first_probabilities = trainer.recorded[0]
    assert np.array_equal(first_positions[0], first_positions[1])  # one order
    assert not np.allclose(first_probabilities[0], first_probabilities[1], atol=1e-3)  # different init
    positions, probabilities = _aligned(trainer.recorded, 2)
    assert np.array_equal(positions[0], positions[1])
    assert metrics["progressive_relative_pd"] == pytest.approx(pd_lib.relative_pd(*probabilities), rel=1e-9)


def test_identical_replicas_have_zero_pd(stream, tmp_path):
    config = small_config(stream, **{"data.max_examples": 256})
    metrics = Trainer(config, str(tmp_path / "run"), num_models=2).run().metrics
    assert metrics["progressive_relative_pd"] == 0.0 and metrics["progressive_absolute_pd"] == 0.0
    assert metrics["progressive_pd_examples"] == 256


@pytest.mark.parametrize("overrides, message", [
    ({"replicas.count": 0}, "`config.replicas.count` must be an integer >= 1. Received: 0"),
    ({"replicas.count": 2, "replicas.noise": "seed"}, "('shuffle', 'init', 'shuffle+init'). Received: 'seed'"),
    ({"replicas.count": 2, "data.shuffle": "none"}, "`config.data.shuffle` is 'none'"),
    ({"replicas.count": 2, "replicas.noise": "shuffle+init", "data.shuffle": "none"}, "use noise='init'"),
    ({"replicas.count": 2, "strategy": "parameter_server"}, "does not run under strategy='parameter_server'"),
])
def test_bad_replica_configs_are_refused(stream, tmp_path, overrides, message):
    with pytest.raises(ValueError) as error:
        Trainer(small_config(stream, **overrides), str(tmp_path / "run"))
    assert message in str(error.value)


def test_noise_init_without_shuffle_is_allowed(stream, tmp_path):
    config = small_config(stream, **{"replicas.count": 2, "replicas.noise": "init", "data.shuffle": "none",
                                     "data.max_examples": 128})
    assert Trainer(config, str(tmp_path / "run")).run().metrics["progressive_pd_examples"] == 128


@pytest.mark.parametrize("settling", [
    {}, {"averaging.ema_decay": 0.9, "averaging.progressive_averaged": True, "jitter_steps": 3}],
    ids=["plain", "averaged+jitter"])
def test_resume_mid_window_is_exact(stream, tmp_path, restore_determinism, settling):
    """A run resumed from a mid-window checkpoint (320 examples: window 2 partly trained, PD pending) ends
    identical to an uninterrupted one: weights, optimizer slots, progressive metrics and PD (and every replica's
    weight average and jitter snapshot)."""
    overrides = {"replicas.count": 2, "replicas.noise": "shuffle+init", "keep_checkpoints": 100, **settling}
    reference, variables = assert_resume_is_exact(stream, tmp_path, overrides, step=5)
    assert reference["progressive_relative_pd"] > 0
    assert any("replica_pd" in name for name in variables)
