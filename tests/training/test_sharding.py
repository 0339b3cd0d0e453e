"""Sharded embedding tables (`config.sharding`, recsys/training/sharding.py) and the dry run (dry_run.py).

Fast: the config → partitioner mapping and its errors, the placement arithmetic, the dry run's printed numbers
against `recsys.model.parameters.count_parameters`. Slow: a loopback cluster (1 chief, 1 worker, 2 ps) that shows
each table split over both ps tasks exactly as the dry run plans, an export equal to the sharded weights, and an
exact resume.
"""
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs import criteo_1tb
from recsys.data.criteo import CAT_COLUMNS
from recsys.data.features import criteo_feature_set
from recsys.model.ctr import ModelSpec, build_model
from recsys.model.parameters import count_parameters
from recsys.testing import toy_feature_set
from recsys.training import sharding
from recsys.training.dry_run import dry_run, print_dry_run
from recsys.training.strategy import make_strategy
from tests.training.helpers import (
    REPO_ROOT,
    cli_flags,
    free_port,
    small_config,
    subprocess_env,
    train_command,
    workdir_at_checkpoint,
    write_stream,
)

# Two tables big enough to split (16,000 and 8,000 bytes), dense kernels that stay whole (≤ 640 bytes).
FEATURES = toy_feature_set(num_numeric=2, vocab_sizes=(1000, 500))
SHARDED = {"sharding.partitioner": "min_size", "sharding.min_shard_bytes": 2048}


def _shards(partitioner, shape, dtype=tf.float32) -> int:
    return int(partitioner(shape=tf.TensorShape(shape), dtype=dtype)[0])


def test_config_maps_to_the_partitioner_of_that_name():
    partitioners = tf.distribute.experimental.partitioners
    assert sharding.ShardingSpec().make_partitioner(2) is None
    min_size = sharding.ShardingSpec("min_size", min_shard_bytes=1000).make_partitioner(3)
    assert isinstance(min_size, partitioners.MinSizePartitioner)
    assert _shards(min_size, (50, 4)) == 1  # 800 bytes: not above min_shard_bytes, stays whole
    assert _shards(min_size, (100, 4)) == 2  # 1,600 bytes: ⌈1.6⌉ shards
    assert _shards(min_size, (1000, 4)) == 3  # 16,000 bytes: ⌈16⌉ capped by max_shards 0 = the 3 ps tasks
    capped = sharding.ShardingSpec("min_size", min_shard_bytes=1000, max_shards=5).make_partitioner(3)
    assert _shards(capped, (1000, 4)) == 5
    fixed = sharding.ShardingSpec("fixed_shards", num_shards=4).make_partitioner(2)
    assert isinstance(fixed, partitioners.FixedShardsPartitioner) and _shards(fixed, (10, 1)) == 4
    assert _shards(sharding.ShardingSpec("fixed_shards").make_partitioner(2), (10, 1)) == 2  # 0 = ps tasks
    max_size = sharding.ShardingSpec("max_size", max_shard_bytes=4000).make_partitioner(8)
    assert isinstance(max_size, partitioners.MaxSizePartitioner)
    assert _shards(max_size, (1000, 4)) == 4 and _shards(max_size, (10, 4)) == 1


def test_from_config_reads_config_sharding_and_defaults_to_none():
    config = small_config("unused", **{"sharding.partitioner": "max_size", "sharding.max_shard_bytes": 123})
    spec = sharding.ShardingSpec.from_config(config)
    assert (spec.partitioner, spec.max_shard_bytes, spec.enabled) == ("max_size", 123, True)
    assert sharding.ShardingSpec.from_config(small_config("unused")) == sharding.ShardingSpec()
    assert not sharding.ShardingSpec().enabled


@pytest.mark.parametrize("fields, message", [
    ({"partitioner": "by_row"}, "`config.sharding.partitioner` must be one of ('none', 'min_size'"),
    ({"min_shard_bytes": 0},
     "`config.sharding.min_shard_bytes` must be a positive integer. Received: min_shard_bytes=0"),
    ({"max_shard_bytes": 1.5}, "`config.sharding.max_shard_bytes` must be a positive integer"),
    ({"num_shards": -1}, "`config.sharding.num_shards` must be an integer >= 0"),
    ({"max_shards": True}, "`config.sharding.max_shards` must be an integer >= 0"),
])
def test_bad_sharding_values_are_refused_by_name(fields, message):
    with pytest.raises(ValueError) as error:
        sharding.ShardingSpec(**fields)
    assert message in str(error.value)


@pytest.mark.parametrize("strategy", ["default", "mirrored", "multi_worker_mirrored", "tpu"])
def test_a_partitioner_needs_the_parameter_server_strategy(strategy):
    with pytest.raises(ValueError) as error:
        make_strategy(strategy, sharding=sharding.ShardingSpec("fixed_shards"))
    assert "`config.sharding.partitioner='fixed_shards'`" in str(error.value)
    assert f"strategy={strategy!r}" in str(error.value) and "parameter_server" in str(error.value)
    config = small_config("unused", strategy=strategy, **SHARDED)
    with pytest.raises(ValueError, match="config.sharding.partitioner='min_size'"):
        dry_run(config)


def test_shard_rows_and_round_robin_placement():
    assert sharding.shard_rows(10, 4) == (3, 3, 2, 2)  # ParameterServerStrategy's "div" split
    assert sharding.shard_rows(5, 1) == (5,)
    variables = [sharding.VariableInfo("a", (10, 2), tf.float32, 1, True),
                 sharding.VariableInfo("b", (3,), tf.float32, 2, False),
                 sharding.VariableInfo("c", (7, 2), tf.float32, 1, True),
                 sharding.VariableInfo("s", (), tf.float32, 0, False)]
    placements = sharding.plan_placement(variables, sharding.ShardingSpec("fixed_shards", num_shards=3)
                                         .make_partitioner(2), num_ps=2)
    assert [(p.shard_rows, p.tasks) for p in placements] == [
        ((4, 3, 3), (0, 1, 0)), ((1, 1, 1), (1, 0, 1)), ((3, 2, 2), (0, 1, 0)), ((1,), (1,))]
    # c: 3 + 2 rows (2 floats, 8 bytes a row) on task 0 = 40 bytes of weights and 40 of its one slot.
    assert placements[2].task_bytes() == {0: (40, 40), 1: (16, 16)}
    whole = sharding.plan_placement(variables, None, num_ps=3)
    assert [p.tasks for p in whole] == [(0,), (1,), (2,), (0,)]


def test_model_variables_are_the_built_models_without_allocating():
    spec = ModelSpec.from_config(small_config("unused").model, FEATURES)
    model = build_model(spec)
    variables = sharding.model_variables(spec, dense_optimizer="adam")
    model.build_from_spec()  # a model built before still runs (the plan leaves no global state behind)
    built = sharding.model_variable_paths(model)
    # The Keras model's three step counters come first (they take turns in the round robin too), then the weights.
    assert [(v.shape, v.weight) for v in variables[:3]] == [((), False)] * 3
    planned = variables[3:]
    assert all(v.weight for v in planned)
    assert [v.path for v in planned] == list(built)  # creation order = checkpoint order for this model
    assert {v.path: v.shape for v in planned} == {path: tuple(v.shape) for path, v in built.items()}
    assert sum(int(np.prod(v.shape)) for v in planned) == count_parameters(spec)
    assert [v.path for v in planned if v.table] == ["embedding_layers/0/embeddings", "embedding_layers/1/embeddings"]
    assert {v.slots for v in planned if v.table} == {1} and {v.slots for v in planned if not v.table} == {2}


def _printed(text: str) -> tuple[dict[str, list[str]], int, list[int]]:
    row = r"^(C\d+)\s+([\d,]+)\s+(\d+)\s+([\d,]+)\s+(\d+)\s+(\d+)$"
    tables = {m[0]: list(m[1:]) for m in re.findall(row, text, re.M)}
    (total,) = re.findall(r"^parameters: ([\d,]+)", text, re.M)
    totals = [int(m.replace(",", "")) for m in re.findall(r"^\d+\s+[\d,]+ \(.*?\)\s+[\d,]+ \(.*?\)\s+([\d,]+) \(",
                                                             text, re.M)]
    return tables, int(total.replace(",", "")), totals


def test_dry_run_prints_parameters_per_table_and_bytes_per_ps_task(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    FEATURES.save(str(tmp_path / "features.json"))  # only the vocabulary sizes are read: no data exists
    config = small_config(str(tmp_path / "part-*.tfrecord.gz"), strategy="parameter_server", dry_run=True,
                          dry_run_ps_tasks=2, **SHARDED)
    out = io.StringIO()
    result = print_dry_run(config, out)
    tables, total, task_totals = _printed(out.getvalue())
    spec = ModelSpec.from_config(config.model, FEATURES)
    assert total == result.parameters == count_parameters(spec)
    # C1: 1,000 rows × 4 = 4,000 parameters = 16,000 bytes → 2 shards of 500 rows (min 2,048 bytes, 2 ps tasks).
    assert tables == {"C1": ["1,000", "4", "4,000", "2", "500"], "C2": ["500", "4", "2,000", "2", "250"]}
    # Adagrad everywhere: one slot per weight, so each task holds 2 × 4 bytes per parameter placed on it, and
    # the model's three int64 step counters (no slots) 8 bytes each.
    assert len(task_totals) == 2 and sum(task_totals) == 8 * count_parameters(spec) + 3 * 8
    assert "ps tasks: 2 (config.dry_run_ps_tasks)" in out.getvalue()


def test_dry_run_takes_the_ps_tasks_from_tf_config_and_a_hashed_vocabulary(monkeypatch):
    cluster = {"chief": ["h:1"], "worker": ["h:2"], "ps": ["h:3", "h:4", "h:5"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}}))
    config = small_config("/nowhere/part-*", strategy="parameter_server", dry_run_vocab_size=1009,
                          **{"sharding.partitioner": "fixed_shards"})
    result = dry_run(config)
    assert result.num_ps == 3 and result.ps_source == "TF_CONFIG"
    assert [e.vocab_size for e in result.spec.embeddings] == [1009] * 26  # the Criteo schema, hashed
    assert result.parameters == count_parameters(result.spec)
    assert sum(w + s for w, s in result.task_bytes()) == sum(result.bytes())
    tables = [p for p in result.placements if p.variable.table]
    assert all(p.shard_rows == (337, 336, 336) and sorted(p.tasks) == [0, 1, 2] for p in tables)


def test_dry_run_without_features_json_says_what_to_set(tmp_path):
    config = small_config(str(tmp_path / "part-*"), dry_run=True)
    with pytest.raises(FileNotFoundError, match="dry_run_vocab_size"):
        dry_run(config)
    result = dry_run(small_config(str(tmp_path / "part-*"), dry_run_vocab_size=50))
    assert result.placements is None and "keeps all of it on every replica" in result.format()


@pytest.mark.slow
def test_pipelines_train_dry_run_exits_0_without_workdir_or_data(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.train", "--config=configs/criteo_1tb.py", "--config.dry_run=True",
         f"--config.data.train={tmp_path / 'nothing' / 'part-*'}"],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    config = criteo_1tb.get_config()
    features = criteo_feature_set({name: criteo_1tb.HASH_BUCKETS for name in CAT_COLUMNS})
    assert f"parameters: {count_parameters(ModelSpec.from_config(config.model, features)):,} (" in result.stdout
    assert "ps tasks: 16 (config.dry_run_ps_tasks)" in result.stdout
    assert not (tmp_path / "nothing").exists()


# --- Loopback cluster ----------------------------------------------------------------------------------------

_CHIEF = """
import json, sys
import numpy as np
import recsys, tensorflow as tf
from absl import flags
from ml_collections import config_flags
from recsys.training import sharding
from recsys.training.export import serving_parse_spec
from recsys.training.loop import Trainer
config = config_flags.DEFINE_config_file("config", lock_config=True)
flags.FLAGS(["x", *sys.argv[4:]])
trainer = Trainer(config.value, sys.argv[1])
model = trainer.states[0].model
placement = sharding.placement_of(model)
slots = [[s.device for s in v.variables] for v in trainer.states[0].embedding_optimizer.variables
         if isinstance(v, sharding.ShardedVariable)]
planned = sharding.plan_placement(sharding.model_variables(trainer.spec, trainer.label), sharding.ShardingSpec
    .from_config(config.value).make_partitioner(2), 2)
metrics = trainer.run().metrics
records = next(iter(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(sys.argv[3])), "GZIP").batch(64)))
parsed = tf.io.parse_example(records, serving_parse_spec(model, trainer.features))
weights = {path.replace("/", "."): tf.convert_to_tensor(v).numpy()
           for path, v in sharding.model_variable_paths(model).items()}
np.savez(sys.argv[2], probabilities=tf.sigmoid(model(parsed)).numpy(), records=records.numpy(), **weights)
print(json.dumps({"placement": placement, "slots": slots, "metrics": metrics,
                  "planned": {p.variable.path: list(p.tasks) for p in planned}}))
"""


def _chief(workdir, out, stream, cluster, overrides):
    env = subprocess_env()
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
    result = subprocess.run([sys.executable, "-c", _CHIEF, str(workdir), str(out), stream,
                             *cli_flags(stream, **overrides)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), np.load(out, allow_pickle=True)  # records: bytes


@pytest.mark.slow
def test_tables_sharded_over_two_ps_tasks_export_and_resume_exactly(tmp_path):
    stream = write_stream(tmp_path / "stream", shards=2, rows=320, features=FEATURES)
    cluster = {"chief": [f"127.0.0.1:{free_port()}"], "worker": [f"127.0.0.1:{free_port()}"],
               "ps": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    overrides = {"strategy": "parameter_server", "export_saved_model": True, "keep_checkpoints": 5,
                 "data.batch_size": 64, **SHARDED}
    servers = []
    try:
        for task_type, index in (("ps", 0), ("ps", 1), ("worker", 0)):
            env = subprocess_env()
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
            servers.append(subprocess.Popen(train_command(tmp_path / "unused", stream, **overrides), cwd=REPO_ROOT,
                                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        full, full_arrays = _chief(tmp_path / "run", tmp_path / "run.npz", stream, cluster, overrides)
        # A chief killed after checkpoint 5 of 10, restarted against the same running ps and worker tasks.
        workdir_at_checkpoint(tmp_path / "run", tmp_path / "resumed", step=5)
        resumed, resumed_arrays = _chief(tmp_path / "resumed", tmp_path / "resumed.npz", stream, cluster, overrides)
        assert all(s.poll() is None for s in servers), "a ps or worker task exited early"
    finally:
        for server in servers:
            server.kill()
            server.wait()

    # Each table is split across both ps tasks; the small dense variables stay whole; the plan (the dry run's
    # arithmetic) is what the strategy did, and each table's Adagrad slot shards sit beside its shards.
    placement = full["placement"]
    for path, rows in (("embedding_layers/0/embeddings", 500), ("embedding_layers/1/embeddings", 250)):
        shards = placement[path]
        assert [r for r, _ in shards] == [rows, rows]
        assert sorted(re.search(r"/job:ps/replica:0/task:(\d)", d)[1] for _, d in shards) == ["0", "1"]
    assert all(len(shards) == 1 for path, shards in placement.items() if "embedding" not in path)
    assert {path: [int(re.search(r"task:(\d)", d)[1]) for _, d in shards] for path, shards in placement.items()} \
        == {path: tasks for path, tasks in full["planned"].items() if not path.startswith("(")}
    assert sorted(map(tuple, full["slots"])) == sorted(
        tuple(d for _, d in placement[p]) for p in ("embedding_layers/0/embeddings", "embedding_layers/1/embeddings"))

    assert full["metrics"]["examples"] == resumed["metrics"]["examples"] == 640
    assert full["metrics"]["steps"] == 10

    # The SavedModel holds whole tables and predicts what the sharded weights predict.
    served = tf.saved_model.load(str(tmp_path / "run" / "saved_model")).signatures["serving_default"](
        examples=tf.constant(full_arrays["records"]))["probabilities"].numpy()
    np.testing.assert_allclose(served, full_arrays["probabilities"], rtol=1e-6, atol=1e-7)
    # ... and what an unsharded model with the same weights predicts.
    spec = ModelSpec.from_config(small_config(stream).model, FEATURES)
    unsharded = build_model(spec)
    for path, variable in sharding.model_variable_paths(unsharded).items():
        variable.assign(full_arrays[path.replace("/", ".")])
    parsed = tf.io.parse_example(full_arrays["records"], {
        f.name: tf.io.FixedLenFeature([], tf.int64 if f.type == "int64" else tf.float32) for f in FEATURES.features})
    np.testing.assert_allclose(tf.sigmoid(unsharded(parsed)).numpy(), served, rtol=1e-6, atol=1e-7)

    # Resume is exact: the restarted chief ends with the same weights (one worker runs the steps in order).
    for key in full_arrays.files:
        if key != "records":
            np.testing.assert_array_equal(resumed_arrays[key], full_arrays[key], err_msg=key)
