"""The DKEF/kernel-path benchmark script runs and writes well-formed results (behaviour only;
speed is never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_writes_times_and_peak_memory(tmp_path):
    out = tmp_path / "paths.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dkef_paths.py"), "--quick", "--paths",
                          "median", "stein", "--threads", "1", "--repeats", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "median_bandwidth" in run.stdout and "load average" in run.stdout
    res = json.loads(out.read_text())
    assert set(res["times"]["1"]) == {"median", "stein"}
    assert all(t > 0 for t in res["times"]["1"].values())
    assert set(res["peak_mib"]) == {"median", "stein"} and all(m >= 0 for m in res["peak_mib"].values())
    assert res["peak_gflops"]["1"] > 0
    floors = res["floor_s"]["1"]
    assert set(floors) == {"median", "stein"} and all(f > 0 for f in floors.values())
