"""Fixes to the page chrome that Jupyter Book 1's configuration cannot express.

* **One search box.** pydata-sphinx-theme 0.17 puts a search field in the top navbar unless
  ``navbar_persistent`` is set, while sphinx-book-theme already has one in the sidebar, so
  every page showed two. Jupyter Book builds ``html_theme_options`` itself from ``_config.yml``
  (setting it under ``sphinx.config`` would replace all of it), so this extension sets
  ``navbar_persistent = []`` when the configuration does not.
* **Each inline script once.** Sphinx 7.4 adds an inline script (``add_js_file(None,
  body=...)``) registered after the HTML builder was set up twice: once when it is
  registered (file name ``None``) and again from the registry before writing (file name
  ``""``), which do not compare equal. sphinx-thebe's ``const THEBE_JS_URL = ...`` is such a
  script, so every page declared the constant twice: a SyntaxError on every page. At
  ``html-page-context`` the page's script list is de-duplicated (same file, same body).
* **Equations that scroll visibly.** ``static/page_chrome.css`` gives a display equation that
  is wider than the column (on a phone) a shadow at the edge where it continues, since phones
  hide scrollbars until one scrolls. ``static/equation_scroll.js`` marks the equations that do
  scroll; the others get no shadow (its covers, in the page's colour, showed as white bands on
  every equation inside a theorem, proof or admonition box).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

STATIC = Path(__file__).resolve().parent / "static"


def adjust_config(app: Sphinx, config: Any) -> None:
    """One search box (no navbar search field), and our stylesheet's folder."""
    options = config.html_theme_options
    if isinstance(options, dict):
        options.setdefault("navbar_persistent", [])
    # Our stylesheet's folder; added here rather than as the book's _static folder, whose every
    # .css and .js file Jupyter Book would add to every page.
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def deduplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in scripts:
        filename = getattr(script, "filename", script) or ""  # None and "" are the same: no file
        key = (str(filename), str((getattr(script, "attributes", None) or {}).get("body", "")))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", adjust_config)
    app.add_css_file("page_chrome.css")
    app.add_js_file("equation_scroll.js")
    app.connect("html-page-context", deduplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
