"""Figures of prediction difference: the PD–accuracy plane (the paper's Fig. 4) and PD histograms.

Reference: Shamir & Lin 2022 (arXiv:2202.06499), Fig. 4 plots PD in % against PQAUC loss change in % from
a ReLU baseline, one point per configuration. Both functions write a PNG and need no display (Agg backend).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_MARKERS = {"model": "o", "ensemble": "s", "baseline": "*"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pd_vs_accuracy(
    points: Sequence[Mapping[str, Any]],
    path: str,
    accuracy_name: str = "AUC",
    baseline_name: str | None = None,
    title: str | None = None,
) -> None:
    """Scatter of points {name, relative_pd (fraction), loss_change_pct, kind?, group?} in the Fig. 4 plane.

    x = relative PD in %, y = `accuracy_name` loss change in % vs the baseline (lower is better on both axes,
    so the best corner is bottom-left). `kind` ("model" | "ensemble") picks the marker; points sharing a
    `group` share a colour and are joined by a line in the given order (e.g. one line per activation over β).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 5.0), dpi=120)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for point in points:
        groups.setdefault(str(point.get("group", point.get("kind", "model"))), []).append(point)
    for color_index, (group, members) in enumerate(groups.items()):
        color = f"C{color_index % 10}"
        xs = [100.0 * p["relative_pd"] for p in members]
        ys = [p["loss_change_pct"] for p in members]
        if "group" in members[0] and len(members) > 1:
            ax.plot(xs, ys, "-", color=color, alpha=0.6)
        for point, x, y in zip(members, xs, ys, strict=True):
            kind = "baseline" if point["name"] == baseline_name else point.get("kind", "model")
            ax.scatter([x], [y], marker=_MARKERS.get(kind, "o"), s=90 if kind == "baseline" else 45, color=color,
                       edgecolors="black", linewidths=0.5, zorder=3)
            ax.annotate(str(point["name"]), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.scatter([], [], marker="o", color=color, label=group)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("relative prediction difference (%)")
    ax.set_ylabel(f"{accuracy_name} loss change vs baseline (%)")
    if points:
        xmax = max(100.0 * p["relative_pd"] for p in points)
        ax.set_xlim(left=0.0, right=max(xmax * 1.25, 1e-3))
    ax.set_title(title or f"PD vs {accuracy_name} loss (lower-left is better)")
    ax.grid(True, alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=120)
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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
