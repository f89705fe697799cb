"""Inline math in the prose survives Markdown: a line inside ``$...$`` that starts like a list
item (``- ``, ``+ ``, ``* ``, ``1. ``) is read by MyST as a new list item, which cuts the formula
in two and leaves its TeX as text on the page (the browser test's ``untypeset_math`` sees the
result; this finds the line in the source)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("book/*.md"), *ROOT.glob("notebooks/*.md")])
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"\s*([-+*]|\d+[.)])\s")


def list_items_inside_math(text: str) -> list[int]:
    """Line numbers of prose lines that start like a list item inside an open ``$...$``."""
    found, fence, dollars = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None and m:
            fence, dollars = m.group(1), 0
            continue
        if fence is not None:
            if line.strip() == fence:
                fence = None
            continue
        if not line.strip():
            dollars = 0  # a paragraph ends
            continue
        if _LIST_ITEM.match(line) and dollars % 2:
            found.append(number)
        dollars += re.sub(r"\\\$", "", line.replace("$$", "")).count("$")
    return found


def test_a_list_marker_inside_inline_math_is_found_and_one_outside_is_not():
    broken = "read off $a = b\n- c$, each.\n"
    assert list_items_inside_math(broken) == [2]
    assert list_items_inside_math("read off $a = b -\nc$, each.\n- a list item\n") == []
    assert list_items_inside_math("```{code-cell} ipython3\nx = '$'\n- 1\n```\n") == []
    assert list_items_inside_math("a $x$ and\n$$\n- y\n$$\n") == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_prose_line_inside_inline_math_starts_like_a_list_item(path):
    assert list_items_inside_math(path.read_text()) == [], path.relative_to(ROOT)
