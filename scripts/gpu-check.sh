#!/usr/bin/env bash
# One GPU check: what is installed, engines built (FP32/FP16/INT8) where TensorRT is,
# agreement of every available backend with PyTorch on the shared Oxford-IIIT Pet sample,
# and a latency/throughput table at batch 1, 8 and 32. Runs on a CPU-only machine too:
# it then times PyTorch and ONNX Runtime on the CPU and lists what it skipped, and why.
#
# Usage: scripts/gpu-check.sh [--output DIR] [--budget SECONDS] [--images N]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${VIRTUAL_ENV:-}" && -f .venv/bin/activate ]]; then
    . .venv/bin/activate
fi
data="${SEGEDGE_SHARED_DATA:-../shared/data}/oxford-iiit-pet-sample"
args=(--gpu)
if [[ -d "$data" ]]; then
    args+=(--data "$data")
fi
exec python -m segedge.cli.doctor "${args[@]}" "$@"
