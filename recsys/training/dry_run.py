"""`--config.dry_run=True`: what the configured model needs, per table and per ps task, without a cluster.

Nothing is trained and no example is read. The model's variables come from tracing its first call with
uninitialized variables (`sharding.model_variables`: no weight is allocated, so a Criteo-1TB model plans on a
laptop);
under `strategy=parameter_server` the placement is the arithmetic of `ParameterServerStrategy` with the
configured partitioner (`sharding.plan_placement`: shard sizes and round-robin ps tasks, checked against a real
cluster in tests/training/test_sharding.py), for the ps tasks of TF_CONFIG or `config.dry_run_ps_tasks`.
Bytes are weights plus optimizer slots (sparse Adagrad: one accumulator per table row; the dense optimizer's
slots for the rest); the optimizers' few scalars (iterations, learning rates) are left out. Under the other
strategies every replica holds all of it.

The vocabulary sizes come from features.json (`config.data.features`, or beside `config.data.train`), or, with
`config.dry_run_vocab_size` = N > 0, from the Criteo schema with N ids per categorical feature (what
`pipelines.preprocess --vocab_mode=hash --hash_buckets=N` writes), so no data need exist yet.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, TextIO

from recsys.data import criteo
from recsys.data.features import FeatureSet, criteo_feature_set, default_features_path
from recsys.model.ctr import ModelSpec
from recsys.training import sharding


@dataclasses.dataclass(frozen=True)
class DryRun:
    """The dry run's numbers (`format` prints them)."""

    strategy: str
    spec: ModelSpec
    sharding: sharding.ShardingSpec
    features_source: str
    variables: list[sharding.VariableInfo]
    num_ps: int = 0  # parameter_server only
    ps_source: str = ""
    placements: list[sharding.Placement] | None = None

    @property
    def parameters(self) -> int:
        return sum(math.prod(v.shape) for v in self.variables if v.weight)

    @property
    def table_parameters(self) -> int:
        return sum(math.prod(v.shape) for v in self.variables if v.table)

    def bytes(self) -> tuple[int, int]:
        """(weight bytes, optimizer-slot bytes) of the whole model (its step counters included)."""
        weights = sum(math.prod(v.shape) * v.dtype.size for v in self.variables)
        return weights, sum(math.prod(v.shape) * v.dtype.size * v.slots for v in self.variables)

    def task_bytes(self) -> list[tuple[int, int]]:
        """Per ps task: (weight bytes, slot bytes)."""
        totals = [(0, 0)] * self.num_ps
        for placement in self.placements or []:
            for task, (weights, slots) in placement.task_bytes().items():
                totals[task] = (totals[task][0] + weights, totals[task][1] + slots)
        return totals

    def format(self) -> str:
        lines = [f"Dry run: strategy={self.strategy}, vocabularies from {self.features_source}."]
        placements = {p.variable.path: p for p in self.placements or []}
        lines.append(f"{'table':<10} {'rows':>13} {'dim':>5} {'parameters':>15} {'shards':>6} {'rows/shard':>12}")
        for embedding, variable in zip(self.spec.embeddings, [v for v in self.variables if v.table], strict=True):
            placement = placements.get(variable.path)
            shards = len(placement.shard_rows) if placement else 1
            rows = f"{max(placement.shard_rows)}" if placement else f"{embedding.vocab_size}"
            lines.append(f"{embedding.name:<10} {embedding.vocab_size:>13,} {embedding.dim:>5} "
                         f"{embedding.vocab_size * embedding.dim:>15,} {shards:>6} {rows:>12}")
        weights, slots = self.bytes()
        lines.append(f"parameters: {self.parameters:,} ({self.table_parameters:,} in {len(self.spec.embeddings)} "
                     f"tables, {self.parameters - self.table_parameters:,} dense)")
        lines.append(f"bytes: weights {_size(weights)} + optimizer slots {_size(slots)} = {_size(weights + slots)}")
        if self.placements is None:
            lines.append(f"strategy={self.strategy} keeps all of it on every replica.")
            return "\n".join(lines)
        lines.append(f"ps tasks: {self.num_ps} ({self.ps_source}); partitioner: {_describe(self.sharding)}")
        lines.append(f"{'ps task':<8} {'weights':>26} {'slots':>26} {'total':>26} {'shards':>6}")
        counts = [0] * self.num_ps
        for placement in self.placements:
            for task in placement.tasks:
                counts[task] += 1
        for task, (task_weights, task_slots) in enumerate(self.task_bytes()):
            lines.append(f"{task:<8} {_size(task_weights):>26} {_size(task_slots):>26} "
                         f"{_size(task_weights + task_slots):>26} {counts[task]:>6}")
        lines.append("(shards: table shards and whole variables on the task, the model's step counters included)")
        return "\n".join(lines)


def dry_run(config: Any) -> DryRun:
    """The dry run of the trainer config `config` (module docstring).

    Raises:
      ValueError: a bad `config.sharding`, a partitioner with a strategy other than parameter_server, a bad
        `config.dry_run_vocab_size` / `config.dry_run_ps_tasks`, or a bad `config.model`.
      FileNotFoundError: `config.dry_run_vocab_size` is 0 and there is no features.json.
    """
    spec_sharding = sharding.ShardingSpec.from_config(config)
    sharding.check_strategy(spec_sharding, config.strategy)
    features, source = _features(config)
    spec = ModelSpec.from_config(config.model, features)
    variables = sharding.model_variables(spec, features.label.name, config.optimizer.dense)
    if config.strategy != "parameter_server":
        return DryRun(config.strategy, spec, spec_sharding, source, variables)
    num_ps, ps_source = sharding.ps_task_count(), "TF_CONFIG"
    if not num_ps:
        num_ps, ps_source = config.get("dry_run_ps_tasks", 2), "config.dry_run_ps_tasks"
        if isinstance(num_ps, bool) or not isinstance(num_ps, int) or num_ps < 1:
            raise ValueError(f"`config.dry_run_ps_tasks` must be a positive integer. Received: {num_ps!r}")
    placements = sharding.plan_placement(variables, spec_sharding.make_partitioner(num_ps), num_ps)
    return DryRun(config.strategy, spec, spec_sharding, source, variables, num_ps, ps_source, placements)


def print_dry_run(config: Any, out: TextIO | None = None) -> DryRun:
    """Prints `dry_run(config).format()` to `out` (default stdout) and returns the numbers."""
    import sys

    result = dry_run(config)
    print(result.format(), file=out or sys.stdout)
    return result


def _features(config: Any) -> tuple[FeatureSet, str]:
    vocab_size = config.get("dry_run_vocab_size", 0)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 0:
        raise ValueError(f"`config.dry_run_vocab_size` must be an integer >= 0 (0 = features.json). "
                         f"Received: {vocab_size!r}")
    if vocab_size:
        return (criteo_feature_set({name: vocab_size for name in criteo.CAT_COLUMNS}),
                f"config.dry_run_vocab_size={vocab_size:,} (the Criteo schema, hashed)")
    path = config.data.features or default_features_path(config.data.train)
    try:
        return FeatureSet.load(path), path
    except FileNotFoundError:
        raise FileNotFoundError(f"The dry run needs features.json for the vocabulary sizes and {path} does not "
                                "exist: set `config.data.features`, or `config.dry_run_vocab_size` to plan for "
                                "hashed vocabularies") from None


def _describe(spec: sharding.ShardingSpec) -> str:
    if spec.partitioner == "min_size":
        return f"min_size (min_shard_bytes={spec.min_shard_bytes:,}, max_shards={spec.max_shards or 'ps tasks'})"
    if spec.partitioner == "max_size":
        return f"max_size (max_shard_bytes={spec.max_shard_bytes:,}, max_shards={spec.max_shards or 'ps tasks'})"
    if spec.partitioner == "fixed_shards":
        return f"fixed_shards (num_shards={spec.num_shards or 'ps tasks'})"
    return "none (every variable whole on one ps task)"


def _size(count: int) -> str:
    """Bytes with their GiB (or MiB) in brackets: exact and readable."""
    if count >= 1 << 30:
        return f"{count:,} ({count / (1 << 30):.2f} GiB)"
    return f"{count:,} ({count / (1 << 20):.2f} MiB)"
