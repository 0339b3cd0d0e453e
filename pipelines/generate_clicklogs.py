"""Writes a synthetic Criteo-format click log drawn from a hidden ground-truth model.

    python -m pipelines.generate_clicklogs --output=/tmp/clicks.tsv.gz --rows=1000000 --seed=0 --days=3
    python -m pipelines.generate_clicklogs --output=/tmp/dirty.tsv --rows=10000 --seed=1 --malformed_fraction=0.01

Same flags -> byte-identical file. The model (Zipf–Mandelbrot categoricals, heavy-tailed counts, nonlinear
labels with slow drift, CTR calibrated to --ctr) is described in recsys/data/synthetic.py and docs/data.md.
The file is written to a temporary name and renamed when complete, so a failed run never leaves a partial log.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from recsys import console

FLAGS = flags.FLAGS

flags.DEFINE_string("output", None, "Output file; must end in .tsv or .tsv.gz (gzip-compressed).")
flags.DEFINE_integer("rows", None, "Number of lines to write (malformed lines included).")
flags.DEFINE_integer("seed", None, "Seed of the hidden model and of every draw.")
flags.DEFINE_integer("days", 1, "Days the log spans: labels drift and the long tail of values rotates per day.")
flags.DEFINE_float("ctr", 0.03, "Target click-through rate, in (0, 1).")
flags.DEFINE_float("malformed_fraction", 0.0, "Share of lines replaced by malformed ones of every bad kind, in [0, 1).")
flags.mark_flags_as_required(["output", "rows", "seed"])


def main(argv: list[str]) -> None:
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    if len(argv) > 1:
        sys.exit(f"generate_clicklogs: error: unexpected arguments {argv[1:]}")
    from recsys.data.synthetic import GeneratorConfig, write_clicklogs

    try:
        config = GeneratorConfig(
            rows=FLAGS.rows,
            seed=FLAGS.seed,
            days=FLAGS.days,
            ctr=FLAGS.ctr,
            malformed_fraction=FLAGS.malformed_fraction,
        )
        summary = write_clicklogs(FLAGS.output, config,
                                  progress=console.Progress("generate_clicklogs: writing rows", config.rows, "rows"))
    except (ValueError, OSError) as e:
        sys.exit(f"generate_clicklogs: error: {e}")
    bad = {k: v for k, v in summary.malformed.items() if v}
    logging.info("bias %.4f", summary.bias)
    print(
        f"generate_clicklogs: {summary.rows} rows ({summary.valid_rows} valid, CTR {summary.ctr:.4f}; "
        f"malformed {bad or 0}) in {summary.seconds:.1f} s ({summary.rows / summary.seconds:,.0f} rows/s) "
        f"-> {FLAGS.output}"
    )


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
