"""Checked reading of data files: the md5 of a file, verified against the documented one."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_md5", "verify_md5"]


def file_md5(path: str | Path) -> str:
    """The md5 hex digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: str | Path, expected: str) -> Path:
    """Raise ``ValueError`` naming ``path`` when it is missing or its md5 is not ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} does not exist (expected a file with md5 {expected})")
    got = file_md5(path)
    if got != expected:
        raise ValueError(f"path {str(path)!r} has md5 {got}, expected {expected}: the file is "
                         "corrupted or not the one described in data/README.md")
    return path
