"""Parameter counts from a ModelSpec (against Keras' count_params) and narrowing to an equal-budget ensemble."""
import dataclasses

import pytest

from recsys.model import EmbeddingSpec, ModelSpec, build_model
from recsys.model.parameters import count_parameters, narrow_to_budget, scaled_spec

PAPER_HIDDEN = (1024, 512, 256, 128, 64, 16)
# Vocabulary sizes of the smoke study's features (C2, C3, C7, C12, C24) over the first 2,000 rows of the bundled
# sample, +1 for the out-of-vocabulary id: the smoke model's shape.
SMOKE_VOCABULARIES = (642, 982, 797, 1017, 839)


def _spec(vocabularies, dim, hidden, activation="relu", numeric=(), **options):
    embeddings = tuple(EmbeddingSpec(f"C{i + 1}", v, dim) for i, v in enumerate(vocabularies))
    return ModelSpec(embeddings=embeddings, numeric=tuple(numeric), hidden_units=tuple(hidden),
                     activations=(activation,) * len(hidden), **options)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"normalization": "none"},
        {"normalization": "weight"},
        {"cross_layers": 2},
        {"cross_layers": 1, "cross_projection_dim": 3},
        {"activation": "gsmelu:trainable=true"},
        {"activation": "gsmelu:trainable=true,granularity=unit"},
        {"activation": "smelu:beta=1", "numeric": ("I1", "I2")},
    ],
)
def test_count_matches_keras_count_params(options):
    options = dict(options)
    activation = options.pop("activation", "relu")
    numeric = options.pop("numeric", ())
    spec = _spec((11, 7, 30), 4, (9, 5), activation=activation, numeric=numeric, **options)
    assert count_parameters(spec) == build_model(spec).count_params()


def test_count_of_the_papers_toy_model_matches_keras():
    spec = _spec((1000,) * 5, 48, PAPER_HIDDEN)
    assert count_parameters(spec) == build_model(spec).count_params()
    narrowed = narrow_to_budget(spec, 3)
    assert count_parameters(narrowed.spec) == build_model(narrowed.spec).count_params() == narrowed.parameters


@pytest.mark.parametrize(
    ("vocabularies", "dim", "hidden", "k"),
    [
        (SMOKE_VOCABULARIES, 4, (16, 8), 2),
        ((1000,) * 5, 48, PAPER_HIDDEN, 3),         # dense layers hold most parameters
        ((1000,) * 5, 48, PAPER_HIDDEN, 2),
        ((4, 120, 5000, 60_000, 200_000), 48, PAPER_HIDDEN, 3),  # embeddings hold most parameters
    ],
)
def test_equal_budget_components_together_match_the_single_model_within_5_percent(vocabularies, dim, hidden, k):
    spec = _spec(vocabularies, dim, hidden)
    narrowed = narrow_to_budget(spec, k)
    single = count_parameters(spec)
    assert narrowed.single_parameters == single
    assert narrowed.parameters == count_parameters(narrowed.spec)
    assert abs(k * narrowed.parameters / single - 1.0) <= 0.05
    assert narrowed.ratio == pytest.approx(k * narrowed.parameters / single)
    # Both the embeddings and every hidden layer are narrower, by one common factor between 1/k and 1/√k.
    assert 1.0 / k - 0.05 <= narrowed.scale <= k ** -0.5 + 0.05
    assert narrowed.spec.embeddings[0].dim < dim
    assert all(n < u for n, u in zip(narrowed.spec.hidden_units, hidden, strict=True))
    assert narrowed.spec == scaled_spec(spec, narrowed.scale)


def test_narrowing_keeps_everything_but_the_widths():
    spec = _spec((50, 60), 8, (32, 16), activation="smelu:beta=1", normalization="weight", numeric=("I1",))
    narrowed = narrow_to_budget(spec, 2).spec
    assert dataclasses.replace(narrowed, embeddings=spec.embeddings, hidden_units=spec.hidden_units) == spec
    assert [e.vocab_size for e in narrowed.embeddings] == [50, 60]
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        narrow_to_budget(spec, 0)


def test_widths_too_small_to_split_get_the_closest_budget_and_say_how_far_off():
    # 4-wide embeddings hold most parameters: thirds are 1 or 2 wide, 26% below or 47% above the budget.
    narrowed = narrow_to_budget(_spec(SMOKE_VOCABULARIES, 4, (16, 8)), 3)
    assert narrowed.spec.embeddings[0].dim == 1 and narrowed.ratio == pytest.approx(0.74, abs=0.01)
