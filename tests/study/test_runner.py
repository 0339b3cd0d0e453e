"""Cell runner wiring without training: trainer configs per replica, replica-mode detection and SavedModel paths."""
import dataclasses
import json

import pytest

from configs import study_smoke
from recsys.study import grid, runner
from recsys.study.data import StudyData

DATA = StudyData(train="/data/part-0.tfrecord.gz,/data/part-1.tfrecord.gz", eval_files=("/data/part-2.tfrecord.gz",),
                 features_path="/data/features.json")


def _smoke_config():
    """The smoke study's config without its SmeLU ensembles and equal-budget cells: ReLU (4 replicas), SmeLU (2)."""
    config = study_smoke.get_config()
    config.grid.ensemble_activations = ("relu",)
    config.grid.ensemble_equal_budget = False
    return config


def test_separate_runs_get_per_replica_seeds_and_the_cell_activation(tmp_path):
    config = _smoke_config()
    config.train.seed.init, config.train.seed.data = 10, 20
    config.grid.noise = ("init",)
    smelu = grid.expand_grid(config)[-1]
    cell = runner.CellRunner(config, smelu, str(tmp_path), DATA, replica_mode=False)
    runs = cell.trainer_runs()
    assert [w for w, _ in runs] == [str(tmp_path / "cells" / "init" / "smelu_beta1" / f"replica_{r}") for r in (0, 1)]
    assert [(c.seed.init, c.seed.data) for _, c in runs] == [(10, 20), (11, 20)]
    assert all(c.model.activation == "smelu:beta=1" and c.data.train == DATA.train for _, c in runs)
    assert all(c.data.features == DATA.features_path for _, c in runs)
    assert cell.saved_models() == [w + "/saved_model" for w, _ in runs]
    assert config.train.model.activation == "relu"  # the study config itself is not modified
    assert not cell.trained()


def test_equal_budget_cell_trains_the_sized_widths_and_refuses_unsized_ones(tmp_path):
    config = _smoke_config()
    config.grid.ensemble_equal_budget = True
    budget = grid.expand_grid(config)[-1]
    with pytest.raises(ValueError, match="needs its widths from `grid.size_equal_budget`"):
        runner.CellRunner(config, budget, str(tmp_path), DATA, replica_mode=False).trainer_runs()
    sized = dataclasses.replace(budget, overrides=(("model.embedding_dim", 2), ("model.hidden_units", (10, 5))))
    _, trainer_config = runner.CellRunner(config, sized, str(tmp_path), DATA, replica_mode=False).trainer_runs()[0]
    assert trainer_config.model.embedding_dim == 2 and tuple(trainer_config.model.hidden_units) == (10, 5)
    assert tuple(config.train.model.hidden_units) == (16, 8)


def test_replica_mode_is_one_trainer_run_with_replica_keys(tmp_path):
    config = _smoke_config()
    assert runner.use_replica_mode(config)
    relu = grid.expand_grid(config)[0]
    cell = runner.CellRunner(config, relu, str(tmp_path), DATA, replica_mode=True)
    [(workdir, trainer_config)] = cell.trainer_runs()
    assert workdir.endswith("cells/shuffle/relu/train")
    assert (trainer_config.replicas.count, trainer_config.replicas.noise) == (4, "shuffle")
    # The SavedModels follow the trainer's naming.
    assert cell.saved_models() == [f"{workdir}/saved_model"] + [f"{workdir}/saved_model_{r}" for r in (1, 2, 3)]

    config.study.replica_mode = "separate"
    assert not runner.use_replica_mode(config)


def test_replica_mode_choice_is_checked():
    config = _smoke_config()
    config.study.replica_mode = "parallel"
    with pytest.raises(ValueError, match="`study.replica_mode` must be one of"):
        runner.use_replica_mode(config)


def test_a_finished_run_with_another_config_is_refused(tmp_path):
    config = _smoke_config()
    smelu = grid.expand_grid(config)[-1]
    cell = runner.CellRunner(config, smelu, str(tmp_path), DATA, replica_mode=False)
    workdir, trainer_config = cell.trainer_runs()[1]
    (tmp_path / workdir).mkdir(parents=True)
    saved = json.loads(trainer_config.to_json())
    saved["log_every_steps"] = 999  # a key that does not change what is computed: accepted
    (tmp_path / workdir / "config.json").write_text(json.dumps(saved))
    cell.check_not_stale()
    saved["model"]["activation"] = "smelu:beta=2"
    (tmp_path / workdir / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"replica_1 was trained with a different config \(model.activation: "
                                         r"'smelu:beta=2' -> 'smelu:beta=1'\)"):
        cell.check_not_stale()
    # A key the saved run lacks is a difference too: the study refuses exactly what the trainer would refuse to
    # resume (one rule, loop.config_differences).
    saved["model"]["activation"] = "smelu:beta=1"
    del saved["replicas"]
    (tmp_path / workdir / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"replica_1 was trained with a different config \(replicas: None -> "):
        cell.check_not_stale()

