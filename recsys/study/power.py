"""How many replicas a paired PD-ratio comparison needs: the power figure measured on subsets of the replicas.

`power_by_replicas(baseline, candidate, counts)` runs `recsys.metrics.paired.paired_pd_ratio` on the first r
replicas of both cells (replica r of both shares its seeds) for every r in `counts`, and fits how the smallest
resolvable PD change falls with r: the power figure is exp((z_{1−α/2} + z_power)·s) − 1 with s the bootstrap
standard deviation of log(PD ratio); s is fitted as c / sqrt(P) over the measured subsets, P = r(r−1)/2 the
number of replica pairs, and the fit is solved for the r at which the figure reaches `target`. The fit is an
extrapolation (pairs of one cell are not independent), reported next to the measured points, never instead of them.

    python -m pipelines.study_power --workdir=runs/study_verdict --output=docs/results/study_verdict_power.json
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recsys.metrics import paired


def power_by_replicas(baseline: np.ndarray, candidate: np.ndarray, counts: Sequence[int], resamples: int = 200,
                      confidence: float = 0.95, power: float = 0.8, seed: int = 0,
                      target: float = 0.15) -> dict[str, Any]:
    """Measured power figure for each replica count in `counts` and the fitted count that reaches `target`.

    Args:
      baseline, candidate: held-out predictions [R, T] of the two cells, replica r of both with the same seeds.
      counts: replica counts to measure (each in [3, min R]; 2 replicas make one pair and no interval).
      target: the smallest PD change (a fraction) the fit solves for.
    """
    available = min(baseline.shape[0], candidate.shape[0])
    bad = [r for r in counts if not 3 <= int(r) <= available]
    if bad:
        raise ValueError(f"replica counts must be in [3, {available}] (the replicas both cells have). Received: {bad}")
    points = []
    for r in counts:
        result = paired.paired_pd_ratio(baseline[:r], candidate[:r], num_resamples=resamples, confidence=confidence,
                                        power=power, seed=seed)
        points.append({"replicas": int(r), "pairs": int(r) * (int(r) - 1) // 2, "pd_ratio": result.ratio,
                       "pd_ratio_ci": result.ci, "verdict": result.verdict,
                       "detectable_change": result.detectable_change, "log_ratio_sd": result.log_ratio_sd})
    usable = [p for p in points if p["log_ratio_sd"]]
    fit = None
    if usable:
        # s = c / sqrt(P): least squares of s·sqrt(P) = c, i.e. c = mean of s·sqrt(P) weighted equally.
        c = float(np.mean([p["log_ratio_sd"] * math.sqrt(p["pairs"]) for p in usable]))
        z = paired.z_sum(confidence, power)
        pairs_needed = (z * c / math.log1p(target)) ** 2
        replicas_needed = math.ceil((1 + math.sqrt(1 + 8 * pairs_needed)) / 2)
        fit = {"model": "log_ratio_sd = c / sqrt(pairs)", "c": c, "target": target,
               "pairs_needed": pairs_needed, "replicas_needed": replicas_needed}
    return {"points": points, "fit": fit, "resamples": resamples, "confidence": confidence, "power": power,
            "seed": seed}
