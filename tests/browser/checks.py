"""What the browser test counts on a page, and which counts fail it at which width.

Each check turns the raw measurements of ``measure.js`` (plus the browser events collected by
the test) into a list of offending items; its count is that list's length.

Rules (the thresholds are documented here; the top-level README points here):

* ``console_errors``: console messages of type error and uncaught exceptions (``pageerror``).
  "Failed to load resource" messages are left to ``failed_requests``, which counts them once.
* ``failed_requests``: requests that failed or were answered with status >= 400, and every
  request for anything but the local server (the book must work offline; such requests are
  refused before they leave the browser).
* ``broken_images``: ``<img>`` elements that did not load (``naturalWidth == 0``).
* ``math_errors``: MathJax error nodes (``merror``: unknown macro, bad syntax) and undefined
  control sequences (rendered red), read from MathJax's own list of typeset formulas.
* ``untypeset_math``: ``.math`` elements MathJax did not typeset (e.g. MathJax failed to load),
  and TeX left in the page's text outside code (a backslash and two or more letters, ``$$`` or
  a dollar sign before a backslash), e.g. a formula that a line starting with ``- `` cut into a list item.
* ``wide_equations``: display equations whose typeset width exceeds their box. At the desktop
  width every such equation fails. At the phone width an equation whose own box scrolls
  sideways (its scrollbar directly under it) is allowed and only counted in
  ``scrollable_equations``; one that is cut off or spills over the margin fails.
* ``wide_inline_math``: an inline formula that runs past the right edge of its paragraph (MathJax
  does not break inline formulas, so a long one is cut off or spills over the margin). Fails at
  the desktop width; on a phone the count is for information.
* ``equations_over_number``: the visible part of a display equation (cut to its box where the
  box scrolls) overlapping its equation number; fails at the desktop width.
* ``painted_equations``: display equations that fit their box but carry a background (the
  scroll shadows that only an equation wider than its box should get; on a coloured box their
  covers show as bands of the page's colour at both ends). Fails at both widths.
* ``wide_outputs``: printed cell output (``<pre>``) or an output table wider than its box, so
  part of it is hidden behind a scrollbar. Fails at the desktop width; at the phone width code
  boxes scroll sideways by design and the count is for information.
* ``wide_code_inputs``: a code box (a cell's input, or a code block in the prose) whose text is
  wider than the box, so that part of a line is hidden behind a scrollbar. Fails at the desktop
  width (code cells are wrapped to 84 characters, ``tests/test_code_cells_fit.py``); at the
  phone width code boxes scroll sideways by design and the count is for information.
* ``progress_bars``: printed output that is a progress bar's redraw (tqdm-style lines with
  ``NN%|``, ``it/s`` or ``s/it``, or a carriage return): frozen in a static page they are noise
  (the notebook harness switches tqdm off inside executed notebooks, ``TQDM_DISABLE=1``).
  Fails at both widths.
* ``bare_results``: a value that a cell's last line returned, shown as its bare repr (a float
  with 15 digits under a cell that printed its result in words already). A cell whose last
  call returns something it does not mean to show assigns it (``_ = ...``). Fails at both
  widths.
* ``missing_values``: a cell of an output table that shows a bare ``NaN``, ``None``, ``<NA>``,
  ``NaT`` or ``inf``, or printed output with ``nan`` or ``inf`` as a word: a reader cannot tell
  "not measured" from "skipped" from "failed", so tables write what an empty cell means
  ("skipped", "–" with a legend). Fails at both widths.
* ``small_figures``: figures shown so small that their text is below a legible size. The PNG's
  dpi (from its pHYs chunk, 100 if absent) and its shown width give the CSS pixels per figure
  inch, ``scale = shown_px / (natural_px / dpi)``; text of ``FIGURE_FONT_PT`` (8 pt, the
  smallest size the project's figure standard allows, for legends) is shown at
  ``FIGURE_FONT_PT / 72 * scale`` CSS px. Below ``MIN_TEXT_PX`` (9 px) the figure fails at the
  desktop width. A figure drawn to the standard (<= 7.5 in wide) in the ~730 px column shows
  8-pt text at ~10.8 px. On a phone figures are always reduced (readers zoom), so the count is
  for information there.
* ``cramped_tables``: tables in which the text of two neighbouring cells of a row comes closer
  than ``MIN_CELL_GAP_PX`` (6 px): cells without padding, whose numbers read as one ("-12110.4"
  beside "3" reads "-12110.43"). The theme's tables leave about 17 px; a glued pandas table
  without the theme's ``table`` class left 2 px. Fails at both widths.
* ``page_scrolls_sideways``: the page is wider than the window (1 item; its overflow in px).
* ``dropdowns_not_opening``: a ``<details>`` dropdown or toggle button whose content is still
  hidden after a click on it.
* ``search_boxes``: more than one search field or button visible in the page chrome (desktop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

FIGURE_FONT_PT = 8.0
MIN_TEXT_PX = 9.0
DEFAULT_DPI = 100.0
MIN_CELL_GAP_PX = 6.0
DESKTOP, PHONE = 1400, 400

# check name -> widths at which a non-zero count fails the page
FAILS_AT: dict[str, tuple[int, ...]] = {
    "console_errors": (DESKTOP, PHONE),
    "failed_requests": (DESKTOP, PHONE),
    "broken_images": (DESKTOP, PHONE),
    "math_errors": (DESKTOP, PHONE),
    "untypeset_math": (DESKTOP, PHONE),
    "wide_equations": (DESKTOP, PHONE),
    "scrollable_equations": (),
    "wide_inline_math": (DESKTOP,),
    "equations_over_number": (DESKTOP,),
    "painted_equations": (DESKTOP, PHONE),
    "wide_outputs": (DESKTOP,),
    "wide_code_inputs": (DESKTOP,),
    "progress_bars": (DESKTOP, PHONE),
    "bare_results": (DESKTOP, PHONE),
    "missing_values": (DESKTOP, PHONE),
    "small_figures": (DESKTOP,),
    "cramped_tables": (DESKTOP, PHONE),
    "page_scrolls_sideways": (DESKTOP, PHONE),
    "dropdowns_not_opening": (DESKTOP, PHONE),
    "search_boxes": (DESKTOP,),
}


# A tqdm-style progress line: "42%|####", "3.21it/s", "1.5s/it", or a carriage-return redraw.
PROGRESS_BAR = re.compile(r"\d+%\||\d\s?it/s\b|\ds/it\b|\r")


# "nan" / "inf" printed as a value: a word of its own, not part of a name such as "nan_to_num"
# or "inference".
MISSING_VALUE_WORD = re.compile(r"(?<![\w.])[-+]?(?:nan|inf)(?![\w(])", re.IGNORECASE)


def missing_value_lines(outputs: list[dict]) -> list[str]:
    """The printed lines (``{"label", "text"}`` per output block) that show nan or inf as a value."""
    found = []
    for block in outputs:
        lines = [ln for ln in block["text"].split("\n") if MISSING_VALUE_WORD.search(ln)]
        if lines:
            found += [f"{block['label']}: {len(lines)} line(s) with nan/inf, e.g. {lines[0].strip()[:80]!r}"]
    return found


def progress_bar_lines(outputs: list[dict]) -> list[str]:
    """The printed lines (``{"label", "text"}`` per output block) that are progress-bar redraws."""
    found = []
    for block in outputs:
        lines = [ln for ln in block["text"].split("\n") if PROGRESS_BAR.search(ln)]
        if lines:
            first = lines[0].replace("\r", "\\r").strip()[:80]
            found += [f"{block['label']}: {len(lines)} progress-bar line(s), e.g. {first!r}"]
    return found


@dataclass
class Events:
    """What the browser reported while the page loaded and was measured."""

    console_errors: list[str]
    page_errors: list[str]
    failed_requests: list[str]
    blocked_requests: list[str]


def png_dpi(path: Path) -> float:
    """Horizontal dpi stored in an image file (matplotlib writes it), DEFAULT_DPI if none."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            dpi = image.info.get("dpi")
    except (OSError, ImportError):
        return DEFAULT_DPI
    if not dpi or not dpi[0] or float(dpi[0]) < 10:
        return DEFAULT_DPI
    return float(dpi[0])


def local_file(url: str, base_url: str, html_root: Path) -> Path | None:
    if not url.startswith(base_url):
        return None
    return html_root / unquote(urlsplit(url).path.lstrip("/"))


def figure_text_px(rendered: float, natural: float, dpi: float) -> float:
    """CSS px of FIGURE_FONT_PT text in a figure of ``natural`` px at ``dpi`` shown ``rendered`` px wide."""
    return FIGURE_FONT_PT / 72.0 * rendered / (natural / dpi)


def evaluate(raw: dict, events: Events, width: int, base_url: str, html_root: Path) -> dict[str, list[str]]:
    """Offending items per check (see the module docstring)."""
    found: dict[str, list[str]] = {name: [] for name in FAILS_AT}
    found["console_errors"] = [f"console: {m}" for m in events.console_errors] + [
        f"uncaught: {m}" for m in events.page_errors
    ]
    found["failed_requests"] = list(events.failed_requests) + [
        f"external (blocked): {u}" for u in events.blocked_requests
    ]
    found["broken_images"] = list(raw["brokenImages"])
    found["math_errors"] = list(raw["mathErrors"])
    found["untypeset_math"] = [f"not typeset: {t}" for t in raw["untypesetMath"]] + [
        f"TeX in text: {t}" for t in raw["rawTex"]
    ]
    for eq in raw["wideEquations"]:
        item = f"{eq['label']}: {eq['width']} px in a {eq['box']} px box"
        if width == PHONE and eq["scrollable"]:
            found["scrollable_equations"].append(item)
        else:
            found["wide_equations"].append(item + ("" if eq["scrollable"] else " (clipped)"))
    found["wide_inline_math"] = list(raw.get("wideInlineMath", []))
    found["equations_over_number"] = list(raw["equationsOverNumber"])
    found["painted_equations"] = list(raw.get("paintedEquations", []))
    found["wide_outputs"] = [f"{o['label']}: {o['width']} px in {o['box']} px" for o in raw["wideOutputs"]]
    found["wide_code_inputs"] = [
        f"{o['label']}: {o['width']} px in {o['box']} px" for o in raw["wideCodeInputs"]
    ]
    found["progress_bars"] = progress_bar_lines(raw.get("outputTexts", []))
    found["missing_values"] = list(raw.get("missingValueCells", [])) + missing_value_lines(
        raw.get("outputTexts", [])
    )
    found["bare_results"] = [f"{label}: a returned value shown bare" for label in raw.get("bareResults", [])]
    for fig in raw["figures"]:
        path = local_file(fig["src"], base_url, html_root)
        dpi = png_dpi(path) if path is not None else DEFAULT_DPI
        px = figure_text_px(fig["rendered"], fig["natural"], dpi)
        if px < MIN_TEXT_PX:
            shown = 100 * fig["rendered"] / fig["natural"]
            found["small_figures"].append(
                f"{Path(urlsplit(fig['src']).path).name}: shown at {shown:.0f}% "
                f"({fig['rendered']:.0f}/{fig['natural']} px, {dpi:.0f} dpi), 8-pt text at {px:.1f} px"
            )
    found["cramped_tables"] = [f"{t['label']}: {t['gap']:g} px between {t['cells']}"
                               for t in raw.get("crampedTables", [])]
    if raw["pageOverflowPx"] > 0:
        found["page_scrolls_sideways"] = [
            f"page {raw['pageOverflowPx']} px wider than the window; sticking out: "
            + "; ".join(raw["sticksOut"])
        ]
    found["dropdowns_not_opening"] = list(raw["dropdownsNotOpening"])
    if raw["searchBoxes"] > 1:
        labels = " | ".join(raw["searchBoxLabels"])
        found["search_boxes"] = [f"{raw['searchBoxes']} search entries: {labels}"]
    return found


def failures(found: dict[str, list[str]], width: int) -> dict[str, list[str]]:
    return {name: items for name, items in found.items() if items and width in FAILS_AT[name]}
