"""What differs between the replicas of one setting: the noise sources and each replica's seeds.

The one owner of the noise-source names and of the seed derivation, used by the trainer's replica mode
(`recsys.training.replicas.ReplicaPlan`) and by the study's grid, whether the study trains its replicas in one
replica-mode job or as separate runs (Shamir & Lin 2022, arXiv:2202.06499, "Prediction difference"):

- `shuffle`: every replica starts from `init_seed`; replica r orders the data with `data_seed + r`;
- `init`: replica r is initialised with `init_seed + r`; every replica sees the order of `data_seed`;
- `shuffle+init`: both.

Replica 0 is always exactly the run of (`init_seed`, `data_seed`). No TensorFlow here: the study's config
files import this module.
"""
from __future__ import annotations

import dataclasses

# Not a noise source: every model gets the same seeds (`Trainer(num_models=R)`, tests and benchmarks).
IDENTICAL = "identical"


@dataclasses.dataclass(frozen=True)
class Noise:
    """A parsed noise source: which seeds differ between replicas."""

    name: str
    shuffle: bool  # replicas see the data in different orders
    init: bool  # replicas start from different initial weights

    def seeds(self, replica: int, init_seed: int, data_seed: int) -> tuple[int, int]:
        """(init seed, data seed) of replica `replica` (0-based)."""
        return (init_seed + replica if self.init else init_seed,
                data_seed + replica if self.shuffle else data_seed)


_PARSED = {
    "shuffle": Noise("shuffle", shuffle=True, init=False),
    "init": Noise("init", shuffle=False, init=True),
    "shuffle+init": Noise("shuffle+init", shuffle=True, init=True),
}
NOISE_SOURCES = tuple(_PARSED)  # ("shuffle", "init", "shuffle+init")


def parse_noise(name: str, key: str = "`noise`") -> Noise:
    """The noise source called `name`.

    Args:
      name: one of NOISE_SOURCES.
      key: how the error message names the value, e.g. "`config.replicas.noise`".

    Raises:
      ValueError: `name` is not a noise source (the message lists the allowed ones).
    """
    if not isinstance(name, str) or name not in _PARSED:
        raise ValueError(f"{key} must be one of {NOISE_SOURCES}. Received: {name!r}")
    return _PARSED[name]


def replica_seeds(noise: str, replica: int, init_seed: int, data_seed: int) -> tuple[int, int]:
    """(init seed, data seed) of replica `replica` under noise source `noise` (module docstring).

    Raises:
      ValueError: `noise` is not a noise source.
    """
    return parse_noise(noise).seeds(replica, init_seed, data_seed)
