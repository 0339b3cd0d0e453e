"""results.md: the study's results.json as tables a person reads (PD and changes in percent)."""
from __future__ import annotations

from typing import Any

from recsys.study.grid import NOISE_SOURCES


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100.0 * value:.{digits}f}"


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "–" if not ci else f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _beta(entry: dict[str, Any]) -> str:
    if entry.get("beta_per_layer"):
        return "/".join(f"{b:g}" for b in entry["beta_per_layer"])
    return "–" if entry.get("beta") is None else f"{entry['beta']:g}"


def cell_table(entries: list[dict[str, Any]]) -> list[str]:
    """One row per cell: PD (mean [CI], median, max over pairs), progressive PD, accuracy, change vs ReLU, speed."""
    lines = [
        "| setting | β | R | pairs | relative PD % | 95% CI | median | max | PD, means matched % | progressive PD % "
        "| AUC | logloss | calibration | AUC-loss change vs ReLU % | PD / ReLU PD | examples/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        if e.get("status") != "ok":
            lines.append(f"| {e['label']} | {_beta(e)} | {e['replicas']} | – | failed: {e.get('error', '')[:80]} "
                         "| | | | | | | | | | | |")
            continue
        rate = e.get("examples_per_sec")
        rate_text = _rate(rate) if rate is not None else f"({_rate(e.get('member_examples_per_sec'))} per member)"
        lines.append(
            f"| {e['label']} | {_beta(e)} | {e['replicas']} | {e['pairs']} | {_pct(e['relative_pd'])} | "
            f"{_ci(e['relative_pd_ci'])} | {_pct(e['relative_pd_median'])} | {_pct(e['relative_pd_max'])} | "
            f"{_pct(e.get('relative_pd_mean_matched'))} | {_pct(e.get('progressive_relative_pd'))} | "
            f"{_num(e['auc'])} | {_num(e['logloss'], 5)} | {_num(e.get('calibration'), 3)} | "
            f"{_signed(e.get('auc_loss_change_pct'))} | {_num(e.get('relative_pd_vs_relu'), 2)} | {rate_text} |"
        )
    return lines


def to_markdown(results: dict[str, Any]) -> str:
    study, run = results["study"], results["run"]
    grid = study["grid"]
    train = study["train_config"]
    lines = [
        f"# Study `{study['name']}`",
        "",
        f"Held-out data: {study['eval_examples']:,} examples ({study['eval_positives']:,} positives) in "
        f"{len(study['eval_files'])} file(s); training stream: {train['data']['max_examples'] or 'all'} examples "
        f"of `{_short(study['train'])}`, shuffle={train['data']['shuffle']} (window {train['data']['shuffle_buffer']}),"
        f" batch {train['data']['batch_size']}.",
        f"Model: hidden {list(train['model']['hidden_units'])}, activation clip ±{train['model']['activation_clip']}, "
        f"normalization={train['model']['normalization']}, categorical={train['model']['categorical']!r}, "
        f"numeric={train['model']['numeric']!r}, embedding_dim={train['model']['embedding_dim']}; optimizer "
        f"{train['optimizer']['dense']} lr {train['optimizer']['dense_learning_rate']} (embeddings Adagrad "
        f"lr {train['optimizer']['embedding_learning_rate']}).",
        f"Replicas: {grid['replicas']} per cell (ensemble cells: see R); trainer mode: {study['trainer_mode']}.",
        f"Run: commit {run.get('commit') or 'unknown'}, {run['machine']}, {run['wall_seconds']:.0f} s wall for this "
        f"invocation ({run['cells_trained']} cells trained, {run['cells_skipped']} reused), finished "
        f"{run['finished_at']}.",
        "",
        "Relative PD (Shamir & Lin 2022, eq. 2) between every pair of replicas on the held-out data, in %: mean "
        "over pairs with a 95% bootstrap interval over replicas and examples, median and max over pairs. "
        "AUC/logloss: mean over replicas on the held-out data. AUC-loss change = 100·(L − L_ReLU)/L_ReLU with "
        "L = 1 − AUC (negative = more accurate than ReLU). Progressive PD: the trainer's, on each batch before "
        "training (replica mode only). PD, means matched: the PD left after shifting each model's logits by a "
        "constant to a common mean prediction (a diagnostic: it removes global calibration offsets). Calibration: "
        "mean prediction / click rate on the held-out data. Ensembles: mean of k replicas vs the mean of k other "
        "replicas, every split.",
    ]
    cells = results["cells"]
    for noise in NOISE_SOURCES:
        entries = [e for e in cells if e["noise"] == noise]
        if not entries:
            continue
        lines += ["", f"## Noise: {noise}", ""] + cell_table(entries)
    return "\n".join(lines) + "\n"


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
