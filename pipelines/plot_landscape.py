"""Draws the paper's Figs. 2-3: loss landscapes of random clipped networks, ReLU against SmeLU.

    python -m pipelines.plot_landscape --output_dir=docs/figures

Writes landscape_1d_weightnorm.png, landscape_1d_layernorm.png, landscape_2d_weightnorm.png,
landscape_2d_layernorm.png and landscape_minima.json (local-minimum counts per activation) into --output_dir, and
prints the counts as a Markdown table. About 65 s of CPU at the default --grid=401 (docs/performance.md).
See docs/landscape.md.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging

import recsys  # noqa: F401  (must precede TensorFlow)
from recsys import console

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for the PNGs and landscape_minima.json.", required=True)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random weights and of the fixed base input.")
_GRID = flags.DEFINE_integer("grid", 401, "Points per swept input: the 1-D curves have GRID points, the surfaces "
                             "GRID x GRID (>= 2).")
_BETAS = flags.DEFINE_list("betas", ["0.1", "0.5", "1", "2"], "SmeLU half-widths β (> 0), comma-separated.")
_INPUT_DIM = flags.DEFINE_integer("input_dim", 10, "Number of network inputs (>= 2); x[0] and x[1] are swept.")
_SWEEP_RANGE = flags.DEFINE_float("sweep_range", 5.0, "Swept inputs cover [-sweep_range, sweep_range].")
_WEIGHT_NORM_GAIN = flags.DEFINE_float("weight_norm_gain", 1.0, "Fixed norm v of each weight-normalised row.")


def _parse_betas(raw: list[str]) -> list[float]:
    betas = []
    for text in raw:
        try:
            betas.append(float(text))
        except ValueError:
            raise ValueError(f"--betas must be numbers. Received: {text!r}") from None
    if not betas:
        raise ValueError("--betas must list at least one β.")
    return betas


def main(argv: list[str]) -> None:
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from recsys.plots import landscape

    try:
        results = landscape.make_landscape_figures(
            output_dir=_OUTPUT_DIR.value,
            seed=_SEED.value,
            grid=_GRID.value,
            betas=_parse_betas(_BETAS.value),
            input_dim=_INPUT_DIM.value,
            sweep_range=_SWEEP_RANGE.value,
            weight_norm_gain=_WEIGHT_NORM_GAIN.value,
        )
    except (ValueError, OSError) as error:
        print(f"plot_landscape: error: {error}", file=sys.stderr)
        sys.exit(2)
    for result in results:
        for path in result.files:
            logging.info("Wrote %s", path)
    print(landscape.minima_table(results))


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
