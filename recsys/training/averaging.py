"""Weight averaging: an exponential moving average (EMA) of every trainable weight (`config.averaging`).

After the optimizer updates of every k-th global step (k = `every_steps`, default 1), with d = `ema_decay`, live
weights w and s steps of B examples taken (s a multiple of k):

    a ← w                          while s·B ≤ start_examples   ("start at the current weights")
    a ← d^k·a + (1 − d^k)·w        afterwards

The steps in between leave the average alone. With k = 1 this is the classic EMA; with k > 1 each update stands in
for k of them (the k − 1 skipped live weights are replaced by the one at the update), so the average spans the same
number of steps at 1/k of the cost — k is capped at the span 1/(1 − d), beyond which it would only lag. With
start_examples = 0 the average starts from the initial weights, whose weight in it decays as d^s (after 5/(1 − d)
steps it is below 1%); no zero-debiasing is needed because a never starts at 0. The average spans about 1/(1 − d)
steps; a later start keeps the early, fast-moving weights out of it. A stream that ends between two updates leaves
its last (at most k − 1) steps out of the average.

The average lives in a second `CTRModel` of the same spec (`WeightAverage.model`): its variables are the averages,
so it scores batches (progressive validation of the averaged weights) and exports like the live model, and it is
checkpointed with it. Every table is averaged in full on each update (a dense pass over the embedding tables,
whose live update is sparse): the cost grows with the vocabulary, which is what `every_steps` divides
(docs/performance.md, "Settling").

The update is its own traced function (`recsys.training.settling.SettlingSteps`), run after the train step in
cross-replica context; under `tf.distribute`, `extended.update` updates every replica's copy from the same device's
copy of the live weight, so mirrored copies stay identical (`assign_variables`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

EXPORTS = ("averaged", "live")


@dataclasses.dataclass(frozen=True)
class AveragingSpec:
    """A validated `config.averaging`; `ema_decay == 0` means off."""

    ema_decay: float = 0.0
    start_examples: int = 0
    export: str = "averaged"
    progressive_averaged: bool = False
    every_steps: int = 1

    @property
    def enabled(self) -> bool:
        return self.ema_decay > 0

    @classmethod
    def from_config(cls, config: Any) -> AveragingSpec:
        """Raises ValueError: ema_decay outside [0, 1), a negative start, an unknown export, or every_steps not an
        integer in [1, span] (span = 1/(1 − ema_decay); 1 when averaging is off)."""
        section = config.get("averaging") if hasattr(config, "get") else None
        if section is None:
            return cls()
        decay, start = section.ema_decay, section.start_examples
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise ValueError(f"`config.averaging.ema_decay` must be in [0, 1) (0 = off). Received: {decay!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"`config.averaging.start_examples` must be an integer >= 0. Received: {start!r}")
        if section.export not in EXPORTS:
            raise ValueError(f"`config.averaging.export` must be one of {EXPORTS}. Received: {section.export!r}")
        progressive = bool(section.progressive_averaged)
        if progressive and not decay:
            raise ValueError("`config.averaging.progressive_averaged=True` scores the averaged weights, but "
                             "`config.averaging.ema_decay` is 0 (off): set it, e.g. 0.999")
        every = section.get("every_steps", 1)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"`config.averaging.every_steps` must be an integer >= 1. Received: {every!r}")
        if every > 1 and not decay:
            raise ValueError(f"`config.averaging.every_steps={every}` spaces the updates of the average, but "
                             "`config.averaging.ema_decay` is 0 (off): set it, e.g. 0.999, or leave every_steps at 1")
        span = max_every_steps(float(decay))
        if every > span:
            raise ValueError(f"`config.averaging.every_steps` must be at most the average's span 1/(1 - ema_decay) = "
                             f"{span} steps (ema_decay={decay!r}). Received: every_steps={every}")
        return cls(float(decay), int(start), str(section.export), progressive, int(every))


def max_every_steps(decay: float) -> int:
    """The largest `every_steps` for `decay`: the average's span ⌊1/(1 − d)⌋ steps (1e-9 absorbs float rounding,
    e.g. 1/(1 − 0.9) = 9.999…)."""
    return int(1.0 / (1.0 - decay) + 1e-9)


class WeightAverage:
    """The EMA of one model's trainable weights, held in `model` (a twin `CTRModel`).

    Build it (inside the strategy scope) after the live model; it starts as a copy of the live weights.
    """

    def __init__(self, model: Any, live: Any, spec: AveragingSpec, batch_size: int):
        self.model = model
        self.decay = float(spec.ema_decay)
        self.start_examples = int(spec.start_examples)
        self.every_steps = int(spec.every_steps)
        self.batch_size = int(batch_size)
        assign_variables(model.variables, live.variables)

    def updates_at(self, step: int) -> bool:
        """Whether global step `step` (1-based) ends with an update of the average."""
        return step % self.every_steps == 0

    def decay_at(self, step: int) -> np.float32:
        """d^k for the update after global step `step`, 0 while step·B ≤ start_examples (float32, as it is
        applied)."""
        started = step * self.batch_size > self.start_examples
        return np.float32(self.decay ** self.every_steps if started else 0.0)

    def update(self, live: Any, decay: tf.Tensor) -> None:
        """a ← decay·a + (1 − decay)·w for every trainable weight (replica or cross-replica context)."""
        assign_variables(self.model.trainable_variables, live.trainable_variables, decay)


def assign_variables(targets: Sequence[tf.Variable], sources: Sequence[tf.Variable],
                     decay: tf.Tensor | None = None) -> None:
    """targets[i] ← sources[i] (decay None) or decay·targets[i] + (1 − decay)·sources[i].

    Through `extended.update`, so each replica's copy is updated from the same replica's copy of the source: in
    cross-replica context (inside `strategy.scope()`) directly, in replica context (inside `strategy.run`, or
    anywhere without a strategy) from a `merge_call`.
    """
    if len(targets) != len(sources):
        raise ValueError(f"{len(targets)} targets for {len(sources)} sources")

    def assign(target, source, decay):
        if decay is None:
            return target.assign(source)
        return target.assign(decay * target + (1.0 - decay) * source)

    def merge_fn(strategy, decay):
        for target, source in zip(targets, sources, strict=True):
            strategy.extended.update(target, assign, args=(source, decay), group=False)

    if tf.distribute.in_cross_replica_context():
        merge_fn(tf.distribute.get_strategy(), decay)
    else:
        tf.distribute.get_replica_context().merge_call(merge_fn, args=(decay,))
