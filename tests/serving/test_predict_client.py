"""`python -m pipelines.predict_client` against the session's real server."""
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf


def _run_client(served, data, *flags):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.predict_client", f"--server={served.server.address}", "--model_name=ctr",
         f"--data={data}", *flags],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )


def test_predict_client_prints_model_predictions(served, tmp_path):
    data = tmp_path / "part-00000.tfrecord.gz"
    with tf.io.TFRecordWriter(str(data), options="GZIP") as writer:
        for record in served.records[:7]:
            writer.write(record)
    result = _run_client(served, str(tmp_path / "part-*"), "--batch_size=3", "--max_examples=5")
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [int(line[0]) for line in lines] == [0, 1, 2, 3, 4]
    labels = [tf.train.Example.FromString(r).features.feature["label"].int64_list.value[0] for r in served.records[:5]]
    assert [int(line[2]) for line in lines] == labels
    np.testing.assert_allclose([float(line[1]) for line in lines], served.expected(served.records[:5]), atol=1e-6)
    assert "5 examples in 2 requests" in result.stderr


def test_predict_client_reports_server_error(served, tmp_path):
    data = tmp_path / "examples.tfrecord"
    with tf.io.TFRecordWriter(str(data)) as writer:
        writer.write(served.records[0])
    result = _run_client(served, str(data), "--model_version=42", "--method=classify")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("pipelines.predict_client: error: NOT_FOUND")
