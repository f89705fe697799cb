"""The code that readers see fits the book's column: no line of a code cell (notebooks and
chapters) is longer than CODE_WIDTH characters, so that no code box scrolls sideways on the
page (the browser test's ``wide_code_inputs`` measures the same boxes in the rendered book).

The desktop code box is ~780 px wide at a 1400 px window, ~33 px of it padding, and the
monospace font takes ~8.4 px a character: 88 characters fit exactly; 84 leave room for the
~730 px column the figures are drawn for. Re-wrapping a cell does not make committed results
stale (:func:`booktools.runs.code_as_run`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from booktools.runs import code_as_run

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("notebooks/*.md"), *ROOT.glob("book/*.md")])


def _wrap_tool():
    spec = importlib.util.spec_from_file_location("wrap_code_cells", ROOT / "tools" / "wrap_code_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wrap = _wrap_tool()
CODE_WIDTH = wrap.CODE_WIDTH


def test_long_code_lines_are_found_with_their_line_numbers():
    assert CODE_WIDTH == 84
    text = "# T\n\n```{code-cell} ipython3\nx = 1\n" + "y" * 85 + "\n```\n\n" + "z" * 90 + "\n"
    assert wrap.long_lines(text) == [(5, "y" * 85)]  # prose lines are not code


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_code_line_fits_the_column(path):
    long = [(number, len(line)) for number, line in wrap.long_lines(path.read_text())]
    assert not long, (f"{path.relative_to(ROOT)}: code lines over {CODE_WIDTH} characters "
                      f"(line, length) {long[:10]}; python tools/wrap_code_cells.py "
                      f"{path.relative_to(ROOT)} re-wraps them")


CELL = (":tags: [hide-input]\n\n"
        "def curve(x, scale):\n"
        "    \"\"\"The curve of the figure below, drawn for every point of the grid on which the "
        "density is evaluated.\"\"\"\n"
        "    return scale * x\n\n\n"
        "values = curve(grid_of_points_for_the_figure, scale=the_scale_of_the_figure_in_use)  "
        "# the values, one per grid point\n"
        "print(f\"the figure shows {len(values)} values of the curve on a grid, at scale "
        "{the_scale_of_the_figure_in_use:.2f}, for the reader\")\n"
        "if values is None:\n    values = []\n"
        "else:  # the values of the curve on the grid of the figure that the reader sees below it\n"
        "    values = list(values)\n"
        "plt.plot(values);\n")


def test_the_wrap_tool_fits_a_cell_and_keeps_what_it_runs():
    (new,) = wrap.wrap_cells([CELL])
    widest = max(len(line) for line in new.splitlines())
    assert widest <= CODE_WIDTH < max(len(line) for line in CELL.splitlines())
    assert code_as_run(new) == code_as_run(CELL)
    assert new.startswith(":tags: [hide-input]\n")  # the options stay first
    assert new.rstrip().endswith("plt.plot(values);")  # the ';' that hides the value stays
    assert "# the values, one per grid point\nvalues = curve(" in new  # the comment goes above
    assert "else:\n    # the values of the curve" in new  # or opens the block its line opens
    assert wrap.wrap_cells([new]) == [new]  # a second pass changes nothing
    text = "```{code-cell} ipython3\n" + CELL + "```\n"
    assert [n for n, _ in wrap.long_lines(text)] == [5, 9, 10, 13]


def test_the_wrap_tool_refuses_a_rewrite_that_changes_what_a_cell_runs(monkeypatch):
    formatted = wrap._format
    monkeypatch.setattr(wrap, "_format", lambda sources, width: [
        s.replace("scale * x", "scale + x") for s in formatted(sources, width)])
    with pytest.raises(ValueError, match="would change what this cell runs"):
        wrap.wrap_cells([CELL])


FRAGMENTED = (
    "exp.check(\n"
    "    ok,\n"
    '    f"all {n} test NLLs are finite, and each importance-weighted bound is "\n'
    '    f"no "\n'
    "    \"looser than its proposal's {ELBO} \"\n"
    '    "bound",\n'
    ")\n"
    'names = [\n    "first",\n    "second",\n]\n'
    'print(\n    "the first line of a long text that is printed as it is written here\\n"\n'
    '    "two\\n"\n    "three",\n    flush=True,\n)\n'
    'rows.append(\n    dict(\n        objective=name,\n        status=f"over the memory budget '
    '(predicted {predicted_gib:.1f} "\n        f"GiB)",\n    )\n)\n'
)


def test_the_wrap_tool_refills_a_string_left_in_fragments():
    (new,) = wrap.wrap_cells([FRAGMENTED])
    assert code_as_run(new) == code_as_run(FRAGMENTED)
    # the pieces refilled: three lines become two
    assert ('    f"all {n} test NLLs are finite, and each importance-weighted bound is no "\n'
            '    f"looser than its proposal\'s {{ELBO}} bound",\n') in new
    assert '    "first",\n    "second",\n' in new  # separate values are not joined
    assert 'written here\\n"\n    "two\\n"\n    "three",' in new  # a \n ends a line
    # two lines stay two, but without the fragment (and with room for the tail)
    assert '\n        f"GiB)",' not in new and "{predicted_gib:.1f} GiB)" in new
    assert wrap.wrap_cells([new]) == [new]
