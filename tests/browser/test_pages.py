"""The built book in a real browser: every page at a desktop and a phone width, offline.

Run with ``make browser-test`` (after ``make book``). For each page of ``_toc.yml`` (and the
general index) at 1400 px and 400 px, the test loads the page from a local server with every
other request refused, opens every dropdown, waits for MathJax and the images, measures the
page (``measure.js``), saves a full-page screenshot to ``_build/screenshots/<page>-<width>.png``
and fails on the checks listed in ``checks.py``. A separate test searches for "sliced".
Per-page counts are written to ``_build/browser/report.md`` (and ``.json``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .checks import DESKTOP, MIN_CELL_GAP_PX, PHONE, Events, evaluate, failures
from .conftest import ROOT, SCREENSHOTS

MEASURE_JS = (Path(__file__).parent / "measure.js").read_text()
NAVIGATION_TIMEOUT_MS = 60_000


def book_pages() -> list[str]:
    """HTML paths (relative to the book's root) of every page in _toc.yml, plus genindex."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = [toc["root"]]

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
    pages = [f"{Path(f).with_suffix('')}.html" for f in found]
    return pages + ["genindex.html"]


PAGES = book_pages()


def _open(browser, base_url: str, width: int):  # noqa: ANN001, ANN202 - playwright types
    """A new page at ``width`` whose requests outside the local server are refused."""
    context = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1)
    events = Events([], [], [], [])

    def route(route):  # noqa: ANN001
        url = route.request.url
        if url.startswith(base_url) or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            events.blocked_requests.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(NAVIGATION_TIMEOUT_MS)

    def on_console(msg):  # noqa: ANN001
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            events.console_errors.append(msg.text[:200])

    def on_failed(request):  # noqa: ANN001
        if request.url.startswith(base_url):
            events.failed_requests.append(f"{request.url[len(base_url):]}: {request.failure}")

    def on_response(response):  # noqa: ANN001
        if response.status >= 400:
            events.failed_requests.append(f"{response.url[len(base_url):]}: HTTP {response.status}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: events.page_errors.append(str(error)[:200]))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    return context, page, events


@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("page_path", PAGES)
def test_page(page_path: str, width: int, browser, server: str, book_html: Path, report: dict) -> None:
    if not (book_html / page_path).exists():
        pytest.fail(f"{page_path} is in _toc.yml but was not built")
    context, page, events = _open(browser, server, width)
    try:
        page.goto(server + page_path, wait_until="load")
        raw = page.evaluate(MEASURE_JS, {"openDropdowns": True, "minCellGapPx": MIN_CELL_GAP_PX})
        page.wait_for_timeout(100)  # let late errors and requests arrive
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"{page_path.removesuffix('.html').replace('/', '__')}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    found = evaluate(raw, events, width, server, book_html)
    failed = failures(found, width)
    report[f"{page_path}@{width}"] = {
        "page": page_path,
        "width": width,
        "found": found,
        "failed": sorted(failed),
        "counts": {"math": raw["math"], "display_math": raw["displayMath"], "images": raw["images"],
                   "outputs": raw["outputs"], "dropdowns": raw["dropdowns"], "tables": raw["tables"]},
        "screenshot": str(shot.relative_to(ROOT)) if shot.is_relative_to(ROOT) else str(shot),
    }
    if failed:
        lines = [f"{page_path} at {width} px (screenshot {shot}):"]
        for name, items in failed.items():
            lines.append(f"  {name}: {len(items)}")
            lines.extend(f"    - {item}" for item in items[:6])
            if len(items) > 6:
                lines.append(f"    ... and {len(items) - 6} more")
        pytest.fail("\n".join(lines), pytrace=False)


def test_search_finds_sliced(browser, server: str, report: dict) -> None:
    """The search page, loaded offline, lists results for "sliced"."""
    context, page, events = _open(browser, server, DESKTOP)
    try:
        page.goto(server + "search.html?q=sliced", wait_until="load")
        page.wait_for_function(
            "() => document.querySelector('#search-results li') ||"
            " /did not match|no results/i.test((document.querySelector('#search-results') || {}).textContent"
            " || '')",
            timeout=30_000,
        )
        results = page.locator("#search-results li").count()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "search-sliced-1400.png"))
    finally:
        context.close()
    problems = events.console_errors + events.page_errors + events.failed_requests + events.blocked_requests
    report["search.html?q=sliced@1400"] = {
        "page": "search.html?q=sliced", "width": DESKTOP, "found": {"search_results": [""] * results},
        "failed": [] if results and not problems else ["search"],
    }
    assert results > 0, "search for 'sliced' found nothing"
    assert not problems, f"errors on the search page: {problems}"
