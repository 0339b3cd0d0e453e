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


def _count_text(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _ratio_ci(ci: list[float] | None) -> str:
    return "–" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _auc_ci(ci: list[float] | None) -> str:
    return "–" if not ci else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def verdict_table(entries: list[dict[str, Any]]) -> list[str]:
    """One row per single-model cell against the baseline of its noise source (`runner.add_paired_comparisons`);
    the baseline's own row gives its PD and AUC. Empty when no cell was compared."""
    compared = [e for e in entries if e.get("pd_verdict") is not None]
    if not compared:
        return []
    lines = [
        "| noise | setting | parameters | R paired | PD ratio to ReLU [95% paired CI] | unpaired CI | PD verdict "
        "| detectable PD change | AUC difference [95% CI] | AUC verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for noise in NOISE_SOURCES:
        rows = [e for e in compared if e["noise"] == noise]
        if not rows:
            continue
        base = next((e for e in entries if e["noise"] == noise and e.get("baseline")), None)
        if base is not None:
            lines.append(
                f"| {noise} | {base['label']} (baseline: PD {_pct(base['relative_pd'])}%, AUC {_num(base['auc'])}) | "
                f"{_count_text(base.get('parameters'))} | {base['replicas']} | 1 | | | | | |")
        for e in rows:
            ratio = "–" if e["pd_ratio_to_baseline"] is None else f"{e['pd_ratio_to_baseline']:.2f}"
            detectable = e.get("pd_ratio_detectable_change")
            lines.append(
                f"| {noise} | {e['label']} | {_count_text(e.get('parameters'))} | {e['paired_replicas']} | "
                f"{ratio} {_ratio_ci(e['pd_ratio_ci'])} | {_ratio_ci(e['pd_ratio_ci_unpaired'])} | "
                f"**{e['pd_verdict']}** | {_pct(detectable, 0) + '%' if detectable is not None else '–'} | "
                f"{_signed(e['auc_difference'], 4)} {_auc_ci(e['auc_difference_ci'])} | **{e['auc_verdict']}** |"
            )
    return lines


def verdict_section(results: dict[str, Any]) -> list[str]:
    """The verdict table with how to read it (results.md opens with it)."""
    table = verdict_table(results["cells"])
    if not table:
        return []
    analysis = results["study"]["analysis"]
    level = f"{100 * float(analysis.get('confidence', 0.95)):g}%"
    power = f"{100 * float(analysis.get('power', 0.8)):g}%"
    return [
        "## Verdicts against ReLU (paired)",
        "",
        f"Each cell against the ReLU cell of its noise source, replica r of both trained with the same seeds: "
        f"a {level} bootstrap that resamples the same replicas and the same examples in both cells "
        f"({analysis.get('bootstrap')} resamples). PD ratio = PD_cell / PD_ReLU over the first *R paired* "
        "replicas of each; *unpaired CI*: the two cells resampled independently, for comparison. AUC difference = "
        "AUC_cell − AUC_ReLU (mean over replicas; positive = more accurate). Verdict: **lower** / **higher** when "
        "the whole interval lies below / above 1 (ratio) or 0 (difference), else **not resolved**. *Detectable PD "
        f"change*: the smallest PD change these replicas and examples resolve with {power} power; when a verdict "
        "is not resolved, true differences smaller than that need more replicas.",
        "",
        *table,
        "",
    ]


def cell_table(entries: list[dict[str, Any]]) -> list[str]:
    """One row per cell: PD (mean [CI], median, max over pairs), progressive PD, accuracy, change vs ReLU, speed."""
    lines = [
        "| setting | β | R | pairs | relative PD % | 95% CI | median | max | PD, means matched % | progressive PD % "
        "| AUC | logloss | calibration | AUC-loss change vs ReLU % | PD / ReLU PD | parameters | examples/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        if e.get("status") != "ok":
            lines.append(f"| {e['label']} | {_beta(e)} | {e['replicas']} | – | failed: {e.get('error', '')[:80]} "
                         "| | | | | | | | | | | | |")
            continue
        rate = e.get("examples_per_sec")
        rate_text = _rate(rate) if rate is not None else f"({_rate(e.get('member_examples_per_sec'))} per member)"
        lines.append(
            f"| {e['label']} | {_beta(e)} | {e['replicas']} | {e['pairs']} | {_pct(e['relative_pd'])} | "
            f"{_ci(e['relative_pd_ci'])} | {_pct(e['relative_pd_median'])} | {_pct(e['relative_pd_max'])} | "
            f"{_pct(e.get('relative_pd_mean_matched'))} | {_pct(e.get('progressive_relative_pd'))} | "
            f"{_num(e['auc'])} | {_num(e['logloss'], 5)} | {_num(e.get('calibration'), 3)} | "
            f"{_signed(e.get('auc_loss_change_pct'))} | {_num(e.get('relative_pd_vs_relu'), 2)} | "
            f"{_count_text(e.get('parameters'))} | {rate_text} |"
        )
    return lines


def _ground_truth_line(truth: dict[str, Any] | None) -> list[str]:
    """The generated log's ground truth and its oracle (what a perfect model would score), when known."""
    if not truth or truth.get("oracle_auc") is None:
        return []
    return [f"Generated log: `{truth['ground_truth']}` ground truth; oracle AUC {truth['oracle_auc']:.4f}, log loss "
            f"{truth['oracle_logloss']:.5f} (the true probabilities on {truth['oracle_rows']:,} rows of the whole log, "
            "the ceiling for the models' held-out AUC below)."]


def to_markdown(results: dict[str, Any]) -> str:
    study, run = results["study"], results["run"]
    grid = study["grid"]
    train = study["train_config"]
    lines = [
        f"# Study `{study['name']}`",
        "",
        *verdict_section(results),
        f"Held-out data: {study['eval_examples']:,} examples ({study['eval_positives']:,} positives) in "
        f"{len(study['eval_files'])} file(s); training stream: {train['data']['max_examples'] or 'all'} examples "
        f"of `{_short(study['train'])}`, shuffle={train['data']['shuffle']} (window {train['data']['shuffle_buffer']}),"
        f" batch {train['data']['batch_size']}.",
        *_ground_truth_line(study.get("ground_truth")),
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
    if any("pd_by_frequency" in e for e in cells):
        lines += ["", "## Where the PD comes from", ""] + sources_table(cells, study.get("frequency"))
    if results.get("distillation"):
        lines += ["", "## Distillation", ""] + distillation_table(results["distillation"])
    return "\n".join(lines) + "\n"


def sources_table(entries: list[dict[str, Any]], frequency: dict[str, Any] | None) -> list[str]:
    """Per cell: PD between replicas next to a replica's PD with itself over the last checkpoint interval, and PD
    by the training frequency of the example's rarest value (recsys.study.sources)."""
    buckets = list((frequency or {}).get("buckets") or {})
    bounds = ", ".join(f"{name} [{low}, {'∞' if high is None else high})" for name, (low, high) in
                       (frequency or {}).get("buckets", {}).items())
    lines = [
        "*Self PD*: relative PD between each replica at its checkpoint before the final one and the same replica at "
        "the end (mean over replicas), over the examples between them; *self / replica*: its ratio to the PD "
        "between replicas (near 1: the replicas' PD is mostly jitter of the last steps, not different solutions). "
        f"*By frequency*: held-out examples split by the training count of their rarest categorical value "
        f"({bounds or 'no buckets'}): share of examples / relative PD % over them / share of the total PD. Counts: "
        f"{(frequency or {}).get('counts', 'not available')}.",
        "",
        _row(["setting", "noise", "R", "relative PD %", "self PD %", "examples apart", "self / replica", *buckets]),
        _row(["---"] * (7 + len(buckets))),
    ]
    for e in entries:
        if e.get("status") != "ok" or "pd_by_frequency" not in e:
            continue
        split = e.get("pd_by_frequency") or {}
        cells = []
        for name in buckets:
            b = split.get(name)
            cells.append("–" if not b else
                         f"{100.0 * b['fraction']:.1f}% / {_pct(b['relative_pd'])} / {_pct(b['pd_share'], 0)}%")
        apart = e.get("self_pd_examples_apart")
        lines.append(_row([e["label"], e["noise"], str(e["replicas"]), _pct(e["relative_pd"]),
                           _pct(e.get("self_relative_pd")), "–" if apart is None else f"{apart:,}",
                           _num(e.get("self_to_replica_pd"), 2), *cells]))
    return lines


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _count(value: int | None, total: int | None) -> str:
    if value is None:
        return "never"
    share = f" ({100.0 * value / total:.0f}%)" if total else ""
    return f"{value:,}{share}"


def distillation_table(items: list[dict[str, Any]]) -> list[str]:
    """Students against the same activation alone (analysis.distillation_summary)."""
    lines = [
        "Each student cell trains R students and one online teacher in one job on one order (noise `init`); the "
        "students learn from the teacher's progressive predictions. *Alone*: the same activation without a "
        "teacher. *AUC at alone's PD*: the students' AUC interpolated over the distillation weights at the alone "
        "cell's PD (– when that PD is outside the students' range). *Examples to reach*: from which point on "
        "the mean cumulative progressive AUC stays at or above the alone cell's final progressive AUC (share of "
        "the stream; never = it ends below). examples/s: stream examples per second of the whole job (a student "
        "job also trains its teacher).",
        "",
        "| student | w | PD % | AUC | alone PD % | alone AUC | AUC-loss change vs alone % | AUC at alone's PD "
        "| examples to reach alone's progressive AUC | alone reaches it at | teacher alone PD % | teacher alone AUC "
        "| teacher progressive AUC (in the job) | examples/s (student job / alone) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in items:
        total = i.get("train_examples")
        lines.append(
            f"| {i['student']} | {i['weight']:g} | {_pct(i['student_relative_pd'])} | {_num(i['student_auc'])} | "
            f"{_pct(i['alone_relative_pd'])} | {_num(i['alone_auc'])} | "
            f"{_signed(i['student_auc_loss_change_vs_alone_pct'])} | {_num(i['student_auc_at_alone_pd'])} | "
            f"{_count(i['examples_to_reach_alone_auc'], total)} | "
            f"{_count(i['alone_examples_to_reach_own_auc'], total)} | {_pct(i['teacher_alone_relative_pd'])} | "
            f"{_num(i['teacher_alone_auc'])} | {_num(i['teacher_progressive_auc_in_student_job'])} | "
            f"{_rate(i['student_examples_per_sec'])} / {_rate(i['alone_examples_per_sec'])} |"
        )
    codistilled = {c["cell"]: c for i in items for c in i.get("codistilled", [])}
    if codistilled:
        lines += ["", "Co-distilled cells of the same noise source (PD between the co-distilled replicas):", "",
                  "| cell | PD % | AUC | examples/s |", "|---|---|---|---|"]
        for c in codistilled.values():
            lines.append(f"| {c['label']} | {_pct(c['relative_pd'])} | {_num(c['auc'])} | "
                         f"{_rate(c['examples_per_sec'])} |")
    return lines


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def console_summary(results: dict[str, Any]) -> str:
    """A table a user reads in ten seconds (the single-model cells: accuracy, calibration, PD between replicas,
    paired PD ratio to ReLU) and one sentence per compared cell on what it means, whatever the numbers say.
    `pipelines.study` prints it at the end of every run; results.md has everything else."""
    cells = [e for e in results["cells"] if not e.get("ensemble") and e.get("status") == "ok"]
    header = (f"{'noise':8} {'setting':22} {'R':>2} {'prog. AUC':>9} {'held-out AUC':>12} {'calib.':>6} "
              f"{'PD between replicas [95% CI]':>29} {'PD ratio to ReLU [paired CI]':>29} {'verdict':>12}")
    lines = [header, "-" * len(header)]
    for e in cells:
        pd_ci = e.get("relative_pd_ci")
        pd_text = f"{_pct(e['relative_pd'])}% [{_pct(pd_ci[0])}, {_pct(pd_ci[1])}]" if pd_ci else \
            f"{_pct(e['relative_pd'])}%"
        if e.get("baseline"):
            ratio, verdict = "1 (baseline)", ""
        elif e.get("pd_ratio_to_baseline") is not None:
            ratio = f"{e['pd_ratio_to_baseline']:.2f} {_ratio_ci(e['pd_ratio_ci'])}"
            verdict = e.get("pd_verdict") or ""
        else:
            ratio, verdict = "–", ""
        lines.append(f"{e['noise']:8} {e['label'][:22]:22} {e['replicas']:>2} {_num(e.get('progressive_auc')):>9} "
                     f"{_num(e.get('auc')):>12} {_num(e.get('calibration'), 3):>6} {pd_text:>29} {ratio:>29} "
                     f"{verdict:>12}")
    lines.append("")
    level = f"{100 * float(results['study']['analysis'].get('confidence', 0.95)):g}%"
    for e in cells:
        if e.get("baseline") or e.get("pd_verdict") is None:
            continue
        lines.append(_meaning(e, level))
    return "\n".join(lines) + "\n"


def _meaning(entry: dict[str, Any], level: str) -> str:
    """One sentence: what the paired comparison of `entry` with ReLU says (and does not say)."""
    name, ratio, verdict = entry["label"], entry["pd_ratio_to_baseline"], entry["pd_verdict"]
    accuracy = {
        "lower": f"but it is less accurate (AUC {_signed(entry['auc_difference'], 4)})",
        "higher": f"and it is more accurate (AUC {_signed(entry['auc_difference'], 4)})",
    }.get(entry.get("auc_verdict"), "with no AUC difference resolved")
    detectable = entry.get("pd_ratio_detectable_change")
    if verdict == "lower":
        return (f"{name}: retrained replicas disagree less than ReLU's ({ratio:.2f}× the PD, {level} paired interval "
                f"below 1), {accuracy}.")
    if verdict == "higher":
        return (f"{name}: retrained replicas disagree more than ReLU's ({ratio:.2f}× the PD, {level} paired interval "
                f"above 1), {accuracy}.")
    reach = f"; these replicas can only resolve PD changes of about {_pct(detectable, 0)}% or more" \
        if detectable is not None else ""
    return (f"{name}: PD {ratio:.2f}× ReLU's, not resolved at {level}{reach} (more replicas or held-out rows are "
            f"needed to tell), {accuracy}.")
