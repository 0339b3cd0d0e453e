"""Builds the `tf.distribute` strategy named by `config.strategy`, and answers "am I the chief?".

| name                    | strategy                                        | cluster                          |
|-------------------------|-------------------------------------------------|----------------------------------|
| `default`               | the default (no-op) strategy, one device        | none                             |
| `mirrored`              | `MirroredStrategy`: every local GPU (or CPU)    | none                             |
| `multi_worker_mirrored` | `MultiWorkerMirroredStrategy`, synchronous      | `TF_CONFIG` (worker [+ chief])   |
| `parameter_server`      | `ParameterServerStrategy` + `ClusterCoordinator`| `TF_CONFIG` (chief, worker, ps)  |
|                         | (variables sharded by `config.sharding`)        |                                  |
| `tpu`                   | `TPUStrategy` via `TPUClusterResolver`          | `config.tpu` or the environment  |

The trainer (`recsys.training.loop`) runs `default`, `mirrored`, `multi_worker_mirrored` and `tpu` (one
synchronous custom loop; `tpu` needs `config.data.pad_final_batch`, and is untested without a TPU) and
`parameter_server` (`recsys.training.parameter_server`); docs/training.md says what a TPU run needs.
The cluster always comes from `TF_CONFIG`; `recsys.training.tf_config.ensure_tf_config` derives it from a cluster
scheduler's environment when absent.
"""
from __future__ import annotations

import json
import os
import socket

import tensorflow as tf

from recsys.training.sharding import ShardingSpec, check_strategy

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "parameter_server", "tpu")
# The strategies the trainer (`recsys.training.loop`) runs (`tpu` only built and checked here; docs/training.md).
LOOP_STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "parameter_server", "tpu")
TPU_CONNECT_TIMEOUT_S = 10


def make_strategy(name: str, tpu: str = "", sharding: ShardingSpec | None = None) -> tf.distribute.Strategy:
    """Builds the strategy called `name` (one of `STRATEGIES`).

    Must be called before any other TensorFlow op for the multi-worker strategies (they start a gRPC server
    and fix the collective configuration). `sharding` (`config.sharding`, default none) gives
    `parameter_server` its `variable_partitioner` (`recsys.training.sharding`).

    Raises:
      ValueError: an unknown name, a multi-worker strategy without a usable TF_CONFIG, or a partitioner with a
        strategy other than `parameter_server`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"`config.strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")
    sharding = sharding or ShardingSpec()
    check_strategy(sharding, name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "tpu":
        return _tpu_strategy(tpu)

    from recsys.training.tf_config import ensure_tf_config

    ensure_tf_config()
    cluster = _tf_config()
    if name == "multi_worker_mirrored":
        if not cluster.get("cluster", {}).get("worker") and not cluster.get("cluster", {}).get("chief"):
            raise ValueError(
                "strategy=multi_worker_mirrored needs TF_CONFIG with a `cluster` listing `worker` (and optionally "
                f"`chief`) addresses and this process's `task`. Received: TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    # parameter_server
    if not cluster.get("cluster", {}).get("ps"):
        raise ValueError(
            "strategy=parameter_server needs TF_CONFIG with `chief`, `worker` and `ps` addresses. "
            f"Received: TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
        )
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    partitioner = sharding.make_partitioner(len(cluster["cluster"]["ps"]))
    return tf.distribute.experimental.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
    """`TPUStrategy` on the TPU `tpu` (name or grpc:// address; "" = from the environment, e.g. on a TPU VM).

    Raises:
      ValueError: no TPU found or reachable (one line saying which and what to set).
    """
    advice = ("run on a TPU VM, or set --config.tpu to a Cloud TPU name or its grpc://host:port address "
              "(docs/training.md, 'TPU')")
    if tpu.startswith("grpc://"):
        # Connecting to an address nobody listens on would block for minutes inside TensorFlow.
        host, _, port = tpu[len("grpc://"):].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=TPU_CONNECT_TIMEOUT_S).close()
        except (OSError, ValueError) as e:
            raise ValueError(f"strategy=tpu: no TPU reachable at config.tpu={tpu!r} ({e}); {advice}") from None
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"strategy=tpu found no TPU (config.tpu={tpu!r}: {reason}); {advice}") from None
    return tf.distribute.TPUStrategy(resolver)


def _tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={text!r}") from e


def task_type_and_id(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """This process's (task type, index) in the cluster; (None, 0) without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and getattr(resolver, "task_type", None):
        return resolver.task_type, int(resolver.task_id or 0)
    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        # This strategy does not expose its resolver; the task is the one TF_CONFIG names (the chief).
        task = _tf_config().get("task") or {}
        return task.get("type"), int(task.get("index") or 0)
    return None, 0


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: the `chief` task, or `worker` 0 without a chief."""
    task_type, task_id = task_type_and_id(strategy)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in (_tf_config().get("cluster") or {})
    return task_type == "worker" and task_id == 0 and not has_chief


def write_dir(directory: str, strategy: tf.distribute.Strategy) -> str:
    """Where this process writes a checkpoint meant for `directory`.

    Under MultiWorkerMirroredStrategy every worker must take part in saving (saving may run collectives), but
    only the chief's copy is kept: the others write to a private temporary folder that the caller removes.
    """
    if is_chief(strategy):
        return directory
    task_type, task_id = task_type_and_id(strategy)
    return os.path.join(directory, ".workers", f"{task_type}_{task_id}")
