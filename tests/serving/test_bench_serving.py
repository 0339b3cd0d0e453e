"""The serving benchmark end to end with a tiny request count (slow: it starts a server and runs every cell)."""
import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_benchmark_runs_every_cell_without_errors(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "recsys.bench.serving", "--requests=40", "--max_seconds=10", f"--json={out}"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    results = json.loads(out.read_text())
    cells = {(r["api"], r["concurrency"], r["batch"]) for r in results["rows"]}
    assert cells == ({("gRPC Predict", c, b) for c in (1, 8) for b in (1, 64)} | {("REST :predict", 1, 1)}
                     | {("in-process signature call", 1, b) for b in (1, 64)})
    for row in results["rows"]:
        assert row["errors"] == 0 and row["requests"] == 40 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert [r["batch"] for r in results["example_check"] if r["api"] == "check_ratio"] == [1, 64]
    swap = results["swap"]
    assert swap["errors"] == 0 and set(swap["answers_by_version"]) == {"1", "2"}
    assert swap["exit_code_after_sigterm"] == 0
    assert "| gRPC Predict | 1 | 1 |" in result.stdout


@pytest.mark.slow  # ~7 s on the shared 2 cores: export, two loads, 500 timed calls
def test_example_check_rows_measure_both_paths(tmp_path):
    from recsys.bench.serving import example_check_rows, read_records
    from recsys.testing import export_toy_saved_model, toy_feature_set, write_toy_tfrecords

    export_toy_saved_model(str(tmp_path / "model"), toy_feature_set())
    write_toy_tfrecords(str(tmp_path / "data.tfrecord"), toy_feature_set(), rows=64, seed=0)
    rows = example_check_rows(str(tmp_path / "model"), read_records(str(tmp_path / "data.tfrecord")), requests=50)
    latency = [r for r in rows if r["api"] != "check_ratio"]
    assert [(r["api"].endswith("on"), r["batch"]) for r in latency] == [(True, 1), (False, 1), (True, 64), (False, 64)]
    assert all(r["requests"] == 50 and 0 < r["p50_ms"] <= r["p99_ms"] for r in latency)
    ratios = [r for r in rows if r["api"] == "check_ratio"]
    assert [r["batch"] for r in ratios] == [1, 64] and all(r["p50_ratio"] > 0 and r["mean_ratio"] > 0 for r in ratios)
