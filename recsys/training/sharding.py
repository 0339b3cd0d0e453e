"""Sharded variables under `strategy=parameter_server`: the partitioner of `config.sharding`, its placement
arithmetic (the dry run), and re-assembling a sharded model for export.

`ParameterServerStrategy(variable_partitioner=...)` splits every variable created in its scope whose partitioner
answer is more than one shard into a `ShardedVariable`: row shards of sizes ⌈rows/n⌉ for the first `rows mod n`
shards and ⌊rows/n⌋ for the rest, each placed on the next ps task of one round-robin counter that every created
variable (or shard) advances. In practice only the embedding tables are large enough to split:

| `partitioner` | `tf.distribute.experimental.partitioners` | shards of a variable of B bytes |
|---|---|---|
| `none` | no partitioner | 1 (every variable whole on one ps task) |
| `min_size` | `MinSizePartitioner(min_shard_bytes, max_shards)` | min(⌈B / min_shard_bytes⌉, max_shards) |
| `fixed_shards` | `FixedShardsPartitioner(num_shards)` | `num_shards` (at most one per row), every variable |
| `max_size` | `MaxSizePartitioner(max_shard_bytes, max_shards)` | fewest with each ≤ max_shard_bytes (≤ max_shards) |

`max_shards` and `num_shards` of 0 mean the number of ps tasks. Other strategies refuse a partitioner
(`check_strategy`): they keep whole copies of every variable on each replica.

What a sharded table changes elsewhere: Keras `Embedding` looks rows up in a `ShardedVariable` directly (the
lookup partitions the ids by shard, "div" strategy), its gradient is one `tf.IndexedSlices` per shard, and the
sparse Adagrad updates each shard with an accumulator slot colocated with it (`CTRModel.embedding_variables`
lists the shards). Checkpoints store each sharded variable as one full tensor (saved in slices) under the table's
own key. A SavedModel holding `ShardedVariable`s cannot be loaded by
`tf.saved_model.load`, so the export re-assembles the weights into an unsharded copy first (`unsharded_copy`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops

from recsys.model.ctr import CTRModel, ModelSpec

PARTITIONERS = ("none", "min_size", "fixed_shards", "max_size")
# Optimizer slots per variable: Adagrad keeps one accumulator, Adam two moments, SGD none.
SLOTS = {"adagrad": 1, "adam": 2, "sgd": 0}
ShardedVariable = tf.__internal__.distribute.ShardedVariable


@dataclasses.dataclass(frozen=True)
class ShardingSpec:
    """`config.sharding` checked (configs/base.py documents the keys)."""

    partitioner: str = "none"
    min_shard_bytes: int = 256 << 10
    max_shard_bytes: int = 64 << 20
    num_shards: int = 0
    max_shards: int = 0

    def __post_init__(self):
        if self.partitioner not in PARTITIONERS:
            raise ValueError(f"`config.sharding.partitioner` must be one of {PARTITIONERS}. "
                             f"Received: partitioner={self.partitioner!r}")
        for key in ("min_shard_bytes", "max_shard_bytes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`config.sharding.{key}` must be a positive integer. Received: {key}={value!r}")
        for key in ("num_shards", "max_shards"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`config.sharding.{key}` must be an integer >= 0 (0 = the number of ps tasks). "
                                 f"Received: {key}={value!r}")

    @classmethod
    def from_config(cls, config: Any) -> ShardingSpec:
        """From the trainer config (`config.sharding`; a config without the section does not shard)."""
        section = config.get("sharding") if hasattr(config, "get") else None
        if section is None:
            return cls()
        return cls(**{field.name: section[field.name] for field in dataclasses.fields(cls) if field.name in section})

    @property
    def enabled(self) -> bool:
        return self.partitioner != "none"

    def make_partitioner(self, num_ps: int) -> Callable | None:
        """The `variable_partitioner` for a cluster of `num_ps` ps tasks; None for `none`."""
        if isinstance(num_ps, bool) or not isinstance(num_ps, int) or num_ps < 1:
            raise ValueError(f"Sharding needs at least one ps task. Received: num_ps={num_ps!r}")
        partitioners = tf.distribute.experimental.partitioners
        if self.partitioner == "min_size":
            return partitioners.MinSizePartitioner(min_shard_bytes=self.min_shard_bytes,
                                                   max_shards=self.max_shards or num_ps)
        if self.partitioner == "fixed_shards":
            return partitioners.FixedShardsPartitioner(num_shards=self.num_shards or num_ps)
        if self.partitioner == "max_size":
            return partitioners.MaxSizePartitioner(max_shard_bytes=self.max_shard_bytes,
                                                   max_shards=self.max_shards or num_ps)
        return None


def check_strategy(spec: ShardingSpec, strategy: str) -> None:
    """Only `parameter_server` shards variables; any other strategy with a partitioner is refused."""
    if spec.enabled and strategy != "parameter_server":
        raise ValueError(
            f"`config.sharding.partitioner={spec.partitioner!r}` shards variables over ps tasks and needs "
            f"strategy='parameter_server'. Received: strategy={strategy!r}; set --config.sharding.partitioner=none "
            "for it (its replicas hold whole copies of every variable)."
        )


def ps_task_count() -> int:
    """The number of `ps` tasks in TF_CONFIG (0 without one)."""
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return 0
    try:
        return len((json.loads(text).get("cluster") or {}).get("ps") or ())
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={text!r}") from e


# --- Placement arithmetic ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VariableInfo:
    """One variable as the strategy sees it at creation: its path in the model, shape, dtype, and how many
    optimizer slots of its shape sit beside it (slots are colocated with their variable, never split).
    `weight` is False for the Keras model's own step counters (created first, not parameters)."""

    path: str
    shape: tuple[int, ...]
    dtype: tf.DType
    slots: int
    table: bool  # an embedding table
    weight: bool = True


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a variable's shards go: `shard_rows[i]` rows on ps task `tasks[i]`."""

    variable: VariableInfo
    shard_rows: tuple[int, ...]
    tasks: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        """Bytes of one row (all dimensions after the first)."""
        return math.prod(self.variable.shape[1:]) * self.variable.dtype.size

    def task_bytes(self) -> dict[int, tuple[int, int]]:
        """ps task → (weight bytes, optimizer-slot bytes) of this variable there."""
        placed: dict[int, tuple[int, int]] = {}
        for rows, task in zip(self.shard_rows, self.tasks, strict=True):
            weights, slots = placed.get(task, (0, 0))
            size = rows * self.row_bytes
            placed[task] = (weights + size, slots + size * self.variable.slots)
        return placed


def shard_rows(rows: int, shards: int) -> tuple[int, ...]:
    """Row counts of `shards` shards of `rows` rows, as `ParameterServerStrategy` splits ("div": the first
    `rows mod shards` shards get one row more)."""
    base, extra = divmod(rows, shards)
    return tuple(base + (1 if i < extra else 0) for i in range(shards))


def plan_placement(variables: list[VariableInfo], partitioner: Callable | None, num_ps: int) -> list[Placement]:
    """The placement `ParameterServerStrategy(variable_partitioner=partitioner)` gives `variables` created in this
    order as the first variables of its scope: per variable the partitioner's shard count (at most one per row;
    rank-0 variables are never split), each shard on the next ps task of one round-robin counter."""
    counter, placements = 0, []
    for variable in variables:
        shards = 1
        if partitioner is not None and variable.shape:
            shards = min(int(partitioner(shape=tf.TensorShape(variable.shape), dtype=variable.dtype)[0]),
                         variable.shape[0])
        rows = shard_rows(variable.shape[0], shards) if variable.shape else (1,)
        tasks = tuple((counter + i) % num_ps for i in range(len(rows)))
        counter += len(rows)
        placements.append(Placement(variable, rows, tasks))
    return placements


def model_variables(spec: ModelSpec, label: str = "label", dense_optimizer: str = "adagrad") -> list[VariableInfo]:
    """Every variable `build_model(spec)` creates, in creation order, with its slot count under the trainer's
    optimizers (sparse Adagrad on the tables, `dense_optimizer` on the rest). The Keras model's step counters come
    first (`weight=False`): they are not parameters but take their turn in the round robin.

    No weight is allocated, so this works for tables of any size: every variable is created uninitialized (a
    handle without a buffer) and the model's first call, which creates them, is only traced, never run.
    """
    if dense_optimizer not in SLOTS:
        raise ValueError(f"`config.optimizer.dense` must be one of {tuple(SLOTS)}. Received: {dense_optimizer!r}")
    created: list[tf.Variable] = []

    def uninitialized(next_creator, **kwargs):
        shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
        with tf.init_scope():
            if shape is None:  # given by value (Keras' scalar step counters): small enough to compute
                value = kwargs["initial_value"]
                value = tf.convert_to_tensor(value() if callable(value) else value, dtype=dtype)
                shape, dtype = value.shape, value.dtype
            variable = resource_variable_ops.UninitializedVariable(
                shape=shape, dtype=dtype, name=kwargs.get("name"), trainable=kwargs.get("trainable", True))
        created.append(variable)
        return variable

    with tf.variable_creator_scope(uninitialized):
        model = CTRModel(spec, label=label)

    @tf.function
    def build():
        with tf.variable_creator_scope(uninitialized):
            model.build_from_spec()

    build.get_concrete_function()
    paths = {id(variable): path for path, variable in model_variable_paths(model).items()}
    tables = {id(variable) for variable in model.embedding_variables}
    return [VariableInfo(paths[id(v)], tuple(int(d) for d in v.shape), v.dtype.base_dtype,
                         SLOTS["adagrad"] if id(v) in tables else SLOTS[dense_optimizer], id(v) in tables)
            if id(v) in paths else
            VariableInfo(f"({v.name.split(':')[0]})", tuple(int(d) for d in v.shape), v.dtype.base_dtype, 0, False,
                         weight=False)
            for v in created]


# --- Sharded models ---------------------------------------------------------------------------------------------


def model_variable_paths(model: tf.Module) -> dict[str, Any]:
    """Every variable of `model` by its checkpoint path ("embedding_layers/0/embeddings", ...); a
    `ShardedVariable` is one entry (its shards are not listed)."""
    found: dict[str, Any] = {}
    seen: set[int] = set()

    def walk(node: Any, prefix: str) -> None:
        for name, child in tf.train.TrackableView(node).children(node).items():
            path = f"{prefix}{name}"
            if isinstance(child, (tf.Variable, ShardedVariable)):
                found.setdefault(path, child)
            elif id(child) not in seen:
                seen.add(id(child))
                walk(child, f"{path}/")

    walk(model, "")
    return found


def is_sharded(model: tf.Module) -> bool:
    return any(isinstance(v, ShardedVariable) for v in model_variable_paths(model).values())


def unsharded_copy(model: CTRModel) -> CTRModel:
    """A new model (built outside any strategy scope) with `model`'s weights, sharded ones concatenated.

    Raises:
      ValueError: called inside a strategy scope, or the two models do not have the same variables.
    """
    if tf.distribute.has_strategy():
        raise ValueError("`unsharded_copy` must run outside a strategy scope (the copy would be distributed again)")
    copy = CTRModel(model.spec, label=model.label, name=model.name)
    copy.build_from_spec()
    source, target = model_variable_paths(model), model_variable_paths(copy)
    if sorted(source) != sorted(target):
        raise ValueError(f"Cannot re-assemble {model.name}: its variables {sorted(source)} differ from those of an "
                         f"unsharded build {sorted(target)}")
    for path, variable in target.items():
        value = tf.convert_to_tensor(source[path])  # a ShardedVariable concatenates its shards
        if value.shape != variable.shape:
            raise ValueError(f"Cannot re-assemble {path}: shape {value.shape} != {variable.shape}")
        variable.assign(value)
    return copy


def placement_of(model: CTRModel) -> dict[str, list[tuple[int, str]]]:
    """Each variable's shards as (rows, device), by checkpoint path: what the strategy actually did."""
    placed = {}
    for path, variable in model_variable_paths(model).items():
        shards = variable.variables if isinstance(variable, ShardedVariable) else [variable]
        placed[path] = [(int(shard.shape[0]) if shard.shape.rank else 1, shard.device) for shard in shards]
    return placed


def log_placement(model: CTRModel) -> None:
    """Logs where each sharded variable's shards live (one line per sharded variable)."""
    from absl import logging

    for path, shards in placement_of(model).items():
        if len(shards) > 1:
            logging.info("%s: %d shards: %s", path, len(shards),
                         ", ".join(f"{rows} rows on {device}" for rows, device in shards))
