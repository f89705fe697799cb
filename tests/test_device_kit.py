"""The kit for the GPU smoke run (tools/device/): complete, pinned, and aimed at every notebook.

A lent GPU machine has 15 minutes and no registry, so a package missing from the kit costs the
whole loan. What the kit needs beside what the machine's image already holds is checked here
from the installed packages' own metadata, the way pip would resolve it for CPython 3.12 on
Linux; the check was itself tried by running tools/device/gpu_smoke.sh with SMOKE_DEVICE=cpu
in a bare venv holding only the image's packages and the kit.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "tools" / "device" / "kit.txt"
SCRIPT = ROOT / "tools" / "device" / "gpu_smoke.sh"

#: Packages of the GPU machines' image that the smoke run relies on (the device tool's KINDS.md,
#: "Python packages already there", read 2026-11-17); anything else must come in the kit.
IMAGE = {canonicalize_name(n) for n in """
    attrs certifi charset-normalizer click contourpy cycler fonttools idna jinja2 joblib
    kiwisolver markdown-it-py markupsafe matplotlib mdurl numpy packaging pandas pillow psutil
    pygments pyparsing python-dateutil pyyaml requests scikit-learn scipy seaborn six
    threadpoolctl torch torchvision tqdm typing-extensions urllib3 filelock fsspec networkx
    sympy mpmath setuptools aiohttp aiohappyeyeballs aiosignal frozenlist multidict propcache yarl
""".split()}

#: What a requirement's markers are evaluated against: the machine's CPython 3.12 on Linux.
DEVICE_ENV = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3",
              "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def kit_names() -> list[str]:
    return [ln.strip() for ln in KIT.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def needs(name: str) -> set[str]:
    """The packages ``name`` requires on the device (no extras), from its installed metadata."""
    out = set()
    for raw in md.requires(name) or []:
        req = Requirement(raw)
        if req.marker is None or req.marker.evaluate({**DEVICE_ENV, "extra": ""}):
            out.add(canonicalize_name(req.name))
    return out


def test_every_kit_package_is_pinned_by_the_lock_and_listed_once():
    names = [canonicalize_name(n) for n in kit_names()]
    assert len(names) == len(set(names)), "a package is listed twice"
    pins = lock_pins()
    assert [n for n in names if n not in pins] == [], "unpinned: make device-kit would take any version"
    assert not set(names) & IMAGE, "the image has it: two versions on the machine stop the install"


def test_the_kit_and_the_image_hold_everything_the_kit_needs():
    kit = {canonicalize_name(n) for n in kit_names()}
    missing = {}
    for name in sorted(kit | {"papermill", "jupytext", "ipykernel"}):
        gap = needs(name) - kit - IMAGE
        if gap:
            missing[name] = sorted(gap)
    assert missing == {}


def test_the_closure_check_sees_a_dropped_package():
    """The check above fails when a needed package leaves the kit (here: pyzmq, which both
    jupyter_client and ipykernel require)."""
    kit = {canonicalize_name(n) for n in kit_names()} - {"pyzmq"}
    assert any("pyzmq" in (needs(n) - kit - IMAGE) for n in kit)


def test_the_script_runs_every_notebook_that_supports_the_smoke_run():
    spec = importlib.util.spec_from_file_location("smoke_full", ROOT / "tools" / "smoke_full.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    m = re.search(r"^NOTEBOOKS=\$\{NOTEBOOKS:-([^}]*)\}$", SCRIPT.read_text(), re.M)
    assert m, "gpu_smoke.sh sets NOTEBOOKS"
    assert sorted(m.group(1).split()) == smoke.supporting_notebooks(ROOT / "notebooks")


def test_the_script_is_valid_bash_and_stops_without_cuda(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the script would run the notebooks")
    # without a GPU it stops after printing the machine, before any notebook runs
    (tmp_path / "bin").mkdir()
    python3 = tmp_path / "bin" / "python3"  # this venv's interpreter as the machine's python3
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python3.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "OUT": str(tmp_path / "out"), "SITE": str(tmp_path / "site"),
           "WHEELS": str(tmp_path / "no-wheels"), "NOTEBOOKS": "none_such"}
    run = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "no CUDA device" in run.stdout
    assert "cuda False" in (tmp_path / "out" / "device.txt").read_text()
    assert not (tmp_path / "out" / "smoke.txt").exists()
