"""booktools.html: the tables the experiment pages show and glue into the chapters."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from booktools.html import Html, page_table

FRAME = pd.DataFrame({"claim": ["a long claim " * 5], "verdict": ["reproduced"]}).set_index("claim")


def test_a_table_is_wrapped_in_the_scroll_container_and_prints_as_text():
    out = page_table(FRAME)
    html = out._repr_html_()
    assert html.startswith('<div class="pst-scrollable-table-container"><table')
    assert html.endswith("</table></div>") and "table-layout" not in html
    assert repr(out) == FRAME.to_string()


def test_wrap_text_lays_the_table_out_at_the_column_width():
    html = page_table(FRAME, wrap_text=True)._repr_html_()
    assert 'style="width: 100%; table-layout: fixed; overflow-wrap: anywhere"' in html
    assert html.count("table-layout") == 1


def test_a_styler_and_html_text_are_taken_too():
    styled = page_table(FRAME.style.set_caption("cap"), wrap_text=True)
    assert "<caption>cap</caption>" in styled._repr_html_() and repr(styled) == FRAME.to_string()
    assert "table-layout" in styled._repr_html_().split("<table", 1)[1].split(">", 1)[0]
    text = page_table("<table><tr><td>1</td></tr></table>")
    assert repr(text) == "<table><tr><td>1</td></tr></table>" and isinstance(text, Html)


@pytest.mark.parametrize("bad, error, match", [(3, TypeError, "table must be"),
                                               ("<p>no table</p>", ValueError, "no <table>")])
def test_what_is_not_a_table_is_refused(bad, error, match):
    with pytest.raises(error, match=match):
        page_table(bad)


def test_html_text_must_be_a_string():
    with pytest.raises(TypeError, match="text must be"):
        Html(b"<p>")


def _first_table_tag(html: str) -> str:
    return "<table" + html.split("<table", 1)[1].split(">", 1)[0] + ">"


@pytest.mark.parametrize("make", [lambda: FRAME, lambda: FRAME.style.set_caption("cap"),
                                  lambda: "<table><tr><td>1</td><td>2</td></tr></table>",
                                  lambda: "<table class='x'><tr><td>1</td></tr></table>"],
                         ids=["frame", "styler", "bare html", "html with a class"])
@pytest.mark.parametrize("wrap_text", [False, True])
def test_every_table_gets_the_themes_class_once(make, wrap_text):
    """Without the theme's ``table`` class a glued pandas table had no cell padding on a chapter
    page: "-12110.4" beside "3" read "-12110.43" (the browser test's cramped_tables)."""
    table = make()
    tag = _first_table_tag(page_table(table, wrap_text=wrap_text)._repr_html_())
    classes = tag.split("class=", 1)[1][1:].split(tag.split("class=", 1)[1][0], 1)[0].split()
    assert classes.count("table") == 1, tag
    if isinstance(table, pd.DataFrame):
        assert "dataframe" in classes  # pandas' own class kept
    if isinstance(table, str) and "'x'" in table:
        assert classes == ["x", "table"] + (["text-cells"] if wrap_text else [])
    again = page_table(page_table(table, wrap_text=wrap_text)._repr_html_())._repr_html_()
    assert _first_table_tag(again).count("table") == tag.count("table")  # not added twice


def test_a_table_of_sentences_is_set_flush_left():
    # the book's stylesheet right-aligns pandas cells (numbers); wrap_text tables hold sentences
    html = page_table(FRAME, wrap_text=True)._repr_html_()
    table_tag = html.split("<table", 1)[1].split(">", 1)[0]
    assert "text-cells" in table_tag.split('class="', 1)[1].split('"', 1)[0].split()
    assert "text-cells" not in page_table(FRAME)._repr_html_()
    styled = page_table(FRAME.style, wrap_text=True)._repr_html_()
    assert 'class="table text-cells"' in styled


def test_the_book_stylesheet_sets_text_cells_flush_left():
    css = (Path(__file__).resolve().parents[1] / "book/_ext/static/page_chrome.css").read_text()
    rule = css.split(".cell_output table.text-cells th {", 1)[1].split("}", 1)[0]
    assert "text-align: left" in rule
    # the rule comes after the right alignment of pandas cells, which it must override
    assert css.index(".cell_output table.text-cells td") > css.index("text-align: right")
