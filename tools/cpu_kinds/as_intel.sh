#!/usr/bin/env bash
# Run a command with MKL taking an Intel CPU's code paths (mkl_intel_cpu.c, loaded by
# LD_PRELOAD), so that an AMD CPU with AVX-512 computes what an Intel one with AVX-512 does:
# the numerics of the reference set notebooks/reference-4bef3deece43/. Refuses (exit 2) where
# the result would be another kind (a CPU without AVX-512). Used by `make reference-intel` and
# `make nbval-intel`:
#     tools/cpu_kinds/as_intel.sh COMMAND [ARG ...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
src=$root/tools/cpu_kinds/mkl_intel_cpu.c
shim=$root/_build/cpu-kinds/mkl_intel_cpu.so
expected=4bef3deece43
if [ ! -f "$shim" ] || [ "$src" -nt "$shim" ]; then
    mkdir -p "$(dirname "$shim")"
    "${CC:-cc}" -shared -fPIC -O2 -o "$shim" "$src"
fi
export LD_PRELOAD="$shim${LD_PRELOAD:+:$LD_PRELOAD}"
python=${PYTHON_FOR_FINGERPRINT:-$root/.venv/bin/python}
got=$(PYTHONPATH="$root/tools${PYTHONPATH:+:$PYTHONPATH}" "$python" -m booktools.reference fingerprint)
if [ "$got" != "$expected" ]; then
    echo "as_intel.sh: with MKL on Intel's paths this CPU's numerics fingerprint is $got, not" \
         "$expected (notebooks/reference-$expected/): it cannot stand in for that kind" \
         "(it needs AVX-512)" >&2
    exit 2
fi
exec "$@"
