#!/usr/bin/env bash
# Record (resume) the shipped CPU tables on this machine, time-boxed, then pack what is complete.
#
#   STOP_AFTER=3000 nohup benchmarks/record_tables.sh cpu >> recordings/v2/cpu.log 2>&1 &
#   STOP_AFTER=3000 nohup benchmarks/record_tables.sh edge >> recordings/v2/edge.log 2>&1 &
#   CHUNK_MODELS=mobilenet_v2,resnet18 STOP_AFTER=3000 nohup benchmarks/record_tables.sh small >> recordings/v3/small.log 2>&1 &
#   STOP_AFTER=3000 nohup benchmarks/record_tables.sh edge-memory >> recordings/v3/edge-memory.log 2>&1 &
#
# NAME is a device profile (deploybench/live/devices.py): `cpu` = 2 threads, 4 GiB; `edge` = 2 threads,
# 1 GiB (no torch_compile: an edge board runs an exported or eager artefact, it does not compile);
# `small` = 768 MB including the runtime (resident, file-backed pages counted), 2 threads, 60 s per trial,
# on deployment_grid.SMALL_GRID (v3, recorded in chunks of models: CHUNK_MODELS narrows what one run
# measures while the file keeps the whole grid). The raw chunk recordings/vN/NAME.jsonl keeps every
# measurement (contaminated ones included, as evidence) and is never packaged; rerunning resumes it (pass 0
# measures each configuration once, later passes add clean repeats near a latency cap or the memory
# boundary, each pass and each resumed run starting with the speed reference workload). The recorder runs
# from a snapshot of the package (DEPLOYBENCH_RECORD_SNAPSHOT, made here with pip --target) so editing the
# working tree cannot change a recording midway. Each measurement holds an flock on $LOCK: run heavy jobs
# beside it as `flock $LOCK command`; the contention guard redoes any measurement other work disturbed
# anyway. When the grid is complete, the chunk is packed into deploybench/tasks/tables/NAME.jsonl.gz,
# which the scenarios replay. `edge-memory` re-measures, under the v3 memory accounting, the `edge`
# configurations listed in recordings/v3/edge-near-memory.jsonl (benchmarks/near_device_memory.py: a
# repeat held >= 90 % of the device or ended oom) and packs the v2 chunk with these measurements
# superseding that configuration's old ones.
set -u
cd "$(dirname "$0")/.."
NAME=${1:-cpu}
STOP_AFTER=${STOP_AFTER:-3000}
LOCK=${DEPLOYBENCH_RECORD_LOCK:-/tmp/deploybench-measure.lock}
SNAP=${DEPLOYBENCH_RECORD_SNAPSHOT:-/tmp/deploybench-record-snapshot-$NAME}
ONLY=""
PACK_SOURCES=""
case "$NAME" in
  cpu)  VERSION=v2; GRID="--backends pytorch_eager,torch_compile,onnxruntime" ;;
  edge) VERSION=v2; GRID="--backends pytorch_eager,onnxruntime" ;;
  small)
    VERSION=v3
    GRID="--models mobilenet_v2,mobilenet_v3_large,shufflenet_v2_x1_0,resnet18,googlenet,efficientnet_b0,resnet50,vit_b_16 \
      --backends pytorch_eager,onnxruntime --precisions fp32,int8_dynamic,int8_static --batch-sizes 1,8,32 \
      --threads 1,2 --memory-formats contiguous --graph-optimizations all"
    [ -n "${CHUNK_MODELS:-}" ] && ONLY="--only-models $CHUNK_MODELS" ;;
  edge-memory)
    VERSION=v3; GRID="--backends pytorch_eager,onnxruntime"; ONLY="--only-configs recordings/v3/edge-near-memory.jsonl" ;;
  *) echo "unknown table $NAME (cpu, edge, small or edge-memory)" >&2; exit 2 ;;
esac
RAW=recordings/$VERSION/$NAME.jsonl
TABLE=$NAME PROFILE=$NAME
if [ "$NAME" = edge-memory ]; then
  TABLE=edge PROFILE=edge PACK_SOURCES="recordings/v2/edge.jsonl.gz --supersede"
fi
mkdir -p "recordings/$VERSION"
# finished chunks are stored gzip-compressed (recordings/v2/*.jsonl.gz); a recording appends to plain text
[ -f "$RAW" ] || { [ -f "$RAW.gz" ] && gunzip -k "$RAW.gz"; }
rm -rf "$SNAP" && .venv/bin/pip install -q --no-deps --no-build-isolation --target "$SNAP" . || exit 1
DB="env PYTHONPATH=$SNAP .venv/bin/python -P -m deploybench.cli.main"
NOTE="recorded on a 2-core x86 machine emulating the ${PROFILE:-$NAME} device profile; threads 1-2; memory limit enforced per worker (mechanism and accounting in each measurement); contention guard threshold 0.15 cores"
echo "== $(date -u +%FT%TZ) record $NAME ${CHUNK_MODELS:+(models $CHUNK_MODELS) }(stop after $STOP_AFTER s)"
$DB record --space image_classification --target live --device cpu --device-profile "$PROFILE" $GRID $ONLY \
  --out "$RAW" --name "$TABLE" --lock "$LOCK" --stop-after "$STOP_AFTER" --note "$NOTE"
echo "== $(date -u +%FT%TZ) pack"
$DB table pack $PACK_SOURCES "$RAW" --name "$TABLE" --out "deploybench/tasks/tables/$TABLE.jsonl.gz" --require-complete \
  --require-repeats 5 && $DB table info "deploybench/tasks/tables/$TABLE.jsonl.gz"
echo "== $(date -u +%FT%TZ) done"
