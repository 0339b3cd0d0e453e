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


def test_vocabulary_lines_cut_each_file_at_the_global_ts():
    assert preprocessing.vocabulary_lines(first_ts=0, vocab_rows=0) is None  # every line
    assert preprocessing.vocabulary_lines(first_ts=0, vocab_rows=7) == 7
    assert preprocessing.vocabulary_lines(first_ts=5, vocab_rows=7) == 2
    assert preprocessing.vocabulary_lines(first_ts=7, vocab_rows=7) == 0
    assert preprocessing.vocabulary_lines(first_ts=9, vocab_rows=7) == 0


def test_count_file_categoricals_reads_only_the_first_lines(tmp_path):
    good = "\t".join(["1"] + [""] * 13 + ["aa"] + [""] * 25)
    other = good.replace("\taa\t", "\tbb\t")
    path = tmp_path / "x.tsv"
    path.write_text("\n".join([good, "", other, other]) + "\n")
    counts, lines, rows = preprocessing.count_file_categoricals(str(path))
    assert (dict(counts["C1"]), lines, rows) == ({"aa": 1, "bb": 2}, 4, 3)
    counts, lines, rows = preprocessing.count_file_categoricals(str(path), max_lines=3)
    assert (dict(counts["C1"]), lines, rows) == ({"aa": 1, "bb": 1}, 3, 2)  # the blank line takes a ts
    # max_lines=0: the file is never opened.
    counts, lines, rows = preprocessing.count_file_categoricals(str(tmp_path / "missing.tsv"), max_lines=0)
    assert (sum(map(len, counts.values())), lines, rows) == (0, 0, 0)


def test_vocabulary_rows_record_which_rows_were_counted():
    def recorded(input_lines=10, rows_counted=6, **kwargs):
        return preprocessing.PreprocessConfig("in.tsv", "out", **kwargs).vocabulary_rows(input_lines, rows_counted)

    assert recorded() == {"vocab_rows": None, "vocab_source_rows": "all rows", "vocab_rows_counted": 6}
    assert recorded(vocab_rows=7) == {"vocab_rows": 7, "vocab_source_rows": "ts < 7", "vocab_rows_counted": 6}
    assert recorded(vocab_rows=10)["vocab_source_rows"] == "ts < 10: all rows (the input has 10 lines)"
    nothing_counted = {"vocab_rows": None, "vocab_source_rows": None, "vocab_rows_counted": None}
    assert recorded(rows_counted=None, vocab_dir="day_0") == nothing_counted
    assert recorded(rows_counted=None, vocab_mode="hash", hash_buckets=10) == nothing_counted
    with pytest.raises(ValueError, match="rows_counted"):
        recorded(rows_counted=None)
