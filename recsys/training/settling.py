"""Models that settle before they are compared, and the jitter that shows whether they did (issue 15).

`SettlingSpec` gathers the three options a training mode passes to every `ModelState`: the learning-rate schedule
(`recsys.training.schedules`), weight averaging (`recsys.training.averaging`) and `config.jitter_steps`.

**Jitter** (`config.jitter_steps = N`, 0 = off): a final snapshot's PD against another replica is partly where
each replica happens to be on its trajectory (../shared/paper-notes.md, "Trajectory noise"). To show that next to
the replica PD, every model keeps a snapshot of its weights (a twin `CTRModel`, part of the checkpoint). Steps
k = N + 1, 2N + 1, ... (global, 1-based) also score their batch with the snapshot, which holds the weights from
before step k − N, i.e. exactly N updates older than the live pre-update weights that score the batch for
progressive validation; then the snapshot takes the live weights. So the cost is one forward pass and one weight
copy every N steps, and both predictions are of the same examples (fresh ones, never trained on by either).
`JitterTracker` turns them into, per model:

- `relative_pd`: relative PD (eq. 2 of Shamir & Lin 2022, `recsys.metrics.pd.relative_pd`) between the model now
  and N steps ago, at the last jitter step; `window_relative_pd`: its mean over the jitter steps of the last
  `metrics_window` examples;
- `snapshot_calibration`: mean prediction / CTR of the current weights on the last jitter batch (one batch, so
  its standard error is roughly 1/√positives; the TensorBoard curve shows how the snapshot's calibration swings,
  which the progressive window calibration, averaged over the trajectory, hides).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from recsys.training.averaging import AveragingSpec
from recsys.training.schedules import ScheduleSpec


@dataclasses.dataclass(frozen=True)
class SettlingSpec:
    """Schedule, averaging and jitter of a run (every trained model gets the same)."""

    schedule: ScheduleSpec = ScheduleSpec()
    averaging: AveragingSpec = AveragingSpec()
    jitter_steps: int = 0

    @classmethod
    def from_config(cls, config: Any, stream_examples: int | None) -> SettlingSpec:
        """Checks `config.optimizer.schedule*`, `config.averaging` and `config.jitter_steps`.

        Raises:
          ValueError: a bad value (the message names the key). (`recsys.training.modes.select_mode` refuses
            averaging and jitter under parameter servers.)
        """
        schedule = ScheduleSpec.from_config(config.optimizer, int(config.data.batch_size), stream_examples)
        averaging = AveragingSpec.from_config(config)
        jitter = config.get("jitter_steps", 0) if hasattr(config, "get") else 0
        if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
            raise ValueError(f"`config.jitter_steps` must be an integer >= 0 (0 = off). Received: {jitter!r}")
        return cls(schedule, averaging, int(jitter))

    def is_jitter_step(self, step: int) -> bool:
        """Whether global step `step` (1-based) scores its batch with the snapshot too."""
        return bool(self.jitter_steps) and step > self.jitter_steps and (step - 1) % self.jitter_steps == 0


class JitterTracker:
    """Per model: the jitter PD of each jitter step and the snapshot calibration (module docstring).

    Only the measurements inside the last `window` examples are kept (for the window mean), plus the last one;
    `get_state`/`set_state` put them in the checkpoint, so a resumed run reports what an uninterrupted one does.
    """

    def __init__(self, num_models: int, window: int):
        self.num_models = num_models
        self.window = window
        self.examples = np.zeros(0, np.int64)  # stream position at the end of each kept jitter step
        self.relative_pd = np.zeros((num_models, 0), np.float64)
        self.calibration = np.full(num_models, np.nan)
        self.count = 0

    def add(self, examples: int, labels: list[np.ndarray], live: list[np.ndarray],
            snapshot: list[np.ndarray]) -> None:
        """One jitter step ending at stream position `examples`: per model, labels and both predictions."""
        from recsys.metrics import accuracy, pd

        def calibration(y, p):
            try:
                return accuracy.calibration(y, p)
            except ValueError:  # no positives in the batch
                return math.nan

        values = np.array([pd.relative_pd(now, before) for now, before in zip(live, snapshot, strict=True)])
        self.calibration = np.array([calibration(y, p) for y, p in zip(labels, live, strict=True)])
        keep = self.examples > examples - self.window
        self.examples = np.append(self.examples[keep], np.int64(examples))
        self.relative_pd = np.concatenate([self.relative_pd[:, keep], values[:, None]], axis=1)
        self.count += 1

    def result(self, index: int) -> dict[str, float]:
        """Model `index`'s `relative_pd`, `window_relative_pd`, `snapshot_calibration` (NaN before the first)."""
        if not self.count:
            return {"relative_pd": math.nan, "window_relative_pd": math.nan, "snapshot_calibration": math.nan}
        in_window = self.examples > self.examples[-1] - self.window
        return {"relative_pd": float(self.relative_pd[index, -1]),
                "window_relative_pd": float(self.relative_pd[index, in_window].mean()),
                "snapshot_calibration": float(self.calibration[index])}

    def get_state(self) -> dict[str, np.ndarray]:
        return {"examples": self.examples, "relative_pd": self.relative_pd, "calibration": self.calibration,
                "count": np.array([self.count], np.int64)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.examples = np.asarray(state["examples"], np.int64)
        self.relative_pd = np.asarray(state["relative_pd"], np.float64).reshape(self.num_models, -1)
        self.calibration = np.asarray(state["calibration"], np.float64)
        self.count = int(np.asarray(state["count"])[0])

