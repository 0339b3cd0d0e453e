"""Writes a synthetic Criteo-format click log drawn from a hidden ground-truth model.

    python -m pipelines.generate_clicklogs --output=/tmp/clicks.tsv.gz --rows=1000000 --seed=0 --days=3
    python -m pipelines.generate_clicklogs --output=/tmp/dirty.tsv --rows=10000 --seed=1 --malformed_fraction=0.01
    python -m pipelines.generate_clicklogs --output=/tmp/deep.tsv.gz --rows=1100000 --seed=0 --ctr=0.1 \
        --ground_truth=deep --truth_features=C1,C2,C3,C4,C5

Same flags -> byte-identical file. The model (Zipf–Mandelbrot categoricals, heavy-tailed counts, nonlinear
labels with slow drift, CTR calibrated to --ctr; an additive or a deep ground truth) is described in
recsys/data/synthetic.py and docs/data.md. The file is written to a temporary name and renamed when complete, so a
failed run never leaves a partial log. A JSON summary (rows, CTR, bias, the oracle AUC and log loss of the true
probabilities) goes to --summary_output, by default `<output>.summary.json`.
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
flags.DEFINE_enum(
    "ground_truth",
    "additive",
    ["additive", "deep"],
    "Label model: per-value effects with 12 pairwise interactions, or a random deep network over "
    "drifting per-value latent vectors.",
)
flags.DEFINE_list("truth_features", [], "Columns the deep ground truth reads (e.g. C1,C2,C3,C4,C5; empty = all 39).")
flags.DEFINE_string(
    "summary_output", None, "JSON summary with the oracle AUC; default <output>.summary.json, '' = none."
)
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
            ground_truth=FLAGS.ground_truth,
            truth_features=tuple(FLAGS.truth_features),
        )
        summary_output = f"{FLAGS.output}.summary.json" if FLAGS.summary_output is None else FLAGS.summary_output
        summary = write_clicklogs(FLAGS.output, config, summary_path=summary_output or None,
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
    oracle_auc = "undefined (one class)" if summary.oracle_auc is None else f"{summary.oracle_auc:.4f}"
    oracle_logloss = "undefined" if summary.oracle_logloss is None else f"{summary.oracle_logloss:.4f}"
    print(
        f"generate_clicklogs: {summary.ground_truth} ground truth; oracle AUC {oracle_auc}, oracle log loss "
        f"{oracle_logloss} over {summary.oracle_rows} rows" + (f" -> {summary_output}" if summary_output else "")
    )


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
