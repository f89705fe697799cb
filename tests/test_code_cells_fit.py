"""The code that readers see fits the book's column: no line of a code cell (notebooks and
chapters) is longer than CODE_WIDTH characters, so that no code box scrolls sideways on the
page (the browser test's ``wide_code_inputs`` measures the same boxes in the rendered book).

The desktop code box is ~780 px wide at a 1400 px window, ~33 px of it padding, and the
monospace font takes ~8.4 px a character: 88 characters fit exactly; 84 leave room for the
~730 px column the figures are drawn for. Re-wrapping a cell does not make committed results
stale (:func:`booktools.runs.code_as_run`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_WIDTH = 84
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.M | re.S)
SOURCES = sorted([*ROOT.glob("notebooks/*.md"), *ROOT.glob("book/*.md")])


def long_code_lines(text: str, width: int = CODE_WIDTH) -> list[tuple[int, int]]:
    """(line number, length) of each code-cell line of a MyST file longer than ``width``."""
    found = []
    for m in CODE_CELL.finditer(text):
        first = text.count("\n", 0, m.start(1)) + 1
        found += [(first + i, len(line)) for i, line in enumerate(m.group(1).splitlines())
                  if len(line) > width]
    return found


def test_long_code_lines_are_found_with_their_line_numbers():
    text = "# T\n\n```{code-cell} ipython3\nx = 1\n" + "y" * 85 + "\n```\n\n" + "z" * 90 + "\n"
    assert long_code_lines(text) == [(5, 85)]  # prose lines are not code


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_code_line_fits_the_column(path):
    long = long_code_lines(path.read_text())
    assert not long, (f"{path.relative_to(ROOT)}: code lines over {CODE_WIDTH} characters "
                      f"(line: length) {long[:10]}")
