"""Parameter-server training: the chief coordinates, workers run steps asynchronously, variables live on `ps` tasks.

Cluster (TF_CONFIG): one `chief`, N `worker`s, M `ps`. Every task runs the same command
(`python -m pipelines.train ... --config.strategy=parameter_server`): `worker` and `ps` tasks only serve
(`serve`, a `tf.distribute.Server` that runs until the process is terminated), the chief builds the model under
`ParameterServerStrategy` (variables placed on the ps tasks) and drives training with a
`tf.distribute.coordinator.ClusterCoordinator`.

Input, `config.data.shard_by`:

- "example" (default, `coordinator_results`): the chief reads and parses the stream itself, in order, and
  schedules one step per global batch with the batch as its argument: the coordinator hands each step to
  whichever worker is free. Every example is trained once (barring a worker failing mid-step, which the
  coordinator retries elsewhere) and the chief knows which batch each result belongs to. Before each checkpoint
  step the chief waits for every step in flight, so a checkpoint's stream position is exact and a resumed run
  repeats and skips nothing. The chief's one input pipeline caps the cluster's throughput.
- "file" (`per_worker_dataset`, `per_worker_results`): each worker reads only its own files through a dataset the
  coordinator builds on it (`ClusterCoordinator.create_per_worker_dataset`). `ParameterServerStrategy` gives every
  dataset function the same `InputContext` (one input pipeline, id 0: `input_pipeline_id` cannot tell workers
  apart), so the worker is identified by `tf.distribute.coordinator.experimental_get_current_worker_index()`.
  A step reads one batch from the iterator of the worker that runs it and returns that worker's index and the
  labels; a worker whose share is used up returns an empty batch (trains nothing). The chief counts the examples
  each worker trained (`WorkerExamples`, in the checkpoint); steps in flight never run past the next checkpoint
  step, so at a checkpoint each worker's count is its exact position in its own stream, and a resumed run
  restarts each worker's dataset there: nothing repeated or skipped. Exceptions: a worker that fails and comes
  back gets its dataset rebuilt from the run's start offsets (its share since the last resume is read again), and
  a step retried on another worker after a failure reads that worker's next batch (the failed worker's batch is
  the one rebuilt). Workers need the data path too (a shared or remote file system).

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


def per_worker_dataset(strategy: tf.distribute.Strategy, coordinator, source, batch_size: int,
                       offsets: Sequence[int]):
    """Every worker's own input (`config.data.shard_by="file"`): a dataset built on each worker that reads only
    its files (`recsys.data.input.WorkerShare`), from example `offsets[w]` of worker w's own stream on.

    `ParameterServerStrategy` hands every dataset function the same `InputContext` (1 input pipeline, id 0), so
    the worker's index comes from `tf.distribute.coordinator.experimental_get_current_worker_index()`, a value the
    coordinator fills in when it builds the dataset on that worker; the files and the offset are picked by it in
    the graph.
    """
    from recsys.data.input import WorkerShare

    workers = len(offsets)

    def dataset_fn():
        index = tf.distribute.coordinator.experimental_get_current_worker_index()
        offset = tf.gather(tf.constant(list(offsets), tf.int64), index)
        return source.dataset(batch_size, start_offset=offset, share=WorkerShare(index, workers))

    del strategy  # the datasets are plain tf.data pipelines, like the batches the chief-fed path ships
    return coordinator.create_per_worker_dataset(dataset_fn)


def per_worker_results(
    strategy: tf.distribute.Strategy,
    coordinator,
    states: Sequence[ModelState],
    label: str,
    dataset,
    worker_examples,
    first_step: int,
    first_example: int,
    checkpoint_every_steps: int,
    batch_size: int,
    max_examples: int = 0,
    max_in_flight: int | None = None,
) -> Iterator[StepResult]:
    """Schedules steps that read their batch from the worker's own iterator (`per_worker_dataset`).

    Each step returns the index of the worker that ran it and the batch's labels; a worker whose share is used up
    returns an empty batch and trains nothing. One `StepResult` per non-empty batch, in schedule order; its examples
    are added to `worker_examples` (`recsys.training.modes.WorkerExamples`) under the worker that read them. At most
    `max_in_flight` steps (default 2 per worker) run at once, and never more than can complete before the next
    checkpoint step (or `max_examples`), so when the caller checkpoints nothing is in flight and each worker's count
    is the exact position in its own stream to resume from.
    """
    count = len(states)

    @tf.function
    def worker_step(iterator):
        index = tf.distribute.coordinator.experimental_get_current_worker_index()
        optional = iterator.get_next_as_optional()

        def train():
            labels, probabilities, loss_sums = strategy.run(
                replica_train_step, args=(states, optional.get_value(), label))[:3]
            return labels[0], tuple(probabilities), tuple(loss_sums)

        def nothing():  # this worker's share is used up
            return (tf.zeros([0], tf.int64), tuple(tf.zeros([0], tf.float32) for _ in range(count)),
                    tuple(tf.zeros([], tf.float32) for _ in range(count)))

        return (index, *tf.cond(optional.has_value(), train, nothing))

    iterator = iter(dataset)
    workers = len(worker_examples.totals)
    limit = max_in_flight or 2 * workers
    in_flight: collections.deque = collections.deque()
    step, examples = first_step, first_example
    boundary = (step // checkpoint_every_steps + 1) * checkpoint_every_steps
    exhausted: set[int] = set()

    def may_schedule() -> bool:
        if len(exhausted) == workers or len(in_flight) >= limit or step + len(in_flight) >= boundary:
            return False
        # Every step in flight may bring a full batch: stop short of max_examples, as the chief-fed path does.
        return not max_examples or examples + len(in_flight) * batch_size < max_examples

    while True:
        while may_schedule():
            in_flight.append(coordinator.schedule(worker_step, args=(iterator,)))
        if not in_flight:
            return
        index, labels, probabilities, loss_sums = in_flight.popleft().fetch()
        labels = np.asarray(labels)
        if labels.size == 0:
            exhausted.add(int(index))
            continue
        step += 1
        if step == boundary:
            boundary += checkpoint_every_steps
        worker_examples.add(int(index), labels.size)
        positions = np.arange(examples, examples + labels.size)
        examples += labels.size
        yield StepResult(labels=[labels] * count, probabilities=[np.asarray(p) for p in probabilities],
                         losses=[float(s) / labels.size for s in loss_sums], positions=[positions] * count)
