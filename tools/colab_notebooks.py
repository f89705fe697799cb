"""Notebooks for Colab: ``notebooks/<name>.md`` as ``<name>.ipynb`` with a set-up cell first.

Usage::

    python tools/colab_notebooks.py OUT_DIR        # write OUT_DIR/<name>.ipynb for every notebook
    python tools/colab_notebooks.py --branch       # print the branch the Colab links point to

The deployment workflow (``.github/workflows/pages.yml``) publishes OUT_DIR to that branch
(``sphinx.config.colab_branch`` in ``_config.yml``); the "Colab" launch link of each experiment
page (``book/_ext/launch_links.py``) opens ``<name>.ipynb`` there.

The first cell of each notebook does nothing inside a clone of the repository. Anywhere else
(Colab) it clones the repository (``repository.url`` and ``repository.branch`` of
``_config.yml``), installs the library (the root package, ``ssm_lib``) and the tooling
(``tools/``: ``booktools`` and ``paper_recipes``) with pip, puts both on the running kernel's
path and makes the clone the working directory, so that the rest of the notebook runs
unchanged. The notebooks open on Colab's CPU runtime (the quick profile's size); the parameters
cell says how to switch to a GPU for ``profile = "full"``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]

SETUP_CELL = '''\
# Set-up for Colab (or any machine outside a clone of the repository): clone the book's
# repository, install its library (ssm_lib) and its tooling (tools/: booktools, paper_recipes)
# with pip, put both on this kernel's path and work from the clone. Inside the repository it
# does nothing. The quick profile runs on Colab's CPU runtime; for profile = "full" see the
# parameters cell below.
import importlib
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY, BRANCH = "{url}", "{branch}"
# what the notebooks import besides the two packages (already present on Colab)
EXTRA = {extra!r}


def _in_repository(folder: Path) -> bool:
    return (folder / "ssm_lib").is_dir() and (folder / "_toc.yml").is_file()


if not any(_in_repository(folder) for folder in [Path.cwd(), *Path.cwd().parents]):
    clone = Path("{folder}").resolve()
    if not clone.exists():
        subprocess.run(["git", "clone", "--depth", "1", "-b", BRANCH, REPOSITORY, str(clone)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", str(clone),
                    "-e", str(clone / "tools"), *EXTRA], check=True)
    os.chdir(clone)
    # a running kernel does not read the .pth files pip just wrote: put the sources on its path
    sys.path[:0] = [str(clone), str(clone / "tools")]
    importlib.invalidate_caches()
'''

# What the notebooks import that neither ssm_lib nor tools/ (booktools) depends on.
EXTRA_REQUIREMENTS = ("pandas", "scipy")

# The Colab version of the parameters cell says how to switch to the GPU for the full profile.
GPU_NOTE = (
    "# On Colab the quick profile runs on the CPU runtime. For profile = \"full\" switch to a GPU\n"
    "# first (Runtime > Change runtime type > GPU) and keep device = \"auto\" (or \"cuda\").\n"
)


def book_config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def repository(config: dict) -> tuple[str, str]:
    """(url, branch) of ``repository:`` in _config.yml."""
    repo = config.get("repository") or {}
    if not repo.get("url"):
        raise ValueError("_config.yml: repository.url is missing")
    return str(repo["url"]).rstrip("/"), str(repo.get("branch", "main"))


def colab_branch(config: dict) -> str:
    return str(((config.get("sphinx") or {}).get("config") or {}).get("colab_branch", "colab"))


def setup_cell(url: str, branch: str) -> nbformat.NotebookNode:
    folder = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    cell = nbformat.v4.new_code_cell(SETUP_CELL.format(url=url, branch=branch, folder=folder,
                                                       extra=EXTRA_REQUIREMENTS))
    cell.metadata["tags"] = ["colab-setup"]
    return cell


def colab_notebook(source: Path, url: str, branch: str) -> nbformat.NotebookNode:
    """The notebook of a jupytext MyST file, with the set-up cell first and no outputs."""
    notebook = jupytext.read(source)
    notebook.metadata.pop("jupytext", None)
    # no "accelerator": Colab opens it on a CPU runtime (the quick profile's size)
    notebook.metadata.setdefault("colab", {})["provenance"] = []
    for cell in notebook.cells:
        if "parameters" in cell.metadata.get("tags", []) and GPU_NOTE not in cell.source:
            cell.source = GPU_NOTE + cell.source
    notebook.cells.insert(0, setup_cell(url, branch))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(notebook)
    return notebook


def write_all(out_dir: Path, root: Path = ROOT) -> list[Path]:
    url, branch = repository(book_config(root))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted((root / "notebooks").glob("*.md")):
        target = out_dir / f"{source.stem}.ipynb"
        nbformat.write(colab_notebook(source, url, branch), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path, help="folder for the .ipynb files")
    parser.add_argument("--branch", action="store_true", help="print the Colab branch and exit")
    args = parser.parse_args(argv)
    if args.branch:
        print(colab_branch(book_config()))
        return 0
    if args.out_dir is None:
        parser.error("OUT_DIR is required unless --branch is given")
    for path in write_all(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
