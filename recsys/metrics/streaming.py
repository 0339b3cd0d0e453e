"""Streaming accumulators for progressive validation: bounded memory however long the stream.

Progressive validation (Shamir & Lin 2022, "Training regime"): every example is scored before the model
trains on it, and the metrics accumulate over the whole stream. The trainer feeds each batch's labels and
predictions here; the state is a fixed set of NumPy arrays, so it can be checkpointed and resumed exactly.

- Cumulative AUC: per-class histograms of the predictions quantised into `auc_bins` bins uniform in logit
  space over [logit(1e-7), logit(1 − 1e-7)] (relative resolution everywhere, where CTR predictions crowd near
  0). The AUC of the quantised predictions, ties half, is exact (`accuracy.auc_from_histograms`); it differs
  from the exact AUC only through pairs that share a bin (with 2**20 bins, typically < 1e-6).
- Cumulative logloss and calibration: float64 running sums with Neumaier compensation (exact up to rounding
  of each batch's own sum).
- Window metrics: exact, by calling the batch functions (`accuracy.auc`, `pd.relative_pd`, ...) on a ring
  buffer of the last `window` examples; these metrics do not depend on order, so the buffer is not rotated.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from recsys.metrics import accuracy, pd, validation

_LOGIT_EPSILON = 1e-7
_LOGIT_LIMIT = float(np.log1p(-_LOGIT_EPSILON) - np.log(_LOGIT_EPSILON))


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _compensated_add(total: float, compensation: float, value: float) -> tuple[float, float]:
    """One Neumaier summation step: `total + compensation` tracks the exact sum of all values added."""
    new_total = total + value
    if abs(total) >= abs(value):
        compensation += (total - new_total) + value
    else:
        compensation += (value - new_total) + total
    return new_total, compensation


def _quantise(probabilities: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each probability, bins uniform in logit space (monotone, so AUC order is kept)."""
    clipped = np.maximum(probabilities, _LOGIT_EPSILON)
    np.minimum(clipped, 1.0 - _LOGIT_EPSILON, out=clipped)
    logits = np.log(clipped)
    logits -= np.log1p(-clipped)
    logits += _LOGIT_LIMIT
    logits *= bins / (2.0 * _LOGIT_LIMIT)
    index = logits.astype(np.int64)  # non-negative, so truncation is floor
    return np.minimum(index, bins - 1, out=index)


class _RingBuffer:
    """The last `size` columns written, as [rows, size] arrays (order irrelevant for the metrics here)."""

    def __init__(self, rows: int, size: int, dtype):
        self.data = np.zeros((rows, size), dtype=dtype)
        self.next = 0
        self.filled = 0

    def write(self, columns: np.ndarray) -> None:
        size = self.data.shape[1]
        columns = columns[:, -size:]
        n = columns.shape[1]
        end = self.next + n
        if end <= size:
            self.data[:, self.next:end] = columns
        else:
            first = size - self.next
            self.data[:, self.next:] = columns[:, :first]
            self.data[:, :n - first] = columns[:, first:]
        self.next = end % size
        self.filled = min(size, self.filled + n)

    def contents(self) -> np.ndarray:
        return self.data[:, :self.filled]


def _check_state(state: dict[str, np.ndarray], expected: dict[str, np.ndarray], owner: str) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{owner} state keys mismatch: missing {missing}, unexpected {unexpected}")
    for key, current in expected.items():
        shape = np.shape(state[key])
        if shape != current.shape:
            raise ValueError(
                f"{owner} state `{key}` has shape {shape}, expected {current.shape} "
                "(was it saved with a different window / auc_bins / num_replicas?)"
            )


class ProgressiveMetrics:
    """Progressive-validation accumulator: cumulative metrics over the whole stream plus a sliding window.

    Usage:
        metrics = ProgressiveMetrics(window=100_000)
        for labels, probabilities in stream:       # scored before training on the batch
            metrics.update(labels, probabilities)
        metrics.result()  # {"examples", "auc", "logloss", "calibration", "window_auc", ...}

    Undefined values (AUC with one class so far, calibration without a click) are NaN. Memory is fixed:
    2 · auc_bins int64 counters plus the `window` ring buffer. `update` costs O(batch); `result` costs
    O(auc_bins + window · log window) (a few ms at the defaults), so call it at logging intervals, not per batch.
    """

    def __init__(self, window: int = 100_000, auc_bins: int = 2**20):
        self.window = _check_positive_int(window, "window")
        self.auc_bins = _check_positive_int(auc_bins, "auc_bins", minimum=2)
        # Row b holds [negatives, positives] in bin b, so one scattered add per batch updates both classes.
        self._histogram = np.zeros((self.auc_bins, 2), dtype=np.int64)
        self._examples = 0
        self._positives = 0
        # [logloss sum, prediction sum] and their Neumaier compensation terms.
        self._sums = [0.0, 0.0]
        self._compensation = [0.0, 0.0]
        self._labels = _RingBuffer(1, self.window, np.int8)
        self._predictions = _RingBuffer(1, self.window, np.float64)

    def update(self, labels: np.ndarray, probabilities: np.ndarray) -> None:
        """Adds one batch; `labels` in {0, 1}, `probabilities` in [0, 1], same length. Empty batches are ignored."""
        if np.size(labels) == 0 and np.size(probabilities) == 0:
            return
        y = validation.check_labels(labels, "labels")
        p = validation.check_probabilities(probabilities, "probabilities")
        validation.check_same_length(labels=y, probabilities=p)
        cells = _quantise(p, self.auc_bins)
        cells *= 2
        cells += y
        flat = self._histogram.reshape(-1)
        # Scattered increments cost O(batch); a full bincount costs O(auc_bins) (ms per trainer batch).
        if cells.size < self.auc_bins:
            np.add.at(flat, cells, 1)
        else:
            flat += np.bincount(cells, minlength=flat.size)
        self._examples += y.size
        self._positives += int(np.count_nonzero(y))
        batch_sums = (float(accuracy.logloss_terms_unchecked(y, p).sum()), float(p.sum()))
        for k, value in enumerate(batch_sums):
            self._sums[k], self._compensation[k] = _compensated_add(self._sums[k], self._compensation[k], value)
        self._labels.write(y[None, :])
        self._predictions.write(p[None, :])

    def result(self) -> dict[str, float]:
        """Keys: examples, auc, logloss, calibration, window_auc, window_logloss, window_calibration."""
        nan = float("nan")
        totals = [s + c for s, c in zip(self._sums, self._compensation, strict=True)]
        out = {
            "examples": float(self._examples),
            "auc": accuracy.auc_from_histograms(self._histogram[:, 1], self._histogram[:, 0]),
            "logloss": float(totals[0] / self._examples) if self._examples else nan,
            "calibration": float(totals[1] / self._positives) if self._positives else nan,
        }
        labels = self._labels.contents()[0]
        predictions = self._predictions.contents()[0]
        window_positives = int(np.count_nonzero(labels))
        both_classes = 0 < window_positives < labels.size
        out["window_auc"] = accuracy.auc(labels, predictions) if both_classes else nan
        out["window_logloss"] = accuracy.logloss(labels, predictions) if labels.size else nan
        out["window_calibration"] = accuracy.calibration(labels, predictions) if window_positives else nan
        return out

    def get_state(self) -> dict[str, np.ndarray]:
        """All state as NumPy arrays (copies), for checkpoints; `set_state` restores it exactly."""
        return {
            "config": np.array([self.window, self.auc_bins], dtype=np.int64),
            "positive_histogram": self._histogram[:, 1].copy(),
            "negative_histogram": self._histogram[:, 0].copy(),
            "counts": np.array([self._examples, self._positives], dtype=np.int64),
            "sums": np.array(self._sums, dtype=np.float64),
            "compensation": np.array(self._compensation, dtype=np.float64),
            "window_labels": self._labels.data[0].copy(),
            "window_predictions": self._predictions.data[0].copy(),
            "window_position": np.array([self._labels.next, self._labels.filled], dtype=np.int64),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores a `get_state` result; raises `ValueError` if it came from a different configuration."""
        _check_state(state, self.get_state(), "ProgressiveMetrics")
        config = np.asarray(state["config"])
        if tuple(config) != (self.window, self.auc_bins):
            raise ValueError(
                f"ProgressiveMetrics state was saved with window={config[0]}, auc_bins={config[1]}; "
                f"this accumulator has window={self.window}, auc_bins={self.auc_bins}"
            )
        negatives = np.asarray(state["negative_histogram"], dtype=np.int64)
        positives = np.asarray(state["positive_histogram"], dtype=np.int64)
        self._histogram = np.stack([negatives, positives], axis=1)
        self._examples, self._positives = (int(v) for v in state["counts"])
        self._sums = [float(v) for v in state["sums"]]
        self._compensation = [float(v) for v in state["compensation"]]
        position, filled = (int(v) for v in state["window_position"])
        for ring, key, dtype in ((self._labels, "window_labels", np.int8),
                                 (self._predictions, "window_predictions", np.float64)):
            ring.data[0] = np.asarray(state[key], dtype=dtype)
            ring.next, ring.filled = position, filled


class ProgressivePD:
    """Relative/absolute PD between R replicas' predictions on the same examples, cumulative + window.

    Each update takes [R, batch] predictions of R replicas on the same examples; PD is the mean over all
    R(R−1)/2 replica pairs of `pd.relative_pd` / `pd.absolute_pd` (fractions, as in `recsys.metrics.pd`).
    Cumulative values are compensated running sums of the per-example pair-mean terms; window values apply
    the batch functions to a ring buffer of the last `window` examples.
    """

    def __init__(self, num_replicas: int, window: int = 100_000):
        self.num_replicas = _check_positive_int(num_replicas, "num_replicas", minimum=2)
        self.window = _check_positive_int(window, "window")
        self._pairs = list(combinations(range(self.num_replicas), 2))
        self._examples = 0
        # [relative PD sum, absolute PD sum] and their Neumaier compensation terms.
        self._sums = [0.0, 0.0]
        self._compensation = [0.0, 0.0]
        self._predictions = _RingBuffer(self.num_replicas, self.window, np.float64)

    def update(self, probabilities: np.ndarray) -> None:
        """Adds one batch of shape [R, batch]. Empty batches are ignored."""
        array = np.asarray(probabilities)
        if array.ndim != 2 or array.shape[0] != self.num_replicas:
            raise ValueError(
                f"`probabilities` must have shape [num_replicas={self.num_replicas}, batch]. "
                f"Received shape {array.shape}"
            )
        if array.shape[1] == 0:
            return
        array = validation.check_model_predictions(array, min_models=2, name="probabilities")
        relative = np.zeros(array.shape[1])
        absolute = np.zeros(array.shape[1])
        for i, j in self._pairs:
            relative += pd.relative_pd_terms_unchecked(array[i], array[j])
            absolute += np.abs(array[i] - array[j])
        relative /= len(self._pairs)
        absolute /= len(self._pairs)
        for k, value in enumerate((float(relative.sum()), float(absolute.sum()))):
            self._sums[k], self._compensation[k] = _compensated_add(self._sums[k], self._compensation[k], value)
        self._examples += array.shape[1]
        self._predictions.write(array)

    def result(self) -> dict[str, float]:
        """Keys: examples, relative_pd, absolute_pd, window_relative_pd, window_absolute_pd."""
        nan = float("nan")
        totals = [s + c for s, c in zip(self._sums, self._compensation, strict=True)]
        out = {
            "examples": float(self._examples),
            "relative_pd": float(totals[0] / self._examples) if self._examples else nan,
            "absolute_pd": float(totals[1] / self._examples) if self._examples else nan,
        }
        buffer = self._predictions.contents()
        if buffer.shape[1]:
            out["window_relative_pd"] = float(np.mean([pd.relative_pd(buffer[i], buffer[j]) for i, j in self._pairs]))
            out["window_absolute_pd"] = float(np.mean([pd.absolute_pd(buffer[i], buffer[j]) for i, j in self._pairs]))
        else:
            out["window_relative_pd"] = out["window_absolute_pd"] = nan
        return out

    def get_state(self) -> dict[str, np.ndarray]:
        """All state as NumPy arrays (copies), for checkpoints; `set_state` restores it exactly."""
        return {
            "config": np.array([self.num_replicas, self.window], dtype=np.int64),
            "examples": np.array([self._examples], dtype=np.int64),
            "sums": np.array(self._sums, dtype=np.float64),
            "compensation": np.array(self._compensation, dtype=np.float64),
            "window_predictions": self._predictions.data.copy(),
            "window_position": np.array([self._predictions.next, self._predictions.filled], dtype=np.int64),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores a `get_state` result; raises `ValueError` if it came from a different configuration."""
        _check_state(state, self.get_state(), "ProgressivePD")
        config = np.asarray(state["config"])
        if tuple(config) != (self.num_replicas, self.window):
            raise ValueError(
                f"ProgressivePD state was saved with num_replicas={config[0]}, window={config[1]}; "
                f"this accumulator has num_replicas={self.num_replicas}, window={self.window}"
            )
        self._examples = int(np.asarray(state["examples"])[0])
        self._sums = [float(v) for v in state["sums"]]
        self._compensation = [float(v) for v in state["compensation"]]
        self._predictions.data = np.array(state["window_predictions"], dtype=np.float64)
        self._predictions.next, self._predictions.filled = (int(v) for v in state["window_position"])
