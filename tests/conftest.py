"""Shared test set-up: recsys is imported first so TF_USE_LEGACY_KERAS is set before TensorFlow."""
import os
import pathlib

import recsys  # noqa: F401  (must precede any TensorFlow import)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CRITEO_SAMPLE = REPO_ROOT / "data" / "criteo_sample" / "day_0_head10k.tsv"

# The longest test files, started first: with `make test`'s two pytest-xdist workers (`--dist loadfile
# --no-loadscope-reorder`: whole files, in collection order) neither worker then ends the run alone on one of them.
# Measured per file in docs/performance.md, "Test suite"; the order changes nothing else.
RUN_FIRST = (
    "tests/pipelines/test_study.py",
    "tests/training/test_resume.py",
    "tests/training/test_distributed.py",
    "tests/training/test_codistill.py",
    "tests/pipelines/test_console.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return RUN_FIRST.index(path) if path in RUN_FIRST else len(RUN_FIRST)

    items.sort(key=rank)  # stable: the other files keep their order
