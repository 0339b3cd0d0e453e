"""Grid expansion of study configs: cells, order, seeds, per-layer β, and clear errors for bad grids."""
import pytest

from configs import study_smoke
from recsys.study import grid


def _config(**overrides):
    """The smoke study's config without its SmeLU ensembles and equal-budget cells (tests that want them say so)."""
    config = study_smoke.get_config()
    config.grid.ensemble_activations = ("relu",)
    config.grid.ensemble_equal_budget = False
    for key, value in overrides.items():
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
    return config


def test_grid_is_activations_times_noise_in_order():
    cells = grid.expand_grid(_config(**{
        "grid.activations": ("relu", "smelu:beta=0.5", "softplus:beta=2", "gsmelu:trainable=true"),
        "grid.noise": ("shuffle", "init", "shuffle+init"),
        "grid.replicas": 3,
        "grid.ensemble_k": 0,
    }))
    assert len(cells) == 12
    assert [c.noise for c in cells[:4]] == ["shuffle"] * 4 and cells[4].noise == "init"
    assert [c.activation for c in cells[:4]] == ["relu", "smelu", "softplus", "gsmelu"]
    assert [c.beta for c in cells[:4]] == [None, 0.5, 2.0, None]
    assert [c.learnable for c in cells[:4]] == [False, False, False, True]
    assert all(c.replicas == 3 and c.ensemble_k == 0 for c in cells)
    assert cells[1].cell_id == "shuffle/smelu_beta0.5" and cells[9].cell_id == "shuffle_init/smelu_beta0.5"
    assert [c.is_baseline for c in cells[:4]] == [True, False, False, False]
    assert cells[1].label == "SmeLU β=0.5" and cells[3].label == "gSmeLU (learned)"
    assert len({c.cell_id for c in cells}) == 12


def test_relu_ensembles_get_2k_replicas_and_an_equal_budget_cell():
    config = _config(**{"grid.activations": ("relu", "smelu:beta=1"), "grid.replicas": 2, "grid.ensemble_k": 3,
                        "grid.ensemble_replicas": 6, "grid.ensemble_equal_budget": True})
    config.train.model.embedding_dim = 12
    relu, smelu, budget = grid.expand_grid(config)
    assert (relu.replicas, relu.ensemble_k) == (6, 3)
    assert (smelu.replicas, smelu.ensemble_k) == (2, 0)
    assert budget.equal_budget and budget.replicas == 6 and budget.overrides == ()  # widths need features.json
    assert budget.cell_id == "shuffle/relu_ensemble_budget_k3"
    assert budget.label == "ReLU (1/3 budget)" and not budget.is_baseline


def test_equal_budget_cells_follow_the_ensemble_activations():
    config = _config(**{"grid.activations": ("relu", "smelu:beta=1", "swish:beta=1"), "grid.ensemble_k": 2,
                        "grid.ensemble_activations": ("relu", "smelu"), "grid.ensemble_equal_budget": True})
    cells = grid.expand_grid(config)
    assert [(c.label, c.replicas, c.ensemble_k) for c in cells] == [
        ("ReLU", 4, 2), ("SmeLU β=1", 4, 2), ("Swish β=1", 2, 0), ("ReLU (1/2 budget)", 4, 2),
        ("SmeLU β=1 (1/2 budget)", 4, 2)]
    budget = [c for c in cells if c.equal_budget]
    assert [c.spec for c in budget] == ["relu", "smelu:beta=1"]
    assert budget[1].cell_id == "shuffle/smelu_beta1_ensemble_budget_k2" and budget[1].group == "SmeLU (1/2 budget)"


def test_equal_budget_sizing_narrows_embeddings_and_hidden_layers_to_the_single_budget():
    from recsys.data.criteo import CAT_COLUMNS
    from recsys.data.features import criteo_feature_set
    from recsys.model import ModelSpec
    from recsys.model.parameters import count_parameters

    config = _config(**{"grid.ensemble_k": 2, "grid.ensemble_activations": ("relu", "smelu"),
                        "grid.ensemble_equal_budget": True})
    # The smoke data's vocabulary sizes (first 2,000 rows of the sample, + the out-of-vocabulary id).
    vocab = dict.fromkeys(CAT_COLUMNS, 10) | {"C2": 642, "C3": 982, "C7": 797, "C12": 1017, "C24": 839}
    features = criteo_feature_set(vocab)
    cells = grid.size_equal_budget(grid.expand_grid(config), config, features)
    single = count_parameters(ModelSpec.from_config(config.train.model, features))
    for cell in cells[2:]:
        overrides = dict(cell.overrides)
        assert overrides == {"model.embedding_dim": 2, "model.hidden_units": (10, 5)}
        model = config.train.model.copy_and_resolve_references()
        model.embedding_dim, model.hidden_units, model.activation = 2, (10, 5), cell.spec
        assert abs(2 * count_parameters(ModelSpec.from_config(model, features)) / single - 1.0) <= 0.05
    assert cells[:2] == grid.expand_grid(config)[:2]  # other cells untouched

    config.grid.ensemble_k, config.grid.ensemble_replicas = 3, 6  # 4-wide embeddings cannot be split in three
    with pytest.raises(ValueError, match=r"0\.74.× the single model's .* more than 5% off"):
        grid.size_equal_budget(grid.expand_grid(config), config, features)


def test_per_layer_beta_scales_rewrite_smooth_specs_only():
    config = _config(**{"grid.activations": ("relu", "smelu:beta=1", "swish:beta=2|clip=6"),
                        "grid.beta_layer_scales": (2.0, 0.5)})
    relu, smelu, swish = grid.expand_grid(config)
    assert relu.spec == "relu" and relu.beta_per_layer is None
    assert smelu.spec == "smelu:beta=2;smelu:beta=0.5"
    assert smelu.beta == 1.0 and smelu.beta_per_layer == (2.0, 0.5)
    assert swish.spec == "swish:beta=4|clip=6;swish:beta=1|clip=6" and swish.beta_per_layer == (4.0, 1.0)


def test_replica_seeds_follow_the_noise_source():
    assert [grid.replica_seeds("shuffle", r, 7, 100) for r in range(3)] == [(7, 100), (7, 101), (7, 102)]
    assert [grid.replica_seeds("init", r, 7, 100) for r in range(3)] == [(7, 100), (8, 100), (9, 100)]
    assert grid.replica_seeds("shuffle+init", 2, 7, 100) == (9, 102)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"grid.activations": ("relu", "smelux:beta=1")}, "Unknown activation name 'smelux'"),
        ({"grid.activations": ("relu", "smelu:beta=-1")}, "`beta` must be a positive finite number"),
        ({"grid.activations": ("smelu:beta=1",)}, "must include 'relu'"),
        ({"grid.replicas": 1}, "`grid.replicas` must be an integer >= 2"),
        ({"grid.ensemble_k": 3, "grid.replicas": 4}, "need at least 6 replicas; they have 4"),
        ({"grid.noise": ("shuffle", "dropout")}, "Received: 'dropout'"),
        ({"grid.activations": ("relu", "relu")}, "lists the same setting twice"),
        ({"grid.beta_layer_scales": (1.0, 2.0, 3.0)}, "one multiplier per hidden layer (2)"),
        ({"grid.ensemble_k": -1}, "`grid.ensemble_k` must be an integer >= 0"),
    ],
)
def test_bad_grids_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError) as error:
        grid.expand_grid(_config(**overrides))
    assert message in str(error.value)


def test_shuffle_noise_without_shuffled_input_is_refused():
    config = _config()
    config.train.data.shuffle = "none"
    with pytest.raises(ValueError, match="train.data.shuffle` is 'none'"):
        grid.expand_grid(config)
    config.grid.noise = ("init",)
    assert len(grid.expand_grid(config)) == 2


def test_distillation_and_codistillation_cells():
    cells = grid.expand_grid(_config(**{
        "grid.activations": ("relu", "smelu:beta=1", "gsmelu:trainable=true"),
        "grid.noise": ("shuffle", "init"),
        "grid.replicas": 3,
        "grid.ensemble_k": 0,
        "grid.distill_students": ("smelu:beta=1",),
        "grid.distill_weights": (0.3, 0.7),
        "grid.codistill_activations": ("relu",),
        "grid.codistill_weight": 0.5,
    }))
    students = [c for c in cells if c.role == "student"]
    codistilled = [c for c in cells if c.role == "codistilled"]
    assert [(c.noise, c.weight, c.replicas) for c in students] == [("init", 0.3, 3), ("init", 0.7, 3)]
    assert dict(students[0].overrides) == {"distill.teacher": "online", "distill.teacher_activation":
                                           "gsmelu:trainable=true", "distill.weight": 0.3,
                                           "distill.temperature": 1.0}
    assert students[1].label == "SmeLU β=1 student of gSmeLU (learned), w=0.7"
    assert students[0].group == "SmeLU student" and not students[0].is_baseline
    assert [(c.noise, c.replicas, dict(c.overrides)) for c in codistilled] == [
        ("shuffle", 2, {"codistill.weight": 0.5}), ("init", 2, {"codistill.weight": 0.5})]
    assert codistilled[0].label == "ReLU co-distilled, w=0.5" and not codistilled[0].is_baseline
    assert len({c.cell_id for c in cells}) == len(cells) == 6 + 2 + 2
    assert [c for c in cells if c.is_baseline] == [cells[0], cells[3]]


@pytest.mark.parametrize("overrides, message", [
    ({"grid.distill_students": ("smelu:beta=1",)}, "add 'init'"),
    ({"grid.distill_students": ("smelu:beta=1",), "grid.noise": ("init",), "grid.distill_weights": (1.0,)},
     "`grid.distill_weights` entries must be numbers in (0, 1). Received: 1.0"),
    ({"grid.distill_students": ("smelu:beta=1",), "grid.noise": ("init",), "grid.distill_teacher": "nope"},
     "'nope'"),
    ({"grid.codistill_activations": ("relu",), "grid.codistill_replicas": 1}, "codistill_replicas` must be"),
])
def test_bad_distillation_grids_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError) as error:
        grid.expand_grid(_config(**overrides))
    assert message in str(error.value)
