"""Tests of the static site builder: pages as the app renders them, links, search, safety.

The site is built once per module from a small store with hostile rule text, under the
base path /socfeed/, and served by `python -m http.server` on a loopback port.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import quote, urljoin, urlsplit
from urllib.request import urlopen

import pytest
from fastapi.testclient import TestClient

from socfeed.model import DataSource, Rule
from socfeed.site import SiteError, SiteReport, build_site, rule_dir_name
from socfeed.site import build as site_build
from socfeed.site.build import MARKER_FILE
from socfeed.site.paths import MAX_NAME_LENGTH, SiteMap
from socfeed.site.rewrite import REMOVED_FORM, rewrite_html
from socfeed.site.search import SearchIndex, tokens
from socfeed.store import SourceRecord, Store, open_store
from socfeed.web import create_app
from test_store import make_rule

BASE_PATH = "/socfeed/"
HOSTILE_TITLE = '<script>alert("title")</script> Поиск "quoted" & \'single\''
HOSTILE_DESCRIPTION = '<img src=x onerror=alert("description")> Обнаружение <b>bold</b>'
HOSTILE_KEY = "demo:hostile-1"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def demo_rules() -> list[Rule]:
    """Return the rules of the demo source: one hostile, the rest plain, several severities."""
    hostile = make_rule(
        "Detections/hostile.yaml",
        "hostile-1",
        HOSTILE_TITLE,
        description=HOSTILE_DESCRIPTION,
        severity="high",
        techniques=["T1059.001"],
        tactics=["Execution"],
        tags=['tag"><script>alert(1)</script>'],
        references=["javascript:alert(1)", "https://example.org/ref?a=1&b=2"],
        data_sources=[DataSource(kind="table", name="SecurityEvent")],
        modified="2024-06-01",
    )
    plain = [
        make_rule(
            f"Detections/rule_{number:02d}.yaml",
            f"plain-{number:02d}",
            f"Plain rule number {number:02d}",
            description=f"Looks for process number {number} in the event log.",
            severity=("low", "medium", "critical")[number % 3],
            techniques=[f"T1{number:03d}"],
            data_sources=[
                DataSource(kind="table", name=("DeviceEvents", "SigninLogs")[number % 2])
            ],
            modified=f"2024-01-{number:02d}",
        )
        for number in range(1, 13)
    ]
    return [hostile, *plain]


def sigma_rules() -> list[Rule]:
    """Return rules of a second source, one of them with a Cyrillic title."""
    return [
        make_rule(
            f"rules/windows/rule_{number}.yml",
            f"5d1f2b8e-3c4a-4e0b-9a57-0c6f2f1f7a1{number}",
            "Вход с необычного адреса" if number == 0 else f"Sigma rule {number}",
            source="sigma",
            format="sigma",
            language="sigma",
            kind="hunting" if number % 2 else "detection",
            query="detection:\n  selection:\n    EventID: 4624\n  condition: selection\n",
            modified=f"2023-05-{number + 1:02d}",
        )
        for number in range(4)
    ]


def fill(store: Store) -> None:
    """Store the demo and sigma sources."""
    store.replace_source(SourceRecord(name="demo", format="sentinel"), demo_rules(), [])
    store.replace_source(SourceRecord(name="sigma", format="sigma"), sigma_rules(), [])


@pytest.fixture(scope="module")
def site_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Return a store with both sources, in a SQLite file of its own."""
    opened = open_store(tmp_path_factory.mktemp("site-store") / "socfeed.db")
    fill(opened)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, site_store: Store) -> tuple[Path, SiteReport]:
    """Build the site into www/socfeed with two worker processes; return www and the report."""
    www = tmp_path_factory.mktemp("www")
    report = build_site(site_store, www / "socfeed", base_path=BASE_PATH, workers=2)
    return www, report


@pytest.fixture(scope="module")
def server(built: tuple[Path, SiteReport]) -> Iterator[str]:
    """Serve www with python -m http.server on a free loopback port; yield the site URL."""
    www, _report = built
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=www,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        # http.server prints "Serving HTTP on 127.0.0.1 port 40123 (...)" once it listens.
        match = re.search(r"port (\d+)", process.stdout.readline())
        assert match, "http.server did not report its port"
        yield f"http://127.0.0.1:{match.group(1)}{BASE_PATH}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def app_client(site_store: Store) -> Iterator[TestClient]:
    """Return a client of the live app over the same store."""
    with TestClient(create_app(site_store)) as client:
        yield client


def fetch(url: str) -> tuple[int, str, bytes]:
    """GET a URL from the test server; return status, media type and body."""
    try:
        with urlopen(url, timeout=10) as response:
            media_type = response.headers.get_content_type()
            return response.status, media_type, response.read()
    except HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read()


class _Sections(HTMLParser):
    """Collect the heading and text of each <section> of a page's <main>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, dict[str, list[str]]] = {}
        self._stack: list[str] = []  # open sections, innermost last
        self._in_main = False
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "main":
            self._in_main = True
        elif tag == "section" and self._in_main:
            name = dict(attrs).get("id") or f"section-{len(self.sections)}"
            self.sections[name] = {"heading": [], "body": []}
            self._stack.append(name)
        elif tag in ("h1", "h2") and self._stack:
            self._in_heading = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self._in_main = False
        elif tag == "section" and self._stack:
            self._stack.pop()
        elif tag in ("h1", "h2"):
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._stack:
            part = "heading" if self._in_heading else "body"
            self.sections[self._stack[-1]][part].append(data)


def page_sections(html_text: str) -> dict[str, tuple[str, str]]:
    """Return section id -> (heading text, body text) with whitespace collapsed."""
    parser = _Sections()
    parser.feed(html_text)
    return {
        name: (
            " ".join("".join(parts["heading"]).split()),
            " ".join("".join(parts["body"]).split()),
        )
        for name, parts in parser.sections.items()
    }


class _Links(HTMLParser):
    """Collect the URLs of href, src and action attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action") and value is not None:
                self.links.append(value)


def page_links(html_text: str) -> list[str]:
    """Return every link URL of an HTML page, in order."""
    parser = _Links()
    parser.feed(html_text)
    return parser.links


def test_report_counts(built: tuple[Path, SiteReport]) -> None:
    _www, report = built
    assert report.rules == 17
    assert report.failed == []
    assert report.workers == 2
    assert report.pages >= 17 + 4  # rule pages, feed, coverage, sources, search
    files = [f for f in report.path.rglob("*") if f.is_file() and f.name != MARKER_FILE]
    assert report.files == len(files)
    assert report.bytes == sum(f.stat().st_size for f in files)


@pytest.mark.parametrize(
    "key", [HOSTILE_KEY, "demo:plain-07", "sigma:5d1f2b8e-3c4a-4e0b-9a57-0c6f2f1f7a10"]
)
def test_rule_page_sections_match_app(app_client: TestClient, server: str, key: str) -> None:
    live = app_client.get("/rules/" + quote(key, safe=":"))
    status, media_type, body = fetch(server + f"rules/{rule_dir_name(key)}/")
    live_sections = page_sections(live.text)
    static_sections = page_sections(body.decode("utf-8"))

    assert live.status_code == 200
    assert status == 200
    assert media_type == "text/html"
    assert len(live_sections) >= 5
    assert list(static_sections) == list(live_sections)
    for name, (heading, text) in live_sections.items():
        assert static_sections[name][0] == heading, name
        assert static_sections[name][1] == text, name


def test_rule_json_matches_api(app_client: TestClient, server: str) -> None:
    live = app_client.get("/api/rules/" + HOSTILE_KEY).json()
    status, media_type, body = fetch(server + f"rules/{rule_dir_name(HOSTILE_KEY)}/rule.json")
    static = json.loads(body)

    assert status == 200
    assert media_type == "application/json"
    assert static["links"]["page"] == f"{BASE_PATH}rules/{rule_dir_name(HOSTILE_KEY)}/"
    assert static["links"]["api"] == f"{BASE_PATH}rules/{rule_dir_name(HOSTILE_KEY)}/rule.json"
    assert {k: v for k, v in static.items() if k != "links"} == {
        k: v for k, v in live.items() if k != "links"
    }


def test_every_internal_link_resolves(server: str) -> None:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(server))
    queue = deque([server])
    seen = {server}
    broken: list[str] = []
    outside: list[str] = []
    while queue:
        url = queue.popleft()
        status, media_type, body = fetch(url)
        if status != 200:
            broken.append(f"{url}: {status}")
            continue
        if media_type != "text/html":
            continue
        for link in page_links(body.decode("utf-8")):
            target = urljoin(url, link).split("#")[0]
            if not target.startswith(origin):
                continue  # another host
            if not target.startswith(server):
                outside.append(f"{link} on {url}")
            elif target not in seen:
                seen.add(target)
                queue.append(target)

    assert broken == []
    assert outside == []
    assert len(seen) > 40


def test_search_index_lists_every_rule(server: str, site_store: Store) -> None:
    status, media_type, body = fetch(server + "search/index.json")
    index = json.loads(body)
    key = index["fields"].index("key")
    stored = {rule.key for rule in site_store.iter_rules()}

    assert status == 200
    assert media_type == "application/json"
    assert {row[key] for row in index["rules"]} == stored
    assert len(index["rules"]) == len(stored)
    assert "поиск" in index["tokens"]
    assert "вход" in index["tokens"]


def test_hostile_text_stays_escaped(built: tuple[Path, SiteReport]) -> None:
    www, _report = built
    page = (www / "socfeed" / "rules" / rule_dir_name(HOSTILE_KEY) / "index.html").read_text()
    pages = {path: path.read_text() for path in (www / "socfeed").rglob("*.html")}

    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in page
    assert "Поиск" in page
    assert 'href="javascript:' not in page
    for path, text in pages.items():
        assert "<script>alert" not in text, path
        assert "<img src=x" not in text, path


def test_pages_carry_security_policy(built: tuple[Path, SiteReport]) -> None:
    www, _report = built
    page = (www / "socfeed" / "index.html").read_text()

    assert (
        '<meta http-equiv="Content-Security-Policy" content="default-src &#x27;self&#x27;' in page
    )
    assert "frame-ancestors" not in page
    assert '<meta name="referrer" content="no-referrer">' in page


def test_feed_form_goes_to_search(built: tuple[Path, SiteReport]) -> None:
    www, _report = built
    page = (www / "socfeed" / "index.html").read_text()
    actions = re.findall(r'<form[^>]*action="([^"]*)"', page)

    assert f"{BASE_PATH}search/" in actions
    assert all(action.startswith(BASE_PATH) for action in actions)


def test_atom_feed_links_static_pages(server: str) -> None:
    status, _media_type, body = fetch(server + "feed.atom")
    root = ET.fromstring(body)
    namespace = {"atom": "http://www.w3.org/2005/Atom"}
    alternates = [
        link.get("href", "")
        for link in root.iterfind("atom:entry/atom:link[@rel='alternate']", namespace)
    ]

    assert status == 200
    assert len(alternates) == 17
    assert f"{BASE_PATH}rules/{rule_dir_name(HOSTILE_KEY)}/" in alternates
    for href in alternates:
        assert fetch(urljoin(server, href))[0] == 200, href


def test_atom_export_when_app_has_none(
    tmp_path: Path, site_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(site_build, "ATOM_PATH", "/no-such-feed.atom")
    target = tmp_path / "site"
    build_site(
        site_store, target, base_path="/feed/", origin="https://rules.example.org", workers=1
    )
    root = ET.parse(target / "feed.atom").getroot()
    namespace = {"atom": "http://www.w3.org/2005/Atom"}
    alternates = [
        link.get("href", "")
        for link in root.iterfind("atom:entry/atom:link[@rel='alternate']", namespace)
    ]
    self_link = root.find("atom:link[@rel='self']", namespace)
    prefix = "https://rules.example.org/feed/"

    assert len(alternates) == 17
    assert self_link is not None
    assert self_link.get("href") == prefix + "feed.atom"
    for href in alternates:
        assert href.startswith(prefix + "rules/"), href
        assert (target / href[len(prefix) :] / "index.html").is_file(), href


def test_rule_dir_name_is_readable() -> None:
    assert rule_dir_name("sigma:5d1f2b8e-3c4a") == "sigma.5d1f2b8e-3c4a"
    assert rule_dir_name("elastic:04d4~be271fd1") == "elastic.04d4~be271fd1"


def test_rule_dir_name_escapes_unsafe_characters() -> None:
    name = rule_dir_name("src:A/../b c?d#é")

    assert re.fullmatch(r"[a-z0-9._~-]+", name)
    assert ".." not in name.replace("._", "")
    assert name == "src._41_2f_2e_2e_2fb_20c_3fd_23_c3_a9"


def test_rule_dir_name_has_no_collisions() -> None:
    keys = ["a:b", "a.b", "a_2eb", "a:B", "A:b", "a:b:", ":a", "a~b", "a:b~c", "x" * 300, "x" * 301]
    names = [rule_dir_name(key) for key in keys]

    assert len(set(names)) == len(keys)
    assert all(len(name) <= MAX_NAME_LENGTH + 41 for name in names)
    assert not any(name.startswith(".") for name in names)


def test_rule_dir_name_rejects_empty_key() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        rule_dir_name("")


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/", "/s/"),
        ("/?page=2", "/s/page/2/"),
        ("/?page=3", "/s/search/"),
        ("/?source=sigma&page=2", "/s/search/?source=sigma"),
        ("/?technique=T1059&q=", "/s/search/?technique=T1059"),
        ("/rules/sigma:abc", "/s/rules/sigma.abc/"),
        ("/rules/sigma%3Aabc#query", "/s/rules/sigma.abc/#query"),
        ("/api/rules/sigma:abc", "/s/rules/sigma.abc/rule.json"),
        ("/api/rules?page=2", "/s/api/rules/page-2.json"),
        ("/static/style.css?v=3", "/s/static/style.css?v=3"),
        ("/coverage", "/s/coverage/"),
        ("/api/coverage", "/s/api/coverage.json"),
        ("https://example.org/", None),
        ("//example.org/x", None),
        ("#main", None),
        ("http://[::1", None),
    ],
)
def test_site_map_link(href: str, expected: str | None) -> None:
    site = SiteMap("/s/", {"sigma:abc": "sigma.abc"}, feed_pages=2, per_page=50)

    assert site.link(href, "/rules/sigma:abc") == expected


def test_site_map_records_unplanned_files() -> None:
    site = SiteMap("/", {}, feed_pages=1, per_page=50, planned={"coverage/index.html"})
    site.link("/coverage", "/")
    site.link("/highlight.css", "/")

    assert site.unplanned == {"highlight.css": "/highlight.css"}


def test_site_map_names_files_by_media_type() -> None:
    media_types = {"/api/export/csv": "text/csv", "/about": "text/html", "/gone": None}
    site = SiteMap("/", {}, feed_pages=1, per_page=50)
    site.probe = media_types.get

    assert site.link("/api/export/csv", "/") == "/api/export/csv.csv"
    assert site.link("/about", "/") == "/about/"
    assert site.link("/gone", "/") is None
    assert site.unresolved == {"/gone"}


def test_rewrite_html_changes_only_links() -> None:
    page = (
        "<!doctype html><html><head><title>T</title></head><body>\n"
        '<a class="x" href="/rules/demo:1">Rule &amp; more</a>\n'
        '<form method="get" action="/"><input name="q"></form>\n'
        '<form method="post" action="/my-data-sources"><textarea>a</textarea></form>\n'
        "<pre><code><span>SecurityEvent</span> | <span>take 1</span></code></pre>\n"
        '<script src="/static/app.js" defer></script>\n'
        "</body></html>\n"
    )
    site = SiteMap("/s/", {"demo:1": "demo.1"}, feed_pages=1, per_page=50)

    rewritten = rewrite_html(page, "/", site, {"Referrer-Policy": "no-referrer"})

    assert '<a class="x" href="/s/rules/demo.1/">Rule &amp; more</a>' in rewritten
    assert '<form method="get" action="/s/search/">' in rewritten
    assert REMOVED_FORM in rewritten
    assert "my-data-sources" not in rewritten
    assert "<pre><code><span>SecurityEvent</span> | <span>take 1</span></code></pre>" in rewritten
    assert '<script src="/s/static/app.js" defer></script>' in rewritten
    assert '<head><meta name="referrer" content="no-referrer"><title>' in rewritten


def test_rewrite_html_finds_links_inside_pre() -> None:
    page = '<pre>see <a href="/coverage">coverage</a></pre>'
    site = SiteMap("/s/", {}, feed_pages=1, per_page=50)

    assert rewrite_html(page, "/", site) == '<pre>see <a href="/s/coverage/">coverage</a></pre>'


def test_tokens_fold_case_and_accents() -> None:
    assert tokens("Élévation PowerShell_exec T1059.001") == {
        "elevation",
        "powershell",
        "exec",
        "t1059",
        "001",
    }


def test_search_index_query_text_optional() -> None:
    site = SiteMap("/", {}, feed_pages=1, per_page=50)
    rule = make_rule("a.yaml", "1", "Title", query="DeviceProcessEvents | where x")
    rule.key = "demo:1"
    plain, with_query = SearchIndex(), SearchIndex(include_query=True)
    plain.add(rule, "demo.1")
    with_query.add(rule, "demo.1")

    assert "deviceprocessevents" not in json.loads(plain.to_json(site))["tokens"]
    assert "deviceprocessevents" in json.loads(with_query.to_json(site))["tokens"]
    assert json.loads(with_query.to_json(site))["rules"][0][1] is None


def test_failed_build_keeps_old_site(
    tmp_path: Path, site_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "site"
    build_site(site_store, target, workers=1)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))

    def fail(*_args: Any) -> None:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(site_build, "_render_linked_pages", fail)
    with pytest.raises(RuntimeError, match="simulated failure"):
        build_site(site_store, target, workers=1)

    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_rebuild_replaces_site(tmp_path: Path, site_store: Store) -> None:
    target = tmp_path / "site"
    build_site(site_store, target, workers=1)
    (target / "stale.html").write_text("old")

    report = build_site(site_store, target, workers=1, feed_pages=1)

    assert not (target / "stale.html").exists()
    assert report.rules == 17
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_foreign_folder_rejected(tmp_path: Path, site_store: Store) -> None:
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(SiteError, match="not built by socfeed"):
        build_site(site_store, tmp_path, workers=1)

    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.browser
def test_search_page_finds_rule(server: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.goto(server + "search/")
            page.wait_for_selector("form[data-ready=true]")
            all_rows = page.locator("#search-results .rule-row").count()

            page.fill("#search-q", "поис")
            # The pages' CSP forbids eval, so waits use locators, not wait_for_function.
            sync_api.expect(page.locator("#search-results .rule-row")).to_have_count(1)
            title = page.locator("#search-results .rule-title a").inner_text()
            href = page.locator("#search-results .rule-title a").get_attribute("href")
            search_url = page.url

            page.goto(server + "search/?source=sigma&kind=hunting")
            page.wait_for_selector("form[data-ready=true]")
            sigma_hunting = page.locator("#search-results .rule-row").count()
        finally:
            browser.close()

    assert all_rows == 17
    assert title == HOSTILE_TITLE
    assert href == f"{BASE_PATH}rules/{rule_dir_name(HOSTILE_KEY)}/"
    assert search_url.endswith("?q=%D0%BF%D0%BE%D0%B8%D1%81")
    assert sigma_hunting == 2
    assert problems == []
