"""tools/colab_notebooks.py: one Colab notebook per experiment, with a set-up cell first."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

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
    assert calls[1][1:] == ["-m", "pip", "install", "--quiet", "-e", str(clone)]
    assert Path.cwd() == clone and sys.path[0] == str(clone)


def test_branch_comes_from_config() -> None:
    config = {"repository": {"url": "https://github.com/a/b/"}, "sphinx": {"config": {"colab_branch": "nb"}}}
    assert colab.repository(config) == ("https://github.com/a/b", "main")
    assert colab.colab_branch(config) == "nb"
    with pytest.raises(ValueError, match="repository.url"):
        colab.repository({})
