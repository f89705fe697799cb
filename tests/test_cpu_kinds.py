"""tools/cpu_kinds/as_intel.sh: an AMD CPU with AVX-512 standing in for the Intel machines'
reference set (booktools.reference's docstring says what was measured)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "cpu_kinds" / "as_intel.sh"
INTEL_SET = "4bef3deece43"


def _cpu_flags() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", set()
    vendor, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return vendor, flags


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON_FOR_FINGERPRINT": sys.executable, **(env or {})}
    return subprocess.run([str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def test_the_set_the_script_stands_in_for_is_committed():
    assert (ROOT / "notebooks" / f"reference-{INTEL_SET}").is_dir()
    assert f"expected={INTEL_SET}" in SCRIPT.read_text()


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
@pytest.mark.skipif(_cpu_flags()[0] != "AuthenticAMD" or "avx512f" not in _cpu_flags()[1],
                    reason="the stand-in is measured on AMD CPUs with AVX-512 only")
def test_an_amd_cpu_with_avx512_computes_the_intel_sets_numerics():
    own = subprocess.run([sys.executable, "-m", "booktools.reference", "fingerprint"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert own != INTEL_SET  # without the shim: MKL's AMD paths, another kind
    out = _run(sys.executable, "-m", "booktools.reference", "fingerprint")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == INTEL_SET
    # the command runs with the shim loaded, and only the command's own output is printed
    out = _run("bash", "-c", 'echo "$LD_PRELOAD"')
    assert out.returncode == 0 and out.stdout.strip().endswith("_build/cpu-kinds/mkl_intel_cpu.so")


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_the_script_refuses_when_the_fingerprint_does_not_come_out_right(tmp_path):
    # a Python whose "fingerprint" is another kind's: the command must not run
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 0123456789ab\n")
    fake.chmod(0o755)
    out = _run("touch", str(tmp_path / "ran"), env={"PYTHON_FOR_FINGERPRINT": str(fake)})
    assert out.returncode == 2
    assert "0123456789ab" in out.stderr and INTEL_SET in out.stderr
    assert not (tmp_path / "ran").exists()
