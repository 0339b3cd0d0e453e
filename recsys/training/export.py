"""Exports a trained CTR model as a SavedModel that needs only TensorFlow to load.

Contract (docs/training.md; its names live in `recsys.serving.contract`): `serving_default(examples:
string[None])` → `{"probabilities": float32[None]}`, where `examples` are serialized `tf.train.Example`s carrying
the model's input features (the label, if present, is ignored). A missing numeric feature reads as 0.0 and a
missing categorical as id 0 (the missing/OOV id of `features.json`), as the preprocessing job writes them.

The exported function is traced from the serving form of the model (`CTRModel.serving_copy`: weight norm folded
into plain kernels) and saved from a plain `tf.Module` that holds only variables, not Keras layers: custom
activation classes become graph ops, so `tf.saved_model.load` works in a process that never imports `recsys`.
A model with tables sharded over parameter servers is first re-assembled into an unsharded copy
(`recsys.training.sharding.unsharded_copy`), so the SavedModel holds whole tables either way.
"""
from __future__ import annotations

import os
import shutil
import uuid

import tensorflow as tf

from recsys.data import fingerprint
from recsys.data.features import FeatureSet
from recsys.model.ctr import CTRModel
from recsys.serving import contract
from recsys.training import sharding


class ServingModule(tf.Module):
    """A `tf.Module` holding a model's variables and its parse-and-score function."""

    def __init__(self, model: CTRModel, features: FeatureSet):
        super().__init__(name="ctr_serving")
        self.model_variables = list(model.variables)
        spec = serving_parse_spec(model, features)

        # A closure, so the module tracks the variables but not the Keras layers that use them.
        def score(examples: tf.Tensor) -> dict[str, tf.Tensor]:
            parsed = tf.io.parse_example(examples, spec)
            return {contract.OUTPUT_KEY: tf.sigmoid(model(parsed, training=False))}

        self.serve = tf.function(score, input_signature=[tf.TensorSpec([None], tf.string, name=contract.INPUT_KEY)])


def serving_parse_spec(model: CTRModel, features: FeatureSet) -> dict[str, tf.io.FixedLenFeature]:
    """`tf.io.parse_example` spec of the model's inputs, with the missing-value defaults of the data."""
    spec = {}
    for name in model.spec.input_features:
        if features[name].type == "int64":
            spec[name] = tf.io.FixedLenFeature([], tf.int64, default_value=0)
        else:
            spec[name] = tf.io.FixedLenFeature([], tf.float32, default_value=0.0)
    return spec


def export_saved_model(model: CTRModel, features: FeatureSet, path: str, extra_files: dict[str, str] | None = None):
    """Writes the SavedModel to `path`, replacing nothing: it appears complete or not at all.

    The model is written to a sibling temporary folder and renamed into place, so a crash mid-export never
    leaves a half-written `path`. `extra_files` (name → text) go to `path/assets.extra/` (e.g. features.json), and
    so does `features`' fingerprint (`assets.extra/feature_fingerprint`, `recsys.data.fingerprint`) when it has one.

    Raises:
      FileExistsError: `path` already exists.
    """
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"SavedModel path already exists, not overwriting: {path}")
    stamp = features.metadata.get(fingerprint.KEY)
    if stamp:  # the contract the model was trained on, checked by every consumer (`recsys.serving.scorer`)
        extra_files = {**(extra_files or {}), contract.FINGERPRINT_FILE: stamp + "\n"}
    if sharding.is_sharded(model):  # tf.saved_model.load cannot load ShardedVariables: export whole tables
        model = sharding.unsharded_copy(model)
    module = ServingModule(model.serving_copy(), features)
    tmp = f"{path.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tf.saved_model.save(module, tmp, signatures={contract.SIGNATURE: module.serve})
        if extra_files:
            os.makedirs(os.path.join(tmp, contract.ASSETS_EXTRA), exist_ok=True)
            for name, text in extra_files.items():
                with open(os.path.join(tmp, contract.ASSETS_EXTRA, name), "w") as f:
                    f.write(text)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
