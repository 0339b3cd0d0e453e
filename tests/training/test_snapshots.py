"""A trainer run's earlier snapshot (`recsys.training.snapshots`) and the comparator's `--self_pd` built on it."""
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from recsys.metrics import pd
from recsys.training import snapshots
from tests.entry_points import run_command
from tests.training.helpers import small_config, workdir_at_checkpoint


@pytest.fixture(scope="module")
def run(stream, tmp_path_factory):
    """A finished 2-replica run with its final checkpoint (step 19) and the one before (step 15)."""
    from recsys.training.loop import train

    workdir = tmp_path_factory.mktemp("snapshots") / "run"
    config = small_config(stream, export_saved_model=True, **{"replicas.count": 2})
    train(config, str(workdir))
    return workdir, config


def _scores(path, stream):
    from recsys.serving.scorer import SavedModelScorer

    examples = tf.constant(list(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(stream)), "GZIP")
                                .take(300).as_numpy_iterator()))
    return np.asarray(SavedModelScorer(path)(examples), np.float64)


def test_the_earlier_snapshot_is_the_checkpoint_before_the_final_one(run, stream, tmp_path):
    from recsys.training.checkpoint import list_checkpoints
    from recsys.training.loop import export_checkpoint

    workdir, config = run
    snapshot = snapshots.export_earlier_snapshot(str(workdir), str(tmp_path / "exports"))  # config from config.json
    assert (snapshot.step, snapshot.examples_apart) == (15, 240)
    assert [os.path.basename(p) for p in snapshot.paths] == ["saved_model", "saved_model_1"]
    reference = export_checkpoint(config, str(workdir), list_checkpoints(str(workdir))[0].path, str(tmp_path / "ref"))
    for exported, expected, final in zip(snapshot.paths, reference, ("saved_model", "saved_model_1"), strict=True):
        np.testing.assert_array_equal(_scores(exported, stream), _scores(expected, stream))
        assert pd.relative_pd(_scores(exported, stream), _scores(str(workdir / final), stream)) > 1e-4
    # A second call reuses the complete export instead of exporting again.
    stamp = os.path.getmtime(os.path.join(snapshot.paths[0], "saved_model.pb"))
    again = snapshots.export_earlier_snapshot(str(workdir), str(tmp_path / "exports"), config)
    assert again == snapshot and os.path.getmtime(os.path.join(again.paths[0], "saved_model.pb")) == stamp
    assert not [name for name in os.listdir(tmp_path / "exports") if name.endswith(".partial")]


def test_runs_without_an_earlier_snapshot_say_why(run, tmp_path):
    workdir, _ = run
    unfinished = tmp_path / "unfinished"
    workdir_at_checkpoint(workdir, unfinished, 15)
    with pytest.raises(snapshots.NoEarlierSnapshot, match="no finished run"):
        snapshots.export_earlier_snapshot(str(unfinished), str(tmp_path / "exports"))
    with pytest.raises(snapshots.NoEarlierSnapshot, match="no finished run"):
        snapshots.export_earlier_snapshot(str(tmp_path / "empty"), str(tmp_path / "exports"))


def test_a_trainer_export_is_traced_back_to_its_workdir_through_links(run, tmp_path):
    workdir, _ = run
    assert snapshots.trainer_workdir_of(str(workdir / "saved_model")) == (os.path.realpath(workdir), 0)
    link = tmp_path / "relu_1"
    link.symlink_to(workdir / "saved_model_1")
    assert snapshots.trainer_workdir_of(str(link) + "/") == (os.path.realpath(workdir), 1)
    assert snapshots.trainer_workdir_of(str(workdir / "checkpoints")) is None
    assert snapshots.trainer_workdir_of(str(tmp_path)) is None
    assert [snapshots.trainer_state_index(n) for n in ("saved_model", "saved_model_12", "saved_model_x", "m")] == \
        [0, 12, None, None]


def test_compare_reports_self_pd_next_to_the_pd_between_models(run, stream, tmp_path):
    """`pipelines.compare --self_pd`: each trainer-exported model against its own earlier checkpoint; a model that
    is not a trainer export is listed with the reason."""
    from recsys.testing import export_toy_saved_model
    from tests.training.helpers import FEATURES

    workdir, _ = run
    foreign = tmp_path / "foreign"
    export_toy_saved_model(str(foreign), FEATURES, seed=0, scale=0.05)
    out = tmp_path / "out"
    # In this process (issue 17); the command's own process is tested in tests/pipelines/test_console.py.
    result = run_command(
        [sys.executable, "-m", "pipelines.compare", f"--models={workdir / 'saved_model'},{workdir / 'saved_model_1'},"
         f"{foreign}", f"--data={stream}", f"--output={out}", "--bootstrap=0", "--self_pd"])
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    entries = report["self_pd"]["models"]
    assert [e["name"] for e in entries] == ["run", "run_r1", "foreign"]  # comparison.model_name
    scores = {}
    for r, (name, folder) in enumerate((("run", "saved_model"), ("run_r1", "saved_model_1"))):
        earlier = os.path.join(out, "snapshots", name, "step_15", folder)
        final = str(workdir / folder)
        expected = pd.relative_pd(_full_scores(earlier, stream), _full_scores(final, stream))
        assert entries[r]["self_relative_pd"] == pytest.approx(expected, rel=1e-6)
        assert entries[r]["examples_apart"] == 240
        scores[name] = expected
    assert entries[2]["self_relative_pd"] is None and "not a trainer workdir" in entries[2]["unavailable"]
    mean = np.mean(list(scores.values()))
    assert report["self_pd"]["mean_self_relative_pd"] == pytest.approx(mean, rel=1e-6)
    assert report["self_pd"]["self_to_pair_pd"] == pytest.approx(mean / report["summary"]["mean_relative_pd"],
                                                                rel=1e-6)
    assert "## Jitter vs basin" in (out / "report.md").read_text()
    assert "self PD (each model against its checkpoint before the final one)" in result.stdout


def _full_scores(path, stream):
    from recsys.serving.scorer import SavedModelScorer

    examples = tf.constant(list(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(stream)), "GZIP")
                                .as_numpy_iterator()))
    return np.asarray(SavedModelScorer(path)(examples), np.float64)
