"""The study grid: which cells (activation × noise source, plus ReLU ensembles) a study config trains.

A *cell* is one activation setting trained R times (its replicas) under one *noise source*:

- ``shuffle``: every replica starts from the same initial weights (same init seed) and sees the data in its own
  order (shuffled within windows with a per-replica seed) — the paper's setting for PD between "identically
  initialised models that differ only in data shuffling";
- ``init``: the replicas start from different initial weights and see the data in the same order;
- ``shuffle+init``: both differ.

For the activations named in ``grid.ensemble_activations`` (ReLU by default) and ``grid.ensemble_k`` = k > 0,
the cell also yields a k-ensemble entry: the average of k replicas compared with the average of k *other*
replicas (needs at least 2k replicas). With ``grid.ensemble_equal_budget`` each of those activations also gets a
cell of narrower components: embeddings *and* hidden layers scaled by one common factor so that k components
together have the single model's parameter count within 5% (`size_equal_budget`, once `features.json` is known:
embeddings hold most parameters; the rule is `recsys.model.parameters.narrow_to_budget`). The paper compares
ensembles at equal parameter budget.

`expand_grid` validates the whole grid before anything is trained: an unknown activation, R < 2 or an ensemble
without 2k replicas raise `ValueError` naming the key and the value. Its equal-budget cells have no widths yet;
`size_equal_budget` sets them from the data's `features.json` before they are trained.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

from recsys.training.noise import NOISE_SOURCES, parse_noise
from recsys.training.noise import replica_seeds as replica_seeds

BASELINE_ACTIVATION = "relu"
# Display names of the activation families (cell labels, tables, plot legends).
DISPLAY_NAMES = {
    "relu": "ReLU",
    "smelu": "SmeLU",
    "gsmelu": "gSmeLU",
    "rescu": "RESCU",
    "softplus": "Softplus",
    "swish": "Swish",
    "gelu": "GELU",
}
_MAX_SLUG = 80


@dataclasses.dataclass(frozen=True)
class Cell:
    """One trained setting of the study.

    Attributes:
      cell_id: folder name under `<workdir>/cells/` ("<noise>/<activation slug>").
      activation: the activation family ("relu", "smelu", ...), of the first hidden layer's spec.
      spec: the trainer's `model.activation` value: one spec, or one per hidden layer joined by ';'.
      beta: the β of the spec (the base β when `beta_per_layer` is set); None when the spec has none.
      beta_per_layer: the β of each hidden layer when they differ, else None.
      learnable: the activation has trainable parameters (learned gSmeLU).
      noise: one of NOISE_SOURCES.
      replicas: R, the number of models trained.
      ensemble_k: k > 0 when this cell's replicas also form k-ensembles (needs R >= 2k).
      equal_budget: components of a k-ensemble at the single model's parameter budget: `model.embedding_dim` and
        `model.hidden_units` narrowed (set in `overrides` by `size_equal_budget`).
      overrides: trainer config values set for this cell beyond activation/seeds, as (("model.embedding_dim", 16),).
      role: "" (plain replicas), "student" (distilled from an online teacher trained in the same job, which
        is `teacher`) or "codistilled" (the replicas learn from each other's predictions).
      teacher: the online teacher's activation spec of a student cell.
      weight: the distillation / co-distillation weight of a student / co-distilled cell.
    """

    cell_id: str
    activation: str
    spec: str
    beta: float | None
    beta_per_layer: tuple[float, ...] | None
    learnable: bool
    noise: str
    replicas: int
    ensemble_k: int = 0
    equal_budget: bool = False
    overrides: tuple[tuple[str, Any], ...] = ()
    role: str = ""
    teacher: str | None = None
    weight: float | None = None

    @property
    def label(self) -> str:
        """A short human name: "SmeLU β=1", "gSmeLU (learned)", "ReLU (1/3 budget)", "SmeLU β=1 student of gSmeLU
        (learned), w=0.5", "ReLU co-distilled, w=0.5"."""
        name = self._base_label()
        if self.role == "student":
            teacher_family, learnable = _describe_teacher(self.teacher)
            teacher = DISPLAY_NAMES.get(teacher_family, teacher_family) + (" (learned)" if learnable else "")
            name += f" student of {teacher}, w={_fmt_number(self.weight)}"
        elif self.role == "codistilled":
            name += f" co-distilled, w={_fmt_number(self.weight)}"
        return name

    @property
    def group(self) -> str:
        """The line of the PD-accuracy plot: the family and variant, without β or weight."""
        group = DISPLAY_NAMES.get(self.activation, self.activation)
        group += " (learned)" if self.learnable else ""
        group += " (β per layer)" if self.beta_per_layer else ""
        group += f" (1/{self.ensemble_k} budget)" if self.equal_budget else ""
        group += {"student": " student", "codistilled": " co-distilled"}.get(self.role, "")
        return group

    def _base_label(self) -> str:
        name = DISPLAY_NAMES.get(self.activation, self.activation)
        if self.learnable:
            name += " (learned)"
        if self.beta_per_layer is not None:
            name += " β/layer=" + ",".join(_fmt_number(b) for b in self.beta_per_layer)
        elif self.beta is not None:
            name += f" β={_fmt_number(self.beta)}"
        if self.equal_budget:
            name += f" (1/{self.ensemble_k} budget)"
        return name

    @property
    def is_baseline(self) -> bool:
        """The ReLU cell other cells of the same noise are compared with."""
        return (self.activation == BASELINE_ACTIVATION and not self.equal_budget and self.beta_per_layer is None
                and ";" not in self.spec and not self.role)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["beta_per_layer"] = list(self.beta_per_layer) if self.beta_per_layer is not None else None
        data["overrides"] = dict(self.overrides)
        data["label"] = self.label
        return data


def _describe_teacher(spec: str | None) -> tuple[str, bool]:
    """(family, learnable) of a teacher spec (its first layer's, when given per layer)."""
    from recsys.layers import activations

    parsed = activations.parse_spec((spec or "").split(";")[0])
    return parsed.name, bool(parsed.params.get("trainable", False))


def _fmt_number(value: float) -> str:
    return f"{value:g}"


def _slug(text: str) -> str:
    slug = text.lower().replace(";", "__").replace("+", "_")
    slug = re.sub(r"[^a-z0-9_.-]+", "_", slug.replace("=", "")).strip("_")
    if len(slug) > _MAX_SLUG:
        slug = slug[:_MAX_SLUG - 9] + "_" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return slug


def _layer_specs(spec: str, layers: int) -> list[str]:
    """The per-layer specs of `spec`, checked by building each activation once (unknown names fail here)."""
    from recsys.layers import activations
    from recsys.model.ctr import parse_activations

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"`grid.activations` entries must be non-empty spec strings. Received: {spec!r}")
    try:
        items = list(parse_activations(spec, layers))
        for item in items:
            activations.get(item)
    except ValueError as e:
        raise ValueError(f"`grid.activations` entry {spec!r} is not a valid activation spec: {e}") from None
    return items


def describe_spec(spec: str, layers: int) -> tuple[str, float | None, tuple[float, ...] | None, bool]:
    """(family, β, per-layer β or None, learnable) of an activation spec (recsys.layers.activations syntax)."""
    from recsys.layers import activations

    parsed = [activations.parse_spec(item) for item in _layer_specs(spec, layers)]
    family = parsed[0].name
    betas = [p.params.get("beta") for p in parsed]
    learnable = any(bool(p.params.get("trainable", False)) for p in parsed)
    per_layer = None
    beta = betas[0] if isinstance(betas[0], float) else None
    if len({repr(b) for b in betas}) > 1 and all(isinstance(b, float) for b in betas):
        per_layer = tuple(betas)
    return family, beta, per_layer, learnable


def scale_beta_per_layer(spec: str, scales: Sequence[float], layers: int) -> str:
    """`spec` with its β multiplied by `scales[l]` in hidden layer l ("larger β near the input").

    Specs without a β (ReLU) or already given per layer are returned unchanged.
    """
    from recsys.layers import activations

    if len(scales) != layers:
        raise ValueError(
            f"`grid.beta_layer_scales` needs one multiplier per hidden layer ({layers}). Received {len(scales)}: "
            f"{tuple(scales)!r}"
        )
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (math.isfinite(s) and s > 0):
            raise ValueError(f"`grid.beta_layer_scales` must hold positive numbers. Received: {tuple(scales)!r}")
    if ";" in spec:
        return spec
    parsed = activations.parse_spec(spec)
    if "beta" not in parsed.params:
        return spec
    items = []
    for scale in scales:
        params = dict(parsed.params, beta=parsed.params["beta"] * float(scale))
        text = parsed.name + ":" + ",".join(f"{k}={_param_text(v)}" for k, v in params.items())
        if parsed.clip is not None:
            text += f"|clip={parsed.clip:g}"
        items.append(text)
    return ";".join(items)


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ",".join(f"{v:g}" for v in value) + "]"
    return str(value)


def _positive_int(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{key}` must be an integer >= {minimum}. Received: {key}={value!r}")
    return value


def expand_grid(config: Any) -> list[Cell]:
    """The cells of a study config (`config.grid`, `config.train`), validated, in training order.

    Order: for each noise source, the activations in the order given (ReLU first when listed first), then the
    equal-budget ensemble cells in the same order (without widths: see `size_equal_budget`).

    Raises:
      ValueError: an unknown noise source or activation, fewer than 2 replicas, an ensemble whose cell has
        fewer than 2k replicas, no ReLU cell (the accuracy baseline), duplicate cells, or a shuffle noise
        source with `train.data.shuffle = "none"` (replicas would see identical streams).
    """
    grid = config.grid
    layers = len(tuple(config.train.model.hidden_units))
    replicas = grid.replicas
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 2:
        raise ValueError(
            "`grid.replicas` must be an integer >= 2: PD needs at least one pair of models. "
            f"Received: replicas={replicas!r}"
        )
    noises = tuple(grid.noise)
    if not noises:
        raise ValueError(f"`grid.noise` must name at least one noise source of {NOISE_SOURCES}. Received: ()")
    parsed = [parse_noise(noise, key="`grid.noise` entries") for noise in noises]
    if len(set(noises)) != len(noises):
        raise ValueError(f"`grid.noise` lists a noise source twice. Received: {noises!r}")
    if any(noise.shuffle for noise in parsed) and config.train.data.shuffle == "none":
        raise ValueError(
            "A `shuffle` noise source needs shuffled input, but `train.data.shuffle` is 'none': every replica "
            "would see the same stream. Set --config.train.data.shuffle=window."
        )
    specs = tuple(grid.activations)
    if not specs:
        raise ValueError("`grid.activations` must list at least one activation spec (and 'relu', the baseline).")
    scales = tuple(grid.beta_layer_scales)
    k = _positive_int("grid.ensemble_k", grid.ensemble_k, minimum=0)
    ensemble_families = {name.lower() for name in grid.ensemble_activations}
    ensemble_replicas = _positive_int("grid.ensemble_replicas", grid.ensemble_replicas, minimum=0)

    described = []
    for spec in specs:
        family, beta, _, learnable = describe_spec(spec, layers)  # validates before any rewriting
        trained = scale_beta_per_layer(spec, scales, layers) if scales else spec
        _, _, per_layer, _ = describe_spec(trained, layers)
        described.append((trained, family, beta, per_layer, learnable))
    if not any(family == BASELINE_ACTIVATION and ";" not in spec for spec, family, *_ in described):
        raise ValueError(
            "`grid.activations` must include 'relu': it is the baseline of `auc_loss_change_pct`. "
            f"Received: {specs!r}"
        )

    if k and grid.ensemble_equal_budget and config.train.model.embedding_dims:
        raise ValueError(
            "`grid.ensemble_equal_budget` narrows `train.model.embedding_dim`; it cannot be combined with "
            f"per-feature `train.model.embedding_dims` ({config.train.model.embedding_dims!r})."
        )
    cells: list[Cell] = []
    for noise in noises:
        budget_cells = []
        for spec, family, beta, per_layer, learnable in described:
            ensemble = k if (k and family in ensemble_families) else 0
            count = max(replicas, ensemble_replicas) if ensemble else replicas
            if ensemble and count < 2 * ensemble:
                raise ValueError(
                    f"`grid.ensemble_k={ensemble}` compares the mean of {ensemble} replicas with the mean of "
                    f"{ensemble} other replicas, so the {family} cells need at least {2 * ensemble} replicas; "
                    f"they have {count} (grid.replicas={replicas}, grid.ensemble_replicas={ensemble_replicas})."
                )
            cells.append(Cell(
                cell_id=f"{_slug(noise)}/{_slug(spec)}", activation=family, spec=spec, beta=beta,
                beta_per_layer=per_layer, learnable=learnable, noise=noise, replicas=count, ensemble_k=ensemble,
            ))
            if ensemble and grid.ensemble_equal_budget:
                budget_cells.append(Cell(
                    cell_id=f"{_slug(noise)}/{_slug(spec)}_ensemble_budget_k{k}", activation=family, spec=spec,
                    beta=beta, beta_per_layer=per_layer, learnable=learnable, noise=noise,
                    replicas=max(count, 2 * k), ensemble_k=k, equal_budget=True,
                ))
        cells += budget_cells
    cells += _distillation_cells(config, noises, layers)
    seen: dict[str, str] = {}
    for cell in cells:
        if cell.cell_id in seen:
            raise ValueError(f"`grid.activations` lists the same setting twice: {seen[cell.cell_id]!r} and "
                             f"{cell.spec!r} ({cell.noise}).")
        seen[cell.cell_id] = cell.spec
    return cells


#: The most an equal-budget ensemble's parameter count may differ from the single model's (issue 14: within 5%).
EQUAL_BUDGET_TOLERANCE = 0.05


def size_equal_budget(cells: Sequence[Cell], config: Any, features: Any) -> list[Cell]:
    """`cells` with the widths of every equal-budget cell set in its overrides (`model.embedding_dim`,
    `model.hidden_units`), from the single model of `config.train.model` with the vocabularies of `features`
    (a `recsys.data.features.FeatureSet`) and `recsys.model.parameters.narrow_to_budget`.

    Raises:
      ValueError: no common factor brings k components within `EQUAL_BUDGET_TOLERANCE` of the single model's
        parameter count (e.g. a model too small to narrow).
    """
    from recsys.model.ctr import ModelSpec
    from recsys.model.parameters import narrow_to_budget

    sized = []
    for cell in cells:
        if not cell.equal_budget:
            sized.append(cell)
            continue
        model_config = copy.deepcopy(config.train.model)
        model_config.activation = cell.spec
        narrowed = narrow_to_budget(ModelSpec.from_config(model_config, features), cell.ensemble_k)
        if abs(narrowed.ratio - 1.0) > EQUAL_BUDGET_TOLERANCE:
            raise ValueError(
                f"`grid.ensemble_equal_budget`: {cell.ensemble_k} narrowed components of {cell.spec!r} have "
                f"{narrowed.ratio:.3f}× the single model's {narrowed.single_parameters:,} parameters at best (scale "
                f"{narrowed.scale:.3f}); more than {EQUAL_BUDGET_TOLERANCE:.0%} off. Use a wider model or a smaller "
                "`grid.ensemble_k`."
            )
        dims = {e.dim for e in narrowed.spec.embeddings}
        overrides = (("model.embedding_dim", dims.pop() if dims else int(config.train.model.embedding_dim)),
                     ("model.hidden_units", tuple(narrowed.spec.hidden_units)))
        sized.append(dataclasses.replace(cell, overrides=overrides))
    return sized


def _weight(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"`{key}` entries must be numbers in (0, 1). Received: {value!r}")
    return float(value)


def _distillation_cells(config: Any, noises: Sequence[str], layers: int) -> list[Cell]:
    """The cells of issue #9's comparison (`grid.distill_*`, `grid.codistill_*`; docs/study.md, "Distillation").

    Students: each spec of `grid.distill_students` × each weight of `grid.distill_weights`, trained as R replicas
    that all learn from one online teacher (`grid.distill_teacher`) trained in the same job on the same order.
    That needs one order for every model, so student cells exist under the `init` noise only.
    Co-distilled: each family of `grid.codistill_activations`, `grid.codistill_replicas` replicas pulled towards
    each other's predictions with `grid.codistill_weight`, under every noise source.
    """
    grid_config = config.grid
    students = tuple(grid_config.get("distill_students", ()))
    codistilled = tuple(grid_config.get("codistill_activations", ()))
    cells: list[Cell] = []
    if students:
        if "init" not in noises:
            raise ValueError(
                "`grid.distill_students` are trained with their online teacher on one order (noise 'init'), but "
                f"`grid.noise` is {tuple(noises)!r}: add 'init'."
            )
        teacher = grid_config.distill_teacher
        _layer_specs(teacher, layers)
        temperature = float(grid_config.distill_temperature)
        if not temperature > 0:
            raise ValueError(f"`grid.distill_temperature` must be positive. Received: {temperature!r}")
        weights = [_weight("grid.distill_weights", w) for w in grid_config.distill_weights]
        if not weights:
            raise ValueError("`grid.distill_weights` must list at least one weight in (0, 1) for the students.")
        for spec in students:
            family, beta, per_layer, learnable = describe_spec(spec, layers)
            for weight in weights:
                cells.append(Cell(
                    cell_id=f"init/{_slug(spec)}__student_of_{_slug(teacher)}_w{weight:g}", activation=family,
                    spec=spec, beta=beta, beta_per_layer=per_layer, learnable=learnable, noise="init",
                    replicas=int(grid_config.replicas), role="student", teacher=teacher, weight=weight,
                    overrides=(("distill.teacher", "online"), ("distill.teacher_activation", teacher),
                               ("distill.weight", weight), ("distill.temperature", temperature)),
                ))
    if codistilled:
        weight = _weight("grid.codistill_weight", grid_config.codistill_weight)
        count = _positive_int("grid.codistill_replicas", grid_config.codistill_replicas, minimum=2)
        for noise in noises:
            for spec in codistilled:
                family, beta, per_layer, learnable = describe_spec(spec, layers)
                cells.append(Cell(
                    cell_id=f"{_slug(noise)}/{_slug(spec)}__codistill_w{weight:g}", activation=family, spec=spec,
                    beta=beta, beta_per_layer=per_layer, learnable=learnable, noise=noise, replicas=count,
                    role="codistilled", weight=weight, overrides=(("codistill.weight", weight),),
                ))
    return cells
