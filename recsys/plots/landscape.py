"""Loss landscapes of random clipped networks: ReLU against SmeLU (Shamir & Lin 2022, Figs. 2-3).

A random network maps a D-dimensional input x to a loss:

    a^0 = x,   z^l = W^l a^(l-1) (+ layer norm),   a^l = clip(f(z^l), -6, 6)   for the hidden widths
    [256, 128, 64, 32, 16],   logit = w_out · a^L,   loss = -log σ(logit)   (cross-entropy against label 1).

Two normalisations, as in the paper (arXiv:2202.06499, "The model" and Figs. 2-3):

- ``weight_norm``: raw weights w ~ N(0, 25) (std 5); every output unit's weight vector (one column in the
  [inputs, units] layout) is rescaled to a fixed norm v: W_j = v · w_j / ‖w_j‖₂. The raw scale cancels, so
  N(0, 25) and N(0, 1) give the same network; v (default 1) sets the pre-activation scale.
- ``layer_norm``: weights W ~ N(0, 1); each hidden pre-activation vector is standardised over its units
  (mean 0, variance 1, no learned scale or offset) before the activation.

The same weights and the same base input are used for every activation, so curves differ only by f. The loss
is evaluated on a whole grid of inputs at once: one coordinate of a fixed random input swept (Fig. 2), or two
coordinates swept over a square (Fig. 3). `count_local_minima` counts the valleys of a sampled curve, which is
how the docs compare how rugged each activation's landscape is.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from recsys import atomic
from recsys.layers import activations

HIDDEN_UNITS: tuple[int, ...] = (256, 128, 64, 32, 16)
NORMALIZATIONS: tuple[str, ...] = ("weight_norm", "layer_norm")
# Std of the raw weights per normalisation: the paper's N(0, 25) with weight norm and N(0, 1) with layer norm.
WEIGHT_STD: dict[str, float] = {"weight_norm": 5.0, "layer_norm": 1.0}
CLIP = 6.0
MINIMA_FILE = "landscape_minima.json"
DEFAULT_BETAS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)
# Valleys shallower than this fraction of a curve's range are not counted: float64 rounding on a flat stretch
# must not read as a minimum, while any kink-made valley of a real curve is far deeper.
MINIMA_RELATIVE_TOLERANCE = 1e-9
_LAYER_NORM_EPSILON = 1e-6
# Rows per forward pass: bounds memory (a 256-wide float64 layer of 32768 rows is 64 MiB).
_CHUNK_ROWS = 32768


@dataclasses.dataclass(frozen=True)
class RandomNetwork:
    """Fixed random weights of the landscape network.

    Attributes:
      kernels: hidden-layer kernels, [inputs, units] each, already weight-normalised for ``weight_norm``.
      output_kernel: [last hidden width, 1] kernel of the logit.
      normalization: ``weight_norm`` or ``layer_norm``.
      base_input: [input_dim] the random input whose coordinates are swept.
      clip: activations are clipped to [-clip, clip].
    """

    kernels: tuple[np.ndarray, ...]
    output_kernel: np.ndarray
    normalization: str
    base_input: np.ndarray
    clip: float = CLIP

    @property
    def input_dim(self) -> int:
        return int(self.base_input.shape[0])


@dataclasses.dataclass(frozen=True)
class CurveSpec:
    """One curve: a display label and the `recsys.layers.activations.get` spec string."""

    label: str
    spec: str


def activation_specs(betas: Sequence[float]) -> list[CurveSpec]:
    """ReLU followed by SmeLU at each β, validated here so a bad β fails before any work is done."""
    specs = [CurveSpec("ReLU", "relu")]
    for beta in betas:
        if isinstance(beta, bool) or not (isinstance(beta, int | float) and math.isfinite(beta) and beta > 0):
            raise ValueError(f"`betas` must be finite positive numbers (SmeLU half-width). Received: beta={beta!r}")
        specs.append(CurveSpec(f"SmeLU β={beta:g}", f"smelu:beta={float(beta)!r}"))
    return specs


def _weight_normalize(kernel: np.ndarray, gain: float) -> np.ndarray:
    """W_j = gain · w_j / ‖w_j‖₂ for every output unit j (a column in the [inputs, units] layout)."""
    return gain * kernel / np.linalg.norm(kernel, axis=0, keepdims=True)


def random_network(
    input_dim: int,
    normalization: str,
    seed: int,
    hidden_units: Sequence[int] = HIDDEN_UNITS,
    weight_norm_gain: float = 1.0,
    clip: float = CLIP,
) -> RandomNetwork:
    """Draws the network's weights and base input x ~ N(0, I) from `seed` (same seed → same network).

    Args:
      input_dim: D, the number of inputs (≥ 2, so a 2-D surface can be swept).
      normalization: ``weight_norm`` (weights N(0, 25), each unit's weight vector rescaled to norm
        `weight_norm_gain`) or ``layer_norm`` (weights N(0, 1), layer norm before each activation).
      seed: NumPy seed of the weights and the base input.
      hidden_units: hidden widths.
      weight_norm_gain: v in W_j = v · w_j / ‖w_j‖₂; ignored for ``layer_norm``.
      clip: activation clipping bound (> 0).
    """
    if not isinstance(input_dim, int) or input_dim < 2:
        raise ValueError(f"`input_dim` must be an integer >= 2 (two are swept). Received: input_dim={input_dim!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"`normalization` must be one of {NORMALIZATIONS}. Received: {normalization!r}")
    if not hidden_units or any(not isinstance(units, int) or units < 1 for units in hidden_units):
        raise ValueError(f"`hidden_units` must be positive integers. Received: {hidden_units!r}")
    if not weight_norm_gain > 0:
        raise ValueError(f"`weight_norm_gain` must be positive. Received: {weight_norm_gain!r}")
    if not clip > 0:
        raise ValueError(f"`clip` must be positive. Received: {clip!r}")
    rng = np.random.default_rng(seed)
    std = WEIGHT_STD[normalization]
    widths = [input_dim, *hidden_units, 1]
    kernels = [
        rng.normal(0.0, std, size=(fan_in, fan_out)) for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True)
    ]
    if normalization == "weight_norm":
        kernels = [_weight_normalize(kernel, weight_norm_gain) for kernel in kernels]
    base_input = rng.normal(0.0, 1.0, size=input_dim)
    return RandomNetwork(
        kernels=tuple(kernels[:-1]),
        output_kernel=kernels[-1],
        normalization=normalization,
        base_input=base_input,
        clip=float(clip),
    )


def _layer_norm(z: tf.Tensor) -> tf.Tensor:
    mean, variance = tf.nn.moments(z, axes=[-1], keepdims=True)
    return (z - mean) * tf.math.rsqrt(variance + _LAYER_NORM_EPSILON)


def _hidden_activations(spec: str, clip: float, count: int) -> list[tf.keras.layers.Layer]:
    """Fresh clipped activation layers computing in float64, so finite differences see no float32 rounding.

    Layers take their dtype from `floatx` when built; it is switched only while these are constructed.
    """
    previous = tf.keras.backend.floatx()
    tf.keras.backend.set_floatx("float64")
    try:
        return [activations.ClippedActivation(activations.get(spec), clip=clip) for _ in range(count)]
    finally:
        tf.keras.backend.set_floatx(previous)


def network_loss(network: RandomNetwork, inputs: np.ndarray, activation: str, label: float = 1.0) -> np.ndarray:
    """Cross-entropy loss −[y log σ(logit) + (1−y) log(1−σ(logit))] of every row of `inputs`.

    Args:
      network: the random weights.
      inputs: [N, input_dim] inputs.
      activation: a `recsys.layers.activations.get` spec, e.g. ``relu`` or ``smelu:beta=0.5``.
      label: the fixed label y in [0, 1].

    Returns:
      [N] float64 losses.
    """
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim != 2 or inputs.shape[1] != network.input_dim:
        raise ValueError(f"`inputs` must have shape [N, {network.input_dim}]. Received: {inputs.shape}")
    if not 0.0 <= label <= 1.0:
        raise ValueError(f"`label` must be in [0, 1]. Received: label={label!r}")
    layers = _hidden_activations(activation, network.clip, len(network.kernels))
    kernels = [tf.constant(kernel, tf.float64) for kernel in network.kernels]
    output_kernel = tf.constant(network.output_kernel, tf.float64)
    losses = []
    for start in range(0, inputs.shape[0], _CHUNK_ROWS):
        hidden = tf.constant(inputs[start : start + _CHUNK_ROWS])
        for kernel, layer in zip(kernels, layers, strict=True):
            pre_activation = tf.matmul(hidden, kernel)
            if network.normalization == "layer_norm":
                pre_activation = _layer_norm(pre_activation)
            hidden = layer(pre_activation)
        logits = tf.squeeze(tf.matmul(hidden, output_kernel), axis=-1)
        labels = tf.fill(tf.shape(logits), tf.constant(label, tf.float64))
        losses.append(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits).numpy())
    return np.concatenate(losses)


def sweep_grid(grid: int, sweep_range: float) -> np.ndarray:
    """`grid` evenly spaced input values on [-sweep_range, sweep_range]."""
    if not isinstance(grid, int) or grid < 2:
        raise ValueError(f"`grid` must be an integer >= 2 (points per swept axis). Received: grid={grid!r}")
    if not (math.isfinite(sweep_range) and sweep_range > 0):
        raise ValueError(f"`sweep_range` must be a finite positive number. Received: sweep_range={sweep_range!r}")
    return np.linspace(-sweep_range, sweep_range, grid)


def loss_curve(network: RandomNetwork, values: np.ndarray, activation: str, axis: int = 0) -> np.ndarray:
    """Loss as input `axis` takes each of `values`, the other inputs fixed at the base input (Fig. 2)."""
    inputs = np.tile(network.base_input, (len(values), 1))
    inputs[:, axis] = values
    return network_loss(network, inputs, activation)


def loss_surface(
    network: RandomNetwork, values: np.ndarray, activation: str, axes: tuple[int, int] = (0, 1)
) -> np.ndarray:
    """[len(values), len(values)] losses: row i sweeps input axes[1], column j input axes[0] (Fig. 3)."""
    first, second = np.meshgrid(values, values)
    inputs = np.tile(network.base_input, (first.size, 1))
    inputs[:, axes[0]] = first.ravel()
    inputs[:, axes[1]] = second.ravel()
    return network_loss(network, inputs, activation).reshape(first.shape)


def count_local_minima(values: Sequence[float] | np.ndarray, tolerance: float = 0.0) -> int:
    """Number of interior valleys of a sampled curve.

    A valley counts when the curve falls by more than `tolerance` into it and then rises by more than
    `tolerance` out of it (hysteresis). With tolerance 0 this is the number of sign changes from − to + of the
    finite-difference slope, zero slopes (flat stretches) skipped. Minima at the ends of the sampled range are
    not counted.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"`values` must be one-dimensional. Received shape: {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("`values` must be finite; received NaN or infinity.")
    if not tolerance >= 0:
        raise ValueError(f"`tolerance` must be >= 0. Received: tolerance={tolerance!r}")
    count = 0
    trend = 0  # -1 falling, +1 rising, 0 not yet moved by more than the tolerance
    low = high = values[0] if values.size else 0.0
    for value in values[1:]:
        if trend < 0:
            low = min(low, value)
            if value - low > tolerance:
                count += 1
                trend, high = 1, value
        elif trend > 0:
            high = max(high, value)
            if high - value > tolerance:
                trend, low = -1, value
        else:
            low, high = min(low, value), max(high, value)
            if high - value > tolerance:
                trend, low = -1, value
            elif value - low > tolerance:
                trend, high = 1, value
    return count


def count_local_minima_2d(surface: np.ndarray, tolerance: float = 0.0) -> int:
    """Interior grid points lower, by more than `tolerance`, than all eight neighbours (flat plateaus and
    points on the border are not counted)."""
    surface = np.asarray(surface, dtype=np.float64)
    if surface.ndim != 2:
        raise ValueError(f"`surface` must be two-dimensional. Received shape: {surface.shape}")
    if not tolerance >= 0:
        raise ValueError(f"`tolerance` must be >= 0. Received: tolerance={tolerance!r}")
    return int(_interior_minima(surface, tolerance)[0].size)


def relative_tolerance(values: np.ndarray) -> float:
    """The counting tolerance of a curve or surface: `MINIMA_RELATIVE_TOLERANCE` of its value range."""
    return MINIMA_RELATIVE_TOLERANCE * float(np.ptp(values))


_TITLES = {
    "weight_norm": "weight norm (raw weights N(0, 25), each unit's weight vector rescaled to norm {gain:g})",
    "layer_norm": "layer norm (weights N(0, 1))",
}


def _network_description(network: RandomNetwork, weight_norm_gain: float) -> str:
    widths = ", ".join(str(kernel.shape[1]) for kernel in network.kernels)
    return (
        f"random net [{widths}] → logistic output, {_TITLES[network.normalization].format(gain=weight_norm_gain)}\n"
        f"activations clipped to ±{network.clip:g}, loss = −log σ(logit) (cross-entropy against label 1), "
        f"same weights and base input for every activation"
    )


def _minima_text(count: int) -> str:
    return f"{count} local minim{'um' if count == 1 else 'a'}"


def plot_curves(
    values: np.ndarray,
    curves: dict[str, np.ndarray],
    minima: dict[str, int],
    description: str,
    axis: int = 0,
) -> Figure:
    """Fig. 2: the loss curves of all activations overlaid, then one small panel each on its own loss scale."""
    figure = Figure(figsize=(14, 8), layout="constrained")
    grid = figure.add_gridspec(2, len(curves), height_ratios=[1.3, 1])
    overlay = figure.add_subplot(grid[0, :])
    colors = [f"C{i}" for i in range(len(curves))]
    for (label, losses), color in zip(curves.items(), colors, strict=True):
        overlay.plot(values, losses, color=color, linewidth=1.5, label=f"{label}: {_minima_text(minima[label])}")
    overlay.set_xlabel(f"input x[{axis}] (the other inputs fixed)")
    overlay.set_ylabel("loss")
    overlay.set_title("All activations on the same weights")
    overlay.legend(loc="best", fontsize=9)
    overlay.grid(alpha=0.3)
    for index, ((label, losses), color) in enumerate(zip(curves.items(), colors, strict=True)):
        panel = figure.add_subplot(grid[1, index])
        panel.plot(values, losses, color=color, linewidth=1.1)
        panel.set_title(f"{label}\n{_minima_text(minima[label])}", fontsize=10)
        panel.set_xlabel(f"x[{axis}]")
        if index == 0:
            panel.set_ylabel("loss (own scale)")
        panel.grid(alpha=0.3)
        panel.tick_params(labelsize=8)
    figure.suptitle(f"Loss vs one input (paper Fig. 2)\n{description}", fontsize=11)
    return figure


def _interior_minima(surface: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the points `count_local_minima_2d` counts."""
    if min(surface.shape) < 3:
        return np.empty(0, dtype=int), np.empty(0, dtype=int)
    centre = surface[1:-1, 1:-1]
    rows, cols = surface.shape
    is_minimum = np.ones(centre.shape, dtype=bool)
    for row_shift in (-1, 0, 1):
        for col_shift in (-1, 0, 1):
            if row_shift or col_shift:
                neighbour = surface[1 + row_shift : rows - 1 + row_shift, 1 + col_shift : cols - 1 + col_shift]
                is_minimum &= neighbour - centre > tolerance
    row_index, col_index = np.nonzero(is_minimum)
    return row_index + 1, col_index + 1


def plot_surfaces(
    values: np.ndarray,
    surfaces: dict[str, np.ndarray],
    minima: dict[str, int],
    description: str,
    axes: tuple[int, int] = (0, 1),
) -> Figure:
    """Fig. 3: per activation a 3-D loss surface over two swept inputs and, below it, a contour map with the
    counted local minima marked; each activation on its own loss scale."""
    columns = len(surfaces)
    figure = Figure(figsize=(4.2 * columns, 8.2), layout="constrained")
    grid = figure.add_gridspec(2, columns, height_ratios=[1.1, 1])
    first, second = np.meshgrid(values, values)
    # Rendering every quad of a fine grid is slow and shows nothing more; counts and contours use the full grid.
    stride = max(1, len(values) // 120)
    for index, (label, surface) in enumerate(surfaces.items()):
        panel = figure.add_subplot(grid[0, index], projection="3d")
        panel.plot_surface(
            first[::stride, ::stride],
            second[::stride, ::stride],
            surface[::stride, ::stride],
            cmap="viridis",
            linewidth=0,
            antialiased=False,
        )
        panel.set_title(label, fontsize=11)
        panel.set_xlabel(f"x[{axes[0]}]", fontsize=8)
        panel.set_ylabel(f"x[{axes[1]}]", fontsize=8)
        panel.set_zlabel("loss", fontsize=8)
        panel.tick_params(labelsize=7)
        panel.view_init(elev=35, azim=-60)
        panel.set_box_aspect(None, zoom=1.25)
        contour = figure.add_subplot(grid[1, index])
        filled = contour.contourf(first, second, surface, levels=30, cmap="viridis")
        colorbar = figure.colorbar(filled, ax=contour, shrink=0.8, label="loss")
        colorbar.ax.tick_params(labelsize=7)
        row_index, col_index = _interior_minima(surface, relative_tolerance(surface))
        contour.plot(values[col_index], values[row_index], "r.", markersize=5)
        contour.set_title(f"{_minima_text(minima[label])} (red)", fontsize=10)
        contour.set_xlabel(f"x[{axes[0]}]")
        contour.set_ylabel(f"x[{axes[1]}]")
        contour.set_aspect("equal")
    figure.suptitle(f"Loss surface vs two inputs (paper Fig. 3)\n{description}", fontsize=11)
    return figure


def _save_png(figure: Figure, path: str) -> None:
    """Writes through a temporary name so an interrupted run never leaves a truncated PNG at `path`."""
    with atomic.replacing(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)


@dataclasses.dataclass(frozen=True)
class LandscapeResult:
    """What one normalisation's figures show: minima per activation and the files written."""

    normalization: str
    minima_1d: dict[str, int]
    minima_2d: dict[str, int]
    files: tuple[str, ...]


def make_landscape_figures(
    output_dir: str,
    seed: int = 0,
    grid: int = 401,
    betas: Sequence[float] = DEFAULT_BETAS,
    input_dim: int = 10,
    sweep_range: float = 5.0,
    weight_norm_gain: float = 1.0,
) -> list[LandscapeResult]:
    """Writes the figures and `landscape_minima.json` into `output_dir`; returns the minima counts.

    Files: landscape_1d_weightnorm.png, landscape_2d_weightnorm.png, landscape_1d_layernorm.png,
    landscape_2d_layernorm.png (Figs. 2 and 3 per normalisation) and landscape_minima.json (the settings and,
    per normalisation, ``local_minima_1d`` / ``local_minima_2d`` per activation label). Arguments are validated
    before anything is computed; every file is written under a temporary name and then renamed.
    """
    specs = activation_specs(betas)
    values = sweep_grid(grid, sweep_range)
    networks = [
        random_network(input_dim, normalization, seed, weight_norm_gain=weight_norm_gain)
        for normalization in NORMALIZATIONS
    ]
    os.makedirs(output_dir, exist_ok=True)
    results = []
    for network in networks:
        description = _network_description(network, weight_norm_gain)
        curves = {spec.label: loss_curve(network, values, spec.spec) for spec in specs}
        minima_1d = {label: count_local_minima(c, relative_tolerance(c)) for label, c in curves.items()}
        surfaces = {spec.label: loss_surface(network, values, spec.spec) for spec in specs}
        minima_2d = {label: count_local_minima_2d(s, relative_tolerance(s)) for label, s in surfaces.items()}
        suffix = network.normalization.replace("_", "")
        files = []
        for name, figure in (
            (f"landscape_1d_{suffix}.png", plot_curves(values, curves, minima_1d, description)),
            (f"landscape_2d_{suffix}.png", plot_surfaces(values, surfaces, minima_2d, description)),
        ):
            path = os.path.join(output_dir, name)
            _save_png(figure, path)
            files.append(path)
        results.append(LandscapeResult(network.normalization, minima_1d, minima_2d, tuple(files)))
    summary = {
        "settings": {
            "seed": seed,
            "grid": grid,
            "betas": list(betas),
            "input_dim": input_dim,
            "sweep_range": sweep_range,
            "weight_norm_gain": weight_norm_gain,
            "hidden_units": list(HIDDEN_UNITS),
            "clip": CLIP,
            "loss": "sigmoid cross-entropy against label 1",
        },
        **{r.normalization: {"local_minima_1d": r.minima_1d, "local_minima_2d": r.minima_2d} for r in results},
    }
    summary_path = os.path.join(output_dir, MINIMA_FILE)
    atomic.write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return results


def minima_table(results: Sequence[LandscapeResult]) -> str:
    """Markdown table: local minima per activation along the 1-D curve and on the 2-D surface."""
    labels = list(results[0].minima_1d)
    header = "| activation | " + " | ".join(
        f"{r.normalization} 1-D | {r.normalization} 2-D" for r in results
    ) + " |"
    rule = "|---|" + "---|---|" * len(results)
    rows = [
        f"| {label} | " + " | ".join(f"{r.minima_1d[label]} | {r.minima_2d[label]}" for r in results) + " |"
        for label in labels
    ]
    return "\n".join([header, rule, *rows])
