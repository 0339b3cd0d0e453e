"""Static shapes: the last partial batch padded with zero-weight examples (`config.data.pad_final_batch`), the whole
step under XLA (`config.jit_compile_step`), and `strategy=tpu` without a TPU."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from recsys.data import input as input_lib
from recsys.training import strategy as strategy_lib
from recsys.training.checkpoint import checkpoint_directory
from recsys.training.loop import Trainer
from recsys.training.modes import select_mode
from recsys.training.replicas import ReplicaPlan
from tests.training.helpers import FEATURES, free_port, small_config, toy_rows, write_examples

ROWS, BATCH = 300, 64  # 4 full batches and one of 44: the stream is not a multiple of the batch
TIMING_KEYS = ("examples_per_sec", "train_seconds", "steady_examples_per_sec", "progressive_metrics_seconds")


@pytest.fixture(scope="module")
def no_id_zero(tmp_path_factory) -> str:
    """ROWS examples whose categorical ids are never 0, so only padding (id 0) looks up row 0 of each table."""
    directory = tmp_path_factory.mktemp("no_id_zero")
    FEATURES.save(str(directory / "features.json"))
    rows = toy_rows(ROWS, seed=5)
    for row in rows:
        for feature in FEATURES.categorical:
            row[feature.name] = 1 + row[feature.name] % (feature.vocab_size - 1)
    write_examples(directory / "part-00000.tfrecord.gz", rows)
    return str(directory / "part-*.tfrecord.gz")


def _run(data, workdir, **overrides):
    config = small_config(data, **{"data.batch_size": BATCH, **overrides})
    trainer = Trainer(config, str(workdir), record_predictions=True)
    return trainer, trainer.run()


def _numbers(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key not in TIMING_KEYS}


def _assert_close_metrics(a: dict, b: dict, rtol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_close_metrics(a[key], b[key], rtol)
        elif isinstance(a[key], list):
            assert len(a[key]) == len(b[key]), key
            for x, y in zip(a[key], b[key], strict=True):
                _assert_close_metrics({"v": x}, {"v": y}, rtol)
        elif isinstance(a[key], float):
            np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=1e-9, err_msg=key)
        else:
            assert a[key] == b[key], key


# One run of each kind, shared by the tests below: (trainer, outputs).
RUNS = {
    "plain": {},
    "padded": {"data.pad_final_batch": True},
    "jit": {"data.pad_final_batch": True, "jit_compile_step": True},
    "replicas": {"replicas.count": 2, "replicas.noise": "shuffle"},
    "replicas_padded": {"replicas.count": 2, "replicas.noise": "shuffle", "data.pad_final_batch": True},
}


@pytest.fixture(scope="module")
def runs(no_id_zero, tmp_path_factory):
    """Trains each of RUNS once, when a test first asks for it."""
    before = tf_config.is_op_determinism_enabled()
    done = {}

    def get(name):
        if name not in done:
            done[name] = _run(no_id_zero, tmp_path_factory.mktemp(name), **RUNS[name])
        return done[name]

    yield get
    if not before:
        tf_config.disable_op_determinism()


@pytest.mark.parametrize("plain_name, padded_name", [("plain", "padded"), ("replicas", "replicas_padded")],
                         ids=["plain", "per_replica_orders"])
def test_padded_training_equals_unpadded(runs, plain_name, padded_name):
    plain, plain_outputs = runs(plain_name)
    padded, padded_outputs = runs(padded_name)

    # Nothing dropped, nothing counted twice: the real rows only, in the same steps.
    assert padded_outputs.metrics["examples"] == plain_outputs.metrics["examples"] == ROWS
    assert padded_outputs.metrics["steps"] == 5
    assert [r[0][0].size for r in padded.recorded] == [BATCH] * 4 + [ROWS - 4 * BATCH]
    for (plain_positions, plain_p), (padded_positions, padded_p) in zip(plain.recorded, padded.recorded, strict=True):
        for a, b in zip(plain_positions, padded_positions, strict=True):
            np.testing.assert_array_equal(a, b)  # the stream positions each model scored, per step
        for a, b in zip(plain_p, padded_p, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # The checkpointed stream position counts real examples.
    saved = tf.train.load_checkpoint(checkpoint_directory(padded.workdir))
    assert saved.get_tensor("examples/.ATTRIBUTES/VARIABLE_VALUE") == ROWS
    assert saved.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 5
    _assert_close_metrics(_numbers(plain_outputs.metrics), _numbers(padded_outputs.metrics), rtol=1e-6)
    with open(os.path.join(padded.workdir, "metrics.json")) as f:
        assert json.load(f)["examples"] == ROWS

    for plain_state, padded_state in zip(plain.states, padded.states, strict=True):
        for a, b in zip(plain_state.model.variables, padded_state.model.variables, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6, err_msg=a.name)
        # The padding looked up row 0 of every table with a zero gradient: the row and its Adagrad accumulator
        # are bit-identical to the unpadded run's, where no example touched them.
        for a, b in zip(plain_state.model.embedding_variables, padded_state.model.embedding_variables, strict=True):
            np.testing.assert_array_equal(a.numpy()[0], b.numpy()[0])
        optimizer_pairs = zip(plain_state.embedding_optimizer.variables[1:],
                              padded_state.embedding_optimizer.variables[1:], strict=True)
        for a, b in optimizer_pairs:
            np.testing.assert_array_equal(a.numpy()[0], b.numpy()[0])
            assert a.numpy()[0, 0] == pytest.approx(0.1)  # the initial accumulator: row 0 never trained


@pytest.mark.parametrize("shuffle", ["none", "window"])
def test_dataset_pads_the_last_batch_with_label_minus_one(no_id_zero, shuffle):
    source = input_lib.DataSource.from_config(
        small_config(no_id_zero, **{"data.shuffle": shuffle, "data.pad_final_batch": True}).data, seed=1)
    dataset = source.dataset(BATCH)
    assert dataset.element_spec["label"].shape == [BATCH]  # static: one trace, one XLA program
    labels = np.concatenate([batch["label"].numpy() for batch in dataset])
    assert labels.size == 5 * BATCH
    assert (labels[:ROWS] >= 0).all() and (labels[ROWS:] == input_lib.PADDING_LABEL).all()
    last = list(dataset)[-1]
    assert (last["C1"].numpy()[ROWS - 4 * BATCH:] == 0).all() and (last["I1"].numpy()[ROWS - 4 * BATCH:] == 0).all()


def test_padding_is_refused_with_per_worker_files(no_id_zero):
    """shard_by="file" has no single final global batch (each worker's files end at their own step)."""
    config = small_config(no_id_zero, **{"data.pad_final_batch": True, "data.shard_by": "file"})
    with pytest.raises(ValueError, match="pad_final_batch=True.*shard_by='file'"):
        input_lib.DataSource.from_config(config.data, seed=1)


def test_two_input_pipelines_share_the_padded_global_batch(no_id_zero):
    """Multi-worker sharding applies to the padded global batch: every pipeline gets B/2 rows in every step,
    and the real rows are the whole stream once."""
    source = input_lib.DataSource.from_config(
        small_config(no_id_zero, **{"data.shuffle": "none", "data.pad_final_batch": True}).data, seed=1)
    shares = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        batches = list(source.dataset(BATCH, input_context=context))
        assert [b["ts"].shape[0] for b in batches] == [BATCH // 2] * 5
        shares.append(np.concatenate([b["ts"].numpy()[b["label"].numpy() >= 0] for b in batches]))
    np.testing.assert_array_equal(np.sort(np.concatenate(shares)), np.arange(ROWS))


def test_jit_compile_step_trains_the_padded_stream_like_the_plain_step(runs, no_id_zero, tmp_path):
    padded, padded_outputs = runs("padded")
    jit, jit_outputs = runs("jit")
    assert jit_outputs.metrics["examples"] == ROWS and jit_outputs.metrics["steps"] == 5
    # XLA fuses and reorders float sums: equal up to rounding, not bit for bit.
    for a, b in zip(padded.states[0].model.variables, jit.states[0].model.variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5, err_msg=a.name)
    initial = Trainer(small_config(no_id_zero, **{"data.batch_size": BATCH}), str(tmp_path / "fresh"))
    moved = max(np.abs(a.numpy() - b.numpy()).max()
                for a, b in zip(initial.states[0].model.variables, jit.states[0].model.variables, strict=True))
    assert moved > 1e-3  # it trained
    _assert_close_metrics(_numbers(padded_outputs.metrics), _numbers(jit_outputs.metrics), rtol=1e-4)


def test_jit_compile_step_is_refused_where_it_cannot_compile(no_id_zero, tmp_path):
    config = small_config(no_id_zero, **{"jit_compile_step": True, "strategy": "mirrored"})
    with pytest.raises(ValueError, match=r"jit_compile_step=True` compiles the train step under strategy"):
        Trainer(config, str(tmp_path / "run"))


def test_tpu_needs_padding(no_id_zero, tmp_path):
    with pytest.raises(ValueError, match=r"strategy='tpu' needs static shapes: set --config.data.pad_final_batch"):
        Trainer(small_config(no_id_zero, strategy="tpu"), str(tmp_path / "run"))


@pytest.mark.parametrize("address, message", [
    ("", r"strategy=tpu found no TPU \(config.tpu='': Please provide a TPU Name"),
    ("grpc://127.0.0.1:{port}", r"strategy=tpu: no TPU reachable at config.tpu='grpc://127.0.0.1:\d+'"),
])
def test_tpu_without_a_tpu_fails_with_one_clear_line(no_id_zero, tmp_path, address, message):
    config = small_config(no_id_zero, strategy="tpu", tpu=address.format(port=free_port()),
                          **{"data.pad_final_batch": True})
    with pytest.raises(ValueError, match=message) as info:
        Trainer(config, str(tmp_path / "run"))
    assert "\n" not in str(info.value) and "docs/training.md, 'TPU'" in str(info.value)
    assert "tpu" in strategy_lib.LOOP_STRATEGIES


def test_parameter_server_refuses_padding(no_id_zero):
    config = small_config(no_id_zero, strategy="parameter_server", **{"data.pad_final_batch": True})
    with pytest.raises(ValueError, match="pad_final_batch=True` pads the synchronous strategies"):
        select_mode(config, ReplicaPlan.from_config(config))


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_pads_across_replicas(no_id_zero, tmp_path, runs):
    """The padded global batch is split across 2 replicas (the last step: 32 real rows on replica 0, 12 real and
    20 padding on replica 1); the run counts and scores the real rows as the single-device run does."""
    from tests.training.helpers import REPO_ROOT, cli_flags, subprocess_env
    from tests.training.test_distributed import _MIRRORED

    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED, str(tmp_path / "run"),
         *cli_flags(no_id_zero, strategy="mirrored", **{"data.batch_size": BATCH, "data.pad_final_batch": True})],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    single = runs("plain")[1].metrics
    assert metrics["num_replicas_in_sync"] == 2
    assert metrics["examples"] == single["examples"] == ROWS and metrics["steps"] == single["steps"] == 5
    for key in ("progressive_auc", "progressive_logloss", "progressive_calibration"):
        assert metrics[key] == pytest.approx(single[key], rel=1e-4), key
