"""Plots the smooth activations and their gradients (the paper's Fig. 1) to a PNG.

    python -m pipelines.plot_activations --output=docs/figures/activations.png

Softplus, Swish, GELU and SmeLU for several β, and generalized-SmeLU examples, each with its gradient, ReLU
dashed for reference (Shamir & Lin 2022, arXiv:2202.06499).
"""
from __future__ import annotations

import sys

from absl import app, flags, logging

import recsys  # noqa: F401  (selects tf-keras before TensorFlow is imported)
from recsys import console

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "docs/figures/activations.png", "Where to write the PNG (folders are created).")
flags.DEFINE_float("x_min", -4.0, "Left end of the x axis.")
flags.DEFINE_float("x_max", 4.0, "Right end of the x axis.")
flags.DEFINE_integer("dpi", 150, "Resolution of the PNG.")


def main(argv: list[str]) -> int:
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.x_min < FLAGS.x_max:  # checked before the TensorFlow import, so a typo fails in a blink
        print(f"error: --x_min must be < --x_max. Received: x_min={FLAGS.x_min}, x_max={FLAGS.x_max}", file=sys.stderr)
        return 1
    from recsys.plots.activations import plot_activations

    try:
        path = plot_activations(FLAGS.output, x_range=(FLAGS.x_min, FLAGS.x_max), dpi=FLAGS.dpi)
    except (ValueError, OSError) as error:
        print(f"error: plot_activations: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
