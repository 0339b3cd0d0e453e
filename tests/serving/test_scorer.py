"""recsys.serving.scorer on real toy SavedModels and TFRecords: resolving, contract checks, batching, features."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from recsys.data.features import FeatureSet
from recsys.serving import contract, scorer
from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A trainer-like workdir with a toy SavedModel and two TFRecord files (GZIP, plain)."""
    root = tmp_path_factory.mktemp("scorer")
    features = toy_feature_set()
    export_toy_saved_model(str(root / "run" / "saved_model"), features, seed=0)
    files = [str(root / "a.tfrecord.gz"), str(root / "b.tfrecord")]
    write_toy_tfrecords(files[0], features, 70, seed=1)
    write_toy_tfrecords(files[1], features, 45, seed=2)
    records = []
    for path in files:
        records += list(tf.data.TFRecordDataset(path, compression_type="GZIP" if path.endswith(".gz") else ""))
    return {"root": root, "features": features, "files": files, "records": tf.stack(records)}


def _save(path, function, name=contract.SIGNATURE):
    module = tf.Module()
    module.f = function
    tf.saved_model.save(module, str(path), signatures={name: module.f})
    return str(path)


def test_resolve_saved_model_accepts_a_workdir_or_the_folder_itself(toy):
    root = toy["root"]
    assert scorer.resolve_saved_model(str(root / "run")) == str(root / "run" / "saved_model")
    assert scorer.resolve_saved_model(str(root / "run" / "saved_model")) == str(root / "run" / "saved_model")
    with pytest.raises(scorer.SavedModelError, match="model directory not found: /no/such/run"):
        scorer.resolve_saved_model("/no/such/run")
    (root / "empty").mkdir(exist_ok=True)
    with pytest.raises(scorer.SavedModelError, match=r"no SavedModel in .*empty \(expected .*saved_model.pb or"):
        scorer.resolve_saved_model(str(root / "empty"))


def test_batches_cross_files_in_order_and_scores_match_the_signature(toy):
    batches = list(scorer.serialized_batches(toy["files"], batch_size=32))
    assert [int(b.shape[0]) for b in batches] == [32, 32, 32, 19]  # 70 + 45 records, batches span both files
    np.testing.assert_array_equal(tf.concat(batches, 0).numpy(), toy["records"].numpy())
    first = list(scorer.serialized_batches(toy["files"], batch_size=32, max_examples=40))
    assert [int(b.shape[0]) for b in first] == [32, 8]

    model = scorer.SavedModelScorer(str(toy["root"] / "run" / "saved_model"))
    got = np.concatenate([model(b) for b in batches])
    loaded = tf.saved_model.load(str(toy["root"] / "run" / "saved_model"))
    want = loaded.signatures["serving_default"](examples=toy["records"])["probabilities"].numpy()
    assert got.dtype == np.float32 and got.shape == (115,)
    np.testing.assert_array_equal(got, want)


def test_serialized_batches_refuses_no_files():
    with pytest.raises(ValueError, match="at least one TFRecord file"):
        scorer.serialized_batches([], batch_size=8)


@pytest.mark.parametrize(
    "signature_name, input_spec, output_name, message",
    [
        ("predict", tf.TensorSpec([None], tf.string, name="examples"), "probabilities",
         "has no 'serving_default' signature (found: ['predict'])"),
        ("serving_default", tf.TensorSpec([None], tf.float32, name="examples"), "probabilities",
         "serving_default must take `examples` (string [None]); it takes {'examples': 'float32(None,)'}"),
        ("serving_default", tf.TensorSpec([None], tf.string, name="rows"), "probabilities",
         "serving_default must take `examples` (string [None]); it takes {'rows': 'string(None,)'}"),
        ("serving_default", tf.TensorSpec([None], tf.string, name="examples"), "scores",
         "serving_default must return `probabilities`; it returns ['scores']"),
    ],
)
def test_signature_checks_name_the_problem(tmp_path, signature_name, input_spec, output_name, message):
    function = tf.function(lambda x: {output_name: tf.zeros(tf.shape(x), tf.float32)}, input_signature=[input_spec])
    path = _save(tmp_path / "model", function, signature_name)
    with pytest.raises(scorer.SavedModelError) as info:
        scorer.load_serving_signature(path)
    assert str(info.value) == f"SavedModel {path} {message}"


def test_unloadable_folder_and_wrong_output_shape(tmp_path, toy):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "saved_model.pb").write_bytes(b"not a proto")
    with pytest.raises(scorer.SavedModelError, match="cannot load SavedModel .*broken: "):
        scorer.SavedModelScorer(str(tmp_path / "broken"))
    two_columns = tf.function(lambda x: {"probabilities": tf.zeros(tf.stack([tf.shape(x)[0], 2]))},
                              input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    model = scorer.SavedModelScorer(_save(tmp_path / "two", two_columns))
    with pytest.raises(scorer.SavedModelError, match=r"shape \(5, 2\) for a batch of 5 examples"):
        model(toy["records"][:5])
    one_column = tf.function(lambda x: {"probabilities": tf.fill(tf.stack([tf.shape(x)[0], 1]), 0.25)},
                             input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    np.testing.assert_array_equal(scorer.SavedModelScorer(_save(tmp_path / "one", one_column))(toy["records"][:3]),
                                  np.full(3, 0.25, np.float32))


def test_check_features_against_assets_extra(tmp_path, toy):
    features = toy["features"]
    path = str(toy["root"] / "run" / "saved_model")
    scorer.check_features(path, features)  # no assets.extra/features.json: nothing to check
    extra = tmp_path / "model" / contract.ASSETS_EXTRA
    extra.mkdir(parents=True)
    (extra / contract.FEATURES_FILE).write_text(json.dumps(features.to_json()))
    scorer.check_features(str(tmp_path / "model"), features)
    other = toy_feature_set(num_numeric=4, vocab_sizes=(10, 99))
    (extra / contract.FEATURES_FILE).write_text(json.dumps(other.to_json()))
    with pytest.raises(scorer.SavedModelError) as info:
        scorer.check_features(str(tmp_path / "model"), features)
    assert str(info.value) == (
        f"SavedModel {tmp_path / 'model'} was trained on other features: I4 is not in the data; "
        "C2 is int64 vocab 99 in the model, int64 vocab 20 in the data")
    # The label and time features are not model inputs: data that names them otherwise still matches.
    (extra / contract.FEATURES_FILE).write_text(json.dumps(features.to_json()))
    renamed = FeatureSet(tuple(dataclasses.replace(f, name=f"{f.name}_other") if f.role in ("label", "time") else f
                               for f in features.features))
    scorer.check_features(str(tmp_path / "model"), renamed)
