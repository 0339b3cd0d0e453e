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

**The settling work around the train step** (`SettlingSteps`, used by the synchronous modes): the jitter scoring,
the snapshot copy and the weight-average update are traced functions of their own, run from Python between the
train steps only on the steps that need them, so the train step itself is the same on every step and the other
steps do no settling work at all. Order within global step s: the snapshots score the batch and take the live
(pre-update) weights (jitter steps), the train step, then the average update (every `averaging.every_steps`-th
step). The updates run in cross-replica context (`averaging.assign_variables`), so under MirroredStrategy each
device's copy is updated from the same device's copy of the live weights; the scoring runs in `strategy.run` and is
gathered like the train step's outputs. All of it finishes before the mode yields step s's `StepResult`, after
which the loop may checkpoint: a resumed run repeats exactly the same work.

The snapshot scoring is run once on the first batch of the stream and its result dropped: a traced function's first
call is where TensorFlow optimises and instantiates its graph (and XLA compiles the model's jit-compiled blocks for
a forward pass without a gradient tape). When the jitter step was a second copy of the whole train step, that first
call came at step N + 1 and cost 0.3–0.4 s of CPU on the benchmark model, inside the trainer's steady-rate window,
where it read as a per-step cost (docs/performance.md, "Settling").
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from recsys.training.averaging import AveragingSpec, assign_variables
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


class SettlingSteps:
    """The jitter snapshots' and weight averages' work around a synchronous mode's train step (module docstring).

    Args:
      strategy: the states' strategy (the functions run under its scope).
      states: every trained model (`task.ModelState`), with their `average` and `snapshot` as `spec` asks.
      spec: the run's settling options.
      model_batches: in replica context, the per-replica dataset element → each state's features (the batch its
        model scores before training on it).
      element_spec: the distributed dataset's, fixing the scoring function's signature.
    """

    def __init__(self, strategy: tf.distribute.Strategy, states: Sequence[Any], spec: SettlingSpec,
                 model_batches: Callable[[Any], list[dict[str, tf.Tensor]]], element_spec: Any = None):
        self.strategy = strategy
        self.spec = spec
        self.states = list(states)
        self._averaging = spec.averaging.enabled
        self._scores = self._copy = self._average = None
        self._warm = False
        with strategy.scope():
            if spec.jitter_steps:
                self._scores = self._snapshot_scores(model_batches, element_spec)
                self._copy = tf.function(self._copy_snapshots)
                self._copy.get_concrete_function()  # traced now, at start-up
            if self._averaging:
                self._average = tf.function(self._update_averages,
                                            input_signature=[tf.TensorSpec([], tf.float32)])
                self._average.get_concrete_function()

    def before_step(self, step: int, batch: Any) -> list[tf.Tensor] | None:
        """Global step `step`'s work before its train step: on a jitter step, each model's snapshot probabilities on
        its batch [N] (gathered), after which the snapshots hold the live weights; else None."""
        if self._scores is None:
            return None
        if not self._warm:
            self._scores(batch)  # first call: instantiated and compiled now, not at step N + 1 (module docstring)
            self._warm = True
        if not self.spec.is_jitter_step(step):
            return None
        scores = self._scores(batch)
        with self.strategy.scope():
            self._copy()
        return scores

    def after_step(self, step: int) -> None:
        """Global step `step`'s work after its train step: the weight averages' update every `every_steps` steps."""
        if not self._averaging:
            return
        average = self.states[0].average
        if average.updates_at(step):
            with self.strategy.scope():
                self._average(tf.constant(average.decay_at(step)))

    def _snapshot_scores(self, model_batches: Callable, element_spec: Any) -> Callable:
        states, strategy = self.states, self.strategy

        def replica_scores(batch):
            return [tf.sigmoid(state.snapshot(features, training=True))
                    for state, features in zip(states, model_batches(batch), strict=True)]

        @tf.function(input_signature=[element_spec] if element_spec is not None else None)
        def snapshot_scores(batch):
            return [strategy.gather(p, axis=0) for p in strategy.run(replica_scores, args=(batch,))]

        return snapshot_scores

    def _copy_snapshots(self) -> None:
        for state in self.states:
            assign_variables(state.snapshot.variables, state.model.variables)

    def _update_averages(self, decay: tf.Tensor) -> None:
        for state in self.states:
            state.average.update(state.model, decay)


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

