"""The trainer's view of its input: the data glob, `features.json`, validation and the distributed dataset.

Fails fast, before any model is built, on the mistakes that otherwise surface deep inside TensorFlow: a glob
that matches nothing, a missing `features.json`, records whose features do not match it, and input without
records.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from recsys.data.features import FeatureSet, default_features_path

SHUFFLE_MODES = ("none", "window", "full")
# Records read up front to check them against features.json.
CHECKED_RECORDS = 1000


class InputDataError(ValueError):
    """The training input does not match its features.json, or holds no records."""


@dataclasses.dataclass
class DataSource:
    """A validated training input.

    Attributes:
      pattern: the TFRecord glob (`config.data.train`).
      files: the files it matches, in name (= time) order.
      features_path, features: the `features.json` used and its content.
      shuffle, shuffle_buffer, seed: the order of the stream (`recsys.data.input.make_dataset`).
      keep_serialized: `dataset` batches also hold the serialized records (`recsys.data.input.SERIALIZED_KEY`).
    """

    pattern: str
    files: list[str]
    features_path: str
    features: FeatureSet
    shuffle: str = "none"
    shuffle_buffer: int = 10_000
    seed: int = 0
    keep_serialized: bool = False  # batches also carry the serialized records (a SavedModel distillation teacher)

    @classmethod
    def from_config(cls, data_config: Any, seed: int) -> DataSource:
        """Resolves and checks `config.data`.

        Raises:
          FileNotFoundError: the glob matches nothing, or features.json is missing.
          ValueError: a bad shuffle mode or buffer; `InputDataError` when records do not match features.json or
            there are none.
        """
        pattern = data_config.train
        if not pattern:
            raise ValueError("`config.data.train` is empty: set it to a TFRecord glob, e.g. 'out/part-*.tfrecord.gz'")
        from recsys.data.input import list_files

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
        if int(data_config.batch_size) < 1:
            raise ValueError(f"`config.data.batch_size` must be >= 1. Received: {data_config.batch_size!r}")
        features_path = data_config.features or default_features_path(pattern.split(",")[0].strip())
        features = FeatureSet.load(features_path)
        source = cls(pattern, files, features_path, features, data_config.shuffle, int(data_config.shuffle_buffer),
                     int(seed))
        source.check_records()
        return source

    def check_records(self, count: int = CHECKED_RECORDS) -> None:
        """Checks the first `count` records against features.json (names, types, one value, id ranges).

        Raises:
          InputDataError: naming the file, the record and the feature that does not match, or saying that the
            files hold no records.
        """
        from recsys.data.input import resolve_compression

        compression = resolve_compression(self.files)
        checked = 0
        for path in self.files:
            for raw in tf.data.TFRecordDataset(path, compression_type=compression).take(count - checked):
                example = tf.train.Example.FromString(raw.numpy())
                problem = _record_problem(example, self.features)
                if problem:
                    raise InputDataError(
                        f"Record {checked} of the input (file {path}) does not match {self.features_path}: {problem}"
                    )
                checked += 1
            if checked >= count:
                return
        if checked == 0:
            raise InputDataError(f"No examples in the input: the {len(self.files)} file(s) matching {self.pattern!r} "
                                 "hold no records")

    def expected_examples(self, max_examples: int = 0) -> int | None:
        """The stream's length for progress/ETA if it is cheap to know, else None.

        The preprocessing job writes `summary.json` (`rows_ok`) beside its shards; it is used when the glob
        matches every shard of that folder. `max_examples` (> 0) caps the answer.
        """
        total = None
        directory = os.path.dirname(self.pattern) or "."
        summary = os.path.join(directory, "summary.json")
        if tf.io.gfile.exists(summary):
            all_shards = sorted(tf.io.gfile.glob(os.path.join(directory, "part-*")))
            if all_shards == self.files:
                try:
                    with tf.io.gfile.GFile(summary) as f:
                        total = int(json.load(f)["rows_ok"])
                except (ValueError, KeyError, TypeError):
                    total = None
        if max_examples:
            total = min(total, max_examples) if total is not None else max_examples
        return total

    def dataset(self, batch_size: int, start_offset: int = 0, input_context=None) -> tf.data.Dataset:
        """The stream from example `start_offset` of the global stream on, batched (final partial batch kept).

        With `input_context`, `batch_size` is the global batch and this input pipeline gets its share of every
        global batch (`recsys.data.input`): global step s always covers examples [s·B, (s+1)·B) of the stream.
        """
        from recsys.data.input import make_dataset

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
        )

    def distributed_dataset(self, strategy: tf.distribute.Strategy, global_batch_size: int, start_offset: int = 0):
        """The stream split across the strategy's replicas; each global batch has `global_batch_size` examples."""
        if global_batch_size % strategy.num_replicas_in_sync:
            raise ValueError(
                f"`config.data.batch_size` ({global_batch_size}) must be divisible by the number of replicas in "
                f"sync ({strategy.num_replicas_in_sync})"
            )

        def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
            return self.dataset(global_batch_size, start_offset=start_offset, input_context=input_context)

        return strategy.distribute_datasets_from_function(dataset_fn)


    def replica_dataset(
        self, batch_size: int, seeds: Sequence[int], start_offset: int = 0, input_context=None
    ) -> tf.data.Dataset:
        """One parsed stream, one order per data seed: for replica mode with per-replica shuffles.

        Each window of `shuffle_buffer` examples (the whole stream for shuffle='full') is read and parsed once, in
        time order; replica r gets the window permuted by a stateless shuffle seeded by (seeds[r], window index)
        — the permutation `recsys.data.input` applies with that seed — so every replica sees exactly the same
        examples per window. Elements are tuples over replicas of `(features, positions)`, where `positions`
        [batch] are the examples' int64 indices in the time-ordered stream (to align predictions across replicas).
        `start_offset` counts examples of each replica's own order, as in `recsys.data.input.make_dataset`.

        Raises:
          ValueError: shuffle='none' (one order only), or several input pipelines (multi-worker; not supported).
        """
        from recsys.data.input import _WHOLE_STREAM, resolve_compression

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
        skipped_windows = int(start_offset) // window
        remainder = int(start_offset) - skipped_windows * window
        windows = records.skip(skipped_windows * window).batch(window).enumerate(start=skipped_windows)
        seeds = [int(s) for s in seeds]

        def permute(index, serialized):
            parsed = tf.io.parse_example(serialized, spec)
            count = tf.shape(serialized, out_type=tf.int64)[0]
            first = tf.where(index == skipped_windows, tf.constant(remainder, tf.int64), 0)
            replicas = []
            for seed in seeds:
                order = tf.random.experimental.stateless_shuffle(
                    tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64), index]))[first:]
                replicas.append(({name: tf.gather(value, order) for name, value in parsed.items()},
                                 index * window + order))
            return tuple(replicas)

        dataset = windows.map(permute, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.rebatch(per_replica_batch, drop_remainder=False).prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = True
        return dataset.with_options(options)

    def replica_distributed_dataset(
        self, strategy: tf.distribute.Strategy, global_batch_size: int, seeds: Sequence[int], start_offset: int = 0
    ):
        """`replica_dataset` split across the strategy's replicas (one input pipeline)."""
        if global_batch_size % strategy.num_replicas_in_sync:
            raise ValueError(
                f"`config.data.batch_size` ({global_batch_size}) must be divisible by the number of replicas in "
                f"sync ({strategy.num_replicas_in_sync})"
            )

        def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
            return self.replica_dataset(global_batch_size, seeds, start_offset=start_offset,
                                        input_context=input_context)

        return strategy.distribute_datasets_from_function(dataset_fn)


def _record_problem(example: tf.train.Example, features: FeatureSet) -> str | None:
    """Why a record does not match features.json, or None."""
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
