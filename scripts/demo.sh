#!/usr/bin/env bash
# `make demo`: the main job end to end on the bundled Criteo sample. Each stage is a real entry point
# (python -m pipelines.<job>); the stages that exist so far run in order and the script stops on the first failure.
set -euo pipefail
OUT=${1:-demo_out}
PY=${PY:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
mkdir -p "$OUT"

echo "== 1. activation figure (paper Fig. 1) -> $OUT/activations.png"
$PY -m pipelines.plot_activations --output="$OUT/activations.png"

echo "== 2. activation benchmark (ratios to ReLU, quick mode)"
$PY -m recsys.bench.activations --quick
