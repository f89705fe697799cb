#!/usr/bin/env bash
# The full-profile smoke run on a lent GPU machine, in one call: the GPU estimate of each full run.
#
#   here:   make device-kit            # wheels of tools/device/kit.txt into .whl/ (16 MB)
#   there:  COMMIT=<sha> bash tools/device/gpu_smoke.sh   (device tool: carry [".whl"], timeout_s 600)
#
# Runs in the repository root of a machine whose python3 holds torch with CUDA (the device
# image) but none of papermill, jupytext or ipykernel: it installs the carried wheels into
# /tmp/site, puts them, the repository and tools/ on PYTHONPATH, prints the machine, then runs
# tools/smoke_full.py one notebook at a time (the cheapest first, so that a cut-off call still
# brings back the finished ones; one at a time, so that no notebook's per-step cost is measured
# beside another's on the same GPU). First it runs tests/test_cuda.py (the library on the GPU
# against the CPU, float64). Into $OUT (default _build/device) it writes device.txt,
# cuda_tests.txt, smoke.txt (smoke_full's one line per notebook, and the FAILED.txt of a notebook
# that failed) and each notebook's results JSON with its time_estimates: 7 files at most, within
# the 8 that the device tool brings back. SMOKE_DEVICE=cpu tries the same steps but the tests on
# a machine without a GPU (with a venv's python3 first on PATH standing in for the image: that
# is how the kit was checked to be complete).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-_build/device}
SITE=${SITE:-/tmp/site}
NOTEBOOKS=${NOTEBOOKS:-implicit_vae dkef_scalability nice_digits dkef_uci}
SMOKE_DEVICE=${SMOKE_DEVICE:-cuda}
mkdir -p "$OUT"
WHEELS=${WHEELS:-.whl}
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl || { echo "gpu_smoke: the wheels in $WHEELS/ did not install"; exit 3; }
fi
export PYTHONPATH="$SITE:$PWD:$PWD/tools${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    echo "commit ${COMMIT:-$(git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)}"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    python3 - "$SMOKE_DEVICE" <<'PY'
import sys
import torch
import papermill, jupytext, ipykernel  # noqa: F401  (the kit is importable)
cuda = torch.cuda.is_available()
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {cuda}"
      + (f", {torch.cuda.get_device_name(0)}" if cuda else ""))
sys.exit(0 if cuda or sys.argv[1] == "cpu" else 4)
PY
} 2>&1 | tee "$OUT/device.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu_smoke: no CUDA device, or the kit is incomplete (device.txt)"; exit 4; }
rc=0
# the library on the GPU against the CPU, in float64 (tests/test_cuda.py; skipped everywhere else)
if [ "$SMOKE_DEVICE" != cpu ]; then
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -n 40 > "$OUT/cuda_tests.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    tail -n 1 "$OUT/cuda_tests.txt"
fi
for name in $NOTEBOOKS; do
    python3 tools/smoke_full.py "$name" --steps 2 --device "$SMOKE_DEVICE" --output-dir /tmp/smoke-full \
        2>&1 | tee -a "$OUT/smoke.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    cp "/tmp/smoke-full/results/$name.json" "$OUT/" 2>/dev/null
    if [ -f "/tmp/smoke-full/failed/$name/FAILED.txt" ]; then
        { echo "--- $name: FAILED.txt"; cat "/tmp/smoke-full/failed/$name/FAILED.txt"; } >> "$OUT/smoke.txt"
    fi
done
exit $rc
