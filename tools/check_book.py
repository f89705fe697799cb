"""Check a built book: every page of ``_toc.yml`` was rendered, every internal link and image
resolves (file and ``#fragment``), and no cross-reference was left unresolved.

Usage (after ``jupyter-book build . --builder html``)::

    python tools/check_book.py [--root .] [--html _build/html]

Exit status 0 when everything resolves, 1 otherwise (each problem is printed on one line).

What counts as a problem:

* a ``file:`` entry of ``_toc.yml`` (or its ``root``) without an HTML page;
* an ``href`` or ``src`` in a rendered page that points inside the book to a file that does
  not exist, or to a ``#fragment`` that is no ``id`` of the target page (this covers equation
  references, whose links are ``#equation-<label>``, and theorem and figure references);
* a cross-reference that Sphinx left unresolved (an element with class ``xref`` outside any
  link), for example an ``{eq}`` role whose label does not exist.
"""

from __future__ import annotations

import argparse
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}
GENERATED_PAGES = {"genindex.html", "search.html", "py-modindex.html"}


def toc_files(toc_path: Path) -> list[str]:
    """All documents named in a jb-book ``_toc.yml`` (root first)."""
    toc = yaml.safe_load(toc_path.read_text())
    found: list[str] = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return found


class PageParser(HTMLParser):
    """Collects ids, links and unresolved cross-references of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (attribute, value)
        self.unresolved: list[str] = []
        self._stack: list[str] = []
        self._in_link = 0
        self._xref_depth: int | None = None
        self._xref_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.ids.add(a["name"])
        if tag == "a" and "href" in a:
            self.links.append(("href", a["href"]))
        if tag in ("img", "script", "source") and "src" in a:
            self.links.append(("src", a["src"]))
        if tag == "link" and "href" in a:
            self.links.append(("href", a["href"]))
        void = tag in ("img", "br", "hr", "meta", "link", "input", "source", "col", "area", "base",
                       "wbr", "embed", "param", "track")
        if void:
            return
        self._stack.append(tag)
        if tag == "a":
            self._in_link += 1
        classes = a.get("class", "").split()
        # Python-domain references to types outside the book (torch.Tensor, ...) are left
        # unlinked on purpose (nitpick_ignore); every other unlinked xref is a broken reference.
        if ("xref" in classes and "py" not in classes and self._in_link == 0
                and self._xref_depth is None):
            self._xref_depth = len(self._stack)
            self._xref_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._stack:
            return
        while self._stack:
            top = self._stack.pop()
            if top == "a":
                self._in_link -= 1
            if self._xref_depth is not None and len(self._stack) < self._xref_depth:
                self.unresolved.append("".join(self._xref_text).strip())
                self._xref_depth = None
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._xref_depth is not None:
            self._xref_text.append(data)


def parse(path: Path, cache: dict[Path, PageParser]) -> PageParser:
    if path not in cache:
        parser = PageParser()
        parser.feed(path.read_text(encoding="utf8", errors="replace"))
        parser.close()
        cache[path] = parser
    return cache[path]


def check(root: Path, html: Path) -> list[str]:
    problems: list[str] = []
    if not html.is_dir():
        return [f"{html}: no built book here (run the build first)"]
    for doc in toc_files(root / "_toc.yml"):
        doc = doc.removesuffix(".md").removesuffix(".ipynb")
        if not (html / f"{doc}.html").is_file():
            problems.append(f"_toc.yml: page {doc!r} was not rendered ({doc}.html missing)")
    cache: dict[Path, PageParser] = {}
    pages = [p for p in sorted(html.rglob("*.html"))
             if not (set(p.relative_to(html).parts) & SKIP_DIRS)]
    n_links = n_eq = 0
    for page in pages:
        rel = page.relative_to(html)
        parsed = parse(page, cache)
        for text in parsed.unresolved:
            problems.append(f"{rel}: unresolved cross-reference {text!r}")
        for attr, value in parsed.links:
            parts = urlsplit(value)
            if parts.scheme or parts.netloc or value.startswith(("mailto:", "javascript:", "data:")):
                continue
            if rel.name in GENERATED_PAGES and attr == "src":
                continue
            n_links += 1
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if parts.path and target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{rel}: {attr}={value!r} points to a missing file")
                continue
            frag = unquote(parts.fragment)
            n_eq += frag.startswith("equation-")
            if frag and target.suffix == ".html":
                if frag not in parse(target, cache).ids:
                    where = target.relative_to(html) if target.is_relative_to(html) else target
                    problems.append(f"{rel}: {attr}={value!r}: no id {frag!r} in {where}")
    print(f"check_book: {len(pages)} pages, {n_links} internal links and images checked "
          f"({n_eq} equation references), {len(problems)} problem(s)")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="book root holding _toc.yml (default: .)")
    ap.add_argument("--html", default=None, help="built HTML folder (default: <root>/_build/html)")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    html = Path(args.html).resolve() if args.html else root / "_build" / "html"
    problems = check(root, html)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
