"""Values, gradients, continuity, `get`/spec parsing and argument errors of recsys.layers.activations.

References are independent NumPy/SciPy implementations of the paper's formulas (Shamir & Lin 2022,
arXiv:2202.06499, eq. 3-5, 7, 9-10), evaluated on dense grids that include the knots.
"""
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from recsys.layers import activations as act

# Step 1/400 from -5 to 5: i/400 rounds to the same double as the literal, so the grid holds every knot used below
# exactly; one shape for all grid tests also means one XLA compilation per dtype.
GRID = np.arange(-2000, 2001) / 400.0


# ------------------------------------------------------------------------------------------------ references


def smelu_ref(x, beta):
    return np.where(x <= -beta, 0.0, np.where(x >= beta, x, (x + beta) ** 2 / (4 * beta)))


def smelu_grad_ref(x, beta):
    return np.clip((x + beta) / (2 * beta), 0.0, 1.0)


def gsmelu_ref(x, alpha, beta, g_minus, g_plus, t):
    """Eq. 10 literally, with a, b, c as printed."""
    a = (g_plus - g_minus) / (2 * (alpha + beta))
    b = (alpha * g_plus + beta * g_minus) / (alpha + beta)
    c = t + (alpha**2 * (g_plus + g_minus) + 2 * alpha * beta * g_minus) / (2 * (alpha + beta))
    left = g_minus * x + t + g_minus * alpha
    right = g_plus * x + t + (alpha + beta) / 2 * g_minus + (alpha - beta) / 2 * g_plus
    return np.where(x <= -alpha, left, np.where(x >= beta, right, a * x**2 + b * x + c))


def gsmelu_grad_ref(x, alpha, beta, g_minus, g_plus, t):
    a = (g_plus - g_minus) / (2 * (alpha + beta))
    b = (alpha * g_plus + beta * g_minus) / (alpha + beta)
    return np.where(x <= -alpha, g_minus, np.where(x >= beta, g_plus, 2 * a * x + b))


def rescu_ref(x, knots, slopes, half_widths, t):
    """Walks the pieces left to right: linear with slope g_i between joints, slope ramping linearly inside."""
    x = np.asarray(x, dtype=np.float64)
    value = np.empty_like(x)
    slope = np.empty_like(x)
    for j, xv in enumerate(x):
        position, y = knots[0] - half_widths[0], t
        if xv <= position:
            value[j], slope[j] = t + slopes[0] * (xv - position), slopes[0]
            continue
        for i, (k, w) in enumerate(zip(knots, half_widths, strict=True)):
            start, end = k - w, k + w
            y += slopes[i] * (start - position)  # linear piece before joint i (empty for i = 0)
            if xv <= end and xv >= start:
                d = xv - start
                value[j] = y + slopes[i] * d + (slopes[i + 1] - slopes[i]) * d**2 / (4 * w)
                slope[j] = slopes[i] + (slopes[i + 1] - slopes[i]) * d / (2 * w)
                break
            y += (slopes[i] + slopes[i + 1]) * w  # the joint's integral: mean slope times width 2w
            position = end
            next_start = knots[i + 1] - half_widths[i + 1] if i + 1 < len(knots) else np.inf
            if xv < next_start:
                value[j], slope[j] = y + slopes[i + 1] * (xv - position), slopes[i + 1]
                break
    return value, slope


SQRT_8_PI = math.sqrt(8 / math.pi)
SMOOTH_REFERENCES = {
    # spec: (value(x), derivative(x))
    "softplus:beta=0.5": (lambda x: np.logaddexp(0, 0.5 * x) / 0.5, lambda x: special.expit(0.5 * x)),
    "softplus": (lambda x: np.logaddexp(0, x), lambda x: special.expit(x)),
    "softplus:beta=3": (lambda x: np.logaddexp(0, 3 * x) / 3, lambda x: special.expit(3 * x)),
    "swish": (
        lambda x: x * special.expit(x),
        lambda x: special.expit(x) + x * special.expit(x) * (1 - special.expit(x)),
    ),
    "swish:beta=2": (
        lambda x: x * special.expit(2 * x),
        lambda x: special.expit(2 * x) + 2 * x * special.expit(2 * x) * (1 - special.expit(2 * x)),
    ),
    "gelu": (lambda x: x * stats.norm.cdf(x), lambda x: stats.norm.cdf(x) + x * stats.norm.pdf(x)),
    "gelu:beta=1.5": (
        lambda x: x * stats.norm.cdf(1.5 * x),
        lambda x: stats.norm.cdf(1.5 * x) + 1.5 * x * stats.norm.pdf(1.5 * x),
    ),
    "gelu:beta=2,approximate=true": (
        lambda x: x * special.expit(SQRT_8_PI * 2 * x),
        lambda x: special.expit(SQRT_8_PI * 2 * x)
        + SQRT_8_PI * 2 * x * special.expit(SQRT_8_PI * 2 * x) * (1 - special.expit(SQRT_8_PI * 2 * x)),
    ),
    "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
}

GSMELU_CASES = [
    dict(alpha=1.0, beta=1.0, g_minus=0.0, g_plus=1.0, t=0.0),
    dict(alpha=0.5, beta=2.0, g_minus=-0.1, g_plus=1.2, t=-0.3),
    dict(alpha=2.0, beta=0.25, g_minus=0.1, g_plus=0.9, t=0.4),
    dict(alpha=1.5, beta=1.0, g_minus=-0.5, g_plus=-0.2, t=0.0),
]
RESCU_CASES = [
    dict(knots=[-1.0, 1.0], slopes=[0.0, 0.5, 1.0], half_widths=[0.5, 0.5], t=0.0),
    dict(knots=[-2.0, 0.0, 1.5], slopes=[-0.2, 0.4, 1.5, 0.7], half_widths=[0.5, 1.0, 0.25], t=-0.4),
    dict(knots=[-1.0, 1.0], slopes=[0.1, -0.3, 1.0], half_widths=[1.0, 1.0], t=0.2),  # touching joints
]


def in_dtype(layer, dtype):
    """`layer` itself if it computes in `dtype`, else a fresh copy that does (Keras would cast the inputs)."""
    if layer.dtype == dtype.name:
        return layer
    config = layer.get_config() | {"dtype": dtype.name}
    if isinstance(layer, act.ClippedActivation):
        config["activation"] = in_dtype(layer.activation, dtype)
    return layer.__class__.from_config(config)


def evaluate(layer, x, training=False, dtype=tf.float32):
    """Value and d value/dx of `layer` at `x` (as NumPy), computed in `dtype`."""
    layer = in_dtype(layer, dtype)
    inputs = tf.constant(x, dtype)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = layer(inputs, training=training)
    return y.numpy(), tape.gradient(y, inputs).numpy()


def with_points(*points):
    """GRID, after checking that it contains the given points (knots, joint ends) exactly."""
    missing = set(np.asarray(points, dtype=np.float64).ravel().tolist()) - set(GRID.tolist())
    assert not missing, f"grid misses {missing}"
    return GRID


# ------------------------------------------------------------------------------------------------ values


def test_smelu_hand_computed_points():
    layer = act.SmeLU(beta=2.0)
    x = np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    # (x+2)²/8 in the middle: 1/8, 4/8, 9/8; 0 left of -2, x right of 2.
    expected = np.array([0.0, 0.0, 0.125, 0.5, 1.125, 2.0, 3.0])
    expected_grad = np.array([0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    for training in (False, True):
        y, g = evaluate(layer, x, training)
        np.testing.assert_allclose(y, expected, rtol=0, atol=1e-7)
        np.testing.assert_allclose(g, expected_grad, rtol=0, atol=0)
        np.testing.assert_allclose(act.smelu(tf.constant(x), beta=2.0, fused=training).numpy(), expected, atol=1e-7)


def test_gsmelu_hand_computed_points():
    # α=1, β=1, g−=0.2, g+=1, t=−0.2: a = 0.2, b = 0.6, c = −0.2 + (1.2 + 0.4)/4 = 0.2.
    layer = act.GeneralizedSmeLU(alpha=1.0, beta=1.0, g_minus=0.2, g_plus=1.0, t=-0.2)
    x = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0])
    expected = np.array([-0.6, -0.2, 0.2, 0.55, 1.0, 2.0])
    expected_grad = np.array([0.2, 0.2, 0.6, 0.8, 1.0, 1.0])
    for training in (False, True):
        y, g = evaluate(layer, x, training)
        np.testing.assert_allclose(y, expected, atol=1e-6)
        np.testing.assert_allclose(g, expected_grad, atol=1e-6)


def test_rescu_hand_computed_points():
    # Knots ±1, half-width 0.5, slopes 0, 0.5, 1: 0 up to −1.5; joint ends at −0.5 with value 0.5·1/(4·0.5)=0.25.
    layer = act.RESCU(knots=[-1.0, 1.0], slopes=[0.0, 0.5, 1.0], half_widths=0.5)
    x = np.array([-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.5])
    # From −0.5: 0.25 + 0.5(x+0.5) up to 0.5 (0.75); joint to 1.5 adds (0.5+1)·0.5 = 0.75 → 1.5; then slope 1.
    expected = np.array([0.0, 0.0, 0.0625, 0.25, 0.5, 0.75, 1.0625, 1.5, 2.5])
    expected_grad = np.array([0.0, 0.0, 0.25, 0.5, 0.5, 0.5, 0.75, 1.0, 1.0])
    for training in (False, True):
        y, g = evaluate(layer, x, training)
        np.testing.assert_allclose(y, expected, atol=1e-6)
        np.testing.assert_allclose(g, expected_grad, atol=1e-6)


def test_baselines_hand_computed_points():
    x = np.array([-1.0, 0.0, 1.0, 2.0])
    checks = {
        "relu": [0.0, 0.0, 1.0, 2.0],
        "softplus:beta=2": [math.log1p(math.exp(-2)) / 2, math.log(2) / 2, math.log1p(math.exp(2)) / 2, 2.00907],
        "swish": [-1 / (1 + math.e), 0.0, 1 / (1 + math.exp(-1)), 2 / (1 + math.exp(-2))],
        "gelu": [-0.158655, 0.0, 0.841345, 1.954500],
        "gelu:approximate=true": [
            -1 / (1 + math.exp(SQRT_8_PI)),
            0.0,
            1 / (1 + math.exp(-SQRT_8_PI)),
            2 / (1 + math.exp(-2 * SQRT_8_PI)),
        ],
    }
    for spec, expected in checks.items():
        y, _ = evaluate(act.get(spec), x)
        np.testing.assert_allclose(y, expected, atol=2e-5, err_msg=spec)


@pytest.mark.parametrize("training", [False, True], ids=["plain", "xla"])
@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0, 2.0, 3.0])
def test_smelu_matches_reference_and_gradient_is_exact_hard_sigmoid(beta, training):
    x = with_points(-beta, beta).astype(np.float32)
    y, g = evaluate(act.SmeLU(beta=beta), x, training)
    np.testing.assert_allclose(y, smelu_ref(x.astype(np.float64), beta), rtol=1e-6, atol=1e-7)
    b = np.float32(beta)
    hard_sigmoid = np.clip((x + b) / (np.float32(2) * b), np.float32(0), np.float32(1))
    np.testing.assert_array_equal(g, hard_sigmoid)  # bit-exact, not just close


@pytest.mark.parametrize("training", [False, True], ids=["plain", "xla"])
@pytest.mark.parametrize("case", GSMELU_CASES)
def test_gsmelu_matches_eq10_reference(case, training):
    x = with_points(-case["alpha"], case["beta"])
    y, g = evaluate(act.GeneralizedSmeLU(**case), x, training, tf.float64)
    np.testing.assert_allclose(y, gsmelu_ref(x, **case), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, gsmelu_grad_ref(x, **case), rtol=1e-12, atol=1e-12)
    assert abs(y[np.argmin(abs(x + case["alpha"]))] - case["t"]) < 1e-12  # y(−α) = t


@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("case", GSMELU_CASES)
def test_gsmelu_learnable_layer_starts_at_the_given_function(case, trainable):
    x = with_points(-case["alpha"], case["beta"])
    layer = act.GeneralizedSmeLU(**case, trainable=trainable, dtype="float64")
    y, g = evaluate(layer, x, training=True, dtype=tf.float64)
    np.testing.assert_allclose(y, gsmelu_ref(x, **case), atol=1e-9)
    np.testing.assert_allclose(g, gsmelu_grad_ref(x, **case), atol=1e-9)


@pytest.mark.parametrize("training", [False, True], ids=["plain", "xla"])
@pytest.mark.parametrize("case", RESCU_CASES)
def test_rescu_matches_piecewise_reference(case, training):
    k, w = np.array(case["knots"]), np.array(case["half_widths"])
    x = with_points(k, k - w, k + w)
    y, g = evaluate(act.RESCU(**case), x, training, tf.float64)
    ref_value, ref_slope = rescu_ref(x, case["knots"], case["slopes"], case["half_widths"], case["t"])
    np.testing.assert_allclose(y, ref_value, atol=1e-12)
    np.testing.assert_allclose(g, ref_slope, atol=1e-12)


@pytest.mark.parametrize("case", RESCU_CASES[:2])  # touching joints cannot be learned: see the error tests
def test_trainable_rescu_starts_at_the_given_function(case):
    x = GRID
    layer = act.RESCU(**case, trainable=True, dtype="float64")
    y, g = evaluate(layer, x, training=True, dtype=tf.float64)
    ref_value, ref_slope = rescu_ref(x, case["knots"], case["slopes"], case["half_widths"], case["t"])
    np.testing.assert_allclose(y, ref_value, atol=1e-9)
    np.testing.assert_allclose(g, ref_slope, atol=1e-9)
    params = layer.parameters(tf.float64)
    np.testing.assert_allclose(params["knots"].numpy(), case["knots"], atol=1e-9)
    np.testing.assert_allclose(params["half_widths"].numpy(), case["half_widths"], atol=1e-9)


@pytest.mark.parametrize("case", GSMELU_CASES)
def test_rescu_with_one_knot_equals_gsmelu(case):
    alpha, beta = case["alpha"], case["beta"]
    rescu = act.RESCU(
        knots=[(beta - alpha) / 2],
        slopes=[case["g_minus"], case["g_plus"]],
        half_widths=[(alpha + beta) / 2],
        t=case["t"],
    )
    x = with_points(-alpha, beta)
    for training in (False, True):
        y_r, g_r = evaluate(rescu, x, training, tf.float64)
        y_g, g_g = evaluate(act.GeneralizedSmeLU(**case), x, training, tf.float64)
        np.testing.assert_allclose(y_r, y_g, atol=1e-12)
        np.testing.assert_allclose(g_r, g_g, atol=1e-12)


def test_smelu_is_special_case_of_gsmelu():
    x = with_points(-1.5, 1.5)
    y_s, g_s = evaluate(act.SmeLU(beta=1.5), x, dtype=tf.float64)
    y_g, g_g = evaluate(act.GeneralizedSmeLU(alpha=1.5, beta=1.5), x, dtype=tf.float64)
    np.testing.assert_allclose(y_s, y_g, atol=1e-12)
    np.testing.assert_allclose(g_s, g_g, atol=1e-12)


@pytest.mark.parametrize("training", [False, True], ids=["plain", "xla"])
@pytest.mark.parametrize("spec", sorted(SMOOTH_REFERENCES))
def test_baselines_match_scipy_references(spec, training):
    value_ref, grad_ref = SMOOTH_REFERENCES[spec]
    x = GRID[GRID != 0.0] if spec == "relu" else GRID  # ReLU's derivative at 0 is a convention
    y, g = evaluate(act.get(spec), x, training, tf.float64)
    np.testing.assert_allclose(y, value_ref(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g, grad_ref(x), rtol=1e-6, atol=1e-7)


def test_fused_and_plain_paths_agree_in_float32():
    x = np.random.default_rng(0).normal(0, 2, GRID.shape).astype(np.float32)
    layers = [
        act.SmeLU(beta=0.7),
        act.GeneralizedSmeLU(alpha=0.5, beta=2.0, g_minus=-0.1, g_plus=1.2, t=-0.3),
        act.RESCU(**RESCU_CASES[1]),
    ]
    for layer in layers:
        y_plain, g_plain = evaluate(layer, x, training=False)
        y_xla, g_xla = evaluate(layer, x, training=True)
        np.testing.assert_allclose(y_xla, y_plain, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(g_xla, g_plain, rtol=1e-6, atol=1e-6)


def test_works_inside_tf_function_with_varying_shapes_and_dtypes():
    layers = {dtype: act.SmeLU(beta=1.0, dtype=dtype.name) for dtype in (tf.float32, tf.float64, tf.bfloat16)}

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layers[x.dtype](x, training=True)
        return y, tape.gradient(y, x)

    for shape in [(4, 5), (2, 3, 1024)]:
        for dtype in layers:
            x = tf.cast(tf.linspace(-2.0, 2.0, int(np.prod(shape))), dtype)
            y, g = step(tf.reshape(x, shape))
            assert y.shape == shape and y.dtype == dtype
            xf = x.numpy().astype(np.float64)
            tol = 2e-2 if dtype == tf.bfloat16 else 1e-6
            np.testing.assert_allclose(tf.cast(y, tf.float64).numpy().ravel(), smelu_ref(xf, 1.0), atol=tol)
            np.testing.assert_allclose(tf.cast(g, tf.float64).numpy().ravel(), smelu_grad_ref(xf, 1.0), atol=tol)


# ------------------------------------------------------------------------------------------------ gradients


FD_LAYERS = {
    "smelu": lambda: act.SmeLU(beta=0.8, dtype="float64"),
    "gsmelu": lambda: act.GeneralizedSmeLU(alpha=0.5, beta=2.0, g_minus=-0.1, g_plus=1.2, t=-0.3, dtype="float64"),
    "gsmelu learned/unit": lambda: act.GeneralizedSmeLU(
        alpha=0.5, beta=2.0, g_minus=-0.1, trainable=True, granularity="unit", dtype="float64"
    ),
    "rescu": lambda: act.RESCU(**RESCU_CASES[1], dtype="float64"),
    "softplus": lambda: act.Softplus(beta=2.0, dtype="float64"),
    "swish": lambda: act.Swish(beta=1.5, dtype="float64"),
    "gelu": lambda: act.GELU(beta=0.7, dtype="float64"),
    "gelu approx": lambda: act.GELU(beta=0.7, approximate=True, dtype="float64"),
    "clipped smelu": lambda: act.ClippedActivation(act.SmeLU(beta=1.0, dtype="float64"), clip=2.5, dtype="float64"),
}


@pytest.mark.parametrize("name", sorted(FD_LAYERS))
def test_gradients_match_finite_differences(name):
    layer = FD_LAYERS[name]()
    # GRID runs through every knot (for the per-unit variant it is 4001 units); the clip corner is left out
    # of the comparison since the clipped unit's derivative jumps from 1 to 0 at y = ±clip.
    x, h = GRID, 1e-6
    compared = np.abs(x - 2.5) > 0.01 if name == "clipped smelu" else np.ones_like(x, dtype=bool)
    for training in (False, True):
        _, grad = evaluate(layer, x, training, tf.float64)
        plus, _ = evaluate(layer, x + h, training, tf.float64)
        minus, _ = evaluate(layer, x - h, training, tf.float64)
        finite_difference = (plus - minus) / (2 * h)
        np.testing.assert_allclose(
            grad[compared], finite_difference[compared], atol=2e-6, err_msg=f"{name} training={training}"
        )


@pytest.mark.parametrize(
    "make, points",
    [
        (lambda: act.SmeLU(beta=0.8), [-0.8, 0.8]),
        (lambda: act.GeneralizedSmeLU(alpha=0.5, beta=2.0, g_minus=-0.1, g_plus=1.2, t=-0.3), [-0.5, 2.0]),
        (lambda: act.RESCU(**RESCU_CASES[1]), [-2.5, -1.5, -1.0, 1.0, 1.25, 1.75]),
        (lambda: act.RESCU(**RESCU_CASES[2]), [-2.0, 0.0, 2.0]),
    ],
    ids=["smelu", "gsmelu", "rescu", "rescu-touching"],
)
def test_value_and_slope_continuous_at_knots(make, points):
    eps = 1e-7
    for p in points:
        for training in (False, True):
            layer = make()
            y, g = evaluate(layer, np.array([p - eps, p, p + eps]), training, tf.float64)
            assert abs(y[0] - y[1]) < 1e-6 and abs(y[2] - y[1]) < 1e-6, (p, y)
            assert abs(g[0] - g[1]) < 1e-6 and abs(g[2] - g[1]) < 1e-6, (p, g)


# ------------------------------------------------------------------------------------------------ get()


def test_get_accepts_names_specs_dicts_and_layers():
    assert isinstance(act.get("relu"), act.ReLU)
    assert isinstance(act.get("SmeLU"), act.SmeLU)
    assert act.get("smelu:beta=0.5").beta == 0.5
    g = act.get("gsmelu:alpha=1,beta=2,g_minus=-0.1")
    assert (g.alpha, g.beta, g.g_minus, g.g_plus, g.t) == (1.0, 2.0, -0.1, 1.0, 0.0)
    g = act.get(" gsmelu : trainable = true , granularity = unit ")
    assert g.learn_parameters and g.granularity == "unit"
    r = act.get("rescu:knots=[-1,1],slopes=[0,0.5,1],half_widths=[0.5,0.5],t=-0.1")
    assert r.knots == [-1.0, 1.0] and r.slopes == [0.0, 0.5, 1.0] and r.half_widths == [0.5, 0.5] and r.t == -0.1
    assert act.get("gelu:beta=2,approximate=true").approximate is True
    s = act.get({"name": "swish", "beta": 2.0})
    assert isinstance(s, act.Swish) and s.beta == 2.0
    clipped = act.get("smelu:beta=1|clip=6")
    assert isinstance(clipped, act.ClippedActivation) and clipped.clip == 6.0
    assert isinstance(clipped.activation, act.SmeLU) and clipped.activation.beta == 1.0
    assert act.get("relu|clip").clip == 6.0
    assert act.get({"name": "gelu", "clip": 3}).clip == 3.0
    assert act.get(tf.keras.layers.serialize(act.SmeLU(beta=0.3))).beta == 0.3


def test_get_returns_a_new_layer_each_call():
    a, b = act.get("smelu:beta=2"), act.get("smelu:beta=2")
    assert a is not b and a.name != b.name
    original = act.GeneralizedSmeLU(alpha=0.5, trainable=True)
    copy = act.get(original)
    assert copy is not original and isinstance(copy, act.GeneralizedSmeLU)
    assert copy.get_config() | {"name": None} == original.get_config() | {"name": None}
    wrapped = act.get("swish|clip=2")
    assert act.get(wrapped).activation is not wrapped.activation


def test_parse_spec():
    spec = act.parse_spec("smelu:beta=0.5|clip=4")
    assert spec == act.ActivationSpec("smelu", {"beta": 0.5}, 4.0)
    assert act.parse_spec("rescu:knots=[-1, 1],slopes=[0,1,2],half_widths=0.5").params == {
        "knots": [-1.0, 1.0],
        "slopes": [0.0, 1.0, 2.0],
        "half_widths": 0.5,
    }


def test_clipped_activation_clips_output_and_zeroes_gradient_outside():
    layer = act.ClippedActivation("smelu:beta=1", clip=2.0)
    x = np.array([-10.0, 0.0, 1.5, 3.0, 100.0])
    for training in (False, True):
        y, g = evaluate(layer, x, training)
        np.testing.assert_allclose(y, [0.0, 0.25, 1.5, 2.0, 2.0], atol=1e-7)
        np.testing.assert_allclose(g, [0.0, 0.5, 1.0, 0.0, 0.0], atol=1e-7)
    y, _ = evaluate(act.ClippedActivation(act.GeneralizedSmeLU(g_minus=0.5, alpha=1), clip=1.0), np.array([-9.0]))
    np.testing.assert_allclose(y, [-1.0])  # the lower bound too


@pytest.mark.parametrize(
    "spec",
    ["relu", "smelu:beta=2", "gsmelu:alpha=0.5,beta=2,g_minus=-0.4,t=-0.3", "rescu:knots=[-1,1],slopes=[-0.5,0.5,1.5],"
     "half_widths=0.5", "swish", "gsmelu:trainable=true"],
)
def test_clipped_training_path_matches_clip_after_activation(spec):
    # Training fuses activation + clip in one XLA kernel for ReLU and fixed SmeLU-family units; it must equal
    # clipping the activation (and the gradient of tf.clip_by_value) computed separately.
    clip = 1.5
    layer = act.ClippedActivation(spec, clip=clip)
    inner = layer.activation
    x = GRID.astype(np.float32)
    y_fused, g_fused = evaluate(layer, x, training=True)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = tf.clip_by_value(inner(inputs, training=False), -clip, clip)
    np.testing.assert_allclose(y_fused, y.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g_fused, tape.gradient(y, inputs).numpy(), rtol=1e-6, atol=1e-6)
    assert y_fused.max() <= clip and y_fused.min() >= -clip


# ------------------------------------------------------------------------------------------------ errors

BAD_ARGUMENTS = [
    (lambda: act.SmeLU(beta=0.0), r"`beta` must be a positive.*Received: beta=0\.0"),
    (lambda: act.SmeLU(beta=-1.0), r"`beta`.*Received: beta=-1\.0"),
    (lambda: act.SmeLU(beta=float("nan")), r"`beta`.*Received: beta=nan"),
    (lambda: act.SmeLU(beta=float("inf")), r"`beta`.*Received: beta=inf"),
    (lambda: act.SmeLU(beta="1"), r"`beta`.*Received: beta='1'"),
    (lambda: act.SmeLU(beta=True), r"`beta`.*Received: beta=True"),
    (lambda: act.Softplus(beta=0), r"`beta`.*Received: beta=0"),
    (lambda: act.Swish(beta=-2), r"`beta`.*Received: beta=-2"),
    (lambda: act.GELU(beta=0), r"`beta`.*Received: beta=0"),
    (lambda: act.GELU(approximate="yes"), r"`approximate` must be True or False.*approximate='yes'"),
    (lambda: act.GeneralizedSmeLU(alpha=0.0), r"`alpha` must be a positive.*Received: alpha=0\.0"),
    (lambda: act.GeneralizedSmeLU(alpha=-1), r"`alpha`.*alpha=-1"),
    (lambda: act.GeneralizedSmeLU(beta=-0.5), r"`beta`.*beta=-0\.5"),
    (lambda: act.GeneralizedSmeLU(g_minus=1.0, g_plus=1.0), r"`g_plus` must be greater than `g_minus`.*g_minus=1\.0"),
    (lambda: act.GeneralizedSmeLU(g_minus=1.0, g_plus=0.5), r"`g_plus` must be greater.*g_plus=0\.5"),
    (lambda: act.GeneralizedSmeLU(t=float("nan")), r"`t` must be a finite number.*t=nan"),
    (lambda: act.GeneralizedSmeLU(granularity="network"), r"`granularity` must be one of.*granularity='network'"),
    (lambda: act.GeneralizedSmeLU(trainable="yes"), r"`trainable` must be True or False.*trainable='yes'"),
    (lambda: act.RESCU(knots=[], slopes=[1.0], half_widths=[]), r"`knots` must be a non-empty list.*knots=\[\]"),
    (lambda: act.RESCU(knots=[0.0], slopes=[0.0], half_widths=[1.0]), r"`slopes` must have len\(knots\) \+ 1 = 2"),
    (lambda: act.RESCU(knots=[0.0, 3.0], slopes=[0, 1, 2], half_widths=[1.0]), r"`half_widths` must be one number"),
    (lambda: act.RESCU(knots=[0.0], slopes=[0, 1], half_widths=[0.0]), r"`half_widths\[0\]` must be a positive"),
    (lambda: act.RESCU(knots=[1.0, 0.0], slopes=[0, 1, 2], half_widths=0.1), r"`knots` must be strictly increasing"),
    (lambda: act.RESCU(knots=[0.0, 1.0], slopes=[0, 1, 2], half_widths=0.6), r"joints.*must not overlap"),
    (
        lambda: act.RESCU(knots=[0.0, 1.0], slopes=[0, 1, 2], half_widths=0.5, trainable=True),
        r"positive gap when trainable=True",
    ),
    (lambda: act.RESCU(knots=[0.0], slopes=[0, "a"], half_widths=1.0), r"`slopes\[1\]` must be a finite number"),
    (lambda: act.ClippedActivation("relu", clip=0.0), r"`clip` must be a positive.*clip=0\.0"),
    (lambda: act.ClippedActivation("relu", clip=-6), r"`clip`.*clip=-6"),
    (
        lambda: act.get("tanh"),
        r"Unknown activation name 'tanh'\. Known names: gelu, gsmelu, relu, rescu, smelu, softplus, swish",
    ),
    (lambda: act.get({"name": "elu"}), r"Unknown activation name 'elu'\. Known names: .*smelu"),
    (lambda: act.get({"beta": 1.0}), r"needs a 'name' key"),
    (lambda: act.get({"name": "swish", "clip": 0}), r"`clip`.*clip=0"),
    (lambda: act.get(3), r"`identifier` must be a Keras layer.*identifier=3"),
    (lambda: act.get(None), r"`identifier`.*identifier=None"),
    (lambda: act.get(""), r"Malformed activation spec: empty spec.*spec=''"),
    (lambda: act.get("smelu:"), r"Malformed.*':' must be followed by key=value"),
    (lambda: act.get("smelu:beta"), r"Malformed.*parameter 'beta' is not key=value.*spec='smelu:beta'"),
    (lambda: act.get("smelu:beta="), r"Malformed.*parameter 'beta=' is not key=value"),
    (lambda: act.get("smelu:=1"), r"Malformed.*parameter '=1' is not key=value"),
    (lambda: act.get("smelu:beta=1,,"), r"Malformed.*parameter '' is not key=value"),
    (lambda: act.get("smelu:beta=1,beta=2"), r"Malformed.*'beta' given twice"),
    (lambda: act.get("smelu:beta=1;alpha=2"), r"Malformed.*value of 'beta'"),
    (lambda: act.get("smelu|clap=1"), r"Malformed.*unknown modifier 'clap=1'"),
    (lambda: act.get("smelu|clip=big"), r"Malformed.*clip value 'big' is not a number"),
    (lambda: act.get("smelu|clip=1|clip=2"), r"Malformed.*'clip' given twice"),
    (lambda: act.get("smelu|clip=-1"), r"`clip`.*clip=-1\.0"),
    (lambda: act.get("rescu:knots=[-1,1"), r"Malformed.*unbalanced '\['"),
    (lambda: act.get("rescu:knots=[a,b],slopes=[0,1,2],half_widths=1"), r"Malformed.*list of numbers"),
    (lambda: act.get("9lives"), r"Malformed.*bad activation name '9lives'"),
    (lambda: act.get("smelu:gamma=1"), r"Unknown parameter\(s\) \['gamma'\] for activation 'smelu'; allowed: \['beta"),
    (lambda: act.get("relu:beta=1"), r"Unknown parameter\(s\) \['beta'\] for activation 'relu'; allowed: none"),
    (lambda: act.get("smelu:beta=abc"), r"`beta` must be a positive.*Received: beta='abc'"),
    (lambda: act.get("smelu:beta=-0.5"), r"`beta`.*beta=-0\.5"),
    (lambda: act.get("gsmelu:alpha=0"), r"`alpha`.*alpha=0\.0"),
    (lambda: act.get("gsmelu:g_minus=2"), r"`g_plus` must be greater than `g_minus`.*g_minus=2\.0, g_plus=1\.0"),
]


@pytest.mark.parametrize("make, message", BAD_ARGUMENTS, ids=[str(i) for i in range(len(BAD_ARGUMENTS))])
def test_bad_arguments_raise_value_error_naming_argument_rule_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unit_granularity_needs_known_width_and_cannot_be_shared_across_widths():
    layer = act.GeneralizedSmeLU(trainable=True, granularity="unit")
    layer(tf.zeros([2, 4]))
    with pytest.raises(ValueError, match="built for 4 units.*last axis 3.*granularity='layer'"):
        layer(tf.zeros([2, 3]))
    with pytest.raises(ValueError, match="known last axis"):
        act.GeneralizedSmeLU(granularity="unit").build(tf.TensorShape([None, None]))
