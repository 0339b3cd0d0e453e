"""`python -m pipelines.study`: the smoke study end to end (real preprocessing, training, SavedModels, scoring),
resuming without retraining, and one-line errors for bad configs."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.entry_points import run_main

CONFIG = "configs/study_smoke.py"
CELL_KEYS = {
    "cell", "label", "activation", "beta", "noise", "replicas", "ensemble", "ensemble_k", "relative_pd",
    "relative_pd_ci", "relative_pd_median", "relative_pd_max", "pairs", "auc", "logloss", "auc_loss_change_pct",
    "examples_per_sec", "progressive_auc", "progressive_relative_pd", "status", "parameters",
    # The paired comparison with the ReLU cell (None on ReLU itself and on ensembles).
    "pd_ratio_to_baseline", "pd_ratio_ci", "pd_ratio_ci_unpaired", "pd_verdict", "pd_ratio_detectable_change",
    "auc_difference", "auc_difference_ci", "auc_verdict", "paired_replicas",
}


def _study(workdir, *overrides):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "pipelines.study", f"--config={CONFIG}", f"--workdir={workdir}", *overrides],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def _study_in_process(workdir, *overrides):
    """The job's main in this process: the end-to-end run below costs two fresh Pythons with TensorFlow less (issue
    17); the command's own process (exit status, one-line error) runs in the bad-config test."""
    return run_main("pipelines.study", f"--config={CONFIG}", f"--workdir={workdir}", *overrides)


def _trainer_files(workdir):
    """Modification times of every trainer output: a skipped cell leaves them untouched."""
    times = {}
    for root, _, files in os.walk(workdir / "cells"):
        for name in files:
            if "predictions" not in name:
                path = os.path.join(root, name)
                times[path] = os.stat(path).st_mtime_ns
    return times


def _load(workdir):
    return json.loads((workdir / "results.json").read_text())


# The default suite runs the smoke study without its equal-budget cells and without exporting each replica at its
# earlier checkpoint (half the training and a third of the exports, issue 17); the slow test below runs the whole
# config and checks those cells and the self PD end to end.
NO_BUDGET = ("--config.grid.ensemble_equal_budget=False", "--config.analysis.checkpoint_pd=False")


def test_smoke_study_end_to_end_then_resume_skips_finished_cells(tmp_path):
    workdir = tmp_path / "study"
    first = _study_in_process(workdir, *NO_BUDGET)
    assert first.returncode == 0, first.stderr[-3000:]
    results = _load(workdir)
    # The console ends with the short table and one sentence per compared cell (recsys.study.report).
    assert "PD ratio to ReLU [paired CI]" in first.stdout and "SmeLU β=1: " in first.stdout
    cells = results["cells"]
    assert [(c["label"], c["noise"], c["replicas"]) for c in cells] == [
        ("ReLU", "shuffle", 4), ("ReLU 2-ensemble", "shuffle", 4), ("SmeLU β=1", "shuffle", 4),
        ("SmeLU 2-ensemble", "shuffle", 4)]
    for cell in cells:
        assert CELL_KEYS <= set(cell), CELL_KEYS - set(cell)
        assert cell["status"] == "ok"
        low, high = cell["relative_pd_ci"]
        assert 0.0 < low <= high < 2.0 and 0.0 < cell["relative_pd"] < 2.0
        assert 0.0 < cell["auc"] < 1.0 and cell["logloss"] > 0.0
    relu, ensemble, smelu, smelu_ensemble = cells
    assert relu["pairs"] == 6 and ensemble["pairs"] == 3 and smelu["pairs"] == 6
    assert relu["auc_loss_change_pct"] == 0.0 and relu["baseline"] and not smelu["baseline"]
    expected = 100 * ((1 - smelu["auc"]) - (1 - relu["auc"])) / (1 - relu["auc"])
    assert smelu["auc_loss_change_pct"] == pytest.approx(expected)
    assert ensemble["ensemble"] and ensemble["ensemble_k"] == 2 and not relu["ensemble"]
    assert smelu["beta"] == 1.0 and relu["beta"] is None
    assert relu["relative_pd_median"] <= relu["relative_pd_max"]
    assert results["study"]["eval_examples"] == 1000
    assert results["study"]["ground_truth"] is None  # a real log has no oracle (generated ones: tests/study)
    if results["study"]["trainer_mode"] == "replicas":  # the trainer's progressive PD between the replicas
        for cell in (relu, smelu):
            assert 0.0 < cell["progressive_relative_pd"] < 2.0 and 0.0 < cell["window_relative_pd"] < 2.0
            assert cell["models_per_trainer_run"] == cell["replicas"]
    assert relu["examples_per_sec"] > 0 and relu["train_examples"] == 2000
    # Paired comparison with ReLU, on the stored predictions.
    _check_paired(smelu, relu)
    assert relu["pd_ratio_to_baseline"] is None and ensemble["pd_verdict"] is None
    # The k× ensemble has k× the single model's parameters.
    assert ensemble["parameters"] == smelu_ensemble["parameters"] == 2 * relu["parameters"]
    # Each replica was exported and scored: 2 cells × 4 SavedModels.
    assert len(list(workdir.glob("cells/shuffle/*/replica_*/saved_model/saved_model.pb"))) + len(
        list(workdir.glob("cells/shuffle/*/train/saved_model*/saved_model.pb"))) == 8
    png = (workdir / "pd_vs_accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    markdown = (workdir / "results.md").read_text()
    assert "| SmeLU β=1 | 1 | 4 | 6 |" in markdown and "ReLU 2-ensemble" in markdown
    # results.md opens with the verdict table.
    assert markdown.index("## Verdicts against ReLU (paired)") < markdown.index("## Noise: shuffle")
    assert f"| shuffle | SmeLU β=1 | {smelu['parameters']:,} | 4 | {smelu['pd_ratio_to_baseline']:.2f} [" in markdown
    # Where the PD comes from: by the training frequency of the rarest value (the self PD: the slow test).
    assert results["study"]["frequency"]["buckets"] == {"tail": [0, 10], "torso": [10, 1000], "head": [1000, None]}
    for cell in (relu, smelu):
        split = cell["pd_by_frequency"]
        assert sum(b["examples"] for b in split.values()) == 1000
        assert sum(b["pd_share"] for b in split.values()) == pytest.approx(1.0)
        assert "self_relative_pd" not in cell  # analysis.checkpoint_pd off
    assert "## Where the PD comes from" in markdown

    before = _trainer_files(workdir)
    second = _study_in_process(workdir, *NO_BUDGET)
    assert second.returncode == 0, second.stderr[-3000:]
    rerun = _load(workdir)
    assert rerun["run"]["cells_trained"] == 0 and rerun["run"]["cells_skipped"] == 2
    assert rerun["cells"] == cells  # stored predictions + seeded bootstrap: identical numbers
    assert _trainer_files(workdir) == before  # nothing was retrained or re-exported


def _check_paired(cell, relu):
    """The paired comparison of a single-model cell with the ReLU cell (results.json)."""
    assert cell["paired_replicas"] == 4 and cell["paired_baseline"] == "shuffle/relu"
    assert cell["pd_verdict"] in ("lower", "higher", "not resolved") and cell["auc_verdict"] in (
        "lower", "higher", "not resolved")
    low, high = cell["pd_ratio_ci"]
    assert low <= cell["pd_ratio_to_baseline"] <= high and cell["pd_ratio_ci_unpaired"][0] > 0
    assert cell["pd_ratio_to_baseline"] == pytest.approx(cell["relative_pd"] / relu["relative_pd"])
    assert cell["pd_ratio_detectable_change"] > 0 and cell["auc_difference_ci"][0] <= cell["auc_difference"]


def test_bad_config_fails_with_one_line_before_training(tmp_path):
    result = _study(tmp_path / "study", "--config.grid.replicas=1")
    assert result.returncode == 1
    assert "pipelines.study: error: `grid.replicas` must be an integer >= 2" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "study").exists()


# Slow (issue 17): the whole smoke config, its equal-budget cells included, then a cell interrupted and completed.
@pytest.mark.slow
def test_equal_budget_cells_end_to_end_then_an_interrupted_cell_is_completed(tmp_path):
    workdir = tmp_path / "study"
    assert _study(workdir).returncode == 0
    cells = _load(workdir)["cells"]
    assert [(c["label"], c["noise"], c["replicas"]) for c in cells] == [
        ("ReLU", "shuffle", 4), ("ReLU 2-ensemble", "shuffle", 4), ("SmeLU β=1", "shuffle", 4),
        ("SmeLU 2-ensemble", "shuffle", 4), ("ReLU (1/2 budget)", "shuffle", 4),
        ("ReLU 2-ensemble (equal budget)", "shuffle", 4), ("SmeLU β=1 (1/2 budget)", "shuffle", 4),
        ("SmeLU 2-ensemble (equal budget)", "shuffle", 4)]
    relu, _, smelu, _, relu_budget, relu_budget_ensemble, smelu_budget, _ = cells
    for cell in cells:
        assert CELL_KEYS <= set(cell), CELL_KEYS - set(cell)
        assert cell["status"] == "ok"
    for cell in (smelu, relu_budget, smelu_budget):
        _check_paired(cell, relu)
    # Equal budget: 2 narrowed components have the single model's parameters within 5%; the k× ensemble twice.
    assert relu_budget_ensemble["parameters"] == 2 * relu_budget["parameters"]
    assert abs(relu_budget_ensemble["parameters"] / relu["parameters"] - 1.0) <= 0.05
    assert relu_budget["overrides"] == {"model.embedding_dim": 2, "model.hidden_units": [10, 5]}
    config = json.loads((workdir / "cells/shuffle/smelu_beta1_ensemble_budget_k2/train/config.json").read_text())
    assert config["model"]["hidden_units"] == [10, 5] and config["model"]["activation"] == "smelu:beta=1"
    # 4 cells × 4 SavedModels.
    assert len(list(workdir.glob("cells/shuffle/*/replica_*/saved_model/saved_model.pb"))) + len(
        list(workdir.glob("cells/shuffle/*/train/saved_model*/saved_model.pb"))) == 16
    markdown = (workdir / "results.md").read_text()
    assert "| shuffle | SmeLU β=1 (1/2 budget) |" in markdown
    # Each replica against itself at its checkpoint before the final one (analysis.checkpoint_pd).
    for cell in (relu, smelu):
        assert 0.0 < cell["self_relative_pd"] < 2.0 and len(cell["self_relative_pd_replicas"]) == cell["replicas"]
        assert 0 < cell["self_pd_examples_apart"] <= 512

    cell = workdir / "cells" / "shuffle" / "smelu_beta1"
    if (cell / "train").exists():  # replica mode: the run stopped after training, before its outputs were written
        (cell / "train" / "metrics.json").unlink()
        shutil.rmtree(cell / "train" / "saved_model_1")
    else:  # separate runs: one replica's run is lost entirely
        shutil.rmtree(cell / "replica_1")
    again = _study(workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = _load(workdir)
    assert rerun["run"]["cells_trained"] == 1 and rerun["run"]["cells_skipped"] == 3
    assert rerun["cells"][:2] == cells[:2] and rerun["cells"][4:] == cells[4:]
    # Deterministic ops and the same seeds: the completed replica reproduces its predictions.
    assert rerun["cells"][2]["relative_pd"] == pytest.approx(cells[2]["relative_pd"], rel=1e-6)


# Slow (issue 17): a second study end to end; the study pipeline's end-to-end run is the smoke study above, and
# the distillation cells' parts are covered in the default suite (docs/performance.md, "Test suite").
@pytest.mark.slow
def test_distillation_cells_end_to_end(tmp_path):
    """Issue #9's cells on the smoke data: SmeLU alone, gSmeLU teacher alone, SmeLU students of an online gSmeLU
    teacher, a co-distilled ReLU pair; the comparison in results.json/results.md and the convergence plot."""
    workdir = tmp_path / "study"
    result = _study(workdir, "--config.grid.noise=('init',)", "--config.grid.ensemble_k=0",
                    "--config.grid.activations=('relu','smelu:beta=1','gsmelu:trainable=true')",
                    "--config.grid.distill_students=('smelu:beta=1',)", "--config.grid.distill_weights=(0.7,)",
                    "--config.grid.codistill_activations=('relu',)")
    assert result.returncode == 0, result.stderr[-3000:]
    results = _load(workdir)
    labels = [c["label"] for c in results["cells"]]
    assert labels == ["ReLU", "SmeLU β=1", "gSmeLU (learned)", "SmeLU β=1 student of gSmeLU (learned), w=0.7",
                      "ReLU co-distilled, w=0.5"]
    student = results["cells"][3]
    assert student["role"] == "student" and student["replicas"] == 2 and student["pairs"] == 1
    assert 0.0 < student["teacher_progressive_auc"] < 1.0
    curve = student["progressive_auc_curve"]
    assert curve["examples"][-1] == 2000 and curve["auc"][-1] == pytest.approx(student["progressive_auc"])
    train = workdir / "cells" / "init" / "smelu_beta1__student_of_gsmelu_trainabletrue_w0.7" / "train"
    config = json.loads((train / "config.json").read_text())
    assert config["distill"]["teacher"] == "online" and config["distill"]["weight"] == 0.7
    assert (train / "saved_model_teacher" / "saved_model.pb").exists()
    codistilled = results["cells"][4]
    assert json.loads((workdir / "cells" / "init" / "relu__codistill_w0.5" / "train" / "config.json").read_text())[
        "codistill"]["weight"] == 0.5
    assert codistilled["relative_pd"] > 0 and not codistilled["baseline"]

    (summary,) = results["distillation"]
    smelu, gsmelu = results["cells"][1], results["cells"][2]
    assert summary["alone_relative_pd"] == smelu["relative_pd"] and summary["alone_auc"] == smelu["auc"]
    assert summary["teacher_alone_auc"] == gsmelu["auc"]
    assert summary["student_relative_pd"] == student["relative_pd"]
    assert [c["label"] for c in summary["codistilled"]] == ["ReLU co-distilled, w=0.5"]
    markdown = (workdir / "results.md").read_text()
    assert "## Distillation" in markdown and "| SmeLU β=1 student of gSmeLU (learned), w=0.7 | 0.7 |" in markdown
    assert (workdir / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
