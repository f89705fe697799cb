"""Fixtures of the browser test: the built book served on 127.0.0.1, and headless Chromium.

The browser test runs only when ``tests/browser`` (or a file in it) is named on the command
line, e.g. by ``make browser-test``; a plain ``pytest`` (the library tests) leaves it out.

Environment:

* ``BOOK_HTML``: the built book (default ``_build/html``);
* ``BOOK_BROWSER``: the Chromium binary (default ``/usr/bin/chromium``, else ``chromium`` or
  ``chromium-browser`` on the PATH). Without one the tests are skipped with a loud banner;
  the browser is never downloaded.
* ``BOOK_SCREENSHOTS``: where page screenshots go (default ``_build/screenshots``).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
SCREENSHOTS = Path(os.environ.get("BOOK_SCREENSHOTS", ROOT / "_build" / "screenshots"))
REPORT_DIR = ROOT / "_build" / "browser"
REPORT_PARTS = REPORT_DIR / "parts"  # one per pytest-xdist worker, merged at the end
SKIP_BANNER = "BROWSER TEST SKIPPED: "

# Chromium without network, background services or a GPU; every request that is not for the
# local server is refused by the resolver and, again, by the page's request router.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

_SKIP_REASON: list[str] = []


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect the browser test only when this folder (or a file in it) was asked for."""
    if collection_path.parent != HERE or not collection_path.name.startswith("test_"):
        return None
    asked = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    if any(path == HERE or HERE in path.parents or path == collection_path for path in asked):
        return None
    return True


def find_chromium() -> str | None:
    """The Chromium binary to drive (Debian's package), or None."""
    explicit = os.environ.get("BOOK_BROWSER")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _loud_skip(reason: str) -> None:
    banner = SKIP_BANNER + reason
    warnings.warn(banner, stacklevel=2)
    pytest.skip(banner)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not _is_xdist_worker(config):
        shutil.rmtree(REPORT_PARTS, ignore_errors=True)  # left by an interrupted run


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep the first skip banner; with pytest-xdist the reports of the workers' tests arrive here
    in the controlling process, which prints the summary."""
    longrepr = report.longrepr if report.skipped else ""
    text = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)  # (path, line, message)
    if SKIP_BANNER in text and not _SKIP_REASON:
        _SKIP_REASON.append(text[text.index(SKIP_BANNER):])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With pytest-xdist, merge the workers' parts of the report into one (see ``report``)."""
    if _is_xdist_worker(session.config) or not REPORT_PARTS.is_dir():
        return
    from .reporting import write_report

    data: dict = {}
    for part in sorted(REPORT_PARTS.glob("*.json")):
        data.update(json.loads(part.read_text()))
    shutil.rmtree(REPORT_PARTS)
    if data:
        write_report(data, REPORT_DIR)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's own type
    if _SKIP_REASON:
        terminalreporter.section("BROWSER TEST NOT RUN", sep="!", red=True, bold=True)
        terminalreporter.write_line(_SKIP_REASON[0], red=True, bold=True)
        terminalreporter.write_line(
            "Install Debian's browser (apt-get install -y chromium) or set BOOK_BROWSER.", red=True
        )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@pytest.fixture(scope="session")
def book_html() -> Path:
    if not (HTML / "index.html").exists():
        pytest.fail(f"no built book at {HTML}: run `make book` first (or set BOOK_HTML)")
    return HTML


@pytest.fixture(scope="session")
def server(book_html: Path) -> Iterator[str]:
    """Base URL (ending in '/') of a local HTTP server for the built book."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = find_chromium()
    if executable is None:
        _loud_skip("no Chromium found (looked for /usr/bin/chromium, chromium, chromium-browser)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _loud_skip("the playwright package is not installed (it is in requirements.lock)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def report() -> Iterator[dict]:
    """Per page and width: what the test measured. Written to _build/browser/ at the end; under
    pytest-xdist each worker writes its part to ``parts/<worker>.json`` there, and the
    controlling process merges them (``pytest_sessionfinish``)."""
    from .reporting import write_report

    data: dict = {}
    yield data
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if data and worker:
        REPORT_PARTS.mkdir(parents=True, exist_ok=True)
        (REPORT_PARTS / f"{worker}.json").write_text(json.dumps(data))
    elif data:
        write_report(data, REPORT_DIR)
