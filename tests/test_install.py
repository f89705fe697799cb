"""``pip install .`` outside the repository gives a working library.

The distribution's files (``pyproject.toml``, ``README.md``, ``ssm_lib/``) are copied into a
temporary folder outside the repository and installed, not editable, into a fresh virtual
environment without the system's site-packages (torch at the lock's pin, through pip's cache).
A script run from another temporary folder then imports ``ssm_lib`` from that environment,
checks that nothing of the experiments' side (``booktools``, ``paper_recipes``, the moved
modules) nor an undeclared dependency is importable, and trains a ``ScoreMLP`` a few steps with
``fit``. About a minute with torch in pip's cache (measured 45-60 s on the project's 2-core
machine); deselect with ``-m "not install"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.install_helpers import locked_torch_requirement

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import importlib.util, math, pathlib, sys

    import torch
    import ssm_lib
    from ssm_lib import Banana, ScoreMLP, fit

    where = pathlib.Path(ssm_lib.__file__).resolve()
    assert pathlib.Path(sys.prefix).resolve() in where.parents, where
    for name in ("booktools", "paper_recipes", "matplotlib", "sklearn"):
        assert importlib.util.find_spec(name) is None, name + " is importable"
    for name in ("datasets", "grids", "plotting", "_exact_chunking", "_files"):
        assert importlib.util.find_spec("ssm_lib." + name) is None, "ssm_lib." + name
    for name in ssm_lib.__all__:
        getattr(ssm_lib, name)

    torch.manual_seed(0)
    model = ScoreMLP(2, hidden=16, depth=2)
    history = fit(model, Banana().sample, "ssm_vr", n_steps=30, batch_size=64, progress=False)
    losses = history.losses
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses), losses
    print("OK", where, f"first loss {losses[0]:.4f}, last {losses[-1]:.4f}")
""")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.install
def test_pip_install_outside_the_repository_imports_and_trains(tmp_path):
    src, work = tmp_path / "src", tmp_path / "work"
    work.mkdir()
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "ssm_lib", src / "ssm_lib", ignore=shutil.ignore_patterns("__pycache__"))
    assert ROOT not in tmp_path.parents

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    venv = tmp_path / "venv"
    # the base interpreter, not this environment's: nothing installed here is inherited
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(venv)], work, env, 120)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    try:
        _run([str(python), "-m", "pip", "install", "--quiet", locked_torch_requirement(), str(src)],
             work, env, 600)
        out = _run([str(python), "-I", "-c", SCRIPT], work, env, 300)
    finally:
        # about a GB that pytest would otherwise keep in its last three temporary folders
        shutil.rmtree(venv, ignore_errors=True)
    assert out.startswith("OK"), out
