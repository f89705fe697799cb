"""The small Sphinx extensions of book/_ext: author–year labels, launch links, page chrome."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

from pybtex.database import Entry, Person

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, ROOT / "book" / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


author_year_bib = _load("author_year_bib")
launch_links = _load("launch_links")
page_chrome = _load("page_chrome")


def _entry(key: str, authors: list[str], year: str) -> Entry:
    entry = Entry("article", fields={"year": year, "title": key})
    entry.key = key
    entry.persons["author"] = [Person(a) for a in authors]
    return entry


def test_author_year_labels_match_the_citations() -> None:
    entries = [
        _entry("h", ["Hyv{\\\"a}rinen, Aapo"], "2005"),
        _entry("se", ["Song, Yang", "Ermon, Stefano"], "2019"),
        _entry("s1", ["Song, Yang", "Garg, Sahaj", "Shi, Jiaxin"], "2020"),
        _entry("s2", ["Song, Yang", "Kingma, Diederik", "Ermon, Stefano"], "2020"),
    ]
    labels = list(author_year_bib.AuthorYearLabelStyle().format_labels(entries))
    assert labels == ["Hyvärinen, 2005", "Song and Ermon, 2019", "Song et al., 2020a", "Song et al., 2020b"]


def test_colab_link_and_repository_parts() -> None:
    assert launch_links.github_repo("https://github.com/org/repo.git") == ("org", "repo")
    assert launch_links.github_repo("https://gitlab.com/org/repo") is None
    assert launch_links.colab_link("https://github.com/org/repo", "colab", "ssm_variance") == (
        "https://colab.research.google.com/github/org/repo/blob/colab/ssm_variance.ipynb"
    )


def _context(binder_url: str) -> dict:
    binder = {"type": "link", "text": "Binder", "url": binder_url}
    return {"header_buttons": [{"type": "group", "label": "launch-buttons", "buttons": [binder]}]}


def test_experiment_pages_get_colab_and_binder_on_the_source() -> None:
    app = SimpleNamespace(config=SimpleNamespace(
        html_theme_options={"repository_url": "https://github.com/org/repo"}, colab_branch="nb"))
    context = _context("https://mybinder.org/v2/gh/org/repo/main?urlpath=lab/tree/experiments/x.ipynb")
    launch_links.experiment_launch_links(app, "experiments/x", "page.html", context, None)
    buttons = context["header_buttons"][0]["buttons"]
    assert buttons[0]["url"] == "https://mybinder.org/v2/gh/org/repo/main?urlpath=lab/tree/notebooks/x.md"
    assert buttons[1]["text"] == "Colab"
    assert buttons[1]["url"].endswith("/github/org/repo/blob/nb/x.ipynb")
    chapter = _context("https://mybinder.org/v2/gh/org/repo/main?urlpath=lab/tree/book/a.md")
    launch_links.experiment_launch_links(app, "book/a", "page.html", chapter, None)
    assert len(chapter["header_buttons"][0]["buttons"]) == 1


def test_inline_scripts_are_kept_once() -> None:
    from sphinx.builders.html._assets import _JavaScript

    scripts = [_JavaScript(None, body="const A = 1"), _JavaScript("a.js"),
               _JavaScript("", body="const A = 1"), _JavaScript("", body="let b"), _JavaScript("a.js")]
    context = {"script_files": scripts}
    page_chrome.deduplicate_scripts(None, "p", "page.html", context, None)
    assert [(s.filename, s.attributes.get("body")) for s in context["script_files"]] == [
        (None, "const A = 1"), ("a.js", None), ("", "let b")]
