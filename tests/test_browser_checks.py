"""The browser test's progress-bar rule (tests/browser/checks.py), without a browser: tqdm's
redraws frozen into a rendered page fail it, ordinary printed numbers do not."""

from __future__ import annotations

from pathlib import Path

from tests.browser.checks import DESKTOP, FAILS_AT, PHONE, Events, evaluate, progress_bar_lines

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


def test_progress_bars_fail_the_page_at_both_widths():
    assert FAILS_AT["progress_bars"] == (DESKTOP, PHONE)
    raw = {"brokenImages": [], "mathErrors": [], "untypesetMath": [], "rawTex": [], "wideEquations": [],
           "equationsOverNumber": [], "wideOutputs": [], "wideCodeInputs": [], "figures": [],
           "pageOverflowPx": 0, "dropdownsNotOpening": [], "searchBoxes": 1, "searchBoxLabels": [],
           "outputTexts": [{"label": "div.cell_output pre", "text": BARS[0]}]}
    found = evaluate(raw, Events([], [], [], []), PHONE, "http://127.0.0.1/", Path("."))
    assert len(found["progress_bars"]) == 1


def test_cramped_tables_fail_the_page_at_both_widths():
    """A table whose neighbouring cells' text comes closer than MIN_CELL_GAP_PX (measure.js)."""
    assert FAILS_AT["cramped_tables"] == (DESKTOP, PHONE)
    raw = {"brokenImages": [], "mathErrors": [], "untypesetMath": [], "rawTex": [], "wideEquations": [],
           "equationsOverNumber": [], "wideOutputs": [], "wideCodeInputs": [], "figures": [],
           "pageOverflowPx": 0, "dropdownsNotOpening": [], "searchBoxes": 1, "searchBoxLabels": [],
           "crampedTables": [{"label": 'table#T_c9b8f "objective"', "gap": 2.0,
                              "cells": '"-12110.4" | "3"'}]}
    for width in (DESKTOP, PHONE):
        found = evaluate(raw, Events([], [], [], []), width, "http://127.0.0.1/", Path("."))
        assert found["cramped_tables"] == ['table#T_c9b8f "objective": 2 px between "-12110.4" | "3"']


def test_painted_equations_fail_the_page_at_both_widths():
    """A display equation that fits its box but carries the scroll shadows' background."""
    assert FAILS_AT["painted_equations"] == (DESKTOP, PHONE)
    raw = {"brokenImages": [], "mathErrors": [], "untypesetMath": [], "rawTex": [], "wideEquations": [],
           "equationsOverNumber": [], "wideOutputs": [], "wideCodeInputs": [], "figures": [],
           "pageOverflowPx": 0, "dropdownsNotOpening": [], "searchBoxes": 1, "searchBoxLabels": [],
           "paintedEquations": ["equation-eq-ssm-efficiency"]}
    for width in (DESKTOP, PHONE):
        found = evaluate(raw, Events([], [], [], []), width, "http://127.0.0.1/", Path("."))
        assert found["painted_equations"] == ["equation-eq-ssm-efficiency"]


def test_bare_results_fail_the_page_at_both_widths():
    """A cell's returned value shown as its bare repr (measure.js: div.output.text_plain)."""
    assert FAILS_AT["bare_results"] == (DESKTOP, PHONE)
    raw = {"brokenImages": [], "mathErrors": [], "untypesetMath": [], "rawTex": [], "wideEquations": [],
           "equationsOverNumber": [], "wideOutputs": [], "wideCodeInputs": [], "figures": [],
           "pageOverflowPx": 0, "dropdownsNotOpening": [], "searchBoxes": 1, "searchBoxLabels": [],
           "bareResults": ['div "0.143050384001981"']}
    for width in (DESKTOP, PHONE):
        found = evaluate(raw, Events([], [], [], []), width, "http://127.0.0.1/", Path("."))
        assert found["bare_results"] == ['div "0.143050384001981": a returned value shown bare']
