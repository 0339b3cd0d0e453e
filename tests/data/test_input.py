"""recsys.data.input on real TFRecord files: order, shuffle modes, resume offsets, sharding and errors."""

import numpy as np
import pytest
import tensorflow as tf

from recsys.data import features as features_lib
from recsys.data import input
from recsys.testing import toy_feature_set, write_toy_tfrecords

FEATURES = toy_feature_set()  # label, ts, I1..I3 float32, C1 (vocab 10), C2 (vocab 20)


def _write(path, ts_values, seed=0):
    """A TFRecord file of toy examples whose `ts` are the given values (so order can be checked)."""
    rng = np.random.default_rng(seed)
    options = "GZIP" if str(path).endswith(".gz") else None
    with tf.io.TFRecordWriter(str(path), options=options) as writer:
        for ts in ts_values:
            feature = {
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(ts) % 3 == 0])),
                "ts": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(ts)])),
                "C1": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(ts) % 10])),
                "C2": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(rng.integers(20))])),
            }
            for name in ("I1", "I2", "I3"):
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(ts) / 7]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _write_rows(path, rows):
    """A plain TFRecord file of Examples with the given {feature: value} rows (ints int64, floats float)."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            feature = {
                name: tf.train.Feature(float_list=tf.train.FloatList(value=[value])) if isinstance(value, float)
                else tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
                for name, value in row.items()
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """Three shards whose sorted names hold ts 0..229 in order; written out of name order on purpose."""
    directory = tmp_path_factory.mktemp("shards")
    _write(directory / "part-00001.tfrecord.gz", range(100, 150))
    _write(directory / "part-00000.tfrecord.gz", range(0, 100))
    _write(directory / "part-00002.tfrecord.gz", range(150, 230))
    return str(directory / "part-*.tfrecord.gz")


def _ts(dataset) -> np.ndarray:
    return np.concatenate([batch["ts"].numpy() for batch in dataset])


def test_none_mode_is_strict_time_order_across_sorted_files_with_all_features(stream):
    dataset = input.make_dataset(stream, FEATURES, batch_size=64)
    batches = list(dataset)
    assert [len(b["ts"]) for b in batches] == [64, 64, 64, 38]
    np.testing.assert_array_equal(np.concatenate([b["ts"].numpy() for b in batches]), np.arange(230))
    first = batches[0]
    assert set(first) == {f.name for f in FEATURES.features}
    assert first["label"].dtype == tf.int64 and first["ts"].dtype == tf.int64
    assert first["I2"].dtype == tf.float32 and first["C1"].dtype == tf.int64
    np.testing.assert_allclose(first["I3"].numpy(), np.arange(64) / 7, rtol=1e-6)
    np.testing.assert_array_equal(first["C1"].numpy(), np.arange(64) % 10)
    assert [len(b["ts"]) for b in input.make_dataset(stream, FEATURES, 64, drop_remainder=True)] == [64] * 3
    assert input.count_examples(stream) == 230


def test_gzip_and_plain_files_read_the_same(tmp_path):
    write_toy_tfrecords(str(tmp_path / "plain.tfrecord"), FEATURES, rows=50, seed=4)
    write_toy_tfrecords(str(tmp_path / "zipped.tfrecord.gz"), FEATURES, rows=50, seed=4)
    plain = next(iter(input.make_dataset(str(tmp_path / "plain.tfrecord"), FEATURES, batch_size=50)))
    zipped = next(iter(input.make_dataset(str(tmp_path / "*.gz"), FEATURES, batch_size=50)))
    forced = next(iter(input.make_dataset(str(tmp_path / "zipped*"), FEATURES, batch_size=50, compression="GZIP")))
    for name in plain:
        np.testing.assert_array_equal(plain[name].numpy(), zipped[name].numpy())
        np.testing.assert_array_equal(plain[name].numpy(), forced[name].numpy())
    assert plain["label"].numpy().sum() > 0  # real values, not defaults


@pytest.mark.parametrize("mode", ["window", "full"])
def test_shuffle_is_a_seeded_permutation(stream, mode):
    first = _ts(input.make_dataset(stream, FEATURES, 32, shuffle=mode, shuffle_buffer=64, seed=7))
    again = _ts(input.make_dataset(stream, FEATURES, 32, shuffle=mode, shuffle_buffer=64, seed=7))
    other = _ts(input.make_dataset(stream, FEATURES, 32, shuffle=mode, shuffle_buffer=64, seed=8))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, np.arange(230))
    np.testing.assert_array_equal(np.sort(first), np.arange(230))
    np.testing.assert_array_equal(np.sort(other), np.arange(230))


def test_window_mode_keeps_every_example_inside_its_window(stream):
    window = 64
    order = _ts(input.make_dataset(stream, FEATURES, 50, shuffle="window", shuffle_buffer=window, seed=1))
    positions = np.arange(len(order))
    np.testing.assert_array_equal(order // window, positions // window)  # ts 0..229 sit at positions 0..229
    for start in range(0, 230, window):
        assert not np.array_equal(order[start : start + window], np.arange(start, min(start + window, 230)))


def test_full_mode_mixes_the_whole_stream(stream):
    order = _ts(input.make_dataset(stream, FEATURES, 230, shuffle="full", seed=3))
    assert order[:64].max() >= 128  # the first window's places hold examples from far later


def test_window_order_is_the_stateless_shuffle_of_each_window(stream):
    """Pins the order to its definition: a checkpointed run resumes, and replicas align, only if it never changes."""
    records = list(tf.data.TFRecordDataset(input.list_files(stream), "GZIP").as_numpy_iterator())
    expected = []
    for index, start in enumerate(range(0, len(records), 64)):
        window = tf.constant(records[start : start + 64])
        expected += list(tf.random.experimental.stateless_shuffle(window, seed=tf.constant([5, index], tf.int64)))
    serialized = [batch[input.SERIALIZED_KEY].numpy() for batch in input.make_dataset(
        stream, FEATURES, 50, shuffle="window", shuffle_buffer=64, seed=5, keep_serialized=True)]
    assert list(np.concatenate(serialized)) == [r.numpy() for r in expected]

    # Several seeds: each order is that seed's, trimmed by start_offset in the first kept window.
    windows = list(input.shuffled_windows(tf.data.Dataset.from_tensor_slices(records), 64, [5, 6], start_offset=70))
    assert [int(index) for index, _, _ in windows] == [1, 2, 3]
    index, batch, orders = windows[0]
    assert orders.shape == (2, 58)
    for row, seed in enumerate((5, 6)):
        shuffled = tf.random.experimental.stateless_shuffle(tf.range(64, dtype=tf.int64), seed=[seed, 1])
        np.testing.assert_array_equal(orders[row].numpy(), shuffled.numpy()[6:])


def test_check_records_reads_the_first_records_and_the_last_files_first_record(tmp_path):
    rows = [{"label": 0, "ts": ts, "I1": 0.5, "I2": 0.0, "I3": 1.0, "C1": 1, "C2": 2} for ts in range(5)]
    _write_rows(tmp_path / "part-0.tfrecord", rows)
    _write_rows(tmp_path / "part-1.tfrecord", rows[:3] + [{**rows[3], "C1": 10}])
    _write_rows(tmp_path / "part-2.tfrecord", [{**rows[0], "label": 2}])
    files = input.list_files(str(tmp_path / "part-*"))
    assert input.check_records(files[:2], FEATURES, "", file_pattern="p", count=8) == 8
    with pytest.raises(input.InputDataError, match=r"Record 3 of .*part-1.tfrecord \(file_pattern='p'\) does not "
                                                   r"match f.json: categorical 'C1' has id 10 outside"):
        input.check_records(files[:2], FEATURES, "", file_pattern="p", features_path="f.json", count=9)
    with pytest.raises(input.InputDataError, match=r"Record 0 of .*part-2.tfrecord .*label 'label' is 2"):
        input.check_records(files, FEATURES, "", file_pattern="p", count=1)
    assert input.record_problem(b"\xff\xff", FEATURES) == "it is not a tf.train.Example (2 bytes)"


@pytest.mark.parametrize("mode", ["none", "window", "full"])
def test_start_offset_resumes_the_same_stream(stream, mode):
    kwargs = dict(shuffle=mode, shuffle_buffer=64, seed=5)
    whole = _ts(input.make_dataset(stream, FEATURES, 16, **kwargs))
    for offset in (1, 63, 64, 100, 229):  # inside, at and across window boundaries
        resumed = _ts(input.make_dataset(stream, FEATURES, 16, start_offset=offset, **kwargs))
        np.testing.assert_array_equal(resumed, whole[offset:], err_msg=f"start_offset={offset}")
    assert list(input.make_dataset(stream, FEATURES, 16, start_offset=230, **kwargs)) == []


def test_input_context_shards_the_global_stream_by_example(stream):
    global_batch = 8
    whole = _ts(input.make_dataset(stream, FEATURES, global_batch, shuffle="window", shuffle_buffer=64, seed=2))
    shards = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2)
        dataset = input.make_dataset(
            stream, FEATURES, global_batch, shuffle="window", shuffle_buffer=64, seed=2, input_context=context
        )
        batches = [b["ts"].numpy() for b in dataset]
        assert all(len(b) == 4 for b in batches[:-1])  # per-replica batch = global batch / replicas
        shards.append(np.concatenate(batches))
    np.testing.assert_array_equal(shards[0], whole[0::2])
    np.testing.assert_array_equal(shards[1], whole[1::2])
    # Global step s (one batch per worker) covers exactly the stream's examples [8 s, 8 s + 8).
    np.testing.assert_array_equal(np.sort(np.concatenate([shards[0][:4], shards[1][:4]])), np.sort(whole[:8]))

    # Two replicas per pipeline: per-replica batches of 2, still stream positions i, i + 2, ...
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4)
    dataset = input.make_dataset(
        stream, FEATURES, global_batch, shuffle="window", shuffle_buffer=64, seed=2, input_context=context
    )
    batches = [b["ts"].numpy() for b in dataset]
    assert [len(b) for b in batches] == [2] * 57 + [1]
    np.testing.assert_array_equal(np.concatenate(batches), whole[1::2])
    # 230 = 19 * 12 + 2: the last global batch has nothing for pipelines 2 and 3, which then just stop.
    context = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=3, num_replicas_in_sync=4)
    batches = [b["ts"].numpy() for b in input.make_dataset(stream, FEATURES, 12, input_context=context)]
    assert [len(b) for b in batches] == [3] * 19
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(3, 228, 4))
    # One pipeline feeding two replicas: per-replica batches of the unsharded stream.
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    batches = [b["ts"].numpy() for b in input.make_dataset(stream, FEATURES, global_batch, input_context=context)]
    assert len(batches[0]) == 4
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(230))


def test_errors_are_clear(stream, tmp_path):
    missing = str(tmp_path / "nothing-*.tfrecord")
    with pytest.raises(FileNotFoundError, match="nothing-"):
        input.make_dataset(missing, FEATURES, 8)
    with pytest.raises(ValueError, match=r"`shuffle` must be one of \('none', 'window', 'full'\).*'random'"):
        input.make_dataset(stream, FEATURES, 8, shuffle="random")
    with pytest.raises(ValueError, match="batch_size"):
        input.make_dataset(stream, FEATURES, 0)
    with pytest.raises(ValueError, match="start_offset"):
        input.make_dataset(stream, FEATURES, 8, start_offset=-1)
    with pytest.raises(ValueError, match="compression"):
        input.make_dataset(stream, FEATURES, 8, compression="zip")

    wrong_type = features_lib.FeatureSet(
        tuple(features_lib.Feature(f.name, "float32", "numeric") if f.name == "C2" else f for f in FEATURES.features)
    )
    with pytest.raises(input.InputDataError, match=r"part-\*\.tfrecord\.gz.*does not match features.json: "
                                                  r"feature 'C2' is int64_list, features.json says float32"):
        input.make_dataset(stream, wrong_type, 8)
    extra = features_lib.FeatureSet((*FEATURES.features, features_lib.Feature("C9", "int64", "categorical", 5)))
    with pytest.raises(ValueError, match=r"does not match features.json: features \['C9'\] are missing"):
        input.make_dataset(stream, extra, 8)

    (tmp_path / "a.tfrecord").write_bytes(b"")
    write_toy_tfrecords(str(tmp_path / "b.tfrecord.gz"), FEATURES, rows=3)
    with pytest.raises(ValueError, match="all matched files to be GZIP"):
        input.make_dataset(str(tmp_path / "*.tfrecord*"), FEATURES, 8)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "c.tfrecord").write_bytes(b"this is not a TFRecord file")
    with pytest.raises(ValueError, match=r"Cannot read TFRecords from .*c\.tfrecord"):
        input.make_dataset(str(tmp_path / "plain" / "*"), FEATURES, 8)
