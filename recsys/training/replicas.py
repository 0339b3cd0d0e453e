"""Replica mode: R models of one config trained side by side on one parsed stream, with progressive PD.

`config.replicas.count = R` and `config.replicas.noise` choose what differs between the replicas (Shamir & Lin
2022, arXiv:2202.06499, "Prediction difference"; ../shared/paper-notes.md):

- `shuffle`: every replica starts from `seed.init`; replica r orders each shuffle window with data seed
  `seed.data + r` (so replica 0 sees exactly the order of an ordinary run);
- `init`: replica r is initialised with `seed.init + r`; all replicas see the same order (`seed.data`);
- `shuffle+init`: both.

With shuffled orders the stream is still read and parsed once: each window of `shuffle_buffer` examples is parsed
in time order and every replica gathers its own permutation of it (`DataSource.replica_dataset`), so all replicas
see exactly the same examples per window. Their progressive predictions are aligned by the example's position in
the stream and, once a window is complete (every replica has scored every example of it before training on it),
added to `recsys.metrics.streaming.ProgressivePD` in position order. With one order (`init`) the predictions of a
batch are already aligned and are added at every progressive-metrics chunk.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recsys.training.noise import IDENTICAL, parse_noise


@dataclasses.dataclass(frozen=True)
class ReplicaPlan:
    """The seeds of each replica.

    Attributes:
      count: number of replicas R.
      noise: one of NOISE_SOURCES (`recsys.training.noise`), or IDENTICAL (every model with the same seeds).
      init_seeds: per replica, the model-initialisation seed.
      data_seeds: per replica, the data-order seed.
    """

    count: int
    noise: str
    init_seeds: tuple[int, ...]
    data_seeds: tuple[int, ...]

    @property
    def separate_orders(self) -> bool:
        """Whether replicas see the stream in different orders (needs the per-replica input pipeline)."""
        return len(set(self.data_seeds)) > 1

    @classmethod
    def from_config(cls, config: Any) -> ReplicaPlan:
        """Validates `config.replicas` against the rest of the config.

        Raises:
          ValueError: `replicas.count` is not an integer ≥ 1, `replicas.noise` is unknown, or a shuffle noise with
            `data.shuffle='none'` (every replica would see the same order).
        """
        replicas = config.get("replicas") if hasattr(config, "get") else None
        count, noise = (replicas.count, replicas.noise) if replicas is not None else (1, "shuffle")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"`config.replicas.count` must be an integer >= 1. Received: {count!r}")
        parsed = parse_noise(noise, key="`config.replicas.noise`")
        if count > 1 and parsed.shuffle and config.data.shuffle == "none":
            raise ValueError(
                f"`config.replicas.noise={noise!r}` gives each replica its own order within each shuffle window, "
                "but `config.data.shuffle` is 'none': set data.shuffle to 'window' or 'full', or use noise='init'."
            )
        seeds = [parsed.seeds(r, int(config.seed.init), int(config.seed.data)) for r in range(count)]
        return cls(count=count, noise=noise, init_seeds=tuple(init for init, _ in seeds),
                   data_seeds=tuple(data for _, data in seeds))

    @classmethod
    def identical(cls, count: int, init_seed: int, data_seed: int) -> ReplicaPlan:
        """`count` models with the same seeds (`Trainer(num_models=...)`: tests and benchmarks)."""
        return cls(count, IDENTICAL, (int(init_seed),) * count, (int(data_seed),) * count)


class AlignedPD:
    """Progressive PD between replicas whose predictions arrive in different orders.

    `add` takes, per replica, the stream positions of a batch and the predictions on them; `flush(boundary)`
    moves every example with position < boundary (which every replica must have scored) into the
    `ProgressivePD` accumulator, in position order. Everything pending is part of `get_state`, so a resumed run
    accumulates exactly what an uninterrupted one does.

    `flush_every` says when `advance` flushes (the training mode's `pd_flush_every`): None, one order for every
    replica: whenever the progressive metrics are updated; k > 0, per-replica orders over windows of k examples:
    at each multiple of k (a window is complete; fixed positions of the stream, so resumed and uninterrupted runs
    add the same chunks); 0, one window (`shuffle=full`): only at the end of the stream (`flush(None)`).
    """

    def __init__(self, num_replicas: int, window: int, flush_every: int | None = None):
        from recsys.metrics.streaming import ProgressivePD

        self.num_replicas = num_replicas
        self.flush_every = flush_every
        self.pd = ProgressivePD(num_replicas, window=window)
        self.flushed = 0  # every position below this has been added
        self._positions: list[list[np.ndarray]] = [[] for _ in range(num_replicas)]
        self._probabilities: list[list[np.ndarray]] = [[] for _ in range(num_replicas)]

    def add(self, positions: list[np.ndarray], probabilities: list[np.ndarray]) -> None:
        for r in range(self.num_replicas):
            self._positions[r].append(np.asarray(positions[r], dtype=np.int64))
            self._probabilities[r].append(np.asarray(probabilities[r], dtype=np.float64))

    def advance(self, examples: int, metrics_updated: bool) -> None:
        """After a step that ended at stream position `examples`: flushes what `flush_every` says is complete."""
        if self.flush_every is None:
            if metrics_updated:
                self.flush(examples)
        elif self.flush_every:
            boundary = examples // self.flush_every * self.flush_every
            if boundary > self.flushed:
                self.flush(boundary)

    def flush(self, boundary: int | None = None) -> None:
        """Adds the examples below `boundary` (None: every example all replicas have scored, at the stream's end).

        Raises:
          RuntimeError: the replicas scored different examples below `boundary` (a bug: the windows differ).
        """
        merged = []
        for r in range(self.num_replicas):
            if not self._positions[r]:
                return
            positions = np.concatenate(self._positions[r])
            probabilities = np.concatenate(self._probabilities[r])
            order = np.argsort(positions, kind="stable")
            merged.append((positions[order], probabilities[order]))
        if boundary is None:
            common = merged[0][0]
            for positions, _ in merged[1:]:
                common = np.intersect1d(common, positions, assume_unique=True)
            masks = [np.isin(positions, common) for positions, _ in merged]
        else:
            masks = [positions < boundary for positions, _ in merged]
        selected = [positions[mask] for (positions, _), mask in zip(merged, masks, strict=True)]
        for r in range(1, self.num_replicas):
            if not np.array_equal(selected[0], selected[r]):
                raise RuntimeError(
                    f"Replica {r} scored different examples than replica 0 below position {boundary}: "
                    f"{selected[r].size} vs {selected[0].size} examples"
                )
        if selected[0].size:
            self.pd.update(np.stack([p[mask] for (_, p), mask in zip(merged, masks, strict=True)]))
        for r, ((positions, probabilities), mask) in enumerate(zip(merged, masks, strict=True)):
            self._positions[r] = [positions[~mask]] if (~mask).any() else []
            self._probabilities[r] = [probabilities[~mask]] if (~mask).any() else []
        if boundary is not None:
            self.flushed = max(self.flushed, int(boundary))

    def result(self) -> dict[str, float]:
        return self.pd.result()

    def get_state(self) -> dict[str, np.ndarray]:
        state = {f"pd/{k}": v for k, v in self.pd.get_state().items()}
        state["flushed"] = np.array([self.flushed], dtype=np.int64)
        for r in range(self.num_replicas):
            state[f"positions_{r}"] = (np.concatenate(self._positions[r]) if self._positions[r]
                                       else np.zeros(0, np.int64))
            state[f"probabilities_{r}"] = (np.concatenate(self._probabilities[r]) if self._probabilities[r]
                                           else np.zeros(0, np.float64))
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.pd.set_state({k[3:]: v for k, v in state.items() if k.startswith("pd/")})
        self.flushed = int(np.asarray(state["flushed"])[0])
        for r in range(self.num_replicas):
            positions = np.asarray(state[f"positions_{r}"], dtype=np.int64)
            probabilities = np.asarray(state[f"probabilities_{r}"], dtype=np.float64)
            self._positions[r] = [positions] if positions.size else []
            self._probabilities[r] = [probabilities] if probabilities.size else []
