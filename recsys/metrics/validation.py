"""Input checks shared by every metric, so each one fails the same way on the same bad input.

Each check returns the array converted to what the metrics compute with (float64 probabilities,
int8 labels) and raises `ValueError` naming the argument, the rule and what was received.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_1d(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array. Received shape {array.shape}")
    return array


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _probability_problem(array: np.ndarray) -> tuple[str, int] | None:
    """(what is wrong, first bad index) of a float64 array, or None if every entry is a probability."""
    # min/max are fast reductions; NaN propagates through both, so one pair of passes covers all three rules.
    low, high = array.min(), array.max()
    if np.isnan(low) or np.isnan(high):
        return "must not contain NaN. Received NaN", _first_bad(np.isnan(array))
    if low < 0.0 or high > 1.0:
        i = _first_bad((array < 0.0) | (array > 1.0))
        return f"must be probabilities in [0, 1]. Received {array[i].item()!r}", i
    return None


def check_probabilities(values, name: str = "predictions") -> np.ndarray:
    """Returns `values` as a contiguous float64 1-D array; raises if any entry is NaN or outside [0, 1]."""
    array = _as_1d(values, name)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"`{name}` must hold numbers. Received dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty.")
    problem = _probability_problem(array)
    if problem is not None:
        raise ValueError(f"`{name}` {problem[0]} at index {problem[1]}")
    return array


def check_labels(values, name: str = "labels") -> np.ndarray:
    """Returns `values` as an int8 1-D array; raises unless every entry is 0 or 1."""
    array = _as_1d(values, name)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"`{name}` must hold numbers 0 or 1. Received dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty.")
    if array.dtype != np.bool_:
        bad = (array != 0) & (array != 1)  # NaN compares unequal to both, so it is caught here too.
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"`{name}` must be 0 or 1. Received {array[i].item()!r} at index {i}")
    return array.astype(np.int8, copy=False)


def check_same_length(**arrays: np.ndarray) -> int:
    """Raises unless all arrays have the same length; returns it. Keyword names are used in the message."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"Length mismatch: {described}. All inputs must describe the same examples.")
    return next(iter(lengths.values()))


def check_query_ids(values, name: str = "query_ids") -> np.ndarray:
    """Returns query ids as dense int64 codes 0..Q-1 (any hashable-sortable dtype accepted)."""
    array = _as_1d(values, name)
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty.")
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise ValueError(f"`{name}` must not contain NaN. Received NaN at index {_first_bad(np.isnan(array))}")
    if array.dtype.kind in "iub" and array.size and array.min() >= 0 and array.max() < 2 * array.size:
        # Small non-negative integers are already dense enough: renumber with bincount, skipping a sort.
        array = array.astype(np.int64, copy=False)
        present = np.bincount(array) > 0
        if present.all():
            return array
        return (np.cumsum(present) - 1)[array]
    return np.unique(array, return_inverse=True)[1].astype(np.int64).reshape(-1)


def check_model_predictions(
    predictions, min_models: int, name: str = "predictions", model_names: Sequence[str] | None = None
) -> np.ndarray:
    """Returns a [models, examples] float64 array of probabilities; raises if fewer than `min_models` rows.

    A bad value is reported by model (its name from `model_names`, else its row) and example, not by its
    position in the flattened array.
    """
    if isinstance(predictions, np.ndarray):
        array = predictions
    elif isinstance(predictions, Sequence):
        rows = [np.asarray(p) for p in predictions]
        lengths = {len(r) if r.ndim == 1 else None for r in rows}
        if len(lengths) > 1 or None in lengths:
            described = [r.shape for r in rows]
            raise ValueError(f"`{name}` must be equal-length 1-D arrays, one per model. Received shapes {described}")
        array = np.stack(rows) if rows else np.empty((0, 0))
    else:
        array = np.asarray(predictions)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must have shape [models, examples]. Received shape {array.shape}")
    if array.shape[0] < min_models:
        raise ValueError(f"`{name}` needs at least {min_models} models. Received {array.shape[0]}")
    if array.dtype.kind not in "fiub":
        raise ValueError(f"`{name}` must hold numbers. Received dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty.")
    array = np.ascontiguousarray(array, dtype=np.float64)
    problem = _probability_problem(array.reshape(-1))
    if problem is not None:
        row, example = divmod(problem[1], array.shape[1])
        model = model_names[row] if model_names is not None and row < len(model_names) else row
        raise ValueError(f"`{name}` {problem[0]} for model {model}, example {example}")
    return array
