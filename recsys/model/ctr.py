"""The sparse-embedding CTR model of Shamir & Lin (2022, arXiv:2202.06499, "The model").

    one embedding table per categorical feature ─┐
    numeric features ────────────────────────────┴─ concat ─ [DCN-v2 cross layers] ─ MLP blocks ─ Dense(1) ─ σ

With `embedding_activation` the concatenated embeddings pass through the first block's activation and clip first
(the paper's notation a¹ = W¹ f(a⁰) + b¹, f applied to the embedding layer's output).

Embedding tables hold most parameters and only a few rows are touched per batch: their gradients are
`tf.IndexedSlices` and are trained by a sparse (per-row) Adagrad; the dense part has its own optimizer
(`recsys.training.task`). Hidden blocks are `recsys.model.mlp.MLPBlock`: dense → normalisation → activation → clip.

`ModelSpec` is the complete, validated description of a model (built from a config and `features.json`);
`CTRModel` is a `tfrs.models.Model` whose loss is a `tfrs.tasks.Ranking` binary cross-entropy on logits.

Mixed precision (`ModelSpec.mixed_precision = "mixed_bfloat16"`): the embedding tables, cross layers and hidden
blocks are built under that tf-keras policy (`recsys.model.precision`): variables float32, lookups and matmuls in
bfloat16. The logit layer, the loss and everything after it stay float32, so logits, probabilities, losses and the
SavedModel's outputs are float32.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.data.features import FeatureSet
from recsys.layers import activations
from recsys.model.layer_norm import is_training
from recsys.model.mlp import NORMALIZATIONS, MLPBlock, clip_activations
from recsys.model.precision import check_mixed_precision, precision_policy

DEFAULT_HIDDEN_UNITS = (1024, 512, 256, 128, 64, 16)


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    """One categorical feature's table: ids in [0, vocab_size) → `dim` floats."""

    name: str
    vocab_size: int
    dim: int


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that defines a CTR model's architecture.

    Attributes:
      embeddings: one table per categorical input feature.
      numeric: names of the numeric input features, concatenated as they are.
      hidden_units: widths of the hidden MLP blocks.
      activations: one activation spec per hidden block (`recsys.layers.activations.get` identifiers).
      activation_clip: clip activation outputs to ±this; 0/None = off.
      normalization: "none" | "layer" | "weight" (see `recsys.model.mlp`).
      weight_norm_scale: the fixed row norm v of weight normalisation.
      cross_layers: number of DCN-v2 cross layers (`tfrs.layers.dcn.Cross`) before the MLP; 0 = none.
      cross_projection_dim: low-rank projection of the cross layers; 0/None = full rank.
      jit_compile: XLA-compile the dense part (cross + MLP + logit); embedding lookups stay outside so their
        gradients stay sparse.
      fold_weight_norm: the serving form: weight-normalised layers as plain Dense with folded kernels.
      embedding_activation: apply the first hidden layer's activation, then its clip, to the concatenated
        embeddings before the first layer (the paper's a¹ = W¹ f(a⁰) + b¹); numeric features pass unchanged.
      mixed_precision: "" (float32) or "mixed_bfloat16" (`recsys.model.precision`).
    """

    embeddings: tuple[EmbeddingSpec, ...]
    numeric: tuple[str, ...]
    hidden_units: tuple[int, ...] = DEFAULT_HIDDEN_UNITS
    activations: tuple[Any, ...] = ("relu",) * len(DEFAULT_HIDDEN_UNITS)
    activation_clip: float | None = 6.0
    normalization: str = "layer"
    weight_norm_scale: float = 1.0
    cross_layers: int = 0
    cross_projection_dim: int | None = None
    jit_compile: bool = False
    fold_weight_norm: bool = False
    embedding_activation: bool = False
    mixed_precision: str = ""

    def __post_init__(self):
        check_mixed_precision(self.mixed_precision)
        if not self.embeddings and not self.numeric:
            raise ValueError("The model needs at least one input feature. Received: no categorical and no numeric")
        for e in self.embeddings:
            if e.vocab_size < 1 or e.dim < 1:
                raise ValueError(f"Embedding {e.name!r} needs vocab_size >= 1 and dim >= 1. Received: {e}")
        if any(not isinstance(u, int) or u < 1 for u in self.hidden_units):
            raise ValueError(f"`hidden_units` must be positive integers. Received: {self.hidden_units!r}")
        if len(self.activations) != len(self.hidden_units):
            raise ValueError(
                f"Need one activation per hidden layer ({len(self.hidden_units)}). "
                f"Received {len(self.activations)}: {self.activations!r}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {NORMALIZATIONS}. Received: normalization={self.normalization!r}"
            )
        if self.cross_layers < 0:
            raise ValueError(f"`cross_layers` must be >= 0. Received: cross_layers={self.cross_layers}")

    @property
    def input_features(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.embeddings) + self.numeric

    @property
    def input_dim(self) -> int:
        return sum(e.dim for e in self.embeddings) + len(self.numeric)

    @classmethod
    def from_config(cls, model_config: Any, features: FeatureSet) -> ModelSpec:
        """Builds the spec from `config.model` (see configs/base.py) and the data's `features.json`.

        Raises:
          ValueError: a feature named in the config is not in `features.json` or has the wrong role, or an
            option is malformed.
        """
        categorical = _select(model_config.categorical, features, "categorical", "config.model.categorical")
        numeric = _select(model_config.numeric, features, "numeric", "config.model.numeric")
        dims = _parse_dims(model_config.embedding_dims, categorical)
        embeddings = tuple(
            EmbeddingSpec(name, features[name].vocab_size, dims.get(name, int(model_config.embedding_dim)))
            for name in categorical
        )
        hidden_units = tuple(int(u) for u in model_config.hidden_units)
        return cls(
            embeddings=embeddings,
            numeric=numeric,
            hidden_units=hidden_units,
            activations=parse_activations(model_config.activation, len(hidden_units)),
            activation_clip=float(model_config.activation_clip) or None,
            normalization=model_config.normalization,
            weight_norm_scale=float(model_config.weight_norm_scale),
            cross_layers=int(model_config.cross_layers),
            cross_projection_dim=int(model_config.cross_projection_dim) or None,
            jit_compile=bool(model_config.jit_compile),
            embedding_activation=bool(model_config.get("embedding_activation", False)),
            mixed_precision=str(model_config.get("mixed_precision", "")),
        )


def parse_activations(spec: str | Sequence[Any], layers: int) -> tuple[Any, ...]:
    """One activation identifier per hidden layer.

    `spec` is one identifier used for every layer, a sequence with one per layer, or a string of
    ';'-separated identifiers (a spec string may itself contain commas: ``"smelu:beta=2;smelu:beta=1"``).
    """
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(";")]
        if any(not s for s in items):
            raise ValueError(f"`activation` has an empty entry. Received: activation={spec!r}")
    else:
        items = list(spec)
    if len(items) == 1:
        items = items * layers
    if len(items) != layers:
        raise ValueError(
            f"`activation` must be one spec or one per hidden layer ({layers}). Received {len(items)}: {spec!r}"
        )
    return tuple(items)


def _select(selection: str | Sequence[str], features: FeatureSet, role: str, key: str) -> tuple[str, ...]:
    """Feature names from "all", "" (none) or a comma-separated list, checked against features.json."""
    available = [f.name for f in features.features if f.role == role]
    if isinstance(selection, str):
        if selection.strip() == "all":
            return tuple(available)
        names = [s.strip() for s in selection.split(",") if s.strip()]
    else:
        names = list(selection)
    for name in names:
        if name not in available:
            raise ValueError(
                f"`{key}` names feature {name!r}, which is not a {role} feature of features.json "
                f"(its {role} features: {available})"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"`{key}` lists a feature twice. Received: {selection!r}")
    return tuple(names)


def _parse_dims(text: str, categorical: tuple[str, ...]) -> dict[str, int]:
    """Per-feature embedding widths from "C1=32,C2=8"."""
    dims: dict[str, int] = {}
    for item in [s.strip() for s in text.split(",") if s.strip()]:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"`config.model.embedding_dims` entries must be NAME=positive_int. Received: {item!r}")
        if name.strip() not in categorical:
            raise ValueError(
                f"`config.model.embedding_dims` names {name.strip()!r}, which is not a selected categorical "
                f"feature {list(categorical)}"
            )
        dims[name.strip()] = int(value)
    return dims


class CTRModel(tfrs.models.Model):
    """Embeddings + numeric features → [cross layers] → MLP → logit.

    `call(features)` takes a dict of [batch] tensors (categorical int64 ids, numeric float32) and returns
    [batch] logits; `per_example_loss` is the Ranking task's binary cross-entropy. Ids outside [0, vocab_size)
    map to 0, the missing/out-of-vocabulary id of `features.json`, so serving never fails on an unseen id.
    """

    def __init__(self, spec: ModelSpec, label: str = "label", name: str = "ctr_model"):
        super().__init__(name=name)
        self.spec = spec
        self.label = label
        # The layers before the logit compute in this dtype (float32 unless `spec.mixed_precision`).
        self.compute_dtype_of_features = tf.float32
        with precision_policy(spec.mixed_precision) as policy:
            self.compute_dtype_of_features = tf.as_dtype(policy.compute_dtype)
            self.embedding_layers = [
                tf.keras.layers.Embedding(e.vocab_size, e.dim, name=f"embedding_{e.name}") for e in spec.embeddings
            ]
            projection = spec.cross_projection_dim or None
            self.cross = [
                tfrs.layers.dcn.Cross(projection_dim=projection, name=f"cross_{i}") for i in range(spec.cross_layers)
            ]
            self.blocks = [
                MLPBlock(
                    units,
                    activation=activation,
                    normalization=spec.normalization,
                    clip=spec.activation_clip,
                    weight_norm_scale=spec.weight_norm_scale,
                    fold_weight_norm=spec.fold_weight_norm,
                    name=f"block_{i}",
                )
                for i, (units, activation) in enumerate(zip(spec.hidden_units, spec.activations, strict=True))
            ]
            # Its own instance of the first layer's activation (a learnable one gets its own parameters).
            self.embedding_activation = (
                activations.get(spec.activations[0]) if spec.embedding_activation and spec.embeddings else None)
        # float32 whatever the policy: logits, probabilities and losses keep float32 range and precision.
        self.logit = tf.keras.layers.Dense(1, name="logit", dtype="float32")
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE)
        )
        # Embedding lookups stay outside the compiled function so their gradients remain IndexedSlices.
        self._dense_logits = tf.function(self._dense_part, jit_compile=True) if spec.jit_compile else self._dense_part

    def embed(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """The concatenated layer-0 input [batch, spec.input_dim]: embeddings (through `clip(f(·))` with
        `spec.embedding_activation`), then the numeric features."""
        parts = []
        for e, layer in zip(self.spec.embeddings, self.embedding_layers, strict=True):
            ids = tf.cast(features[e.name], tf.int64)
            # An id outside the table means data of another feature contract: an error, never a silent id 0 (the
            # out-of-vocabulary id is the preprocessing job's deliberate mapping, made before ids reach the model).
            with tf.control_dependencies([tf.debugging.assert_non_negative(
                    ids, message=f"categorical {e.name}: negative id (data of another feature contract?)"),
                    tf.debugging.assert_less(ids, tf.constant(e.vocab_size, tf.int64), message=(
                        f"categorical {e.name}: id >= vocab_size={e.vocab_size} (data of another feature "
                        "contract? check its feature_fingerprint against features.json)"))]):
                ids = tf.identity(ids)
            parts.append(layer(ids))
        if self.embedding_activation is not None:
            embedded = self.embedding_activation(tf.concat(parts, axis=1) if len(parts) > 1 else parts[0],
                                                 training=training)
            if self.spec.activation_clip:
                embedded = clip_activations(embedded, self.spec.activation_clip, training=is_training(training))
            parts = [embedded]
        if self.spec.numeric:
            parts.append(tf.stack([tf.cast(features[name], self.compute_dtype_of_features)
                                   for name in self.spec.numeric], axis=1))
        return tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]

    def _dense_part(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        x0 = x
        for layer in self.cross:
            x = layer(x0, x)
        for block in self.blocks:
            x = block(x, training=training)
        return tf.squeeze(self.logit(x), axis=1)  # float32 (the logit layer's policy)

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self._dense_logits(self.embed(features, training=training), training=training)

    def per_example_loss(self, features: dict[str, tf.Tensor], logits: tf.Tensor) -> tf.Tensor:
        """Binary cross-entropy of each example [batch] (the `tfrs.tasks.Ranking` loss)."""
        labels = tf.cast(features[self.label], tf.float32)
        return self.task(labels=labels[:, None], predictions=logits[:, None], compute_metrics=False)

    def compute_loss(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Mean loss of a batch (the `tfrs.models.Model` hook, so `fit` also works on one device)."""
        return tf.reduce_mean(self.per_example_loss(inputs, self(inputs, training=training)))

    def build_from_spec(self) -> None:
        """Creates every variable by calling the model on a one-example batch."""
        dummy = {e.name: tf.zeros([1], tf.int64) for e in self.spec.embeddings}
        dummy.update({name: tf.zeros([1], tf.float32) for name in self.spec.numeric})
        self(dummy)

    @property
    def embedding_variables(self) -> list[tf.Variable]:
        """The embedding tables (sparse gradients, sparse optimizer); a table sharded over parameter servers
        (`recsys.training.sharding`) as its shards, which is how `trainable_variables` lists it too."""
        tables = []
        for layer in self.embedding_layers:
            table = layer.embeddings
            tables.extend(table.variables if isinstance(table, tf.__internal__.distribute.ShardedVariable)
                          else [table])
        return tables

    @property
    def dense_variables(self) -> list[tf.Variable]:
        """Every other trainable variable (MLP, cross layers, trainable activation parameters)."""
        tables = {id(v) for v in self.embedding_variables}
        return [v for v in self.trainable_variables if id(v) not in tables]

    def serving_copy(self) -> CTRModel:
        """A new model computing the same function with weight norm folded into plain kernels (export form)."""
        copy = CTRModel(dataclasses.replace(self.spec, fold_weight_norm=True), label=self.label, name=self.name)
        copy.build_from_spec()
        for src, dst in zip(self.embedding_layers, copy.embedding_layers, strict=True):
            dst.set_weights(src.get_weights())
        for src, dst in zip(self.cross, copy.cross, strict=True):
            dst.set_weights(src.get_weights())
        for src, dst in zip(self.blocks, copy.blocks, strict=True):
            dst.set_serving_weights(src.serving_weights())
        if self.embedding_activation is not None:
            copy.embedding_activation.set_weights(self.embedding_activation.get_weights())
        copy.logit.set_weights(self.logit.get_weights())
        return copy


def build_model(spec: ModelSpec, label: str = "label") -> CTRModel:
    """A built `CTRModel` (all variables created); call inside a strategy scope to distribute them."""
    model = CTRModel(spec, label=label)
    model.build_from_spec()
    return model
