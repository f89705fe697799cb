"""Launch links of the experiment pages: Binder on the notebook's source, and Colab.

The experiment pages are rendered from ``experiments/<name>.ipynb``, which ``make reproduce``
writes and git ignores, so the theme's Binder link (a path in the repository) pointed to a
file that is not there. For a page ``experiments/<name>`` this extension, run after the theme
has built its launch menu (``html-page-context``):

* points the Binder link at the notebook's source, ``notebooks/<name>.md`` (JupyterLab opens
  it as a notebook through jupytext, which is in the environment);
* adds "Colab", opening ``<name>.ipynb`` on the branch ``colab_branch`` of the repository.
  ``tools/colab_notebooks.py`` generates those notebooks (with a first cell that installs the
  project when it runs outside the repository) and the deployment workflow publishes them to
  that branch.

The repository's URL and branch are those of ``repository:`` in ``_config.yml``; the Colab
branch is ``sphinx.config.colab_branch`` there. Nothing else names them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sphinx.application import Sphinx

COLAB_URL = "https://colab.research.google.com"
EXPERIMENTS = "experiments/"


def github_repo(url: str) -> tuple[str, str] | None:
    """``("org", "repo")`` of a github.com URL, else None."""
    parts = urlsplit(url)
    if parts.netloc.lower() not in {"github.com", "www.github.com"}:
        return None
    path = [p for p in parts.path.strip("/").removesuffix(".git").split("/") if p]
    return (path[0], path[1]) if len(path) >= 2 else None


def colab_link(repository_url: str, colab_branch: str, name: str) -> str | None:
    repo = github_repo(repository_url)
    if repo is None:
        return None
    return f"{COLAB_URL}/github/{repo[0]}/{repo[1]}/blob/{colab_branch}/{name}.ipynb"


def _launch_group(context: dict) -> dict | None:
    for button in context.get("header_buttons", []):
        if isinstance(button, dict) and button.get("label") == "launch-buttons":
            return button
    return None


def experiment_launch_links(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    if not pagename.startswith(EXPERIMENTS):
        return
    group = _launch_group(context)
    if group is None:
        return
    name = pagename[len(EXPERIMENTS):]
    for button in group["buttons"]:
        if button.get("text") == "Binder" and "?urlpath=" in button.get("url", ""):
            base, urlpath = button["url"].split("?urlpath=", 1)
            interface = "lab/tree" if urlpath.startswith("lab/tree/") else "tree"
            button["url"] = f"{base}?urlpath={interface}/notebooks/{name}.md"
    options = app.config.html_theme_options
    url = colab_link(options.get("repository_url", ""), app.config.colab_branch, name)
    if url and not any(button.get("text") == "Colab" for button in group["buttons"]):
        group["buttons"].append({
            "type": "link",
            "text": "Colab",
            "tooltip": "Open this experiment in Colab (set profile = \"full\" to run it on a GPU)",
            "icon": "_static/images/logo_colab.png",
            "url": url,
        })


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("colab_branch", "colab", "html")
    app.connect("html-page-context", experiment_launch_links, priority=800)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
