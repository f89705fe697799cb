"""tools/check_book.py finds missing pages, broken links and anchors, unresolved references."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_book", ROOT / "tools" / "check_book.py")
check_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_book)


def _book(tmp_path: Path, chapter_html: str) -> tuple[Path, Path]:
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n"
                                       "  - file: book/chapter\n  - file: book/missing\n")
    html = tmp_path / "_build" / "html"
    (html / "book").mkdir(parents=True)
    (html / "index.html").write_text('<a href="book/chapter.html#equation-ok">eq</a>')
    (html / "book" / "chapter.html").write_text(chapter_html)
    return tmp_path, html


def test_clean_pages_pass(tmp_path):
    root, html = _book(tmp_path, '<div id="equation-ok"></div><a href="#equation-ok">(1)</a>')
    (root / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: book/chapter\n")
    assert check_book.check(root, html) == []


def test_every_kind_of_fault_is_reported(tmp_path):
    root, html = _book(tmp_path, '<div id="equation-ok"></div>'
                                 '<a href="#equation-nope">(2)</a>'
                                 '<img src="../_images/gone.png">'
                                 '<span class="xref std std-ref">sec-lost</span>')
    problems = "\n".join(check_book.check(root, html))
    assert "book/missing" in problems  # a toc page that was not rendered
    assert "equation-nope" in problems  # an anchor that does not exist
    assert "gone.png" in problems  # an image that does not exist
    assert "sec-lost" in problems  # a cross-reference Sphinx could not resolve
    assert check_book.main(["--root", str(root), "--html", str(html)]) == 1
