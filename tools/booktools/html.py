"""HTML tables for the rendered pages of the experiment notebooks.

A notebook's table is often wider than the book's ~730 px column, or than a phone. Put inside the
theme's scroll container (``pst-scrollable-table-container``, pydata-sphinx-theme), a wide table
scrolls in its own box instead of widening the page; with ``wrap_text`` it is laid out at the
column's width, and long cells (a claim, an effect) wrap inside their cells. The same object is
shown by the notebook and glued for the chapters (myst-nb carries its ``text/html`` across pages),
and prints as plain text on a terminal.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Html", "page_table"]

_TEXT_CELLS = "text-cells"  # the class of a table of sentences; book/_ext/static/page_chrome.css
_FIT_COLUMN = '<table style="width: 100%; table-layout: fixed; overflow-wrap: anywhere"'
_TABLE_TAG = re.compile(r"<table\b[^>]*>")
_CLASS = re.compile(r"""\bclass=(["'])(.*?)\1""")


def _with_class(html: str, name: str) -> str:
    """``html`` with the class ``name`` on its first ``<table>`` (merged into a class attribute
    it already has)."""
    tag = _TABLE_TAG.search(html)
    if tag is None:
        return html
    old = tag.group(0)
    found = _CLASS.search(old)
    if found is None:
        new = old[:-1] + f' class="{name}">'
    elif name in found.group(2).split():
        return html
    else:
        q, classes = found.group(1), found.group(2)
        new = old[:found.start()] + f"class={q}{classes} {name}{q}" + old[found.end():]
    return html[:tag.start()] + new + html[tag.end():]


def _themed(html: str) -> str:
    """``html`` with the theme's ``table`` class on its first ``<table>``. Without it a pandas
    table has no cell padding on a chapter page (the notebook pages pad output tables, the
    chapters that glue them do not) and neighbouring numbers run together."""
    return _with_class(html, "table")


class Html:
    """An HTML fragment: rendered as ``text`` by a notebook (``_repr_html_``), printed as
    ``plain`` (default: the HTML itself) on a terminal."""

    def __init__(self, text: str, plain: str | None = None):
        if not isinstance(text, str):
            raise TypeError(f"text must be HTML text (a str), got {type(text).__name__}")
        self.text = text
        self.plain = text if plain is None else plain

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.plain


def page_table(table: Any, *, wrap_text: bool = False) -> Html:
    """``table`` (a pandas DataFrame, a pandas Styler, or the HTML text of one ``<table>``) in the
    theme's scroll container, so that it never makes the page wider than the screen, with the
    theme's ``table`` class, so that its cells are padded on every page it is shown or glued on.

    ``wrap_text``: lay the table out at the column's width (``table-layout: fixed``), long words
    and cells wrapping inside their cells, and set its cells flush left (class ``text-cells``:
    the book's stylesheet right-aligns the cells of pandas tables, for numbers, and a sentence
    set flush right is hard to read); for tables of sentences (claims, verdicts). Without it the
    columns keep their natural width and a table wider than the column scrolls."""
    if isinstance(table, str):
        html, plain = table, table
    elif hasattr(table, "to_html"):
        html = table.to_html()
        frame = getattr(table, "data", table)  # a Styler's frame, or the DataFrame itself
        plain = frame.to_string() if hasattr(frame, "to_string") else html
    else:
        raise TypeError("table must be a pandas DataFrame, a Styler or HTML text, "
                        f"got {type(table).__name__}")
    if "<table" not in html:
        raise ValueError("table holds no <table> element")
    html = _themed(html)
    if wrap_text:
        html = _with_class(html, _TEXT_CELLS).replace("<table", _FIT_COLUMN, 1)
    return Html(f'<div class="pst-scrollable-table-container">{html}</div>', plain)
