#!/usr/bin/env bash
# Record one time-boxed chunk of a GPU table (h100 / h200) on a lent GPU machine, then pack what is recorded.
#
# Meant for the device tool (one command of at most 10 minutes, a bare machine whose python3 already holds
# PyTorch and ONNX Runtime): from the repository root there,
#
#   NAME=h200 STOP_AFTER=420 benchmarks/record_gpu_table.sh
#
# It installs this checkout without dependencies (nothing can be fetched there), first asks `deploybench
# doctor --device cuda` which CUDA paths run there (PyTorch eager and compile, ONNX Runtime's CUDA provider,
# each precision; written to $OUT/$NAME-doctor.json, else beside the raw chunk), then records into
# recordings/v2/$NAME.jsonl (resuming what the file already holds: commit it after each
# chunk and carry it to the next), starts no measurement that could end past STOP_AFTER seconds, and
# copies the raw chunk and the packed table to $OUT when $OUT is set. Measurement order is batch size
# first, so the packed table is a complete grid over every model, backend and precision at the batch
# sizes done so far. Pack it into the shipped table with
#
#   deploybench table pack recordings/v2/$NAME.jsonl --name $NAME \
#       --out deploybench/tasks/tables/$NAME.jsonl.gz
#
# A dry run on a machine without CUDA (tests/test_gpu_dry_run.py) must report every GPU path as an
# environment failure of the machine, never as a crash of the space:
#
#   INSTALL=0 PYTHON=.venv/bin/python NAME=dry RAW=/tmp/dry.jsonl TABLE=/tmp/dry.jsonl.gz \
#     GRID="--models mobilenet_v2 --backends pytorch_eager,onnxruntime --precisions fp32,fp16 --batch-sizes 1 \
#     --threads 1" STOP_AFTER=300 benchmarks/record_gpu_table.sh
set -u
cd "$(dirname "$0")/.."
NAME=${NAME:-h100}
STOP_AFTER=${STOP_AFTER:-420}
PY=${PYTHON:-python3}
RAW=${RAW:-recordings/v2/$NAME.jsonl}
TABLE=${TABLE:-deploybench/tasks/tables/$NAME.jsonl.gz}
GRID=${GRID:---threads 1,4}
DOCTOR=${OUT:-$(dirname "$RAW")}/$NAME-doctor.json
mkdir -p "$(dirname "$RAW")"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if [ "${INSTALL:-1}" = 1 ]; then
  $PY -m pip install -q --no-deps --no-index --no-build-isolation . || exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi: no NVIDIA GPU here"
echo "== doctor on CUDA -> $DOCTOR"
$PY -m deploybench.cli.main doctor --device cuda --json > "$DOCTOR" \
  && $PY -c 'import json, sys; rows = json.load(open(sys.argv[1]))["paths"]; [print(f"  {r[\"backend\"]:14} {r[\"precision\"]:13} " + ("works" if r["works"] else f"{r[\"kind\"]}: {r[\"reason\"][:90]}")) for r in rows]' "$DOCTOR"
echo "== record"
# threads: the GPU backends ignore them; ONNX Runtime and int8_dynamic (CPU) paths use them
# the machine as it is (device profile host): GPU memory is the device's own; int8 paths run on the host CPU
# and are recorded with device_executed=cpu, judged as such. Same 120 s limit per worker as live trials.
$PY -m deploybench.cli.main record --space image_classification --target live --device cuda --device-profile host \
  --out "$RAW" --name "$NAME" $GRID --stop-after "$STOP_AFTER" \
  --note "recorded on a lent GPU machine in time-boxed chunks (--stop-after), resumed across sessions"
rc=$?
echo "== pack"
$PY -m deploybench.cli.main table pack "$RAW" --name "$NAME" --out "$TABLE" \
  && $PY -m deploybench.cli.main table info "$TABLE"
if [ -n "${OUT:-}" ]; then
  cp "$RAW" "$OUT/" && cp "$TABLE" "$OUT/" 2>/dev/null
fi
exit $rc
