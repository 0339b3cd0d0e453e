"""Input that scales with workers (`config.data.shard_by="file"`): each worker reads only its own files.

Fast in-process tests of the share assignment and of the per-worker input pipelines (every example exactly once,
each worker about 1/k of the stream, exact resume offsets); slow loopback clusters (MultiWorkerMirrored with 2
workers, parameter servers with 1 chief, 2 workers, 1 ps) that count what each worker trained.
"""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from recsys.data.input import DataSource, WorkerShare, assign_files
from tests.training.helpers import (
    FEATURES,
    run_multi_worker_cluster,
    run_parameter_server_cluster,
    small_config,
    toy_rows,
    train_command,
    write_examples,
)

# Files of unequal length (1200 examples in all), in time order; `ts` is the example's id in the whole stream.
FILE_ROWS = (300, 250, 200, 250, 200)
TOTAL = sum(FILE_ROWS)


@pytest.fixture(scope="module")
def id_stream(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("id_stream")
    FEATURES.save(str(directory / "features.json"))
    first = 0
    for index, rows in enumerate(FILE_ROWS):
        examples = toy_rows(rows, seed=index)
        for offset, row in enumerate(examples):
            row["ts"] = first + offset
        write_examples(directory / f"part-{index:05d}.tfrecord.gz", examples)
        first += rows
    return str(directory / "part-*.tfrecord.gz")


# --- The assignment --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes,workers", [
    ((5, 5, 5, 5), 2), ((5, 5, 5), 2), ((9, 1, 1, 1, 1, 1, 1), 3), ((3, 8, 2, 7, 7, 1, 4, 4), 3),
    (tuple(range(1, 30)), 4), ((4, 4, 4), 3),
])
def test_assign_files_every_file_once_in_order_balanced_within_one_file(sizes, workers):
    shares = assign_files(sizes, workers)
    assert len(shares) == workers
    assert sorted(i for share in shares for i in share) == list(range(len(sizes)))  # every file exactly once
    assert all(share == sorted(share) and share for share in shares)  # time order within a worker, none empty
    loads = [sum(sizes[i] for i in share) for share in shares]
    assert max(loads) - min(loads) <= max(sizes)


def test_assign_files_round_robin_on_equal_files_and_errors():
    assert assign_files([10] * 7, 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert assign_files([1, 100, 1, 1], 2) == [[0, 2, 3], [1]]
    with pytest.raises(ValueError, match="only 2 file"):
        assign_files([1, 1], 3)
    with pytest.raises(ValueError, match="workers"):
        assign_files([1], 0)


# --- The per-worker pipelines ------------------------------------------------------------------------------------


def _source(stream: str, shuffle: str = "none", shard_by: str = "file") -> DataSource:
    config = small_config(stream, **{"data.shuffle": shuffle, "data.shard_by": shard_by})
    return DataSource.from_config(config.data, seed=3)


def _ids(dataset) -> list[int]:
    return [int(t) for batch in dataset for t in batch["ts"].numpy()]


@pytest.mark.parametrize("shuffle", ["none", "window"])
def test_multi_worker_pipelines_read_disjoint_shares_covering_the_stream(id_stream, shuffle):
    source = _source(id_stream, shuffle)
    workers, global_batch = 2, 64
    ids = []
    for index in range(workers):
        context = tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=index,
                                             num_replicas_in_sync=workers)
        share = WorkerShare(index, workers)
        own = _ids(source.dataset(global_batch, input_context=context, share=share))
        files = share.files(source.files)
        expected = sum(FILE_ROWS[source.files.index(f)] for f in files)
        assert len(own) == expected and abs(expected - TOTAL / workers) <= max(FILE_ROWS)
        if shuffle == "none":  # time order within the worker's share
            assert own == sorted(own)
        ids += own
    assert sorted(ids) == list(range(TOTAL))  # every example exactly once


def test_resume_offset_counts_the_workers_own_stream(id_stream):
    """MultiWorkerMirrored resumes each worker at step·B/k of its own stream: the tail of the uninterrupted one."""
    source = _source(id_stream, "window")
    share = WorkerShare(1, 2)
    full = _ids(source.dataset(32, share=share))
    assert _ids(source.dataset(32, start_offset=5 * 32, share=share)) == full[5 * 32:]
    assert _ids(source.dataset(32, start_offset=len(full) + 64, share=share)) == []  # a finished share


def test_worker_index_as_a_tensor_picks_the_share_in_the_graph(id_stream):
    """A parameter-server worker knows its index only in the graph (the coordinator's call-time capture); the
    files and the resume offset are then picked by a tensor, as here in a tf.function."""
    source = _source(id_stream, "window")
    expected = [_ids(source.dataset(64, start_offset=offset, share=WorkerShare(index, 2)))
                for index, offset in ((0, 0), (1, 70))]

    @tf.function
    def ids_of(index, offset):
        dataset = source.dataset(64, start_offset=offset, share=WorkerShare(index, 2))
        return dataset.reduce(tf.zeros([0], tf.int64), lambda ids, batch: tf.concat([ids, batch["ts"]], 0))

    assert ids_of(tf.constant(0, tf.int64), tf.constant(0, tf.int64)).numpy().tolist() == expected[0]
    assert ids_of(tf.constant(1, tf.int64), tf.constant(70, tf.int64)).numpy().tolist() == expected[1]


def test_shard_by_is_checked(id_stream):
    with pytest.raises(ValueError, match="shard_by"):
        _source(id_stream, shard_by="files")


# --- Loopback clusters -------------------------------------------------------------------------------------------

CLUSTER_OVERRIDES = {"data.shard_by": "file", "data.shuffle": "window", "data.batch_size": 64,
                     "export_saved_model": True}


def _shares(stream: str, workers: int) -> list[int]:
    """The examples in each worker's files (the assignment the trainer uses: by byte size)."""
    files = sorted(tf.io.gfile.glob(stream))
    shares = assign_files([tf.io.gfile.stat(f).length for f in files], workers)
    return [sum(FILE_ROWS[i] for i in share) for share in shares]


def _check_outputs(workdir: pathlib.Path, stream: str, steps: int) -> dict:
    metrics = json.loads((workdir / "metrics.json").read_text())
    shares = _shares(stream, 2)
    # Each worker trained exactly the examples of its own files (about half the stream), all together the stream.
    assert metrics["worker_examples"] == shares and all(abs(n - TOTAL / 2) <= max(FILE_ROWS) for n in shares)
    assert metrics["examples"] == TOTAL and metrics["steps"] == steps
    assert 0 < metrics["progressive_auc"] < 1 and metrics["progressive_logloss"] > 0
    reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
    assert reader.get_tensor("examples/.ATTRIBUTES/VARIABLE_VALUE") == TOTAL
    examples = next(iter(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(stream)), "GZIP").batch(8)))
    probabilities = tf.saved_model.load(str(workdir / "saved_model")).signatures["serving_default"](
        examples=examples)["probabilities"].numpy()
    assert probabilities.shape == (8,) and np.all((probabilities > 0) & (probabilities < 1))
    return metrics


@pytest.mark.slow
def test_multi_worker_mirrored_workers_read_their_own_files(id_stream, tmp_path):
    workdir = tmp_path / "run"
    run_multi_worker_cluster(
        train_command(workdir, id_stream, strategy="multi_worker_mirrored", **CLUSTER_OVERRIDES))
    # Every global step takes B/k = 32 examples from each worker until its share runs out: the longer share sets
    # the number of steps.
    _check_outputs(workdir, id_stream, steps=max(-(-n // 32) for n in _shares(id_stream, 2)))


@pytest.mark.slow
def test_parameter_server_workers_read_their_own_files(id_stream, tmp_path):
    workdir = tmp_path / "run"
    chief, _ = run_parameter_server_cluster(
        train_command(workdir, id_stream, strategy="parameter_server", **CLUSTER_OVERRIDES))
    assert chief.returncode == 0, chief.stderr[-4000:]
    # One step = one worker's batch of 64 from its own stream.
    _check_outputs(workdir, id_stream, steps=sum(-(-n // 64) for n in _shares(id_stream, 2)))
