#!/usr/bin/env bash
# Every GPU number of docs/PERFORMANCE.md in one command, for the day a GPU machine is lent; under 8
# minutes on one H100/H200-class GPU. Writes a markdown table (default gpu_suite.md) and the raw JSON
# beside it:
#   1. FCN-AlexNet and FCN-8s 500x500 inference latency, fp32 and AMP bf16/fp16 with the agreement
#      (benchmarks/fcn_speed.py); goals: <= 2.5 ms and <= 8 ms
#   2. training images/s of both (forward, backward, SGD update; the same script)
#   3. dataset-to-GPU loader throughput against raw decode x workers (benchmarks/loader.py)
#   4. vs_caffe ratios: digitslite on the GPU against CPU Caffe (when built) and CPU OpenCV DNN; there
#      is no GPU Caffe to compare with, and the table says so.
#
#   bash benchmarks/gpu_suite.sh [--out FILE]     # on the GPU machine
#   bash benchmarks/gpu_suite.sh --cpu            # tiny sizes on the CPU: proves the suite runs
# Env: PYTHON (default .venv/bin/python, else python3), NETS (default fcn_alexnet,fcn8s).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}
NETS=${NETS:-fcn_alexnet,fcn8s}
OUT=gpu_suite.md
DEVICE=cuda SIZE=500 REPS=50 TRAIN_REPS=20 CAFFE_REPS=5 THREADS=$(nproc) LOADER_COUNT=300
while [ $# -gt 0 ]; do
  case $1 in
    --cpu) DEVICE=cpu SIZE=48 REPS=2 TRAIN_REPS=2 CAFFE_REPS=1 THREADS=2 LOADER_COUNT=8 ;;
    --out) OUT=$2; shift ;;
    *) echo "gpu_suite.sh: unknown argument $1 (use --cpu and --out FILE)" >&2; exit 2 ;;
  esac
  shift
done
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
RAW=$(mktemp -d)
trap 'rm -rf "$RAW"' EXIT
log() { printf '[gpu_suite %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "device $DEVICE, FCN inputs ${SIZE}x${SIZE}, nets $NETS"
log "1-2. inference latency and training speed"
"$PYTHON" "$HERE/fcn_speed.py" --device "$DEVICE" --nets "$NETS" --size "$SIZE" --reps "$REPS" \
  --train-reps "$TRAIN_REPS" --json "$RAW/fcn_speed.json" >&2
log "3. loader throughput"
"$PYTHON" "$HERE/loader.py" --device "$DEVICE" --count "$LOADER_COUNT" --repeat 1 --epochs 1 \
  --json "$RAW/loader.json" >&2
log "4. vs_caffe"
"$PYTHON" "$HERE/vs_caffe.py" --device "$DEVICE" --nets "$NETS" --size "$SIZE" --reps "$CAFFE_REPS" \
  --threads "$THREADS" --json "$RAW/vs_caffe.json" >&2
"$PYTHON" "$HERE/suite_table.py" "$RAW" "$DEVICE" > "$OUT.partial"
mv "$OUT.partial" "$OUT"
cp "$RAW/fcn_speed.json" "$RAW/loader.json" "$RAW/vs_caffe.json" "$(dirname "$OUT")/" 2>/dev/null || true
log "table written to $OUT"
