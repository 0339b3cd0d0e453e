"""WeightNormDense: rows at norm v, gradients, folding, serialisation, argument checks."""
import numpy as np
import pytest
import tensorflow as tf

from recsys.model.weight_norm import WeightNormDense


def test_every_output_units_weights_have_norm_v_and_output_matches_numpy():
    layer = WeightNormDense(5, norm=2.5)
    x = np.random.default_rng(0).normal(size=(7, 4)).astype("float32")
    y = layer(x).numpy()
    kernel = layer.kernel.numpy()
    reference_kernel = 2.5 * kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(layer.normalized_kernel().numpy(), axis=0), 2.5, rtol=1e-6)
    np.testing.assert_allclose(y, x @ reference_kernel + layer.bias.numpy(), rtol=1e-5, atol=1e-6)


def test_output_does_not_depend_on_the_raw_scale_of_w():
    layer = WeightNormDense(3, norm=1.0, use_bias=False)
    x = tf.ones([2, 4])
    before = layer(x).numpy()
    layer.kernel.assign(layer.kernel * 17.0)
    np.testing.assert_allclose(layer(x).numpy(), before, rtol=1e-5)


def test_gradient_is_orthogonal_to_each_row():
    # W = v·w/‖w‖ is scale-invariant in w, so dL/dw is orthogonal to w (Salimans & Kingma 2016, eq. 4).
    layer = WeightNormDense(3, norm=1.5)
    x = tf.random.stateless_normal([8, 6], seed=[1, 2])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(layer(x)))
    grad = tape.gradient(loss, layer.kernel).numpy()
    dots = np.sum(grad * layer.kernel.numpy(), axis=0)
    np.testing.assert_allclose(dots, 0.0, atol=1e-5)
    assert np.abs(grad).max() > 1e-3


def test_folded_weights_in_a_plain_dense_give_the_same_outputs():
    layer = WeightNormDense(4, norm=0.7)
    x = np.random.default_rng(1).normal(size=(9, 3)).astype("float32")
    y = layer(x).numpy()
    dense = tf.keras.layers.Dense(4)
    dense.build([None, 3])
    dense.set_weights(layer.folded_weights())
    np.testing.assert_allclose(dense(x).numpy(), y, rtol=1e-6, atol=1e-6)


def test_config_round_trip():
    layer = WeightNormDense(4, norm=3.0, use_bias=False, name="wn")
    clone = WeightNormDense.from_config(layer.get_config())
    assert (clone.units, clone.norm, clone.use_bias) == (4, 3.0, False)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"units": 0}, "`units` must be a positive integer"), ({"units": 3, "norm": 0.0}, "`norm` must be positive"),
     ({"units": 3, "norm": -1.0}, "Received: norm=-1.0"), ({"units": 3, "epsilon": 0.0}, "`epsilon`")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WeightNormDense(**kwargs)
