"""Layer normalisation over the last axis, fast on CPU.

    y = γ · (x − μ) / √(σ² + ε) + β,   μ, σ² = mean and variance of x over its last axis

(Ba, Kiros & Hinton, 2016). Same function and parameters (`gamma`, `beta`, ε = 1e-3) as
`tf.keras.layers.LayerNormalization(axis=-1)`, but in training (``training=True``) the forward pass and the
closed-form backward pass each run as one XLA-compiled kernel:

    x̂ = (x − μ)·r,  r = 1/√(σ² + ε),  g = dy·γ
    dx = r · (g − mean(g) − x̂ · mean(g · x̂)),   dγ = Σ_batch dy·x̂,   dβ = Σ_batch dy

On CPU the block is memory-bound and tf-keras' layer norm (a fused batch-norm kernel on a reshaped tensor) costs
several full passes more: measured 4–5× slower for a [512, 1024] forward + backward (docs/performance.md,
"Trainer"). Inference (``training=False``/None) uses plain TensorFlow ops, so exported serving graphs need no
XLA.
"""
from __future__ import annotations

import tensorflow as tf


def _normalize(x, epsilon):
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    centered = x - mean
    inverse_std = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True) + epsilon)
    return centered * inverse_std, inverse_std


@tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
def _xla_forward(x, gamma, beta, epsilon):
    normalized, inverse_std = _normalize(x, epsilon)
    return normalized * gamma + beta, normalized, inverse_std


@tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
def _xla_backward(upstream, normalized, inverse_std, gamma):
    scaled = upstream * gamma
    dx = inverse_std * (
        scaled
        - tf.reduce_mean(scaled, axis=-1, keepdims=True)
        - normalized * tf.reduce_mean(scaled * normalized, axis=-1, keepdims=True)
    )
    batch_axes = list(range(len(upstream.shape) - 1))
    return dx, tf.reduce_sum(upstream * normalized, axis=batch_axes), tf.reduce_sum(upstream, axis=batch_axes)


@tf.keras.utils.register_keras_serializable(package="recsys")
class LayerNorm(tf.keras.layers.Layer):
    """Layer normalisation of the last axis with learned scale γ and offset β (see the module docstring).

    Example:
      >>> y = LayerNorm()(tf.random.normal([4, 8]))   # each row: mean 0, variance 1 (γ = 1, β = 0 at start)

    Args:
      epsilon: added to the variance, > 0.

    Input shape: [..., units] (the last axis must be known). Output shape: same.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        units = input_shape[-1]
        if units is None:
            raise ValueError(f"LayerNorm needs a known last dimension. Received input shape: {input_shape}")
        self.gamma = self.add_weight(name="gamma", shape=[int(units)], initializer="ones", trainable=True)
        self.beta = self.add_weight(name="beta", shape=[int(units)], initializer="zeros", trainable=True)
        super().build(input_shape)

    def call(self, inputs, training=None):
        if not is_training(training):
            normalized, _ = _normalize(inputs, self.epsilon)
            return normalized * self.gamma + self.beta
        epsilon = tf.constant(self.epsilon, inputs.dtype)

        @tf.custom_gradient
        def layer_norm(x, gamma, beta):
            y, normalized, inverse_std = _xla_forward(x, gamma, beta, epsilon)

            def grad(upstream):
                return _xla_backward(upstream, normalized, inverse_std, gamma)

            return y, grad

        return layer_norm(inputs, self.gamma, self.beta)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def is_training(training) -> bool:
    """Python truth of Keras' `training`; a symbolic value counts as inference (plain ops, same values)."""
    if training is None or isinstance(training, bool | int):
        return bool(training)
    static = tf.get_static_value(training)
    return bool(static) if static is not None else False
