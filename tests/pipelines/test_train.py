"""`python -m pipelines.train`: exit status and one-line messages for bad input, NaN loss and flag typos.

The successful end-to-end path of the command (train, kill, rerun to resume, outputs) runs in
tests/training/test_resume.py and tests/training/test_distributed.py.
"""
import subprocess

import pytest

from tests.training.helpers import (
    FEATURES,
    REPO_ROOT,
    subprocess_env,
    toy_rows,
    train_command,
    write_examples,
)


def _run(command):
    return subprocess.run(command, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600)


# Slow (issue 17): the same command, with a stricter check of stderr, is
# tests/pipelines/test_console.py::test_training_error_is_the_only_stderr_line.
@pytest.mark.slow
def test_missing_data_fails_with_one_line_and_status_1(tmp_path):
    result = _run(train_command(tmp_path / "run", str(tmp_path / "nowhere" / "part-*.tfrecord.gz")))
    assert result.returncode == 1
    assert "pipelines.train: error: `config.data.train` matches no files" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_misspelt_config_key_fails_before_training(tmp_path):
    result = _run([*train_command(tmp_path / "run", "unused"), "--config.model.activatoin=smelu"])
    assert result.returncode != 0
    assert "activatoin" in result.stderr and 'Did you mean "activation"' in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_nan_loss_exits_with_status_2_naming_the_step(tmp_path):
    rows = toy_rows(400)
    rows[150]["I2"] = float("inf")
    FEATURES.save(str(tmp_path / "features.json"))
    write_examples(tmp_path / "part-0.tfrecord.gz", rows)
    result = _run(train_command(tmp_path / "run", str(tmp_path / "part-*"), **{"data.shuffle": "none"}))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "pipelines.train: error: Loss is [nan] at step 3 (examples 129..192)" in result.stderr
    assert "Traceback" not in result.stderr
