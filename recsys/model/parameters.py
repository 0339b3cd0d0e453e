"""Parameter counts of a CTR model from its `ModelSpec`, without building it, and narrowing to a budget.

`count_parameters(spec)` equals `build_model(spec).count_params()` (tests/model/test_parameters.py checks it):

    embeddings     Σ_f vocab_f · dim_f
    cross layer    full rank: n·n + n;  low rank p: n·p + p·n + n         (n = input width, tfrs `Cross`)
    hidden block   in·units + units (bias, absent under layer norm, whose offset replaces it)
                   + 2·units (layer norm γ, β) + the activation's own weights (learned gSmeLU; 0 for ReLU/SmeLU)
    output         last width + 1

Counting is analytic so that `narrow_to_budget` can try thousands of widths in milliseconds.

`narrow_to_budget(spec, k)`: the widths of one component of a k-ensemble with the single model's budget
(Shamir & Lin 2022, arXiv:2202.06499: ensembles cost accuracy *at equal parameter budget*). Every embedding
width and every hidden width is multiplied by one common factor s and rounded (at least 1), and s is chosen
so that k · params(component) is as close as possible to params(single). Embeddings scale like s and dense
layers like s², so s lies between 1/k (embedding-dominated models) and 1/√k (dense-dominated ones). The
search is exact over the rounding: it evaluates every s at which some rounded width changes.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

from recsys.model.ctr import EmbeddingSpec, ModelSpec


@functools.cache
def _activation_weights(activation: str) -> tuple[int, int]:
    """(fixed, per unit) weights of a hidden block's activation layer: (0, 0) for ReLU/SmeLU, (5, 0) for learned
    gSmeLU per layer, (0, 5) per unit. Found by building the layer at widths 1 and 2 (weights are at most linear
    in the width)."""
    from recsys.layers import activations

    counts = []
    for units in (1, 2):
        layer = activations.get(activation)
        layer.build((None, units))
        counts.append(int(sum(int(w.shape.num_elements()) for w in layer.weights)))
    return 2 * counts[0] - counts[1], counts[1] - counts[0]


def count_parameters(spec: ModelSpec) -> int:
    """Number of weights (trainable or not) of `build_model(spec)`; see the module docstring."""
    total = sum(e.vocab_size * e.dim for e in spec.embeddings)
    width = spec.input_dim
    for _ in range(spec.cross_layers):
        projection = spec.cross_projection_dim
        total += (width * width if not projection else 2 * width * projection) + width
    for units, activation in zip(spec.hidden_units, spec.activations, strict=True):
        total += width * units
        total += 2 * units if spec.normalization == "layer" else units
        if isinstance(activation, str):
            fixed, per_unit = _activation_weights(activation)
            total += fixed + per_unit * units
        elif activation is not None:
            raise ValueError(f"`count_parameters` counts activations given as spec strings. Received: {activation!r}")
        width = units
    return total + width + 1


class Narrowed(NamedTuple):
    """One component of an equal-budget k-ensemble (`narrow_to_budget`)."""

    spec: ModelSpec
    scale: float                # the common factor s (before rounding)
    parameters: int             # of one component
    single_parameters: int      # of the single model
    ratio: float                # k · parameters / single_parameters


def _scaled(width: int, scale: float) -> int:
    return max(1, int(round(width * scale)))


def scaled_spec(spec: ModelSpec, scale: float) -> ModelSpec:
    """`spec` with every embedding width and hidden width multiplied by `scale` and rounded (at least 1)."""
    embeddings = tuple(EmbeddingSpec(e.name, e.vocab_size, _scaled(e.dim, scale)) for e in spec.embeddings)
    hidden = tuple(_scaled(u, scale) for u in spec.hidden_units)
    return dataclasses.replace(spec, embeddings=embeddings, hidden_units=hidden)


def narrow_to_budget(spec: ModelSpec, k: int) -> Narrowed:
    """The component widths whose k copies have the parameter count of `spec` as closely as a common factor
    allows (module docstring). Ties go to the larger factor (wider components)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
    single = count_parameters(spec)
    widths = [e.dim for e in spec.embeddings] + list(spec.hidden_units)
    # round(w·s) changes at s = (n + ½)/w; between two such points every rounded width is constant, so the
    # candidates are 1 and one s just above each change point in (0, 1).
    candidates = {1.0}
    for width in set(widths):
        candidates.update((n + 0.5) / width + 1e-9 for n in range(width))
    best = None
    for scale in sorted(candidates, reverse=True):
        if scale > 1.0:
            continue
        component = scaled_spec(spec, scale)
        parameters = count_parameters(component)
        gap = abs(k * parameters - single)
        if best is None or gap < best[0]:
            best = (gap, scale, component, parameters)
    _, scale, component, parameters = best
    return Narrowed(component, scale, parameters, single, k * parameters / single)
