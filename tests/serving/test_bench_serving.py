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
    swap = results["swap"]
    assert swap["errors"] == 0 and set(swap["answers_by_version"]) == {"1", "2"}
    assert swap["exit_code_after_sigterm"] == 0
    assert "| gRPC Predict | 1 | 1 |" in result.stdout
