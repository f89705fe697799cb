"""The paper's experiment recipes (not part of ``ssm_lib``): the data files of the repository
with their md5s and the paper's preprocessing (:mod:`paper_recipes.uci`,
:mod:`paper_recipes.images`), and the auto-encoder networks of the implicit-VAE experiment
(:mod:`paper_recipes.vae`).

``ssm_lib`` is the library a reader imports into their own code; everything here belongs to
this repository's experiments and is installed, editable, beside :mod:`booktools` by
``make venv`` (``tools/pyproject.toml``). Data paths are arguments of the loaders;
:data:`DATA_DIR`, the repository's ``data/`` folder, is only their default.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR"]

#: The repository's ``data/`` folder (this package lies in ``tools/paper_recipes``).
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
