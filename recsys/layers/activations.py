"""Smooth activation layers: SmeLU, generalized SmeLU, RESCU, and the Softplus/Swish/GELU/ReLU baselines.

Reference: G. I. Shamir and D. Lin, "Real World Large Scale Recommendation Systems Reproducibility and Smooth
Activations", 2022, arXiv:2202.06499 (equation numbers below are the paper's).

Every layer is elementwise, Keras-serialisable (`get_config`/`from_config`, registered under the package
``recsys``) and survives a SavedModel round trip. `get` turns a layer, a name, a spec string or a dict into a
new layer; it is the only place activation specs are parsed.

Spec strings accepted by `get` (names are case-insensitive, whitespace is ignored)::

    spec     := name [":" key "=" value ("," key "=" value)*] ["|" "clip" ["=" number]]
    value    := number | true | false | word | "[" number ("," number)* "]"

    "smelu"                                  SmeLU(beta=1.0)
    "smelu:beta=0.5"                         SmeLU(beta=0.5)
    "gsmelu:alpha=1,beta=2,g_minus=-0.1"     GeneralizedSmeLU(alpha=1, beta=2, g_minus=-0.1)
    "gsmelu:trainable=true,granularity=unit" learned per-unit gSmeLU
    "rescu:knots=[-1,1],slopes=[0,0.5,1],half_widths=[0.5,0.5]"
    "smelu:beta=1|clip=6"                    ClippedActivation(SmeLU(beta=1), clip=6)
    "relu|clip"                              ClippedActivation(ReLU(), clip=6.0)

Performance: SmeLU, gSmeLU and RESCU with fixed parameters compute the value and the closed-form gradient
with `tf.custom_gradient`. When called with ``training=True`` both directions run as XLA-compiled kernels
(`jit_compile=True`): on CPU the elementwise work is memory-bound and unfused TensorFlow pays one full pass
over the activations per op (see docs/performance.md). `ClippedActivation` fuses its clip into those kernels
for ReLU and the fixed SmeLU family during training. Inference (``training=False``/``None``) uses plain
TensorFlow ops so exported serving graphs need no XLA (the TF Serving binary disables XLA:CPU by default).
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf  # recsys/__init__ ran first (parent package) and selected tf-keras

REFERENCE = "Shamir & Lin 2022, arXiv:2202.06499"
GRANULARITIES = ("layer", "unit")
DEFAULT_CLIP = 6.0


# --------------------------------------------------------------------------------------------------------------
# Argument validation: every message names the argument, the rule and the value received.


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    return float(value)


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive finite number (> 0). Received: {name}={value!r}")
    return float(value)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def _number_list(name: str, value: Any) -> list[float]:
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy arrays and tensors
        value = value.tolist()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(f"`{name}` must be a non-empty list of finite numbers. Received: {name}={value!r}")
    return [_finite_number(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _inverse_softplus(value: float) -> float:
    """x with softplus(x) = value > 0, computed stably: log(expm1(v)) = v + log(1 - exp(-v))."""
    return value + math.log(-math.expm1(-value))


# --------------------------------------------------------------------------------------------------------------
# Elementwise cores. Each `_*_parts` returns (value, dvalue/dx); the gradient is the closed form, reused by the
# custom gradients below so backward costs one multiply.


def _smelu_parts(x: tf.Tensor, beta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # h = hard sigmoid = SmeLU'(x); y = h·(x + β − β·h) is eq. 7 in three pieces: 0 (h = 0), (x+β)²/(4β) in the
    # middle (h = (x+β)/(2β)), x (h = 1). Four elementwise passes instead of the nested-where's seven.
    shifted = x + beta
    slope = tf.clip_by_value(shifted / (2.0 * beta), 0.0, 1.0)
    return slope * (shifted - beta * slope), slope


def _gsmelu_parts(x, alpha, beta, g_minus, g_plus, t) -> tuple[tf.Tensor, tf.Tensor]:
    # Eq. 9-10 rewritten as t + g−·(x+α) + (g+ − g−)·J(x), where J is a unit ramp smoothed on [−α, β]:
    # J = 0 left of −α, (x+α)²/(2(α+β)) in the middle, x + α − (α+β)/2 right of β. Expanding gives a, b, c of eq. 10.
    width = alpha + beta
    shifted = x + alpha
    ramp_slope = tf.clip_by_value(shifted / width, 0.0, 1.0)
    jump = g_plus - g_minus
    value = t + g_minus * shifted + jump * ramp_slope * (shifted - 0.5 * width * ramp_slope)
    return value, g_minus + jump * ramp_slope


def _rescu_parts(x, knots, half_widths, slopes, t) -> tuple[tf.Tensor, tf.Tensor]:
    # Sum of SmeLU-shaped joints: y = t + g_0·(x − e) + Σ_i (g_i − g_{i−1})·SmeLU_{w_i}(x − k_i), e = k_1 − w_1.
    # The knot axis is appended last so the same code serves any number of knots.
    x_k = tf.expand_dims(x, -1)
    shifted = x_k - knots + half_widths
    joint_slope = tf.clip_by_value(shifted / (2.0 * half_widths), 0.0, 1.0)
    joint = joint_slope * (shifted - half_widths * joint_slope)
    slope_changes = slopes[1:] - slopes[:-1]
    left_edge = knots[0] - half_widths[0]
    value = t + slopes[0] * (x - left_edge) + tf.reduce_sum(slope_changes * joint, axis=-1)
    return value, slopes[0] + tf.reduce_sum(slope_changes * joint_slope, axis=-1)


def _relu_parts(x) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.nn.relu(x), tf.cast(x > 0, x.dtype)


def _with_clip(parts, x, clip, params) -> tuple[tf.Tensor, tf.Tensor]:
    """(value, slope) of `parts`, then clipped to [−clip, clip] when `clip` is not None.

    The slope is zeroed only strictly outside the range, as in the gradient of `tf.clip_by_value`.
    """
    value, slope = parts(x, *params)
    if clip is None:
        return value, slope
    inside = (value >= -clip) & (value <= clip)
    return tf.clip_by_value(value, -clip, clip), tf.where(inside, slope, tf.zeros_like(slope))


def _xla_kernels(parts):
    """XLA-compiled (value, gradient) functions for `parts`.

    Forward returns only the value; backward recomputes the slope from x inside its own fused kernel, which
    measured faster than writing the slope out as a second forward output (one read of x instead of a write
    and a read of a full-size tensor). reduce_retracing: one instance serves layers of many widths.
    """

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def value(x, clip, params):
        return _with_clip(parts, x, clip, params)[0]

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def gradient(upstream, x, clip, params):
        return upstream * _with_clip(parts, x, clip, params)[1]

    return parts, value, gradient


_KERNELS = {
    "relu": _xla_kernels(_relu_parts),
    "smelu": _xla_kernels(_smelu_parts),
    "gsmelu": _xla_kernels(_gsmelu_parts),
    "rescu": _xla_kernels(_rescu_parts),
}


def _is_training(training: Any) -> bool:
    """Python truth of Keras' `training` argument; a symbolic value counts as inference (plain ops, same values)."""
    if training is None or isinstance(training, (bool, int)):
        return bool(training)
    static = tf.get_static_value(training)
    return bool(static) if static is not None else False


def _piecewise_quadratic(
    kind: str, x: tf.Tensor, params: Sequence[tf.Tensor], fused: bool, clip: float | None = None
) -> tf.Tensor:
    """Value of a fixed-parameter unit (optionally clipped) whose gradient w.r.t. `x` is the closed form.

    `fused` runs value and gradient as XLA kernels; otherwise plain TensorFlow ops compute the value and the
    slope once and the gradient is one multiply.
    """
    parts, xla_value, xla_grad = _KERNELS[kind]
    params = tuple(params)
    clip_tensor = None if clip is None else tf.constant(clip, x.dtype)

    @tf.custom_gradient
    def unit(inputs):
        if fused:
            value = xla_value(inputs, clip_tensor, params)
            return value, lambda upstream: xla_grad(upstream, inputs, clip_tensor, params)
        value, slope = _with_clip(parts, inputs, clip_tensor, params)
        return value, lambda upstream: upstream * slope

    return unit(x)


def smelu(x: tf.Tensor, beta: float = 1.0, fused: bool = False) -> tf.Tensor:
    """SmeLU_β(x) (eq. 7) as a function; gradient exactly clip((x+β)/(2β), 0, 1). `fused` runs it under XLA."""
    beta = _positive_number("beta", beta)
    x = tf.convert_to_tensor(x)
    return _piecewise_quadratic("smelu", x, [tf.constant(beta, x.dtype)], fused)


# --------------------------------------------------------------------------------------------------------------
# Layers.


class _Elementwise(tf.keras.layers.Layer):
    """Shared plumbing: elementwise, shape-preserving, mask-preserving."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_output_shape(self, input_shape):
        return input_shape


@tf.keras.utils.register_keras_serializable(package="recsys")
class SmeLU(_Elementwise):
    """Smooth ReLU (SmeLU): ReLU with a quadratic joint of half-width β.

    Eq. 7 of Shamir & Lin 2022 (arXiv:2202.06499)::

        y = 0                 if x <= -β
        y = (x + β)² / (4β)   if |x| <= β
        y = x                 if x >= β

    Its gradient is the hard sigmoid clip((x + β)/(2β), 0, 1) and is computed exactly that way (custom
    gradient). SmeLU is ReLU convolved with a box of height 1/(2β) on [−β, β]; larger β is wider and smoother
    (lower prediction difference, eventually lower accuracy). β is not scale-free: it only means something
    relative to the scale of the pre-activations, so pair it with normalisation.

    Example:
        >>> layer = SmeLU(beta=0.5)
        >>> layer(tf.constant([-1.0, 0.0, 1.0])).numpy()
        array([0.   , 0.125, 1.   ], dtype=float32)

    Args:
        beta: half-width of the quadratic region, > 0.

    Input shape: any. Output shape: same as input.
    """

    def __init__(self, beta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = _positive_number("beta", beta)

    def call(self, inputs, training=None):
        beta = tf.constant(self.beta, inputs.dtype)
        return _piecewise_quadratic("smelu", inputs, [beta], fused=_is_training(training))

    def _fused_clipped(self, inputs, clip):
        return _piecewise_quadratic("smelu", inputs, [tf.constant(self.beta, inputs.dtype)], True, clip)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


@tf.keras.utils.register_keras_serializable(package="recsys")
class GeneralizedSmeLU(_Elementwise):
    """Generalized SmeLU (gSmeLU): two linear pieces of slopes g− and g+ joined by a quadratic on [−α, β].

    Eq. 9-10 of Shamir & Lin 2022 (arXiv:2202.06499), α, β > 0, g+ > g−::

        y = g− x + t + g− α                               if x <= −α
        y = a x² + b x + c                                if −α <= x <= β
        y = g+ x + t + ((α+β)/2) g− + ((α−β)/2) g+        if x >= β
        a = (g+ − g−) / (2(α+β)),   b = (α g+ + β g−) / (α+β),
        c = t + (α²(g+ + g−) + 2αβ g−) / (2(α+β))

    The slope is g− + (g+ − g−)·clip((x+α)/(α+β), 0, 1); value and slope are continuous and y(−α) = t.
    SmeLU is α = β, g− = 0, g+ = 1, t = 0; g− > 0 gives a leaky monotone unit, t <= 0 passes the origin.

    With ``trainable=True`` all five parameters are learned with the model, reparameterised so the constraints
    hold throughout training: α = softplus(α̃), β = softplus(β̃), g+ = g− + softplus(δ̃) with g−, t free.
    ``granularity="layer"`` learns one scalar set; ``"unit"`` one set per unit of the last axis (created on the
    first call). Reusing one instance in several places shares its parameters (per-network gSmeLU).

    Example:
        >>> leaky = GeneralizedSmeLU(alpha=1.0, beta=1.0, g_minus=0.1, g_plus=1.0, t=-0.1)
        >>> learned = GeneralizedSmeLU(trainable=True, granularity="unit")

    Args:
        alpha: left half-width, > 0 (the quadratic starts at x = −α).
        beta: right half-width, > 0 (the quadratic ends at x = β).
        g_minus: slope left of −α.
        g_plus: slope right of β, > g_minus.
        t: value at x = −α.
        trainable: learn the parameters (initialised to the values above).
        granularity: "layer" or "unit".

    Input shape: any (with "unit", the last axis must be known). Output shape: same as input.
    """

    _NAMES = ("alpha", "beta", "g_minus", "g_plus", "t")

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1.0,
        g_minus: float = 0.0,
        g_plus: float = 1.0,
        t: float = 0.0,
        trainable: bool = False,
        granularity: str = "layer",
        **kwargs,
    ):
        learn = _boolean("trainable", trainable)
        super().__init__(trainable=learn, **kwargs)
        self.alpha = _positive_number("alpha", alpha)
        self.beta = _positive_number("beta", beta)
        self.g_minus = _finite_number("g_minus", g_minus)
        self.g_plus = _finite_number("g_plus", g_plus)
        self.t = _finite_number("t", t)
        if not self.g_plus > self.g_minus:
            raise ValueError(
                f"`g_plus` must be greater than `g_minus`. Received: g_minus={g_minus!r}, g_plus={g_plus!r}"
            )
        if granularity not in GRANULARITIES:
            raise ValueError(f"`granularity` must be one of {GRANULARITIES}. Received: granularity={granularity!r}")
        self.granularity = granularity
        self.learn_parameters = learn
        self.units: int | None = None

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        shape: tuple[int, ...] = ()
        if self.granularity == "unit":
            if input_shape.rank is None or input_shape[-1] is None:
                raise ValueError(
                    "`granularity='unit'` needs a known last axis (the number of units). "
                    f"Received: input_shape={input_shape}"
                )
            self.units = int(input_shape[-1])
            shape = (self.units,)
        if self.learn_parameters:
            initial = {
                "alpha_raw": _inverse_softplus(self.alpha),
                "beta_raw": _inverse_softplus(self.beta),
                "g_minus": self.g_minus,
                "g_gap_raw": _inverse_softplus(self.g_plus - self.g_minus),
                "t": self.t,
            }
            self._raw = {
                name: self.add_weight(
                    name=name, shape=shape, initializer=tf.keras.initializers.Constant(value), trainable=True
                )
                for name, value in initial.items()
            }
        super().build(input_shape)

    def parameters(self, dtype=tf.float32) -> dict[str, tf.Tensor]:
        """Current α, β, g−, g+, t (the learned values when trainable), as tensors of `dtype`."""
        if not self.learn_parameters:
            return {name: tf.constant(getattr(self, name), dtype) for name in self._NAMES}
        if not self.built:
            raise ValueError("The learned gSmeLU parameters exist after the layer's first call (build).")
        raw = {name: tf.cast(var, dtype) for name, var in self._raw.items()}
        g_minus = raw["g_minus"]
        return {
            "alpha": tf.nn.softplus(raw["alpha_raw"]),
            "beta": tf.nn.softplus(raw["beta_raw"]),
            "g_minus": g_minus,
            "g_plus": g_minus + tf.nn.softplus(raw["g_gap_raw"]),
            "t": raw["t"],
        }

    def call(self, inputs, training=None):
        if self.units is not None and inputs.shape[-1] != self.units:
            raise ValueError(
                f"This granularity='unit' GeneralizedSmeLU was built for {self.units} units and cannot be applied "
                f"to an input with last axis {inputs.shape[-1]}; share across layers with granularity='layer'."
            )
        params = self.parameters(inputs.dtype)
        ordered = [params[name] for name in self._NAMES]
        if self.learn_parameters:
            # Autodiff through the closed form gives gradients for the five parameters as well.
            return _gsmelu_parts(inputs, *ordered)[0]
        return _piecewise_quadratic("gsmelu", inputs, ordered, fused=_is_training(training))

    def _fused_clipped(self, inputs, clip):
        if self.learn_parameters:
            return None
        params = self.parameters(inputs.dtype)
        return _piecewise_quadratic("gsmelu", inputs, [params[name] for name in self._NAMES], True, clip)

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=self.alpha,
            beta=self.beta,
            g_minus=self.g_minus,
            g_plus=self.g_plus,
            t=self.t,
            trainable=self.learn_parameters,
            granularity=self.granularity,
        )
        return config


@tf.keras.utils.register_keras_serializable(package="recsys")
class RESCU(_Elementwise):
    """REctified Smooth Continuous Unit: n + 1 linear pieces joined by quadratic joints at n knots.

    The construction of gSmeLU (Shamir & Lin 2022, arXiv:2202.06499, eq. 9-10) with more than two linear
    segments. Knot k_i (increasing) carries a quadratic joint on [k_i − w_i, k_i + w_i]; joints may touch but
    not overlap. With slopes g_0..g_n and e = k_1 − w_1::

        y = t + g_0 (x − e) + Σ_i (g_i − g_{i−1}) · SmeLU_{w_i}(x − k_i)
        y' = g_0 + Σ_i (g_i − g_{i−1}) · clip((x − k_i + w_i) / (2 w_i), 0, 1)

    so the slope is g_{i} between joints i and i+1, and value and slope are continuous everywhere; y(e) = t.
    One knot k = (β − α)/2 with half-width (α + β)/2 and slopes [g−, g+] is exactly GeneralizedSmeLU.

    With ``trainable=True`` knots, half-widths, slopes and t are learned; half-widths = softplus(·) and each gap
    between consecutive joints = softplus(·), so the joints stay ordered and disjoint (initial gaps must be > 0).

    Example:
        >>> unit = RESCU(knots=[-1.0, 1.0], slopes=[0.0, 0.5, 1.0], half_widths=[0.5, 0.5])

    Args:
        knots: n strictly increasing joint centres.
        slopes: n + 1 slopes of the linear pieces, left to right.
        half_widths: n half-widths > 0 (or one number used for every knot).
        t: value at the left end of the first joint.
        trainable: learn the parameters.

    Input shape: any. Output shape: same as input.
    """

    def __init__(
        self,
        knots: Sequence[float],
        slopes: Sequence[float],
        half_widths: Sequence[float] | float,
        t: float = 0.0,
        trainable: bool = False,
        **kwargs,
    ):
        learn = _boolean("trainable", trainable)
        super().__init__(trainable=learn, **kwargs)
        self.knots = _number_list("knots", knots)
        n = len(self.knots)
        self.slopes = _number_list("slopes", slopes)
        if len(self.slopes) != n + 1:
            raise ValueError(
                f"`slopes` must have len(knots) + 1 = {n + 1} entries (one per linear piece). "
                f"Received: slopes={slopes!r}"
            )
        if isinstance(half_widths, numbers.Real) and not isinstance(half_widths, bool):
            half_widths = [half_widths] * n
        widths = _number_list("half_widths", half_widths)
        if len(widths) != n:
            raise ValueError(
                f"`half_widths` must be one number or have len(knots) = {n} entries. "
                f"Received: half_widths={half_widths!r}"
            )
        self.half_widths = [_positive_number(f"half_widths[{i}]", w) for i, w in enumerate(widths)]
        for i in range(n - 1):
            if not self.knots[i] < self.knots[i + 1]:
                raise ValueError(f"`knots` must be strictly increasing. Received: knots={knots!r}")
            gap = (self.knots[i + 1] - self.half_widths[i + 1]) - (self.knots[i] + self.half_widths[i])
            if gap < 0 or (learn and gap <= 0):
                rule = "be separated by a positive gap when trainable=True" if gap >= 0 else "not overlap"
                raise ValueError(
                    f"The quadratic joints of `knots` {i} and {i + 1} must {rule}: knots[{i}] + half_widths[{i}] "
                    f"= {self.knots[i] + self.half_widths[i]!r} vs knots[{i + 1}] - half_widths[{i + 1}] = "
                    f"{self.knots[i + 1] - self.half_widths[i + 1]!r}. Received: knots={knots!r}, "
                    f"half_widths={half_widths!r}"
                )
        self.t = _finite_number("t", t)
        self.learn_parameters = learn

    def build(self, input_shape):
        if self.learn_parameters:
            k, w = self.knots, self.half_widths
            gaps = [(k[i + 1] - w[i + 1]) - (k[i] + w[i]) for i in range(len(k) - 1)]
            initial = {
                "left_edge": [k[0] - w[0]],
                "half_widths_raw": [_inverse_softplus(v) for v in w],
                "gaps_raw": [_inverse_softplus(g) for g in gaps],
                "slopes": self.slopes,
                "t": [self.t],
            }
            self._raw = {
                name: self.add_weight(
                    name=name,
                    shape=(len(values),),
                    initializer=tf.keras.initializers.Constant(values),
                    trainable=True,
                )
                for name, values in initial.items()
            }
        super().build(input_shape)

    def parameters(self, dtype=tf.float32) -> dict[str, tf.Tensor]:
        """Current knots, half_widths, slopes (vectors) and t (scalar) as tensors of `dtype`."""
        if not self.learn_parameters:
            return {
                "knots": tf.constant(self.knots, dtype),
                "half_widths": tf.constant(self.half_widths, dtype),
                "slopes": tf.constant(self.slopes, dtype),
                "t": tf.constant(self.t, dtype),
            }
        if not self.built:
            raise ValueError("The learned RESCU parameters exist after the layer's first call (build).")
        raw = {name: tf.cast(var, dtype) for name, var in self._raw.items()}
        widths = tf.nn.softplus(raw["half_widths_raw"])
        # Knot i+1 = knot i + w_i + gap_i + w_{i+1}: ordered, disjoint joints for any raw values.
        steps = widths[:-1] + tf.nn.softplus(raw["gaps_raw"]) + widths[1:]
        first = raw["left_edge"] + widths[:1]
        knots = tf.concat([first, first + tf.cumsum(steps)], axis=0)
        return {"knots": knots, "half_widths": widths, "slopes": raw["slopes"], "t": raw["t"][0]}

    def call(self, inputs, training=None):
        params = self.parameters(inputs.dtype)
        ordered = [params["knots"], params["half_widths"], params["slopes"], params["t"]]
        if self.learn_parameters:
            return _rescu_parts(inputs, *ordered)[0]
        return _piecewise_quadratic("rescu", inputs, ordered, fused=_is_training(training))

    def _fused_clipped(self, inputs, clip):
        if self.learn_parameters:
            return None
        params = self.parameters(inputs.dtype)
        ordered = [params["knots"], params["half_widths"], params["slopes"], params["t"]]
        return _piecewise_quadratic("rescu", inputs, ordered, True, clip)

    def get_config(self):
        config = super().get_config()
        config.update(
            knots=list(self.knots),
            slopes=list(self.slopes),
            half_widths=list(self.half_widths),
            t=self.t,
            trainable=self.learn_parameters,
        )
        return config


@tf.keras.utils.register_keras_serializable(package="recsys")
class Softplus(_Elementwise):
    """Softplus with width parameter β: y = (1/β)·log(1 + exp(β x)).

    Eq. 3 of Shamir & Lin 2022 (arXiv:2202.06499); larger β is closer to ReLU. Gradient σ(β x).

    Example:
        >>> Softplus(beta=2.0)(tf.constant([0.0])).numpy()  # log(2)/2
        array([0.34657359], dtype=float32)

    Args:
        beta: > 0.

    Input shape: any. Output shape: same as input.
    """

    def __init__(self, beta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = _positive_number("beta", beta)

    def call(self, inputs, training=None):
        if self.beta == 1.0:
            return tf.nn.softplus(inputs)
        return tf.nn.softplus(inputs * self.beta) / self.beta

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


@tf.keras.utils.register_keras_serializable(package="recsys")
class Swish(_Elementwise):
    """Swish (SiLU) with width parameter β: y = x·σ(β x).

    Eq. 4 of Shamir & Lin 2022 (arXiv:2202.06499); larger β is closer to ReLU. Uses `tf.nn.silu`, whose
    gradient is fused.

    Example:
        >>> Swish(beta=1.0)(tf.constant([1.0])).numpy()  # 1·σ(1)
        array([0.7310586], dtype=float32)

    Args:
        beta: > 0.

    Input shape: any. Output shape: same as input.
    """

    def __init__(self, beta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = _positive_number("beta", beta)

    def call(self, inputs, training=None):
        return tf.nn.silu(inputs, beta=self.beta)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


@tf.keras.utils.register_keras_serializable(package="recsys")
class GELU(_Elementwise):
    """GELU with width parameter β: y = x·Φ(β x) = x·½[1 + erf(β x/√2)].

    Eq. 5 of Shamir & Lin 2022 (arXiv:2202.06499). ``approximate=True`` uses the paper's sigmoid approximation
    y = x·σ(√(8/π)·β x) (not the tanh form of `tf.nn.gelu(approximate=True)`). Larger β is closer to ReLU.

    Example:
        >>> GELU()(tf.constant([1.0])).numpy()  # Φ(1)
        array([0.8413447], dtype=float32)

    Args:
        beta: > 0.
        approximate: use x·σ(√(8/π)·β x).

    Input shape: any. Output shape: same as input.
    """

    def __init__(self, beta: float = 1.0, approximate: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.beta = _positive_number("beta", beta)
        self.approximate = _boolean("approximate", approximate)

    def call(self, inputs, training=None):
        if self.approximate:
            return tf.nn.silu(inputs, beta=math.sqrt(8.0 / math.pi) * self.beta)
        if self.beta == 1.0:
            return tf.nn.gelu(inputs, approximate=False)
        # x·Φ(βx) = GELU(βx)/β keeps TensorFlow's single Gelu kernel.
        return tf.nn.gelu(inputs * self.beta, approximate=False) / self.beta

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "approximate": self.approximate}


@tf.keras.utils.register_keras_serializable(package="recsys")
class ReLU(_Elementwise):
    """ReLU, the baseline: y = max(x, 0) (Shamir & Lin 2022, arXiv:2202.06499, the non-smooth reference).

    Example:
        >>> ReLU()(tf.constant([-1.0, 2.0])).numpy()
        array([0., 2.], dtype=float32)

    Input shape: any. Output shape: same as input.
    """

    def call(self, inputs, training=None):
        return tf.nn.relu(inputs)

    def _fused_clipped(self, inputs, clip):
        return _piecewise_quadratic("relu", inputs, [], True, clip)


@tf.keras.utils.register_keras_serializable(package="recsys")
class ClippedActivation(_Elementwise):
    """An activation whose output is clipped to [−clip, clip]: y = min(max(f(x), −clip), clip).

    Shamir & Lin 2022 (arXiv:2202.06499) clip hidden activations (e.g. ±6) for stability; combined with layer or
    weight normalisation this keeps the unit smooth where the pre-activations live.

    Example:
        >>> ClippedActivation(SmeLU(beta=1.0), clip=6.0)
        >>> ClippedActivation("swish:beta=2", clip=3.0)

    Args:
        activation: a layer (wrapped as is, so a shared instance stays shared) or anything `get` accepts.
        clip: > 0.

    Input shape: any. Output shape: same as input.
    """

    def __init__(self, activation: Any, clip: float = DEFAULT_CLIP, **kwargs):
        super().__init__(**kwargs)
        if isinstance(activation, Mapping) and "class_name" in activation:
            activation = tf.keras.layers.deserialize(dict(activation))
        self.activation = activation if isinstance(activation, tf.keras.layers.Layer) else get(activation)
        self.clip = _positive_number("clip", clip)

    def call(self, inputs, training=None):
        fused = getattr(self.activation, "_fused_clipped", None)
        if fused is not None and _is_training(training):
            # Training: activation and clip in one XLA kernel each way (ReLU and fixed SmeLU/gSmeLU/RESCU);
            # unfused, the clip and its gradient cost several passes over the activations.
            inner_inputs = tf.cast(inputs, self.activation.compute_dtype)
            outputs = fused(inner_inputs, self.clip)
            if outputs is not None:
                return outputs
        return tf.clip_by_value(self.activation(inputs, training=training), -self.clip, self.clip)

    def get_config(self):
        config = super().get_config()
        config.update(activation=tf.keras.layers.serialize(self.activation), clip=self.clip)
        return config


# --------------------------------------------------------------------------------------------------------------
# get(): the one place activation identifiers and spec strings are parsed.

ACTIVATIONS: dict[str, type[tf.keras.layers.Layer]] = {
    "relu": ReLU,
    "smelu": SmeLU,
    "gsmelu": GeneralizedSmeLU,
    "rescu": RESCU,
    "softplus": Softplus,
    "swish": Swish,
    "gelu": GELU,
}

_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class ActivationSpec:
    """A parsed spec string: activation `name`, its constructor `params`, and `clip` (None = unclipped)."""

    name: str
    params: dict[str, Any]
    clip: float | None = None


def _spec_error(spec: str, problem: str) -> ValueError:
    return ValueError(
        f"Malformed activation spec: {problem}. Expected 'name[:key=value,...][|clip[=number]]', e.g. "
        f"'smelu:beta=0.5' or 'smelu:beta=1|clip=6'. Received: spec={spec!r}"
    )


def _split_params(spec: str, text: str) -> list[str]:
    """Splits 'a=1,b=[1,2]' on the commas outside brackets."""
    items, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise _spec_error(spec, "unbalanced ']'")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise _spec_error(spec, "unbalanced '['")
    items.append(current)
    return items


def _parse_value(spec: str, key: str, text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            values = None
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        ):
            raise _spec_error(spec, f"value of {key!r} must be a list of numbers like [-1,1], got {text!r}")
        return [float(v) for v in values]
    try:
        return float(text)
    except ValueError:
        pass
    if _WORD_PATTERN.match(text):
        return text
    raise _spec_error(spec, f"value of {key!r} is not a number, true/false, a word or a [list], got {text!r}")


def _unknown_name(name: Any) -> ValueError:
    return ValueError(f"Unknown activation name {name!r}. Known names: {', '.join(sorted(ACTIVATIONS))}")


def parse_spec(spec: str) -> ActivationSpec:
    """Parses a spec string (syntax in the module docstring) without building the layer."""
    if not isinstance(spec, str):
        raise ValueError(f"`spec` must be a string. Received: spec={spec!r}")
    text = "".join(spec.split())
    if not text:
        raise _spec_error(spec, "empty spec")
    body, *modifiers = text.split("|")
    name, colon, param_text = body.partition(":")
    if not _NAME_PATTERN.match(name):
        raise _spec_error(spec, f"bad activation name {name!r}")
    name = name.lower()
    if name not in ACTIVATIONS:
        raise _unknown_name(name)
    params: dict[str, Any] = {}
    if colon:
        if not param_text:
            raise _spec_error(spec, "':' must be followed by key=value pairs")
        for item in _split_params(spec, param_text):
            key, equals, value = item.partition("=")
            if not equals or not _NAME_PATTERN.match(key) or not value:
                raise _spec_error(spec, f"parameter {item!r} is not key=value")
            if key in params:
                raise _spec_error(spec, f"parameter {key!r} given twice")
            params[key] = _parse_value(spec, key, value)
    clip = None
    for modifier in modifiers:
        key, equals, value = modifier.partition("=")
        if key.lower() != "clip":
            raise _spec_error(spec, f"unknown modifier {modifier!r} after '|' (only 'clip' or 'clip=<number>')")
        if clip is not None:
            raise _spec_error(spec, "'clip' given twice")
        if not equals:
            clip = DEFAULT_CLIP
        else:
            try:
                clip = float(value)
            except ValueError:
                raise _spec_error(spec, f"clip value {value!r} is not a number") from None
    return ActivationSpec(name, params, clip)


def _build(name: str, params: Mapping[str, Any], clip: float | None, origin: Any) -> tf.keras.layers.Layer:
    cls = ACTIVATIONS[name]
    allowed = _constructor_args(cls)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {unknown} for activation {name!r}; allowed: {list(allowed) or 'none'}. "
            f"Received: {origin!r}"
        )
    layer = cls(**params)
    return layer if clip is None else ClippedActivation(layer, clip=clip)


def _constructor_args(cls: type) -> tuple[str, ...]:
    return tuple(
        p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD
    )[1:]


def get(identifier: Any) -> tf.keras.layers.Layer:
    """Returns a NEW activation layer for `identifier`.

    Accepts:
        - a Keras layer: a fresh copy built from its config (learned weights are not copied; to share one
          gSmeLU across layers, pass the same instance around instead of calling `get` on it);
        - a name: "relu", "smelu", "gsmelu", "rescu", "softplus", "swish", "gelu" (case-insensitive);
        - a spec string: "smelu:beta=0.5", "gsmelu:alpha=1,beta=2,g_minus=-0.1", "smelu:beta=1|clip=6"
          (syntax in the module docstring);
        - a dict: {"name": "swish", "beta": 2.0}, optionally with "clip": 6.0; or a Keras serialisation dict
          {"class_name": ..., "config": ...}.

    Raises:
        ValueError: unknown name (the message lists the known ones), malformed spec, unknown parameter, or a
            parameter breaking its rule (β <= 0, α <= 0, g+ <= g−, ...).
    """
    if isinstance(identifier, tf.keras.layers.Layer):
        config = identifier.get_config()
        config.pop("name", None)  # a copy needs its own name to sit next to the original in a model
        return identifier.__class__.from_config(config)
    if isinstance(identifier, str):
        spec = parse_spec(identifier)
        return _build(spec.name, spec.params, spec.clip, identifier)
    if isinstance(identifier, Mapping):
        if "class_name" in identifier:
            return tf.keras.layers.deserialize(dict(identifier))
        if "name" not in identifier:
            raise ValueError(
                "An activation dict needs a 'name' key, e.g. {'name': 'swish', 'beta': 2.0}. "
                f"Received: {dict(identifier)!r}"
            )
        params = dict(identifier)
        name = params.pop("name")
        clip = params.pop("clip", None)
        if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
            raise _unknown_name(name)
        if clip is not None:
            clip = _positive_number("clip", clip)
        return _build(name.lower(), params, clip, dict(identifier))
    raise ValueError(
        "`identifier` must be a Keras layer, an activation name, a spec string or a dict. "
        f"Received: identifier={identifier!r} of type {type(identifier).__name__}"
    )


__all__ = [
    "ACTIVATIONS",
    "ActivationSpec",
    "ClippedActivation",
    "GELU",
    "GeneralizedSmeLU",
    "RESCU",
    "ReLU",
    "SmeLU",
    "Softplus",
    "Swish",
    "get",
    "parse_spec",
    "smelu",
]
