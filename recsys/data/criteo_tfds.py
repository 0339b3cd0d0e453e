"""TFDS builder for the Criteo click logs (1TB `day_N[.gz]` files or Kaggle `train.txt`), from `manual_dir`.

The project never downloads Criteo data: the user downloads it from Criteo AI Lab and points TFDS at the folder.

    import recsys  # before TensorFlow
    import tensorflow_datasets as tfds
    from recsys.data import criteo_tfds

    builder = criteo_tfds.CriteoClickLogs(config="hashed", data_dir="/data/tfds")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir="/data/criteo"))
    ds = builder.as_dataset(split="train")          # time order: the builder disables TFDS shuffling

Every line is validated and parsed by `recsys.data.criteo.parse_line`, the same code as the Beam job. A bad line
is skipped, never fatal: it is counted per reason, the first few are logged with file and line number, the totals
are logged at the end and stored in the dataset's metadata (`builder.info.metadata["bad_rows"]`, saved as
metadata.json beside the data).

Features (one `train` split; the same names, dtypes and transforms as `pipelines.preprocess`):

    label    int64    0/1
    ts       int64    0-based position of the line in the log: files in order, every line counted (bad too)
    I1..I13  float32  criteo.transform_int: log(1 + max(x, 0)); missing or negative -> 0
    C1..C26  config "hashed": int64 id = 1 + int(value, 16) mod (hash_buckets - 1), 0 = missing
             (`pipelines.preprocess --vocab_mode=hash --hash_buckets=N` gives the same ids);
             config "raw": the hex string, "" = missing.

The "hashed" records are plain `tf.train.Example`s with the features.json schema, so
`recsys.data.input.make_dataset(<tfds train files>, builder_feature_set(builder))` reads them like Beam output.

Files are taken in natural day order (day_2 before day_10; Kaggle has one file). A generator-based builder runs in
one process: fine for the Kaggle set (45M rows) or a few days; for the full 24 days use the Beam job.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from recsys.data import criteo
from recsys.data.features import FeatureSet, criteo_feature_set

# Names of the downloaded files that hold labelled rows. Kaggle's test.txt has no labels and is not read.
FILE_PATTERNS: tuple[str, ...] = ("day_*", "train.txt", "train.txt.gz", "*.tsv", "*.tsv.gz")
DEFAULT_HASH_BUCKETS = 1_000_003
_LOGGED_BAD_ROWS = 10


class CriteoClickLogsConfig(tfds.core.BuilderConfig):
    """`hash_buckets` = vocabulary size of every categorical feature, or None for raw hex strings."""

    def __init__(self, *, hash_buckets: int | None, **kwargs):
        if hash_buckets is not None and (not isinstance(hash_buckets, int) or hash_buckets < 2):
            raise ValueError(f"`hash_buckets` must be None or an integer >= 2. Received: hash_buckets={hash_buckets!r}")
        super().__init__(**kwargs)
        self.hash_buckets = hash_buckets


class CriteoClickLogs(tfds.core.GeneratorBasedBuilder):
    """Criteo display-advertising click logs in time order, parsed like `pipelines.preprocess`."""

    # No checksums file (nothing is downloaded), so no code path to find it by. Resolving the default path in
    # TFDS 4.9.10 needs the `importlib_resources` package, which etils >= 1.12 no longer installs.
    code_path = None
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: one train split in log order; hashed or raw categoricals."}
    BUILDER_CONFIGS = [
        CriteoClickLogsConfig(
            name="hashed",
            description=f"Categoricals as int64 ids in [0, {DEFAULT_HASH_BUCKETS}) (0 = missing).",
            hash_buckets=DEFAULT_HASH_BUCKETS,
        ),
        CriteoClickLogsConfig(name="raw", description="Categoricals as hex strings ('' = missing).", hash_buckets=None),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the Criteo click logs yourself (the licence, CC BY-NC-SA 4.0, must be accepted on Criteo's site):
      * Criteo 1TB Click Logs (https://ailab.criteo.com/, "Criteo 1TB Click Logs dataset"): day_0.gz ... day_23.gz,
        or any subset of days, kept as downloaded (.gz) or decompressed (day_0, day_1, ...);
      * Criteo Kaggle display-advertising challenge: train.txt (test.txt has no labels and is ignored).
    Put the files in one folder and pass it as manual_dir, e.g.
      tfds.download.DownloadConfig(manual_dir="/data/criteo").
    Any Criteo-format *.tsv / *.tsv.gz file there is read too (e.g. data/criteo_sample/day_0_head10k.tsv).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        if self.builder_config.hash_buckets is None:
            categorical = tfds.features.Text()
        else:
            categorical = tfds.features.Scalar(dtype=np.int64)
        features = {criteo.LABEL: tfds.features.Scalar(dtype=np.int64), criteo.TIME: tfds.features.Scalar(np.int64)}
        features.update({name: tfds.features.Scalar(dtype=np.float32) for name in criteo.INT_COLUMNS})
        features.update({name: categorical for name in criteo.CAT_COLUMNS})
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            disable_shuffling=True,  # online training needs the log's time order
            homepage="https://ailab.criteo.com/ressources/",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        files = find_log_files(os.fspath(dl_manager.manual_dir))
        return {"train": self._generate_examples(files)}

    def _generate_examples(self, files: list[str]) -> Iterator[tuple[int, dict]]:
        buckets = self.builder_config.hash_buckets
        bad_reasons = dict.fromkeys(criteo.BAD_REASONS, 0)
        ts = 0
        for path in files:
            for line_number, line in enumerate(_read_lines(path), start=1):
                try:
                    row = criteo.parse_line(line)
                except criteo.BadRowError as e:
                    bad_reasons[e.reason] += 1
                    if sum(bad_reasons.values()) <= _LOGGED_BAD_ROWS:
                        logging.warning("skipping bad row %s:%d: %s", path, line_number, e)
                else:
                    yield ts, _example(row, ts, buckets)
                ts += 1
        bad = sum(bad_reasons.values())
        logging.info("criteo_click_logs: %d lines read, %d bad rows skipped %s", ts, bad, bad_reasons)
        self.info.metadata["lines_read"] = ts
        self.info.metadata["bad_rows"] = bad
        self.info.metadata["bad_reasons"] = bad_reasons


def find_log_files(manual_dir: str) -> list[str]:
    """The labelled log files in `manual_dir` (FILE_PATTERNS), in natural order (day_2 before day_10).

    Raises:
      FileNotFoundError: naming the folder and the patterns when none match.
    """
    found = {
        path
        for pattern in FILE_PATTERNS
        for path in tf.io.gfile.glob(os.path.join(manual_dir, pattern))
        if not tf.io.gfile.isdir(path)
    }
    if not found:
        raise FileNotFoundError(
            f"No Criteo log files in manual_dir={manual_dir!r}; expected names matching {FILE_PATTERNS}. "
            f"{CriteoClickLogs.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    return sorted(found, key=_natural_key)


def builder_feature_set(builder: CriteoClickLogs) -> FeatureSet:
    """The features.json schema of a "hashed" build, for `recsys.data.input.make_dataset` and the trainer."""
    buckets = builder.builder_config.hash_buckets
    if buckets is None:
        raise ValueError(
            "builder_feature_set needs integer ids: use config='hashed'. Received: config="
            f"{builder.builder_config.name!r}"
        )
    return criteo_feature_set(
        {name: buckets for name in criteo.CAT_COLUMNS},
        {
            "vocab_mode": "hash",
            "hash_buckets": buckets,
            "hash_function": "1 + int(value, 16) mod (hash_buckets - 1)",
            "source": f"tfds {builder.name}/{builder.builder_config.name}:{builder.version}",
        },
    )


def _example(row: criteo.CriteoRow, ts: int, buckets: int | None) -> dict:
    example = {criteo.LABEL: row.label, criteo.TIME: ts}
    example.update(
        {name: np.float32(criteo.transform_int(v)) for name, v in zip(criteo.INT_COLUMNS, row.ints, strict=True)}
    )
    if buckets is None:
        example.update({name: v or "" for name, v in zip(criteo.CAT_COLUMNS, row.cats, strict=True)})
    else:
        example.update(
            {
                name: 0 if v is None else criteo.hash_id(v, buckets)
                for name, v in zip(criteo.CAT_COLUMNS, row.cats, strict=True)
            }
        )
    return example


def _read_lines(path: str) -> Iterator[str]:
    # Local files through the OS (much faster line iteration), remote ones (gs://, s3://) through gfile.
    with tf.io.gfile.GFile(path, "rb") if "://" in path else open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw
        for line in stream:
            yield line.decode("utf-8", errors="replace")


def _natural_key(path: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", os.path.basename(path))]
