"""Drive the web app in headless Chromium: filter the feed, open a rule, take screenshots.

Needs Debian's Chromium at /usr/bin/chromium and the Python playwright package. The tests
are skipped when either is missing. Screenshots go to /tmp/socfeed-shots/ for a person to look at.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from socfeed.store import open_store
from socfeed.web import create_app
from test_web_app import HOSTILE_KEY, fill_store

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/tmp/socfeed-shots")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the app over a filled store on a free loopback port; yield its URL."""
    store = open_store(tmp_path_factory.mktemp("browser") / "web.db")
    fill_store(store)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 10 s"

    yield f"http://127.0.0.1:{port}"

    server.should_exit = True
    thread.join(timeout=10)
    listener.close()
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Launch Debian's Chromium through Playwright, or skip when either is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser: Any, **context_options: Any) -> tuple[Any, list[str]]:
    """Open a page that records console errors and dialogs, which no page should cause."""
    page = browser.new_context(**context_options).new_page()
    problems: list[str] = []
    page.on("console", lambda message: _record_error(problems, message))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    return page, problems


def _record_error(problems: list[str], message: Any) -> None:
    if message.type == "error":
        problems.append(f"console: {message.text}")


def test_feed_filter_and_rule_page(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport={"width": 1280, "height": 900})

    page.goto(base_url + "/")
    page.screenshot(path=str(SHOTS / "feed.png"))
    assert page.title() == "Feed · socfeed"
    assert page.locator(".rule-row").count() == 50

    page.select_option("#filter-source", "sigma")
    page.select_option("#filter-severity", "high")
    page.click("button[type=submit]")
    page.wait_for_url("**/?*source=sigma*")
    assert page.locator(".rule-row").count() == 1
    page.screenshot(path=str(SHOTS / "feed-filtered.png"), full_page=True)

    page.locator(".rule-title a").first.click()
    page.wait_for_url("**/rules/**")
    headings = page.locator("article h2").all_inner_texts()
    page.screenshot(path=str(SHOTS / "rule.png"), full_page=True)

    assert "Hunt Hypothesis" in headings
    assert "Sigma Query" in headings
    assert "MITRE ATT&CK Context" in headings
    assert "Original source" in headings
    assert page.locator("h1").inner_text().startswith("<script>alert(1)</script>")
    assert problems == []


def test_encoded_key_through_server(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser)

    page.goto(base_url + "/?language=spl")
    page.click("text=Odd key hunting search")
    page.wait_for_url("**/rules/**")

    assert page.locator("h1").inner_text() == "Odd key hunting search"
    assert problems == []


def test_copy_button_added(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser)

    page.goto(f"{base_url}/rules/{HOSTILE_KEY}")

    assert page.locator("#query .copy-button").count() == 1
    assert problems == []


def test_dark_mode_rule_page(browser: Any, base_url: str) -> None:
    page, problems = open_page(
        browser, color_scheme="dark", viewport={"width": 1280, "height": 900}
    )

    page.goto(f"{base_url}/rules/{HOSTILE_KEY}")
    page.screenshot(path=str(SHOTS / "rule-dark.png"), full_page=True)

    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert background == "rgb(15, 19, 24)"
    assert problems == []


def test_narrow_screen_feed(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport={"width": 390, "height": 844})

    page.goto(base_url + "/")
    page.screenshot(path=str(SHOTS / "feed-mobile.png"), full_page=False)

    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 390
    assert problems == []


def test_coverage_and_sources_pages(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport={"width": 1280, "height": 900})

    page.goto(base_url + "/coverage")
    page.screenshot(path=str(SHOTS / "coverage.png"), full_page=True)
    page.click("text=T1059.001")
    page.wait_for_url("**/?technique=T1059.001")
    assert page.locator(".rule-row").count() == 1

    page.goto(base_url + "/sources")
    page.screenshot(path=str(SHOTS / "sources.png"), full_page=True)
    assert page.locator(".sources-table tbody tr").count() == 3
    assert problems == []
