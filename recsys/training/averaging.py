"""Weight averaging: an exponential moving average (EMA) of every trainable weight (`config.averaging`).

After each step's optimizer updates, with d = `ema_decay`, live weights w and k steps of B examples taken:

    a ← w                      while k·B ≤ start_examples   ("start at the current weights")
    a ← d·a + (1 − d)·w        afterwards

With start_examples = 0 the average starts from the initial weights, whose weight in it decays as d^k (after
5/(1 − d) steps it is below 1%); no zero-debiasing is needed because a never starts at 0. The average spans
about 1/(1 − d) steps; a later start keeps the early, fast-moving weights out of it.

The average lives in a second `CTRModel` of the same spec (`WeightAverage.model`): its variables are the averages,
so it scores batches (progressive validation of the averaged weights) and exports like the live model, and it is
checkpointed with it. Every table is averaged in full each step (a dense pass over the embedding tables, whose
live update is sparse): the cost grows with the vocabulary (docs/performance.md, "Settling").

The update runs inside the traced step in replica context; under `tf.distribute` it is a `merge_call` that updates
every replica's copy from that replica's copy of the live weight, so mirrored copies stay identical
(`assign_variables`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

EXPORTS = ("averaged", "live")


@dataclasses.dataclass(frozen=True)
class AveragingSpec:
    """A validated `config.averaging`; `ema_decay == 0` means off."""

    ema_decay: float = 0.0
    start_examples: int = 0
    export: str = "averaged"
    progressive_averaged: bool = False

    @property
    def enabled(self) -> bool:
        return self.ema_decay > 0

    @classmethod
    def from_config(cls, config: Any) -> AveragingSpec:
        """Raises ValueError: ema_decay outside [0, 1), a negative start, or an unknown export."""
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
        return cls(float(decay), int(start), str(section.export), progressive)


class WeightAverage:
    """The EMA of one model's trainable weights, held in `model` (a twin `CTRModel`).

    Build it (inside the strategy scope) after the live model; it starts as a copy of the live weights.
    """

    def __init__(self, model: Any, live: Any, spec: AveragingSpec, batch_size: int):
        self.model = model
        self.decay = float(spec.ema_decay)
        self.start_examples = int(spec.start_examples)
        self.batch_size = int(batch_size)
        assign_variables(model.variables, live.variables)

    def decay_at(self, step: tf.Tensor) -> tf.Tensor:
        """d for update number `step` (1-based), 0 while step·B ≤ start_examples."""
        started = tf.cast(step, tf.int64) * self.batch_size > self.start_examples
        return tf.where(started, tf.constant(self.decay, tf.float32), tf.constant(0.0, tf.float32))

    def update(self, live: Any, step: tf.Tensor) -> None:
        """a ← d·a + (1 − d)·w for every trainable weight (replica or cross-replica context)."""
        assign_variables(self.model.trainable_variables, live.trainable_variables, self.decay_at(step))


def assign_variables(targets: Sequence[tf.Variable], sources: Sequence[tf.Variable],
                     decay: tf.Tensor | None = None) -> None:
    """targets[i] ← sources[i] (decay None) or decay·targets[i] + (1 − decay)·sources[i].

    In replica context (inside `strategy.run`) through `merge_call` + `extended.update`, so each replica's copy
    is updated from the same replica's copy of the source; in cross-replica context directly.
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

    context = tf.distribute.get_replica_context()
    if context is None:
        merge_fn(tf.distribute.get_strategy(), decay)
    else:
        context.merge_call(merge_fn, args=(decay,))
