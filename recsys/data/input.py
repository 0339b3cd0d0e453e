"""The training input: TFRecord shards in time order -> batches of parsed features, and the trainer's checked view.

Pipeline of `make_dataset` (each stage deterministic; `tf.data.Options.deterministic = True`):

    sorted(glob(file_pattern))         files in name order = time order (`recsys.data.layout`)
      -> TFRecordDataset               serialized records in file order, read sequentially
      -> shuffle mode + start_offset   "none": skip, batch | "window"/"full": permute windows, trim, rebatch
      -> shard (input_context)         multi-worker, shard_by="example": pipeline i keeps positions i, i + k, ...
                                       (shard_by="file": the pipeline read only its own files instead)
      -> tf.io.parse_example           one vectorised parse per batch with the spec from features.json
      -> prefetch

Records stay serialized strings and move as whole batches or windows (never one by one) until the parse, which
is where the time goes (about 41 scalar features per example).

Shuffle modes:
  * "none": strict time order, the order of an online single-pass trainer.
  * "window": the stream is cut into consecutive, non-overlapping windows of `shuffle_buffer` examples and each
    window is permuted on its own (a stateless shuffle seeded by (seed, window index), `shuffled_windows`). An
    example never leaves its window, so the stream stays "roughly chronological" (Shamir & Lin 2022,
    arXiv:2202.06499, Sec. 7): time order between windows, random order within. This is deliberately not tf.data's
    sliding `shuffle(buffer)`, where an example can drift arbitrarily far back in the stream.
  * "full": one permutation of the whole stream: a single window longer than any stream, so every serialized
    record is held in memory once; meant for small data sets and ablations.

Resume: `start_offset` counts examples of the global shuffled stream (before sharding), so a run that stopped
after N examples and restarts with the same seed and `start_offset=N` sees exactly the examples it had not
seen, in the same order. Raw records are skipped before parsing; in "window" mode whole windows are skipped
before they are shuffled, so a resume costs one sequential read of the skipped records and nothing more.

Multi-worker (`input_context` from `tf.distribute.Strategy.distribute_datasets_from_function`): `batch_size` is
then the GLOBAL batch size. Every input pipeline reads the whole stream, applies the same seeded shuffle and
keeps every k-th example (k = `input_context.num_input_pipelines`), batched to
`input_context.get_per_replica_batch_size(batch_size)`. Sharding by example index rather than by file keeps
the global stream chronological: global step s covers the examples [s * B, (s + 1) * B) of the stream across all
workers. Sharding by file would give each worker a different period of time, which breaks the online setting, so
it is the default (`shard_by="example"`); the price is that every worker reads (but does not parse) all records.

`shard_by="file"` (`config.data.shard_by`): each worker reads only its own files (`WorkerShare`, assigned by
`assign_files`: files in time order, each to the worker with the fewest bytes so far, so the workers move
through the stream side by side and their shares differ by at most one file). A worker's stream is its files in
time order, shuffled (window/full) within that stream, and `start_offset` counts examples of the worker's own
stream. What changes: a global step covers B/k examples of each worker's stream, i.e. k stretches of time about
one file apart, not the consecutive examples [s·B, (s+1)·B); time order holds within each worker's share only; a
worker whose share ends first gets empty batches while the others finish. Sharding is by whole file because a
GZIP TFRecord file cannot be entered in the middle without decompressing everything before it.

The trainer reads through `DataSource`, which fails fast, before any model is built, on the mistakes that
otherwise surface deep inside TensorFlow: a glob that matches nothing, a missing `features.json`, a file encoded
with another feature contract (`check_fingerprints`: every file's gzip header against features.json's
`feature_fingerprint`), records whose features do not match it (`check_records`), and input without records.
Its `replica_dataset` gives several orders of one parsed stream, each the order `make_dataset` gives with that
seed.

Padding (`pad_final_batch`, `config.data.pad_final_batch`): the last, partial global batch of the stream (of each
order) is filled up to the global batch size with padding examples, so every step has the same static shape
(TPUs, XLA). A padding example has every feature 0 (categorical id 0, the missing/OOV id) and the label
`PADDING_LABEL` (-1), which marks it: the train step weights it 0 (`recsys.training.task.example_weights`) and the
trainer drops it from every result before metrics, counts and stream positions. Padding comes after the last real
example, so every real example is in the same step as without padding.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import numbers
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from recsys.data import fingerprint, layout
from recsys.data.features import FeatureSet, default_features_path

SHUFFLE_MODES: tuple[str, ...] = ("none", "window", "full")
COMPRESSIONS: tuple[str, ...] = ("auto", "none", "GZIP", "ZLIB")
# How several workers split the stream (`config.data.shard_by`, module docstring "Multi-worker").
SHARD_BY: tuple[str, ...] = ("example", "file")
# The window of shuffle="full": longer than any stream (tf.data's batch does not allocate it up front).
_WHOLE_STREAM = 1 << 62
# Records `DataSource.from_config` checks against features.json before training.
CHECKED_RECORDS = 1000
# expected_examples counts the records of inputs up to this size when summary.json does not say.
COUNT_LIMIT_BYTES = 256 << 20

# Batch key of the serialized records when `make_dataset(keep_serialized=True)`; no feature has this name.
SERIALIZED_KEY = "__serialized__"
# The label of a padding example (`pad_final_batch`); real labels are 0 or 1.
PADDING_LABEL = -1


class InputDataError(ValueError):
    """The input does not match its features.json, cannot be read, or holds no records."""


def list_files(file_pattern: str) -> list[str]:
    """The files matching a glob (or comma-separated globs), in sorted name order.

    Raises:
      FileNotFoundError: naming the pattern when nothing matches.
    """
    patterns = layout.split_patterns(file_pattern)
    if not patterns:
        raise ValueError(f"`file_pattern` must be a non-empty glob. Received: file_pattern={file_pattern!r}")
    files: set[str] = set()
    for pattern in patterns:
        files.update(f for f in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(f))
    if not files:
        raise FileNotFoundError(f"No files match file_pattern={file_pattern!r}")
    return sorted(files)


def resolve_compression(files: Sequence[str], compression: str = "auto") -> str:
    """The TFRecordDataset `compression_type` for `files`: "auto" means GZIP for names ending in .gz.

    Raises:
      ValueError: unknown `compression`, or "auto" over a mix of .gz and other names (one dataset reads all
        files with one codec).
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"`compression` must be one of {COMPRESSIONS}. Received: compression={compression!r}")
    if compression == "none":
        return ""
    if compression != "auto":
        return compression
    gz = {f.endswith(".gz") for f in files}
    if len(gz) > 1:
        raise ValueError(
            "compression='auto' needs all matched files to be GZIP (.gz) or all uncompressed; the pattern "
            f"matched both kinds, e.g. {next(f for f in files if f.endswith('.gz'))!r} and "
            f"{next(f for f in files if not f.endswith('.gz'))!r}"
        )
    return "GZIP" if gz == {True} else ""


def find_unreadable_file(files: Sequence[str], compression: str = "auto") -> tuple[str, str] | None:
    """The first of `files` that cannot be read to its end as TFRecords (truncated, corrupt), with TensorFlow's
    first line about it; None when all read. One sequential read of each file up to the fault: for naming the file
    after tf.data reported an error without one ("truncated record at 617396").
    """
    for path in files:
        try:
            count_records([path], compression)
        except tf.errors.OpError as e:
            return path, op_error_line(e)
    return None


def op_error_line(error: tf.errors.OpError) -> str:
    """The first line of TensorFlow's message without its graph-function and op decorations."""
    first = (error.message or type(error).__name__).splitlines()[0]
    return re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+.*$", "", first)


def count_records(files: Sequence[str], compression: str = "auto") -> int:
    """Number of records in `files` (one sequential read, no parsing); raises TensorFlow's error on a bad file."""
    records = tf.data.TFRecordDataset(list(files), compression_type=resolve_compression(list(files), compression))
    return int(records.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def count_examples(file_pattern: str, compression: str = "auto") -> int:
    """Number of records in the files matching `file_pattern` (one sequential read, no parsing)."""
    return count_records(list_files(file_pattern), compression)


def expected_records(pattern: str, files: Sequence[str]) -> int | None:
    """The number of records in `files` (those glob `pattern` matches) for progress and ETAs, else None when it
    is not cheap to know.

    From the preprocessing job's `summary.json` beside the shards: `rows_ok` when the pattern matches every
    shard, the sum of the listed shards' `rows` when it matches some of them (e.g. the study's training
    shards without the held-out one). Otherwise the records are counted (one read of the input) when the
    files hold at most `COUNT_LIMIT_BYTES`, each file with the compression its name says (GZIP and plain files
    may mix, as the comparator reads them).
    """
    files = list(files)
    total = _rows_from_summary(pattern, files)
    if total is None and sum(tf.io.gfile.stat(f).length for f in files) <= COUNT_LIMIT_BYTES:
        total = sum(count_records([f]) for f in files)
    return total


def _rows_from_summary(pattern: str, files: list[str]) -> int | None:
    directory = layout.data_directory(pattern)
    summary_path = os.path.join(directory, layout.SUMMARY_FILE)
    if not tf.io.gfile.exists(summary_path):
        return None
    try:
        with tf.io.gfile.GFile(summary_path) as f:
            summary = json.load(f)
        if sorted(tf.io.gfile.glob(os.path.join(directory, layout.SHARD_PATTERN))) == files:
            return int(summary["rows_ok"])
        rows = {os.path.join(directory, shard["name"]): int(shard["rows"]) for shard in summary.get("shards", ())}
    except (ValueError, KeyError, TypeError):
        return None
    return sum(rows[f] for f in files) if all(f in rows for f in files) else None


# --- Checking records against features.json ---------------------------------------------------------------------


def record_problem(serialized: bytes, features: FeatureSet) -> str | None:
    """Why one serialized record does not match `features`, or None.

    A record matches when it is a `tf.train.Example` with exactly the features of features.json, each of its type
    with one value, categorical ids in [0, vocab_size) and labels 0 or 1: then `tf.io.parse_example` with
    `features.parse_spec()` accepts it and the model can embed it.
    """
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # any protobuf decode failure means the same thing here
        return f"it is not a tf.train.Example ({len(serialized)} bytes)"
    present = example.features.feature
    kinds = {"int64": "int64_list", "float32": "float_list"}
    missing = [f.name for f in features.features if f.name not in present]
    if missing:
        return f"features {missing} are missing (record has {sorted(present)})"
    extra = sorted(set(present) - {f.name for f in features.features})
    if extra:
        return f"features {extra} are not in features.json"
    for f in features.features:
        value = present[f.name]
        kind = value.WhichOneof("kind")
        if kind != kinds[f.type]:
            return f"feature {f.name!r} is {kind}, features.json says {f.type}"
        values: Sequence = getattr(value, kind).value
        if len(values) != 1:
            return f"feature {f.name!r} has {len(values)} values, expected exactly 1"
        if f.role == "categorical" and not 0 <= values[0] < f.vocab_size:
            return f"categorical {f.name!r} has id {values[0]} outside [0, vocab_size={f.vocab_size})"
        if f.role == "label" and values[0] not in (0, 1):
            return f"label {f.name!r} is {values[0]}, expected 0 or 1"
    return None


def check_records(
    files: Sequence[str],
    features: FeatureSet,
    compression_type: str,
    *,
    file_pattern: str,
    features_path: str = layout.FEATURES_FILE,
    count: int = 1,
) -> int:
    """Checks the first `count` records of the stream, and the first record of the last file, with `record_problem`.

    The last file's first record catches a pattern that mixes data sets written with different schemas.

    Returns:
      The number of records checked: 0 when the files hold no records.

    Raises:
      InputDataError: naming the file, the record (0-based, within its file), the pattern and what does not
        match, or the file that cannot be read as TFRecords of `compression_type`.
    """
    checked = 0
    for position, path in enumerate(files):
        wanted = max(count - checked, 1 if position == len(files) - 1 else 0)
        if wanted == 0:
            continue
        records = tf.data.TFRecordDataset([path], compression_type=compression_type).take(wanted)
        read = 0
        try:
            for index, record in enumerate(records):
                problem = record_problem(record.numpy(), features)
                if problem:
                    raise InputDataError(
                        f"Record {index} of {path} (file_pattern={file_pattern!r}) does not match {features_path}: "
                        f"{problem}"
                    )
                checked += 1
                read = index + 1
        except tf.errors.OpError as e:
            raise InputDataError(
                f"Cannot read TFRecords from {path} (matched by file_pattern={file_pattern!r}, "
                f"compression={compression_type or 'none'!r}) after {read} record(s): {op_error_line(e)}"
            ) from e
    return checked


# --- Checking files against the feature fingerprint -----------------------------------------------------------


def file_fingerprint(path: str) -> str | None:
    """The feature fingerprint in the gzip header of TFRecord file `path` (`recsys.data.fingerprint`), or None."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return fingerprint.from_gzip_header(f.read(fingerprint.HEADER_BYTES))


def check_fingerprints(files: Sequence[str], expected: str, expected_from: str, what_to_do: str) -> None:
    """Every file of `files` must carry feature fingerprint `expected` (reads only each file's first bytes).

    Raises:
      InputDataError: one line naming the first file without `expected` (or an empty one), what it carries,
        `expected_from` and `what_to_do`.
    """
    for path in files:
        with tf.io.gfile.GFile(path, "rb") as f:
            head = f.read(fingerprint.HEADER_BYTES)
        if not head:  # a shard of pipelines.preprocess always has its gzip header, even without records
            raise InputDataError(f"{path} is empty (0 bytes), so not a shard written by pipelines.preprocess: "
                                 f"delete it, or {what_to_do}")
        found = fingerprint.from_gzip_header(head)
        if found != expected:
            raise InputDataError(fingerprint.mismatch_message(path, found, expected, expected_from, what_to_do))


def contract_fingerprint(features: FeatureSet, features_path: str) -> str:
    """`features.fingerprint(features_path)` with a missing or edited one reported as `InputDataError`."""
    try:
        return features.fingerprint(features_path)
    except fingerprint.FingerprintError as e:
        raise InputDataError(str(e)) from None


# --- Worker shares (shard_by="file") -----------------------------------------------------------------------------


def assign_files(sizes: Sequence[int], workers: int) -> list[list[int]]:
    """The file indices each of `workers` workers reads, for files of `sizes` (bytes or records) in time order.

    Files are taken in time order and each goes to the worker with the least assigned so far (the lowest index on a
    tie): every file goes to exactly one worker, each worker's files stay in time order, the workers move through
    the stream side by side (a worker's next file is never far ahead of the others'), and the workers' totals
    differ by at most the largest file (the worker that got the last file had the least before it).

    Raises:
      ValueError: `workers` < 1, fewer files than workers (a worker would have nothing to read), or a negative size.
    """
    _check_int("workers", workers, minimum=1)
    sizes = [int(size) for size in sizes]
    if any(size < 0 for size in sizes):
        raise ValueError(f"File sizes must be >= 0. Received: sizes={sizes!r}")
    if len(sizes) < workers:
        raise ValueError(
            f"shard_by='file' gives each of the {workers} workers its own files, but there are only {len(sizes)} "
            "file(s): write the data in more shards or use `config.data.shard_by='example'`"
        )
    loads = [0] * workers
    shares: list[list[int]] = [[] for _ in range(workers)]
    for index, size in enumerate(sizes):
        worker = min(range(workers), key=lambda w: (loads[w], w))
        shares[worker].append(index)
        loads[worker] += size
    return shares


@dataclasses.dataclass(frozen=True)
class WorkerShare:
    """Worker `index` of `workers` reads only its own files (`assign_files` over the files' byte sizes).

    `index` is a Python int (a MultiWorkerMirrored input pipeline) or a scalar int64 tensor (a parameter-server
    worker: `tf.distribute.coordinator.experimental_get_current_worker_index()`, known only when the dataset is
    built on the worker); then the worker's files are picked in the graph.
    """

    index: Any
    workers: int

    def files(self, files: Sequence[str]) -> list[str] | tf.Tensor:
        """This worker's files among `files` (all files, in time order), in time order."""
        shares = assign_files([tf.io.gfile.stat(f).length for f in files], self.workers)
        if isinstance(self.index, numbers.Integral):
            return [files[i] for i in shares[int(self.index)]]
        # Every share's files one after the other; the worker's slice is picked by its index at run time.
        flat = tf.constant([files[i] for share in shares for i in share])
        bounds = tf.constant([0, *itertools.accumulate(len(share) for share in shares)], tf.int64)
        index = tf.cast(self.index, tf.int64)
        return flat[bounds[index]:bounds[index + 1]]


# --- Streams -----------------------------------------------------------------------------------------------------


def shuffled_windows(
    records: tf.data.Dataset, window: int, seeds: Sequence[int], start_offset: int = 0
) -> tf.data.Dataset:
    """The stream cut into consecutive windows of `window` records, with one permutation of each window per seed.

    Elements are `(window index, records[n], orders[len(seeds), m])`: `orders[r]` lists positions in `records` in
    the order of seed `seeds[r]`, a stateless (Philox) shuffle seeded by (seed, window index), so it depends on the
    seed only, not on TensorFlow's global seed or on how many datasets were built before. `start_offset` counts
    examples of each seed's own order: windows before it are skipped unread, and in the first kept window the orders
    lose their first `start_offset mod window` entries (m = n elsewhere).
    """
    window = int(window)
    # A tensor offset (a parameter-server worker's own resume point, known on the worker) works alike.
    start_offset = tf.cast(start_offset, tf.int64) if tf.is_tensor(start_offset) else int(start_offset)
    skipped_windows, remainder = start_offset // window, start_offset % window
    windows = records.skip(skipped_windows * window).batch(window).enumerate(start=skipped_windows)
    seeds = [int(s) for s in seeds]

    def permute(index, batch):
        positions = tf.range(tf.shape(batch, out_type=tf.int64)[0])
        first = tf.where(index == skipped_windows, tf.cast(remainder, tf.int64), 0)
        orders = [
            tf.random.experimental.stateless_shuffle(positions, seed=tf.stack([tf.constant(seed, tf.int64), index]))
            for seed in seeds
        ]
        return index, batch, tf.stack(orders)[:, first:]

    return windows.map(permute, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def make_dataset(
    file_pattern: str,
    features: FeatureSet,
    batch_size: int,
    *,
    shuffle: str = "none",
    shuffle_buffer: int = 10000,
    seed: int = 0,
    start_offset: int = 0,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    compression: str = "auto",
    keep_serialized: bool = False,
    share: WorkerShare | None = None,
    pad_final_batch: bool = False,
) -> tf.data.Dataset:
    """Builds the training dataset of `{feature name: Tensor[batch]}` dicts (see the module docstring).

    Args:
      file_pattern: glob (or comma-separated globs) of TFRecord files of `tf.train.Example`; read in sorted
        name order, records in file order.
      features: the `recsys.data.features.FeatureSet` (features.json) the records were written with; every
        feature is parsed (label and ts int64, numerics float32, categoricals int64).
      batch_size: examples per batch (the GLOBAL batch size when `input_context` is given).
      shuffle: one of "none", "window", "full".
      shuffle_buffer: window length in examples for shuffle="window".
      seed: shuffle seed; the same seed gives the same order.
      start_offset: number of examples of the shuffled global stream to skip (resume).
      drop_remainder: drop a last, smaller batch.
      input_context: a `tf.distribute.InputContext` for multi-worker input (see the module docstring).
      compression: "auto" (GZIP for .gz names), "none", "GZIP" or "ZLIB".
      keep_serialized: also yield each batch's serialized records under `SERIALIZED_KEY` (for a teacher
        SavedModel that scores `examples` strings, `recsys.training.distill`).
      share: read only this worker's files (shard_by="file", module docstring); `start_offset` then counts
        examples of the worker's own stream, and with `input_context` each pipeline batches its own stream to the
        per-replica batch (no example sharding).
      pad_final_batch: fill the last global batch up to `batch_size` with padding records (`padding_record`,
        label `PADDING_LABEL`) before it is sharded, so every batch has a static size.

    Returns:
      A `tf.data.Dataset` of dicts of rank-1 tensors.

    Raises:
      FileNotFoundError: nothing matches `file_pattern`.
      ValueError: a bad argument; `InputDataError` for records that do not match `features` or cannot be read
        (`check_records` on the first record of the first and the last file, when called eagerly; later
        mismatches surface as tf.errors.InvalidArgumentError).
    """
    if shuffle not in SHUFFLE_MODES:
        raise ValueError(f"`shuffle` must be one of {SHUFFLE_MODES}. Received: shuffle={shuffle!r}")
    _check_int("batch_size", batch_size, minimum=1)
    _check_int("shuffle_buffer", shuffle_buffer, minimum=1)
    _check_int("seed", seed, minimum=0)
    if not tf.is_tensor(start_offset):
        _check_int("start_offset", start_offset, minimum=0)
        start_offset = int(start_offset)
    batch_size, shuffle_buffer, seed = int(batch_size), int(shuffle_buffer), int(seed)
    files = list_files(file_pattern)
    compression_type = resolve_compression(files, compression)
    spec = features.parse_spec()
    if tf.executing_eagerly():
        check_records(files, features, compression_type, file_pattern=file_pattern)

    # Sequential reads keep file order. Records stay serialized, and move in batches, until the parse.
    records = tf.data.TFRecordDataset(share.files(files) if share is not None else files,
                                      compression_type=compression_type)
    pipelines, pipeline_id, per_pipeline_batch = 1, 0, batch_size
    if input_context is not None and share is not None:
        # The pipeline's own files: its stream is batched to the per-replica batch, nothing is sharded away.
        per_pipeline_batch = input_context.get_per_replica_batch_size(batch_size)
    elif input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        per_pipeline_batch = input_context.get_per_replica_batch_size(batch_size)
    # Batches of the global stream: every pipeline's share of one global step comes from the same batch.
    assembled = batch_size if pipelines > 1 or pad_final_batch else per_pipeline_batch
    if shuffle == "none":
        batches = records.skip(start_offset).batch(assembled, drop_remainder=drop_remainder)
    else:
        window = shuffle_buffer if shuffle == "window" else _WHOLE_STREAM
        shuffled = shuffled_windows(records, window, [seed], start_offset).map(
            lambda index, batch, orders: tf.gather(batch, orders[0]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        batches = shuffled.rebatch(assembled, drop_remainder)
    if pad_final_batch:
        padding = tf.constant(padding_record(features))
        batches = batches.map(lambda batch: pad_batch(batch, batch_size, padding))
        if pipelines == 1 and per_pipeline_batch != batch_size:  # one pipeline feeding several replicas
            batches = batches.rebatch(per_pipeline_batch, drop_remainder=True)
    if pipelines > 1:
        # Example-index sharding: position p of the global stream goes to pipeline p mod k.
        batches = batches.map(lambda batch: batch[pipeline_id::pipelines])
        # A last global batch shorter than k leaves some pipelines nothing: yield no batch rather than an empty one.
        batches = batches.filter(lambda batch: tf.size(batch) > 0)
        if batch_size // pipelines != per_pipeline_batch:  # several replicas per pipeline
            batches = batches.rebatch(per_pipeline_batch, drop_remainder)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        if keep_serialized:
            parsed[SERIALIZED_KEY] = serialized
        return parsed

    dataset = batches.map(
        parse,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return _deterministic(dataset.prefetch(tf.data.AUTOTUNE))


# --- The trainer's view ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DataSource:
    """A validated training input.

    Attributes:
      pattern: the TFRecord glob (`config.data.train`).
      files: the files it matches, in name (= time) order.
      features_path, features: the `features.json` used and its content.
      shuffle, shuffle_buffer, seed: the order of the stream (`make_dataset`).
      keep_serialized: `dataset` batches also hold the serialized records (`SERIALIZED_KEY`).
      shard_by: "example" (every input pipeline reads the whole stream and keeps its examples of each global
        batch) or "file" (each worker reads only its own files, `assign_files`); see the module docstring.
      pad_final_batch: every dataset's last global batch is padded to the batch size (module docstring).
    """

    pattern: str
    files: list[str]
    features_path: str
    features: FeatureSet
    shuffle: str = "none"
    shuffle_buffer: int = 10_000
    seed: int = 0
    keep_serialized: bool = False  # batches also carry the serialized records (a SavedModel distillation teacher)
    shard_by: str = "example"  # how several workers split the stream (SHARD_BY, module docstring)
    pad_final_batch: bool = False  # the last global batch is padded to full size (`make_dataset`)

    @classmethod
    def from_config(cls, data_config: Any, seed: int) -> DataSource:
        """Resolves and checks `config.data`, including its first `CHECKED_RECORDS` records (`check_records`).

        Raises:
          FileNotFoundError: the glob matches nothing, or features.json is missing.
          ValueError: a bad shuffle mode or buffer; `InputDataError` when records do not match features.json or
            there are none.
        """
        pattern = data_config.train
        if not pattern:
            raise ValueError("`config.data.train` is empty: set it to a TFRecord glob, e.g. 'out/part-*.tfrecord.gz'")
        try:
            files = list_files(pattern)
        except FileNotFoundError:
            raise FileNotFoundError(f"`config.data.train` matches no files: {pattern!r}") from None
        if data_config.shuffle not in SHUFFLE_MODES:
            raise ValueError(
                f"`config.data.shuffle` must be one of {SHUFFLE_MODES}. Received: shuffle={data_config.shuffle!r}"
            )
        if int(data_config.shuffle_buffer) < 1:
            raise ValueError(f"`config.data.shuffle_buffer` must be >= 1. Received: {data_config.shuffle_buffer!r}")
        shard_by = data_config.get("shard_by", "example")
        if shard_by not in SHARD_BY:
            raise ValueError(f"`config.data.shard_by` must be one of {SHARD_BY}. Received: shard_by={shard_by!r}")
        if shard_by == "file" and bool(data_config.get("pad_final_batch", False)):
            # Each worker's own stream ends at its own step, and a finished worker feeds empty batches: there is
            # no single final global batch to pad.
            raise ValueError("`config.data.pad_final_batch=True` pads the one stream's last global batch and cannot "
                             "be combined with `config.data.shard_by='file'` (each worker's files end at their own "
                             "step). Received: shard_by='file', pad_final_batch=True")
        if int(data_config.batch_size) < 1:
            raise ValueError(f"`config.data.batch_size` must be >= 1. Received: {data_config.batch_size!r}")
        features_path = data_config.features or default_features_path(pattern)
        features = FeatureSet.load(features_path)
        check_fingerprints(files, contract_fingerprint(features, features_path), features_path,
                           f"{fingerprint.RERUN_PREPROCESS}, or point `config.data.features` at the features.json "
                           "the file was written with")
        checked = check_records(files, features, resolve_compression(files), file_pattern=pattern,
                                features_path=features_path, count=CHECKED_RECORDS)
        if checked == 0:
            raise InputDataError(f"No examples in the input: the {len(files)} file(s) matching {pattern!r} "
                                 "hold no records")
        return cls(pattern, files, features_path, features, data_config.shuffle, int(data_config.shuffle_buffer),
                   int(seed), shard_by=shard_by, pad_final_batch=bool(data_config.get("pad_final_batch", False)))

    def expected_examples(self, max_examples: int = 0) -> int | None:
        """The stream's length for progress/ETA (and schedules), else None when it is not cheap to know
        (`expected_records`). `max_examples` (> 0) caps the answer."""
        total = expected_records(self.pattern, self.files)
        if max_examples:
            total = min(total, max_examples) if total is not None else max_examples
        return total

    def dataset(self, batch_size: int, start_offset: int = 0, input_context=None,
                share: WorkerShare | None = None) -> tf.data.Dataset:
        """The stream from example `start_offset` of the global stream on, batched (final partial batch kept).

        With `input_context`, `batch_size` is the global batch and this input pipeline gets its share of every
        global batch (`make_dataset`): global step s always covers examples [s·B, (s+1)·B) of the stream.
        With `share`, only that worker's files are read and `start_offset` counts examples of its own stream.
        """
        return make_dataset(
            self.pattern,
            self.features,
            batch_size,
            shuffle=self.shuffle,
            shuffle_buffer=self.shuffle_buffer,
            seed=self.seed,
            start_offset=start_offset,
            drop_remainder=False,
            input_context=input_context,
            keep_serialized=self.keep_serialized,
            share=share,
            pad_final_batch=self.pad_final_batch,
        )

    def distributed_dataset(self, strategy: tf.distribute.Strategy, global_batch_size: int, start_offset: int = 0,
                            start_step: int = 0):
        """The stream split across the strategy's replicas; each global batch has `global_batch_size` examples.

        With `shard_by="file"` and several input pipelines (MultiWorkerMirrored), pipeline i reads only its own
        files (`WorkerShare`) and contributes B/k examples to every global step until its files run out (then
        empty batches while the others finish); resuming after `start_step` global steps restarts each pipeline
        at example `start_step·B/k` of its own stream, which is exact because every pipeline consumes the same
        number of examples per step. Otherwise `start_offset` (global examples) is where the stream restarts.
        """
        def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
            pipelines = input_context.num_input_pipelines
            if self.shard_by == "file" and pipelines > 1:
                return self.dataset(global_batch_size, start_offset=start_step * (global_batch_size // pipelines),
                                    input_context=input_context,
                                    share=WorkerShare(input_context.input_pipeline_id, pipelines))
            return self.dataset(global_batch_size, start_offset=start_offset, input_context=input_context)

        return _distribute(strategy, global_batch_size, dataset_fn)

    def replica_dataset(
        self, batch_size: int, seeds: Sequence[int], start_offset: int = 0, input_context=None
    ) -> tf.data.Dataset:
        """One parsed stream, one order per data seed: for replica mode with per-replica shuffles.

        Each window of `shuffle_buffer` examples (the whole stream for shuffle='full') is read and parsed once, in
        time order; replica r gets the window in the order of `shuffled_windows` with seeds[r], the order
        `make_dataset` gives with that seed, so every replica sees exactly the same examples per window. Elements
        are tuples over replicas of `(features, positions)`, where `positions` [batch] are the examples' int64
        indices in the time-ordered stream (to align predictions across replicas). `start_offset` counts examples
        of each replica's own order, as in `make_dataset`.

        Raises:
          ValueError: shuffle='none' (one order only), or several input pipelines (multi-worker; not supported).
        """
        if self.shuffle == "none":
            raise ValueError("Per-replica orders need `config.data.shuffle` 'window' or 'full'. Received: 'none'")
        if input_context is not None and input_context.num_input_pipelines > 1:
            raise ValueError(
                "Replica mode with per-replica shuffles runs with one input pipeline (strategies 'default', "
                f"'mirrored'); this strategy has {input_context.num_input_pipelines}."
            )
        per_replica_batch = (input_context.get_per_replica_batch_size(batch_size) if input_context is not None
                             else batch_size)
        window = self.shuffle_buffer if self.shuffle == "window" else _WHOLE_STREAM
        spec = self.features.parse_spec()
        records = tf.data.TFRecordDataset(self.files, compression_type=resolve_compression(self.files))
        replicas = len(seeds)

        def gather(index, serialized, orders):
            parsed = tf.io.parse_example(serialized, spec)
            return tuple(
                ({name: tf.gather(value, orders[r]) for name, value in parsed.items()}, index * window + orders[r])
                for r in range(replicas)
            )

        dataset = shuffled_windows(records, window, seeds, start_offset).map(
            gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if self.pad_final_batch:
            label = self.features.label.name

            def pad(*orders):
                return tuple(({name: pad_batch(value, batch_size, PADDING_LABEL if name == label else 0)
                               for name, value in features.items()}, pad_batch(positions, batch_size, -1))
                             for features, positions in orders)

            dataset = dataset.rebatch(batch_size).map(pad)
        return _deterministic(dataset.rebatch(per_replica_batch, drop_remainder=self.pad_final_batch)
                              .prefetch(tf.data.AUTOTUNE))

    def replica_distributed_dataset(
        self, strategy: tf.distribute.Strategy, global_batch_size: int, seeds: Sequence[int], start_offset: int = 0
    ):
        """`replica_dataset` split across the strategy's replicas (one input pipeline)."""
        return _distribute(strategy, global_batch_size, lambda input_context: self.replica_dataset(
            global_batch_size, seeds, start_offset=start_offset, input_context=input_context))


def padding_record(features: FeatureSet) -> bytes:
    """The serialized padding example of `features`: every feature 0, the label `PADDING_LABEL`."""
    feature = {}
    for f in features.features:
        value = PADDING_LABEL if f.role == "label" else 0
        feature[f.name] = (tf.train.Feature(int64_list=tf.train.Int64List(value=[value])) if f.type == "int64"
                           else tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)])))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def pad_batch(batch: tf.Tensor, size: int, value: Any) -> tf.Tensor:
    """`batch` [n <= size] followed by `size - n` copies of `value`, with the static shape [size]."""
    fill = tf.fill([size - tf.shape(batch)[0]], tf.cast(value, batch.dtype))
    return tf.ensure_shape(tf.concat([batch, fill], axis=0), [size])


def _distribute(
    strategy: tf.distribute.Strategy, global_batch_size: int,
    dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset],
):
    if global_batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"`config.data.batch_size` ({global_batch_size}) must be divisible by the number of replicas in "
            f"sync ({strategy.num_replicas_in_sync})"
        )
    return strategy.distribute_datasets_from_function(dataset_fn)


def _deterministic(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
