"""Binder's configuration (binder/): JupyterLab and jupytext in a light CPU environment, Markdown
opened as notebooks, torch's CPU build, the other pins those of requirements.lock."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if m:
            found[m.group(1).lower().replace("_", "-")] = m.group(2)
    return found


def test_requirements_are_light_cpu_and_those_of_the_lock():
    text = (BINDER / "requirements.txt").read_text()
    pins, lock = _pins(BINDER / "requirements.txt"), _pins(ROOT / "requirements.lock")
    assert {"jupyterlab", "jupytext", "ipykernel", "torch"} <= set(pins)
    assert f"--extra-index-url {CPU_INDEX}" in text.splitlines()
    assert pins["torch"] == lock["torch"].split("+")[0] + "+cpu"  # only the CPU index has it
    for name, version in pins.items():
        if name in lock and name != "torch":
            assert version == lock[name], f"{name}: binder {version}, lock {lock[name]}"
    # light: none of the book-build, browser-test or GPU packages
    lines = [ln.strip() for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    for heavy in ("jupyter-book", "playwright", "nvidia", "triton", "cuda"):
        assert not any(heavy in ln.lower() for ln in lines), heavy
    assert "-e ." in lines and "-e ./tools" in lines  # ssm_lib, booktools and paper_recipes


def test_jupyterlab_opens_markdown_as_notebooks():
    settings = json.loads((BINDER / "jupyterlab-settings.json").read_text())
    viewers = settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}


def test_post_build_installs_the_settings(tmp_path):
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK)
    env = {**os.environ, "NB_PYTHON_PREFIX": str(tmp_path)}
    subprocess.run(["bash", str(post)], cwd=ROOT, env=env, check=True)
    written = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert json.loads(written.read_text()) == json.loads((BINDER / "jupyterlab-settings.json").read_text())


def test_runtime_is_a_supported_python():
    version = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.(\d+)", version)
    minor = int(version.split(".")[1])
    floor = re.search(r'requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor and minor >= int(floor.group(1))
