"""What the pyplot figures of `recsys.plots` share: a headless pyplot, a row of panels, and saving."""
from __future__ import annotations

#: Resolution of every saved figure.
DPI = 120


def pyplot():
    """matplotlib.pyplot on the Agg backend, so figures are written without a display (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_row(count: int, panel_size: tuple[float, float]):
    """A figure with `count` panels side by side, each `panel_size` inches; returns (figure, list of axes)."""
    fig, rows = panel_grid(1, count, panel_size)
    return fig, rows[0]


def panel_grid(rows: int, count: int, panel_size: tuple[float, float]):
    """A figure with `rows` rows of `count` panels, each `panel_size` inches; returns (figure, rows of axes)."""
    fig, axes = pyplot().subplots(rows, count, figsize=(panel_size[0] * count, panel_size[1] * rows), dpi=DPI,
                                  squeeze=False)
    return fig, [list(row) for row in axes]


def style_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, the panel title and a light grid."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)


def save(fig, path: str, suptitle: str | None = None, empty_text: str = "") -> None:
    """Writes `fig` to `path` and closes it; `suptitle` above all panels, `empty_text` (if any) in the first."""
    if empty_text:
        first = fig.axes[0]
        first.text(0.5, 0.5, empty_text, ha="center", va="center", transform=first.transAxes)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)
