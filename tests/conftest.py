"""Shared test set-up: recsys is imported first so TF_USE_LEGACY_KERAS is set before TensorFlow."""
import os
import pathlib

import recsys  # noqa: F401  (must precede any TensorFlow import)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CRITEO_SAMPLE = REPO_ROOT / "data" / "criteo_sample" / "day_0_head10k.tsv"
