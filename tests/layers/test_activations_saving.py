"""Serialisation of the activation layers: config round trips and a SavedModel reloaded in fresh processes."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from recsys.layers import activations as act

LAYERS = {
    "relu": lambda: act.ReLU(),
    "smelu": lambda: act.SmeLU(beta=0.7),
    "gsmelu": lambda: act.GeneralizedSmeLU(alpha=0.5, beta=2.0, g_minus=-0.1, g_plus=1.2, t=-0.3),
    "gsmelu learned/unit": lambda: act.GeneralizedSmeLU(alpha=0.8, trainable=True, granularity="unit"),
    "gsmelu learned/layer": lambda: act.GeneralizedSmeLU(g_minus=0.05, trainable=True),
    "rescu": lambda: act.RESCU(knots=[-1.0, 1.0], slopes=[0.1, 0.5, 1.0], half_widths=[0.5, 0.25], t=-0.2),
    "rescu learned": lambda: act.RESCU(knots=[-1.0, 1.0], slopes=[0.0, 0.5, 1.0], half_widths=0.4, trainable=True),
    "softplus": lambda: act.Softplus(beta=2.0),
    "swish": lambda: act.Swish(beta=1.5),
    "gelu": lambda: act.GELU(beta=0.7),
    "gelu approx": lambda: act.GELU(beta=1.3, approximate=True),
    "clipped smelu": lambda: act.ClippedActivation(act.SmeLU(beta=2.0), clip=1.5),
    "clipped spec": lambda: act.ClippedActivation("swish:beta=2", clip=0.5),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_config_round_trip_gives_same_layer_and_outputs(name):
    layer = LAYERS[name]()
    x = tf.constant(np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 12))
    expected = layer(x).numpy()
    config = layer.get_config()
    json.dumps(config)  # plain JSON: configs are stored next to checkpoints

    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_array_equal(clone(x).numpy(), expected)

    revived = tf.keras.layers.deserialize(json.loads(json.dumps(tf.keras.layers.serialize(layer))))
    assert type(revived) is type(layer) and revived.get_config() == config
    np.testing.assert_array_equal(revived(x).numpy(), expected)


def test_registered_under_the_recsys_package():
    for name in ("SmeLU", "GeneralizedSmeLU", "RESCU", "Softplus", "Swish", "GELU", "ReLU", "ClippedActivation"):
        assert tf.keras.utils.get_registered_object(f"recsys>{name}") is getattr(act, name)


def _model_with_every_layer():
    """A functional model with one branch per layer; every weight is moved off its initial value, as training
    would (training itself is covered in test_activations_learnable.py), so the reload must restore them."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((12,), name="x")
    branches = [LAYERS[name]()(tf.keras.layers.Dense(12)(inputs)) for name in sorted(LAYERS)]
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(tf.keras.layers.Concatenate()(branches)))
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign_add(rng.normal(0, 0.05, weight.shape).astype(np.float32))
    return model


_FRESH_PROCESS_CHECK = """
import sys
import numpy as np
import tensorflow as tf

# 1. Plain TensorFlow, recsys not imported: the serving graph must stand on its own.
assert "recsys" not in sys.modules
path, data = sys.argv[1:]
arrays = np.load(data)
signature = tf.saved_model.load(path).signatures["serving_default"]
out = list(signature(x=tf.constant(arrays["x"])).values())[0].numpy()
np.testing.assert_array_equal(out, arrays["graph"])
# Inference uses plain ops: no function the serving graph can reach must be XLA-compiled (TF Serving's binary
# has XLA:CPU off by default).
library = signature.graph.as_graph_def().library.function
assert library, "expected the signature's functions in its library"
xla = [f.signature.name for f in library if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]
assert not xla, xla

# 2. Keras with the recsys classes registered: the layers come back as themselves, learned weights included.
import recsys.layers.activations as act

model = tf.keras.models.load_model(path)
kinds = {type(layer) for layer in model.layers}
assert {act.SmeLU, act.GeneralizedSmeLU, act.RESCU, act.Softplus, act.Swish, act.GELU, act.ReLU,
        act.ClippedActivation} <= kinds, kinds
np.testing.assert_array_equal(model(arrays["x"], training=False).numpy(), arrays["eager"])
np.testing.assert_allclose(model(arrays["x"], training=True).numpy(), arrays["training"], rtol=1e-6, atol=1e-6)
print("reload-ok")
"""


def test_saved_model_reloads_in_a_fresh_process_with_identical_outputs(tmp_path):
    model = _model_with_every_layer()
    learned = [
        layer.parameters()["alpha"].numpy()
        for layer in model.layers
        if isinstance(layer, act.GeneralizedSmeLU) and layer.learn_parameters
    ]
    assert len(learned) == 2 and all(np.all(np.abs(v - 0.8) > 1e-4) and np.all(v != 1.0) for v in learned)

    x = np.random.default_rng(1).normal(0, 2, size=(64, 12)).astype(np.float32)
    # The reloaded signature runs as a graph, so compare it with the original model run as a graph (eager and
    # graph execution may fuse the Dense ops differently and differ in the last bit).
    graph = tf.function(lambda inputs: model(inputs, training=False))(tf.constant(x)).numpy()
    data = tmp_path / "data.npz"
    np.savez(
        data,
        x=x,
        graph=graph,
        eager=model(x, training=False).numpy(),
        training=model(x, training=True).numpy(),
    )
    path = str(tmp_path / "model")
    model.save(path, save_format="tf")

    # TF_USE_LEGACY_KERAS=1 up front lets the check import TensorFlow before recsys.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FRESH_PROCESS_CHECK), path, str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0 and "reload-ok" in result.stdout, result.stderr[-3000:]
