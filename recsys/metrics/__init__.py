"""Metrics for reproducibility (prediction difference) and accuracy, batch and streaming.

The trainer's progressive validation and the comparator job use these same functions, so no metric is
computed two ways. PD values are fractions (0.07 means 7%). See docs/compare.md.
"""
from recsys.metrics.accuracy import (
    LOGLOSS_EPSILON,
    PQAUC,
    auc,
    auc_from_histograms,
    auc_loss_change_pct,
    calibration,
    logloss,
    logloss_terms,
    pqauc,
)
from recsys.metrics.bootstrap import (
    Interval,
    bootstrap_ci,
    bootstrap_mean_ci,
    bootstrap_mean_ci_from_chunks,
    pair_bootstrap_ci,
    replica_bootstrap_ci,
)
from recsys.metrics.pd import (
    KL_EPSILON,
    PD_ZERO_THRESHOLD,
    absolute_pd,
    absolute_pd_terms,
    all_pairs,
    flip_rate,
    mean_std,
    pair_terms,
    per_example_std,
    relative_pd,
    relative_pd_terms,
    swap_rate,
    symmetric_kl,
    symmetric_kl_terms,
    topk_overlap,
)
from recsys.metrics.streaming import ProgressiveMetrics, ProgressivePD

__all__ = [
    "KL_EPSILON",
    "LOGLOSS_EPSILON",
    "PD_ZERO_THRESHOLD",
    "PQAUC",
    "Interval",
    "ProgressiveMetrics",
    "ProgressivePD",
    "absolute_pd",
    "absolute_pd_terms",
    "all_pairs",
    "auc",
    "auc_from_histograms",
    "auc_loss_change_pct",
    "bootstrap_ci",
    "bootstrap_mean_ci",
    "bootstrap_mean_ci_from_chunks",
    "calibration",
    "flip_rate",
    "logloss",
    "logloss_terms",
    "mean_std",
    "pair_bootstrap_ci",
    "pair_terms",
    "per_example_std",
    "pqauc",
    "relative_pd",
    "relative_pd_terms",
    "replica_bootstrap_ci",
    "swap_rate",
    "symmetric_kl",
    "symmetric_kl_terms",
    "topk_overlap",
]
