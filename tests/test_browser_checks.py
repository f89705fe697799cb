"""The browser test's page rules (tests/browser/checks.py), without a browser: tqdm's redraws
frozen into a rendered page fail it, ordinary printed numbers do not; cramped tables, painted
equations and bare returned values fail it at both widths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.checks import (
    DESKTOP,
    FAILS_AT,
    PHONE,
    Events,
    evaluate,
    failures,
    missing_value_lines,
    progress_bar_lines,
)

BARS = [
    "runs:  40%|████      | 4/10 [00:03<00:04,  1.31it/s]",
    "models: 100%|██████████| 16/16 [01:02<00:00,  3.90s/it]",
    "training:   0%|          | 0/400 [00:00<?, ?it/s]\rtraining:  10%|█         | 40/400",
]
PLAIN = ["Fisher divergence 0.905 (95% interval 0.88-0.93)", "SSM-VR: 12.5 steps/s, 3 it per batch",
         "[PASS] loss decreased in 100% of the runs"]


def test_progress_bar_redraws_are_found_and_plain_output_is_not():
    found = progress_bar_lines([{"label": "pre#1", "text": "\n".join(BARS)}])
    assert len(found) == 1 and "3 progress-bar line(s)" in found[0]
    assert progress_bar_lines([{"label": "pre#2", "text": "\n".join(PLAIN)}]) == []


def quiet_page(**measured: object) -> dict:
    """What measure.js returns for a page with nothing wrong, with ``measured`` in its place."""
    raw = {"brokenImages": [], "mathErrors": [], "untypesetMath": [], "rawTex": [], "wideEquations": [],
           "equationsOverNumber": [], "wideOutputs": [], "wideCodeInputs": [], "figures": [],
           "pageOverflowPx": 0, "dropdownsNotOpening": [], "searchBoxes": 1, "searchBoxLabels": []}
    return raw | measured


def found_at(raw: dict, width: int) -> dict[str, list[str]]:
    return evaluate(raw, Events([], [], [], []), width, "http://127.0.0.1/", Path("."))


def test_progress_bars_fail_the_page_at_both_widths():
    assert FAILS_AT["progress_bars"] == (DESKTOP, PHONE)
    raw = quiet_page(outputTexts=[{"label": "div.cell_output pre", "text": BARS[0]}])
    assert len(found_at(raw, PHONE)["progress_bars"]) == 1


def test_an_inline_formula_past_its_paragraph_fails_the_page_at_the_desktop_width_only():
    assert FAILS_AT["wide_inline_math"] == (DESKTOP,)
    item = 'p#exercises "Assume s in C5." (112 px past its right edge)'
    raw = quiet_page(wideInlineMath=[item])
    assert failures(found_at(raw, DESKTOP), DESKTOP) == {"wide_inline_math": [item]}
    assert failures(found_at(raw, PHONE), PHONE) == {}


def test_a_code_box_wider_than_its_column_fails_the_page_at_the_desktop_width_only():
    assert FAILS_AT["wide_code_inputs"] == (DESKTOP,)
    raw = quiet_page(wideCodeInputs=[{"label": 'pre#codecell0 "import torch"', "width": 833,
                                      "box": 780}])
    assert found_at(raw, DESKTOP)["wide_code_inputs"] == ['pre#codecell0 "import torch": 833 px in 780 px']
    assert failures(found_at(raw, DESKTOP), DESKTOP) == {
        "wide_code_inputs": ['pre#codecell0 "import torch": 833 px in 780 px']}
    assert failures(found_at(raw, PHONE), PHONE) == {}


@pytest.mark.parametrize("check, measured, items", [
    # a table whose neighbouring cells' text comes closer than MIN_CELL_GAP_PX
    ("cramped_tables", {"crampedTables": [{"label": 'table#T_c9b8f "objective"', "gap": 2.0,
                                           "cells": '"-12110.4" | "3"'}]},
     ['table#T_c9b8f "objective": 2 px between "-12110.4" | "3"']),
    # a display equation that fits its box but carries the scroll shadows' background
    ("painted_equations", {"paintedEquations": ["equation-eq-ssm-efficiency"]},
     ["equation-eq-ssm-efficiency"]),
    # a cell's returned value shown as its bare repr (div.output.text_plain)
    ("bare_results", {"bareResults": ['div "0.143050384001981"']},
     ['div "0.143050384001981": a returned value shown bare']),
    # an output table's cell holding a bare missing-value marker
    ("missing_values", {"missingValueCells": ['table "label": a cell "NaN"']},
     ['table "label": a cell "NaN"']),
    # printed output showing nan as a value
    ("missing_values", {"outputTexts": [{"label": "pre#1", "text": "ESS 12.5\nlog Z nan"}]},
     ["pre#1: 1 line(s) with nan/inf, e.g. 'log Z nan'"]),
])
def test_page_rules_fail_the_page_at_both_widths(check, measured, items):
    assert FAILS_AT[check] == (DESKTOP, PHONE)
    for width in (DESKTOP, PHONE):
        found = found_at(quiet_page(**measured), width)
        assert found[check] == items
        assert all(not v for k, v in found.items() if k != check)  # nothing else counted
    assert found_at(quiet_page(), DESKTOP)[check] == []


def test_printed_nan_or_inf_is_found_as_a_value_and_not_inside_words():
    shown = ["loss nan", "ratio inf", "-inf at step 3", "NaN", "(nan, 0.5)", "ll=-inf"]
    words = ["nan_to_num(x)", "inference network", "Infinity aside", "infinite", "finance",
             "torch.isnan", "math.inf(", "info: 3 steps"]
    for line in shown:
        assert missing_value_lines([{"label": "pre", "text": line}]), line
    assert missing_value_lines([{"label": "pre", "text": "\n".join(words)}]) == []
