"""The training-mode seam (`recsys.training.modes`): selection from the config and the typed step results."""
import numpy as np
import pytest
import tensorflow as tf

from recsys.training import modes, parameter_server
from recsys.training.loop import Trainer
from recsys.training.replicas import ReplicaPlan
from recsys.training.task import StepResult
from tests.training.helpers import small_config


@pytest.mark.parametrize("overrides, expected", [
    ({}, modes.SharedOrderMode),
    ({"replicas.count": 2, "replicas.noise": "init"}, modes.SharedOrderMode),
    ({"replicas.count": 2, "replicas.noise": "init", "codistill.weight": 0.5}, modes.SharedOrderMode),
    ({"replicas.count": 2, "replicas.noise": "shuffle"}, modes.PerReplicaOrderMode),
    ({"replicas.count": 2, "replicas.noise": "shuffle+init", "codistill.weight": 0.5}, modes.PerReplicaOrderMode),
    ({"distill.teacher": "online"}, modes.DistillMode),
    ({"replicas.count": 2, "replicas.noise": "init", "distill.teacher": "online"}, modes.DistillMode),
    ({"strategy": "parameter_server"}, modes.ParameterServerMode),
])
def test_one_mode_is_selected_from_the_config(overrides, expected):
    config = small_config("unused", **overrides)
    mode = modes.select_mode(config, ReplicaPlan.from_config(config))
    assert type(mode) is expected


def _check(result: StepResult, models: int, batch: int, first_position: int | None) -> None:
    assert isinstance(result, StepResult)
    for field in (result.labels, result.probabilities, result.losses, result.positions):
        assert isinstance(field, list) and len(field) == models
    assert result.size == batch
    for labels, probabilities, positions in zip(result.labels, result.probabilities, result.positions, strict=True):
        assert labels.shape == probabilities.shape == positions.shape == (batch,)
        assert np.all((probabilities > 0) & (probabilities < 1))
    assert all(np.isfinite(loss) for loss in result.losses)
    if first_position is not None:  # one order: every model's positions are the batch's place in the stream
        for positions in result.positions:
            np.testing.assert_array_equal(positions, np.arange(first_position, first_position + batch))


@pytest.mark.parametrize("overrides, models, one_order", [
    ({}, 1, True),
    ({"replicas.count": 2, "replicas.noise": "init", "codistill.weight": 0.5}, 2, True),
    ({"replicas.count": 2, "replicas.noise": "shuffle"}, 2, False),
    ({"replicas.count": 2, "replicas.noise": "shuffle+init", "codistill.weight": 0.5}, 2, False),
    ({"replicas.count": 2, "replicas.noise": "init", "distill.teacher": "online"}, 3, True),
])
def test_every_synchronous_mode_yields_typed_step_results(stream, tmp_path, overrides, models, one_order,
                                                           restore_determinism):
    trainer = Trainer(small_config(stream, **overrides), str(tmp_path / "run"))
    assert len(trainer.states) == models
    if one_order:
        results = trainer.mode.results(step=3, examples=192)  # resumes mid-stream: positions continue from there
        first, second = next(results), next(results)
        _check(first, models, 64, 192)
        _check(second, models, 64, 256)
        assert all(labels is first.labels[0] for labels in first.labels)  # one array shared, not copies
        return
    results = trainer.mode.results(step=0, examples=0)
    steps = [next(results) for _ in range(5)]  # 320 examples: the first shuffle window (300) is complete
    for result in steps:
        _check(result, models, 64, None)
    seen = [np.concatenate([result.positions[r] for result in steps]) for r in range(models)]
    # Every replica scored exactly the first window's examples, each in its own order.
    for positions in seen:
        np.testing.assert_array_equal(np.sort(positions[positions < 300]), np.arange(300))
    assert not np.array_equal(seen[0], seen[1])


class _InlineCoordinator:
    """Stands in for a ClusterCoordinator: runs each scheduled step at once, in this process."""

    class _Remote:
        def __init__(self, value):
            self.value = value

        def fetch(self):
            return tf.nest.map_structure(lambda t: t.numpy(), self.value)

    def schedule(self, function, args):
        return self._Remote(function(*args))


def test_parameter_server_steps_yield_typed_step_results(stream, tmp_path):
    trainer = Trainer(small_config(stream, **{"data.max_examples": 192}), str(tmp_path / "run"))
    results = list(parameter_server.coordinator_results(
        tf.distribute.get_strategy(), _InlineCoordinator(), trainer.states, "label",
        trainer.source.dataset(64, start_offset=64), first_step=1, first_example=64, checkpoint_every_steps=5,
        max_examples=192))
    assert len(results) == 2
    _check(results[0], 1, 64, 64)
    _check(results[1], 1, 64, 128)


def test_modes_name_their_outputs(stream, tmp_path):
    distilled = Trainer(small_config(stream, **{"replicas.count": 2, "replicas.noise": "init",
                                                "distill.teacher": "online"}), str(tmp_path / "distilled"))
    assert distilled.mode.export_names() == ["saved_model", "saved_model_1", "saved_model_teacher"]
    assert distilled.saved_model_paths() == [str(tmp_path / "distilled" / "saved_model"),
                                             str(tmp_path / "distilled" / "saved_model_1")]
    fields = distilled.mode.metrics_fields(progressive=False)
    assert set(fields) == {"distill"} and fields["distill"].teacher == "online"
    plain = modes.select_mode(small_config(stream), ReplicaPlan.from_config(small_config(stream)))
    assert plain.export_names() == ["saved_model"] and plain.metrics_fields(progressive=True) == {}
