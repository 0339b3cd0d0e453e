"""The online single-pass trainer with progressive validation and exact resume.

One pass over the stream, in the order `recsys.data.input.make_dataset` gives (time order, optionally shuffled
within a window). For every global batch the train step returns the predictions of the pre-update weights, so
each batch is scored *before* it is trained on; those predictions feed the progressive metrics (cumulative and
sliding-window AUC, logloss, calibration — `recsys.metrics.streaming.ProgressiveMetrics`, the same code the
comparator uses).

What is trained and how each step runs is the training mode's (`recsys.training.modes`, selected once from the
config): plain, replicas on one order or on per-replica orders, distillation, co-distillation, parameter servers.
The loop iterates the mode's `StepResult`s and turns them into metrics, progress lines, summaries and checkpoints
the same way for every mode.

Workdir layout:

    config.json      the resolved config (a rerun with a different one is refused)
    checkpoints/     every `checkpoint_every_steps` steps: models, optimizer slots, stream position, metrics state
    tb/              TensorBoard scalars (progressive metrics, loss, examples/s), x-axis = examples consumed
    metrics.json     final progressive metrics and throughput (`recsys.training.metrics_record.TrainingMetrics`)
    saved_model/     serving_default(examples: string[None]) -> probabilities: float32[None]
    saved_model_<r>/ replica mode (`config.replicas.count = R`): replica r >= 1, same contract
    saved_model_teacher/  distillation with `config.distill.teacher = "online"` (recsys.training.distill)

Rerunning the same command resumes from the latest checkpoint: the input restarts at the recorded example
offset, so no example is repeated or skipped, and with `config.deterministic` the final weights are bit-identical
to an uninterrupted run. A finished workdir only completes missing outputs (metrics.json, saved_model/).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from recsys import atomic, console
from recsys.data.features import FeatureSet
from recsys.data.input import DataSource
from recsys.model.ctr import ModelSpec
from recsys.training import parameter_server
from recsys.training import strategy as strategy_lib
from recsys.training.checkpoint import TrainingCheckpoint, checkpoint_directory
from recsys.training.export import export_saved_model
from recsys.training.lock import workdir_lock
from recsys.training.metrics_record import (
    AveragedModelMetrics,
    AveragingMetrics,
    JitterMetrics,
    JitterModelMetrics,
    ModelMetrics,
    ReplicaPD,
    TrainingMetrics,
    metrics_path,
)
from recsys.training.modes import ModeContext, TrainingMode, select_mode
from recsys.training.replicas import AlignedPD, ReplicaPlan
from recsys.training.settling import JitterTracker, SettlingSpec
from recsys.training.sharding import ShardingSpec
from recsys.training.task import ModelState, check_jit_compile_step

# Config keys that may change between a run and its resumption (they do not change what is computed).
RESUMABLE_KEYS = ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints", "export_saved_model")
# Progressive metrics are updated in chunks of at least this many examples: an update has a fixed cost
# (histograms) that would otherwise be paid per batch. Chunks end at step numbers that do not depend on
# where a run was resumed, so resumed and uninterrupted runs accumulate identically.
METRICS_CHUNK_EXAMPLES = 16_384


class TrainingError(RuntimeError):
    """A run stopped for a reason the user must act on; the message says which and what is kept."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; training stopped without saving the bad state."""


@dataclasses.dataclass
class RunOutputs:
    """What a finished run returns: the final metrics (as in metrics.json, and as the typed record) and the
    workdir."""

    metrics: dict[str, Any]
    workdir: str
    record: TrainingMetrics | None = None


class Trainer:
    """Trains `config` in `workdir` (see the module docstring); `run()` does the whole job.

    Args:
      config: a locked ml_collections config (configs/base.py documents the keys).
      workdir: output folder, created if needed.
      strategy: an already built strategy (tests); default: `make_strategy(config.strategy)`.
      progressive: update progressive metrics (False only to measure their cost in benchmarks).
      num_models: train this many identical models (same seeds, same batches) instead of `config.replicas`
        (tests and benchmarks); None: replica mode as `config.replicas` says (recsys.training.replicas).
      record_predictions: keep every step's per-model (positions, probabilities) in `self.recorded` (tests).
    """

    def __init__(
        self,
        config: Any,
        workdir: str,
        strategy: tf.distribute.Strategy | None = None,
        progressive: bool = True,
        num_models: int | None = None,
        record_predictions: bool = False,
    ):
        if config.strategy not in strategy_lib.LOOP_STRATEGIES:  # every strategy since `tpu` joined the loop
            raise ValueError(
                f"`config.strategy` must be one of {strategy_lib.STRATEGIES}. Received: {config.strategy!r}"
            )
        _check_static_shapes(config)
        _check_positive_int("config.log_every_steps", config.log_every_steps)
        _check_positive_int("config.checkpoint_every_steps", config.checkpoint_every_steps)
        _check_positive_int("config.metrics_window", config.metrics_window)
        _check_positive_int("config.metrics_auc_bins", config.metrics_auc_bins)
        plan = ReplicaPlan.from_config(config)
        if num_models is not None:
            if plan.count > 1:
                raise ValueError(f"Give either `num_models` ({num_models}) or `config.replicas.count` "
                                 f"({plan.count}), not both")
            _check_positive_int("num_models", num_models)
            plan = ReplicaPlan.identical(num_models, config.seed.init, config.seed.data)
        self.mode: TrainingMode = select_mode(config, plan)
        self.plan = plan
        self.config = config
        self.workdir = workdir
        self.progressive = progressive
        self.num_models = plan.count
        self.recorded: list[tuple[list[np.ndarray], list[np.ndarray]]] | None = [] if record_predictions else None
        self.steady_examples_per_sec: float | None = None
        self.steady_examples_per_cpu_sec: float | None = None
        self.progressive_seconds: float | None = None
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.strategy = strategy or strategy_lib.make_strategy(config.strategy, tpu=config.tpu,
                                                               sharding=ShardingSpec.from_config(config))
        self.chief = strategy_lib.is_chief(self.strategy)
        self.source = DataSource.from_config(config.data, seed=config.seed.data)
        self.source.keep_serialized = self.mode.keep_serialized
        self.features: FeatureSet = self.source.features
        self.spec = ModelSpec.from_config(config.model, self.features)
        self.label = self.features.label.name
        self.settling = SettlingSpec.from_config(config, self.source.expected_examples(int(config.data.max_examples)))
        self.mode.build(ModeContext(config=config, strategy=self.strategy, source=self.source, spec=self.spec,
                                    label=self.label, new_metrics=self._new_metrics, settling=self.settling))
        self.states: list[ModelState] = self.mode.states
        # The jitter measurements (recsys.training.settling); part of the checkpoint.
        self.jitter = (JitterTracker(len(self.states), int(config.metrics_window))
                       if self.settling.jitter_steps else None)
        # Progressive PD between the models (replica mode); part of the checkpoint, like the metrics.
        self.replica_pd = (AlignedPD(plan.count, int(config.metrics_window), flush_every=self.mode.pd_flush_every())
                           if plan.count > 1 and progressive else None)
        # The progressive AUC after every metrics chunk, per model (convergence speed; part of the checkpoint).
        self.curve = ProgressCurve(len(self.states)) if progressive else None
        extra_state = {"replica_pd": self.replica_pd} if self.replica_pd is not None else {}
        if self.jitter is not None:
            extra_state["jitter"] = self.jitter
        if self.curve is not None:
            extra_state["progress_curve"] = self.curve
        extra_state.update(self.mode.checkpoint_state())  # e.g. the examples each worker trained (shard_by="file")
        directory = checkpoint_directory(workdir)
        self.checkpoint = TrainingCheckpoint(
            directory, self.states, keep=config.keep_checkpoints,
            write_directory=strategy_lib.write_dir(directory, self.strategy), extra_state=extra_state or None,
        )

    def _new_metrics(self):
        from recsys.metrics.streaming import ProgressiveMetrics

        return ProgressiveMetrics(window=int(self.config.metrics_window), auc_bins=int(self.config.metrics_auc_bins))

    # ----------------------------------------------------------------------------------------------------------
    def run(self) -> RunOutputs:
        """`_run` holding the workdir's lock (`recsys.training.lock`): a second trainer on it fails fast."""
        with workdir_lock(self.workdir) if self.chief else contextlib.nullcontext():
            return self._run()

    def _run(self) -> RunOutputs:
        """Trains to the end of the stream (or resumes), then writes metrics.json and saved_model/."""
        if self.chief:
            tf.io.gfile.makedirs(self.workdir)
            self._write_or_check_config()
        resumed = self.checkpoint.restore_latest()
        step, examples, train_seconds, finished = self.checkpoint.position()
        if resumed:
            logging.info("Resuming from %s: step %d, %d examples consumed%s", self.checkpoint.latest, step,
                         examples, " (finished)" if finished else "")
        if not finished:
            step, examples, train_seconds = self._train(step, examples, train_seconds)
        record = self._final_metrics(step, examples, train_seconds)
        if self.chief:
            self._finish_outputs(record)
        return RunOutputs(record.to_json(), self.workdir, record)

    def _train(self, step: int, examples: int, train_seconds: float) -> tuple[int, int, float]:
        config = self.config
        max_examples = int(config.data.max_examples)
        if max_examples and examples >= max_examples:
            return self._finish_stream(step, examples, train_seconds)
        results = self.mode.results(step, examples)
        expected = self.source.expected_examples(max_examples)
        writer = tf.summary.create_file_writer(os.path.join(self.workdir, "tb")) if self.chief else None
        pending = _PendingMetrics([s.metrics for s in self.states]) if self.progressive else None
        averaged = self.states[0].averaged_metrics is not None and self.progressive
        pending_averaged = _PendingMetrics([s.averaged_metrics for s in self.states]) if averaged else None
        started_examples = examples
        started = time.perf_counter()
        last_log = (started, examples, time.process_time())
        first_log: tuple[float, int, float] | None = None
        loss_sums, loss_count = np.zeros(len(self.states)), 0
        for result in results:
            losses, size = result.losses, result.size
            if self.recorded is not None:
                self.recorded.append((result.positions, result.probabilities))
            step += 1
            if not all(math.isfinite(loss) for loss in losses):
                raise NonFiniteLossError(
                    f"Loss is {losses} at step {step} (examples {examples + 1}..{examples + size}): "
                    f"training stopped. The last good checkpoint is kept: {self.checkpoint.latest or 'none yet'}. "
                    "Check the input data for NaN/Inf values or lower the learning rates."
                )
            examples += size
            loss_sums += np.asarray(losses) * size
            loss_count += size
            if pending is not None:
                pending.add(result.labels, result.probabilities)
            if pending_averaged is not None:
                pending_averaged.add(result.labels, result.averaged_probabilities)
            if self.jitter is not None and result.snapshot_probabilities is not None:
                self.jitter.add(examples, result.labels, result.probabilities, result.snapshot_probabilities)
            if self.replica_pd is not None:
                self.replica_pd.add(result.positions, result.probabilities)
            checkpoint_now = step % config.checkpoint_every_steps == 0
            log_now = step % config.log_every_steps == 0
            done = bool(max_examples) and examples >= max_examples
            metrics_flushed = pending is not None and (
                checkpoint_now or log_now or done or pending.size >= METRICS_CHUNK_EXAMPLES)
            if metrics_flushed:
                self._flush_metrics(pending, examples)
                if pending_averaged is not None:
                    pending_averaged.flush()
            if self.replica_pd is not None:
                start_pd = time.perf_counter()
                self.replica_pd.advance(examples, metrics_flushed)
                pending.seconds += time.perf_counter() - start_pd
            if log_now:
                now = time.perf_counter()
                rate = (examples - last_log[1]) / max(now - last_log[0], 1e-9)
                last_log = (now, examples, time.process_time())
                first_log = first_log or last_log
                self._log_progress(step, examples, expected, rate, loss_sums / max(loss_count, 1), writer)
                loss_sums, loss_count = np.zeros(len(self.states)), 0
            if checkpoint_now:
                elapsed = train_seconds + time.perf_counter() - started
                self.checkpoint.save(step, examples, elapsed)
            if done:
                break
        if pending_averaged is not None:
            pending_averaged.flush()
        if pending is not None:
            if pending.size:
                self._flush_metrics(pending, examples)
            if self.replica_pd is not None:
                # The end of the stream completes the last window; a max_examples cut leaves a window partly
                # seen, in different examples per replica: only those every replica scored count.
                self.replica_pd.flush(None)
            self.progressive_seconds = pending.seconds + (pending_averaged.seconds if pending_averaged else 0.0)
        finished_at = time.perf_counter()
        train_seconds += finished_at - started
        if first_log is not None and last_log[1] > first_log[1]:
            # Throughput without start-up (tracing, first batches) or wind-down: between the first and the last
            # progress line.
            self.steady_examples_per_sec = (last_log[1] - first_log[1]) / (last_log[0] - first_log[0])
            # The same per CPU second of this process (all its threads): insensitive to other load on the machine.
            self.steady_examples_per_cpu_sec = (last_log[1] - first_log[1]) / max(last_log[2] - first_log[2], 1e-9)
        if examples == 0:
            raise TrainingError(
                f"No examples in the input {self.config.data.train!r}: the files matched but hold no records."
            )
        logging.info("Stream done: %d steps, %d examples (%d in this run) in %.1f s of training", step, examples,
                     examples - started_examples, train_seconds)
        if writer is not None:
            writer.close()
        return self._finish_stream(step, examples, train_seconds)

    def _flush_metrics(self, pending: _PendingMetrics, examples: int) -> None:
        """Adds the pending predictions to the progressive metrics, then a point to the progress curve (both
        counted as progressive-validation time)."""
        pending.flush()
        start = time.perf_counter()
        self.curve.add(examples, [state.metrics.result() for state in self.states])
        pending.seconds += time.perf_counter() - start

    def _finish_stream(self, step: int, examples: int, train_seconds: float) -> tuple[int, int, float]:
        self.checkpoint.save(step, examples, train_seconds, finished=True)
        return step, examples, train_seconds

    # ----------------------------------------------------------------------------------------------------------
    def _log_progress(self, step, examples, expected, rate, mean_losses, writer) -> None:
        if not self.chief:
            return
        results = [s.metrics.result() for s in self.states] if self.progressive else []
        position = console.format_position(examples, expected, rate)
        line = f"step {step} examples {position} {rate:.0f} ex/s loss {mean_losses[0]:.5f}"
        if results:
            r = results[0]
            line += (
                f" | progressive auc {r['auc']:.4f} logloss {r['logloss']:.5f} calibration {r['calibration']:.3f}"
                f" | window auc {r['window_auc']:.4f} logloss {r['window_logloss']:.5f}"
            )
        averaged = ([s.averaged_metrics.result() for s in self.states]
                    if self.progressive and self.states[0].averaged_metrics is not None else [])
        if averaged:
            a = averaged[0]
            line += (f" | averaged auc {a['auc']:.4f} logloss {a['logloss']:.5f} calibration "
                     f"{a['calibration']:.3f}")
        jitter = [self.jitter.result(i) for i in range(len(self.states))] if self.jitter is not None else []
        if jitter:
            j = jitter[0]
            line += (f" | jitter pd {100 * j['relative_pd']:.2f}% (window {100 * j['window_relative_pd']:.2f}%) "
                     f"snapshot calibration {j['snapshot_calibration']:.3f}")
        logging.info(line)
        if writer is None:
            return
        with writer.as_default():
            tf.summary.scalar("train/examples_per_sec", rate, step=examples)
            for index, loss in enumerate(mean_losses):
                tf.summary.scalar(_tag("train/loss", index, len(self.states)), loss, step=examples)
            for index, result in enumerate(results):
                for key, value in result.items():
                    if key != "examples":
                        tf.summary.scalar(_tag(f"progressive/{key}", index, len(self.states)), value, step=examples)
            for index, result in enumerate(averaged):
                for key, value in result.items():
                    if key != "examples":
                        tf.summary.scalar(_tag(f"progressive_averaged/{key}", index, len(self.states)), value,
                                          step=examples)
            for index, result in enumerate(jitter):
                for key, value in result.items():
                    if math.isfinite(value):
                        tf.summary.scalar(_tag(f"jitter/{key}", index, len(self.states)), value, step=examples)
            if self.replica_pd is not None:
                for key, value in self.replica_pd.result().items():
                    if key != "examples" and math.isfinite(value):
                        tf.summary.scalar(f"progressive_pd/{key}", value, step=examples)
        writer.flush()

    def _final_metrics(self, step: int, examples: int, train_seconds: float) -> TrainingMetrics:
        """The metrics.json record: progressive metrics of every replica (model 0's at the top level), the
        replicas' progressive PD, the curve and the mode's fields."""
        models = [_model_metrics(state.metrics.result()) if self.progressive else None
                  for state in self.states[: self.num_models]]
        replica_pd = None
        if self.replica_pd is not None:
            pd = self.replica_pd.result()
            replica_pd = ReplicaPD(
                relative_pd=_finite_or_none(pd["relative_pd"]),
                window_relative_pd=_finite_or_none(pd["window_relative_pd"]),
                absolute_pd=_finite_or_none(pd["absolute_pd"]),
                window_absolute_pd=_finite_or_none(pd["window_absolute_pd"]),
                examples=int(pd["examples"]),
            )
        return TrainingMetrics(
            examples=int(examples),
            steps=int(step),
            examples_per_sec=examples / train_seconds if train_seconds > 0 else None,
            train_seconds=train_seconds,
            steady_examples_per_sec=self.steady_examples_per_sec,
            progressive_metrics_seconds=self.progressive_seconds,
            batch_size=int(self.config.data.batch_size),
            num_replicas_in_sync=int(self.strategy.num_replicas_in_sync),
            strategy=self.config.strategy,
            models=models,
            replica_noise=self.plan.noise,
            saved_models=self.saved_model_paths() if self.config.export_saved_model else [],
            replica_pd=replica_pd,
            progressive_curve=self.curve.to_json() if self.curve is not None else None,
            averaging=self._averaging_metrics(),
            jitter=self._jitter_metrics(),
            **self.mode.metrics_fields(self.progressive),
        )

    def _averaging_metrics(self) -> AveragingMetrics | None:
        spec = self.settling.averaging
        if not spec.enabled:
            return None
        models = None
        if self.progressive and spec.progressive_averaged:
            models = [AveragedModelMetrics(**{key: _finite_or_none(state.averaged_metrics.result()[key])
                                              for key in AveragedModelMetrics.__dataclass_fields__})
                      for state in self.states[: self.num_models]]
        return AveragingMetrics(spec.ema_decay, spec.start_examples, spec.export, models, spec.every_steps)

    def _jitter_metrics(self) -> JitterMetrics | None:
        if self.jitter is None:
            return None
        models = [JitterModelMetrics(**{key: _finite_or_none(value) for key, value in self.jitter.result(i).items()})
                  for i in range(self.num_models)]
        return JitterMetrics(self.settling.jitter_steps, self.jitter.count, models)

    def saved_model_paths(self) -> list[str]:
        """Absolute SavedModel directories in replica order: saved_model, saved_model_1, ..."""
        return self._export_paths()[: self.num_models]

    def _export_paths(self) -> list[str]:
        """Absolute SavedModel directory of every state (the mode's names)."""
        return [os.path.abspath(os.path.join(self.workdir, name)) for name in self.mode.export_names()]

    def _finish_outputs(self, record: TrainingMetrics) -> None:
        """Writes metrics.json and exports saved_model/ unless they already exist (a finished rerun)."""
        path = metrics_path(self.workdir)
        if not tf.io.gfile.exists(path):
            atomic.write_json(path, record.to_json(), sort_keys=True)
        if self.config.export_saved_model:
            for state, path in zip(self.states, self._export_paths(), strict=True):
                if not tf.io.gfile.exists(path):
                    self._export(state, path)

    def _export(self, state: ModelState, path: str) -> None:
        """One model's SavedModel (its weight average with `averaging.export = "averaged"`), with the data's
        features.json in assets.extra/."""
        averaged = self.settling.averaging.enabled and self.settling.averaging.export == "averaged"
        export_saved_model(state.average.model if averaged else state.model, self.features, path,
                           extra_files={"features.json": json.dumps(self.features.to_json(), indent=2) + "\n"})
        logging.info("Exported %s", path)

    def export_checkpoint(self, checkpoint_path: str, output_dir: str) -> list[str]:
        """Exports every model as it was at `checkpoint_path` (one of this workdir's checkpoints, e.g. from
        `recsys.training.checkpoint.list_checkpoints`) to `output_dir`, under the names of the final export
        (saved_model, saved_model_1, ...): same serving contract, same features.json. Trains nothing and changes
        nothing in the workdir. Returns the SavedModel paths in state order.

        Raises:
          FileNotFoundError: the workdir has no config.json (not a trainer workdir).
          ValueError: the workdir was trained with another config (`config_differences`).
          FileExistsError: a SavedModel path in `output_dir` already exists.
        """
        path = os.path.join(self.workdir, "config.json")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"{self.workdir} is not a trainer workdir: no config.json")
        with tf.io.gfile.GFile(path) as f:
            differences = config_differences(json.load(f), self.resolved_config())
        if differences:
            raise ValueError(f"{self.workdir} was trained with a different config; export it with the config it "
                             f"was trained with. Differences (key: saved -> now): {'; '.join(differences)}")
        # Only the models: the optimizer slots and metrics in the checkpoint do not change what is served.
        models = {"models": [state.model for state in self.states]}
        if self.states[0].average is not None:
            models["averaged_models"] = [state.average.model for state in self.states]
        status = tf.train.Checkpoint(**models).restore(checkpoint_path)
        status.assert_existing_objects_matched().expect_partial()
        paths = [os.path.abspath(os.path.join(output_dir, name)) for name in self.mode.export_names()]
        tf.io.gfile.makedirs(output_dir)
        for state, export_path in zip(self.states, paths, strict=True):
            self._export(state, export_path)
        return paths

    def _write_or_check_config(self) -> None:
        path = os.path.join(self.workdir, "config.json")
        resolved = self.resolved_config()
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                previous = json.load(f)
            differences = config_differences(previous, resolved)
            if differences:
                raise ValueError(
                    f"{self.workdir} holds a run with a different config; resume it with the same config or use a new "
                    f"workdir. Differences (key: saved -> now): {'; '.join(differences)}"
                )
        atomic.write_json(path, resolved, sort_keys=True)

    def resolved_config(self) -> dict[str, Any]:
        """The config as JSON, with the features file resolved to the one actually used."""
        resolved = json.loads(self.config.to_json())
        resolved["data"]["features"] = self.source.features_path
        return resolved


class _PendingMetrics:
    """Predictions waiting to be added to progressive metrics, one accumulator per model (see
    METRICS_CHUNK_EXAMPLES)."""

    def __init__(self, metrics: list[Any]):
        self.metrics = metrics
        self.labels: list[list[np.ndarray]] = [[] for _ in metrics]
        self.probabilities: list[list[np.ndarray]] = [[] for _ in metrics]
        self.size = 0
        self.seconds = 0.0  # wall time spent here: the cost of progressive validation

    def add(self, labels: list[np.ndarray], probabilities: list[np.ndarray]) -> None:
        """One step's labels and predictions, one entry per model (`StepResult`)."""
        start = time.perf_counter()
        for label_store, store, y, p in zip(self.labels, self.probabilities, labels, probabilities, strict=True):
            label_store.append(y)
            store.append(p)
        self.size += labels[0].size
        self.seconds += time.perf_counter() - start

    def flush(self) -> None:
        if not self.size:
            return
        start = time.perf_counter()
        for metrics, label_store, store in zip(self.metrics, self.labels, self.probabilities, strict=True):
            metrics.update(np.concatenate(label_store), np.concatenate(store))
            store.clear()
            label_store.clear()
        self.size = 0
        self.seconds += time.perf_counter() - start


class ProgressCurve:
    """Progressive AUC (cumulative and sliding-window) of every model after each progressive-metrics chunk.

    metrics.json key `progressive_curve`: {"examples": [n_1, ...], "auc": [[model 0 at n_1, ...], ...],
    "window_auc": [...]}, one row per trained model (the online distillation teacher last). It answers "how many
    examples until model A reaches AUC x" (recsys.study.analysis.examples_to_reach). Points are at the chunk
    boundaries of `METRICS_CHUNK_EXAMPLES`, which do not depend on where a run was resumed.
    """

    def __init__(self, num_models: int):
        self.num_models = num_models
        self.examples: list[int] = []
        self.auc: list[list[float]] = [[] for _ in range(num_models)]
        self.window_auc: list[list[float]] = [[] for _ in range(num_models)]

    def add(self, examples: int, results: list[dict[str, float]]) -> None:
        if self.examples and examples <= self.examples[-1]:
            return
        self.examples.append(int(examples))
        for index, result in enumerate(results):
            self.auc[index].append(float(result["auc"]))
            self.window_auc[index].append(float(result["window_auc"]))

    def to_json(self) -> dict[str, Any]:
        return {"examples": list(self.examples),
                "auc": [[_finite_or_none(v) for v in row] for row in self.auc],
                "window_auc": [[_finite_or_none(v) for v in row] for row in self.window_auc]}

    def get_state(self) -> dict[str, np.ndarray]:
        return {"examples": np.asarray(self.examples, np.int64),
                "auc": np.asarray(self.auc, np.float64).reshape(self.num_models, -1),
                "window_auc": np.asarray(self.window_auc, np.float64).reshape(self.num_models, -1)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.examples = [int(v) for v in state["examples"]]
        self.auc = [[float(v) for v in row] for row in state["auc"]]
        self.window_auc = [[float(v) for v in row] for row in state["window_auc"]]


def _tag(name: str, index: int, count: int) -> str:
    return name if count == 1 else f"{name}/model_{index}"


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _model_metrics(result: dict[str, float]) -> ModelMetrics:
    """`ProgressiveMetrics.result()` as the record's (non-finite values are undefined: None)."""
    return ModelMetrics(**{key: _finite_or_none(result[key]) for key in ModelMetrics.__dataclass_fields__})


def _check_static_shapes(config: Any) -> None:
    """`strategy=tpu` needs one static batch shape (`config.data.pad_final_batch`); `config.jit_compile_step` a
    strategy that can compile the step (`task.check_jit_compile_step`)."""
    if config.strategy == "tpu" and not config.data.get("pad_final_batch", False):
        raise ValueError("strategy='tpu' needs static shapes: set --config.data.pad_final_batch=True (the last "
                         "partial batch is padded with zero-weight examples; docs/training.md, 'Padding')")
    if config.get("jit_compile_step", False):
        check_jit_compile_step(config.strategy)


def _check_positive_int(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{key}` must be a positive integer. Received: {value!r}")


def config_differences(previous: dict, current: dict, prefix: str = "") -> list[str]:
    """`key: saved -> now` for every key whose value differs between a run's saved config.json and `current`
    (a key only one of them has differs too); `RESUMABLE_KEYS` are ignored. The trainer refuses to resume, and
    the study to reuse a finished run, when this is not empty."""
    differences = []
    for key in sorted(set(previous) | set(current)):
        name = f"{prefix}{key}"
        if name in RESUMABLE_KEYS:
            continue
        old, new = previous.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences += config_differences(old, new, prefix=f"{name}.")
        elif old != new:
            differences.append(f"{name}: {old!r} -> {new!r}")
    return differences


def train(config: Any, workdir: str, **kwargs) -> RunOutputs:
    """Runs (or resumes) the training job of `config` in `workdir`. See `Trainer`.

    Under `strategy=parameter_server`, a process whose TF_CONFIG task is a `worker` or `ps` serves the cluster
    until it is terminated instead (`parameter_server.serve`); only the `chief` runs the trainer.
    """
    if config.strategy == "parameter_server" and parameter_server.task_type() in ("worker", "ps"):
        parameter_server.serve(deterministic=bool(config.deterministic))
    return Trainer(config, workdir, **kwargs).run()


def export_checkpoint(config: Any, workdir: str, checkpoint_path: str, output_dir: str) -> list[str]:
    """Exports the models of the trainer workdir `workdir` (trained with `config`) as they were at its checkpoint
    `checkpoint_path`, to `output_dir/saved_model`, `saved_model_1`, ... (`Trainer.export_checkpoint`).

    The models are restored from the checkpoint into freshly built ones, so exporting the final checkpoint gives
    the SavedModels the run itself exported.
    """
    return Trainer(config, workdir).export_checkpoint(checkpoint_path, output_dir)

