#!/usr/bin/env bash
# One prepared GPU check, for a machine with no network: every GPU / TensorRT test
# (pytest -m "gpu or tensorrt"), then `segedge doctor --gpu` (engines built FP32/FP16/INT8
# where TensorRT is, agreement of every available backend with PyTorch, latency and
# throughput at batch 1, 8 and 32), merged into ONE JSON with what was skipped and why.
# Works with whatever is installed: a missing package, TensorRT, GPU or data set is
# recorded as skipped, never fatal. Each step has a time limit; the whole run stays under
# 8 minutes (pytest 240 s, doctor 180 s, probe 20 s).
#
# Usage: scripts/gpu-check.sh [OUT_DIR]     (default: $OUT if set, else ./gpu-check-out)
#   writes OUT_DIR/gpu-check.json (plus the parts: env.json, pytest.xml, doctor.json, *.log)
# Environment: PYTHON (interpreter; default .venv/bin/python if present, else python3),
#   SEGEDGE_SHARED_DATA (folder holding oxford-iiit-pet-sample; default ../shared/data or ./shared/data).
set -u -o pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-${OUT:-$root/gpu-check-out}}
mkdir -p "$out"
if [[ -n "${PYTHON:-}" ]]; then
    py=$PYTHON
elif [[ -z "${VIRTUAL_ENV:-}" && -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # this checkout first, installed or not
if [[ -z "${SEGEDGE_SHARED_DATA:-}" ]]; then
    for candidate in "$root/../shared/data" "$root/shared/data"; do
        [[ -d "$candidate" ]] && export SEGEDGE_SHARED_DATA=$candidate && break
    done
fi
data="${SEGEDGE_SHARED_DATA:-$root/../shared/data}/oxford-iiit-pet-sample"

# 1. environment probe: imports, not package metadata (JetPack's apt TensorRT has none)
timeout 20 "$py" - "$out/env.json" <<'EOF' || echo "probe failed (exit $?)"
import importlib, json, platform, subprocess, sys
env = {"python": platform.python_version(), "machine": platform.machine(), "modules": {}}
for name in ("torch", "onnxruntime", "tensorrt", "cuda.bindings", "onnx", "onnxscript", "typer", "rich", "cv2", "pytest", "hypothesis"):
    try:
        module = importlib.import_module(name)
        env["modules"][name] = str(getattr(module, "__version__", "installed"))
    except Exception as exc:  # ImportError, or OSError from a library that does not load
        env["modules"][name] = f"missing: {type(exc).__name__}: {exc}"
try:
    import torch
    env["cuda"] = {"available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
                   "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
except Exception as exc:
    env["cuda"] = {"error": str(exc)}
try:
    env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=10).stdout.strip()
except Exception as exc:
    env["nvidia_smi"] = f"unavailable: {exc}"
open(sys.argv[1], "w").write(json.dumps(env, indent=2))
EOF

# 2. every GPU / TensorRT test (skips name their reason in the JUnit XML)
rm -f "$out/pytest.xml"
if "$py" -c "import pytest" 2>/dev/null; then
    timeout -k 10 240 "$py" -m pytest -q -rs -p no:cacheprovider -m "gpu or tensorrt" --continue-on-collection-errors \
        --junitxml="$out/pytest.xml" tests >"$out/pytest.log" 2>&1
    echo $? >"$out/pytest.rc"
else
    echo "pytest is not installed for $py" >"$out/pytest.log"
fi

# 3. the doctor: every backend that runs here, against PyTorch
doctor_args=(--gpu --budget 0.5 --images 16 --json "$out/doctor.json" --output "$out/artifacts")
[[ -d "$data" ]] && doctor_args+=(--data "$data")
rm -f "$out/doctor.json"
timeout -k 10 180 "$py" -m segedge.cli.doctor "${doctor_args[@]}" >"$out/doctor.log" 2>&1
echo $? >"$out/doctor.rc"

# 4. one JSON
"$py" scripts/gpu_check_report.py "$out"
