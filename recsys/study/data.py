"""The study's data: optional generation and preprocessing, the train/held-out split, and held-out scoring.

`prepare_data(config.data, workdir)` resolves where the trainer reads from and what the models are scored on:

- `data.generate_rows > 0`: `python -m pipelines.generate_clicklogs` writes `<workdir>/raw/clicks.tsv.gz`
  (skipped when present), which is then preprocessed as below;
- `data.raw_tsv`: a Criteo-format TSV (glob); with `data.raw_max_rows > 0` only its first rows are used
  (copied to `<workdir>/raw/head.tsv`);
- a raw log is preprocessed once by `python -m pipelines.preprocess` into `<workdir>/data` (skipped when its
  `summary.json` exists). The shards are in time order; the last `data.eval_shards` are held out for scoring,
  the others are the training stream;
- otherwise `data.train` (TFRecord glob) and `data.eval` (held-out TFRecord glob) are used as given.

The data jobs run as subprocesses through their command-line contracts: Beam and the generator keep their
memory and threads in their own process, and their outputs are exactly what a user running them gets.

`EvalSet` reads the held-out records once (serialized, in file order) and scores any SavedModel on them
with `recsys.serving.scorer` (the serving contract, plain TensorFlow).
"""
from __future__ import annotations

import dataclasses
import gc
import glob
import hashlib
import os
import subprocess
import sys
from typing import Any

import numpy as np

from recsys.data.features import FeatureSet, default_features_path

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class StudyDataError(RuntimeError):
    """A data preparation step failed; the message names the command and its last output lines."""


@dataclasses.dataclass(frozen=True)
class StudyData:
    """Where the trainer reads (`train`: comma-separated files or a glob) and where models are scored (`eval_files`)."""

    train: str
    eval_files: tuple[str, ...]
    features_path: str


def _resolve(path: str) -> str:
    """`path` as given, or relative to the repository root when it does not exist from the working directory."""
    if not path or os.path.isabs(path) or glob.glob(path):
        return path
    candidate = os.path.join(REPO_ROOT, path)
    return candidate if glob.glob(candidate) else path


def _run_job(args: list[str], what: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise StudyDataError(f"{what} failed (exit {result.returncode}): python -m {' '.join(args)}: "
                             f"{lines[-1] if lines else 'no output'}")


def _head(source_pattern: str, rows: int, output: str) -> None:
    files = sorted(glob.glob(source_pattern))
    if not files:
        raise FileNotFoundError(f"`data.raw_tsv` matches no files: {source_pattern!r}")
    if any(f.endswith(".gz") for f in files):
        raise ValueError(f"`data.raw_max_rows` needs plain .tsv input (got {files}); unzip it or set raw_max_rows=0")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    tmp = f"{output}.tmp-{os.getpid()}"
    written = 0
    with open(tmp, "w") as out:
        for path in files:
            with open(path) as f:
                for line in f:
                    if written >= rows:
                        break
                    out.write(line)
                    written += 1
    os.replace(tmp, output)


def _shards(data_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(data_dir, "part-*.tfrecord.gz")))


def prepare_data(data: Any, workdir: str) -> StudyData:
    """Generates/preprocesses the data when configured (once) and returns the train/held-out split.

    Raises:
      ValueError: neither a raw log nor train/eval globs are configured, or too few shards to hold some out.
      FileNotFoundError: a glob matches nothing.
      StudyDataError: the generator or the preprocessing job failed.
    """
    raw = ""
    if int(data.generate_rows) > 0:
        raw = os.path.join(workdir, "raw", "clicks.tsv.gz")
        if not os.path.exists(raw):
            os.makedirs(os.path.dirname(raw), exist_ok=True)
            _run_job(["pipelines.generate_clicklogs", f"--output={raw}", f"--rows={int(data.generate_rows)}",
                      f"--seed={int(data.generate_seed)}", f"--ctr={float(data.generate_ctr)}",
                      f"--days={int(data.generate_days)}"], "generating the synthetic click log")
    elif data.raw_tsv:
        raw = _resolve(data.raw_tsv)
        if not glob.glob(raw):
            raise FileNotFoundError(f"`data.raw_tsv` matches no files: {data.raw_tsv!r}")
        if int(data.raw_max_rows) > 0:
            head = os.path.join(workdir, "raw", "head.tsv")
            if not os.path.exists(head):
                _head(raw, int(data.raw_max_rows), head)
            raw = head
    if raw:
        data_dir = os.path.join(workdir, "data")
        if not os.path.exists(os.path.join(data_dir, "summary.json")):
            args = ["pipelines.preprocess", f"--input={raw}", f"--output_dir={data_dir}",
                    f"--rows_per_shard={int(data.rows_per_shard)}", f"--min_count={int(data.min_count)}"]
            if os.path.exists(data_dir):
                args.append("--overwrite")  # an interrupted earlier attempt left partial outputs
            _run_job(args, "preprocessing")
        shards = _shards(data_dir)
        held_out = int(data.eval_shards)
        if held_out < 1 or len(shards) <= held_out:
            raise ValueError(
                f"`data.eval_shards` must be >= 1 and leave at least one training shard; the preprocessed log has "
                f"{len(shards)} shard(s) (data.rows_per_shard={data.rows_per_shard}). Received: eval_shards={held_out}"
            )
        return StudyData(",".join(shards[:-held_out]), tuple(shards[-held_out:]),
                         os.path.join(data_dir, "features.json"))
    if not data.train or not data.eval:
        raise ValueError(
            "Configure the study's data: `data.raw_tsv` (a TSV log to preprocess), `data.generate_rows` (a synthetic "
            "log), or both `data.train` and `data.eval` (TFRecord globs of the training stream and held-out data). "
            f"Received: train={data.train!r}, eval={data.eval!r}"
        )
    from recsys.data.input import list_files

    list_files(data.train)  # fails early naming the glob
    eval_files = tuple(list_files(data.eval))
    features = data.features or default_features_path(data.train)
    overlap = set(eval_files) & set(list_files(data.train))
    if overlap:
        raise ValueError(f"`data.eval` must be held out from `data.train`; both match {sorted(overlap)[:3]}")
    return StudyData(data.train, eval_files, features)


class EvalSet:
    """Held-out examples (serialized tf.Examples and labels), read once, scored by any number of SavedModels."""

    def __init__(self, files: tuple[str, ...], features_path: str, max_examples: int = 0, batch_size: int = 8192):
        import tensorflow as tf

        from recsys.serving.scorer import serialized_batches

        features = FeatureSet.load(features_path)
        label = features.label.name
        spec = {label: features.parse_spec()[label]}
        self.batches: list[Any] = []
        labels = []
        for serialized in serialized_batches(files, batch_size, max_examples):
            self.batches.append(serialized)
            labels.append(tf.io.parse_example(serialized, spec)[label].numpy().reshape(-1))
        if not labels:
            raise ValueError(f"The held-out data {list(files)} holds no examples.")
        self.labels = np.concatenate(labels).astype(np.float64)
        self.files = tuple(files)
        self.features = features
        digest = hashlib.sha1(self.labels.tobytes())
        digest.update("\n".join(os.path.abspath(f) for f in files).encode())
        self.fingerprint = f"{self.labels.size}:{digest.hexdigest()[:16]}"

    @property
    def size(self) -> int:
        return int(self.labels.size)

    def categorical_ids(self, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The categorical ids of every held-out example, in scoring order: {feature: int64 [T]}.

        `names`: the features to parse (default: every categorical feature of features.json). A missing value
        reads as id 0, as the trainer and the serving signature read it.
        """
        import tensorflow as tf

        names = tuple(f.name for f in self.features.categorical) if names is None else tuple(names)
        for name in names:
            if self.features[name].role != "categorical":
                raise ValueError(
                    f"`names` must be categorical features; {name!r} has role {self.features[name].role!r}")
        spec = {name: tf.io.FixedLenFeature([], tf.int64, default_value=0) for name in names}
        parsed: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for serialized in self.batches:
            batch = tf.io.parse_example(serialized, spec)
            for name in names:
                parsed[name].append(batch[name].numpy().reshape(-1))
        return {name: np.concatenate(values).astype(np.int64) for name, values in parsed.items()}

    def score(self, saved_model: str) -> np.ndarray:
        """The model's probabilities for every held-out example, in file order (float64).

        Raises:
          SavedModelError (a ValueError): the folder breaks the serving contract (`recsys.serving.scorer`).
        """
        from recsys.serving.scorer import SavedModelScorer

        scorer = SavedModelScorer(saved_model)
        out = [np.asarray(scorer(batch), np.float64) for batch in self.batches]
        del scorer  # the loaded model's memory goes before the next model loads
        gc.collect()
        return np.concatenate(out)
