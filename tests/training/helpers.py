"""Helpers for the trainer tests: small real inputs (TFRecord shards + features.json), configs, subprocesses."""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from configs import smoke
from recsys.data.features import FeatureSet
from recsys.testing import toy_feature_set, write_records, write_toy_tfrecords

FEATURES = toy_feature_set(num_numeric=2, vocab_sizes=(10, 20))


def write_stream(directory: pathlib.Path, shards: int, rows: int, features: FeatureSet = FEATURES) -> str:
    """Writes features.json and `shards` gzipped shards of `rows` examples; returns the glob."""
    directory.mkdir(parents=True, exist_ok=True)
    features.save(str(directory / "features.json"))
    for shard in range(shards):
        write_toy_tfrecords(str(directory / f"part-{shard:05d}.tfrecord.gz"), features, rows, seed=shard)
    return str(directory / "part-*.tfrecord.gz")


def write_examples(path: pathlib.Path, rows: list[dict], features: FeatureSet = FEATURES) -> None:
    """Writes tf.train.Examples from dicts {name: int | float} (ints → int64_list, floats → float_list); a .gz
    file carries `features`' fingerprint (`recsys.testing.write_records`)."""

    def records():
        for row in rows:
            feature = {}
            for name, value in row.items():
                if isinstance(value, float):
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                else:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
            yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    write_records(str(path), records(), features)


def toy_rows(count: int, seed: int = 0, features: FeatureSet = FEATURES) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(count):
        row = {"label": int(rng.random() < 0.3), "ts": t}
        row.update({f.name: float(rng.exponential()) for f in features.numeric})
        row.update({f.name: int(rng.integers(f.vocab_size)) for f in features.categorical})
        rows.append(row)
    return rows


REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# The smoke config shrunk further for tests (dotted keys; also turned into --config.<key> flags by `cli_flags`).
SMALL = {
    "data.batch_size": 64,
    "data.shuffle": "window",
    "data.shuffle_buffer": 300,
    "seed.data": 3,
    "model.hidden_units": (16, 8),
    "model.embedding_dim": 4,
    "metrics_window": 500,
    "metrics_auc_bins": 4096,
    "log_every_steps": 5,
    "checkpoint_every_steps": 5,
    "keep_checkpoints": 2,
    "export_saved_model": False,
}


def small_config(data: str, **overrides):
    """configs/smoke.py with SMALL and `overrides` (dotted keys, e.g. **{"model.activation": "smelu"})."""
    config = smoke.get_config()
    for key, value in {"data.train": data, **SMALL, **overrides}.items():
        node = config
        *parents, leaf = key.split(".")
        for parent in parents:
            node = getattr(node, parent)
        setattr(node, leaf, value)
    return config


def cli_flags(data: str, **overrides) -> list[str]:
    """The `python -m pipelines.train` flags giving the same config as `small_config(data, **overrides)`."""
    flags = ["--config=configs/smoke.py"]
    for key, value in {"data.train": data, **SMALL, **overrides}.items():
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        flags.append(f"--config.{key}={value}")
    return flags


def train_command(workdir, data: str, **overrides) -> list[str]:
    return [sys.executable, "-m", "pipelines.train", f"--workdir={workdir}", *cli_flags(data, **overrides)]


def workdir_at_checkpoint(finished: pathlib.Path, copy: pathlib.Path, step: int) -> None:
    """Makes `copy` the workdir of `finished` as it was when checkpoint `step` was the latest (a run killed then)."""
    import shutil

    (copy / "checkpoints").mkdir(parents=True)
    shutil.copy(finished / "config.json", copy / "config.json")
    for path in (finished / "checkpoints").glob(f"ckpt-{step}.*"):
        shutil.copy(path, copy / "checkpoints" / path.name)
    (copy / "checkpoints" / "checkpoint").write_text(
        f'model_checkpoint_path: "ckpt-{step}"\nall_model_checkpoint_paths: "ckpt-{step}"\n')


def checkpoint_variables(workdir) -> dict[str, np.ndarray]:
    """Every variable of a workdir's latest checkpoint but the wall-clock counter."""
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("train_seconds")}


# metrics.json keys that measure time (or name the workdir), left out when two runs are compared.
TIMING_KEYS = ("examples_per_sec", "train_seconds", "steady_examples_per_sec", "progressive_metrics_seconds",
               "saved_models")


def assert_resume_is_exact(stream: str, root: pathlib.Path, overrides: dict, step: int
                           ) -> tuple[dict, dict[str, np.ndarray]]:
    """Trains `small_config(stream, **overrides)` in root/straight, makes root/resumed that workdir as a run killed
    after checkpoint `step` leaves it, and resumes there; asserts the resumed run trained only the remaining steps and
    ends with the same metrics (timings aside) and bit-identical checkpoint variables. Returns the uninterrupted
    run's metrics and checkpoint variables, for the caller's own checks."""
    from recsys.training.loop import Trainer, train

    straight, resumed = root / "straight", root / "resumed"
    reference = train(small_config(stream, **overrides), str(straight)).metrics
    workdir_at_checkpoint(straight, resumed, step)
    trainer = Trainer(small_config(stream, **overrides), str(resumed), record_predictions=True)
    metrics = trainer.run().metrics
    assert len(trainer.recorded) == reference["steps"] - step  # it did resume, after `step`
    return reference, assert_same_outcome(straight, resumed, reference, metrics)


def assert_same_outcome(straight: pathlib.Path, other: pathlib.Path, reference: dict, metrics: dict
                        ) -> dict[str, np.ndarray]:
    """Asserts that run `other` ended as the uninterrupted run `straight` did: the same metrics (timings aside) and
    bit-identical checkpoint variables (optimizer slots included); returns `straight`'s variables."""
    assert {k: v for k, v in metrics.items() if k not in TIMING_KEYS} == {
        k: v for k, v in reference.items() if k not in TIMING_KEYS}
    a, b = checkpoint_variables(straight), checkpoint_variables(other)
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name} differs"
    return a


def latest_checkpoint_step(workdir) -> int | None:
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else None


def stop_after_first_checkpoint(command: list[str], workdir: pathlib.Path, signal_number: int) -> tuple[int, str]:
    """Starts the training `command` (writing `workdir`), sends it `signal_number` 20 ms after its first checkpoint
    (usually between two checkpoints, so some trained steps are lost and redone) and returns its exit status and
    stderr."""
    import time

    process = subprocess.Popen(command, cwd=REPO_ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while latest_checkpoint_step(workdir) is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.02)
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("TF_CONFIG", None)
    return env


def run_parameter_server_cluster(command: list[str], workers: int = 2) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Runs `command` as a loopback parameter-server cluster: 1 ps and `workers` worker tasks serving in the
    background, then the chief in the foreground. Returns the chief's completed process and the stderr of the ps
    and worker tasks (in that order); fails the test if one of them exited before the chief finished."""
    cluster = {"chief": [f"127.0.0.1:{free_port()}"], "worker": [f"127.0.0.1:{free_port()}" for _ in range(workers)],
               "ps": [f"127.0.0.1:{free_port()}"]}
    servers = []
    try:
        for task_type, index in (("ps", 0), *(("worker", w) for w in range(workers))):
            env = subprocess_env()
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
            servers.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True))
        env = subprocess_env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
        chief = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert all(s.poll() is None for s in servers), "a worker or ps task exited early"
    finally:
        for server in servers:
            server.kill()
    return chief, [server.communicate()[1] for server in servers]


def run_multi_worker_cluster(command: list[str], workers: int = 2) -> list[str]:
    """Runs `command` as a loopback MultiWorkerMirrored cluster of `workers` worker processes; fails the test,
    with the end of its stderr, if one of them does not exit 0. Returns each worker's stderr."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(workers)]}
    processes = []
    try:
        for index in range(workers):
            env = subprocess_env()
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            processes.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True))
        errors = [p.communicate(timeout=600)[1] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, err in zip(processes, errors, strict=True):
        assert p.returncode == 0, err[-4000:]
    return errors
