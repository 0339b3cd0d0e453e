"""Mixed precision (`config.model.mixed_precision`): bfloat16 compute, float32 variables, logits, metrics and
exports, and no global policy left behind."""
import numpy as np
import pytest
import tensorflow as tf

from recsys.model.ctr import ModelSpec, build_model
from recsys.model.precision import precision_policy
from recsys.training.loop import Trainer
from tests.training.helpers import FEATURES, small_config, toy_rows, write_examples

ROWS = 1500


@pytest.fixture(scope="module")
def learnable(tmp_path_factory) -> str:
    """ROWS examples whose click rate depends on C1 (0.8 for ids < 5, else 0.1): a model can beat AUC 0.5."""
    directory = tmp_path_factory.mktemp("learnable")
    FEATURES.save(str(directory / "features.json"))
    rng = np.random.default_rng(7)
    rows = toy_rows(ROWS, seed=7)
    for row in rows:
        row["label"] = int(rng.random() < (0.8 if row["C1"] < 5 else 0.1))
    write_examples(directory / "part-00000.tfrecord.gz", rows)
    return str(directory / "part-*.tfrecord.gz")


@pytest.fixture
def float32_policy_after():
    yield
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # nothing leaked into later tests
    tf.keras.mixed_precision.set_global_policy(None)  # the default, which follows floatx


def test_building_under_a_policy_leaves_layers_following_floatx(float32_policy_after):
    """After a float32 or bfloat16 build the global policy is the default again: layers built later still take
    their dtype from floatx (recsys.plots.landscape builds float64 layers by switching floatx)."""
    from recsys.model.precision import precision_policy

    for value in ("", "mixed_bfloat16"):
        with precision_policy(value):
            pass
        previous = tf.keras.backend.floatx()
        tf.keras.backend.set_floatx("float64")
        try:
            layer = tf.keras.layers.Dense(1)
            layer.build((None, 2))
            assert layer.kernel.dtype == tf.float64, value
        finally:
            tf.keras.backend.set_floatx(previous)


def test_mixed_bfloat16_trains_with_float32_variables_metrics_and_export(learnable, tmp_path, float32_policy_after,
                                                                         restore_determinism):
    config = small_config(learnable, **{"model.mixed_precision": "mixed_bfloat16", "export_saved_model": True,
                                        "data.shuffle": "none", "optimizer.embedding_learning_rate": 0.3,
                                        "optimizer.dense_learning_rate": 0.3})
    trainer = Trainer(config, str(tmp_path / "run"), record_predictions=True)
    outputs = trainer.run()
    assert tf.keras.mixed_precision.global_policy().name == "float32"

    model = trainer.states[0].model
    assert {layer.compute_dtype for layer in model.embedding_layers + model.blocks} == {"bfloat16"}
    assert model.logit.compute_dtype == "float32"
    assert {v.dtype for v in model.variables} == {tf.float32}
    assert {v.dtype for v in trainer.states[0].embedding_optimizer.variables[1:]} == {tf.float32}
    batch = {name: tf.constant([1, 7], tf.int64) for name in ("C1", "C2")}
    batch.update({name: tf.constant([0.5, 2.0]) for name in ("I1", "I2")})
    assert model.embed(batch).dtype == tf.bfloat16 and model(batch).dtype == tf.float32

    # It learned, and what the loop scored and recorded is float32.
    assert outputs.metrics["examples"] == ROWS
    assert outputs.metrics["progressive_auc"] > 0.65  # float32 on this data: 0.709 (bfloat16 measured 0.705)
    assert all(p.dtype == np.float32 for _, probabilities in trainer.recorded for p in probabilities)
    first, last = (np.mean(trainer.recorded[i][1][0]) for i in (0, -1))
    assert np.isfinite(first) and np.isfinite(last)

    loaded = tf.saved_model.load(outputs.metrics["saved_models"][0])
    serve = loaded.signatures["serving_default"]
    assert serve.structured_outputs["probabilities"].dtype == tf.float32
    example = tf.train.Example(features=tf.train.Features(feature={
        "C1": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
        "C2": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
        "I1": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5])),
        "I2": tf.train.Feature(float_list=tf.train.FloatList(value=[1.5])),
    })).SerializeToString()
    served = serve(examples=tf.constant([example]))["probabilities"]
    assert served.dtype == tf.float32
    # The export computes what the live model does (the same bfloat16 layers, float32 logit).
    parsed = {"C1": tf.constant([1], tf.int64), "C2": tf.constant([3], tf.int64),
              "I1": tf.constant([0.5]), "I2": tf.constant([1.5])}
    np.testing.assert_allclose(served.numpy(), tf.sigmoid(model(parsed)).numpy(), rtol=1e-6)


def test_mixed_float16_is_refused_with_the_reason(learnable):
    config = small_config(learnable, **{"model.mixed_precision": "mixed_float16"})
    with pytest.raises(ValueError, match="float16 needs loss scaling"):
        ModelSpec.from_config(config.model, FEATURES)
    config.model.mixed_precision = "bfloat16"
    with pytest.raises(ValueError, match=r"must be one of \('', 'mixed_bfloat16'\). Received: 'bfloat16'"):
        ModelSpec.from_config(config.model, FEATURES)


def test_the_global_policy_is_restored_after_building_and_on_error(learnable, float32_policy_after):
    spec = ModelSpec.from_config(small_config(learnable, **{"model.mixed_precision": "mixed_bfloat16"}).model,
                                 FEATURES)
    build_model(spec)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError), precision_policy("mixed_bfloat16"):
        assert tf.keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        raise RuntimeError("while building")
    assert tf.keras.mixed_precision.global_policy().name == "float32"
