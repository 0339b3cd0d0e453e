"""The study's data: optional generation and preprocessing, the train/held-out split, and held-out scoring.

`prepare_data(config.data, workdir)` resolves where the trainer reads from and what the models are scored on:

- `data.generate_rows > 0`: the synthetic generator (`recsys.data.synthetic.write_clicklogs`) writes
  `<workdir>/raw/clicks.tsv.gz` (skipped when present) and its summary with the oracle AUC,
  `<workdir>/raw/clicks.tsv.gz.summary.json`; the log is then preprocessed as below;
- `data.raw_tsv`: a Criteo-format TSV (glob); with `data.raw_max_rows > 0` only its first rows are used
  (copied to `<workdir>/raw/head.tsv`);
- a raw log is preprocessed once by the Beam job (`python -m pipelines.preprocess`, in its own process so Beam
  keeps its memory and threads there; its outputs are exactly what a user running it gets) into
  `<workdir>/data` (skipped when its `summary.json` exists). The shards are in time order; the last
  `data.eval_shards` are held out for scoring, the others are the training stream. With
  `data.leak_free_vocabulary` (default) the vocabulary is counted over the training rows only
  (`--vocab_rows`, the rows before the first held-out shard), so a value seen only in held-out rows maps to the
  trained out-of-vocabulary id 0 instead of an embedding row no model ever trained;
- otherwise `data.train` (TFRecord glob) and `data.eval` (held-out TFRecord glob) are used as given.

Paths in the config are relative to the working directory, as for every job.

`EvalSet` reads the held-out records once (serialized, in file order) and scores any SavedModel on them
with `recsys.serving.scorer` (the serving contract, plain TensorFlow).

Long steps log progress with a total and an ETA (`recsys.console.Progress`, at most every
`progress_every_seconds`): the generation (rows), the count of the log's lines for the split (bytes), the Beam
job's passes (its own lines, passed on from the child process) and the scoring of each model (examples).
"""
from __future__ import annotations

import dataclasses
import gc
import glob
import hashlib
import json
import math
import os
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging

from recsys import atomic, console
from recsys.data import layout
from recsys.data.features import FeatureSet, default_features_path


class StudyDataError(RuntimeError):
    """A data preparation step failed; the message names the command and its last output lines."""


@dataclasses.dataclass(frozen=True)
class StudyData:
    """Where the trainer reads (`train`: comma-separated files or a glob) and where models are scored (`eval_files`)."""

    train: str
    eval_files: tuple[str, ...]
    features_path: str
    ground_truth: dict | None = None  # generated logs: the generator's truth and its oracle AUC/log loss (all rows)


def _ground_truth(summary_path: str) -> dict | None:
    """The oracle part of a generated log's summary (`recsys.data.synthetic.write_clicklogs`), or None."""
    if not os.path.exists(summary_path):
        return None
    with open(summary_path) as f:
        summary = json.load(f)
    return {key: summary.get(key) for key in ("ground_truth", "oracle_auc", "oracle_logloss", "oracle_rows")}


def _run_preprocess(args: list[str], progress_every_seconds: float = console.PROGRESS_EVERY_SECONDS) -> None:
    """The Beam job through its command-line contract, in a child process; its progress lines are logged here."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [sys.executable, "-m", "pipelines.preprocess", *args,
               f"--progress_every_seconds={progress_every_seconds}"]
    last_lines: deque[str] = deque(maxlen=1)
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
        for line in child.stdout:
            if line.strip():
                last_lines.append(line.strip())
            message = console.progress_message(line)
            if message is not None:
                logging.info("%s", message)
    if child.returncode != 0:
        raise StudyDataError(f"preprocessing failed (exit {child.returncode}): {' '.join(command[1:])}: "
                             f"{last_lines[0] if last_lines else 'no output'}")


def _head(source_pattern: str, rows: int, output: str) -> None:
    files = sorted(glob.glob(source_pattern))
    if not files:
        raise FileNotFoundError(f"`data.raw_tsv` matches no files: {source_pattern!r}")
    if any(f.endswith(".gz") for f in files):
        raise ValueError(f"`data.raw_max_rows` needs plain .tsv input (got {files}); unzip it or set raw_max_rows=0")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    written = 0
    with atomic.replacing(output) as temporary, open(temporary, "w") as out:
        for path in files:
            with open(path) as f:
                for line in f:
                    if written >= rows:
                        break
                    out.write(line)
                    written += 1


def _shards(data_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(data_dir, layout.SHARD_PATTERN)))


def held_out_split(line_counts: Sequence[int], rows_per_shard: int, eval_shards: int) -> tuple[int, int]:
    """(number of shards, ts of the first held-out row) of a log whose input files (in sorted order) have
    `line_counts` lines, cut by the Beam job into shards of `rows_per_shard` lines that never span files, when
    the last `eval_shards` shards are held out. Rows with a smaller ts (every line counts, as in the job's `ts`)
    form the training stream."""
    starts, first_ts = [], 0
    for lines in line_counts:
        starts += [first_ts + k * rows_per_shard for k in range(math.ceil(lines / rows_per_shard))]
        first_ts += lines
    if eval_shards < 1 or len(starts) <= eval_shards:
        raise ValueError(
            f"`data.eval_shards` must be >= 1 and leave at least one training shard; the log makes {len(starts)} "
            f"shard(s) (data.rows_per_shard={rows_per_shard}). Received: eval_shards={eval_shards}"
        )
    return len(starts), starts[-eval_shards]


def _count_lines(files: Sequence[str], progress_every_seconds: float) -> list[int]:
    """The number of lines of each file, logging progress against their total size."""
    from recsys.data.preprocessing import count_lines

    progress = console.Progress("study data: counting the log's lines for the held-out split",
                                sum(os.path.getsize(f) for f in files), "bytes", progress_every_seconds)
    counts = [count_lines(f, progress.add) for f in files]
    progress.finish()
    return counts


def _preprocess(data: Any, raw: str, data_dir: str,
                progress_every_seconds: float = console.PROGRESS_EVERY_SECONDS) -> int:
    """Runs the Beam job on `raw` into `data_dir` unless a finished run with the same vocabulary rows is there;
    returns the number of shards the log makes."""
    from recsys.data.preprocessing import list_input_files

    files = list_input_files(raw)
    num_shards, first_held_out = held_out_split(_count_lines(files, progress_every_seconds),
                                                int(data.rows_per_shard), int(data.eval_shards))
    vocab_rows = first_held_out if data.leak_free_vocabulary else 0
    summary_path = os.path.join(data_dir, layout.SUMMARY_FILE)
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            built_with = json.load(f).get("vocab_rows") or 0
        if built_with != vocab_rows:
            raise ValueError(
                f"{data_dir} was preprocessed with its vocabulary from "
                f"{f'the first {built_with} rows' if built_with else 'every row'}, but this study needs "
                f"{f'the first {vocab_rows} rows (the training rows)' if vocab_rows else 'every row'} "
                f"(data.leak_free_vocabulary={bool(data.leak_free_vocabulary)}); delete {data_dir} to rebuild it "
                "or use a new --workdir."
            )
        return num_shards
    args = [f"--input={raw}", f"--output_dir={data_dir}", f"--rows_per_shard={int(data.rows_per_shard)}",
            f"--min_count={int(data.min_count)}"] + ([f"--vocab_rows={vocab_rows}"] if vocab_rows else [])
    if os.path.exists(data_dir):
        args.append("--overwrite")  # an interrupted earlier attempt left partial outputs
    _run_preprocess(args, progress_every_seconds)
    return num_shards


def prepare_data(data: Any, workdir: str,
                 progress_every_seconds: float = console.PROGRESS_EVERY_SECONDS) -> StudyData:
    """Generates/preprocesses the data when configured (once) and returns the train/held-out split; the long
    steps log progress at most every `progress_every_seconds`.

    Raises:
      ValueError: neither a raw log nor train/eval globs are configured, too few shards to hold some out, or
        a preprocessed folder built with another vocabulary.
      FileNotFoundError: a glob matches nothing.
      StudyDataError: the preprocessing job failed.
    """
    raw = ""
    if int(data.generate_rows) > 0:
        from recsys.data.synthetic import GeneratorConfig, check_summary, write_clicklogs

        raw = os.path.join(workdir, "raw", "clicks.tsv.gz")
        truth_features = tuple(name.strip() for name in data.generate_truth_features.split(",") if name.strip())
        generator = GeneratorConfig(rows=int(data.generate_rows), seed=int(data.generate_seed),
                                    ctr=float(data.generate_ctr), days=int(data.generate_days),
                                    ground_truth=data.generate_ground_truth, truth_features=truth_features)
        if not os.path.exists(raw):
            os.makedirs(os.path.dirname(raw), exist_ok=True)
            progress = console.Progress("study data: generating the click log", int(data.generate_rows), "rows",
                                        progress_every_seconds)
            write_clicklogs(raw, generator, summary_path=f"{raw}.summary.json", progress=progress)
        check_summary(f"{raw}.summary.json", generator)  # a workdir generated for another config is not reused
    elif data.raw_tsv:
        raw = data.raw_tsv
        if not glob.glob(raw):
            raise FileNotFoundError(f"`data.raw_tsv` matches no files: {data.raw_tsv!r}")
        if int(data.raw_max_rows) > 0:
            head = os.path.join(workdir, "raw", "head.tsv")
            if not os.path.exists(head):
                _head(raw, int(data.raw_max_rows), head)
            raw = head
    if raw:
        data_dir = os.path.join(workdir, "data")
        expected = _preprocess(data, raw, data_dir, progress_every_seconds)
        shards = _shards(data_dir)
        if len(shards) != expected:
            raise StudyDataError(f"{data_dir} holds {len(shards)} shards where the log makes {expected}; delete it "
                                 "to rebuild it.")
        held_out = int(data.eval_shards)
        return StudyData(",".join(shards[:-held_out]), tuple(shards[-held_out:]),
                         os.path.join(data_dir, layout.FEATURES_FILE), _ground_truth(f"{raw}.summary.json"))
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

    def __init__(self, files: tuple[str, ...], features_path: str, max_examples: int = 0, batch_size: int = 8192,
                 progress_every_seconds: float = console.PROGRESS_EVERY_SECONDS):
        import tensorflow as tf

        from recsys.data.fingerprint import RERUN_PREPROCESS
        from recsys.data.input import check_fingerprints, contract_fingerprint
        from recsys.serving.scorer import serialized_batches

        features = FeatureSet.load(features_path)
        self.feature_fingerprint = contract_fingerprint(features, features_path)
        check_fingerprints(files, self.feature_fingerprint, features_path, RERUN_PREPROCESS)
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
        self.features_path = features_path
        self.progress_every_seconds = progress_every_seconds
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
          SavedModelError (a ValueError): the folder breaks the serving contract (`recsys.serving.scorer`) or was
            trained on another feature contract than the held-out data's (`check_fingerprint`).
        """
        from recsys.serving.scorer import SavedModelScorer, check_fingerprint

        check_fingerprint(saved_model, self.feature_fingerprint, f"the held-out data's {self.features_path}")
        scorer = SavedModelScorer(saved_model)
        progress = console.Progress(f"scoring {saved_model} on the held-out data", self.size, "examples",
                                    self.progress_every_seconds)
        out = []
        for batch in self.batches:
            out.append(np.asarray(scorer(batch), np.float64))
            progress.add(len(out[-1]))
        progress.finish()
        del scorer  # the loaded model's memory goes before the next model loads
        gc.collect()
        return np.concatenate(out)
