"""Click-log TSV -> time-ordered TFRecord shards, features.json, summary.json and dead letters.

    python -m pipelines.preprocess --input='data/criteo_sample/*.tsv' --output_dir=/tmp/criteo_tfrecords
    python -m pipelines.preprocess --input='day_*.gz' --output_dir=out --vocab_mode=hash --hash_buckets=1000003
    python -m pipelines.preprocess --input=day_1.gz --output_dir=out1 --vocab_dir=out0   # day-0 ids
    python -m pipelines.preprocess --input='day_*.gz' --output_dir=out --vocab_rows=8000  # vocabulary from ts < 8000

Any argument that is not a flag below is a Beam pipeline option (`--runner=DataflowRunner --project=...`,
`--direct_num_workers=2`, ...); see docs/preprocess.md.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS

flags.DEFINE_string("input", None, "File or glob of Criteo-format TSV files, plain or .gz (sorted name = time order).")
flags.DEFINE_string("output_dir", None, "Directory for part-*.tfrecord.gz, features.json, summary.json, bad_rows-*.")
flags.DEFINE_enum("vocab_mode", "frequency", ["frequency", "hash"], "How categorical values become ids.")
flags.DEFINE_integer("min_count", 1, "frequency mode: keep values seen at least this often.")
flags.DEFINE_integer("max_vocab_size", 0, "frequency mode: cap on each feature's vocab size incl. id 0 (0: none).")
flags.DEFINE_integer("hash_buckets", None, "hash mode: vocab size N of every feature (ids 1..N-1, 0 = missing).")
flags.DEFINE_string("vocab_dir", None, "Reuse an earlier run's vocabulary (its output_dir or vocab/): stable ids.")
flags.DEFINE_integer("vocab_rows", 0, "frequency mode: count the vocabulary over the lines with ts < N only and map "
                     "values unseen there to id 0 (0: every line). Costs one extra newline-counting read of the input.")
flags.DEFINE_integer("rows_per_shard", 100_000, "Input lines per output shard (shards never span input files).")
flags.DEFINE_bool("overwrite", False, "Replace the outputs of an earlier run in --output_dir.")
flags.DEFINE_float("progress_every_seconds", 10.0, "Seconds between two progress lines of a pass over the input.",
                   lower_bound=0.0)
flags.mark_flags_as_required(["input", "output_dir"])


def main(argv: list[str]) -> None:
    from recsys import console

    # Beam's INFO lines (bundles, state cache, every type hint it cannot use) and TensorFlow's are noise here.
    console.configure(logging.get_verbosity())
    from pipelines.preprocess import PreprocessConfig, run

    try:
        config = PreprocessConfig(
            input_pattern=FLAGS.input,
            output_dir=FLAGS.output_dir,
            vocab_mode=FLAGS.vocab_mode,
            min_count=FLAGS.min_count,
            max_vocab_size=FLAGS.max_vocab_size,
            hash_buckets=FLAGS.hash_buckets,
            vocab_dir=FLAGS.vocab_dir,
            rows_per_shard=FLAGS.rows_per_shard,
            vocab_rows=FLAGS.vocab_rows,
        )
        summary = run(config, argv[1:], overwrite=FLAGS.overwrite, progress_every_seconds=FLAGS.progress_every_seconds)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        sys.exit(f"preprocess: error: {e}")
    except Exception as e:  # the pipeline itself failed: keep the traceback in the log, end with one line
        logging.exception("preprocessing pipeline failed")
        sys.exit(f"preprocess: pipeline failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    print(
        f"preprocess: {summary['rows_in']} rows in, {summary['rows_ok']} written, {summary['rows_bad']} bad "
        f"{ {k: v for k, v in summary['bad_reasons'].items() if v} } -> {FLAGS.output_dir}"
    )


if __name__ == "__main__":
    from pipelines import parse_known_flags

    app.run(main, flags_parser=parse_known_flags)
