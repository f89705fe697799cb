"""MathJax served by the book itself, so that pages read without a network.

``mathjax_path`` in ``_config.yml`` names a file relative to ``_static``
(``mathjax/tex-chtml.js``). After the build, this extension copies that combined component
and the few folders MathJax loads from beside it at run time (the TeX extensions it autoloads,
the CHTML web fonts, the menu and its accessibility add-ons with the speech rule engine they
use) out of the MathJax 3 distribution shipped by the ``django-static-mathjax`` package
(pinned in requirements.lock; its Python module is ``mathjax``) into
``_build/html/_static/mathjax/`` (about 7 MB).

The files are *not* put in an ``html_static_path``: Jupyter Book 1 adds a ``<script>`` for
every ``.js`` file found in the static paths to every page, which would load hundreds of
MathJax modules on each page.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ConfigError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

# What tex-chtml.js loads at run time, relative to the es5 folder of the MathJax distribution.
MATHJAX_RUNTIME_DIRS = (
    "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y", "sre", "adaptors",
)


def mathjax_distribution() -> Path:
    """The ``es5`` folder of MathJax 3 shipped by django-static-mathjax (module ``mathjax``)."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "MathJax is served by the book: install django-static-mathjax (requirements.lock)"
        )
    es5 = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").exists():
        raise ConfigError(f"no MathJax 3 distribution at {es5}")
    return es5


def _local_mathjax_path(app: Sphinx) -> PurePosixPath | None:
    path = str(app.config.mathjax_path or "")
    if "://" in path or path.startswith("/"):
        return None  # a CDN or an absolute URL: nothing to serve
    return PurePosixPath(path)


def check_mathjax_path(app: Sphinx, config: Any) -> None:
    local = _local_mathjax_path(app)
    if local is not None and not (mathjax_distribution() / local.name).exists():
        raise ConfigError(f"mathjax_path {local}: no file {local.name} in the MathJax distribution")


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    local = _local_mathjax_path(app)
    if local is None or app.builder.format != "html":
        return
    source = mathjax_distribution()
    target = Path(app.outdir) / "_static" / local.parent
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / local.name, target / local.name)
    for sub in MATHJAX_RUNTIME_DIRS:
        if (source / sub).is_dir():
            shutil.copytree(source / sub, target / sub, dirs_exist_ok=True)
    licence = source.parent / "LICENSE"
    if licence.exists():
        shutil.copy2(licence, target / "LICENSE")
    LOGGER.info("MathJax %s served from _static/%s", local.name, local.parent)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", check_mathjax_path)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
