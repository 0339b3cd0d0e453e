"""The TFDS builder, built for real with download_and_prepare on the bundled Criteo sample (no network)."""

import math
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from recsys.data import criteo, criteo_tfds, input, synthetic
from tests.conftest import CRITEO_SAMPLE

tfds.disable_progress_bar()


def _read_all(builder):
    """The whole split as one batch of NumPy arrays (per-example iteration is much slower)."""
    (batch,) = tfds.as_numpy(builder.as_dataset(split="train", batch_size=1 << 20))
    return batch


def _build(manual_dir, data_dir, config="hashed"):
    builder = criteo_tfds.CriteoClickLogs(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def test_builds_bundled_sample_in_log_order_with_parsed_values(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    shutil.copy(CRITEO_SAMPLE, manual_dir / CRITEO_SAMPLE.name)
    builder = _build(manual_dir, tmp_path / "tfds")

    lines = CRITEO_SAMPLE.read_text().splitlines()
    expected_rows = [criteo.parse_line(line) for line in lines]  # the sample has no bad rows
    assert builder.info.splits["train"].num_examples == len(lines) == 10_000
    data = _read_all(builder)
    assert len(data["ts"]) == 10_000
    np.testing.assert_array_equal(data["ts"], np.arange(10_000))  # time order kept
    np.testing.assert_array_equal(data["label"], [r.label for r in expected_rows])
    assert data["label"].sum() == 265
    for index in (0, 1, 4321, 9999):
        row = expected_rows[index]
        for name, value in zip(criteo.INT_COLUMNS, row.ints, strict=True):
            assert math.isclose(float(data[name][index]), criteo.transform_int(value), rel_tol=1e-6)
        for name, value in zip(criteo.CAT_COLUMNS, row.cats, strict=True):
            assert int(data[name][index]) == (0 if value is None else 1 + int(value, 16) % (1_000_003 - 1))

    # The same files read by the training input pipeline with the builder's features.json schema.
    pattern = str(tmp_path / "tfds" / "criteo_click_logs" / "hashed" / "1.0.0" / "*train.tfrecord*")
    batches = list(input.make_dataset(pattern, criteo_tfds.builder_feature_set(builder), batch_size=4096))
    ts = np.concatenate([b["ts"].numpy() for b in batches])
    np.testing.assert_array_equal(ts, np.arange(10_000))
    np.testing.assert_array_equal(np.concatenate([b["C3"].numpy() for b in batches]), data["C3"])
    # Reloading from data_dir restores the bad-row count written as metadata.
    reloaded = criteo_tfds.CriteoClickLogs(config="hashed", data_dir=str(tmp_path / "tfds"))
    assert reloaded.info.metadata["bad_rows"] == 0
    assert reloaded.info.metadata["lines_read"] == 10_000


def test_raw_config_skips_and_counts_bad_rows_across_files_in_day_order(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    head = CRITEO_SAMPLE.read_text().splitlines(keepends=True)[:300]
    (manual_dir / "day_0").write_text("".join(head))
    config = synthetic.GeneratorConfig(rows=1_000, seed=3, malformed_fraction=0.05)
    synthetic.write_clicklogs(str(manual_dir / "day_10.tsv.gz"), config)
    day_2 = head[:50] + ["\n", "1\tnot\ta\trow\n", head[0].replace("\t", "\tzz", 1)]
    (manual_dir / "day_2").write_text("".join(day_2))
    (manual_dir / "test.txt").write_text("no labels here\n")  # Kaggle's unlabelled file: not read

    files = criteo_tfds.find_log_files(str(manual_dir))
    assert [p.rsplit("/", 1)[-1] for p in files] == ["day_0", "day_2", "day_10.tsv.gz"]
    builder = _build(manual_dir, tmp_path / "tfds", config="raw")

    generated_bad = sum(int((c.malformed >= 0).sum()) for c in synthetic.ClickLogGenerator(config).chunks())
    bad = 3 + generated_bad
    data = _read_all(builder)
    assert len(data["ts"]) == 300 + 53 + 1_000 - bad
    assert builder.info.metadata["bad_rows"] == bad
    assert all(count > 0 for count in builder.info.metadata["bad_reasons"].values())
    ts = data["ts"]
    assert (np.diff(ts) > 0).all() and ts[-1] == 300 + 53 + 1_000 - 1  # bad lines keep their position in ts
    first = criteo.parse_line(head[0])
    assert data["C1"][0].decode() == data["C1"][300].decode() == (first.cats[0] or "")  # day_2 starts like day_0
    assert data["C14"][0].decode() == (first.cats[13] or "")


def test_missing_files_and_bad_config_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="No Criteo log files in manual_dir"):
        criteo_tfds.find_log_files(str(tmp_path))
    with pytest.raises(ValueError, match="hash_buckets"):
        criteo_tfds.CriteoClickLogsConfig(name="bad", hash_buckets=1)
    raw = criteo_tfds.CriteoClickLogs(config="raw", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="config='hashed'"):
        criteo_tfds.builder_feature_set(raw)


def test_hash_ids_agree_with_the_beam_job():
    preprocessing = pytest.importorskip("recsys.data.preprocessing")
    cats = ["68fd1e64", "00000000", "ffffffff", "a0aaffa6"] + [None] * (len(criteo.CAT_COLUMNS) - 4)
    for buckets in (2, 97, 1_000_003):
        example = criteo_tfds._example(criteo.CriteoRow(1, (None,) * len(criteo.INT_COLUMNS), tuple(cats)), 0, buckets)
        assert [example[name] for name in criteo.CAT_COLUMNS] == preprocessing.HashIds(buckets).ids(cats)
