"""recsys.data.layout: the names in a preprocessed data directory and how a data pattern finds them."""
import fnmatch

from recsys.data import layout


def test_shard_names_match_the_shard_pattern_and_sort_in_time_order():
    names = [layout.shard_name(f, s) for f in (0, 1, 12) for s in (0, 9, 10, 123456)]
    assert names[0] == "part-00000-000000.tfrecord.gz"
    assert all(fnmatch.fnmatch(name, layout.SHARD_PATTERN) for name in names)
    assert sorted(names) == names
    assert not fnmatch.fnmatch(layout.TEMPORARY_PREFIX + names[0], layout.SHARD_PATTERN)


def test_data_patterns():
    assert layout.split_patterns(" a/*.gz , ,b/c.gz,") == ["a/*.gz", "b/c.gz"]
    assert layout.split_patterns(" , ") == []
    assert layout.data_directory("/d/x/part-*,/e/part-1") == "/d/x"
    assert layout.data_directory("part-*") == layout.data_directory("") == "."
    assert layout.vocab_path("out/vocab", "C7") == "out/vocab/C7.txt"
