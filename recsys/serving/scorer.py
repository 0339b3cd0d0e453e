"""Scoring serialized records with a SavedModel through the serving contract, in this process.

The one implementation of "load a trainer's SavedModel with plain TensorFlow and score records with it", used
by the comparator (`recsys.metrics.comparison`, `pipelines.compare`), the study (`recsys.study.data.EvalSet`),
the distillation teacher (`recsys.training.distill.SavedModelTeacher`, which calls the checked signature inside
its train step) and the serving benchmark:

    scorer = SavedModelScorer(resolve_saved_model("runs/relu"))     # a trainer workdir or a SavedModel folder
    for serialized in serialized_batches(files, batch_size=8192):
        probabilities = scorer(serialized)                          # NumPy [batch]

The contract (`recsys.serving.contract`): `serving_default(examples: string[None]) -> {"probabilities":
float32[None]}`. Every check raises `SavedModelError` with a message that names the folder; callers add what the
folder was to them (a flag, a config key).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from recsys.data import fingerprint
from recsys.data.features import FeatureSet
from recsys.data.input import resolve_compression
from recsys.serving import contract


class SavedModelError(ValueError):
    """A folder is not a SavedModel with the serving contract, or the model broke the contract while scoring."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def resolve_saved_model(path: str) -> str:
    """The SavedModel folder of a trainer workdir (`<path>/saved_model`), or `path` when it is one itself.

    Raises:
      SavedModelError: `path` is not a folder, or neither it nor `<path>/saved_model` holds a SavedModel.
    """
    if not tf.io.gfile.isdir(path):
        raise SavedModelError(f"model directory not found: {path}")
    for candidate in (os.path.join(path, contract.WORKDIR_SAVED_MODEL), path):
        if tf.io.gfile.exists(os.path.join(candidate, contract.SAVED_MODEL_FILE)):
            return candidate
    raise SavedModelError(
        f"no SavedModel in {path} (expected "
        f"{os.path.join(path, contract.WORKDIR_SAVED_MODEL, contract.SAVED_MODEL_FILE)} "
        f"or {os.path.join(path, contract.SAVED_MODEL_FILE)})"
    )


def load_serving_signature(path: str) -> tuple[Any, Any]:
    """Loads the SavedModel in `path` and checks its serving signature; returns (loaded object, signature).

    The signature must take exactly `examples` (string [None]) and return `probabilities`. Keep the loaded
    object as long as the signature is used: it owns the variables.

    Raises:
      SavedModelError: the folder cannot be loaded, or its signature breaks the contract.
    """
    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:  # TF raises several types for unreadable SavedModels; all mean the same here
        raise SavedModelError(f"cannot load SavedModel {path}: {_first_line(e)}") from e
    signatures = dict(loaded.signatures)
    if contract.SIGNATURE not in signatures:
        raise SavedModelError(
            f"SavedModel {path} has no {contract.SIGNATURE!r} signature (found: {sorted(signatures)})")
    signature = signatures[contract.SIGNATURE]
    _, inputs = signature.structured_input_signature
    spec = inputs.get(contract.INPUT_KEY)
    if set(inputs) != {contract.INPUT_KEY} or spec.dtype != tf.string or spec.shape.rank != 1:
        described = {k: f"{v.dtype.name}{v.shape}" for k, v in inputs.items()}
        raise SavedModelError(
            f"SavedModel {path} {contract.SIGNATURE} must take `{contract.INPUT_KEY}` (string [None]); "
            f"it takes {described}"
        )
    outputs = signature.structured_outputs
    if contract.OUTPUT_KEY not in outputs:
        raise SavedModelError(
            f"SavedModel {path} {contract.SIGNATURE} must return `{contract.OUTPUT_KEY}`; it returns {sorted(outputs)}"
        )
    return loaded, signature


def check_features(path: str, features: FeatureSet) -> None:
    """Every input feature the SavedModel's `assets.extra/features.json` names must match `features`.

    The trainer exports the features.json of its data there; a model without one is not checked. The label
    and time features are not model inputs and may differ.

    Raises:
      SavedModelError: a feature is missing from `features` or has another type or vocabulary size.
    """
    model_features_path = os.path.join(path, contract.ASSETS_EXTRA, contract.FEATURES_FILE)
    if not tf.io.gfile.exists(model_features_path):
        return
    with tf.io.gfile.GFile(model_features_path) as f:
        model_features = FeatureSet.from_json(json.load(f))
    data = {f.name: f for f in features.features}
    problems = []
    for feature in model_features.features:
        if feature.role in ("label", "time"):
            continue
        if feature.name not in data:
            problems.append(f"{feature.name} is not in the data")
        elif (data[feature.name].type, data[feature.name].vocab_size) != (feature.type, feature.vocab_size):
            problems.append(f"{feature.name} is {feature.type} vocab {feature.vocab_size} in the model, "
                            f"{data[feature.name].type} vocab {data[feature.name].vocab_size} in the data")
    if problems:
        raise SavedModelError(f"SavedModel {path} was trained on other features: {'; '.join(problems)}")


def model_fingerprint(path: str) -> str | None:
    """The feature fingerprint a SavedModel was trained with: `assets.extra/feature_fingerprint`, else the
    `feature_fingerprint` of `assets.extra/features.json`; None when it has neither."""
    extra = os.path.join(path, contract.ASSETS_EXTRA)
    stamp_path = os.path.join(extra, contract.FINGERPRINT_FILE)
    if tf.io.gfile.exists(stamp_path):
        with tf.io.gfile.GFile(stamp_path) as f:
            return f.read().strip() or None
    features_path = os.path.join(extra, contract.FEATURES_FILE)
    if tf.io.gfile.exists(features_path):
        with tf.io.gfile.GFile(features_path) as f:
            try:
                return json.load(f).get(fingerprint.KEY)
            except (json.JSONDecodeError, AttributeError):
                return None
    return None


def check_fingerprint(path: str, expected: str, expected_from: str) -> None:
    """The SavedModel in `path` must have been trained on data of feature fingerprint `expected`.

    Raises:
      SavedModelError: one line naming the model, its fingerprint (or that it has none), `expected_from` and
        `expected`, and what to do.
    """
    found = model_fingerprint(path)
    if found != expected:
        raise SavedModelError(fingerprint.mismatch_message(
            f"SavedModel {path}", found, expected, expected_from,
            "score it on data preprocessed with the features.json it was trained on (its assets.extra/), or "
            "retrain it on this data"))


class SavedModelScorer:
    """A SavedModel loaded once and checked (`load_serving_signature`); `scorer(serialized)` scores a batch."""

    def __init__(self, path: str):
        self.path = path
        self._loaded, self.signature = load_serving_signature(path)

    def __call__(self, serialized: tf.Tensor) -> np.ndarray:
        """The probabilities [batch] for serialized examples [batch], in the dtype the signature returns.

        Raises:
          SavedModelError: the output is neither [batch] nor [batch, 1].
        """
        probabilities = self.signature(**{contract.INPUT_KEY: serialized})[contract.OUTPUT_KEY].numpy()
        count = int(serialized.shape[0])
        if probabilities.ndim == 2 and probabilities.shape[1] == 1:
            probabilities = probabilities[:, 0]
        if probabilities.shape != (count,):
            raise SavedModelError(
                f"SavedModel {self.path} returned probabilities of shape {probabilities.shape} "
                f"for a batch of {count} examples (expected [batch])"
            )
        return probabilities


def serialized_batches(files: Sequence[str], batch_size: int, max_examples: int = 0) -> tf.data.Dataset:
    """Batches of serialized records from `files`, read one after another in the given order.

    Each file's compression comes from its name (`recsys.data.input.resolve_compression`: `.gz` is GZIP), so
    GZIP and plain files mix; consecutive files of one compression share a reader. `max_examples > 0` keeps
    only the first records. Batches hold `batch_size` records (the last one fewer) and cross file boundaries.

    Raises:
      ValueError: no files, or a batch size below 1.
    """
    if not files:
        raise ValueError("`files` must name at least one TFRecord file. Received: files=[]")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be positive. Received: batch_size={batch_size}")
    runs: list[tuple[str, list[str]]] = []
    for path in files:
        compression = resolve_compression([path])
        if runs and runs[-1][0] == compression:
            runs[-1][1].append(path)
        else:
            runs.append((compression, [path]))
    dataset = None
    for compression, paths in runs:
        reader = tf.data.TFRecordDataset(paths, compression_type=compression)
        dataset = reader if dataset is None else dataset.concatenate(reader)
    if max_examples > 0:
        dataset = dataset.take(max_examples)
    return dataset.batch(batch_size).prefetch(2)
