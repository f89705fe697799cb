"""Shared by the tests of results' fingerprints (test_runs, test_committed): a copy of what
``booktools.runs.inputs_fingerprint`` reads, to edit without touching the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["copy_inputs"]


def copy_inputs(tmp_path: Path, notebook: str, folder: str = "tree") -> Path:
    """``tmp_path/folder`` holding copies of the library, the recipes (with the records) and
    ``notebooks/<notebook>.md``."""
    tree = tmp_path / folder
    shutil.copytree(ROOT / "ssm_lib", tree / "ssm_lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tools" / "paper_recipes", tree / "tools" / "paper_recipes",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / f"{notebook}.md", tree / "notebooks")
    return tree
