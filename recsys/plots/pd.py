"""Figures of prediction difference: the PD–accuracy plane (the paper's Fig. 4), PD ratios, and PD histograms.

Reference: Shamir & Lin 2022 (arXiv:2202.06499), Fig. 4 plots PD in % against PQAUC loss change in % from
a ReLU baseline, one point per configuration. `plot_pd_vs_accuracy` draws that plane for the comparator
(`comparison_panel`) and the study (`recsys.plots.study.study_panels`) alike, optionally with a second row of
`RatioPanel`s: each configuration's PD ratio to the baseline with its paired interval (thick) and, for
comparison, the interval of the two resampled independently (thin; `recsys.metrics.paired`). Figures are
written as PNG without a display (Agg backend).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recsys.plots import figures

#: Comparator point kinds → marker.
_MARKERS = {"model": "o", "ensemble": "s", "baseline": "*"}


@dataclasses.dataclass(frozen=True)
class Point:
    """One configuration in the plane: relative PD (fraction) and loss change in %, drawn as `marker`."""

    relative_pd: float
    loss_change_pct: float
    label: str = ""
    marker: str = "o"
    size: float = 45.0
    #: The relative PD's interval (fractions), drawn as a horizontal bar.
    ci: tuple[float, float] | None = None


@dataclasses.dataclass(frozen=True)
class Series:
    """Points drawn in one colour under one legend name; `joined` draws a line through them in order."""

    name: str
    color: str
    points: Sequence[Point]
    joined: bool = False


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    series: Sequence[Series]


@dataclasses.dataclass(frozen=True)
class Ratio:
    """One configuration's PD ratio to the baseline (PD / PD_baseline) with its paired and unpaired intervals."""

    label: str
    ratio: float
    ci: tuple[float, float] | None = None
    ci_unpaired: tuple[float, float] | None = None
    color: str = "C0"
    #: Shown after the label, e.g. "lower" / "not resolved".
    verdict: str = ""


@dataclasses.dataclass(frozen=True)
class RatioPanel:
    title: str
    ratios: Sequence[Ratio]
    baseline_name: str = "baseline"


def plot_pd_vs_accuracy(
    panels: Sequence[Panel],
    path: str,
    *,
    ylabel: str,
    title: str | None = None,
    panel_size: tuple[float, float] = (7.0, 5.0),
    x_margin: float = 1.25,
    legend_min_series: int = 2,
    empty_text: str = "",
    ratio_panels: Sequence[RatioPanel] = (),
) -> None:
    """Writes a row of PD–accuracy panels to `path`: x = relative PD in %, y = loss change in % (`ylabel`).

    Lower is better on both axes, so the best corner is bottom-left; the dashed line is the baseline's accuracy.
    Each panel's x axis runs from 0 to `x_margin` times its largest PD (or interval end). A panel shows a legend
    when it has at least `legend_min_series` series; `title` goes above all panels, `empty_text` (if any) into
    the first. With `ratio_panels` (one per panel, same order) a second row shows the PD ratios to the baseline.
    """
    columns = max(len(panels), len(ratio_panels), 1)
    fig, rows = figures.panel_grid(2 if ratio_panels else 1, columns, panel_size)
    for ax, panel in zip(rows[0], panels, strict=False):
        _draw_panel(ax, panel, ylabel, x_margin, legend_min_series)
    if ratio_panels:
        for ax, ratio_panel in zip(rows[1], ratio_panels, strict=False):
            draw_ratio_panel(ax, ratio_panel)
    figures.save(fig, path, suptitle=title, empty_text=empty_text)


#: Candidate tick values of a ratio axis (a log axis labels only the decades otherwise).
_RATIO_TICKS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)


def draw_ratio_panel(ax, panel: RatioPanel) -> None:
    """PD ratio to the baseline per configuration (top to bottom in the given order), log x axis: a dot at the
    ratio, a thick bar for the paired interval and, just below it, a thin one for the unpaired; the dashed line
    is ratio 1. Left of the line = lower PD than the baseline."""
    from matplotlib import ticker

    ratios = list(panel.ratios)
    values = [v for r in ratios for v in (r.ratio, *(r.ci or ()), *(r.ci_unpaired or ())) if v is not None]
    for row, ratio in enumerate(ratios):
        y = len(ratios) - 1 - row
        if ratio.ci_unpaired:
            ax.plot(ratio.ci_unpaired, [y - 0.18, y - 0.18], "-", color=ratio.color, alpha=0.45, linewidth=1.2,
                    zorder=1)
        if ratio.ci:
            ax.plot(ratio.ci, [y, y], "-", color=ratio.color, alpha=0.85, linewidth=4.0, solid_capstyle="butt",
                    zorder=2)
        ax.scatter([ratio.ratio], [y], color=ratio.color, edgecolors="black", linewidths=0.5, s=40, zorder=3)
    ax.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(ratios)))
    ax.set_yticklabels([f"{r.label} ({r.verdict})" if r.verdict else r.label for r in reversed(ratios)],
                       fontsize=7)
    ax.set_ylim(-0.6, max(len(ratios), 1) - 0.4)
    if values and min(values) > 0:
        low, high = min(min(values), 1.0) / 1.15, max(max(values), 1.0) * 1.15
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ax.xaxis.set_major_locator(ticker.FixedLocator([t for t in _RATIO_TICKS if low <= t <= high]))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    if not ratios:
        ax.text(0.5, 0.5, "no paired comparison", ha="center", va="center", transform=ax.transAxes)
    figures.style_axes(ax, f"PD / PD of {panel.baseline_name} (thick: paired CI, thin: unpaired)", "",
                       panel.title)


def _draw_panel(ax, panel: Panel, ylabel: str, x_margin: float, legend_min_series: int) -> None:
    right = 0.0
    for series in panel.series:
        xs = [100.0 * p.relative_pd for p in series.points]
        ys = [p.loss_change_pct for p in series.points]
        if series.joined and len(xs) > 1:
            ax.plot(xs, ys, "-", color=series.color, alpha=0.7, zorder=2)
        for point, x, y in zip(series.points, xs, ys, strict=True):
            if point.ci:
                ax.errorbar([x], [y], xerr=[[x - 100.0 * point.ci[0]], [100.0 * point.ci[1] - x]], fmt="none",
                            ecolor=series.color, alpha=0.35, capsize=2, zorder=1)
            ax.scatter([x], [y], marker=point.marker, s=point.size, color=series.color, edgecolors="black",
                       linewidths=0.5, zorder=3)
            if point.label:
                ax.annotate(point.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            right = max(right, 100.0 * (point.ci[1] if point.ci else point.relative_pd))
        if series.points:
            ax.plot([], [], "-" if series.joined else "none", marker=series.points[0].marker, color=series.color,
                    label=series.name)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    figures.style_axes(ax, "relative prediction difference (%)", ylabel, panel.title)
    if any(series.points for series in panel.series):
        ax.set_xlim(left=0.0, right=max(right * x_margin, 1e-3))
    if len(panel.series) >= legend_min_series:
        ax.legend(fontsize=7, loc="best")


def comparison_panel(
    points: Sequence[Mapping[str, Any]], title: str, baseline_name: str | None = None
) -> Panel:
    """The comparator's panel of points {name, relative_pd (fraction), loss_change_pct, kind?, group?}
    (`recsys.metrics.report.pd_vs_accuracy_points`).

    Points sharing a `group` (else a `kind`: "model" | "ensemble") share a colour and, with a `group`, are
    joined by a line in the given order (e.g. one line per activation over β). `kind` picks the marker; the
    point named `baseline_name` is a star.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for point in points:
        groups.setdefault(str(point.get("group", point.get("kind", "model"))), []).append(point)
    series = []
    for color_index, (group, members) in enumerate(groups.items()):
        drawn = []
        for point in members:
            kind = "baseline" if point["name"] == baseline_name else point.get("kind", "model")
            drawn.append(Point(point["relative_pd"], point["loss_change_pct"], str(point["name"]),
                               _MARKERS.get(kind, "o"), 90.0 if kind == "baseline" else 45.0))
        series.append(Series(group, f"C{color_index % 10}", drawn, joined="group" in members[0]))
    return Panel(title, series)


def plot_pd_histogram(
    histograms: Mapping[str, tuple[np.ndarray, int]],
    edges: np.ndarray,
    path: str,
    title: str = "Per-example relative prediction difference",
) -> None:
    """Step histograms of per-example relative PD, one line per label, log-spaced x in %.

    `histograms[label] = (counts over the bins between `edges` (fractions), number of exactly-zero terms)`.
    Zero terms cannot sit on a log axis, so their share is given in the legend. Counts are shown as a share
    of each series' examples.
    """
    fig, (ax,) = figures.panel_row(1, (7.0, 4.5))
    edges_pct = 100.0 * np.asarray(edges)
    for index, (label, (counts, zeros)) in enumerate(histograms.items()):
        total = max(int(np.sum(counts)) + zeros, 1)
        aggregate = " vs " not in label  # the mean over pairs and the ensembles stand out from single pairs
        ax.stairs(np.asarray(counts) / total, edges_pct, linestyle="-" if index < 10 else ":",
                  linewidth=2.0 if aggregate else 1.0, label=f"{label} ({zeros / total:.1%} exactly 0)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("relative PD of one example, 2|p1 − p2| / (p1 + p2) (%)")
    ax.set_ylabel("share of examples per bin")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    figures.save(fig, path)
