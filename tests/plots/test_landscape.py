"""Loss-landscape figures (paper Figs. 2-3): the job end to end, the network, and the minimum counting."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from recsys.plots import landscape
from tests.conftest import REPO_ROOT
from tests.entry_points import run_main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = (
    "landscape_1d_weightnorm.png",
    "landscape_1d_layernorm.png",
    "landscape_2d_weightnorm.png",
    "landscape_2d_layernorm.png",
)


def _run_job(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.plot_landscape", *flags],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_job_writes_figures_and_minima_counts(tmp_path):
    output_dir = tmp_path / "figures"
    result = _run_job(f"--output_dir={output_dir}", "--grid=21", "--betas=0.5,2", "--input_dim=4", "--seed=3")
    assert result.returncode == 0, result.stderr
    for name in FIGURES:
        data = (output_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 20_000, f"{name} is only {len(data)} bytes"
    assert not list(output_dir.glob("*.tmp"))
    summary = json.loads((output_dir / landscape.MINIMA_FILE).read_text())
    assert summary["settings"]["grid"] == 21 and summary["settings"]["betas"] == [0.5, 2.0]
    labels = ["ReLU", "SmeLU β=0.5", "SmeLU β=2"]
    for normalization in landscape.NORMALIZATIONS:
        for key in ("local_minima_1d", "local_minima_2d"):
            counts = summary[normalization][key]
            assert list(counts) == labels
            assert all(isinstance(count, int) and count >= 0 for count in counts.values())
    # The printed table carries the same numbers as the JSON.
    relu_row = next(line for line in result.stdout.splitlines() if line.startswith("| ReLU |"))
    expected = [summary[n][k]["ReLU"] for n in landscape.NORMALIZATIONS for k in ("local_minima_1d", "local_minima_2d")]
    assert [int(cell) for cell in relu_row.strip("|").split("|")[1:]] == expected


# The job's main in this process (a fresh Python with TensorFlow costs ≈ 6 s CPU a case; the job's process runs
# above); the other argument checks are tested on the library below.
@pytest.mark.parametrize(("flag", "message"), [("--betas=0.5,-0.1", "beta=-0.1"), ("--grid=1", "grid=1")])
def test_job_rejects_bad_flags_before_writing(tmp_path, flag, message):
    output_dir = tmp_path / "figures"
    result = run_main("pipelines.plot_landscape", f"--output_dir={output_dir}", flag)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("plot_landscape: error:")
    assert not output_dir.exists()


@pytest.mark.parametrize("normalization", landscape.NORMALIZATIONS)
def test_smelu_with_tiny_beta_matches_relu_network(normalization):
    network = landscape.random_network(input_dim=6, normalization=normalization, seed=1)
    values = landscape.sweep_grid(201, 5.0)
    relu = landscape.loss_curve(network, values, "relu")
    tiny = landscape.loss_curve(network, values, "smelu:beta=1e-7")
    wide = landscape.loss_curve(network, values, "smelu:beta=1")
    assert np.max(np.abs(tiny - relu)) < 1e-5
    # The comparison can fail: a real β changes the loss by far more than the tolerance above.
    assert np.max(np.abs(wide - relu)) > 1e-3


def test_network_is_seeded_and_normalised():
    first = landscape.random_network(input_dim=5, normalization="weight_norm", seed=7, weight_norm_gain=2.0)
    again = landscape.random_network(input_dim=5, normalization="weight_norm", seed=7, weight_norm_gain=2.0)
    other = landscape.random_network(input_dim=5, normalization="weight_norm", seed=8, weight_norm_gain=2.0)
    np.testing.assert_array_equal(first.kernels[0], again.kernels[0])
    assert not np.allclose(first.kernels[0], other.kernels[0])
    assert [kernel.shape for kernel in first.kernels] == [(5, 256), (256, 128), (128, 64), (64, 32), (32, 16)]
    for kernel in (*first.kernels, first.output_kernel):
        np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 2.0, rtol=1e-12)
    layer_norm = landscape.random_network(input_dim=5, normalization="layer_norm", seed=7)
    assert 0.9 < np.std(layer_norm.kernels[1]) < 1.1  # N(0, 1), left unnormalised


def test_loss_is_cross_entropy_against_label_one():
    network = landscape.random_network(input_dim=3, normalization="layer_norm", seed=0)
    inputs = np.random.default_rng(0).normal(size=(5, 3))
    hidden = inputs
    for kernel in network.kernels:
        pre = hidden @ kernel
        pre = (pre - pre.mean(axis=1, keepdims=True)) / np.sqrt(pre.var(axis=1, keepdims=True) + 1e-6)
        hidden = np.clip(np.maximum(pre, 0.0), -6.0, 6.0)
    logits = (hidden @ network.output_kernel)[:, 0]
    expected = np.log1p(np.exp(-logits))
    np.testing.assert_allclose(landscape.network_loss(network, inputs, "relu"), expected, rtol=1e-9)


@pytest.mark.parametrize(
    ("values", "tolerance", "expected"),
    [
        ([3, 1, 2, 0, 4], 0.0, 2),
        ([0, 1, 2, 3], 0.0, 0),  # monotone
        ([0, 1, 2, 1], 0.0, 0),  # minimum only at the border
        ([2, 1, 1, 1, 2], 0.0, 1),  # a flat valley floor is one minimum
        ([2, 1, 1, 3, 3, 2, 2, 4], 0.0, 2),  # plateaus between the valleys
        ([5, 5, 5], 0.0, 0),
        ([1.0, 0.0, 0.5, 0.4999, 0.5001, 1.0], 0.0, 2),
        ([1.0, 0.0, 0.5, 0.4999, 0.5001, 1.0], 0.01, 1),  # the dip of 1e-4 is below the tolerance
        ([1.0, 0.0, 0.5], 0.6, 0),  # neither the fall nor the rise exceeds the tolerance
    ],
)
def test_count_local_minima_hand_made(values, tolerance, expected):
    assert landscape.count_local_minima(values, tolerance) == expected


def test_count_local_minima_sampled_functions():
    x = np.linspace(0.0, 6 * math.pi, 3001)
    assert landscape.count_local_minima(np.sin(x)) == 3  # 3π/2, 7π/2, 11π/2
    # A ReLU-like kinked curve: |sin(x + 0.1)| has non-smooth minima at π, 2π, ..., 6π (all inside the range).
    assert landscape.count_local_minima(np.abs(np.sin(x + 0.1))) == 6
    y = np.linspace(-2.0, 2.0, 41)
    first, second = np.meshgrid(y, y)
    assert landscape.count_local_minima_2d((first**2 - 1) ** 2 + second**2) == 2  # at (±1, 0)
    assert landscape.count_local_minima_2d(np.zeros((5, 5))) == 0  # a plateau is not a minimum


def test_counting_rejects_bad_input():
    with pytest.raises(ValueError, match="one-dimensional"):
        landscape.count_local_minima(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        landscape.count_local_minima([1.0, math.nan, 2.0])
    with pytest.raises(ValueError, match="tolerance=-1"):
        landscape.count_local_minima([1.0, 2.0], tolerance=-1)


def test_library_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"beta=-1"):
        landscape.activation_specs([0.5, -1])
    with pytest.raises(ValueError, match=r"beta=nan"):
        landscape.activation_specs([math.nan])
    with pytest.raises(ValueError, match=r"grid=1"):
        landscape.sweep_grid(1, 5.0)
    with pytest.raises(ValueError, match=r"sweep_range=0"):
        landscape.sweep_grid(10, 0.0)
    with pytest.raises(ValueError, match="normalization"):
        landscape.random_network(4, "batch_norm", seed=0)
    with pytest.raises(ValueError, match="input_dim"):
        landscape.random_network(1, "layer_norm", seed=0)
    with pytest.raises(ValueError, match="weight_norm_gain"):
        landscape.random_network(4, "weight_norm", seed=0, weight_norm_gain=0.0)


@pytest.mark.parametrize("normalization", landscape.NORMALIZATIONS)
def test_relu_curve_is_more_rugged_than_wide_smelu(normalization):
    """What docs/landscape.md reports for the default seed: SmeLU β=2 leaves fewer valleys than ReLU."""
    network = landscape.random_network(input_dim=10, normalization=normalization, seed=0)
    values = landscape.sweep_grid(401, 5.0)
    counts = {}
    for spec in ("relu", "smelu:beta=2"):
        curve = landscape.loss_curve(network, values, spec)
        counts[spec] = landscape.count_local_minima(curve, landscape.relative_tolerance(curve))
    assert counts["relu"] >= 5
    assert counts["smelu:beta=2"] < counts["relu"]
