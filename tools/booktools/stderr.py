"""Redirect the process's standard error at the file-descriptor level."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def native_stderr_to(path: str | Path = os.devnull) -> Iterator[TextIO]:
    """Send file descriptor 2 to ``path`` for a while: native code (the torch profiler's
    ``USDT ... profiler_start`` lines) and child processes (a Jupyter kernel) write there
    directly, so redirecting ``sys.stderr`` is not enough. Yields a stream on the original
    standard error; exceptions propagate as usual."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "w") as target, os.fdopen(os.dup(saved), "w") as original:
            os.dup2(target.fileno(), 2)
            yield original
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
