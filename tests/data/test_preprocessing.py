"""recsys.data.preprocessing: the preprocessing job's per-file and per-row pieces, without Beam or TensorFlow.

The job itself (Beam transforms, entry point, outputs) is tested in tests/pipelines/test_preprocess.py.
"""
import gzip

import pytest

from recsys.data import criteo, preprocessing


def test_hash_ids_are_stable():
    ids = preprocessing.HashIds(1000)
    assert ids.ids(["ffffffff", None, "0", "3e7"]) == [1 + 0xFFFFFFFF % 999, 0, 1, 1]
    assert criteo.hash_id("68fd1e64", 1_000_003) == 1 + 0x68FD1E64 % 1_000_002
    with pytest.raises(ValueError, match="hash_buckets"):
        preprocessing.HashIds(1)


def test_select_vocabulary_orders_filters_and_caps():
    counts = {"b": 3, "a": 3, "c": 5, "d": 1}
    assert preprocessing.select_vocabulary(counts, 1, 0) == [("c", 5), ("a", 3), ("b", 3), ("d", 1)]
    assert preprocessing.select_vocabulary(counts, 2, 0) == [("c", 5), ("a", 3), ("b", 3)]
    assert preprocessing.select_vocabulary(counts, 1, 3) == [("c", 5), ("a", 3)]  # vocab size 3 incl. id 0


def test_read_lines_and_count_lines_agree(tmp_path):
    path = tmp_path / "x.tsv.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"a\r\n\nb\xff\nlast")
    assert list(preprocessing.read_lines(str(path))) == ["a\r", "", "b\udcff", "last"]
    assert preprocessing.count_lines(str(path)) == 4
