"""Streaming accumulators agree with the batch functions, resume exactly, and keep a fixed-size state."""
import numpy as np
import pytest

from recsys import metrics


def _stream(seed: int, batches: int, max_batch: int = 9000):
    rng = np.random.default_rng(seed)
    for _ in range(batches):
        n = int(rng.integers(1, max_batch))
        p = rng.beta(1.0, 6.0, n).astype(np.float32)  # CTR-like, float32 like an exported model
        yield (rng.random(n) < p).astype(np.int64), p


def test_progressive_metrics_equal_batch_functions():
    stream = list(_stream(0, 40))
    labels = np.concatenate([y for y, _ in stream])
    predictions = np.concatenate([p for _, p in stream])
    accumulator = metrics.ProgressiveMetrics(window=25_000)
    for y, p in stream:
        accumulator.update(y, p)
    result = accumulator.result()
    assert set(result) == {"examples", "auc", "logloss", "calibration", "window_auc", "window_logloss",
                           "window_calibration"}
    assert result["examples"] == labels.size
    assert result["auc"] == pytest.approx(metrics.auc(labels, predictions), abs=1e-6)
    assert result["logloss"] == pytest.approx(metrics.logloss(labels, predictions), rel=1e-12)
    assert result["calibration"] == pytest.approx(metrics.calibration(labels, predictions), rel=1e-12)
    last_y, last_p = labels[-25_000:], predictions[-25_000:]
    assert result["window_auc"] == pytest.approx(metrics.auc(last_y, last_p), abs=1e-15)
    assert result["window_logloss"] == pytest.approx(metrics.logloss(last_y, last_p), rel=1e-12)
    assert result["window_calibration"] == pytest.approx(metrics.calibration(last_y, last_p), rel=1e-12)


def test_progressive_metrics_window_larger_than_stream_and_batches_larger_than_window():
    y = np.array([1, 0, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.4, 0.3, 0.1])
    small = metrics.ProgressiveMetrics(window=3, auc_bins=1024)
    small.update(y, p)  # one batch longer than the window keeps its last 3 examples
    assert small.result()["window_auc"] == metrics.auc(y[-3:], p[-3:])
    big = metrics.ProgressiveMetrics(window=100)
    big.update(y[:2], p[:2])
    big.update(y[2:], p[2:])
    assert big.result()["window_auc"] == big.result()["auc"] == metrics.auc(y, p)


def test_progressive_metrics_undefined_values_are_nan():
    accumulator = metrics.ProgressiveMetrics(window=10)
    assert np.isnan(accumulator.result()["logloss"])
    accumulator.update(np.zeros(4, dtype=int), np.full(4, 0.2))
    result = accumulator.result()
    assert np.isnan(result["auc"]) and np.isnan(result["window_auc"]) and np.isnan(result["calibration"])
    assert result["logloss"] == pytest.approx(-np.log(0.8))
    accumulator.update([], [])  # an empty batch changes nothing
    assert accumulator.result()["examples"] == 4


def test_progressive_metrics_state_round_trip_resumes_exactly_with_fixed_size():
    stream = list(_stream(1, 30))
    uninterrupted = metrics.ProgressiveMetrics(window=7000, auc_bins=4096)
    first = metrics.ProgressiveMetrics(window=7000, auc_bins=4096)
    sizes_early = None
    for k, (y, p) in enumerate(stream):
        uninterrupted.update(y, p)
        if k < 13:
            first.update(y, p)
        if k == 0:
            sizes_early = {key: value.nbytes for key, value in uninterrupted.get_state().items()}
    state = first.get_state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    resumed = metrics.ProgressiveMetrics(window=7000, auc_bins=4096)
    resumed.set_state({k: v.copy() for k, v in state.items()})
    for y, p in stream[13:]:
        resumed.update(y, p)
    assert resumed.result() == uninterrupted.result()
    for key, value in uninterrupted.get_state().items():
        np.testing.assert_array_equal(value, resumed.get_state()[key])
    assert {k: v.nbytes for k, v in uninterrupted.get_state().items()} == sizes_early  # bounded memory
    with pytest.raises(ValueError, match="window"):
        metrics.ProgressiveMetrics(window=10, auc_bins=4096).set_state(state)


def test_progressive_metrics_validate_inputs():
    accumulator = metrics.ProgressiveMetrics(window=10)
    with pytest.raises(ValueError, match="Length mismatch"):
        accumulator.update([0, 1], [0.5])
    with pytest.raises(ValueError, match="`probabilities` must not contain NaN"):
        accumulator.update([0, 1], [0.5, np.nan])
    with pytest.raises(ValueError, match="`labels` must be 0 or 1"):
        accumulator.update([0, 3], [0.5, 0.5])
    with pytest.raises(ValueError, match="`window` must be an integer >= 1"):
        metrics.ProgressiveMetrics(window=0)


def test_progressive_pd_equals_batch_pd_and_resumes():
    rng = np.random.default_rng(2)
    replicas = 3
    base = rng.beta(1.0, 5.0, 30_000)
    predictions = np.clip(base + rng.normal(0, 0.02, (replicas, base.size)), 0, 1)
    predictions[:, :50] = 0.0  # exercises the 1e-7 rule inside the stream
    accumulator = metrics.ProgressivePD(num_replicas=replicas, window=4000)
    resumed = metrics.ProgressivePD(num_replicas=replicas, window=4000)
    edges = [0, 1000, 5500, 5501, 17_000, 30_000]
    for k, (start, end) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        accumulator.update(predictions[:, start:end])
        if k == 2:
            resumed.set_state(accumulator.get_state())
        elif k > 2:
            resumed.update(predictions[:, start:end])
    pairs = [(0, 1), (0, 2), (1, 2)]
    result = accumulator.result()
    assert set(result) == {"examples", "relative_pd", "absolute_pd", "window_relative_pd", "window_absolute_pd"}
    assert result["examples"] == 30_000
    expected = np.mean([metrics.relative_pd(predictions[i], predictions[j]) for i, j in pairs])
    assert result["relative_pd"] == pytest.approx(expected, rel=1e-12)
    expected = np.mean([metrics.absolute_pd(predictions[i], predictions[j]) for i, j in pairs])
    assert result["absolute_pd"] == pytest.approx(expected, rel=1e-12)
    window = predictions[:, -4000:]
    expected = np.mean([metrics.relative_pd(window[i], window[j]) for i, j in pairs])
    assert result["window_relative_pd"] == pytest.approx(expected, rel=1e-12)
    assert resumed.result() == result
    with pytest.raises(ValueError, match=r"shape \[num_replicas=3, batch\]"):
        accumulator.update(predictions[:2, :10])
    with pytest.raises(ValueError, match="`num_replicas` must be an integer >= 2"):
        metrics.ProgressivePD(num_replicas=1)
