"""The input contract of a signature that scores serialized tf.Examples, checked on every server request.

Which features a request's Examples must carry is read from the model itself: the dense keys, types and shapes of
the `ParseExample` op inside the signature (its `tf.io.parse_example` spec). Every one of them is **required**
here, even where the SavedModel gives it a default: the trainer's export (`recsys.training.export`) parses with
defaults (0.0, id 0) so that in-process consumers score preprocessed data, which always carries every feature;
a serving request without a feature is a client bug, and scoring it as 0 would hide it. The model's
`assets.extra/features.json` adds the vocabulary of each categorical feature: an id must lie in
`[0, vocab_size)`. Features the model does not parse (the label, the time stamp, anything else) are ignored.

For each Example of a request, each required feature must:
- be present, with the value list of its dtype (`float_list` for float32, `int64_list` for int64, `bytes_list`
  for string);
- have exactly as many values as its shape holds (1 for the scalars of the CTR model);
- be finite (float32: no NaN, no ±inf) and, when categorical, within the vocabulary.

The check costs one extra strict `parse_example` of the batch, compiled into the same TensorFlow call as the model
(`wrap`), with the model guarded by it. Only when it fails does `diagnose` walk the Examples in Python to name the
first bad Example (0-based index within the request), the feature and what was expected.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from google.protobuf.message import DecodeError

from recsys.serving.contract import ASSETS_EXTRA, FEATURES_FILE

_PARSE_OPS = ("ParseExampleV2", "ParseExample")
_VALUE_LIST = {tf.float32: "float_list", tf.int64: "int64_list", tf.string: "bytes_list"}


@dataclasses.dataclass(frozen=True)
class RequiredFeature:
    """One feature every Example must carry: its name, dtype, number of values and vocabulary (if categorical)."""

    name: str
    dtype: tf.DType
    size: int
    vocab_size: int | None = None

    @property
    def value_list(self) -> str:
        return _VALUE_LIST[self.dtype]

    def expectation(self) -> str:
        """What a valid value looks like, e.g. "an int64_list with exactly 1 value in [0, 20)"."""
        values = ("finite " if self.dtype == tf.float32 else "") + ("value" if self.size == 1 else "values")
        article = "an" if self.value_list[0] in "aeiou" else "a"
        text = f"{article} {self.value_list} with exactly {self.size} {values}"
        if self.vocab_size is not None:
            text += f" in [0, {self.vocab_size})"
        return text

    def problem(self, feature_map: Any) -> str | None:
        """Why this feature of one Example (its `features.feature` map) breaks the contract; None if it does not."""
        if self.name not in feature_map:
            return f"required feature {self.name!r} is missing"
        feature = feature_map[self.name]
        kind = feature.WhichOneof("kind")
        if kind is None:
            return f"feature {self.name!r} has no value list"
        if kind != self.value_list:
            return f"feature {self.name!r} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
        values = getattr(feature, kind).value
        if len(values) != self.size:
            return f"feature {self.name!r} has {len(values)} values"
        if self.dtype == tf.float32:
            bad = next((v for v in values if not math.isfinite(v)), None)
            if bad is not None:
                return f"feature {self.name!r} is {bad}"
        if self.vocab_size is not None:
            bad = next((v for v in values if not 0 <= v < self.vocab_size), None)
            if bad is not None:
                return f"feature {self.name!r} has id {bad}, outside the vocabulary"
        return None


class ExampleContract:
    """The features every serialized Example given to one signature must carry (module docstring)."""

    def __init__(self, features: Sequence[RequiredFeature]):
        if not features:
            raise ValueError("An ExampleContract needs at least one required feature. Received: none")
        self.features = tuple(features)
        self._spec = {f.name: tf.io.FixedLenFeature([f.size] if f.size != 1 else [], f.dtype) for f in self.features}

    @classmethod
    def of_signature(cls, function: Any, saved_model_path: str) -> ExampleContract | None:
        """The contract of a loaded signature: its ParseExample dense keys, with the vocabularies of the
        SavedModel's `assets.extra/features.json`. None when the signature parses no dense feature."""
        parsed = parse_spec_of(function)
        if not parsed:
            return None
        vocab = vocabularies(saved_model_path)
        return cls([RequiredFeature(name, dtype, size, vocab.get(name) if dtype == tf.int64 else None)
                    for name, (dtype, size) in parsed.items()])

    def describe(self) -> str:
        return ", ".join(f"{f.name} ({f.value_list})" for f in self.features)

    def guard(self, examples: tf.Tensor) -> list[tf.Operation]:
        """Graph ops that fail (InvalidArgumentError) when a serialized Example breaks the contract.

        A strict `parse_example` (no defaults) fails on a missing feature, a wrong value list, a wrong number of
        values or bytes that are no Example; the assertions fail on non-finite floats and ids outside the vocabulary.
        """
        parsed = tf.io.parse_example(examples, self._spec)
        checks = []
        # One assertion per dtype over all features at once: a few ops per batch, whatever the number of features.
        floats = [f for f in self.features if f.dtype == tf.float32]
        if floats:
            values = tf.concat([tf.reshape(parsed[f.name], [-1]) for f in floats], axis=0)
            checks.append(tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(values)), ["a float is not finite"]))
        categorical = [f for f in self.features if f.vocab_size is not None]
        if categorical:
            ids = tf.concat([tf.reshape(parsed[f.name], [-1, f.size]) for f in categorical], axis=1)
            limits = tf.constant([f.vocab_size for f in categorical for _ in range(f.size)], tf.int64)
            inside = tf.logical_and(ids >= 0, ids < limits)
            checks.append(tf.debugging.Assert(tf.reduce_all(inside), ["an id is outside its vocabulary"]))
        return checks or [tf.identity(tf.shape(examples))]

    def wrap(self, function: Any, input_name: str) -> Any:
        """A tf.function running the contract's guard, then `function(**{input_name: examples})` (one call)."""

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def checked(examples):
            with tf.control_dependencies(self.guard(examples)):
                examples = tf.identity(examples)
            return function(**{input_name: examples})

        # The concrete function: calling it skips tf.function's per-call signature matching.
        return checked.get_concrete_function()

    def diagnose(self, serialized: Sequence[bytes]) -> str | None:
        """The first contract violation among `serialized`, as a message naming the Example's index (0-based,
        within the request), the feature and what was expected; None if every Example meets the contract."""
        for index, record in enumerate(serialized):
            try:
                example = tf.train.Example.FromString(record)
            except DecodeError as e:
                return (f"Example at index {index} of the request is not a serialized tf.Example ({e}); expected a "
                        f"tf.Example with the features {self.describe()}")
            feature_map = example.features.feature
            for f in self.features:
                problem = f.problem(feature_map)
                if problem is not None:
                    return f"Example at index {index} of the request: {problem}; expected {f.expectation()}"
        return None


def parse_spec_of(function: Any) -> dict[str, tuple[tf.DType, int]]:
    """{dense key: (dtype, number of values)} of every ParseExample op in a concrete function's graph (and the
    functions it calls), in the op's order; {} when it has none or a key is not a constant."""
    from tensorflow.python.framework import tensor_util  # MakeNdarray of a Const node's value

    graph_def = function.graph.as_graph_def()
    spec: dict[str, tuple[tf.DType, int]] = {}
    for nodes in [list(graph_def.node)] + [list(f.node_def) for f in graph_def.library.function]:
        by_name = {node.name: node for node in nodes}
        for node in nodes:
            if node.op not in _PARSE_OPS:
                continue
            # ParseExampleV2 inputs: serialized, names, sparse_keys, dense_keys, ragged_keys, dense_defaults...
            # ParseExample (v1): serialized, names, sparse_keys..., dense_keys..., dense_defaults...
            types = list(node.attr["Tdense"].list.type)
            shapes = [[d.size for d in s.dim] for s in node.attr["dense_shapes"].list.shape]
            keys = _dense_keys(node, by_name, len(types), tensor_util)
            if keys is None:
                return {}
            for key, dtype, shape in zip(keys, types, shapes, strict=True):
                if any(d < 0 for d in shape):
                    return {}  # a variable-length dense feature: not a contract this check can state
                spec.setdefault(key, (tf.as_dtype(dtype), math.prod(shape)))
    return spec


def _dense_keys(node: Any, by_name: dict, count: int, tensor_util: Any) -> list[str] | None:
    def constant(input_name: str):
        source = by_name.get(input_name.split(":")[0].lstrip("^"))
        if source is None or source.op != "Const":
            return None
        return tensor_util.MakeNdarray(source.attr["value"].tensor)

    if node.op == "ParseExampleV2":
        keys = constant(node.input[3])
        return None if keys is None else [k.decode() for k in keys.reshape(-1)]
    num_sparse = node.attr["Nsparse"].i
    values = [constant(name) for name in node.input[2 + num_sparse:2 + num_sparse + count]]
    return None if any(v is None for v in values) else [v.reshape(()).item().decode() for v in values]


def vocabularies(saved_model_path: str) -> dict[str, int]:
    """{categorical feature: vocab_size} from the SavedModel's `assets.extra/features.json`; {} without one."""
    path = os.path.join(saved_model_path, ASSETS_EXTRA, FEATURES_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
    return {f["name"]: int(f["vocab_size"]) for f in data.get("features", [])
            if f.get("role") == "categorical" and f.get("vocab_size")}
