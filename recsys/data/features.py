"""Reads and writes `features.json`, the only interface between the data and the model.

`features.json` (written by `pipelines.preprocess`, read by the trainer) looks like:

    {"format_version": 1,
     "features": [
        {"name": "label", "type": "int64", "role": "label"},
        {"name": "ts", "type": "int64", "role": "time"},
        {"name": "I1", "type": "float32", "role": "numeric"},
        {"name": "C1", "type": "int64", "role": "categorical", "vocab_size": 1234},
        ...],
     "vocab_mode": "frequency", ...}

Categorical ids lie in [0, vocab_size); id 0 means missing or out of vocabulary.
Extra top-level keys (how the vocabulary was built, the numeric transform) are kept as `metadata`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from recsys.data import criteo, fingerprint, layout

FORMAT_VERSION = 1
FEATURES_FILE_NAME = layout.FEATURES_FILE
ROLES = ("label", "time", "numeric", "categorical")
TYPES = ("int64", "float32")


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    type: str
    role: str
    vocab_size: int | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"Feature {self.name!r}: `role` must be one of {ROLES}. Received: role={self.role!r}")
        if self.type not in TYPES:
            raise ValueError(f"Feature {self.name!r}: `type` must be one of {TYPES}. Received: type={self.type!r}")
        if self.role == "categorical" and (not isinstance(self.vocab_size, int) or self.vocab_size < 1):
            raise ValueError(
                f"Feature {self.name!r}: categorical features need an integer `vocab_size` >= 1. "
                f"Received: vocab_size={self.vocab_size!r}"
            )

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "type": self.type, "role": self.role}
        if self.vocab_size is not None:
            out["vocab_size"] = self.vocab_size
        return out


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    features: tuple[Feature, ...]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        names = [f.name for f in self.features]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"Feature names must be unique. Received duplicates: {duplicated}")
        labels = [f.name for f in self.features if f.role == "label"]
        if len(labels) != 1:
            raise ValueError(f"Exactly one feature must have role 'label'. Received: {labels}")

    @property
    def label(self) -> Feature:
        return next(f for f in self.features if f.role == "label")

    @property
    def time(self) -> Feature | None:
        return next((f for f in self.features if f.role == "time"), None)

    @property
    def numeric(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.role == "numeric")

    @property
    def categorical(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.role == "categorical")

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"No feature {name!r}; known: {[f.name for f in self.features]}")

    def parse_spec(self) -> dict:
        """The `tf.io.parse_example` spec: every feature is a scalar FixedLenFeature."""
        import tensorflow as tf

        dtypes = {"int64": tf.int64, "float32": tf.float32}
        return {f.name: tf.io.FixedLenFeature([], dtypes[f.type]) for f in self.features}

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, **self.metadata, "features": [f.to_json() for f in self.features]}

    def fingerprint(self, source: str = FEATURES_FILE_NAME) -> str:
        """The feature fingerprint this features.json records, checked against its content
        (`recsys.data.fingerprint.recorded_fingerprint`); `source` names the file in errors.

        Raises:
          FingerprintError: none recorded (written before fingerprints existed), or edited since.
        """
        return fingerprint.recorded_fingerprint(self.to_json(), source)

    def stamped(self) -> FeatureSet:
        """This feature set with its `feature_fingerprint` (for feature sets not made by the preprocessing job)."""
        return FeatureSet.from_json(fingerprint.stamp(self.to_json()))

    def save(self, path: str) -> None:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSet:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"features.json `format_version` must be {FORMAT_VERSION}. Received: {data.get('format_version')!r}"
            )
        metadata = {k: v for k, v in data.items() if k not in ("format_version", "features")}
        return cls(tuple(Feature(**f) for f in data["features"]), metadata)

    @classmethod
    def load(cls, path: str) -> FeatureSet:
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"features file not found: {path}")
        with tf.io.gfile.GFile(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON: {e}") from e
        return cls.from_json(data)


def criteo_feature_set(vocab_sizes: dict[str, int], metadata: dict[str, Any] | None = None) -> FeatureSet:
    """The Criteo schema (label, ts, I1..I13 float, C1..C26 int64) with the given vocabulary sizes."""
    features = [Feature(criteo.LABEL, "int64", "label"), Feature(criteo.TIME, "int64", "time")]
    features += [Feature(name, "float32", "numeric") for name in criteo.INT_COLUMNS]
    features += [Feature(name, "int64", "categorical", vocab_sizes[name]) for name in criteo.CAT_COLUMNS]
    return FeatureSet(tuple(features), dict(metadata or {}))


def default_features_path(data_pattern: str) -> str:
    """`features.json` beside the data: in the directory of the (first) glob of `data_pattern`."""
    return os.path.join(layout.data_directory(data_pattern), layout.FEATURES_FILE)
