"""The study's console summary: the short table and one sentence per compared cell, for every verdict."""
from recsys.study.report import console_summary


def _cell(label, baseline=False, **paired):
    entry = {"label": label, "noise": "shuffle", "replicas": 6, "status": "ok", "ensemble": False,
             "baseline": baseline, "progressive_auc": 0.7, "auc": 0.69, "calibration": 1.01, "relative_pd": 0.12,
             "relative_pd_ci": [0.1, 0.14], "pd_verdict": None}
    entry.update(paired)
    return entry


def _paired(ratio, verdict, auc_verdict="not resolved", detectable=0.2):
    return {"pd_ratio_to_baseline": ratio, "pd_ratio_ci": [ratio - 0.1, ratio + 0.1], "pd_verdict": verdict,
            "auc_difference": -0.001, "auc_verdict": auc_verdict, "pd_ratio_detectable_change": detectable}


def test_console_summary_says_what_each_verdict_means():
    results = {"study": {"analysis": {"confidence": 0.95}}, "cells": [
        _cell("ReLU", baseline=True),
        _cell("SmeLU β=1", **_paired(0.6, "lower", auc_verdict="lower")),
        _cell("SmeLU β=0.25", **_paired(0.95, "not resolved", detectable=0.31)),
        _cell("Swish β=1", **_paired(1.4, "higher", auc_verdict="higher")),
        dict(_cell("ReLU 3-ensemble"), ensemble=True),
    ]}
    text = console_summary(results)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["noise", "setting", "R"]
    assert "1 (baseline)" in lines[2] and "12.00% [10.00, 14.00]" in lines[2]
    assert "0.60 [0.50, 0.70]" in lines[3] and lines[3].rstrip().endswith("lower")
    assert "3-ensemble" not in text  # ensembles are in results.md, not in the ten-second table
    assert "SmeLU β=1: retrained replicas disagree less than ReLU's (0.60× the PD" in text
    assert "but it is less accurate (AUC -0.0010)" in text
    assert "SmeLU β=0.25: PD 0.95× ReLU's, not resolved at 95%; these replicas can only resolve PD changes of " \
           "about 31% or more" in text
    assert "Swish β=1: retrained replicas disagree more than ReLU's (1.40× the PD" in text
    assert "and it is more accurate" in text


def test_a_generated_log_s_oracle_reaches_results_md(tmp_path):
    """The study records the generator's oracle (recsys.study.data._ground_truth) and results.md states it."""
    from recsys.data.synthetic import GeneratorConfig, write_clicklogs
    from recsys.study import data, report

    path = str(tmp_path / "clicks.tsv.gz")
    summary = write_clicklogs(path, GeneratorConfig(rows=3000, seed=1, ctr=0.2, ground_truth="deep"),
                              summary_path=f"{path}.summary.json")
    truth = data._ground_truth(f"{path}.summary.json")
    assert truth == {"ground_truth": "deep", "oracle_auc": summary.oracle_auc, "oracle_logloss": summary.oracle_logloss,
                     "oracle_rows": summary.oracle_rows}
    assert 0.5 < truth["oracle_auc"] < 1.0 and truth["oracle_rows"] > 2900
    line, = report._ground_truth_line(truth)
    assert f"`deep` ground truth; oracle AUC {truth['oracle_auc']:.4f}" in line
    assert report._ground_truth_line(None) == [] and data._ground_truth(str(tmp_path / "none.json")) is None
