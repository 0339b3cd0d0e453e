"""LayerNorm: Keras' LayerNormalization function, with fused training kernels whose gradients are checked."""
import numpy as np
import pytest
import tensorflow as tf

from recsys.model.layer_norm import LayerNorm


def _pair(units=12, seed=0):
    ours, keras = LayerNorm(), tf.keras.layers.LayerNormalization(epsilon=1e-3)
    ours.build([None, units])
    keras.build([None, units])
    rng = np.random.default_rng(seed)
    weights = [rng.normal(1, 0.3, units).astype("float32"), rng.normal(0, 0.3, units).astype("float32")]
    ours.set_weights(weights)
    keras.set_weights(weights)
    return ours, keras


@pytest.mark.parametrize("training", [False, True])
def test_values_and_gradients_equal_keras_layer_normalization(training):
    ours, keras = _pair()
    x = tf.constant(np.random.default_rng(1).normal(3, 5, size=(9, 12)).astype("float32"))
    upstream = tf.constant(np.random.default_rng(2).normal(size=(9, 12)).astype("float32"))
    results = []
    for layer in (ours, keras):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * upstream)
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_variables])])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_output_rows_are_normalized_numpy_reference():
    layer = LayerNorm(epsilon=1e-3)
    x = np.random.default_rng(3).normal(2, 4, size=(5, 7)).astype("float32")
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3)
    for training in (False, True):
        np.testing.assert_allclose(layer(x, training=training).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_fused_gradient_against_finite_differences():
    layer = LayerNorm()
    x = tf.constant(np.random.default_rng(4).normal(size=(3, 6)), tf.float64)
    layer.build([None, 6])

    def f(value):
        return tf.reduce_sum(tf.sin(layer(tf.cast(value, tf.float32), training=True)))

    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = f(x)
    analytic = tape.gradient(loss, x).numpy()
    eps = 1e-3
    numeric = np.zeros_like(analytic)
    for i in np.ndindex(*x.shape):
        delta = np.zeros(x.shape)
        delta[i] = eps
        numeric[i] = (f(x + delta).numpy() - f(x - delta).numpy()) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-3)


def test_config_and_bad_epsilon():
    assert LayerNorm.from_config(LayerNorm(epsilon=0.01).get_config()).epsilon == 0.01
    with pytest.raises(ValueError, match="`epsilon` must be positive. Received: epsilon=0"):
        LayerNorm(epsilon=0)
