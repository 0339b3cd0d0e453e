"""Parameter-server training: the chief coordinates, workers run steps asynchronously, variables live on `ps` tasks.

Cluster (TF_CONFIG): one `chief`, N `worker`s, M `ps`. Every task runs the same command
(`python -m pipelines.train ... --config.strategy=parameter_server`): `worker` and `ps` tasks only serve
(`serve`, a `tf.distribute.Server` that runs until the process is terminated), the chief builds the model under
`ParameterServerStrategy` (variables placed on the ps tasks) and drives training with a
`tf.distribute.coordinator.ClusterCoordinator`.

The chief reads and parses the stream itself, in order, and schedules one step per global batch with the batch
as its argument (`coordinator_results`): the coordinator hands each step to whichever worker is free. So every
example is trained once (barring a worker failing mid-step, which the coordinator retries elsewhere) and the
chief knows which batch each result belongs to, with no per-worker
sharding (`ParameterServerStrategy` gives every worker the same input pipeline id, so sharding by worker would
need private APIs). Before each checkpoint step the chief waits for every step in flight, so a checkpoint's
stream position is exact and a resumed run repeats and skips nothing.

Semantics that differ from the synchronous strategies: updates are asynchronous (up to `max_in_flight` steps
run concurrently on stale weights), so each step is scored before *its own* update but possibly after a
concurrent step's update; results are therefore not bit-reproducible, and progressive metrics are those of the
weights each step actually read.
"""
from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterator, Sequence
from typing import NoReturn

import numpy as np
import tensorflow as tf
from absl import logging

from recsys.training.task import ModelState, StepResult, replica_train_step


def task_type() -> str | None:
    """This process's task type in TF_CONFIG (after deriving TF_CONFIG from the environment), or None."""
    from recsys.training.tf_config import ensure_tf_config

    ensure_tf_config()
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return None
    try:
        return (json.loads(text).get("task") or {}).get("type")
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={text!r}") from e


def serve(deterministic: bool = True) -> NoReturn:
    """Runs this `worker` or `ps` task's server until the process is terminated (the chief does the training)."""
    # Recommended for parameter-server training: RPCs to an unavailable task fail fast, so the coordinator can
    # reschedule a step on another worker instead of hanging.
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol=resolver.rpc_layer or "grpc",
        start=True,
    )
    logging.info("Serving as %s:%d of a parameter-server cluster (target %s); the chief trains.",
                 resolver.task_type, resolver.task_id, server.target)
    server.join()
    raise SystemExit(0)  # join() only returns when the server is shut down


def coordinator_results(
    strategy: tf.distribute.Strategy,
    coordinator,
    states: Sequence[ModelState],
    label: str,
    dataset: tf.data.Dataset,
    first_step: int,
    first_example: int,
    checkpoint_every_steps: int,
    max_examples: int = 0,
    max_in_flight: int | None = None,
) -> Iterator[StepResult]:
    """Schedules one step per batch of `dataset` on the workers and yields results in stream order.

    Yields one `StepResult` per global step (positions: the batch's place in the stream). At most `max_in_flight`
    steps (default: 2 per worker) are scheduled ahead; all of them are finished before a checkpoint step's result
    is yielded, so the caller can checkpoint an exact stream position.
    """

    @tf.function
    def worker_step(batch):
        _, probabilities, loss_sums, _ = strategy.run(replica_train_step, args=(states, batch, label))[:4]
        return probabilities, loss_sums

    workers = len(tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec().as_dict().get("worker", ()))
    limit = max_in_flight or 2 * max(workers, 1)
    in_flight: collections.deque = collections.deque()
    step, examples = first_step, first_example

    def finish_oldest() -> StepResult:
        labels, positions, remote = in_flight.popleft()
        probabilities, loss_sums = remote.fetch()
        count = max(labels.size, 1)
        return StepResult(labels=[labels] * len(states), probabilities=[np.asarray(p) for p in probabilities],
                          losses=[float(s) / count for s in loss_sums], positions=[positions] * len(states))

    for batch in dataset:
        labels = batch[label].numpy()
        step += 1
        positions = np.arange(examples, examples + labels.size)
        examples += labels.size
        in_flight.append((labels, positions, coordinator.schedule(worker_step, args=(batch,))))
        boundary = step % checkpoint_every_steps == 0
        stop = bool(max_examples) and examples >= max_examples
        while in_flight and (boundary or stop or len(in_flight) > limit):
            yield finish_oldest()
        if stop:
            return
    while in_flight:
        yield finish_oldest()
