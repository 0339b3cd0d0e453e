"""The PD–accuracy plane (paper Fig. 4): one core draws the comparator's and the study's figures."""
import ast
import pathlib

import pytest

from recsys.plots import pd as pd_plots
from recsys.plots import study as study_plots
from tests.conftest import REPO_ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cell(group, noise, beta, pd, change, **extra):
    return {"status": "ok", "group": group, "activation": group.lower(), "noise": noise, "beta": beta,
            "relative_pd": pd, "relative_pd_ci": [pd * 0.8, pd * 1.2], "auc_loss_change_pct": change, **extra}


def test_comparison_panel_groups_points_and_marks_the_baseline(tmp_path):
    points = [
        {"name": "base", "kind": "model", "relative_pd": 0.10, "loss_change_pct": 0.0},
        {"name": "new", "kind": "model", "relative_pd": 0.12, "loss_change_pct": -1.0},
        {"name": "ensemble1", "kind": "ensemble", "relative_pd": 0.05, "loss_change_pct": -2.0},
    ]
    panel = pd_plots.comparison_panel(points, title="PD vs AUC", baseline_name="base")
    assert panel.title == "PD vs AUC"
    assert [s.name for s in panel.series] == ["model", "ensemble"]
    assert [s.color for s in panel.series] == ["C0", "C1"]
    assert not any(s.joined for s in panel.series)  # kinds are not lines; only `group`s are
    base, new = panel.series[0].points
    assert (base.marker, base.size, new.marker, new.size) == ("*", 90.0, "o", 45.0)
    assert panel.series[1].points[0].marker == "s"
    assert pd_plots.comparison_panel([dict(p, group="g") for p in points], "t").series[0].joined
    path = tmp_path / "pd_vs_auc.png"
    pd_plots.plot_pd_vs_accuracy([panel], str(path), ylabel="AUC loss change vs baseline (%)")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_study_panels_follow_the_given_noise_order_and_beta_order(tmp_path):
    entries = [
        _cell("SmeLU", "init", 2.0, 0.08, -0.5),
        _cell("SmeLU", "init", 0.5, 0.10, -0.2),
        _cell("ReLU", "init", None, 0.12, 0.0, baseline=True),
        _cell("SmeLU", "shuffle", 1.0, 0.07, 0.1),
        _cell("ReLU", "shuffle", None, 0.11, 0.0, baseline=True),
        {"status": "failed", "group": "GELU", "noise": "shuffle", "relative_pd": None,
         "auc_loss_change_pct": None},
    ]
    panels = study_plots.study_panels(entries, ("shuffle", "init", "shuffle+init"))
    assert [p.title for p in panels] == ["noise: shuffle", "noise: init"]
    init = {s.name: s for s in panels[1].series}
    assert set(init) == {"SmeLU", "ReLU"}  # the failed cell is left out
    assert [p.label for p in init["SmeLU"].points] == ["β=0.5", "β=2"]
    assert init["SmeLU"].points[0].ci == pytest.approx((0.08, 0.12))
    assert (init["ReLU"].points[0].marker, init["ReLU"].points[0].size) == ("*", 160)
    assert init["ReLU"].color == panels[0].series[1].color == "C0"  # ReLU first, same colour in every panel
    # Panel order comes from the caller, not from a list this module owns.
    assert [p.title for p in study_plots.study_panels(entries, ("init", "shuffle"))] == ["noise: init",
                                                                                        "noise: shuffle"]
    path = tmp_path / "pd_vs_accuracy.png"
    study_plots.plot_pd_vs_accuracy(entries, str(path), ("shuffle", "init"))
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_ratio_panels_show_each_cells_paired_interval_below_its_noise_panel(tmp_path):
    paired = {"pd_ratio_ci": [0.6, 0.9], "pd_ratio_ci_unpaired": [0.2, 3.0], "pd_verdict": "lower"}
    entries = [
        _cell("ReLU", "shuffle", None, 0.11, 0.0, baseline=True, label="ReLU", pd_ratio_to_baseline=None),
        _cell("SmeLU", "shuffle", 1.0, 0.07, 0.1, label="SmeLU β=1", pd_ratio_to_baseline=0.7, **paired),
        _cell("SmeLU", "init", 1.0, 0.07, 0.1, label="SmeLU β=1", pd_ratio_to_baseline=1.1,
              pd_ratio_ci=[0.8, 1.4], pd_ratio_ci_unpaired=None, pd_verdict="not resolved"),
        _cell("ReLU", "init", None, 0.11, 0.0, baseline=True, label="ReLU"),
    ]
    panels = study_plots.ratio_panels(entries, ("shuffle", "init"))
    assert [p.title for p in panels] == ["PD ratio to ReLU, noise: shuffle", "PD ratio to ReLU, noise: init"]
    (shuffle,), (init,) = (p.ratios for p in panels)
    assert (shuffle.label, shuffle.ratio, shuffle.ci, shuffle.ci_unpaired, shuffle.verdict) == (
        "SmeLU β=1", 0.7, (0.6, 0.9), (0.2, 3.0), "lower")
    assert init.ci_unpaired is None and init.verdict == "not resolved"
    # The same colour as the cell's line in the PD–accuracy panel above it.
    smelu_line = next(s for s in study_plots.study_panels(entries, ("shuffle", "init"))[0].series
                      if s.name == "SmeLU")
    assert shuffle.color == smelu_line.color
    assert study_plots.ratio_panels([dict(e, pd_ratio_to_baseline=None) for e in entries], ("shuffle",)) == []
    path = tmp_path / "pd_vs_accuracy.png"
    study_plots.plot_pd_vs_accuracy(entries, str(path), ("shuffle", "init"))
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


@pytest.mark.parametrize("figure", ["pd_vs_accuracy", "convergence"])
def test_study_figures_without_finished_cells_still_write_a_png(tmp_path, figure):
    path = tmp_path / f"{figure}.png"
    getattr(study_plots, f"plot_{figure}")([{"status": "failed", "noise": "init"}], str(path), ("init",))
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plots_do_not_import_the_study():
    # recsys.study imports recsys.plots to write its figures; the figures take the study's labels and panel
    # order as data, so the dependency runs one way.
    for source in pathlib.Path(REPO_ROOT, "recsys", "plots").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "recsys.study" or n.startswith("recsys.study.") for n in names), source.name
