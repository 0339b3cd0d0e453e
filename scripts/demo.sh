#!/usr/bin/env bash
# `make demo`: the main job end to end on the bundled Criteo sample, every stage a real entry point
# (python -m pipelines.<job>), stopping on the first failure:
#   preprocess (Beam) -> train ReLU and SmeLU (online, progressive validation) -> compare (PD, AUC) -> report.
# Rerunning reuses finished stages (the Beam output, finished training workdirs).
set -euo pipefail
OUT=${1:-demo_out}
PY=${PY:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
mkdir -p "$OUT"
SAMPLE=data/criteo_sample/day_0_head10k.tsv
DATA="$OUT/data"

echo "== 1/5 preprocess: $SAMPLE -> $DATA (time-ordered TFRecord shards of 2,000 rows)"
if [ ! -f "$DATA/summary.json" ]; then
  $PY -m pipelines.preprocess --input="$SAMPLE" --output_dir="$DATA" --rows_per_shard=2000 --min_count=2
fi
cat "$DATA/summary.json"; echo

# The first four shards (8,000 rows) are the training stream; the last shard is held out for the comparison.
TRAIN="$DATA/part-00000-00000[0-3].tfrecord.gz"
HELDOUT="$DATA/part-00000-000004.tfrecord.gz"

# Two replicas per activation, identically initialised, differing only in data order within 1,000-example
# windows: the trainer reports their progressive PD, and the comparator measures PD on the held-out shard.
for act in relu smelu; do
  spec=relu; [ "$act" = smelu ] && spec="smelu:beta=1"
  echo "== 2/5 train $act ($spec) x 2 replicas, paper toy model, one pass with progressive validation"
  $PY -m pipelines.train --config=configs/criteo_toy.py --workdir="$OUT/train_$act" \
    --config.data.train="$TRAIN" --config.model.activation="$spec" \
    --config.data.batch_size=64 --config.data.shuffle_buffer=1000 --config.replicas.count=2 \
    --config.log_every_steps=25
done

echo "== 3/5 progressive metrics (each batch scored before the model trained on it)"
$PY - "$OUT" <<'PYEOF'
import json, sys
out = sys.argv[1]
print(f"{'model':8} {'examples':>9} {'prog. AUC':>10} {'prog. logloss':>14} {'calibration':>12} "
      f"{'prog. rel. PD':>14} {'examples/s':>11}")
for act in ("relu", "smelu"):
    m = json.load(open(f"{out}/train_{act}/metrics.json"))
    print(f"{act:8} {m['examples']:>9} {m['progressive_auc']:>10.4f} {m['progressive_logloss']:>14.4f} "
          f"{m['progressive_calibration']:>12.3f} {100 * m['progressive_relative_pd']:>13.2f}% "
          f"{m['examples_per_sec']:>11.0f}")
PYEOF

echo "== 4/5 compare the four models on the held-out shard (ReLU pair, SmeLU pair, and across): PD, AUC, logloss with bootstrap CIs"
MODELS="$OUT/train_relu,$OUT/train_relu/saved_model_1,$OUT/train_smelu,$OUT/train_smelu/saved_model_1"
$PY -m pipelines.compare --models="$MODELS" --data="$HELDOUT" \
  --output="$OUT/compare" --bootstrap=200

echo "== 5/5 report: $OUT/compare/report.md (plots: pd_vs_auc.png, pd_hist.png)"
cat "$OUT/compare/report.md"
