"""How many replicas a study needs to resolve a given PD change: the power figure on subsets of its replicas.

    python -m pipelines.study_power --workdir=runs/study_verdict --output=docs/results/study_verdict_power.json \\
        [--baseline=shuffle/relu] [--cells=shuffle/smelu_beta0.25,shuffle/smelu_beta1] [--target=0.15]

Reads the stored held-out predictions of a finished study (`<workdir>/cells/<cell>/predictions.npy`) and, for every
compared cell, measures the paired PD-ratio power figure with the first r replicas for r = 3 .. R, then fits the R
that would resolve a `--target` change (`recsys.study.power`). Writes one JSON file. Exit 1 with a one-line error.
"""
import json
import os
import sys

from absl import app, flags, logging

import recsys  # noqa: F401
from recsys import atomic, console

_WORKDIR = flags.DEFINE_string("workdir", None, "A finished study's workdir.")
_OUTPUT = flags.DEFINE_string("output", None, "JSON file to write.")
_BASELINE = flags.DEFINE_string("baseline", "shuffle/relu", "Cell id of the baseline (cells/<id>/).")
_CELLS = flags.DEFINE_list("cells", ["shuffle/smelu_beta0.25", "shuffle/smelu_beta1"], "Cell ids to compare.")
_TARGET = flags.DEFINE_float("target", 0.15, "The PD change (a fraction) to find the replica count for.")
_RESAMPLES = flags.DEFINE_integer("resamples", 200, "Bootstrap resamples.")
flags.mark_flags_as_required(["workdir", "output"])


def main(argv: list[str]) -> None:
    console.configure(logging.get_verbosity())
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import numpy as np

    from recsys.study.power import power_by_replicas

    try:
        def load(cell: str) -> np.ndarray:
            path = os.path.join(_WORKDIR.value, "cells", cell, "predictions.npy")
            if not os.path.exists(path):
                raise FileNotFoundError(f"no stored predictions for cell {cell!r}: {path} (run the study first)")
            return np.load(path).astype(np.float64)

        baseline = load(_BASELINE.value)
        out = {"workdir": os.path.abspath(_WORKDIR.value), "baseline": _BASELINE.value, "cells": {}}
        for cell in _CELLS.value:
            candidate = load(cell)
            counts = range(3, min(baseline.shape[0], candidate.shape[0]) + 1)
            out["cells"][cell] = power_by_replicas(baseline, candidate, counts, resamples=_RESAMPLES.value,
                                                   target=_TARGET.value)
            fit = out["cells"][cell]["fit"]
            logging.info("%s vs %s: detectable change with R=%s: %s; fitted R for %.0f%%: %s", cell, _BASELINE.value,
                         [p["replicas"] for p in out["cells"][cell]["points"]],
                         [round(p["detectable_change"], 3) if p["detectable_change"] else None
                          for p in out["cells"][cell]["points"]],
                         100 * _TARGET.value, fit and fit["replicas_needed"])
        atomic.write_json(_OUTPUT.value, out)
    except (ValueError, FileNotFoundError) as e:
        print(f"pipelines.study_power: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({cell: value["fit"] for cell, value in out["cells"].items()}, indent=2))


if __name__ == "__main__":
    from pipelines import parse_flags

    app.run(main, flags_parser=parse_flags)
