"""The CTR model: spec from config, block math (layer norm before the activation, clipping), one-step smoke per
activation and normalisation, sparse embedding gradients and updates, weight-norm folding, DCN cross layers."""
import numpy as np
import pytest
import tensorflow as tf

from configs import smoke
from recsys.layers import activations
from recsys.model import ModelSpec, build_model
from recsys.model.mlp import MLPBlock
from recsys.testing import toy_feature_set
from recsys.training import task

FEATURES = toy_feature_set(num_numeric=3, vocab_sizes=(10, 20))
ACTIVATIONS = [
    "relu",
    "smelu:beta=1",
    "gsmelu:trainable=true",
    "rescu:knots=[-1,1],slopes=[0,0.5,1],half_widths=[0.5,0.5]",
    "softplus:beta=2",
    "swish",
    "gelu",
    "gelu:approximate=true",
]


def _config(**model):
    config = smoke.get_config()
    config.model.hidden_units = (8, 4)
    config.model.embedding_dim = 3
    for key, value in model.items():
        setattr(config.model, key, value)
    return config


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    batch = {"label": tf.constant(rng.random(n) < 0.4, tf.int64), "ts": tf.range(n, dtype=tf.int64)}
    for f in FEATURES.numeric:
        batch[f.name] = tf.constant(rng.exponential(size=n), tf.float32)
    for f in FEATURES.categorical:
        # Only the first 5 ids are ever used, so the other rows must not move.
        batch[f.name] = tf.constant(rng.integers(0, 5, n), tf.int64)
    return batch


def _state(config, seed=0):
    spec = ModelSpec.from_config(config.model, FEATURES)
    return task.build_model_state(spec, "label", config.optimizer, init_seed=seed, metrics_factory=lambda: None)


# --------------------------------------------------------------------------------------------------------------
# Spec from config.


def test_spec_from_config_selects_features_and_widths():
    config = _config(categorical="C2", numeric="I1,I3", embedding_dims="C2=7", activation="smelu:beta=2;relu")
    spec = ModelSpec.from_config(config.model, FEATURES)
    assert [(e.name, e.vocab_size, e.dim) for e in spec.embeddings] == [("C2", 20, 7)]
    assert spec.numeric == ("I1", "I3")
    assert spec.input_dim == 9
    assert spec.activations == ("smelu:beta=2", "relu")


def test_criteo_toy_config_is_the_papers_240_input_model():
    from configs import criteo_toy
    from recsys.data.criteo import CAT_COLUMNS
    from recsys.data.features import criteo_feature_set

    spec = ModelSpec.from_config(criteo_toy.get_config().model, criteo_feature_set(dict.fromkeys(CAT_COLUMNS, 100)))
    assert len(spec.embeddings) == 5 and spec.input_dim == 240 and spec.numeric == ()
    assert spec.hidden_units == (1024, 512, 256, 128, 64, 16)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"categorical": "C1,C9"}, "'C9', which is not a categorical feature of features.json"),
        ({"numeric": "C1"}, "'C1', which is not a numeric feature"),
        ({"activation": "relu;relu;relu"}, "one spec or one per hidden layer \\(2\\). Received 3"),
        ({"activation": "relu;"}, "empty entry"),
        ({"normalization": "batch"}, "`normalization` must be one of"),
        ({"embedding_dims": "C1=0"}, "NAME=positive_int"),
        ({"embedding_dims": "C7=3"}, "not a selected categorical"),
        ({"categorical": "", "numeric": ""}, "at least one input feature"),
        ({"hidden_units": (8, 0)}, "`hidden_units` must be positive"),
    ],
)
def test_bad_model_config(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_config(_config(**overrides).model, FEATURES)


def test_unknown_activation_name_fails_when_building():
    spec = ModelSpec.from_config(_config(activation="smoothrelu").model, FEATURES)
    with pytest.raises(ValueError, match="Unknown activation name 'smoothrelu'"):
        build_model(spec)


# --------------------------------------------------------------------------------------------------------------
# The block: dense -> [layer norm] -> activation -> clip.


def _smelu(z, beta):
    return np.where(z <= -beta, 0.0, np.where(z >= beta, z, (z + beta) ** 2 / (4 * beta)))


def test_layer_norm_is_applied_to_the_pre_activation_before_smelu():
    block = MLPBlock(6, activation="smelu:beta=0.5", normalization="layer", clip=6.0)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32") * 10
    y = block(x).numpy()
    z = x @ block.dense.kernel.numpy()
    normalized = (z - z.mean(axis=1, keepdims=True)) / np.sqrt(z.var(axis=1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(y, np.clip(_smelu(normalized, 0.5), -6, 6), rtol=1e-4, atol=1e-5)
    # Layer norm's offset replaces the dense bias.
    assert not block.dense.use_bias


def test_without_normalization_smelu_sees_the_raw_pre_activation_and_clip_bounds_it():
    block = MLPBlock(6, activation="smelu:beta=0.5", normalization="none", clip=2.0)
    x = np.random.default_rng(0).normal(size=(50, 4)).astype("float32") * 10
    y = block(x).numpy()
    z = x @ block.dense.kernel.numpy() + block.dense.bias.numpy()
    np.testing.assert_allclose(y, np.clip(_smelu(z, 0.5), -2, 2), rtol=1e-4, atol=1e-5)
    assert y.max() == pytest.approx(2.0)


def test_clip_zero_turns_clipping_off():
    block = MLPBlock(4, activation="relu", normalization="none", clip=0)
    y = block(np.random.default_rng(0).normal(size=(20, 3)).astype("float32") * 100).numpy()
    assert y.max() > 6.0


@pytest.mark.parametrize("training", [False, True])
def test_clip_equals_clipped_activation_in_value_and_gradient(training):
    from recsys.model.mlp import clip_activations

    x = tf.constant([-9.0, -6.0, -4.0, -3.9, 0.0, 3.0, 4.0, 6.0, 6.5, 100.0])  # ±4 · 1.5 = ±6: on the bounds
    reference = activations.ClippedActivation(activations.get("relu"), clip=6.0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = clip_activations(x * 1.5, 6.0, training=training)
        theirs = tf.clip_by_value(x * 1.5, -6.0, 6.0)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(tape.gradient(ours, x).numpy(), tape.gradient(theirs, x).numpy())
    np.testing.assert_array_equal(clip_activations(tf.nn.relu(x), 6.0, training).numpy(), reference(x).numpy())


def test_weight_norm_block_keeps_rows_at_v():
    block = MLPBlock(5, activation="relu", normalization="weight", weight_norm_scale=3.0)
    block(tf.ones([2, 4]))
    np.testing.assert_allclose(np.linalg.norm(block.dense.normalized_kernel().numpy(), axis=0), 3.0, rtol=1e-6)


def test_block_config_round_trip_keeps_the_activation():
    block = MLPBlock(4, activation="smelu:beta=0.25", normalization="weight", clip=3.0, weight_norm_scale=2.0)
    clone = MLPBlock.from_config(block.get_config())
    x = np.random.default_rng(0).normal(size=(3, 2)).astype("float32")
    clone(x)
    block(x)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), block(x).numpy(), rtol=1e-6)
    assert clone.activation_layer.beta == 0.25 and clone.clip == 3.0


def test_per_layer_activations_reach_their_layers():
    model = build_model(ModelSpec.from_config(_config(activation="smelu:beta=2;smelu:beta=0.5").model, FEATURES))
    assert [b.activation_layer.beta for b in model.blocks] == [2.0, 0.5]


# --------------------------------------------------------------------------------------------------------------
# One training step per activation and per normalisation.


def _one_step(state, batch):
    before = [v.numpy().copy() for v in state.model.trainable_variables]
    _, probabilities, losses, _ = task.replica_train_step([state], batch, "label")
    after = [v.numpy() for v in state.model.trainable_variables]
    return before, after, probabilities[0].numpy(), float(losses[0])


def _check_step(state, batch):
    before, after, probabilities, loss_sum = _one_step(state, batch)
    assert np.isfinite(loss_sum) and loss_sum > 0
    assert probabilities.shape == (16,) and np.all((probabilities > 0) & (probabilities < 1))
    changed = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert all(changed), [v.name for v, c in zip(state.model.trainable_variables, changed, strict=True) if not c]
    # Sparse update: embedding rows of ids not in the batch are untouched.
    for table_before, table_after in zip(before[: len(state.model.embedding_variables)], after, strict=False):
        np.testing.assert_array_equal(table_before[5:], table_after[5:])
        assert not np.array_equal(table_before[:5], table_after[:5])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_one_step_per_activation(activation):
    state = _state(_config(activation=activation, normalization="layer"))
    _check_step(state, _batch())


@pytest.mark.parametrize("normalization", ["none", "layer", "weight"])
def test_one_step_per_normalization(normalization):
    state = _state(_config(activation="smelu:beta=1", normalization=normalization))
    _check_step(state, _batch())


@pytest.mark.parametrize("dense", ["adagrad", "adam", "sgd"])
def test_one_step_per_dense_optimizer(dense):
    config = _config()
    config.optimizer.dense = dense
    _check_step(_state(config), _batch())


def test_learnable_gsmelu_parameters_are_trained_by_the_dense_optimizer():
    state = _state(_config(activation="gsmelu:trainable=true"))
    names = [v.name for v in state.model.dense_variables]
    assert any("block_0" in n and "dense" not in n and "layer_norm" not in n for n in names), names
    _check_step(state, _batch())


def test_dcn_cross_layers():
    state = _state(_config(cross_layers=2, cross_projection_dim=4))
    assert len(state.model.cross) == 2
    _check_step(state, _batch())


def test_same_init_seed_same_weights_different_seed_different():
    a, b, c = (_state(_config(), seed=s) for s in (3, 3, 4))
    for va, vb in zip(a.model.variables, b.model.variables, strict=True):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    assert not np.array_equal(a.model.dense_variables[0].numpy(), c.model.dense_variables[0].numpy())


# --------------------------------------------------------------------------------------------------------------
# Sparse gradients.


@pytest.mark.parametrize("jit_compile", [False, True])
def test_embedding_gradients_stay_indexed_slices(jit_compile):
    state = _state(_config(jit_compile=jit_compile, activation="smelu:beta=1"))
    model, batch = state.model, _batch()

    @tf.function
    def gradient_types():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model.per_example_loss(batch, model(batch, training=True)))
        grads = tape.gradient(loss, model.embedding_variables + model.dense_variables)
        return grads

    grads = gradient_types()
    n = len(model.embedding_variables)
    assert all(isinstance(g, tf.IndexedSlices) for g in grads[:n])
    assert all(isinstance(g, tf.Tensor) for g in grads[n:])
    # The slices hold one row per looked-up id, not the whole table.
    assert grads[0].values.shape[0] == 16


def test_ids_outside_the_table_are_an_error_not_a_silent_id_0():
    """The out-of-vocabulary id 0 is the preprocessing job's mapping; an id the table lacks means data of another
    feature contract, so the model refuses it instead of embedding it as id 0."""
    model = build_model(ModelSpec.from_config(_config().model, FEATURES))
    batch = _batch(4)
    model(dict(batch, C1=tf.constant([0, 9, 1, 0], tf.int64)))  # [0, vocab_size) is fine
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"categorical C1: id >= vocab_size=10"):
        model(dict(batch, C1=tf.constant([0, 10, 1, 10**9], tf.int64)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"categorical C1: negative id"):
        model(dict(batch, C1=tf.constant([0, -3, 1, 0], tf.int64)))


# --------------------------------------------------------------------------------------------------------------
# Serving form.


@pytest.mark.parametrize("normalization", ["weight", "layer", "none"])
def test_serving_copy_equals_the_trained_model(normalization):
    state = _state(_config(activation="gsmelu:trainable=true;smelu:beta=0.5", normalization=normalization,
                           weight_norm_scale=2.0))
    for seed in range(3):
        task.replica_train_step([state], _batch(seed=seed), "label")
    model = state.model
    copy = model.serving_copy()
    if normalization == "weight":
        assert not any(isinstance(b.dense, type(model.blocks[0].dense)) for b in copy.blocks)
    batch = _batch(32, seed=9)
    np.testing.assert_allclose(copy(batch).numpy(), model(batch).numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------
# Activation on the embeddings (config.model.embedding_activation): a¹ = W¹ f(a⁰) + b¹.


@pytest.mark.parametrize("activation", ["relu", "smelu:beta=1", "swish"])
def test_embedding_activation_feeds_clip_of_f_of_the_embeddings_to_the_first_layer(activation):
    config = _config(activation=activation, embedding_activation=True, activation_clip=0.5)
    model = build_model(ModelSpec.from_config(config.model, FEATURES))
    plain = build_model(ModelSpec.from_config(_config(activation=activation, activation_clip=0.5).model, FEATURES))
    for layer in model.embedding_layers:  # spread beyond the clip, so that it matters
        layer.embeddings.assign(layer.embeddings * 40.0)
    batch = _batch()
    raw = tf.concat([layer(batch[e.name]) for e, layer in zip(model.spec.embeddings, model.embedding_layers,
                                                                strict=True)], axis=1)
    f = activations.get(activation)
    expected = tf.clip_by_value(f(raw), -0.5, 0.5)
    numeric = tf.stack([batch[f.name] for f in FEATURES.numeric], axis=1)
    first_input = model.embed(batch)
    np.testing.assert_allclose(first_input[:, :raw.shape[1]].numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(first_input[:, raw.shape[1]:].numpy(), numeric.numpy())  # numeric: as they are
    assert np.any(raw.numpy() > 0.6) and np.any(raw.numpy() < -0.6)
    np.testing.assert_allclose(model(batch).numpy(), model._dense_part(first_input).numpy(), rtol=1e-6)
    # Off (the default): the first layer gets the raw embeddings, as before.
    assert not plain.spec.embedding_activation and plain.embedding_activation is None
    np.testing.assert_array_equal(plain.embed(batch)[:, :raw.shape[1]].numpy(),
                                  tf.concat([layer(batch[e.name]) for e, layer in zip(
                                      plain.spec.embeddings, plain.embedding_layers, strict=True)], axis=1).numpy())


def test_embedding_activation_trains_sparsely_and_exports_with_its_parameters():
    state = _state(_config(activation="gsmelu:trainable=true", embedding_activation=True))
    _check_step(state, _batch())
    assert state.model.embedding_activation.trainable_weights  # its own learnable parameters, trained above
    batch = _batch(seed=1)
    np.testing.assert_allclose(state.model.serving_copy()(batch).numpy(), state.model(batch).numpy(), rtol=1e-6)
