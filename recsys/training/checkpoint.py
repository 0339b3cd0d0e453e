"""Checkpoints that make resuming exact: model, optimizer slots, stream position and progressive metrics.

Everything lives in one `tf.train.Checkpoint`, so it is written and committed as a unit:

- `models`, `embedding_optimizers`, `dense_optimizers`: one entry per trained model (variables and slots);
- `step`, `examples`: global steps taken and examples consumed — the stream position to restart from;
- `train_seconds`: wall time spent in the training loop so far (for examples/s over resumed runs);
- `finished`: the stream was fully consumed;
- `metrics`: each model's `ProgressiveMetrics` state (NumPy arrays), through `tf.train.experimental.PythonState`;
- `replica_pd` (replica mode): the progressive PD and the predictions not yet aligned across replicas;
- with the settling options (`recsys.training.settling`): `averaged_models` (each model's weight average),
  `averaged_metrics` (progressive metrics of the averaged weights), `jitter_snapshots` (each model's weights of
  `jitter_steps` steps ago) and `jitter` (the jitter measurements); absent when the options are off, so such
  checkpoints are exactly what they were before;
- `progress_curve`: the progressive AUC after each metrics chunk (`recsys.training.loop.ProgressCurve`). It is
  *optional* on restore: a checkpoint written before the curve existed resumes, with the curve starting there.

`tf.train.CheckpointManager` writes the data and index files first and then replaces the small `checkpoint`
state file atomically, so a process killed at any moment leaves the previous checkpoint as the latest one;
older checkpoints beyond `keep` are deleted only after the new one is committed.
"""
from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from recsys.training.task import ModelState

CHECKPOINT_PREFIX = "ckpt"
# Entries a checkpoint may lack (added after checkpoints of earlier versions were written).
OPTIONAL_ENTRIES = ("progress_curve",)


class MetricsState(tf.train.experimental.PythonState):
    """Puts a metrics accumulator's `get_state()` arrays into a TF checkpoint (uncompressed .npz bytes)."""

    def __init__(self, metrics: Any):
        self.metrics = metrics

    def serialize(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **self.metrics.get_state())
        return buffer.getvalue()

    def deserialize(self, string_value: bytes) -> None:
        with np.load(io.BytesIO(string_value), allow_pickle=False) as data:
            self.metrics.set_state({key: data[key] for key in data.files})


class TrainingCheckpoint:
    """The run's checkpoint: stream position, models, optimizers and progressive-metrics state.

    Args:
      directory: `<workdir>/checkpoints`; every process restores from it.
      states: the trained models (with their optimizers and metrics).
      keep: number of checkpoints kept.
      write_directory: where this process writes (a private folder on non-chief MultiWorkerMirrored workers,
        whose copies are deleted right after writing); defaults to `directory`.
      extra_state: more accumulators with `get_state`/`set_state` (name -> object), e.g. replica mode's
        progressive PD with its not yet aligned predictions.
    """

    def __init__(
        self,
        directory: str,
        states: Sequence[ModelState],
        keep: int,
        write_directory: str | None = None,
        extra_state: dict[str, Any] | None = None,
    ):
        if keep < 1:
            raise ValueError(f"`config.keep_checkpoints` must be >= 1. Received: {keep}")
        self.directory = directory
        self.write_directory = write_directory or directory
        # Plain (non-distributed) variables: created outside any strategy scope, assigned from Python.
        with tf.init_scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.examples = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples")
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
            self.finished = tf.Variable(False, trainable=False, name="finished")
        self._objects = dict(
            models=[s.model for s in states],
            embedding_optimizers=[s.embedding_optimizer for s in states],
            dense_optimizers=[s.dense_optimizer for s in states],
            metrics=[MetricsState(s.metrics) for s in states],
            step=self.step,
            examples=self.examples,
            train_seconds=self.train_seconds,
            finished=self.finished,
            **{name: MetricsState(value) for name, value in (extra_state or {}).items()},
        )
        if states and states[0].average is not None:
            self._objects["averaged_models"] = [s.average.model for s in states]
        if states and states[0].averaged_metrics is not None:
            self._objects["averaged_metrics"] = [MetricsState(s.averaged_metrics) for s in states]
        if states and states[0].snapshot is not None:
            self._objects["jitter_snapshots"] = [s.snapshot for s in states]
        self.checkpoint = tf.train.Checkpoint(**self._objects)
        self.manager = (
            tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep, checkpoint_name=CHECKPOINT_PREFIX)
            if self.write_directory == directory
            else None
        )

    @property
    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self) -> bool:
        """Restores the latest checkpoint of `directory` if there is one; returns whether it did."""
        path = self.latest
        if path is None:
            return False
        saved = {name.split("/")[0] for name in tf.train.load_checkpoint(path).get_variable_to_shape_map()}
        missing = [name for name in OPTIONAL_ENTRIES if name in self._objects and name not in saved]
        checkpoint = self.checkpoint
        if missing:
            logging.warning("%s has no %s (written by an older version): resuming without it", path, missing)
            checkpoint = tf.train.Checkpoint(**{k: v for k, v in self._objects.items() if k not in missing})
        checkpoint.restore(path).assert_existing_objects_matched()
        return True

    def save(self, step: int, examples: int, train_seconds: float, finished: bool = False) -> str:
        """Commits a checkpoint numbered `step` (every process must call this under MultiWorkerMirrored)."""
        self.step.assign(step)
        self.examples.assign(examples)
        self.train_seconds.assign(train_seconds)
        self.finished.assign(finished)
        if self.manager is not None:
            return self.manager.save(checkpoint_number=step)
        # A non-chief worker: take part in the save (it may run collectives), then drop the copy.
        path = self.checkpoint.write(os.path.join(self.write_directory, CHECKPOINT_PREFIX))
        tf.io.gfile.rmtree(self.write_directory)
        parent = os.path.dirname(self.write_directory)
        if parent != self.directory and not tf.io.gfile.listdir(parent):
            tf.io.gfile.rmtree(parent)
        return path

    def position(self) -> tuple[int, int, float, bool]:
        """(step, examples, train_seconds, finished) as restored."""
        return int(self.step.numpy()), int(self.examples.numpy()), float(self.train_seconds.numpy()), bool(
            self.finished.numpy()
        )


def checkpoint_directory(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint on disk: its path (prefix of the `.index`/`.data` files) and the stream position it holds."""

    path: str
    step: int
    examples: int
    finished: bool


def list_checkpoints(workdir: str) -> list[CheckpointInfo]:
    """The checkpoints of a trainer workdir that are still on disk, oldest first (the last is the latest).

    Checkpoints are named `ckpt-<global step>` (`CHECKPOINT_PREFIX`); `tf.train.CheckpointManager` keeps the newest
    `config.keep_checkpoints` of them and lists them in the `checkpoint` state file, which this reads. A finished
    run with `keep_checkpoints >= 2` keeps the final checkpoint and the last one written before it.
    """
    state = tf.train.get_checkpoint_state(checkpoint_directory(workdir))
    if state is None:
        return []
    found = []
    for path in state.all_model_checkpoint_paths:
        if not tf.io.gfile.exists(f"{path}.index"):
            continue
        reader = tf.train.load_checkpoint(path)
        found.append(CheckpointInfo(
            path=path,
            step=int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")),
            examples=int(reader.get_tensor("examples/.ATTRIBUTES/VARIABLE_VALUE")),
            finished=bool(reader.get_tensor("finished/.ATTRIBUTES/VARIABLE_VALUE")),
        ))
    return sorted(found, key=lambda info: info.step)
