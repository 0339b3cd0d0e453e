"""Per-cell numbers of the study from held-out predictions: PD between replicas, ensembles, accuracy.

Everything is computed with `recsys.metrics` (the comparator's and the trainer's library), PD as fractions.

PD of a cell. R replicas give R(R−1)/2 pairs; `relative_pd` is the mean over all pairs of the relative PD
(Shamir & Lin 2022, eq. 2) on the held-out examples; the median, minimum and maximum over pairs show the
spread and the tail (single pairs can diverge far more than the typical one).

Confidence interval (`relative_pd_ci`): a two-level bootstrap over **replicas and examples**
(`recsys.metrics.bootstrap.replica_bootstrap_ci`). Each resample draws Poisson(1) weights for the examples
and R replicas with replacement; the statistic is the weighted mean PD over the pairs of *distinct* drawn
replicas (pair (i, j) counts c_i·c_j times when replica i was drawn c_i times). Resampling replicas rather
than pairs respects that pairs sharing a replica are correlated. With R = 2 there is one pair and the
interval covers the examples only; it says nothing about how another pair would differ.

Ensembles (`ensemble_summary`): with R ≥ 2k replicas, every split into two disjoint groups of k (all of
them, or `max_splits` drawn with a fixed seed) gives one ensemble pair: the mean of the group's
probabilities vs the other group's. Their PD mean/median/max, and a bootstrap over splits and examples
(`recsys.metrics.bootstrap.pair_bootstrap_ci`).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recsys.metrics import accuracy, bootstrap, paired
from recsys.metrics import pd as pd_lib


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def accuracy_of(labels: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """Held-out AUC, logloss and calibration of one model's (or ensemble's) predictions."""
    positives = int(np.count_nonzero(labels))
    both = 0 < positives < labels.size
    return {
        "auc": _number(accuracy.auc(labels, p)) if both else None,
        "logloss": _number(accuracy.logloss(labels, p)),
        "calibration": _number(accuracy.calibration(labels, p)) if positives else None,
    }


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _number(np.mean(known)) if known else None


def _ci(interval: bootstrap.Interval | None) -> list[float] | None:
    """An interval as results.json stores it: [low, high], or None when the bootstrap has none."""
    return None if interval is None else [interval.low, interval.high]


def _spread(values: np.ndarray) -> dict[str, float | None]:
    return {
        "relative_pd_median": _number(np.median(values)),
        "relative_pd_min": _number(values.min()),
        "relative_pd_max": _number(values.max()),
    }


def replica_summary(
    predictions: np.ndarray, labels: np.ndarray, resamples: int = 200, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """PD between the R replicas of a cell (mean, CI, spread, every pair) and their mean held-out accuracy."""
    count = predictions.shape[0]
    if count < 2:
        raise ValueError(f"A cell needs at least 2 replicas to measure PD. Received predictions for {count}")
    pairs = pd_lib.all_pairs(count)
    terms = pd_lib.pair_terms(predictions, pairs)
    per_pair = terms.mean(axis=1)
    absolute = [pd_lib.absolute_pd(predictions[i], predictions[j]) for i, j in pairs]
    models = [accuracy_of(labels, p) for p in predictions]
    return {
        "relative_pd": _number(per_pair.mean()),
        "relative_pd_ci": _ci(bootstrap.replica_bootstrap_ci(terms, pairs, count, resamples, confidence, seed)),
        **_spread(per_pair),
        "relative_pd_pairs": [{"a": i, "b": j, "relative_pd": _number(v)}
                              for (i, j), v in zip(pairs, per_pair, strict=True)],
        "absolute_pd": _number(np.mean(absolute)),
        "pairs": len(pairs),
        "auc": _mean([m["auc"] for m in models]),
        "logloss": _mean([m["logloss"] for m in models]),
        "calibration": _mean([m["calibration"] for m in models]),
        "auc_replicas": [m["auc"] for m in models],
        "logloss_replicas": [m["logloss"] for m in models],
        "calibration_replicas": [m["calibration"] for m in models],
        # Diagnostic: the PD left once every replica's logits are shifted by one constant to the same mean
        # prediction. What it removes is a global calibration offset (e.g. from the last batches of an online
        # pass); what is left is disagreement in how the models rank and spread examples.
        "relative_pd_mean_matched": _number(np.mean(pd_lib.pair_terms(mean_matched(predictions), pairs).mean(axis=1))),
    }


def mean_matched(predictions: np.ndarray, target: float | None = None, iterations: int = 50) -> np.ndarray:
    """Each row's logits shifted by a constant b_r so that mean(sigmoid(logit + b_r)) = `target`.

    `target` defaults to the mean prediction over all rows. Newton's method on the monotone mean in b.
    """
    clipped = np.clip(predictions, 1e-7, 1.0 - 1e-7)
    logits = np.log(clipped) - np.log1p(-clipped)
    goal = float(np.mean(clipped)) if target is None else float(target)
    shift = np.zeros((predictions.shape[0], 1))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(logits + shift)))
        gap = p.mean(axis=1, keepdims=True) - goal
        slope = (p * (1.0 - p)).mean(axis=1, keepdims=True)
        shift -= gap / np.maximum(slope, 1e-12)
        if np.all(np.abs(gap) < 1e-12):
            break
    return 1.0 / (1.0 + np.exp(-(logits + shift)))


def ensemble_splits(count: int, k: int, max_splits: int = 50, seed: int = 0) -> list[tuple[tuple[int, ...], ...]]:
    """Unordered pairs of disjoint k-subsets of `count` replicas: all of them, or `max_splits` drawn at random.

    For count = 2k there are C(2k, k)/2 (10 for k = 3). The draw is seeded, so reruns use the same splits.
    """
    if k < 1 or count < 2 * k:
        raise ValueError(f"k-ensembles need k >= 1 and at least 2k replicas. Received k={k}, replicas={count}")
    splits = []
    for first in itertools.combinations(range(count), k):
        rest = [r for r in range(count) if r not in first]
        for second in itertools.combinations(rest, k):
            if first < second:
                splits.append((first, second))
    if len(splits) > max_splits:
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(splits), size=max_splits, replace=False))
        splits = [splits[i] for i in chosen]
    return splits


def ensemble_summary(
    predictions: np.ndarray,
    labels: np.ndarray,
    k: int,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    max_splits: int = 50,
) -> dict[str, Any]:
    """PD between disjoint k-ensembles (mean of k replicas' probabilities) and the ensembles' accuracy."""
    splits = ensemble_splits(predictions.shape[0], k, max_splits, seed)
    groups = sorted({group for split in splits for group in split})
    averaged = {group: predictions[list(group)].mean(axis=0) for group in groups}
    terms = np.stack([pd_lib.relative_pd_terms(averaged[a], averaged[b]) for a, b in splits])
    per_split = terms.mean(axis=1)
    models = [accuracy_of(labels, averaged[group]) for group in groups]
    matched = dict(zip(groups, mean_matched(np.stack([averaged[g] for g in groups])), strict=True))
    return {
        "relative_pd": _number(per_split.mean()),
        "relative_pd_ci": _ci(bootstrap.pair_bootstrap_ci(terms, resamples, confidence, seed)),
        **_spread(per_split),
        "relative_pd_pairs": [{"a": list(a), "b": list(b), "relative_pd": _number(v)}
                              for (a, b), v in zip(splits, per_split, strict=True)],
        "absolute_pd": _number(np.mean([pd_lib.absolute_pd(averaged[a], averaged[b]) for a, b in splits])),
        "pairs": len(splits),
        "auc": _mean([m["auc"] for m in models]),
        "logloss": _mean([m["logloss"] for m in models]),
        "calibration": _mean([m["calibration"] for m in models]),
        "ensembles": len(groups),
        "relative_pd_mean_matched": _number(np.mean([pd_lib.relative_pd(matched[a], matched[b]) for a, b in splits])),
    }


def progressive_summary(runs: Sequence[dict[str, Any]], replicas: int) -> dict[str, Any]:
    """The trainer's progressive numbers of a cell from its metrics.json file(s).

    One run in replica mode carries `replicas` (per-replica progressive metrics) and the progressive PD keys;
    R separate runs carry one model each, and no progressive PD (nothing saw the replicas side by side).
    """
    if len(runs) == 1 and isinstance(runs[0].get("replicas"), list):
        per_replica = runs[0]["replicas"]
        pd_values = {key: _pd_value(runs[0].get(key))
                     for key in ("progressive_relative_pd", "window_relative_pd", "progressive_absolute_pd")}
        mode = "replicas"
    else:
        per_replica = list(runs)
        pd_values = {"progressive_relative_pd": None, "window_relative_pd": None, "progressive_absolute_pd": None}
        mode = "separate"
    rates = [r.get("examples_per_sec") for r in runs]
    return {
        "trainer_mode": mode,
        "models_per_trainer_run": replicas if mode == "replicas" else 1,
        "progressive_auc": _mean([r.get("progressive_auc") for r in per_replica]),
        "progressive_logloss": _mean([r.get("progressive_logloss") for r in per_replica]),
        "progressive_calibration": _mean([r.get("progressive_calibration") for r in per_replica]),
        **pd_values,
        "examples_per_sec": _mean(rates),
        # Without start-up (tracing, first batches); None when the run logged no progress line.
        "steady_examples_per_sec": _mean([r.get("steady_examples_per_sec") for r in runs]),
        "train_seconds": _number(sum(r.get("train_seconds") or 0.0 for r in runs)),
        "train_examples": int(runs[0].get("examples", 0)),
        "progressive_auc_curve": mean_curve(runs, replicas, mode),
    }


def mean_curve(runs: Sequence[dict[str, Any]], replicas: int, mode: str) -> dict[str, list] | None:
    """The replicas' mean cumulative progressive AUC after each metrics chunk (the trainer's `progressive_curve`):
    {"examples": [...], "auc": [...]}; None when the runs have no curve (older trainer) or curves that differ in
    their points. In replica mode only the first `replicas` rows are the cell's models (an online teacher
    follows)."""
    curves = [r.get("progressive_curve") for r in runs]
    if not curves or any(not c or not c.get("examples") for c in curves):
        return None
    examples = curves[0]["examples"]
    if any(c["examples"] != examples for c in curves):
        return None
    rows = curves[0]["auc"][:replicas] if mode == "replicas" else [c["auc"][0] for c in curves]
    values = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    with np.errstate(all="ignore"):
        mean = np.nanmean(values, axis=0) if values.size else np.array([])
    return {"examples": list(examples), "auc": [_number(v) for v in mean]}


def examples_to_reach(curve: dict[str, list] | None, target: float | None) -> int | None:
    """Examples consumed at the first curve point from which the AUC stays at least `target` to the end of the
    stream; None if the final point is below it. (A cumulative AUC over the first few thousand examples is noisy:
    an early lucky point that the curve falls back from does not count as reaching it.)"""
    if not curve or target is None:
        return None
    reached = None
    for examples, auc in reversed(list(zip(curve["examples"], curve["auc"], strict=True))):
        if auc is None or auc < target:
            break
        reached = int(examples)
    return reached


def interpolate_at_pd(points: Sequence[tuple[float, float]], pd: float | None) -> float | None:
    """Linear interpolation of AUC at relative PD `pd` between (PD, AUC) points; None unless `pd` lies within
    their PD range (no extrapolation)."""
    if pd is None or not points:
        return None
    points = sorted(points)
    if not points[0][0] <= pd <= points[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x0 <= pd <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (pd - x0) / (x1 - x0)
    return points[0][1]


def distillation_summary(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue #9's comparison, one item per student cell (results.json "distillation").

    Against the same activation trained alone (same spec, same noise, no distillation):
      * PD and held-out AUC of both, and the student's AUC-loss change against the alone cell;
      * `student_auc_at_alone_pd`: the students' AUC interpolated at the alone cell's PD over the student cells
        of every weight (None unless that PD lies between theirs; one weight gives a point, not a curve);
      * `examples_to_reach_alone_auc`: from which point on the students' mean cumulative progressive AUC stays at
        or above the alone cell's final progressive AUC (`examples_to_reach`; None if it ends below; the paper's
        "faster convergence"), with the alone cell's own count for the same target (at the latest its last
        point);
      * the teacher alone (the cell of the teacher's spec and noise), and the co-distilled cells of the noise.
    """
    ok = [e for e in entries if e.get("status") == "ok" and not e.get("ensemble")]
    summary = []
    for student in ok:
        if student.get("role") != "student":
            continue
        alone = next((e for e in ok if not e.get("role") and e["spec"] == student["spec"]
                      and e["noise"] == student["noise"]), None)
        teacher = next((e for e in ok if not e.get("role") and e["spec"] == student.get("teacher")
                        and e["noise"] == student["noise"]), None)
        siblings = [(e["relative_pd"], e["auc"]) for e in ok
                    if e.get("role") == "student" and e["spec"] == student["spec"] and e["noise"] == student["noise"]
                    and e.get("teacher") == student.get("teacher") and e["relative_pd"] is not None
                    and e["auc"] is not None]
        target = alone.get("progressive_auc") if alone else None
        item = {
            "student": student["label"],
            "student_cell": student["cell"],
            "weight": student.get("weight"),
            "noise": student["noise"],
            "student_relative_pd": student["relative_pd"],
            "student_auc": student["auc"],
            "student_progressive_auc": student.get("progressive_auc"),
            "student_examples_per_sec": student.get("examples_per_sec"),
            "teacher_progressive_auc_in_student_job": student.get("teacher_progressive_auc"),
            "alone_cell": alone["cell"] if alone else None,
            "alone_relative_pd": alone["relative_pd"] if alone else None,
            "alone_auc": alone["auc"] if alone else None,
            "alone_progressive_auc": target,
            "alone_examples_per_sec": alone.get("examples_per_sec") if alone else None,
            "student_auc_loss_change_vs_alone_pct": (
                accuracy.auc_loss_change_pct(student["auc"], alone["auc"]) if alone else None),
            "student_auc_at_alone_pd": interpolate_at_pd(siblings, alone["relative_pd"] if alone else None),
            "examples_to_reach_alone_auc": examples_to_reach(student.get("progressive_auc_curve"), target),
            "alone_examples_to_reach_own_auc": examples_to_reach(alone.get("progressive_auc_curve"), target)
            if alone else None,
            "train_examples": student.get("train_examples"),
            "teacher_alone_cell": teacher["cell"] if teacher else None,
            "teacher_alone_relative_pd": teacher["relative_pd"] if teacher else None,
            "teacher_alone_auc": teacher["auc"] if teacher else None,
            "codistilled": [{"cell": e["cell"], "label": e["label"], "relative_pd": e["relative_pd"], "auc": e["auc"],
                             "examples_per_sec": e.get("examples_per_sec")}
                            for e in ok if e.get("role") == "codistilled" and e["noise"] == student["noise"]],
        }
        summary.append(item)
    return summary


def _pd_value(value: Any) -> float | None:
    """A scalar progressive PD: the number itself, or the mean of a list/matrix/dict of per-pair values."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, dict):
        for key in ("mean", "value", "relative_pd"):
            if key in value:
                return _pd_value(value[key])
        return _mean([_pd_value(v) for v in value.values()])
    if isinstance(value, list):
        array = np.asarray(value, dtype=float)
        if array.ndim == 2 and array.shape[0] == array.shape[1]:  # a symmetric pair matrix with a zero diagonal
            upper = array[np.triu_indices(array.shape[0], 1)]
            return _number(upper.mean()) if upper.size else None
        return _number(np.nanmean(array)) if array.size else None
    return None



def paired_to_baseline(
    baseline_predictions: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray,
    resamples: int = 200,
    confidence: float = 0.95,
    power: float = 0.8,
    seed: int = 0,
) -> dict[str, Any]:
    """A cell against the baseline cell of its noise source, paired by replica index (`recsys.metrics.paired`).

    Replica r of both cells was trained with the same seeds (`recsys.training.noise.replica_seeds`: the same data
    order under `shuffle`, the same initial-weight seed under `init`), so both cells are resampled together: the
    same replicas and the same example weights. When the cells have different R (the baseline trains more
    replicas for its ensembles), the first min(R) replicas of each are compared: those share their seeds. The
    point ratio is then over those replicas, and may differ from `relative_pd_vs_relu` (all replicas of each).

    Returns the results.json keys `pd_ratio_to_baseline`, `pd_ratio_ci` (paired), `pd_ratio_ci_unpaired`,
    `pd_verdict`, `pd_ratio_detectable_change`, `auc_difference`, `auc_difference_ci`, `auc_verdict`,
    `auc_difference_detectable_change`, `paired_replicas`, `paired_note` (None unless replicas were left out),
    `paired_relative_pd`, `paired_baseline_relative_pd`.
    """
    replicas = min(baseline_predictions.shape[0], predictions.shape[0])
    result = paired.compare_cells(baseline_predictions[:replicas], predictions[:replicas], labels,
                                  num_resamples=resamples, confidence=confidence, power=power, seed=seed)
    note = None
    if replicas < max(baseline_predictions.shape[0], predictions.shape[0]):
        note = (f"first {replicas} replicas of each cell (the cell has {predictions.shape[0]}, the baseline "
                f"{baseline_predictions.shape[0]}); replica r of both shares its seeds")
    return {
        "pd_ratio_to_baseline": result["pd_ratio"],
        "pd_ratio_ci": result["pd_ratio_ci"],
        "pd_ratio_ci_unpaired": result["pd_ratio_ci_unpaired"],
        "pd_verdict": result["pd_ratio_verdict"],
        "pd_ratio_detectable_change": result["pd_ratio_detectable_change"],
        "auc_difference": result["auc_difference"],
        "auc_difference_ci": result["auc_difference_ci"],
        "auc_verdict": result["auc_difference_verdict"],
        "auc_difference_detectable_change": result["auc_difference_detectable_change"],
        "paired_replicas": replicas,
        "paired_note": note,
        "paired_relative_pd": result["candidate_pd"],
        "paired_baseline_relative_pd": result["baseline_pd"],
    }


#: The keys `paired_to_baseline` adds, None on entries that are not compared (the baseline, ensembles, failed cells).
PAIRED_KEYS = (
    "pd_ratio_to_baseline", "pd_ratio_ci", "pd_ratio_ci_unpaired", "pd_verdict", "pd_ratio_detectable_change",
    "auc_difference", "auc_difference_ci", "auc_verdict", "auc_difference_detectable_change", "paired_replicas",
    "paired_note", "paired_relative_pd", "paired_baseline_relative_pd",
)
