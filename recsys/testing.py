"""Small real artefacts for tests and benchmarks of the consumers of the training contract.

`export_toy_saved_model` writes a genuine SavedModel with the trainer's serving contract
(`serving_default(examples: string[None]) -> {"probabilities": float[None]}`), so the comparator and
the server can be tested before, and independently of, the trainer.
"""
from __future__ import annotations

import numpy as np

from recsys.data.features import FeatureSet
from recsys.serving import contract


def export_toy_saved_model(path: str, features: FeatureSet, seed: int = 0, scale: float = 0.3) -> None:
    """Exports a logistic model over the numeric features and per-id categorical weights."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    spec = features.parse_spec()
    numeric = [f.name for f in features.numeric]
    categorical = [(f.name, f.vocab_size) for f in features.categorical]

    class ToyModel(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.normal(0, scale, len(numeric)).astype("float32"))
            self.tables = [tf.Variable(rng.normal(0, scale, size).astype("float32")) for _, size in categorical]
            self.bias = tf.Variable(np.float32(-1.0))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.INPUT_KEY)])
        def serve(self, examples):
            parsed = tf.io.parse_example(examples, spec)
            logit = tf.zeros_like(parsed[features.label.name], dtype=tf.float32) + self.bias
            if numeric:
                x = tf.stack([parsed[n] for n in numeric], axis=1)
                logit += tf.linalg.matvec(x, self.w)
            for (name, size), table in zip(categorical, self.tables, strict=True):
                ids = tf.clip_by_value(parsed[name], 0, size - 1)
                logit += tf.gather(table, ids)
            return {contract.OUTPUT_KEY: tf.sigmoid(logit)}

    model = ToyModel()
    tf.saved_model.save(model, path, signatures={contract.SIGNATURE: model.serve})
    write_model_contract(path, features)


def write_model_contract(path: str, features: FeatureSet) -> None:
    """Writes `features` (and its fingerprint, if any) to the SavedModel's assets.extra/, as the trainer does."""
    import json
    import os

    from recsys.data import fingerprint

    extra = os.path.join(path, contract.ASSETS_EXTRA)
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, contract.FEATURES_FILE), "w") as f:
        f.write(json.dumps(features.to_json(), indent=2) + "\n")
    if features.metadata.get(fingerprint.KEY):
        with open(os.path.join(extra, contract.FINGERPRINT_FILE), "w") as f:
            f.write(features.metadata[fingerprint.KEY] + "\n")


def toy_feature_set(num_numeric: int = 3, vocab_sizes: tuple[int, ...] = (10, 20)) -> FeatureSet:
    """A small feature set (label, ts, I1..In, C1..Cm) for tests."""
    from recsys.data.features import Feature

    feats = [Feature("label", "int64", "label"), Feature("ts", "int64", "time")]
    feats += [Feature(f"I{i + 1}", "float32", "numeric") for i in range(num_numeric)]
    feats += [Feature(f"C{i + 1}", "int64", "categorical", v) for i, v in enumerate(vocab_sizes)]
    return FeatureSet(tuple(feats)).stamped()


def write_records(path: str, records, features: FeatureSet | None = None) -> None:
    """Writes serialized records to one TFRecord file; a `.gz` one carries `features`' fingerprint in its gzip
    header, as the preprocessing job's shards do (`recsys.data.fingerprint`)."""
    import tensorflow as tf

    from recsys.data import fingerprint
    from recsys.data.records import GzipTFRecordWriter

    if path.endswith(".gz"):
        stamp = features.metadata.get(fingerprint.KEY) if features is not None else None
        with GzipTFRecordWriter(path, feature_fingerprint=stamp) as writer:
            for record in records:
                writer.write(record)
    else:
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record)


def write_toy_tfrecords(path: str, features: FeatureSet, rows: int, seed: int = 0) -> None:
    """Writes `rows` random tf.train.Examples matching `features` to one (plain or .gz) file (`write_records`)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def records():
        for t in range(rows):
            feature = {}
            for f in features.features:
                if f.role == "label":
                    value = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(rng.random() < 0.3)]))
                elif f.role == "time":
                    value = tf.train.Feature(int64_list=tf.train.Int64List(value=[t]))
                elif f.role == "numeric":
                    value = tf.train.Feature(float_list=tf.train.FloatList(value=[float(rng.exponential())]))
                else:
                    value = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(rng.integers(f.vocab_size))]))
                feature[f.name] = value
            yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    write_records(path, records(), features)
