"""Compares the synthetic click-log generator with a real Criteo log: the table in docs/data.md.

    python -m pipelines.data_stats                      # bundled 10k real rows vs 10k generated (seed 0)
    python -m pipelines.data_stats --synthetic=/tmp/clicks.tsv.gz --rows=100000 --output=/tmp/stats.md

Without --synthetic, a log of --rows rows is generated (seed --seed, CTR --ctr) into a temporary file. Both logs
are cut to --rows lines, because cardinalities and tail shares grow with the number of rows.
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags, logging

from recsys import console

FLAGS = flags.FLAGS

_SAMPLE = os.path.join(os.path.dirname(__file__), "..", "data", "criteo_sample", "day_0_head10k.tsv")

flags.DEFINE_string("real", os.path.normpath(_SAMPLE), "Real Criteo-format log (plain or .gz).")
flags.DEFINE_string("synthetic", None, "Synthetic log to compare; generated when not given.")
flags.DEFINE_integer("rows", 10_000, "Lines read from each log (and generated when --synthetic is not given).")
flags.DEFINE_integer("seed", 0, "Generator seed when generating.")
flags.DEFINE_float("ctr", 0.0265, "Generator CTR when generating (the bundled sample's CTR is 0.0265).")
flags.DEFINE_string("output", None, "Write the Markdown table here instead of printing it.")


def main(argv: list[str]) -> None:
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    if len(argv) > 1:
        sys.exit(f"data_stats: error: unexpected arguments {argv[1:]}")
    from recsys.data import stats, synthetic

    try:
        if FLAGS.rows < 1:
            raise ValueError(f"`rows` must be >= 1. Received: rows={FLAGS.rows}")
        with tempfile.TemporaryDirectory() as tmp:
            synthetic_path = FLAGS.synthetic
            if synthetic_path is None:
                synthetic_path = os.path.join(tmp, "synthetic.tsv")
                config = synthetic.GeneratorConfig(rows=FLAGS.rows, seed=FLAGS.seed, ctr=FLAGS.ctr)
                synthetic.write_clicklogs(synthetic_path, config)
            logs = [stats.log_stats(stats.read_lines(p, FLAGS.rows)) for p in (FLAGS.real, synthetic_path)]
        table = stats.comparison_table(logs, ["real", "synthetic"])
        if FLAGS.output:
            with open(FLAGS.output, "w") as f:
                f.write(table)
        else:
            print(table, end="")
    except (ValueError, OSError) as e:
        sys.exit(f"data_stats: error: {e}")


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
