#!/usr/bin/env bash
# The measurements behind the tune/probe report (docs/tune.md): `deploybench tune` on two torchvision
# models under the cpu device profile (the same emulated device as the shipped cpu table), then
# `deploybench probe` on the recorded configurations nearest the edge_tight p95 cap (20 ms), 20 fresh
# repeats each. Every measurement holds the recorder's lock, so it can run beside a table recording.
#
#   nohup benchmarks/tune_probe_report.sh > benchmarks/results/tune_probe.log 2>&1 &
#   .venv/bin/python benchmarks/tune_regret.py      # regret of each recommendation against the table
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
LOCK=${DEPLOYBENCH_RECORD_LOCK:-/tmp/deploybench-measure.lock}
TABLE=${TABLE:-recordings/v2/cpu.jsonl.gz}
DB=".venv/bin/deploybench"
mkdir -p "$OUT"
for MODEL in resnet18 mobilenet_v3_large; do
  echo "== $(date -u +%FT%TZ) tune $MODEL"
  $DB tune "$MODEL" --p95-ms 25 --memory-mb 512 --objective throughput --device-profile cpu \
    --backends pytorch_eager,onnxruntime --batch-sizes 1,4 --budget 25 --lock "$LOCK" \
    --out "$OUT/tune-$MODEL" --resume
done
echo "== $(date -u +%FT%TZ) probe"
$DB probe --table "$TABLE" --scenario edge_tight --nearest 4 --backends pytorch_eager,onnxruntime --repeats 20 --device-profile cpu --lock "$LOCK" \
  --out "$OUT/probe-edge_tight"
echo "== $(date -u +%FT%TZ) done"
