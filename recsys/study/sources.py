"""Where a cell's PD comes from (issue 14, item 4): rare vs frequent feature values, and a model's own jitter.

**PD by training frequency** (`pd_by_frequency`). An example's training frequency is the smallest training count
among its categorical values (the model's categorical inputs): the example is as rare as its rarest value. A
value's count comes from the preprocessing job's vocabulary files, `<data dir>/vocab/<feature>.txt`, one
`value<TAB>count` line per id (the id of line k, from 0, is k + 1; `recsys.data.preprocessing.format_vocabulary`).
Id 0 (missing or out of vocabulary) and ids beyond the file count 0. The buckets (`FREQUENCY_BUCKETS`):

    tail   count < 10            (a value seen a handful of times, or never: its embedding row is barely trained)
    torso  10 <= count < 1000
    head   count >= 1000

Per bucket: the share of held-out examples and the relative PD over them (mean over replica pairs), and the
bucket's share of the cell's total PD. Without vocabulary files (hash ids, or TFRecords given directly) the split
is not available.

**Jitter vs basin** (`self_pd_summary`). PD between a replica at the last checkpoint before the final one and the
same replica at the end, averaged over the replicas: how much a single model still moves over the last
`self_pd_examples_apart` examples of the stream. When it is close to the PD between replicas, that PD mostly says
where each replica happens to be in its last steps (jitter), not which solution it settled in (basin).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recsys.data import layout
from recsys.data.features import FeatureSet
from recsys.metrics import pd as pd_lib

# (name, lowest count, highest count + 1 or None): the example's smallest training count among its values.
FREQUENCY_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("tail", 0, 10),
    ("torso", 10, 1000),
    ("head", 1000, None),
)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def vocabulary_counts(
    data_dir: str, features: FeatureSet, names: Sequence[str]
) -> tuple[dict[str, np.ndarray] | None, str]:
    """Training counts by id of the categorical features `names`: ({feature: int64 [vocab_size]}, description),
    with count[0] = 0 (missing / out of vocabulary). (None, why) when they are not available.

    The vocabulary file must hold exactly `vocab_size - 1` values (features.json), else its ids are not the ones
    in the records and the counts are refused.
    """
    if not names:
        return None, "not available: the model has no categorical features"
    if features.metadata.get("vocab_mode") == "hash":
        return None, "not available: hashed ids (vocab_mode=hash) have no vocabulary counts"
    counts = {}
    for name in names:
        path = layout.vocab_path(os.path.join(data_dir, layout.VOCAB_SUBDIR), name)
        if not os.path.exists(path):
            return None, f"not available: no vocabulary file {path}"
        with open(path) as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
        try:
            values = [int(line.rsplit("\t", 1)[1]) for line in lines]
        except (IndexError, ValueError):
            return None, f"not available: {path} has lines without a `<TAB>count`"
        if len(values) + 1 != features[name].vocab_size:
            return None, (f"not available: {path} has {len(values)} values but features.json says vocab_size "
                          f"{features[name].vocab_size} for {name}")
        counts[name] = np.asarray([0, *values], np.int64)
    source = {key: value for key, value in features.metadata.items() if "vocab" in key and value is not None}
    return counts, f"vocabulary counts of {', '.join(names)} in {data_dir}/vocab ({source})"


def example_frequency(ids: Mapping[str, np.ndarray], counts: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each example's training frequency: the smallest count among its values (ids beyond a vocabulary count 0)."""
    frequency = None
    for name, table in counts.items():
        column = np.asarray(ids[name], np.int64)
        known = (column >= 0) & (column < table.size)
        value = np.where(known, table[np.clip(column, 0, table.size - 1)], 0)
        frequency = value if frequency is None else np.minimum(frequency, value)
    if frequency is None:
        raise ValueError("`counts` must name at least one feature")
    return frequency


def frequency_buckets(frequency: np.ndarray) -> dict[str, np.ndarray]:
    """A boolean mask of the examples per bucket of `FREQUENCY_BUCKETS`."""
    return {name: (frequency >= low) & (frequency < high if high is not None else True)
            for name, low, high in FREQUENCY_BUCKETS}


def pd_by_frequency(predictions: np.ndarray, frequency: np.ndarray) -> dict[str, dict[str, Any]]:
    """{bucket: {"examples", "fraction", "relative_pd", "pd_share"}} from held-out predictions [R, T].

    `relative_pd`: the mean over replica pairs of the relative PD over the bucket's examples (None for an empty
    bucket); `pd_share`: the bucket's share of the summed PD terms of all examples (the buckets' shares add to 1).
    """
    if predictions.shape[0] < 2 or predictions.shape[1] != frequency.size:
        raise ValueError(f"`predictions` must be [R >= 2, T] with T = {frequency.size} examples. "
                         f"Received: {predictions.shape}")
    terms = pd_lib.pair_terms(predictions, pd_lib.all_pairs(predictions.shape[0])).mean(axis=0)  # per example
    total = terms.sum()
    summary = {}
    for name, mask in frequency_buckets(frequency).items():
        count = int(mask.sum())
        summary[name] = {
            "examples": count,
            "fraction": count / frequency.size,
            "relative_pd": _number(terms[mask].mean()) if count else None,
            "pd_share": _number(terms[mask].sum() / total) if total > 0 else None,
        }
    return summary


def self_pd_summary(earlier: np.ndarray, final: np.ndarray, examples_apart: int | None,
                    replica_pd: float | None = None) -> dict[str, Any]:
    """PD between each replica's two snapshots ([R, T] each, same replica order): `self_relative_pd` (mean over
    replicas), per replica, the examples between the snapshots, and `self_to_replica_pd` = self / replica PD."""
    if earlier.shape != final.shape:
        raise ValueError(f"The snapshots' predictions must have one shape. Received: {earlier.shape}, {final.shape}")
    per_replica = [pd_lib.relative_pd(a, b) for a, b in zip(earlier, final, strict=True)]
    mean = _number(np.mean(per_replica))
    return {
        "self_relative_pd": mean,
        "self_relative_pd_replicas": [_number(v) for v in per_replica],
        "self_pd_examples_apart": examples_apart,
        "self_to_replica_pd": mean / replica_pd if mean is not None and replica_pd else None,
    }
