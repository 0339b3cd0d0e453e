"""The output contract of the preprocessing job: the files of a preprocessed data directory and how readers find them.

    <output_dir>/part-<file>-<shard>.tfrecord.gz   GZIP TFRecords of tf.train.Example; name order = time order
    <output_dir>/features.json                     the schema (`recsys.data.features`)
    <output_dir>/summary.json                      row counts and shards; written last: it marks a finished run
    <output_dir>/bad_rows-*.jsonl                  dead letters, one JSON object per malformed input line
    <output_dir>/vocab/C1.txt .. C26.txt           frequency vocabularies (one `value<TAB>count` line per id from 1)

Readers are given a *data pattern*: a glob, or comma-separated globs, of TFRecord files. The directory of its first
glob is the data directory, where `features.json` and `summary.json` are looked for.

Plain Python (no TensorFlow, no Beam): the Beam job, its workers, the trainer and the benchmarks all import it.
"""
from __future__ import annotations

import os

SHARD_PREFIX = "part-"
SHARD_SUFFIX = ".tfrecord.gz"
SHARD_PATTERN = f"{SHARD_PREFIX}*{SHARD_SUFFIX}"
FEATURES_FILE = "features.json"
SUMMARY_FILE = "summary.json"
BAD_ROWS_PREFIX = "bad_rows"
BAD_ROWS_SUFFIX = ".jsonl"
VOCAB_SUBDIR = "vocab"
VOCAB_SUFFIX = ".txt"
# A file is written under this prefix and renamed when complete, so a finished name is never half-written.
TEMPORARY_PREFIX = ".tmp-"


def shard_name(file_index: int, shard_index: int) -> str:
    """`part-<file>-<shard>.tfrecord.gz`: name order = input file order, then line order = time order."""
    return f"{SHARD_PREFIX}{file_index:05d}-{shard_index:06d}{SHARD_SUFFIX}"


def vocab_path(vocab_dir: str, feature: str) -> str:
    """The vocabulary file of one categorical feature in `vocab_dir`."""
    return os.path.join(vocab_dir, feature + VOCAB_SUFFIX)


def split_patterns(data_pattern: str) -> list[str]:
    """The globs of a data pattern (comma-separated, blanks around them ignored), in the order given."""
    return [p.strip() for p in data_pattern.split(",") if p.strip()]


def data_directory(data_pattern: str) -> str:
    """The directory of the first glob of `data_pattern` ("." when it names none)."""
    patterns = split_patterns(data_pattern)
    return (os.path.dirname(patterns[0]) if patterns else "") or "."
