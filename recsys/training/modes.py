"""Training modes: what is trained, by which step, and what it adds to the outputs, behind one interface.

The loop (`recsys.training.loop.Trainer`) selects a mode once from the config (`select_mode`, which also holds
the checks of which modes combine with which strategies) and then only iterates the mode's `StepResult`s; it does
not branch on the mode. A mode provides

- its model states (`build`): the R replicas of `config.replicas` (their seeds from `ReplicaPlan`), then any
  model of its own (the online distillation teacher) — all trained, checkpointed and scored alike;
- its steps (`results`): one `StepResult` per global batch, from `task.make_synchronous_step` around its
  replica-context step, or from the parameter-server coordinator;
- its outputs: the SavedModel folder of each state (`export_names`), its metrics.json fields (`metrics_fields`)
  and how replica predictions line up for progressive PD (`pd_flush_every`).

- `SharedOrderMode`: every model trains on the same batches (a plain run, replicas with noise `init`, identical
  models), co-distilled with `config.codistill.weight`; step `task.replica_train_step`.
- `PerReplicaOrderMode`: replicas with their own orders (noise `shuffle`, `shuffle+init`), co-distilled or not;
  step `task.replica_train_step_per_model`.
- `DistillMode`: `config.distill.teacher` set (SavedModel or online teacher), 1 or R students on one order;
  step `distill.replica_distill_step`.
- `ParameterServerMode`: `strategy=parameter_server`, one model on asynchronous workers;
  `parameter_server.coordinator_results` (`task.replica_train_step` on the workers).
"""
from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from recsys.model.ctr import ModelSpec
from recsys.serving import contract
from recsys.training import distill, parameter_server, sharding
from recsys.training import strategy as strategy_lib
from recsys.training.metrics_record import DistillMetrics, TeacherMetrics
from recsys.training.replicas import ReplicaPlan
from recsys.training.settling import SettlingSpec, SettlingSteps
from recsys.training.task import (
    ModelState,
    StepResult,
    build_model_state,
    drop_padding,
    make_synchronous_step,
    real_rows,
    replica_train_step,
    replica_train_step_per_model,
)

# Strategies with one synchronous input pipeline whose batches can carry per-replica orders or teacher inputs.
LOCAL_STRATEGIES = ("default", "mirrored")


def saved_model_names(count: int) -> list[str]:
    """The SavedModel folders of `count` replicas in a trainer workdir: saved_model, saved_model_1, ..."""
    return [contract.WORKDIR_SAVED_MODEL if index == 0 else f"{contract.WORKDIR_SAVED_MODEL}_{index}"
            for index in range(count)]


@dataclasses.dataclass(frozen=True)
class ModeContext:
    """What a mode builds its states and steps from (owned by the trainer)."""

    config: Any
    strategy: tf.distribute.Strategy
    source: Any  # recsys.data.input.DataSource
    spec: ModelSpec
    label: str
    new_metrics: Callable[[], Any]  # a fresh ProgressiveMetrics
    settling: SettlingSpec = SettlingSpec()  # schedule, weight averaging, jitter of every state


class TrainingMode(abc.ABC):
    """One way of training (module docstring). `build` once, then `results` from a stream position.

    Attributes:
      plan: the replicas' seeds; the first `plan.count` states are the replicas.
      states: every trained model (after `build`).
      keep_serialized: the batches must carry the serialized records (`DataSource.keep_serialized`).
    """

    keep_serialized = False

    def __init__(self, plan: ReplicaPlan):
        self.plan = plan
        self.states: list[ModelState] = []
        self.context: ModeContext | None = None

    def build(self, context: ModeContext) -> None:
        """Builds every state under `context.strategy.scope()`: the replicas, then `_extra_states`."""
        self.context = context
        with context.strategy.scope():
            for init_seed in self.plan.init_seeds:
                self.states.append(build_model_state(context.spec, context.label, context.config.optimizer,
                                                     init_seed=init_seed, metrics_factory=context.new_metrics,
                                                     settling=context.settling))
            self.states.extend(self._extra_states(context))

    def _extra_states(self, context: ModeContext) -> list[ModelState]:
        return []

    @abc.abstractmethod
    def results(self, step: int, examples: int) -> Iterator[StepResult]:
        """One `StepResult` per global batch, from global step `step` and stream offset `examples` on."""

    def export_names(self) -> list[str]:
        """The SavedModel folder (under the workdir) of each state: saved_model, saved_model_1, ..."""
        return saved_model_names(self.plan.count)

    def metrics_fields(self, progressive: bool) -> dict[str, Any]:
        """The mode's `TrainingMetrics` fields (keyword arguments), e.g. its loss settings."""
        return {}

    def pd_flush_every(self) -> int | None:
        """How replica predictions line up for progressive PD (`replicas.AlignedPD`): None = every batch is
        aligned (one order), so PD is added with every progressive-metrics chunk."""
        return None

    def checkpoint_state(self) -> dict[str, Any]:
        """More accumulators for the checkpoint (name -> object with get_state/set_state), e.g. the examples each
        worker trained with `config.data.shard_by="file"`."""
        return {}

    def _synchronous_results(self, dataset: Any, replica_fn: Callable, model_batches: Callable, step: int,
                             examples: int) -> Iterator[StepResult]:
        """Runs `replica_fn(batch)` (task.ReplicaOutputs) on every batch of the distributed `dataset`, from global
        step `step` on, with the settling work around it (`settling.SettlingSteps`; `model_batches(batch)`: each
        state's features, in replica context). Every process gets the whole global batch's labels and predictions
        (all-gathered)."""
        strategy = self.context.strategy
        jit = bool(self.context.config.get("jit_compile_step", False))
        train_step = make_synchronous_step(strategy, replica_fn, dataset.element_spec, jit_compile=jit)
        settle = SettlingSteps(strategy, self.states, self.context.settling, model_batches, dataset.element_spec)
        count = len(self.states)
        workers = self._worker_examples
        for batch in dataset:
            step += 1
            if workers is not None:
                workers.add_local(batch[self.context.label], strategy)
            snapshot = settle.before_step(step, batch)
            outputs = train_step(batch)
            settle.after_step(step)  # before the StepResult: the loop may checkpoint this step
            labels, probabilities, losses, positions = outputs[:4]
            extras = outputs[4] if len(outputs) > 4 else [{}]
            labels = [t.numpy() for t in labels]
            labels = labels if len(labels) == count else labels * count
            # Padding (label < 0) leaves here: a StepResult holds the real examples only.
            real = real_rows(labels)
            labels = drop_padding(labels, real)
            size = labels[0].size
            examples += size
            if workers is not None and self._checkpoint_or_last(step, examples):
                workers.gather(strategy)  # before the loop checkpoints this step, on every worker alike
            yield StepResult(
                labels=labels,
                probabilities=drop_padding([p.numpy() for p in probabilities], real),
                losses=[float(loss) for loss in losses],
                positions=(drop_padding([p.numpy() for p in positions], real) if positions
                           else [np.arange(examples - size, examples)] * count),
                averaged_probabilities=drop_padding(_extra(extras, "averaged"), real),
                snapshot_probabilities=drop_padding([p.numpy() for p in snapshot] if snapshot else None, real),
            )
        if workers is not None:
            workers.gather(strategy)  # the end of the stream: every worker gets here after the same step

    _worker_examples: WorkerExamples | None = None

    def _checkpoint_or_last(self, step: int, examples: int) -> bool:
        """Whether the loop checkpoints after `step`, or stops there (`config.data.max_examples`)."""
        config = self.context.config
        max_examples = int(config.data.max_examples)
        return step % config.checkpoint_every_steps == 0 or (bool(max_examples) and examples >= max_examples)


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """The cluster's training workers (`worker` tasks, plus the `chief` under MultiWorkerMirrored, where it trains
    too); 1 without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None and isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()  # the strategy does not expose its own
    if resolver is None:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    workers = len(cluster.get("worker", ()))
    if not isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        workers += len(cluster.get("chief", ()))
    return max(workers, 1)


class WorkerExamples:
    """The examples each worker trained from its own input (`config.data.shard_by="file"`), in the checkpoint
    (get_state/set_state) and in metrics.json (`worker_examples`).

    Parameter servers: the chief adds each step's batch to the worker that ran it (`add`). MultiWorkerMirrored:
    every worker counts the examples its own pipeline fed to its replicas (`add_local`), and `gather` adds every
    worker's count to `totals` on all workers (a collective: all workers call it after the same step).
    """

    def __init__(self, workers: int):
        self.totals = np.zeros(workers, np.int64)
        self.local = 0

    def add(self, worker: int, count: int) -> None:
        self.totals[worker] += count

    def add_local(self, labels: Any, strategy: tf.distribute.Strategy) -> None:
        # Padding rows (data.pad_final_batch; label < 0) are not examples.
        self.local += sum(int(tf.math.count_nonzero(t >= 0)) for t in strategy.experimental_local_results(labels))

    def gather(self, strategy: tf.distribute.Strategy) -> None:
        workers = len(self.totals)
        per_worker = strategy.num_replicas_in_sync // workers
        local = self.local
        values = strategy.experimental_distribute_values_from_function(  # this worker's count on its first replica
            lambda context: tf.constant([local if context.replica_id_in_sync_group % per_worker == 0 else 0],
                                        tf.int64))
        gathered = np.asarray(strategy.gather(values, axis=0)).reshape(workers, per_worker).sum(axis=1)
        self.totals += gathered
        self.local = 0

    def counts(self) -> list[int]:
        return [int(v) for v in self.totals]

    def get_state(self) -> dict[str, np.ndarray]:
        return {"examples": self.totals.copy()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.totals = np.asarray(state["examples"], np.int64).copy()
        self.local = 0


def _extra(extras: list[dict[str, Any]], key: str) -> list[np.ndarray] | None:
    """Every model's `key` extra as NumPy, or None when the step has none."""
    return [extra[key].numpy() for extra in extras] if key in extras[0] else None


class SharedOrderMode(TrainingMode):
    """Every model trains on the same batches: one model, replicas with noise `init`, or identical models;
    co-distilled when `codistill_weight` > 0."""

    def __init__(self, plan: ReplicaPlan, codistill_weight: float = 0.0):
        super().__init__(plan)
        self.codistill_weight = codistill_weight

    def build(self, context: ModeContext) -> None:
        super().build(context)
        workers = num_workers(context.strategy)
        if context.source.shard_by == "file" and workers > 1:
            self._worker_examples = WorkerExamples(workers)

    def results(self, step: int, examples: int) -> Iterator[StepResult]:
        context = self.context
        dataset = context.source.distributed_dataset(context.strategy, context.config.data.batch_size,
                                                     start_offset=examples, start_step=step)

        def replica_fn(batch):
            return replica_train_step(self.states, batch, context.label, self.codistill_weight)

        def model_batches(batch):
            return [batch] * len(self.states)

        yield from self._synchronous_results(dataset, replica_fn, model_batches, step, examples)

    def metrics_fields(self, progressive: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {"codistill_weight": self.codistill_weight} if self.codistill_weight > 0 else {}
        if self._worker_examples is not None:
            fields["worker_examples"] = self._worker_examples.counts()
        return fields

    def checkpoint_state(self) -> dict[str, Any]:
        return {"worker_examples": self._worker_examples} if self._worker_examples is not None else {}


class PerReplicaOrderMode(SharedOrderMode):
    """Replica r trains on its own permutation of each shuffle window (`DataSource.replica_dataset`); its
    predictions carry stream positions, and PD is added once a window is complete."""

    def results(self, step: int, examples: int) -> Iterator[StepResult]:
        context = self.context
        dataset = context.source.replica_distributed_dataset(
            context.strategy, context.config.data.batch_size, self.plan.data_seeds, start_offset=examples)

        def replica_fn(batches):
            return replica_train_step_per_model(self.states, batches, context.label, self.codistill_weight)

        def model_batches(batches):
            return [batch for batch, _ in batches]

        yield from self._synchronous_results(dataset, replica_fn, model_batches, step, examples)

    def pd_flush_every(self) -> int | None:
        # Window boundaries are fixed positions of the stream, so resumed and uninterrupted runs add the same
        # chunks; `shuffle=full` is one window: PD is added at the end only.
        data = self.context.config.data
        return int(data.shuffle_buffer) if data.shuffle == "window" else 0


class DistillMode(TrainingMode):
    """Students (the replicas, one order) learn from a SavedModel teacher or an online teacher trained in the
    same step (`recsys.training.distill`); the online teacher is the last state, exported to
    saved_model_teacher/."""

    def __init__(self, plan: ReplicaPlan, spec: distill.DistillSpec):
        super().__init__(plan)
        self.spec = spec
        self.keep_serialized = not spec.online
        self.teacher: distill.SavedModelTeacher | None = None

    def teacher_spec(self) -> ModelSpec:
        """`config.model` with `config.distill.teacher_activation` when it is set."""
        context = self.context
        model_config = context.config.model.copy_and_resolve_references()
        if self.spec.teacher_activation:
            model_config.activation = self.spec.teacher_activation
        return ModelSpec.from_config(model_config, context.source.features)

    def build(self, context: ModeContext) -> None:
        super().build(context)
        if not self.spec.online:
            self.teacher = distill.SavedModelTeacher(self.spec.teacher, context.source.features)
            first = next(iter(context.source.dataset(int(context.config.data.batch_size))))
            self.teacher.check_batch(first[distill.SERIALIZED_KEY])

    def _extra_states(self, context: ModeContext) -> list[ModelState]:
        if not self.spec.online:
            return []
        return [build_model_state(self.teacher_spec(), context.label, context.config.optimizer,
                                  init_seed=max(self.plan.init_seeds) + 1, metrics_factory=context.new_metrics,
                                  settling=context.settling)]

    def results(self, step: int, examples: int) -> Iterator[StepResult]:
        context = self.context
        dataset = context.source.distributed_dataset(context.strategy, context.config.data.batch_size,
                                                     start_offset=examples)

        def replica_fn(batch):
            return distill.replica_distill_step(self.states, batch, self.teacher, context.label, self.spec)

        def model_batches(batch):
            return [distill.model_features(batch)] * len(self.states)

        yield from self._synchronous_results(dataset, replica_fn, model_batches, step, examples)

    def export_names(self) -> list[str]:
        return super().export_names() + (["saved_model_teacher"] if self.spec.online else [])

    def metrics_fields(self, progressive: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "distill": DistillMetrics(self.spec.weight, self.spec.temperature, self.spec.teacher)}
        if self.spec.online and progressive:
            teacher = self.states[-1].metrics.result()
            fields["teacher"] = TeacherMetrics(_finite_or_none(teacher["auc"]), _finite_or_none(teacher["logloss"]))
        return fields


class ParameterServerMode(TrainingMode):
    """One model under `ParameterServerStrategy`: this process (the chief) schedules the steps on the workers
    through a `ClusterCoordinator` (`recsys.training.parameter_server`)."""

    def build(self, context: ModeContext) -> None:
        self.coordinator = tf.distribute.experimental.coordinator.ClusterCoordinator(context.strategy)
        super().build(context)
        sharding.log_placement(self.states[0].model)
        # shard_by="file": the workers read their own files; the examples each one trained are its resume point.
        self.worker_examples = (WorkerExamples(num_workers(context.strategy))
                                if context.source.shard_by == "file" else None)

    def results(self, step: int, examples: int) -> Iterator[StepResult]:
        context = self.context
        config = context.config
        if self.worker_examples is not None:
            batch_size = int(config.data.batch_size)
            dataset = parameter_server.per_worker_dataset(context.strategy, self.coordinator, context.source,
                                                          batch_size, self.worker_examples.counts())
            return parameter_server.per_worker_results(
                context.strategy, self.coordinator, self.states, context.label, dataset, self.worker_examples,
                first_step=step, first_example=examples, checkpoint_every_steps=config.checkpoint_every_steps,
                batch_size=batch_size, max_examples=int(config.data.max_examples))
        return parameter_server.coordinator_results(
            context.strategy, self.coordinator, self.states, context.label,
            context.source.dataset(config.data.batch_size, start_offset=examples),
            first_step=step, first_example=examples, checkpoint_every_steps=config.checkpoint_every_steps,
            max_examples=int(config.data.max_examples),
        )

    def checkpoint_state(self) -> dict[str, Any]:
        return {"worker_examples": self.worker_examples} if self.worker_examples is not None else {}

    def metrics_fields(self, progressive: bool) -> dict[str, Any]:
        return {"worker_examples": self.worker_examples.counts()} if self.worker_examples is not None else {}


def select_mode(config: Any, plan: ReplicaPlan) -> TrainingMode:
    """The training mode of `config` (before any TensorFlow object is built).

    Raises:
      ValueError: replicas, weight averaging or jitter under parameter servers; per-replica orders, or
        distillation, under a strategy other than 'default'/'mirrored'; distillation with per-replica orders; a
        bad `config.distill` or `config.codistill.weight`; distillation together with co-distillation.
    """
    if plan.count > 1 and config.strategy == "parameter_server":
        raise ValueError(
            f"Replica mode (replicas.count={plan.count}) does not run under strategy='parameter_server' "
            f"(asynchronous workers cannot align the replicas' predictions); use {strategy_lib.LOOP_STRATEGIES[:2]}"
        )
    if plan.separate_orders and config.strategy not in LOCAL_STRATEGIES:
        raise ValueError(
            f"Replica mode with noise={plan.noise!r} (one order per replica) runs under strategy 'default' or "
            f"'mirrored'. Received: strategy={config.strategy!r}; use noise='init' for other strategies."
        )
    distill_spec = distill.DistillSpec.from_config(config.distill)
    if distill_spec.enabled and config.strategy not in LOCAL_STRATEGIES:
        raise ValueError(
            f"Distillation (config.distill.teacher={distill_spec.teacher!r}) runs under strategy 'default' or "
            f"'mirrored'. Received: strategy={config.strategy!r}"
        )
    if distill_spec.enabled and plan.separate_orders:
        raise ValueError(
            f"Distillation with replicas (replicas.count={plan.count}) needs one order for every model, so that "
            f"the teacher scores each batch before training on it for every student; "
            f"replicas.noise={plan.noise!r} gives each replica its own order. Use replicas.noise='init'."
        )
    codistill_weight = _codistill_weight(config, plan)
    if codistill_weight > 0 and distill_spec.enabled:
        raise ValueError(
            "Give either `config.distill.teacher` or `config.codistill.weight`, not both. Received: "
            f"teacher={distill_spec.teacher!r}, codistill.weight={codistill_weight!r}"
        )
    if config.strategy == "parameter_server":
        _check_parameter_server_settling(config)
        if config.data.get("pad_final_batch", False):
            raise ValueError("`config.data.pad_final_batch=True` pads the synchronous strategies' last batch; "
                             "strategy='parameter_server' runs its steps as they come. Set it to False.")
        return ParameterServerMode(plan)
    if distill_spec.enabled:
        return DistillMode(plan, distill_spec)
    if plan.separate_orders:
        return PerReplicaOrderMode(plan, codistill_weight)
    return SharedOrderMode(plan, codistill_weight)


def _check_parameter_server_settling(config: Any) -> None:
    """Weight averaging and jitter need the synchronous step (`settling.SettlingSteps` between global steps)."""
    averaging = config.get("averaging") if hasattr(config, "get") else None
    decay = averaging.ema_decay if averaging is not None else 0.0
    jitter = config.get("jitter_steps", 0) if hasattr(config, "get") else 0
    if decay or jitter:
        raise ValueError(
            "Weight averaging (config.averaging.ema_decay) and the jitter metric (config.jitter_steps) run under "
            "strategy 'default', 'mirrored' or 'multi_worker_mirrored', not 'parameter_server' (asynchronous steps "
            f"have no single 'N steps ago'). Received: ema_decay={decay!r}, jitter_steps={jitter!r}")


def _codistill_weight(config: Any, plan: ReplicaPlan) -> float:
    """`config.codistill.weight` checked: in [0, 1); > 0 needs replica mode (peers to learn from)."""
    section = config.get("codistill") if hasattr(config, "get") else None
    weight = section.weight if section is not None else 0.0
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= float(weight) < 1.0:
        raise ValueError(f"`config.codistill.weight` must be a number in [0, 1) (0 = off). Received: {weight!r}")
    if weight > 0 and plan.count < 2:
        raise ValueError(
            f"`config.codistill.weight={weight!r}` co-distils the replicas of one job towards each other, but "
            f"replicas.count is {plan.count}: set --config.replicas.count=2 or more."
        )
    return float(weight)


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
