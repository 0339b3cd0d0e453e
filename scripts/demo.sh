#!/usr/bin/env bash
# `make demo`: the project's point in a few minutes, every stage a real entry point (python -m pipelines.<job>),
# stopping on the first failure. The console shows what each stage found; full logs go to $OUT/logs/.
#   1. preprocess the bundled real Criteo rows with the Beam job (time-ordered TFRecords, vocabulary, dead letters);
#   2. the study on a generated click log where the small model learns: ReLU and SmeLU replicas that differ only
#      in data order, held-out AUC and calibration, PD between replicas, and SmeLU's paired PD ratio to ReLU;
#   3. the comparator on the study's held-out shard: PD between two ReLU replicas and two SmeLU replicas, and each
#      replica's PD against its own earlier checkpoint (how much of the PD is trajectory jitter).
# Rerunning reuses finished stages.
set -euo pipefail
OUT=${1:-demo_out}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT/logs"
SAMPLE=data/criteo_sample/day_0_head10k.tsv

echo "== 1/3 preprocess $SAMPLE (10,000 real Criteo rows) with the Beam job -> $OUT/criteo (log: $OUT/logs/preprocess.log)"
if [ ! -f "$OUT/criteo/summary.json" ]; then
  $PY -m pipelines.preprocess --input="$SAMPLE" --output_dir="$OUT/criteo" --rows_per_shard=2000 --min_count=2 \
    2> "$OUT/logs/preprocess.log"
else
  echo "   (already done)"
fi

echo
echo "== 2/3 study: ReLU vs SmeLU β=1, 4 replicas each differing only in data order, on 120,000 generated rows"
echo "   (configs/study_demo.py; about 2-3 minutes on 2 cores; log: $OUT/logs/study.log)"
$PY -m pipelines.study --config=configs/study_demo.py --workdir="$OUT/study" 2> "$OUT/logs/study.log"

echo
echo "== 3/3 compare: two ReLU and two SmeLU replicas on the held-out shard (log: $OUT/logs/compare.log)"
# Named links to replicas 0 and 1 of each cell, so the report names the models relu_0, relu_1, smelu_0, smelu_1.
mkdir -p "$OUT/models"
for act in relu smelu; do
  cell=relu; [ "$act" = smelu ] && cell=smelu_beta1
  ln -sfn "$(cd "$OUT/study/cells/shuffle/$cell/train" && pwd)/saved_model" "$OUT/models/${act}_0"
  ln -sfn "$(cd "$OUT/study/cells/shuffle/$cell/train" && pwd)/saved_model_1" "$OUT/models/${act}_1"
done
HELDOUT=$(ls "$OUT"/study/data/part-*.tfrecord.gz | tail -n 1)
# --self_pd: each replica also against its own checkpoint 90 steps (23,040 examples) before its end: jitter vs basin.
$PY -m pipelines.compare --output="$OUT/compare" --bootstrap=200 --data="$HELDOUT" --self_pd \
  --models="$OUT/models/relu_0,$OUT/models/relu_1,$OUT/models/smelu_0,$OUT/models/smelu_1" 2> "$OUT/logs/compare.log"
# The pairs table: relu_0 vs relu_1 and smelu_0 vs smelu_1 are the retrain-vs-retrain PDs.
sed -n '/^## Pairs/,/^## Relative PD matrix/p' "$OUT/compare/report.md" | grep -E "^\| (a|relu_0 \| relu_1|smelu_0 \| smelu_1) "

echo
echo "Outputs: $OUT/study/results.md (verdict table, every number), $OUT/study/pd_vs_accuracy.png,"
echo "         $OUT/compare/report.md, $OUT/compare/pd_vs_auc.png, $OUT/criteo/summary.json."
