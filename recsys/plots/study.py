"""The study's figures: Fig. 4 of Shamir & Lin 2022 (relative PD in % vs AUC-loss change in % from ReLU) and the
progressive AUC over the stream.

Both take the study's results.json "cells" and the noise sources in panel order; one panel per noise source.
In Fig. 4 there is one point per cell (β), a line per activation family (the cell's "group") through its β
values in β order, horizontal bars for the PD's 95% interval; ReLU is a star at 0, k-ensembles are squares
(diamonds at equal parameter budget). Lower-left is better on both axes. A second row shows each cell's PD ratio
to ReLU with its paired interval (thick) and unpaired interval (thin), labelled with the verdict. The study passes
what the figures need as data, so this module does not import `recsys.study`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recsys.plots import figures
from recsys.plots import pd as pd_plots


def _point_label(entry: Mapping[str, Any]) -> str:
    if entry.get("role"):
        return f"w={entry['weight']:g}"
    if entry.get("ensemble"):
        return f"{entry['ensemble_k']}-ens."
    if entry.get("learnable"):
        return "learned"
    if entry.get("beta") is None:
        return ""
    return f"β={entry['beta']:g}"


def _marker(entry: Mapping[str, Any]) -> tuple[str, int]:
    """(marker, size): squares for k-ensembles (diamonds at equal budget), a star for ReLU, dots otherwise."""
    if entry.get("ensemble"):
        return ("D" if entry.get("equal_budget") else "s"), 60
    if entry.get("baseline"):
        return "*", 160
    return "o", 40


def _panel_noises(entries: Sequence[Mapping[str, Any]], noise_order: Sequence[str], default: str) -> list[str]:
    """The noise sources of `entries` in `noise_order`; `default` alone when there are none (an empty panel)."""
    return [n for n in noise_order if any(e["noise"] == n for e in entries)] or [default]


def _plane_entries(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in entries if e.get("status") == "ok" and e.get("relative_pd") is not None
            and e.get("auc_loss_change_pct") is not None]


def _group_colors(usable: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    families = sorted({e["group"] for e in usable}, key=lambda g: (not g.startswith("ReLU"), g))
    return {group: f"C{i % 10}" for i, group in enumerate(families)}


def study_panels(entries: Sequence[Mapping[str, Any]], noise_order: Sequence[str]) -> list[pd_plots.Panel]:
    """The Fig. 4 panels of the finished cells among `entries`, one per noise source in `noise_order`."""
    usable = _plane_entries(entries)
    colors = _group_colors(usable)
    panels = []
    for noise in _panel_noises(usable, noise_order, "shuffle"):
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for entry in usable:
            if entry["noise"] == noise:
                groups.setdefault(entry["group"], []).append(entry)
        series = []
        for group, members in groups.items():
            members = sorted(members, key=lambda e: (e.get("beta") is None, e.get("beta") or 0.0,
                                                     e.get("weight") or 0.0))
            points = [pd_plots.Point(e["relative_pd"], e["auc_loss_change_pct"], _point_label(e), *_marker(e),
                                     ci=tuple(e["relative_pd_ci"]) if e.get("relative_pd_ci") else None)
                      for e in members]
            series.append(pd_plots.Series(group, colors[group], points, joined=True))
        panels.append(pd_plots.Panel(f"noise: {noise}", series))
    return panels


def ratio_panels(entries: Sequence[Mapping[str, Any]], noise_order: Sequence[str]) -> list[pd_plots.RatioPanel]:
    """One panel per noise source of `study_panels` (same order and colours): each cell's PD ratio to the ReLU
    cell of its noise ("pd_ratio_to_baseline") with its paired and unpaired intervals and the PD verdict. Empty
    when no entry has a ratio (results from before the paired comparison)."""
    if not any(e.get("pd_ratio_to_baseline") is not None for e in entries):
        return []
    usable = _plane_entries(entries)
    colors = _group_colors(usable)
    panels = []
    for noise in _panel_noises(usable, noise_order, "shuffle"):
        ratios = [pd_plots.Ratio(e["label"], e["pd_ratio_to_baseline"],
                                 tuple(e["pd_ratio_ci"]) if e.get("pd_ratio_ci") else None,
                                 tuple(e["pd_ratio_ci_unpaired"]) if e.get("pd_ratio_ci_unpaired") else None,
                                 colors.get(e["group"], "C0"), e.get("pd_verdict") or "")
                  for e in usable if e["noise"] == noise and e.get("pd_ratio_to_baseline") is not None]
        panels.append(pd_plots.RatioPanel(f"PD ratio to ReLU, noise: {noise}", ratios, baseline_name="ReLU"))
    return panels


def plot_pd_vs_accuracy(
    entries: Sequence[Mapping[str, Any]], path: str, noise_order: Sequence[str], title: str | None = None
) -> None:
    """Writes the Fig. 4 PNG of the cells in `entries` (results.json "cells", each with its "group");
    failed cells are left out. `noise_order`: the noise sources, in panel order. Below each panel, when the
    entries have them, the PD ratios to ReLU with their paired intervals (`ratio_panels`)."""
    panels = study_panels(entries, noise_order)
    pd_plots.plot_pd_vs_accuracy(
        panels, path, ylabel="AUC-loss change vs ReLU (%)",
        title=title or "PD vs AUC loss change from ReLU (lower-left is better)",
        panel_size=(6.4, 5.0), x_margin=1.1, legend_min_series=1,
        empty_text="" if any(p.series for p in panels) else "no finished cells",
        ratio_panels=ratio_panels(entries, noise_order),
    )


def plot_convergence(
    entries: Sequence[Mapping[str, Any]], path: str, noise_order: Sequence[str], title: str | None = None
) -> None:
    """Writes the PNG of every cell's mean cumulative progressive AUC against examples consumed (one panel per
    noise source in `noise_order`; results.json "progressive_auc_curve"). Cells without a curve are left out."""
    usable = [e for e in entries if e.get("status") == "ok" and not e.get("ensemble")
              and (e.get("progressive_auc_curve") or {}).get("examples")]
    noises = _panel_noises(usable, noise_order, "init")
    fig, axes = figures.panel_row(len(noises), (6.4, 4.6))
    for ax, noise in zip(axes, noises, strict=True):
        panel = [e for e in usable if e["noise"] == noise]
        for index, entry in enumerate(panel):
            curve = entry["progressive_auc_curve"]
            points = [(x, y) for x, y in zip(curve["examples"], curve["auc"], strict=True) if y is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            style = "--" if entry.get("role") else "-"
            ax.plot(xs, ys, style, color=f"C{index % 10}", label=entry["label"], linewidth=1.2)
        figures.style_axes(ax, "examples consumed", "progressive AUC (cumulative, mean over replicas)",
                           f"noise: {noise}")
        if panel:
            ax.legend(fontsize=7, loc="lower right")
    figures.save(fig, path, suptitle=title or "Progressive AUC over the stream",
                 empty_text="" if usable else "no curves")
