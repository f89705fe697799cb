"""What the two commands (``tools/reproduce.py``, ``benchmarks/run.py``) share: a mistake on
the command line ends in one line and exit status 2, before any work; Ctrl-C in one line and
status 130; an output folder that cannot be written is found first."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line, no usage text)."""

    def error(self, message: str):
        raise UsageError(message)


def writable_folder(path: Path, option: str) -> Path:
    """Create ``path`` if needed and check that a file can be written in it."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"{option} {path} cannot be written ({err.strerror})") from None
    return path


def run_command(prog: str, body: Callable[[], int], interrupted: str = "interrupted") -> int:
    """``body()``'s exit status; a :class:`UsageError` is one line and status 2, Ctrl-C (or
    SIGTERM, when the body turns it into ``KeyboardInterrupt``) one line and status 130."""
    try:
        return body()
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
