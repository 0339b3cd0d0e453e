"""The comparison report: accuracy per model, PD per model pair, ensemble baselines, summary.

Pure NumPy on predictions already computed, so the comparator job (`pipelines.compare`) and the study job
produce their numbers with the same code. PD values are fractions (0.07 = 7%); the Markdown shows percent.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from recsys.metrics import accuracy, bootstrap, pd, validation

REPORT_FORMAT_VERSION = 1

#: Per-example relative PD histogram bin edges (fractions): log-spaced from 1e-6 to 2, since most examples
#: differ by little and the tail matters. Terms in (0, 1e-6) fall in the first bin; exact zeros are counted apart.
HISTOGRAM_EDGES = np.logspace(-6, math.log10(2.0), 121)
#: pd_hist.png draws each pair while there are at most this many, so the figure stays readable.
MAX_HISTOGRAM_PAIRS = 6


@dataclasses.dataclass
class Comparison:
    """`report` is JSON-ready (NaN → None); `histograms` maps a label to (counts, zeros) over HISTOGRAM_EDGES."""

    report: dict[str, Any]
    histograms: dict[str, tuple[np.ndarray, int]]


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _interval(ci: bootstrap.Interval | None) -> list[float | None] | None:
    return None if ci is None else [_number(ci.low), _number(ci.high)]


def _histogram(terms: np.ndarray) -> tuple[np.ndarray, int]:
    zeros = int(np.count_nonzero(terms == 0.0))
    positive = np.clip(terms[terms > 0.0], HISTOGRAM_EDGES[0], HISTOGRAM_EDGES[-1])
    counts, _ = np.histogram(positive, bins=HISTOGRAM_EDGES)
    return counts, zeros


def accuracy_metrics(labels: np.ndarray, p: np.ndarray, query_ids: np.ndarray | None) -> dict[str, Any]:
    """AUC, AUC loss, logloss, calibration, mean prediction and (with query ids) PQAUC of one model.

    Metrics undefined on these labels (AUC with one class, calibration without clicks) are None.
    """
    positives = int(np.count_nonzero(labels))
    both = 0 < positives < labels.size
    out: dict[str, Any] = {
        "auc": _number(accuracy.auc(labels, p)) if both else None,
        "logloss": _number(accuracy.logloss(labels, p)),
        "calibration": _number(accuracy.calibration(labels, p)) if positives else None,
        "mean_prediction": _number(np.mean(p)),
    }
    out["auc_loss"] = None if out["auc"] is None else 1.0 - out["auc"]
    if query_ids is not None:
        result = accuracy.pqauc(labels, p, query_ids)
        out["pqauc"] = _number(result.value)
        out["pqauc_loss"] = None if out["pqauc"] is None else 1.0 - out["pqauc"]
        out["pqauc_queries"] = result.queries
        out["pqauc_skipped_queries"] = result.skipped_queries
    return out


#: Examples per chunk of the bootstrap pass, which recomputes every pair's per-example terms chunk by chunk.
BOOTSTRAP_CHUNK = 16_384


def _pd_term_chunks(predictions: np.ndarray, index_pairs: list[tuple[int, int]]):
    """Yields [2·pairs + 2, c] blocks: each pair's relative and absolute PD terms, then their means over pairs."""
    for block in bootstrap.column_chunks(predictions, BOOTSTRAP_CHUNK):
        relative = pd.pair_terms(block, index_pairs, pd.relative_pd_terms)
        absolute = pd.pair_terms(block, index_pairs, pd.absolute_pd_terms)
        rows = np.empty((2 * len(index_pairs) + 2, block.shape[1]))
        rows[0:-2:2], rows[1:-2:2] = relative, absolute
        rows[-2], rows[-1] = relative.mean(axis=0), absolute.mean(axis=0)
        yield rows


def _pair_metrics(
    names: list[str],
    predictions: np.ndarray,
    query_ids: np.ndarray | None,
    options: dict[str, Any],
) -> tuple[list[dict[str, Any]], np.ndarray, dict[str, Any]]:
    """Metrics of every pair; the per-example relative PD averaged over pairs; mean PDs over pairs with CIs."""
    pairs = []
    mean_relative = np.zeros(predictions.shape[1])
    mean_absolute = np.zeros(predictions.shape[1])
    index_pairs = pd.all_pairs(len(names))
    for i, j in index_pairs:
        a, b = predictions[i], predictions[j]
        relative = pd.relative_pd_terms(a, b)
        absolute = pd.absolute_pd_terms(a, b)
        mean_relative += relative / len(index_pairs)
        mean_absolute += absolute / len(index_pairs)
        entry: dict[str, Any] = {
            "a": names[i],
            "b": names[j],
            "relative_pd": _number(relative.mean()),
            "absolute_pd": _number(absolute.mean()),
            "relative_pd_ci": None,
            "absolute_pd_ci": None,
            "symmetric_kl": _number(pd.symmetric_kl(a, b)),
            "flip_rate": _number(pd.flip_rate(a, b, options["flip_threshold"])),
        }
        if query_ids is not None:
            entry["swap_rate"] = _number(pd.swap_rate(a, b, query_ids))
            entry["topk_overlap"] = _number(pd.topk_overlap(a, b, query_ids, options["top_k"]))
        if len(index_pairs) <= MAX_HISTOGRAM_PAIRS:  # beyond that, only the mean over pairs is drawn
            entry["_histogram"] = _histogram(relative)
        pairs.append(entry)
    means = {"mean_relative_pd": _number(mean_relative.mean()), "mean_relative_pd_ci": None,
             "mean_absolute_pd": _number(mean_absolute.mean()), "mean_absolute_pd_ci": None}
    if options["bootstrap"]:
        # One pass, one set of Poisson weights for every pair and for the means over pairs: the intervals are
        # jointly consistent, and the cost is paid once rather than per pair.
        intervals = [_interval(ci) for ci in bootstrap.bootstrap_mean_ci_from_chunks(
            _pd_term_chunks(predictions, index_pairs), options["bootstrap"], options["confidence"], options["seed"]
        )]
        for k, entry in enumerate(pairs):
            entry["relative_pd_ci"], entry["absolute_pd_ci"] = intervals[2 * k], intervals[2 * k + 1]
        means["mean_relative_pd_ci"], means["mean_absolute_pd_ci"] = intervals[-2], intervals[-1]
    return pairs, mean_relative, means


def _pd_matrix(names: list[str], pairs: list[dict[str, Any]], key: str) -> list[list[float | None]]:
    index = {name: k for k, name in enumerate(names)}
    matrix: list[list[float | None]] = [[0.0] * len(names) for _ in names]
    for entry in pairs:
        i, j = index[entry["a"]], index[entry["b"]]
        matrix[i][j] = matrix[j][i] = entry[key]
    return matrix


def compare_predictions(
    names: list[str],
    predictions,
    labels,
    query_ids=None,
    *,
    ensemble_size: int | None = None,
    bootstrap_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    flip_threshold: float = 0.5,
    top_k: int = 10,
) -> Comparison:
    """Builds the comparison report of M ≥ 2 models' predictions ([M, T]) on the same T labelled examples.

    - `models`: accuracy of each model (`accuracy_metrics`).
    - `pairs`: for every pair, relative/absolute PD with bootstrap CIs (`bootstrap_resamples` Poisson resamples,
      0 disables), symmetric KL, flip rate at `flip_threshold`, and with `query_ids` swap rate and top-`top_k`
      overlap.
    - `ensembles`: with `ensemble_size` = k and M ≥ 2k, models are split in input order into ⌊M/k⌋ disjoint
      groups; each group's ensemble is the mean of its members' probabilities; accuracy of each ensemble and
      PD between every two ensembles.
    - `summary`: means over pairs (with CIs over examples), median and worst pair, the PD matrices, and for
      M ≥ 3 the per-example standard deviation across models.
    """
    if len(names) != len(set(names)):
        raise ValueError(f"Model names must be unique. Received: {names}")
    matrix = validation.check_model_predictions(predictions, min_models=2, model_names=names)
    if matrix.shape[0] != len(names):
        raise ValueError(f"Got {len(names)} names for {matrix.shape[0]} prediction rows.")
    y = validation.check_labels(labels, "labels")
    validation.check_same_length(labels=y, predictions=matrix[0])
    codes = None
    if query_ids is not None:
        codes = validation.check_query_ids(query_ids)
        validation.check_same_length(labels=y, query_ids=codes)
    if ensemble_size is not None:
        if isinstance(ensemble_size, bool) or not isinstance(ensemble_size, int) or ensemble_size < 1:
            raise ValueError(f"`ensemble_size` must be a positive integer. Received: {ensemble_size!r}")
        if matrix.shape[0] < 2 * ensemble_size:
            raise ValueError(
                f"ensemble_size={ensemble_size} needs at least {2 * ensemble_size} models (two disjoint ensembles). "
                f"Received {matrix.shape[0]}"
            )
    if isinstance(bootstrap_resamples, bool) or not isinstance(bootstrap_resamples, int) or bootstrap_resamples < 0:
        raise ValueError(f"`bootstrap_resamples` must be 0 (off) or >= 2. Received: {bootstrap_resamples!r}")
    if bootstrap_resamples == 1:
        raise ValueError("`bootstrap_resamples` must be 0 (off) or >= 2. Received: 1")
    options = {"bootstrap": bootstrap_resamples, "confidence": confidence, "seed": seed,
               "flip_threshold": flip_threshold, "top_k": top_k}

    models = [{"name": name, **accuracy_metrics(y, matrix[m], codes)} for m, name in enumerate(names)]
    pairs, mean_relative, means = _pair_metrics(names, matrix, codes, options)
    histograms = {"mean over pairs": _histogram(mean_relative)} if len(pairs) > 1 else {}
    for entry in pairs:
        if "_histogram" in entry:
            histograms[f"{entry['a']} vs {entry['b']}"] = entry.pop("_histogram")
    relative_values = np.array([e["relative_pd"] for e in pairs], dtype=float)
    worst = pairs[int(np.argmax(relative_values))]
    summary: dict[str, Any] = {
        "pd_unit": "fraction",
        "examples": int(y.size),
        "positives": int(np.count_nonzero(y)),
        "num_models": len(names),
        "num_pairs": len(pairs),
        **means,
        "median_relative_pd": _number(np.median(relative_values)),
        "min_relative_pd": _number(relative_values.min()),
        "worst_pair": {"a": worst["a"], "b": worst["b"], "relative_pd": worst["relative_pd"]},
        "mean_symmetric_kl": _number(np.mean([e["symmetric_kl"] for e in pairs])),
        "mean_flip_rate": _number(np.mean([e["flip_rate"] for e in pairs])),
        "relative_pd_matrix": _pd_matrix(names, pairs, "relative_pd"),
        "absolute_pd_matrix": _pd_matrix(names, pairs, "absolute_pd"),
    }
    if codes is not None:
        summary["mean_swap_rate"] = _number(np.mean([e["swap_rate"] for e in pairs]))
        summary["mean_topk_overlap"] = _number(np.mean([e["topk_overlap"] for e in pairs]))
    if len(names) >= 3:
        summary["mean_per_example_std"] = _number(pd.mean_std(matrix))
        summary["mean_per_example_relative_std"] = _number(pd.mean_std(matrix, relative=True))
    aucs = [m["auc"] for m in models if m["auc"] is not None]
    summary["mean_auc"] = _number(np.mean(aucs)) if aucs else None

    ensembles: dict[str, Any] = {"size": ensemble_size, "models": [], "pairs": []}
    if ensemble_size is not None:
        groups = [list(range(g * ensemble_size, (g + 1) * ensemble_size)) for g in range(len(names) // ensemble_size)]
        ensemble_names = [f"ensemble{g + 1}" for g in range(len(groups))]
        averaged = np.stack([matrix[group].mean(axis=0) for group in groups])
        ensembles["models"] = [
            {"name": ensemble_names[g], "members": [names[m] for m in group], **accuracy_metrics(y, averaged[g], codes)}
            for g, group in enumerate(groups)
        ]
        ensembles["unused_models"] = [names[m] for m in range(len(groups) * ensemble_size, len(names))]
        ensemble_pairs, ensemble_relative, ensemble_means = _pair_metrics(ensemble_names, averaged, codes, options)
        for entry in ensemble_pairs:
            entry.pop("_histogram", None)
        ensembles["pairs"] = ensemble_pairs
        ensembles.update(ensemble_means)
        histograms[f"{ensemble_size}-ensembles"] = _histogram(ensemble_relative)
        summary["ensemble_mean_relative_pd"] = ensembles["mean_relative_pd"]

    report = {
        "format_version": REPORT_FORMAT_VERSION,
        "models": models,
        "pairs": pairs,
        "ensembles": ensembles,
        "summary": summary,
        "settings": {"bootstrap": bootstrap_resamples, "confidence": confidence, "seed": seed,
                     "flip_threshold": flip_threshold, "top_k": top_k, "query_key": None},
    }
    return Comparison(report, histograms)


def add_self_pd(report: dict[str, Any], final: dict[str, np.ndarray], earlier: dict[str, np.ndarray],
                examples_apart: dict[str, int], unavailable: dict[str, str]) -> None:
    """Adds `report["self_pd"]`: per model, the relative PD between its predictions and those of its own earlier
    snapshot (the checkpoint before its final one, `examples_apart` examples of its stream earlier), next to the
    mean relative PD between the models: `self_to_pair_pd` near 1 means the PD between the models is mostly where
    each stopped on its trajectory (jitter), near 0 that they settled apart (basin).

    Args:
      final / earlier: predictions by model name (earlier only for the models that have a snapshot).
      unavailable: model name -> why it has no snapshot.
    """
    entries = []
    for name in [m["name"] for m in report["models"]]:
        if name in earlier:
            entries.append({"name": name, "self_relative_pd": _number(pd.relative_pd(earlier[name], final[name])),
                            "examples_apart": int(examples_apart[name])})
        elif name in unavailable:
            entries.append({"name": name, "self_relative_pd": None, "unavailable": unavailable[name]})
    values = [e["self_relative_pd"] for e in entries if e["self_relative_pd"] is not None]
    mean = _number(np.mean(values)) if values else None
    pair_pd = report["summary"]["mean_relative_pd"]
    report["self_pd"] = {
        "models": entries,
        "mean_self_relative_pd": mean,
        "self_to_pair_pd": _number(mean / pair_pd) if mean is not None and pair_pd else None,
    }


def accuracy_key(report: dict[str, Any]) -> str:
    """"pqauc" when every model has a PQAUC (a query key was given), else "auc": the accuracy axis of plots."""
    has_pqauc = all(m.get("pqauc") is not None for m in report["models"])
    return "pqauc" if has_pqauc else "auc"


def pd_vs_accuracy_points(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Points of the paper's Fig. 4 plane, one per model and per ensemble.

    x: the model's mean relative PD to the other models (for an ensemble: to the other ensembles), as a
    fraction. y: its AUC (PQAUC with a query key) loss change in % relative to the first model, the baseline:
    100·(loss − loss_baseline) / loss_baseline. Points whose accuracy is undefined are left out.
    """
    key = accuracy_key(report)
    baseline = report["models"][0].get(key)
    points: list[dict[str, Any]] = []

    def add(entries: list[dict[str, Any]], pairs: list[dict[str, Any]], kind: str) -> None:
        for entry in entries:
            own = [p["relative_pd"] for p in pairs if entry["name"] in (p["a"], p["b"])]
            change = accuracy.auc_loss_change_pct(entry.get(key), baseline)
            if not own or change is None:
                continue
            points.append({"name": entry["name"], "kind": kind, "relative_pd": float(np.mean(own)),
                           "loss_change_pct": change})

    add(report["models"], report["pairs"], "model")
    add(report["ensembles"].get("models", []), report["ensembles"].get("pairs", []), "ensemble")
    return points


def _fmt(value, percent: bool = False, digits: int = 4) -> str:
    if value is None:
        return "–"
    if percent:
        return f"{100.0 * value:.2f}%"
    return f"{value:.{digits}f}"


def _fmt_ci(ci, percent: bool = True) -> str:
    if not ci or ci[0] is None:
        return "–"
    return f"[{_fmt(ci[0], percent)}, {_fmt(ci[1], percent)}]"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (PD shown in percent)."""
    s = report["summary"]
    settings = report["settings"]
    level = f"{100 * settings['confidence']:.0f}%"
    lines = [
        "# Model comparison",
        "",
        f"{s['examples']} examples ({s['positives']} positives), {s['num_models']} models, {s['num_pairs']} pairs. "
        f"PD in percent of eq. 2 (Shamir & Lin 2022); intervals: {level} Poisson bootstrap over examples "
        f"({settings['bootstrap']} resamples, seed {settings['seed']}).",
        "",
        "## Summary",
        "",
        "| metric | value |",
        "|---|---|",
        f"| mean relative PD | {_fmt(s['mean_relative_pd'], True)} {_fmt_ci(s['mean_relative_pd_ci'])} |",
        f"| mean absolute PD | {_fmt(s['mean_absolute_pd'], True)} {_fmt_ci(s['mean_absolute_pd_ci'])} |",
        f"| median / min relative PD over pairs | {_fmt(s['median_relative_pd'], True)} / "
        f"{_fmt(s['min_relative_pd'], True)} |",
        f"| worst pair | {s['worst_pair']['a']} vs {s['worst_pair']['b']}: "
        f"{_fmt(s['worst_pair']['relative_pd'], True)} |",
        f"| mean symmetric KL (nats) | {_fmt(s['mean_symmetric_kl'], digits=6)} |",
        f"| mean flip rate at {settings['flip_threshold']} | {_fmt(s['mean_flip_rate'], True)} |",
    ]
    if "mean_swap_rate" in s:
        lines.append(f"| mean swap rate within queries | {_fmt(s['mean_swap_rate'], True)} |")
        lines.append(f"| mean top-{settings['top_k']} overlap | {_fmt(s['mean_topk_overlap'], True)} |")
    if "mean_per_example_std" in s:
        lines.append(f"| per-example std across models | {_fmt(s['mean_per_example_std'], digits=6)} |")
        lines.append(f"| per-example std / mean | {_fmt(s['mean_per_example_relative_std'], True)} |")
    if s.get("ensemble_mean_relative_pd") is not None:
        size = report["ensembles"]["size"]
        lines.append(f"| mean relative PD between {size}-model ensembles | "
                     f"{_fmt(s['ensemble_mean_relative_pd'], True)} "
                     f"{_fmt_ci(report['ensembles'].get('mean_relative_pd_ci'))} |")
    gate = s.get("churn_gate")
    if gate:
        verdict = "passed" if gate["passed"] else "FAILED"
        lines.append(f"| churn gate (mean relative PD ≤ {_fmt(gate['max_relative_pd'], True)}) | {verdict} |")

    def model_table(title: str, entries: list[dict[str, Any]], with_members: bool) -> None:
        has_pq = any("pqauc" in m for m in entries)
        header = "| name | " + ("members | " if with_members else "") + "AUC | logloss | calibration | mean p |"
        header += " PQAUC | queries used / skipped |" if has_pq else ""
        lines.extend(["", f"## {title}", "", header, "|" + "---|" * (header.count("|") - 1)])
        for m in entries:
            row = f"| {m['name']} | " + (f"{', '.join(m['members'])} | " if with_members else "")
            row += f"{_fmt(m['auc'], digits=5)} | {_fmt(m['logloss'], digits=5)} | "
            row += f"{_fmt(m['calibration'], digits=4)} | {_fmt(m['mean_prediction'], digits=4)} |"
            if has_pq:
                used, skipped = m.get("pqauc_queries"), m.get("pqauc_skipped_queries")
                row += f" {_fmt(m.get('pqauc'), digits=5)} | {used} / {skipped} |"
            lines.append(row)

    def pair_table(title: str, entries: list[dict[str, Any]]) -> None:
        has_q = any("swap_rate" in e for e in entries)
        header = f"| a | b | relative PD | {level} CI | absolute PD | {level} CI | sym. KL | flip rate |"
        header += " swap rate | top-k overlap |" if has_q else ""
        lines.extend(["", f"## {title}", "", header, "|" + "---|" * (header.count("|") - 1)])
        for e in entries:
            row = (f"| {e['a']} | {e['b']} | {_fmt(e['relative_pd'], True)} | {_fmt_ci(e['relative_pd_ci'])} | "
                   f"{_fmt(e['absolute_pd'], True)} | {_fmt_ci(e['absolute_pd_ci'])} | "
                   f"{_fmt(e['symmetric_kl'], digits=6)} | {_fmt(e['flip_rate'], True)} |")
            if has_q:
                row += f" {_fmt(e.get('swap_rate'), True)} | {_fmt(e.get('topk_overlap'), True)} |"
            lines.append(row)

    model_table("Models", report["models"], with_members=False)
    pair_table("Pairs", report["pairs"])
    if report.get("self_pd"):
        self_pd = report["self_pd"]
        lines.extend(["", "## Jitter vs basin: each model against its own earlier checkpoint", "",
                      f"Mean self PD {_fmt(self_pd['mean_self_relative_pd'], True)} against a mean PD between models "
                      f"of {_fmt(s['mean_relative_pd'], True)} (ratio {_fmt(self_pd['self_to_pair_pd'], digits=2)}): "
                      "near 1, the models differ mostly by where each stopped on its trajectory; near 0, they "
                      "settled apart.", "", "| model | self relative PD | examples apart |", "|---|---|---|"])
        for e in self_pd["models"]:
            detail = e.get("unavailable") or e["examples_apart"]
            lines.append(f"| {e['name']} | {_fmt(e['self_relative_pd'], True)} | {detail} |")
    names = [m["name"] for m in report["models"]]
    if len(names) > 2:
        lines.extend(["", "## Relative PD matrix", "", "| | " + " | ".join(names) + " |",
                      "|" + "---|" * (len(names) + 1)])
        for name, row in zip(names, s["relative_pd_matrix"], strict=True):
            lines.append(f"| {name} | " + " | ".join(_fmt(v, True) for v in row) + " |")
    ensembles = report["ensembles"]
    if ensembles.get("models"):
        model_table(f"Ensembles of {ensembles['size']} (mean of member probabilities)", ensembles["models"], True)
        pair_table("Ensemble pairs", ensembles["pairs"])
        if ensembles.get("unused_models"):
            lines.extend(["", f"Not in any ensemble: {', '.join(ensembles['unused_models'])}."])
    return "\n".join(lines) + "\n"
