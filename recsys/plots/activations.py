"""Figure of the smooth activations and their gradients (Shamir & Lin 2022, arXiv:2202.06499, Fig. 1).

Curves are computed with the layers of `recsys.layers.activations` and gradients with `tf.GradientTape`, so the
figure also shows what the library computes (including SmeLU's custom hard-sigmoid gradient).
"""
from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from recsys.layers import activations

# (panel title, [(legend label, spec), ...]): the paper's families for several β, then gSmeLU examples.
PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Softplus", tuple((f"β={b}", f"softplus:beta={b}") for b in (0.5, 1, 2, 4))),
    ("Swish", tuple((f"β={b}", f"swish:beta={b}") for b in (0.5, 1, 2, 4))),
    ("GELU", tuple((f"β={b}", f"gelu:beta={b}") for b in (0.5, 1, 2, 4))),
    ("SmeLU", tuple((f"β={b}", f"smelu:beta={b}") for b in (0.5, 1, 2, 3))),
    (
        "Generalized SmeLU",
        (
            ("SmeLU β=1 (α=β=1, g−=0, g+=1)", "gsmelu"),
            ("leaky: g−=0.1, t=−0.1", "gsmelu:g_minus=0.1,t=-0.1"),
            ("asymmetric: α=0.5, β=2", "gsmelu:alpha=0.5,beta=2"),
            ("g−=−0.2, g+=1.2, t=−0.3", "gsmelu:alpha=1.5,beta=1,g_minus=-0.2,g_plus=1.2,t=-0.3"),
        ),
    ),
)


def curves(spec: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and derivative of the activation `spec` (anything `activations.get` accepts) at the points `x`."""
    layer = activations.get(spec)
    inputs = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        values = layer(inputs)
    return values.numpy(), tape.gradient(values, inputs).numpy()


def plot_activations(
    output: str | pathlib.Path,
    x_range: tuple[float, float] = (-4.0, 4.0),
    panels: Sequence[tuple[str, Sequence[tuple[str, str]]]] = PANELS,
    dpi: int = 150,
    points: int = 801,
) -> pathlib.Path:
    """Draws each panel's activations (top row) and gradients (bottom row) with ReLU dashed; writes a PNG.

    Raises:
        ValueError: an empty or reversed `x_range`, `dpi` or `points` not positive, or a bad activation spec.
    """
    # Figure + Agg canvas instead of pyplot: no global backend state, safe in libraries and tests.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    low, high = (float(v) for v in x_range)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"`x_range` must be two finite numbers with low < high. Received: x_range={x_range!r}")
    if dpi <= 0 or points < 2:
        raise ValueError(f"`dpi` must be > 0 and `points` >= 2. Received: dpi={dpi!r}, points={points!r}")
    x = np.linspace(low, high, points, dtype=np.float32)
    relu_value, relu_grad = curves("relu", x)

    figure = Figure(figsize=(4.0 * len(panels), 7.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, len(panels), squeeze=False)
    for column, (title, entries) in enumerate(panels):
        top, bottom = axes[0, column], axes[1, column]
        top.plot(x, relu_value, color="0.6", linestyle="--", linewidth=1.0, label="ReLU")
        bottom.plot(x, relu_grad, color="0.6", linestyle="--", linewidth=1.0, label="ReLU")
        for label, spec in entries:
            value, grad = curves(spec, x)
            (line,) = top.plot(x, value, linewidth=1.5, label=label)
            bottom.plot(x, grad, linewidth=1.5, color=line.get_color(), label=label)
        top.set_title(title)
        top.set_ylim(low * 0.15 - 0.5, high + 0.2)
        bottom.set_ylim(-0.35, 1.35)
        bottom.set_xlabel("x")
        for axis in (top, bottom):
            axis.grid(True, linewidth=0.4, alpha=0.5)
            axis.axhline(0.0, color="0.3", linewidth=0.5)
            axis.axvline(0.0, color="0.3", linewidth=0.5)
        top.legend(fontsize=8, loc="upper left")
    axes[0, 0].set_ylabel("activation f(x)")
    axes[1, 0].set_ylabel("gradient f'(x)")
    figure.suptitle("Smooth activations and their gradients (after Shamir & Lin 2022, Fig. 1)")

    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name and rename, so an interrupted run never leaves a truncated PNG behind.
    partial = output.with_name(output.name + ".partial")
    figure.savefig(partial, dpi=dpi, format="png")
    partial.replace(output)
    return output
