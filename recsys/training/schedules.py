"""Learning-rate schedules of both optimizers, driven by examples consumed (`config.optimizer.schedule`).

With x = examples consumed including the batch being trained on (the optimizer's update count × the global batch
size, so a resumed run continues the schedule exactly: the count is part of the optimizer's checkpoint), base rate
η, warm-up W = `warmup_examples`, length T = `schedule_examples` (or the stream's), floor f = `decay_floor`:

    warmup(x)   = min(1, x / W)                          (1 when W = 0)
    constant     η                                       (a plain float: exactly today's optimizer)
    warmup       η · warmup(x)
    inverse_sqrt η · warmup(x) · max(f, sqrt(W / max(x, W)))
    linear       η · warmup(x) · (1 − (1 − f) · p)       p = clip((x − W) / (T − W), 0, 1)
    cosine       η · warmup(x) · (f + (1 − f) · (1 + cos(π p)) / 2)

The decaying schedules reach f·η at the end of the stream, so the last steps move the model less: one lever for
models that settle before they are compared (issue 15; ../shared/paper-notes.md, "Trajectory noise").
One `LearningRateSchedule` in examples rather than `tf.keras.optimizers.schedules.CosineDecay`/`PolynomialDecay`
in steps: those have no warm-up before a linear decay and no floor for inverse square root, and this keeps every
formula in one place.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import tensorflow as tf

SCHEDULES = ("constant", "warmup", "inverse_sqrt", "linear", "cosine")
DECAYING = ("linear", "cosine")


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """A validated `config.optimizer` schedule; `learning_rate(base)` gives what the optimizer takes."""

    kind: str = "constant"
    warmup_examples: int = 0
    decay_floor: float = 0.0
    total_examples: int | None = None
    batch_size: int = 1

    @classmethod
    def from_config(cls, optimizer_config: Any, batch_size: int, stream_examples: int | None) -> ScheduleSpec:
        """Checks the schedule keys; `stream_examples` is the stream's expected length (None: unknown).

        Raises:
          ValueError: unknown schedule, negative warm-up, floor outside [0, 1], warm-up on `constant`,
            `inverse_sqrt`/`warmup` without warm-up, or a decaying schedule with no known length.
        """
        kind = str(optimizer_config.get("schedule", "constant"))
        warmup = optimizer_config.get("warmup_examples", 0)
        floor = optimizer_config.get("decay_floor", 0.0)
        length = optimizer_config.get("schedule_examples", 0)
        if kind not in SCHEDULES:
            raise ValueError(f"`config.optimizer.schedule` must be one of {SCHEDULES}. Received: {kind!r}")
        for key, value in (("warmup_examples", warmup), ("schedule_examples", length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`config.optimizer.{key}` must be an integer >= 0. Received: {value!r}")
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0.0 <= floor <= 1.0:
            raise ValueError(f"`config.optimizer.decay_floor` must be in [0, 1]. Received: {floor!r}")
        if kind == "constant" and warmup:
            raise ValueError(f"`config.optimizer.schedule='constant'` has no warm-up; use schedule='warmup' for "
                             f"warmup_examples={warmup}")
        if kind in ("warmup", "inverse_sqrt") and not warmup:
            raise ValueError(f"`config.optimizer.schedule={kind!r}` needs `config.optimizer.warmup_examples` > 0")
        total = None
        if kind in DECAYING:
            total = int(length) or stream_examples
            if not total:
                raise ValueError(
                    f"`config.optimizer.schedule={kind!r}` decays over the stream, whose length is unknown (no "
                    "summary.json beside the data covering every shard, and data.max_examples = 0): set "
                    "`config.optimizer.schedule_examples` or `config.data.max_examples`")
            if total <= warmup:
                raise ValueError(f"The schedule's length ({total} examples) must exceed "
                                 f"`config.optimizer.warmup_examples` ({warmup})")
        return cls(kind, int(warmup), float(floor), total, int(batch_size))

    def learning_rate(self, base: float) -> float | tf.keras.optimizers.schedules.LearningRateSchedule:
        """The optimizer's `learning_rate`: `base` itself for `constant`, else an `ExampleSchedule`."""
        if self.kind == "constant":
            return float(base)
        return ExampleSchedule(float(base), self.kind, self.warmup_examples, self.decay_floor,
                               self.total_examples or 0, self.batch_size)


@tf.keras.utils.register_keras_serializable(package="recsys")
class ExampleSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate after `step` updates of `batch_size` examples (formulas in the module docstring).

    Args:
      base: η. kind: one of SCHEDULES except 'constant'. warmup_examples: W. decay_floor: f.
      total_examples: T (linear, cosine). batch_size: the global batch, examples per update.
    """

    def __init__(self, base: float, kind: str, warmup_examples: int, decay_floor: float, total_examples: int,
                 batch_size: int):
        super().__init__()
        if kind not in SCHEDULES[1:]:
            raise ValueError(f"`kind` must be one of {SCHEDULES[1:]}. Received: kind={kind!r}")
        self.base = float(base)
        self.kind = kind
        self.warmup_examples = int(warmup_examples)
        self.decay_floor = float(decay_floor)
        self.total_examples = int(total_examples)
        self.batch_size = int(batch_size)

    def __call__(self, step):
        x = (tf.cast(step, tf.float32) + 1.0) * float(self.batch_size)
        warmup = float(self.warmup_examples)
        factor = tf.minimum(1.0, x / warmup) if warmup > 0 else tf.constant(1.0)
        floor = self.decay_floor
        if self.kind == "inverse_sqrt":
            factor *= tf.maximum(floor, tf.sqrt(warmup / tf.maximum(x, warmup)))
        elif self.kind in DECAYING:
            progress = tf.clip_by_value((x - warmup) / (float(self.total_examples) - warmup), 0.0, 1.0)
            if self.kind == "linear":
                factor *= 1.0 - (1.0 - floor) * progress
            else:
                factor *= floor + (1.0 - floor) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return self.base * factor

    def get_config(self) -> dict[str, Any]:
        return {"base": self.base, "kind": self.kind, "warmup_examples": self.warmup_examples,
                "decay_floor": self.decay_floor, "total_examples": self.total_examples,
                "batch_size": self.batch_size}
