"""The study's Fig. 4 (Shamir & Lin 2022): relative PD in % vs AUC-loss change in % from ReLU.

One panel per noise source; one point per cell (β), a line per activation family through its β values (in β
order), horizontal bars for the PD's 95% interval; ReLU is a star at 0, k-ensembles are squares (diamonds at
equal parameter budget). Lower-left is better on both axes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recsys.study.grid import DISPLAY_NAMES, NOISE_SOURCES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _group(entry: Mapping[str, Any]) -> str:
    """The line a point belongs to: its activation family and variant (results.json "group")."""
    return entry.get("group") or DISPLAY_NAMES.get(entry["activation"], entry["activation"])


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


def plot_pd_vs_accuracy(entries: Sequence[Mapping[str, Any]], path: str, title: str | None = None) -> None:
    """Writes the PNG of the cells in `entries` (results.json "cells"); failed cells are left out."""
    plt = _pyplot()
    usable = [e for e in entries if e.get("status") == "ok" and e.get("relative_pd") is not None
              and e.get("auc_loss_change_pct") is not None]
    noises = [n for n in NOISE_SOURCES if any(e["noise"] == n for e in usable)] or ["shuffle"]
    fig, axes = plt.subplots(1, len(noises), figsize=(6.4 * len(noises), 5.0), dpi=120, squeeze=False)
    families = sorted({_group(e) for e in usable}, key=lambda g: (not g.startswith("ReLU"), g))
    colors = {group: f"C{i % 10}" for i, group in enumerate(families)}
    for ax, noise in zip(axes[0], noises, strict=True):
        panel = [e for e in usable if e["noise"] == noise]
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for entry in panel:
            groups.setdefault(_group(entry), []).append(entry)
        for group, members in groups.items():
            members = sorted(members, key=lambda e: (e.get("beta") is None, e.get("beta") or 0.0,
                                                     e.get("weight") or 0.0))
            xs = [100.0 * e["relative_pd"] for e in members]
            ys = [e["auc_loss_change_pct"] for e in members]
            color = colors[group]
            if len(members) > 1:
                ax.plot(xs, ys, "-", color=color, alpha=0.7, zorder=2)
            for entry, x, y in zip(members, xs, ys, strict=True):
                ci = entry.get("relative_pd_ci")
                if ci:
                    ax.errorbar([x], [y], xerr=[[x - 100.0 * ci[0]], [100.0 * ci[1] - x]], fmt="none",
                                ecolor=color, alpha=0.35, capsize=2, zorder=1)
                marker, size = _marker(entry)
                ax.scatter([x], [y], marker=marker, s=size, color=color, edgecolors="black", linewidths=0.5,
                           zorder=3)
                text = _point_label(entry)
                if text:
                    ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            ax.plot([], [], "-", marker=_marker(members[0])[0], color=color, label=group)
        ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
        _style_panel(ax, "relative prediction difference (%)", "AUC-loss change vs ReLU (%)", noise)
        if panel:
            right = max(100.0 * (e["relative_pd_ci"][1] if e.get("relative_pd_ci") else e["relative_pd"])
                        for e in panel)
            ax.set_xlim(left=0.0, right=max(right * 1.1, 1e-3))
        ax.legend(fontsize=7, loc="best")
    _save(plt, fig, axes, "" if usable else "no finished cells",
          title or "PD vs AUC loss change from ReLU (lower-left is better)", path)


def _style_panel(ax, xlabel: str, ylabel: str, noise: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"noise: {noise}")
    ax.grid(True, alpha=0.3)


def _save(plt, fig, axes, empty_text: str, title: str, path: str) -> None:
    """Writes `fig` to `path` with `title`; `empty_text` (if any) is shown in the first panel."""
    if empty_text:
        axes[0][0].text(0.5, 0.5, empty_text, ha="center", va="center", transform=axes[0][0].transAxes)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_convergence(entries: Sequence[Mapping[str, Any]], path: str, title: str | None = None) -> None:
    """Writes the PNG of every cell's mean cumulative progressive AUC against examples consumed (one panel per
    noise source; results.json "progressive_auc_curve"). Cells without a curve are left out."""
    plt = _pyplot()
    usable = [e for e in entries if e.get("status") == "ok" and not e.get("ensemble")
              and (e.get("progressive_auc_curve") or {}).get("examples")]
    noises = [n for n in NOISE_SOURCES if any(e["noise"] == n for e in usable)] or ["init"]
    fig, axes = plt.subplots(1, len(noises), figsize=(6.4 * len(noises), 4.6), dpi=120, squeeze=False)
    for ax, noise in zip(axes[0], noises, strict=True):
        for index, entry in enumerate(e for e in usable if e["noise"] == noise):
            curve = entry["progressive_auc_curve"]
            points = [(x, y) for x, y in zip(curve["examples"], curve["auc"], strict=True) if y is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            style = "--" if entry.get("role") else "-"
            ax.plot(xs, ys, style, color=f"C{index % 10}", label=entry["label"], linewidth=1.2)
        _style_panel(ax, "examples consumed", "progressive AUC (cumulative, mean over replicas)", noise)
        ax.legend(fontsize=7, loc="lower right")
    _save(plt, fig, axes, "" if usable else "no curves", title or "Progressive AUC over the stream", path)
