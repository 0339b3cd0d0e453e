"""The activation figure (library and `python -m pipelines.plot_activations`) and the activation benchmark."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from recsys.bench import activations as bench
from recsys.plots import activations as plots
from tests.entry_points import run_main

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_curves_are_the_layer_values_and_gradients():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=np.float32)
    value, grad = plots.curves("smelu:beta=1", x)
    np.testing.assert_allclose(value, [0.0, 0.0625, 0.25, 0.5625, 2.0], atol=1e-7)
    np.testing.assert_allclose(grad, [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-7)


def test_plot_activations_rejects_a_bad_range_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"`x_range`.*x_range=\(1.0, -1.0\)"):
        plots.plot_activations(tmp_path / "bad.png", x_range=(1.0, -1.0))
    assert not (tmp_path / "bad.png").exists()


def test_plot_entry_point_writes_the_figure_and_fails_cleanly(tmp_path):
    out = tmp_path / "figures" / "activations.png"
    ok = subprocess.run(
        [sys.executable, "-m", "pipelines.plot_activations", f"--output={out}", "--dpi=30"],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"wrote {out}" in ok.stdout and not out.with_name("activations.png.partial").exists()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (30 * 7, 30 * 4 * len(plots.PANELS))  # 2 rows x 5 panels at 30 dpi
    assert image[..., :3].std() > 0.05  # not blank

    # The bad range through the job's main in this process: a second fresh Python would cost seconds (issue 17).
    bad = run_main("pipelines.plot_activations", f"--output={tmp_path / 'x.png'}", "--x_min=5")
    assert bad.returncode == 1 and not (tmp_path / "x.png").exists()
    error_lines = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == ["error: --x_min must be < --x_max. Received: x_min=5.0, x_max=4.0"]


def test_benchmark_elementwise_smoke():
    names = ["relu", "smelu (beta=1)", "diag: smelu unfused"]
    results = bench.run(rounds=2, steps=1, elements=10_000, only_elementwise=True, names=names)
    rows = results["elementwise"]
    assert list(rows) == names
    assert rows["relu"]["wall_ratio_best"] == 1.0 and rows["relu"]["cpu_ratio_median"] == 1.0
    assert all(r["wall_ms"] > 0 and r["cpu_ms"] >= 0 for r in rows.values())
    table = bench.format_table(results)
    assert "smelu (beta=1)" in table and "train step" not in table
    assert bench.verdict(results) == "target not evaluated (train step skipped)"


@pytest.mark.slow
def test_benchmark_entry_point_quick_run(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "recsys.bench.activations", "--rounds=1", "--steps=2", f"--json={out}"],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "toy-MLP train step" in run.stdout and "target " in run.stdout
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"elementwise", "train_step"}
    assert results["train_step"]["relu"]["cpu_ratio_median"] == 1.0


def test_benchmark_rejects_bad_flags(capsys):
    assert bench.main(["--rounds=0"]) == 2
    assert "--rounds and --steps must be >= 1" in capsys.readouterr().err
