r"""Trains a CTR model online in one pass with progressive validation; rerun the same command to resume.

    python -m pipelines.train --config=configs/criteo_toy.py --workdir=/tmp/ctr_toy \
        [--config.data.train='demo_out/data/part-*.tfrecord.gz'] [--config.model.activation=smelu:beta=1]

Writes <workdir>/config.json, checkpoints/, tb/, metrics.json and saved_model/ (docs/training.md).

With `--config.dry_run=True` it only prints the parameters per embedding table and the bytes (weights +
optimizer slots) per ps task the configured sharding gives, and exits 0 (no data read, nothing trained, no
--workdir needed; `recsys.training.dry_run`).

Exit status: 0 done (also when the workdir had already finished), 1 bad config or input (one-line message),
2 the loss became NaN/Inf (the message names the step; the last good checkpoint is kept).
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import recsys  # noqa: F401  (must precede TensorFlow)
from recsys import console

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/criteo_toy.py.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder; an existing one is resumed (not needed for a dry run).")
flags.mark_flags_as_required(["config"])

EXIT_BAD_INPUT = 1
EXIT_NON_FINITE_LOSS = 2


def main(argv: list[str]) -> None:
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _CONFIG.value.dry_run:
        from recsys.training.dry_run import print_dry_run

        try:
            print_dry_run(_CONFIG.value)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e), EXIT_BAD_INPUT)
        return
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required (only a --config.dry_run=True run needs none)")
    import tensorflow as tf

    from recsys.training.loop import NonFiniteLossError, TrainingError, train

    try:
        outputs = train(_CONFIG.value, _WORKDIR.value)
    except NonFiniteLossError as e:
        _fail(str(e), EXIT_NON_FINITE_LOSS)
    except (TrainingError, ValueError, FileNotFoundError, FileExistsError) as e:
        _fail(str(e), EXIT_BAD_INPUT)
    except tf.errors.DataLossError as e:
        # A truncated or corrupt shard surfaces deep in tf.data without its name: find it (one read per file).
        _fail(_name_unreadable_file(e), EXIT_BAD_INPUT)
    except tf.errors.OpError as e:
        # Corrupt or unreadable input surfaces as an op error deep in tf.data: its first line says what and where.
        _fail(f"{type(e).__name__}: {e.message.splitlines()[0] if e.message else e}", EXIT_BAD_INPUT)
    metrics = outputs.metrics
    logging.info(
        "Done: %d examples, progressive AUC %s, logloss %s, calibration %s, %.0f examples/s. Outputs in %s",
        metrics["examples"], metrics.get("progressive_auc"), metrics.get("progressive_logloss"),
        metrics.get("progressive_calibration"), metrics.get("examples_per_sec") or 0.0, outputs.workdir,
    )


def _name_unreadable_file(error) -> str:
    """The one line for a DataLossError from tf.data: the file that cannot be read and why."""
    from recsys.data.input import find_unreadable_file, list_files

    first = error.message.splitlines()[0] if error.message else type(error).__name__
    logging.info("Input error without a file name (%s); reading each input file to find it.", first)
    found = find_unreadable_file(list_files(_CONFIG.value.data.train))
    if found is None:
        return f"{type(error).__name__}: {first}"
    path, detail = found
    return (f"cannot read input file {path}: {detail} (truncated or corrupt: rewrite it, e.g. rerun "
            "pipelines.preprocess)")


def _fail(message: str, status: int) -> None:
    print(f"pipelines.train: error: {message}", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
