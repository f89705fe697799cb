"""tools/colab_notebooks.py: one Colab notebook per experiment, with a set-up cell first."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.install_helpers import locked_torch_requirement

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("colab_notebooks", ROOT / "tools" / "colab_notebooks.py")
colab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return colab.write_all(tmp_path_factory.mktemp("colab"))


def test_one_notebook_per_source_with_setup_first(written: list[Path]) -> None:
    sources = sorted(p.stem for p in (ROOT / "notebooks").glob("*.md"))
    assert sorted(p.stem for p in written) == sources
    url, branch = colab.repository(colab.book_config())
    for path in written:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        first = notebook.cells[0]
        assert first.cell_type == "code" and "colab-setup" in first.metadata["tags"]
        assert f'"{url}", "{branch}"' in first.source
        assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells[1:])
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
        assert "accelerator" not in notebook.metadata  # the CPU runtime for the quick profile
        params = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
        assert params.source.startswith(colab.GPU_NOTE) and 'profile = "quick"' in params.source


def _run_setup(source: str, monkeypatch: pytest.MonkeyPatch, cwd: Path) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> None:
        calls.append(command)
        if command[:2] == ["git", "clone"]:
            Path(command[-1]).mkdir()

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(cwd)
    exec(compile(source, "setup-cell", "exec"), {})
    return calls


def test_setup_cell_does_nothing_inside_the_repository(written: list[Path], monkeypatch) -> None:
    source = nbformat.read(written[0], as_version=4).cells[0].source
    assert _run_setup(source, monkeypatch, ROOT / "notebooks") == []
    assert Path.cwd() == ROOT / "notebooks"


def test_setup_cell_clones_and_installs_outside(written: list[Path], monkeypatch, tmp_path: Path) -> None:
    source = nbformat.read(written[0], as_version=4).cells[0].source
    url, branch = colab.repository(colab.book_config())
    calls = _run_setup(source, monkeypatch, tmp_path)
    clone = tmp_path / url.rsplit("/", 1)[-1]
    assert calls[0] == ["git", "clone", "--depth", "1", "-b", branch, url, str(clone)]
    assert calls[1][1:] == ["-m", "pip", "install", "--quiet", "-e", str(clone), "-e", str(clone / "tools"),
                            *colab.EXTRA_REQUIREMENTS]
    assert Path.cwd() == clone and sys.path[:2] == [str(clone), str(clone / "tools")]


def test_branch_comes_from_config() -> None:
    config = {"repository": {"url": "https://github.com/a/b/"}, "sphinx": {"config": {"colab_branch": "nb"}}}
    assert colab.repository(config) == ("https://github.com/a/b", "main")
    assert colab.colab_branch(config) == "nb"
    with pytest.raises(ValueError, match="repository.url"):
        colab.repository({})


def _notebook_imports() -> list[str]:
    """Every module the experiment notebooks import (top-level import lines of code cells)."""
    import jupytext

    found = set()
    for source in sorted((ROOT / "notebooks").glob("*.md")):
        for cell in jupytext.read(source).cells:
            if cell.cell_type != "code":
                continue
            for line in cell.source.splitlines():
                m = re.match(r"(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", line)
                if m and not line.startswith(" "):
                    found.add(m.group(1) or m.group(2))
    return sorted(found)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_setup_cell_makes_every_import_work_in_a_clean_interpreter(tmp_path: Path) -> None:
    """The set-up cell, run by a fresh virtual environment's interpreter with nothing of the
    project installed, from a local clone (no network for the project itself), makes every
    module the notebooks import importable in that same interpreter."""
    # a repository holding the working tree as it is (committed or not)
    origin = tmp_path / "origin"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, origin / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=origin, check=True)
    subprocess.run([*git, "add", "-A"], cwd=origin, check=True)
    subprocess.run([*git, "commit", "-qm", "snapshot"], cwd=origin, check=True)
    subprocess.run(["git", "-C", str(origin), "branch", "-M", "main"], check=True)

    # Kept between runs in _build/ (the first run installs torch & co. from the pip cache, about
    # a minute on a quiet 2-core machine; later runs only the set-up cell's own work); the
    # project's two packages are removed from it before every run.
    venv = ROOT / "_build" / "colab-test-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    # Colab comes with torch; so does this interpreter, at the lock's pin (the CPU build on disk),
    # else the cell's open `torch>=2.1` would pull a CUDA build of several GB into the venv.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", locked_torch_requirement()],
                   check=True, capture_output=True)
    subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "-y", "ssm_lib", "booktools"],
                   capture_output=True)
    setup = colab.setup_cell(str(origin), "main").source
    imports = _notebook_imports()
    assert {"ssm_lib", "booktools.experiment", "torch"} <= set(imports)
    script = (f"{setup}\nimport importlib\n"
              f"for name in {imports!r}:\n    importlib.import_module(name)\n"
              "import booktools, ssm_lib\nprint('CLONE', Path(ssm_lib.__file__).parents[1])\n"
              "print('TOOLS', Path(booktools.__file__).parents[1])\n")
    work = tmp_path / "colab"  # like /content on Colab: not inside any clone
    work.mkdir()
    # the interpreter that runs the cell has nothing of the project
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run([str(python), "-c", "import ssm_lib"], cwd=work, env=env, capture_output=True)
    assert probe.returncode != 0
    run = subprocess.run([str(python), "-c", script], cwd=work, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    clone = work / "origin"
    assert f"CLONE {clone}" in run.stdout and f"TOOLS {clone / 'tools'}" in run.stdout
