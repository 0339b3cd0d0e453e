"""`<workdir>/metrics.json`: the trainer's final metrics, written from and read back into one typed record.

The trainer (`recsys.training.loop`) fills a `TrainingMetrics` and writes `to_json()`; the study
(`recsys.study.runner`) reads it back with `TrainingMetrics.load` / `read_json`. The JSON keys are the contract of
docs/training.md, "Outputs" (and "Replica mode", "Distillation", "Co-distillation"):

    examples, steps, progressive_{auc,logloss,calibration,window_auc,window_logloss,window_calibration} (model 0),
    examples_per_sec, train_seconds, steady_examples_per_sec, progressive_metrics_seconds, batch_size,
    num_replicas_in_sync, strategy, replicas, replica_noise, saved_models, progressive_curve;
    with R >= 2 models: models, progressive_relative_pd, window_relative_pd, progressive_absolute_pd,
    window_absolute_pd, progressive_pd_examples;
    distillation: distill_weight, distill_temperature, distill_teacher (+ teacher_progressive_{auc,logloss} online);
    co-distillation: codistill_weight;
    weight averaging (`config.averaging.ema_decay` > 0): ema_decay, ema_start_examples, ema_every_steps,
    export_weights, and with progressive_averaged: progressive_averaged_{auc,logloss,calibration} (model 0) and
    `averaged_models` (per replica);
    jitter (`config.jitter_steps` > 0): jitter_steps, jitter_measurements, jitter_relative_pd,
    jitter_window_relative_pd, jitter_snapshot_calibration (model 0) and `jitter_models` (per replica);
    worker input (`config.data.shard_by="file"` on several workers): worker_examples (per worker).

Undefined values (AUC with one class) are null. `from_json(to_json())` round-trips; reading is lenient about
keys an older trainer did not write (they read as None). No TensorFlow here: the study imports this module.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

METRICS_FILE = "metrics.json"
# ProgressiveMetrics.result() keys, written as `progressive_<key>`.
PROGRESSIVE_KEYS = ("auc", "logloss", "calibration", "window_auc", "window_logloss", "window_calibration")
# The per-replica summary (`replicas` entries).
REPLICA_KEYS = ("progressive_auc", "progressive_logloss", "progressive_calibration")


def metrics_path(workdir: str) -> str:
    return os.path.join(workdir, METRICS_FILE)


@dataclasses.dataclass(frozen=True)
class ModelMetrics:
    """One model's final progressive metrics (None: undefined, e.g. AUC with one class)."""

    auc: float | None
    logloss: float | None
    calibration: float | None
    window_auc: float | None
    window_logloss: float | None
    window_calibration: float | None

    def to_json(self) -> dict[str, float | None]:
        return {f"progressive_{key}": getattr(self, key) for key in PROGRESSIVE_KEYS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMetrics | None:
        """None when `data` holds no progressive metrics (a run without progressive validation)."""
        if not any(f"progressive_{key}" in data for key in PROGRESSIVE_KEYS):
            return None
        return cls(**{key: data.get(f"progressive_{key}") for key in PROGRESSIVE_KEYS})


@dataclasses.dataclass(frozen=True)
class ReplicaPD:
    """Progressive PD between the replicas (fractions, mean over replica pairs) and the examples it covers."""

    relative_pd: float | None
    window_relative_pd: float | None
    absolute_pd: float | None
    window_absolute_pd: float | None
    examples: int

    def to_json(self) -> dict[str, Any]:
        return {"progressive_relative_pd": self.relative_pd, "window_relative_pd": self.window_relative_pd,
                "progressive_absolute_pd": self.absolute_pd, "window_absolute_pd": self.window_absolute_pd,
                "progressive_pd_examples": self.examples}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplicaPD | None:
        if "progressive_pd_examples" not in data:
            return None
        return cls(data.get("progressive_relative_pd"), data.get("window_relative_pd"),
                   data.get("progressive_absolute_pd"), data.get("window_absolute_pd"),
                   int(data["progressive_pd_examples"]))


@dataclasses.dataclass(frozen=True)
class DistillMetrics:
    """The distillation settings (`config.distill`) of a distilled run."""

    weight: float
    temperature: float
    teacher: str

    def to_json(self) -> dict[str, Any]:
        return {"distill_weight": self.weight, "distill_temperature": self.temperature,
                "distill_teacher": self.teacher}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DistillMetrics | None:
        if "distill_teacher" not in data:
            return None
        return cls(data.get("distill_weight"), data.get("distill_temperature"), data["distill_teacher"])


@dataclasses.dataclass(frozen=True)
class TeacherMetrics:
    """The online distillation teacher's final progressive metrics."""

    auc: float | None
    logloss: float | None

    def to_json(self) -> dict[str, Any]:
        return {"teacher_progressive_auc": self.auc, "teacher_progressive_logloss": self.logloss}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TeacherMetrics | None:
        if "teacher_progressive_auc" not in data:
            return None
        return cls(data["teacher_progressive_auc"], data.get("teacher_progressive_logloss"))


@dataclasses.dataclass(frozen=True)
class AveragedModelMetrics:
    """One model's progressive metrics of its averaged weights (each batch scored before training)."""

    auc: float | None
    logloss: float | None
    calibration: float | None

    def to_json(self) -> dict[str, float | None]:
        return {f"progressive_averaged_{key}": getattr(self, key) for key in ("auc", "logloss", "calibration")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AveragedModelMetrics:
        return cls(*(data.get(f"progressive_averaged_{key}") for key in ("auc", "logloss", "calibration")))


@dataclasses.dataclass(frozen=True)
class AveragingMetrics:
    """Weight averaging's settings and, with progressive_averaged, every replica's averaged metrics."""

    ema_decay: float
    start_examples: int
    export: str
    models: list[AveragedModelMetrics] | None = None
    every_steps: int | None = None  # None: written before `config.averaging.every_steps` existed (every step)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ema_decay": self.ema_decay, "ema_start_examples": self.start_examples,
                                "ema_every_steps": self.every_steps, "export_weights": self.export}
        if self.models is not None:
            data.update(self.models[0].to_json())
            data["averaged_models"] = [model.to_json() for model in self.models]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AveragingMetrics | None:
        if "ema_decay" not in data:
            return None
        models = data.get("averaged_models")
        return cls(data["ema_decay"], data.get("ema_start_examples"), data.get("export_weights"),
                   [AveragedModelMetrics.from_json(model) for model in models] if models is not None else None,
                   data.get("ema_every_steps"))


JITTER_KEYS = ("relative_pd", "window_relative_pd", "snapshot_calibration")


@dataclasses.dataclass(frozen=True)
class JitterModelMetrics:
    """One model's jitter (`recsys.training.settling`): PD against itself N steps earlier, the snapshot's
    calibration on the last jitter batch."""

    relative_pd: float | None
    window_relative_pd: float | None
    snapshot_calibration: float | None

    def to_json(self) -> dict[str, float | None]:
        return {f"jitter_{key}": getattr(self, key) for key in JITTER_KEYS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JitterModelMetrics:
        return cls(*(data.get(f"jitter_{key}") for key in JITTER_KEYS))


@dataclasses.dataclass(frozen=True)
class JitterMetrics:
    """The jitter metric's N (`config.jitter_steps`), how many jitter steps were measured, and per replica."""

    steps: int
    measurements: int
    models: list[JitterModelMetrics]

    def to_json(self) -> dict[str, Any]:
        return {"jitter_steps": self.steps, "jitter_measurements": self.measurements,
                **(self.models[0].to_json() if self.models else {}),
                "jitter_models": [model.to_json() for model in self.models]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JitterMetrics | None:
        if "jitter_steps" not in data:
            return None
        return cls(data["jitter_steps"], data.get("jitter_measurements"),
                   [JitterModelMetrics.from_json(model) for model in data.get("jitter_models") or []])


@dataclasses.dataclass(frozen=True)
class TrainingMetrics:
    """The content of metrics.json.

    Attributes:
      models: per exported model (replicas in order), its progressive metrics; None entries without progressive
        validation. Model 0's are the top-level `progressive_*` keys; `models` lists them all when R >= 2.
      replica_pd: progressive PD (R >= 2 with progressive validation), else None.
      progressive_curve: `recsys.training.loop.ProgressCurve.to_json()` (None: no progressive validation).
      distill, teacher, codistill_weight: the training mode's fields (`recsys.training.modes`), None when off.
      averaging, jitter: weight averaging and the jitter metric (`recsys.training.settling`), None when off.
      worker_examples: with `config.data.shard_by="file"` on several workers, the examples each worker trained
        from its own files (`recsys.training.modes.WorkerExamples`), else None.
    """

    examples: int | None
    steps: int | None
    examples_per_sec: float | None
    train_seconds: float | None
    steady_examples_per_sec: float | None
    progressive_metrics_seconds: float | None
    batch_size: int | None
    num_replicas_in_sync: int | None
    strategy: str | None
    models: list[ModelMetrics | None]
    replica_noise: str | None
    saved_models: list[str]
    replica_pd: ReplicaPD | None = None
    progressive_curve: dict[str, list] | None = None
    distill: DistillMetrics | None = None
    teacher: TeacherMetrics | None = None
    codistill_weight: float | None = None
    averaging: AveragingMetrics | None = None
    jitter: JitterMetrics | None = None
    worker_examples: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        """The metrics.json dict (keys in the module docstring)."""
        per_model = [model.to_json() if model is not None else {} for model in self.models]
        data: dict[str, Any] = {
            "examples": self.examples,
            "steps": self.steps,
            **(per_model[0] if per_model else {}),
            "examples_per_sec": self.examples_per_sec,
            "train_seconds": self.train_seconds,
            "steady_examples_per_sec": self.steady_examples_per_sec,
            "progressive_metrics_seconds": self.progressive_metrics_seconds,
            "batch_size": self.batch_size,
            "num_replicas_in_sync": self.num_replicas_in_sync,
            "strategy": self.strategy,
        }
        if len(per_model) > 1:
            data["models"] = per_model
        if self.replica_pd is not None:
            data.update(self.replica_pd.to_json())
        if self.progressive_curve is not None:
            data["progressive_curve"] = self.progressive_curve
        data["replicas"] = [{key: model.get(key) for key in REPLICA_KEYS} for model in per_model]
        data["replica_noise"] = self.replica_noise
        data["saved_models"] = list(self.saved_models)
        if self.distill is not None:
            data.update(self.distill.to_json())
        if self.codistill_weight is not None:
            data["codistill_weight"] = self.codistill_weight
        if self.teacher is not None:
            data.update(self.teacher.to_json())
        if self.averaging is not None:
            data.update(self.averaging.to_json())
        if self.jitter is not None:
            data.update(self.jitter.to_json())
        if self.worker_examples is not None:
            data["worker_examples"] = list(self.worker_examples)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingMetrics:
        """The record of a metrics.json dict; keys an older trainer did not write read as None (or [])."""
        if isinstance(data.get("models"), list):
            models = [ModelMetrics.from_json(model) for model in data["models"]]
        elif isinstance(data.get("replicas"), list) and len(data["replicas"]) > 1:
            models = [ModelMetrics.from_json(model) for model in data["replicas"]]
        else:
            models = [ModelMetrics.from_json(data)] if "replicas" in data or "examples" in data else []
        return cls(
            examples=data.get("examples"),
            steps=data.get("steps"),
            examples_per_sec=data.get("examples_per_sec"),
            train_seconds=data.get("train_seconds"),
            steady_examples_per_sec=data.get("steady_examples_per_sec"),
            progressive_metrics_seconds=data.get("progressive_metrics_seconds"),
            batch_size=data.get("batch_size"),
            num_replicas_in_sync=data.get("num_replicas_in_sync"),
            strategy=data.get("strategy"),
            models=models,
            replica_noise=data.get("replica_noise"),
            saved_models=list(data.get("saved_models") or []),
            replica_pd=ReplicaPD.from_json(data),
            progressive_curve=data.get("progressive_curve"),
            distill=DistillMetrics.from_json(data),
            teacher=TeacherMetrics.from_json(data),
            codistill_weight=data.get("codistill_weight"),
            averaging=AveragingMetrics.from_json(data),
            jitter=JitterMetrics.from_json(data),
            worker_examples=data.get("worker_examples"),
        )

    @classmethod
    def load(cls, workdir: str) -> TrainingMetrics:
        """The record of `<workdir>/metrics.json`.

        Raises:
          FileNotFoundError: the run has not finished (no metrics.json).
        """
        data = read_json(workdir)
        if data is None:
            raise FileNotFoundError(f"{metrics_path(workdir)} does not exist: the run has not finished")
        return cls.from_json(data)


def exists(workdir: str) -> bool:
    """Whether the run in `workdir` finished and wrote metrics.json."""
    return os.path.exists(metrics_path(workdir))


def read_json(workdir: str) -> dict[str, Any] | None:
    """`<workdir>/metrics.json` as written (a dict), or None when there is none."""
    path = metrics_path(workdir)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
