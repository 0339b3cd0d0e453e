r"""Reproducibility study: trains a grid of activations × noise sources (R replicas each), measures PD and accuracy.

    python -m pipelines.study --config=configs/study_smoke.py --workdir=/tmp/study_smoke
    python -m pipelines.study --config=configs/study_criteo_sample.py --workdir=runs/study_criteo_sample
    python -m pipelines.study --config=configs/study_synthetic.py --workdir=runs/study_synthetic \
        [--config.grid.replicas=4] [--config.grid.noise="('shuffle',)"] [--config.train.model.normalization=weight]

Rerun the same command to resume: finished cells are skipped, an interrupted one resumes from its checkpoint.
Writes <workdir>/results.json, results.md and pd_vs_accuracy.png (docs/study.md).

Exit status: 0 done; 1 bad config or input, or a failed data job (a one-line message). A cell whose loss became
NaN/Inf is recorded as failed in results.json and the study goes on.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import recsys  # noqa: F401  (must precede TensorFlow)
from recsys import console

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Study config, e.g. configs/study_smoke.py.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder; an existing one is resumed.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    console.configure(logging.get_verbosity())  # before TensorFlow/Beam are imported; --verbosity=1: all logs
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import tensorflow as tf

    from recsys.study.data import StudyDataError
    from recsys.study.runner import run_study
    from recsys.training.loop import TrainingError

    try:
        results = run_study(_CONFIG.value, _WORKDIR.value)
    except (ValueError, FileNotFoundError, FileExistsError, StudyDataError, TrainingError) as e:
        _fail(str(e))
    except tf.errors.OpError as e:
        _fail(f"{type(e).__name__}: {e.message.splitlines()[0] if e.message else e}")
    from recsys.study.report import console_summary

    print(console_summary(results), end="")
    run = results["run"]
    failed = [c["cell"] for c in results["cells"] if c.get("status") != "ok"]
    logging.info("Study done in %.0f s (%d cells trained, %d reused)%s. Results in %s/results.{json,md}",
                 run["wall_seconds"], run["cells_trained"], run["cells_skipped"],
                 f"; FAILED cells: {failed}" if failed else "", _WORKDIR.value)


def _fail(message: str) -> None:
    print(f"pipelines.study: error: {' | '.join(message.splitlines())}", file=sys.stderr)
    sys.exit(1)

if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
