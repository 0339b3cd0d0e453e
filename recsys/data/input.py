"""The training `tf.data.Dataset`: TFRecord shards in time order -> batches of parsed features.

Pipeline (each stage deterministic; `tf.data.Options.deterministic = True`):

    sorted(glob(file_pattern))         files in name order = time order (pipelines.preprocess contract)
      -> TFRecordDataset               serialized records in file order, read sequentially
      -> shuffle mode + start_offset   "none": skip, batch | "window"/"full": permute windows, trim, rebatch
      -> shard (input_context)         multi-worker: pipeline i keeps stream positions i, i + k, i + 2k, ...
      -> tf.io.parse_example           one vectorised parse per batch with the spec from features.json
      -> prefetch

Records stay serialized strings and move as whole batches or windows (never one by one) until the parse, which
is where the time goes (about 41 scalar features per example).

Shuffle modes:
  * "none": strict time order, the order of an online single-pass trainer.
  * "window": the stream is cut into consecutive, non-overlapping windows of `shuffle_buffer` examples and each
    window is permuted on its own (a stateless shuffle seeded by (seed, window index)). An example never leaves
    its window, so the stream stays "roughly chronological" (Shamir & Lin 2022, arXiv:2202.06499, Sec. 7):
    time order between windows, random order within. This is deliberately not tf.data's sliding
    `shuffle(buffer)`, where an example can drift arbitrarily far back in the stream.
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
it is not offered; the price is that every worker reads (but does not parse) all records.
"""

from __future__ import annotations

import numbers
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

    from recsys.data.features import FeatureSet

SHUFFLE_MODES: tuple[str, ...] = ("none", "window", "full")
COMPRESSIONS: tuple[str, ...] = ("auto", "none", "GZIP", "ZLIB")
_WHOLE_STREAM = 1 << 62

# Batch key of the serialized records when `make_dataset(keep_serialized=True)`; no feature has this name.
SERIALIZED_KEY = "__serialized__"


def list_files(file_pattern: str) -> list[str]:
    """The files matching a glob (or comma-separated globs), in sorted name order.

    Raises:
      FileNotFoundError: naming the pattern when nothing matches.
    """
    import tensorflow as tf

    patterns = [p.strip() for p in file_pattern.split(",") if p.strip()]
    if not patterns:
        raise ValueError(f"`file_pattern` must be a non-empty glob. Received: file_pattern={file_pattern!r}")
    files: set[str] = set()
    for pattern in patterns:
        files.update(f for f in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(f))
    if not files:
        raise FileNotFoundError(f"No files match file_pattern={file_pattern!r}")
    return sorted(files)


def resolve_compression(files: list[str], compression: str = "auto") -> str:
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


def count_examples(file_pattern: str, compression: str = "auto") -> int:
    """Number of records in the files matching `file_pattern` (one sequential read, no parsing)."""
    import tensorflow as tf

    files = list_files(file_pattern)
    records = tf.data.TFRecordDataset(files, compression_type=resolve_compression(files, compression))
    return int(records.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


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

    Returns:
      A `tf.data.Dataset` of dicts of rank-1 tensors.

    Raises:
      FileNotFoundError: nothing matches `file_pattern`.
      ValueError: a bad argument, or records that do not match `features` (checked on the first record of the
        first and last file when called eagerly; later mismatches surface as tf.errors.InvalidArgumentError).
    """
    import tensorflow as tf

    if shuffle not in SHUFFLE_MODES:
        raise ValueError(f"`shuffle` must be one of {SHUFFLE_MODES}. Received: shuffle={shuffle!r}")
    _check_int("batch_size", batch_size, minimum=1)
    _check_int("shuffle_buffer", shuffle_buffer, minimum=1)
    _check_int("seed", seed, minimum=0)
    _check_int("start_offset", start_offset, minimum=0)
    batch_size, shuffle_buffer, seed, start_offset = int(batch_size), int(shuffle_buffer), int(seed), int(start_offset)
    files = list_files(file_pattern)
    compression_type = resolve_compression(files, compression)
    spec = features.parse_spec()
    if tf.executing_eagerly():
        for path in dict.fromkeys([files[0], files[-1]]):
            _check_first_record(path, compression_type, spec, file_pattern)

    # Sequential reads keep file order. Records stay serialized, and move in batches, until the parse.
    records = tf.data.TFRecordDataset(files, compression_type=compression_type)
    pipelines, pipeline_id, per_pipeline_batch = 1, 0, batch_size
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        per_pipeline_batch = input_context.get_per_replica_batch_size(batch_size)
    # Batches of the global stream: every pipeline's share of one global step comes from the same batch.
    assembled = batch_size if pipelines > 1 else per_pipeline_batch
    if shuffle == "none":
        batches = records.skip(start_offset).batch(assembled, drop_remainder=drop_remainder)
    else:
        # "full" is one window longer than any stream (tf.data's batch does not allocate batch_size up front).
        window = shuffle_buffer if shuffle == "window" else _WHOLE_STREAM
        batches = _window_shuffle(records, window, seed, start_offset).rebatch(assembled, drop_remainder)
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
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options)


def _window_shuffle(records, window, seed: int, start_offset: int):
    """Windows of `window` serialized records, each permuted with seed (seed, window index), offset applied.

    Yields one batch per window. The permutation is a stateless (Philox) shuffle, so it depends on `seed`
    only, not on TensorFlow's global seed or on how many datasets were built before. Windows before
    `start_offset` are skipped unread by the shuffle; the first kept window loses its first
    `start_offset mod window` shuffled records.
    """
    import tensorflow as tf

    window = tf.cast(window, tf.int64)
    skipped_windows = tf.constant(start_offset, tf.int64) // window
    remainder = tf.constant(start_offset, tf.int64) - skipped_windows * window
    windows = records.skip(skipped_windows * window).batch(window).enumerate(start=skipped_windows)
    seed = tf.constant(seed, tf.int64)

    def permute(index, batch):
        shuffled = tf.random.experimental.stateless_shuffle(batch, seed=tf.stack([seed, index]))
        return shuffled[tf.where(index == skipped_windows, remainder, 0) :]

    return windows.map(permute, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _check_first_record(path: str, compression_type: str, spec: dict, file_pattern: str) -> None:
    """Raises ValueError naming the file and pattern when the first record does not parse with `spec`."""
    import tensorflow as tf

    try:
        first = list(tf.data.TFRecordDataset([path], compression_type=compression_type).take(1))
    except tf.errors.OpError as e:
        raise ValueError(
            f"Cannot read TFRecords from {path} (matched by file_pattern={file_pattern!r}, "
            f"compression={compression_type or 'none'!r}): {e.message}"
        ) from e
    if not first:
        return
    try:
        tf.io.parse_single_example(first[0], spec)
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        found = _describe_example(first[0].numpy())
        expected = {name: s.dtype.name for name, s in spec.items()}
        # Drop TensorFlow's function-node prefix and op suffix: they name nothing the user can act on.
        message = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]", "", getattr(e, "message", str(e)))
        raise ValueError(
            f"Records in {os.path.basename(path)} (file_pattern={file_pattern!r}) do not match features.json: "
            f"{message}. Expected features {expected}; the first record has {found}"
        ) from e


def _describe_example(serialized: bytes) -> dict[str, str]:
    """{feature name: kind} of a serialized tf.train.Example, or a note when it is not one."""
    import tensorflow as tf

    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # any protobuf decode failure means the same thing here
        return {"<not a tf.train.Example>": f"{len(serialized)} bytes"}
    return {name: feature.WhichOneof("kind") or "empty" for name, feature in sorted(example.features.feature.items())}


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
