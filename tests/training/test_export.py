"""SavedModel export: the serving contract, loaded in a fresh process without `recsys`, equals in-process scores."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs import smoke
from recsys.model import ModelSpec
from recsys.testing import toy_feature_set
from recsys.training import export, task

FEATURES = toy_feature_set(num_numeric=2, vocab_sizes=(12, 30))

# Runs in a fresh interpreter with plain TensorFlow (Keras 3 default, no TF_USE_LEGACY_KERAS) and checks that
# nothing from this project was imported.
_SCORE_IN_FRESH_PROCESS = """
import sys, numpy as np, tensorflow as tf
examples_path, *model_dirs = sys.argv[1:]
examples = tf.constant(list(tf.data.TFRecordDataset(examples_path).as_numpy_iterator()))
for index, model_dir in enumerate(model_dirs):
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    out = signature(examples=examples)
    assert list(out) == ["probabilities"], list(out)
    assert out["probabilities"].dtype == tf.float32 and out["probabilities"].shape == examples.shape
    np.save(f"{model_dir}.npy", out["probabilities"].numpy())
assert not [m for m in sys.modules if m == "recsys" or m.startswith("recsys.")], "recsys was imported"
"""


def _examples(n, seed=0, drop=()):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feature = {"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(rng.random() < 0.3)])),
                   "ts": tf.train.Feature(int64_list=tf.train.Int64List(value=[0]))}
        for f in FEATURES.numeric:
            feature[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(rng.exponential())]))
        for f in FEATURES.categorical:
            value = int(rng.integers(f.vocab_size))
            feature[f.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        for name in drop:
            del feature[name]
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


def _trained_model(activation, normalization):
    config = smoke.get_config()
    config.model.hidden_units = (8, 4)
    config.model.activation = activation
    config.model.normalization = normalization
    config.model.weight_norm_scale = 2.0
    spec = ModelSpec.from_config(config.model, FEATURES)
    state = task.build_model_state(spec, "label", config.optimizer, init_seed=1, metrics_factory=lambda: None)
    spec_parse = FEATURES.parse_spec()
    for seed in range(3):
        batch = tf.io.parse_example(_examples(32, seed=seed + 10), spec_parse)
        task.replica_train_step([state], batch, "label")
    return state.model


def _in_process(model, examples):
    parsed = tf.io.parse_example(examples, FEATURES.parse_spec())
    return tf.sigmoid(model(parsed)).numpy()


# Custom activations (fixed and learned), weight norm folded at export, layer norm, clipping: one fresh process
# scores all of them (starting TensorFlow is the expensive part).
MODELS = [("smelu:beta=0.5;gsmelu:trainable=true", "weight"),
          ("swish;rescu:knots=[-1,1],slopes=[0,0.5,1],half_widths=[0.5,0.5]", "layer")]


def test_saved_model_in_a_fresh_process_without_recsys_equals_in_process(tmp_path):
    examples = _examples(64, seed=3)
    with tf.io.TFRecordWriter(str(tmp_path / "examples.tfrecord")) as writer:
        for example in examples:
            writer.write(example)
    models, paths = [], []
    for index, (activation, normalization) in enumerate(MODELS):
        models.append(_trained_model(activation, normalization))
        paths.append(str(tmp_path / f"model_{index}"))
        export.export_saved_model(models[-1], FEATURES, paths[-1],
                                  extra_files={"features.json": json.dumps(FEATURES.to_json())})
    assert json.loads((tmp_path / "model_0" / "assets.extra" / "features.json").read_text())["features"]
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", _SCORE_IN_FRESH_PROCESS, str(tmp_path / "examples.tfrecord"), *paths],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for model, path in zip(models, paths, strict=True):
        served = np.load(f"{path}.npy")
        np.testing.assert_allclose(served, _in_process(model, examples), rtol=1e-5, atol=1e-7)
        assert served.std() > 0


def test_missing_features_are_served_as_missing_values(tmp_path):
    model = _trained_model("relu", "layer")
    path = str(tmp_path / "sm")
    export.export_saved_model(model, FEATURES, path)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    without = serve(examples=tf.constant(_examples(8, seed=5, drop=("C1", "I1", "label", "ts"))))
    parsed = tf.io.parse_example(_examples(8, seed=5), FEATURES.parse_spec())
    parsed = dict(parsed, C1=tf.zeros([8], tf.int64), I1=tf.zeros([8]))
    np.testing.assert_allclose(without["probabilities"].numpy(), tf.sigmoid(model(parsed)).numpy(), rtol=1e-5)


def test_ids_outside_the_vocabulary_are_refused_not_served_as_id_0(tmp_path):
    model = _trained_model("relu", "none")
    path = str(tmp_path / "sm")
    export.export_saved_model(model, FEATURES, path)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    example = tf.train.Example.FromString(_examples(1, seed=6)[0])
    example.features.feature["C2"].int64_list.value[0] = FEATURES["C2"].vocab_size
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"categorical C2: id >= vocab_size=30"):
        serve(examples=tf.constant([example.SerializeToString()]))


def test_export_never_overwrites(tmp_path):
    model = _trained_model("relu", "none")
    (tmp_path / "saved_model").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        export.export_saved_model(model, FEATURES, str(tmp_path / "saved_model"))
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_export_from_a_checkpoint_restores_the_models_exactly(stream, tmp_path):
    """A finished replica-mode run keeps its final checkpoint and the one before (keep_checkpoints=2); exporting the
    final one gives the run's own SavedModels' predictions, the earlier one other predictions."""
    from recsys.serving.scorer import SavedModelScorer
    from recsys.training.checkpoint import list_checkpoints
    from recsys.training.loop import export_checkpoint, train
    from tests.training.helpers import small_config

    workdir = str(tmp_path / "run")
    config = small_config(stream, export_saved_model=True, **{"replicas.count": 2})
    train(config, workdir)
    checkpoints = list_checkpoints(workdir)
    assert [(c.step, c.examples, c.finished) for c in checkpoints] == [(15, 960, False), (19, 1200, True)]
    examples = tf.constant(list(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(stream)), "GZIP")
                                .take(200).as_numpy_iterator()))

    def scores(path):
        return np.asarray(SavedModelScorer(path)(examples))

    final = export_checkpoint(config, workdir, checkpoints[-1].path, str(tmp_path / "final"))
    earlier = export_checkpoint(config, workdir, checkpoints[0].path, str(tmp_path / "earlier"))
    assert [os.path.basename(p) for p in final] == ["saved_model", "saved_model_1"]
    assert json.loads((tmp_path / "final" / "saved_model_1" / "assets.extra" / "features.json").read_text()) == \
        json.loads((tmp_path / "run" / "saved_model_1" / "assets.extra" / "features.json").read_text())
    for name, restored, before in zip(("saved_model", "saved_model_1"), final, earlier, strict=True):
        np.testing.assert_array_equal(scores(restored), scores(os.path.join(workdir, name)))
        assert np.abs(scores(before) - scores(restored)).max() > 1e-4
    with pytest.raises(FileExistsError):
        export_checkpoint(config, workdir, checkpoints[-1].path, str(tmp_path / "final"))
    other = small_config(stream, export_saved_model=True, **{"replicas.count": 2, "model.embedding_dim": 8})
    with pytest.raises(ValueError, match="different config"):
        export_checkpoint(other, workdir, checkpoints[-1].path, str(tmp_path / "other"))
