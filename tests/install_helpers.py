"""Shared by the tests that install the project into a fresh virtual environment (test_install,
test_colab_notebooks): which torch to ask pip for, so that neither pulls a CUDA build."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["locked_torch_requirement"]


def locked_torch_requirement() -> str:
    """torch at the pin of ``requirements.lock`` (the CPU build already in pip's cache), else any.

    With no torch in the environment, an open range such as ssm_lib's ``torch>=2.1`` makes pip
    take the newest release it may, on Linux x86_64 a CUDA build of several GB with its nvidia-*
    wheels; installing the pinned torch first satisfies that range with what is on disk.
    """
    lock = ROOT / "requirements.lock"
    if lock.is_file():
        match = re.search(r"^torch==([^\s;#]+)", lock.read_text(), flags=re.MULTILINE)
        if match:
            return f"torch=={match.group(1)}"
    return "torch"
