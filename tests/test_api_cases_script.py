"""``benchmarks/api_cases.py`` (the misuse-case table of issue 21): its classifier sorts each
kind of outcome into the right class, and the whole table runs with every case 'ok' or
'clear' (a regression in any public function's argument checks fails here)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssm_lib._checks import check_count

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cases():
    spec = importlib.util.spec_from_file_location("api_cases", ROOT / "benchmarks" / "api_cases.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["api_cases"] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("api_cases", None)


def _outcome(cases, call, arg="n", check=None, limit=5.0):
    case = cases.Case("t", call, arg=None if check else arg, check=check, limit=limit)
    return cases.run_case(case)[0]


def _torch_crash():
    return torch.zeros(2, 3) @ torch.zeros(2, 3)


def _zero_division():
    return 1 / 0


def test_the_classifier_sorts_each_kind_of_outcome(cases):
    assert _outcome(cases, lambda: check_count(0, "n")) == "clear"
    assert _outcome(cases, lambda: check_count(0, "other")) == "misleading"  # names another argument
    assert _outcome(cases, _torch_crash) == "crash"  # last frame inside torch
    assert _outcome(cases, _zero_division) == "crash"  # an internal error type
    assert _outcome(cases, lambda: 3) == "silent"  # bad input accepted
    assert _outcome(cases, lambda: 3, check=lambda r: r == 4) == "silent"  # a wrong result
    assert _outcome(cases, lambda: 3, check=lambda r: r == 3) == "ok"
    assert _outcome(cases, lambda: time.sleep(5), limit=0.2) == "hang"


def test_every_case_of_the_table_ends_ok_or_clear(tmp_path):
    out = tmp_path / "cases.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "api_cases.py"), "--strict", "--json",
                          str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert len(result["cases"]) >= 140
    assert set(result["counts"]) <= {"ok", "clear"}
