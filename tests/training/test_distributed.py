"""Distribution strategies: MultiWorkerMirrored with 2 worker processes on loopback; Mirrored over 2 logical CPUs."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from recsys.training.loop import train
from tests.training.helpers import (
    REPO_ROOT,
    cli_flags,
    run_multi_worker_cluster,
    run_parameter_server_cluster,
    small_config,
    subprocess_env,
    train_command,
)

OVERRIDES = {"export_saved_model": True, "data.batch_size": 64}


# Weight averaging with its progressive metrics and the jitter metric (issue 15).
SETTLED = {"averaging.ema_decay": 0.9, "averaging.progressive_averaged": True, "jitter_steps": 3}


def _compare_with_single_device(metrics, data, tmp_path, **settling):
    """Same config on one device: the same stream, the same math up to float summation order."""
    single = train(small_config(data, **OVERRIDES, **settling), str(tmp_path / "single")).metrics
    assert metrics["examples"] == single["examples"] == 1200
    assert metrics["steps"] == single["steps"] == 19
    keys = ["progressive_auc", "progressive_logloss", "progressive_calibration"]
    if settling:
        keys += ["progressive_averaged_auc", "progressive_averaged_logloss", "jitter_window_relative_pd"]
        assert metrics["jitter_measurements"] == single["jitter_measurements"] == 6
    for key in keys:
        assert metrics[key] == pytest.approx(single[key], rel=1e-3), key


def test_multi_worker_mirrored_two_worker_processes(stream, plain_run, tmp_path):
    workdir = tmp_path / "run"
    errors = run_multi_worker_cluster(train_command(workdir, stream, strategy="multi_worker_mirrored", **OVERRIDES))
    # The same config on one device (OVERRIDES are plain_run's), trained once for the session (conftest.py).
    single = plain_run[1]
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["strategy"] == "multi_worker_mirrored" and metrics["num_replicas_in_sync"] == 2
    assert metrics["examples"] == single["examples"] == 1200 and metrics["steps"] == single["steps"] == 19
    for key in ("progressive_auc", "progressive_logloss", "progressive_calibration"):
        assert metrics[key] == pytest.approx(single[key], rel=1e-3), key
    # Only the chief (worker 0) writes outputs; the other worker's checkpoint copies are gone.
    assert (workdir / "saved_model" / "saved_model.pb").exists()
    assert not list(workdir.rglob(".workers"))
    assert "Exported" in errors[0] and "Exported" not in errors[1]
    examples = next(iter(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(stream)), "GZIP").batch(64)))
    probabilities = tf.saved_model.load(str(workdir / "saved_model")).signatures["serving_default"](
        examples=examples)["probabilities"].numpy()
    assert probabilities.shape == (64,) and np.all((probabilities > 0) & (probabilities < 1))


_MIRRORED = """
import json, sys
import recsys, tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from absl import flags
from ml_collections import config_flags
from recsys.training.loop import train
config = config_flags.DEFINE_config_file("config", lock_config=True)
flags.FLAGS(["x", *sys.argv[2:]])
print(json.dumps(train(config.value, sys.argv[1]).metrics))
"""


@pytest.mark.slow
@pytest.mark.parametrize("settling", [{}, SETTLED], ids=["plain", "averaged+jitter"])
def test_mirrored_over_two_logical_cpus(stream, tmp_path, settling):
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED, str(tmp_path / "run"),
         *cli_flags(stream, strategy="mirrored", **OVERRIDES, **settling)],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["num_replicas_in_sync"] == 2
    _compare_with_single_device(metrics, stream, tmp_path, **settling)


@pytest.mark.slow
def test_parameter_server_one_chief_two_workers_one_ps(stream, tmp_path):
    workdir = tmp_path / "run"
    chief, logs = run_parameter_server_cluster(
        train_command(workdir, stream, strategy="parameter_server", **OVERRIDES))
    assert chief.returncode == 0, chief.stderr[-4000:]
    assert "Serving as ps:0" in logs[0] and "Serving as worker:1" in logs[2]
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["strategy"] == "parameter_server"
    assert metrics["examples"] == 1200 and metrics["steps"] == 19
    assert 0 < metrics["progressive_auc"] < 1 and metrics["progressive_logloss"] > 0
    # Checkpoints were taken at exact stream positions (every step in flight finished first).
    reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
    assert reader.get_tensor("examples/.ATTRIBUTES/VARIABLE_VALUE") == 1200
    examples = next(iter(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(stream)), "GZIP").batch(8)))
    probabilities = tf.saved_model.load(str(workdir / "saved_model")).signatures["serving_default"](
        examples=examples)["probabilities"].numpy()
    assert probabilities.shape == (8,) and np.all((probabilities > 0) & (probabilities < 1))
