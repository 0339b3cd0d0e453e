"""Learned gSmeLU / RESCU parameters: gradients, training on toy problems, constraints, granularity, sharing."""
import numpy as np
import tensorflow as tf

from recsys.layers import activations as act

NAMES = ("alpha", "beta", "g_minus", "g_plus", "t")


def fit_curve(layer, target_fn, steps=150, learning_rate=0.05, width=None, x_max=4.0):
    """Regresses `layer` onto `target_fn` with Adam; returns the losses and the parameters after every step."""
    x = tf.constant(np.linspace(-x_max, x_max, 256, dtype=np.float32))
    if width is not None:
        x = tf.tile(x[:, None], [1, width])
    target = target_fn(x)
    layer(x)  # build
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(layer(x, training=True) - target))
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply_gradients(zip(grads, layer.trainable_variables, strict=True))
        return loss, layer.parameters()

    history = [step() for _ in range(steps)]
    return [float(loss) for loss, _ in history], [params for _, params in history]


def test_learnable_gsmelu_parameters_receive_gradients_and_recover_a_target():
    target = act.GeneralizedSmeLU(alpha=0.5, beta=2.0, g_minus=-0.1, g_plus=1.5, t=-0.2)
    layer = act.GeneralizedSmeLU(trainable=True)
    x = tf.constant(np.linspace(-4, 4, 64, dtype=np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x, training=True) - target(x)))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert len(layer.trainable_variables) == 5
    assert all(g is not None and abs(float(g)) > 1e-4 for g in grads), grads

    losses, history = fit_curve(layer, target, steps=300)
    assert losses[-1] < 0.01 * losses[0], (losses[0], losses[-1])
    learned = {name: float(v) for name, v in history[-1].items()}
    for name, expected in zip(NAMES, (0.5, 2.0, -0.1, 1.5, -0.2), strict=True):
        assert abs(learned[name] - expected) < 0.15, (name, learned)


def test_constraints_hold_while_learning_pushes_against_them():
    # An adversarial objective that rewards α, β and g+ − g− for shrinking: unconstrained gradient descent would
    # take them through 0 within a few steps. The reparameterisation keeps them positive at every step.
    layer = act.GeneralizedSmeLU(alpha=0.5, beta=0.5, g_minus=0.4, g_plus=0.6, trainable=True, granularity="unit")
    x = tf.constant(np.linspace(-2, 2, 32, dtype=np.float32)[None, :])
    layer(x)
    optimizer = tf.keras.optimizers.SGD(1.0)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            p = layer.parameters()
            loss = tf.reduce_sum(p["alpha"] + p["beta"] + p["g_plus"] - p["g_minus"])
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply_gradients(
            (g, v) for g, v in zip(grads, layer.trainable_variables, strict=True) if g is not None
        )
        return layer.parameters(), layer(x, training=True)

    for _ in range(200):
        params, y = step()
        assert (params["alpha"].numpy() > 0).all() and (params["beta"].numpy() > 0).all()
        assert (params["g_plus"].numpy() > params["g_minus"].numpy()).all()
        assert np.isfinite(y.numpy()).all()
    # It really was pushed to the boundary, and the unit degenerates gracefully towards a kinked line.
    assert params["alpha"].numpy().max() < 0.05 and params["beta"].numpy().max() < 0.05
    assert (params["g_plus"] - params["g_minus"]).numpy().max() < 0.05


def test_unit_granularity_learns_one_parameter_set_per_unit():
    layer = act.GeneralizedSmeLU(trainable=True, granularity="unit")
    assert not layer.weights  # built lazily
    layer(tf.zeros([2, 3]))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(3,)] * 5
    assert all(tuple(v.shape) == (3,) for v in layer.parameters().values())

    # Units with different targets end up with different parameters: unit j should learn t ≈ t_j.
    offsets = tf.constant([-0.5, 0.0, 0.5])
    losses, history = fit_curve(layer, lambda x: tf.nn.relu(x) + offsets, steps=200, learning_rate=0.05, width=3)
    assert losses[-1] < 0.05 * losses[0]
    values = history[-1]["t"].numpy()
    assert values[0] < values[1] < values[2], values


def test_layer_granularity_shares_across_layers_and_model_fit_updates_it():
    tf.keras.utils.set_random_seed(0)
    shared = act.GeneralizedSmeLU(trainable=True)  # one instance = one parameter set for the network
    inputs = tf.keras.Input((4,))
    hidden = shared(tf.keras.layers.Dense(8)(inputs))
    hidden = act.ClippedActivation(shared, clip=6.0)(tf.keras.layers.Dense(8)(hidden))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(hidden))
    shared_variables = {id(v) for v in shared.trainable_weights}
    assert len(shared_variables) == 5
    assert shared_variables <= {id(v) for v in model.trainable_weights}
    assert len(model.trainable_weights) == 3 * 2 + 5  # three Dense kernels+biases, one shared gSmeLU

    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    y = (np.sin(2 * x[:, :1]) + x[:, 1:2] ** 2 > 0.5).astype(np.float32)
    before = {k: v.numpy().copy() for k, v in shared.parameters().items()}
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1), loss=tf.keras.losses.BinaryCrossentropy(True))
    history = model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    after = {k: v.numpy() for k, v in shared.parameters().items()}
    assert history.history["loss"][-1] < history.history["loss"][0]
    for name in NAMES:
        assert abs(after[name] - before[name]) > 1e-4, (name, before[name], after[name])
    assert after["alpha"] > 0 and after["beta"] > 0 and after["g_plus"] > after["g_minus"]


def test_learnable_rescu_keeps_joints_ordered_and_disjoint():
    layer = act.RESCU(knots=[-1.0, 0.5, 1.5], slopes=[0.0, 0.2, 0.6, 1.0], half_widths=0.2, trainable=True)
    # A target whose best fit wants the joints to slide into each other.
    losses, history = fit_curve(layer, lambda x: 0.8 * tf.nn.softplus(3 * x) / 3, steps=150, learning_rate=0.05)
    assert losses[-1] < 0.2 * losses[0]
    first, last = history[0], history[-1]
    assert np.abs(last["knots"].numpy() - first["knots"].numpy()).max() > 1e-3  # the knots did learn
    for params in history:
        k, w = params["knots"].numpy(), params["half_widths"].numpy()
        assert (w > 0).all()
        assert (k[1:] - w[1:] > k[:-1] + w[:-1]).all(), (k, w)
