"""recsys.data.records: tf.train.Example bytes and GZIP TFRecord files written without TensorFlow."""
import subprocess
import sys

import numpy as np
import tensorflow as tf

from recsys.data import criteo, records
from tests.conftest import REPO_ROOT


def test_encoder_matches_tf_train_example():
    encoder = records.ExampleEncoder()
    rng = np.random.default_rng(0)
    for ts in [0, 127, 128, 16383, 16384, 2**21, 2**28, 2**40, 2**63 - 1]:
        floats = [float(np.float32(x)) for x in rng.exponential(3.0, 13)]
        ids = [int(x) for x in rng.integers(0, 2**35, 26)]
        ids[:4] = [0, 127, 128, 2**21 - 1]
        label = int(rng.integers(2))
        example = tf.train.Example.FromString(encoder.encode(label, ts, floats, ids))
        feature = example.features.feature
        assert set(feature) == set(criteo.COLUMNS) | {criteo.TIME}
        assert list(feature["label"].int64_list.value) == [label]
        assert list(feature["ts"].int64_list.value) == [ts]
        assert [feature[n].float_list.value[0] for n in criteo.INT_COLUMNS] == floats
        assert [feature[n].int64_list.value[0] for n in criteo.CAT_COLUMNS] == ids


def test_gzip_tfrecord_writer_reads_back_in_tensorflow(tmp_path):
    written = [bytes([i % 256]) * (i * 37 % 3000) for i in range(500)]
    path = str(tmp_path / "x.tfrecord.gz")
    with records.GzipTFRecordWriter(path, block_bytes=10_000) as writer:
        for record in written:
            writer.write(record)
    got = [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    assert got == written


def test_the_preprocessing_code_does_not_import_tensorflow():
    """Beam workers import these modules; TensorFlow would cost them seconds each."""
    code = ("import sys\n"
            "import recsys.data.layout, recsys.data.records, recsys.data.preprocessing\n"
            "import pipelines.preprocess.transforms\n"
            "print(sorted(m for m in sys.modules if m.startswith('tensorflow')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
