"""Drive the web app in headless Chromium: filter, open a rule, copy, coverage, download, axe.

Needs Debian's Chromium at /usr/bin/chromium and the Python playwright package; the axe
checks also need axe-playwright-python, which ships axe-core. The tests are skipped when
any of them is missing. Screenshots go to /tmp/socfeed-shots/ for a person to look at.
"""

from __future__ import annotations

import json
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
from test_web_app import HOSTILE_KEY, SENTINEL_KEY, fill_store

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/tmp/socfeed-shots")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
# axe-core impact levels that fail the test; "minor" and "moderate" ones are reported only.
BLOCKING_IMPACTS = ("serious", "critical")

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


def blocking_violations(page: Any) -> list[str]:
    """Run axe-core on the page; return its serious and critical violations as text."""
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    results = axe_module.Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:3])
        for violation in results.response["violations"]
        if violation["impact"] in BLOCKING_IMPACTS
    ]


def test_feed_filter_and_rule_page(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport=DESKTOP)

    page.goto(base_url + "/")
    assert page.title() == "Feed · socfeed"
    assert page.locator(".rule-row").count() == 50

    page.select_option("#filter-source", "sigma")
    page.select_option("#filter-severity", "high")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/?*source=sigma*")
    assert page.locator(".rule-row").count() == 1

    page.locator(".rule-title a").first.click()
    page.wait_for_url("**/rules/**")
    headings = page.locator("article h2").all_inner_texts()

    assert "Hunt Hypothesis" in headings
    assert "Sigma Query" in headings
    assert "MITRE ATT&CK Context" in headings
    assert "Original source" in headings
    assert page.locator("h1").inner_text().startswith("<script>alert(1)</script>")
    assert problems == []


def test_search_marks_matches(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport=DESKTOP)

    page.goto(base_url + "/")
    page.fill("#filter-q", "cradle")
    page.press("#filter-q", "Enter")
    page.wait_for_url("**/?q=cradle*")

    assert page.locator(".rule-row").count() == 1
    assert page.locator(".snippet mark").first.inner_text().lower() == "cradle"
    assert problems == []


def test_copy_query_to_clipboard(browser: Any, base_url: str) -> None:
    page, problems = open_page(
        browser, viewport=DESKTOP, permissions=["clipboard-read", "clipboard-write"]
    )

    page.goto(f"{base_url}/rules/{SENTINEL_KEY}")
    page.click("#query .copy-button")
    copied = page.evaluate("navigator.clipboard.readText()")

    assert copied == (
        "DemoVendorLogs_CL\n| where EventType == 'logon'\n| join SecurityEvent on Account"
    )
    assert page.locator("#query .copy-button").inner_text() == "Copied"
    assert problems == []


def test_encoded_key_through_server(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser)

    page.goto(base_url + "/?language=spl")
    page.click("text=Odd key hunting search")
    page.wait_for_url("**/rules/**")

    assert page.locator("h1").inner_text() == "Odd key hunting search"
    assert problems == []


def test_coverage_cell_opens_feed(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport=DESKTOP)

    page.goto(base_url + "/coverage")
    page.locator("a.cell", has_text="T1078").first.click()
    page.wait_for_url("**/?technique=T1078")

    assert page.locator(".rule-row").count() == 1
    assert page.locator(".active-filters").inner_text().startswith("Technique: T1078")
    assert problems == []


def test_subtechniques_expand(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport=DESKTOP)
    page.goto(base_url + "/coverage")
    cell = page.locator("a.cell", has_text="T1059.001")

    assert not cell.is_visible()
    page.locator("li", has=page.locator("a.cell", has_text="T1059 ")).locator(
        "summary"
    ).first.click()
    assert cell.is_visible()
    cell.click()
    page.wait_for_url("**/?technique=T1059.001")
    assert page.locator(".rule-row").count() == 1
    assert problems == []


def test_navigator_layer_download(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport=DESKTOP, accept_downloads=True)
    page.goto(base_url + "/coverage?source=sigma")

    with page.expect_download() as download_info:
        page.click("text=Download ATT&CK Navigator layer")
    download = download_info.value
    layer = json.loads(Path(download.path()).read_text(encoding="utf-8"))

    assert download.suggested_filename == "socfeed-navigator-layer.json"
    assert layer["domain"] == "enterprise-attack"
    assert {entry["techniqueID"] for entry in layer["techniques"]} == {"T1059.001"}
    assert "source=sigma" in layer["description"]
    assert problems == []


def test_my_data_sources_toggle(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport=DESKTOP)

    page.goto(base_url + "/")
    page.click("#my-data summary")
    page.fill("#my-tables", "SecurityEvent\nDemoVendorLogs_CL")
    page.click(".my-data-form button[value=save]")
    page.wait_for_load_state()
    page.click("text=Show only rules I can run")
    page.wait_for_url("**mine_only=true**")

    titles = page.locator(".rule-title").all_inner_texts()
    assert "Rare logon to DemoVendor appliance" in titles
    assert page.locator(".badge-mine").count() == 2
    assert problems == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("feed", "/?q=powershell"),
        ("rule", f"/rules/{SENTINEL_KEY}"),
        ("rule-sigma", f"/rules/{HOSTILE_KEY}"),
        ("coverage", "/coverage"),
    ],
)
def test_pages_accessible_and_fit(
    browser: Any, base_url: str, name: str, path: str, viewport: dict[str, int]
) -> None:
    page, problems = open_page(browser, viewport=viewport)

    page.goto(base_url + path)
    width = viewport["width"]
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)

    # The coverage matrix scrolls inside its own box; the page itself never does.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert blocking_violations(page) == []
    assert problems == []


def test_dark_mode_pages(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, color_scheme="dark", viewport=DESKTOP)

    for name, path in (("rule", f"/rules/{SENTINEL_KEY}"), ("coverage", "/coverage")):
        page.goto(base_url + path)
        page.screenshot(path=str(SHOTS / f"{name}-dark.png"), full_page=True)
        background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert background == "rgb(15, 19, 24)", name
        assert blocking_violations(page) == [], name
    assert problems == []


def test_skip_link_first_in_focus_order(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, viewport=DESKTOP)

    page.goto(f"{base_url}/rules/{SENTINEL_KEY}")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Enter")

    assert focused == "Skip to content"
    assert page.url.endswith("#main")
    assert problems == []
