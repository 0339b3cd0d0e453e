"""The hidden block of the CTR model: dense → normalisation → activation → clip.

Shamir & Lin (2022, arXiv:2202.06499, "The model") compute hidden layers a^ℓ = W^ℓ f(a^{ℓ−1}) + b^ℓ with the
activation output clipped (e.g. to ±6) for stability; clipping keeps the network smooth only together with a
normalisation that keeps pre-activations inside the smooth region:

- ``"layer"``: layer normalisation of the pre-activation (before the activation; `recsys.model.layer_norm`, the
  Keras function with fused training kernels). This project's measurements
  (../shared/paper-notes.md) show SmeLU losing accuracy without it, so it is the default.
- ``"weight"``: weight normalisation with every row of W at a fixed L2 norm v (`WeightNormDense`); foldable into a
  plain Dense kernel for serving (`fold_weight_norm=True` builds that plain form).
- ``"none"``.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from recsys.layers import activations
from recsys.model.layer_norm import LayerNorm, is_training
from recsys.model.weight_norm import WeightNormDense

NORMALIZATIONS = ("none", "layer", "weight")


@tf.keras.utils.register_keras_serializable(package="recsys")
class MLPBlock(tf.keras.layers.Layer):
    """One hidden layer: `clip(f(norm(x · W + b)))`.

    The activation is `self.activation_layer`; clipping is applied by the block (`clip_activations`), equal to
    `recsys.layers.activations.ClippedActivation` with a cheaper gradient.

    Args:
      units: width of the layer.
      activation: anything `recsys.layers.activations.get` accepts (name, spec string such as
        ``"smelu:beta=0.5"``, dict, or layer).
      normalization: ``"none"``, ``"layer"`` (layer norm before the activation) or ``"weight"`` (each row of W
        kept at L2 norm `weight_norm_scale`).
      clip: clip the activation output to [−clip, clip]; 0 or None turns clipping off.
      weight_norm_scale: the fixed row norm v of weight normalisation.
      fold_weight_norm: with ``normalization="weight"``, use a plain Dense layer whose kernel is set to the
        folded (normalised) kernel — the serving form, numerically the same function.

    Input shape: [batch, inputs]. Output shape: [batch, units].
    """

    def __init__(
        self,
        units: int,
        activation: Any = "relu",
        normalization: str = "layer",
        clip: float | None = 6.0,
        weight_norm_scale: float = 1.0,
        fold_weight_norm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {NORMALIZATIONS}. Received: normalization={normalization!r}"
            )
        if clip is not None and clip < 0:
            raise ValueError(f"`clip` must be >= 0 (0 or None = no clipping). Received: clip={clip!r}")
        if not weight_norm_scale > 0:
            raise ValueError(f"`weight_norm_scale` must be positive. Received: weight_norm_scale={weight_norm_scale!r}")
        self.units = units
        self.normalization = normalization
        self.clip = float(clip) if clip else None
        self.weight_norm_scale = float(weight_norm_scale)
        self.fold_weight_norm = bool(fold_weight_norm)
        self.activation_layer = activations.get(activation)
        if normalization == "weight" and not fold_weight_norm:
            self.dense = WeightNormDense(units, norm=self.weight_norm_scale, name="dense")
        else:
            # Layer norm's own offset makes a dense bias redundant.
            self.dense = tf.keras.layers.Dense(units, use_bias=normalization != "layer", name="dense")
        # float32 under a mixed-precision policy too (means and variances lose too much in bfloat16): the layer
        # casts its input up and the activation casts back down.
        self.layer_norm = LayerNorm(name="layer_norm", dtype="float32") if normalization == "layer" else None

    def call(self, inputs, training=None):
        x = self.dense(inputs)
        if self.layer_norm is not None:
            x = self.layer_norm(x, training=training)
        x = self.activation_layer(x, training=training)
        return clip_activations(x, self.clip, training=is_training(training)) if self.clip else x

    def serving_weights(self) -> list:
        """This block's weights in the order a `fold_weight_norm=True` twin expects (weight norm folded)."""
        weights = []
        for layer in (self.dense, self.layer_norm, self.activation_layer):
            if layer is None:
                continue
            weights += layer.folded_weights() if isinstance(layer, WeightNormDense) else layer.get_weights()
        return weights

    def set_serving_weights(self, weights: list) -> None:
        """Inverse of `serving_weights` for a block built with the same arguments (folded or not)."""
        for layer in (self.dense, self.layer_norm, self.activation_layer):
            if layer is None:
                continue
            count = len(layer.weights)
            layer.set_weights(weights[:count])
            weights = weights[count:]
        if weights:
            raise ValueError(f"{len(weights)} weights left over after setting block {self.name!r}")

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=tf.keras.layers.serialize(self.activation_layer),
            normalization=self.normalization,
            clip=self.clip,
            weight_norm_scale=self.weight_norm_scale,
            fold_weight_norm=self.fold_weight_norm,
        )
        return config


@tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
def _xla_clip_gradient(upstream, values, clip):
    return tf.where(tf.abs(values) <= clip, upstream, tf.zeros_like(upstream))


def clip_activations(values: tf.Tensor, clip: float, training: bool = False) -> tf.Tensor:
    """`tf.clip_by_value(values, −clip, clip)`, with the same gradient (1 inside [−clip, clip], 0 outside).

    In training the gradient is one fused XLA pass; `tf.clip_by_value`'s own gradient also reduces gradients for
    its (scalar) bounds, several full passes over the activations that measured as a large share of a CPU step.
    """
    if not training:
        return tf.clip_by_value(values, -clip, clip)
    bound = tf.constant(clip, values.dtype)

    @tf.custom_gradient
    def clipped(x):
        return tf.clip_by_value(x, -bound, bound), lambda upstream: _xla_clip_gradient(upstream, x, bound)

    return clipped(values)

