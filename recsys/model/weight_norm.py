"""Dense layer with weight normalisation at a fixed row norm.

Weight normalisation (Salimans & Kingma, 2016) reparameterises each row w_j of a weight matrix W (the weights
into output unit j) as

    W_j = v · w_j / ‖w_j‖₂

Shamir & Lin (2022, arXiv:2202.06499, "The model") keep v fixed: the pre-activations of the next layer then stay
in a range set by v and the input scale, which is what lets activation clipping (±6) coexist with a smooth
activation. Because v is a constant, the normalised matrix can be computed once and served as a plain Dense
kernel (`folded_weights`).
"""
from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="recsys")
class WeightNormDense(tf.keras.layers.Layer):
    """`y = x · W + b` with every output unit's weight vector rescaled to L2 norm `norm`.

    In Keras' kernel layout ([inputs, units]) output unit j's weights are column j, so the kernel used is
    `norm * kernel / ‖kernel[:, j]‖₂` column by column.

    Example:
      >>> layer = WeightNormDense(4, norm=2.0)
      >>> y = layer(tf.ones([3, 5]))   # every column of layer.normalized_kernel() has norm 2

    Args:
      units: output width.
      norm: the fixed L2 norm v of each output unit's weight vector (> 0).
      use_bias: add a (not normalised) bias.
      kernel_initializer, bias_initializer: Keras initializers of the raw direction `w` and the bias.
      epsilon: floor on the squared norm, avoiding 0/0 for an all-zero column.

    Input shape: [..., inputs]. Output shape: [..., units].
    """

    def __init__(
        self,
        units: int,
        norm: float = 1.0,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        epsilon: float = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        if not norm > 0:
            raise ValueError(f"`norm` must be positive. Received: norm={norm!r}")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon!r}")
        self.units = units
        self.norm = float(norm)
        self.use_bias = use_bias
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.bias_initializer = tf.keras.initializers.get(bias_initializer)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        inputs = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=[inputs, self.units], initializer=self.kernel_initializer, trainable=True
        )
        self.bias = (
            self.add_weight(name="bias", shape=[self.units], initializer=self.bias_initializer, trainable=True)
            if self.use_bias
            else None
        )
        super().build(input_shape)

    def normalized_kernel(self) -> tf.Tensor:
        """The kernel actually applied: each column rescaled to L2 norm `norm`."""
        squared = tf.reduce_sum(tf.square(self.kernel), axis=0, keepdims=True)
        return self.kernel * (self.norm * tf.math.rsqrt(tf.maximum(squared, self.epsilon)))

    def call(self, inputs):
        outputs = tf.matmul(inputs, self.normalized_kernel())
        if self.bias is not None:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return outputs

    def folded_weights(self) -> list:
        """[kernel, bias] (NumPy) of a plain `Dense` layer computing the same function."""
        weights = [self.normalized_kernel().numpy()]
        if self.bias is not None:
            weights.append(self.bias.numpy())
        return weights

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            norm=self.norm,
            use_bias=self.use_bias,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=tf.keras.initializers.serialize(self.bias_initializer),
            epsilon=self.epsilon,
        )
        return config
