"""Tests of the feed page and /api/rules: order, escaping, filters, facets, pagination."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from socfeed.store import Store
from socfeed.web import create_app
from test_web_app import (
    FILLER_COUNT,
    HOSTILE,
    HOSTILE_KEY,
    ODD_KEY,
    SENTINEL_KEY,
    anchors,
    fill_store,
    filled_client,
    href_of,
)

TOTAL = FILLER_COUNT + 4


@pytest.fixture(scope="module")
def web_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with filled_client(tmp_path_factory.mktemp("web")) as client:
        yield client


def params_of(href: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(href).query)


def api_total(client: TestClient, **params: str | list[str]) -> int:
    response = client.get("/api/rules", params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def test_feed_newest_first(web_client: TestClient) -> None:
    keys = [rule["key"] for rule in web_client.get("/api/rules").json()["rules"]]

    assert keys[0] == HOSTILE_KEY
    assert keys[1] == SENTINEL_KEY
    assert keys[2] == ODD_KEY


def test_feed_html_order_matches_api(web_client: TestClient) -> None:
    html = web_client.get("/").text

    rule_links = [href for href, _ in anchors(html) if href.startswith("/rules/")]
    assert rule_links[0] == "/rules/" + HOSTILE_KEY
    assert rule_links[1] == "/rules/" + SENTINEL_KEY


def test_feed_escapes_hostile_title(web_client: TestClient) -> None:
    html = web_client.get("/").text

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; PowerShell" in html


def test_feed_escapes_hostile_tag(web_client: TestClient) -> None:
    html = web_client.get("/").text

    assert f"tag-{HOSTILE}" not in html
    assert "tag-&lt;script&gt;" in html


def test_feed_keeps_unicode_title(web_client: TestClient) -> None:
    html = web_client.get("/").text

    assert "“Download Cradle” Подозрительный" in html


def test_feed_row_shows_retrieval_date(web_client: TestClient) -> None:
    html = web_client.get("/").text

    assert 'datetime="2026-11-01T10:00:00Z">2026-11-01</time>' in html


def test_feed_row_badges_link_to_filters(web_client: TestClient) -> None:
    rows = web_client.get("/").text.split('<ol class="rule-list">', 1)[1].split("</ol>", 1)[0]
    links = dict(anchors(rows))

    assert links["/?technique=T1059.001"] == "T1059.001"
    assert links["/?table=DemoVendorLogs_CL"] == "DemoVendorLogs_CL"
    assert links["/?severity=high"] == "high"


def test_feed_links_percent_encode_keys(web_client: TestClient) -> None:
    html = web_client.get("/").text

    href = href_of(html, "Odd key hunting search")
    encoded_id = "odd%2Fid%3Fx%3D1%23frag%20100%25%20%D0%BA%D0%BB%D1%8E%D1%87"
    assert href == "/rules/splunk-security-content:" + encoded_id
    assert web_client.get(href).status_code == 200


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "azure-sentinel"}, 1),
        ({"source": ["azure-sentinel", "splunk-security-content"]}, 3),
        ({"language": "spl"}, 2),
        ({"severity": "high"}, 1),
        ({"severity": "low"}, FILLER_COUNT),
        ({"kind": "hunting"}, 2),
        ({"technique": "T1059.001"}, 1),
        ({"technique": "t1059/001"}, 1),
        ({"table": "SecurityEvent"}, 1),
        ({"tactic": "execution"}, 1),
        ({"official": "true"}, 1),
        ({"official": "false"}, TOTAL - 1),
        ({"q": "cradle"}, 1),
        ({"q": "demovendorlogs_cl logon"}, 1),
        ({"q": "no-such-word"}, 0),
        ({"source": "sigma", "severity": "high"}, 1),
    ],
)
def test_api_filters(web_client: TestClient, params: dict[str, str], expected: int) -> None:
    assert api_total(web_client, **params) == expected


def test_page_filters_match_api(web_client: TestClient) -> None:
    html = web_client.get("/", params={"language": "spl"}).text

    assert "<strong>2</strong> rules" in html
    assert "Odd key hunting search" in html
    assert "Filler rule" not in html


def test_form_empty_values_mean_any(web_client: TestClient) -> None:
    # The GET form submits every control, and "Any" is an empty value.
    empty = {name: "" for name in ("q", "source", "language", "severity", "kind", "official")}
    empty |= {"technique": "", "table": ""}

    assert api_total(web_client, **empty) == TOTAL
    assert web_client.get("/", params=empty).status_code == 200


def test_form_marks_chosen_values(web_client: TestClient) -> None:
    html = web_client.get("/", params={"source": "sigma", "q": "filler"}).text

    assert '<option value="sigma" selected>sigma (' in html
    assert 'name="q" value="filler"' in html


def test_form_keeps_filters_without_controls(web_client: TestClient) -> None:
    html = web_client.get("/", params={"tactic": "Execution"}).text

    assert '<input type="hidden" name="tactic" value="Execution">' in html


def test_facet_counts_in_api(web_client: TestClient) -> None:
    facets = web_client.get("/api/rules").json()["facets"]

    assert {"value": "sigma", "count": FILLER_COUNT + 1} in facets["source"]
    assert {"value": "hunting", "count": 2} in facets["kind"]
    assert {"value": "official", "count": 1} in facets["official"]


def test_facet_counts_ignore_own_filter(web_client: TestClient) -> None:
    facets = web_client.get("/api/rules", params={"source": "sigma"}).json()["facets"]

    sources = {item["value"]: item["count"] for item in facets["source"]}
    assert sources["azure-sentinel"] == 1
    assert {item["value"] for item in facets["language"]} == {"sigma"}


def test_facet_link_adds_filter(web_client: TestClient) -> None:
    html = web_client.get("/", params={"source": "sigma"}).text

    href = next(href for href, text in anchors(html) if text == "high" and "source" in href)
    assert params_of(href) == {"source": ["sigma"], "severity": ["high"]}


def test_active_filter_removal_link(web_client: TestClient) -> None:
    html = web_client.get("/", params={"source": "sigma", "severity": "high"}).text

    href = href_of(html, "Severity: high ×")
    assert params_of(href) == {"source": ["sigma"]}


def test_pagination_links_keep_filters(web_client: TestClient) -> None:
    html = web_client.get("/", params={"source": "sigma", "per_page": "10", "page": "2"}).text

    assert params_of(href_of(html, "Next")) == {
        "source": ["sigma"],
        "per_page": ["10"],
        "page": ["3"],
    }
    assert params_of(href_of(html, "Previous")) == {"source": ["sigma"], "per_page": ["10"]}


def test_pagination_marks_current_page(web_client: TestClient) -> None:
    html = web_client.get("/", params={"per_page": "10", "page": "3"}).text

    assert '<a href="/?per_page=10&amp;page=3" aria-current="page">3</a>' in html


def test_pagination_pages_differ(web_client: TestClient) -> None:
    first = web_client.get("/api/rules", params={"per_page": "10"}).json()
    second = web_client.get("/api/rules", params={"per_page": "10", "page": "2"}).json()

    first_keys = {rule["key"] for rule in first["rules"]}
    second_keys = {rule["key"] for rule in second["rules"]}
    assert len(second_keys) == 10
    assert first_keys.isdisjoint(second_keys)


def test_page_past_last_is_empty(web_client: TestClient) -> None:
    html = web_client.get("/", params={"page": "99"}).text

    assert "No rules on this page." in html
    assert href_of(html, "Go to page 1") == "/"


def test_api_page_links(web_client: TestClient) -> None:
    body = web_client.get("/api/rules", params={"kind": "detection", "per_page": "10"}).json()

    assert body["pages"] == 7
    assert body["links"]["next"] == "/api/rules?kind=detection&per_page=10&page=2"
    assert body["links"]["prev"] is None


def test_api_last_page_has_no_next(web_client: TestClient) -> None:
    body = web_client.get("/api/rules", params={"per_page": "10", "page": "7"}).json()

    assert body["links"]["next"] is None
    assert body["links"]["prev"] == "/api/rules?per_page=10&page=6"


def test_api_rule_summary_links(web_client: TestClient) -> None:
    first = web_client.get("/api/rules").json()["rules"][0]

    assert first["links"]["page"] == "/rules/" + HOSTILE_KEY
    assert first["links"]["api"] == "/api/rules/" + HOSTILE_KEY
    assert first["tables"] == ["windows/process_creation"]


def test_api_invalid_kind_rejected(web_client: TestClient) -> None:
    response = web_client.get("/api/rules", params={"kind": "alert"})

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("invalid request: kind:")


def test_sample_banner_shown(web_client: TestClient) -> None:
    html = web_client.get("/").text

    assert "The feed shows the small sample of rules shipped with socfeed for" in html
    assert "azure-sentinel, not the live repositories" in html


def test_sample_banner_absent_without_sample(store: Store) -> None:
    fill_store(store, sample=False)
    client = TestClient(create_app(store))

    html = client.get("/").text

    assert "not the live repositories" not in html


def test_empty_store_feed(store: Store) -> None:
    client = TestClient(create_app(store))

    html = client.get("/").text

    assert "<strong>0</strong> rules" in html
    assert "No rules match these filters." in html


def test_facet_technique_named(web_client: TestClient) -> None:
    pytest.importorskip("socfeed.attack.knowledge")
    html = web_client.get("/").text

    assert href_of(html, "T1059.001 PowerShell") == "/?technique=T1059.001"


def test_facets_listed_on_page(web_client: TestClient) -> None:
    html = web_client.get("/").text

    for title in ("Source", "Language", "Severity", "Kind", "Maintainer", "Tactic"):
        assert f">{title}</h3>" in html, title
    assert ">Technique</h3>" in html
    assert ">Table or data source</h3>" in html
    assert ">Status</h3>" in html


def test_api_facets_include_tags(web_client: TestClient) -> None:
    facets = web_client.get("/api/rules").json()["facets"]

    assert {"value": "attack.execution", "count": 1} in facets["tag"]


def test_search_snippet_marks_match(web_client: TestClient) -> None:
    html = web_client.get("/", params={"q": "cradle"}).text

    snippet = html.split('<p class="snippet">', 1)[1].split("</p>", 1)[0]
    assert "<mark>Cradle</mark>" in snippet
    assert "&lt;script&gt;" in snippet


def test_api_snippet_offsets(web_client: TestClient) -> None:
    rule = web_client.get("/api/rules", params={"q": "cradle"}).json()["rules"][0]

    start, end = rule["snippet"]["matches"][0]
    assert rule["snippet"]["text"][start:end] == "Cradle"


def test_api_no_snippet_without_search(web_client: TestClient) -> None:
    rule = web_client.get("/api/rules").json()["rules"][0]

    assert rule["snippet"] is None


def test_search_by_technique_id(web_client: TestClient) -> None:
    assert api_total(web_client, q="T1078") == 1


def test_search_by_table_name(web_client: TestClient) -> None:
    assert api_total(web_client, q="DemoVendorLogs_CL") == 1


def test_technique_search_offers_filter(web_client: TestClient) -> None:
    html = web_client.get("/", params={"q": "t1078"}).text

    assert href_of(html, "Show only rules mapped to T1078") == "/?technique=T1078"


def test_table_search_offers_filter(web_client: TestClient) -> None:
    html = web_client.get("/", params={"q": "securityevent"}).text

    assert href_of(html, "Show only rules that read SecurityEvent") == "/?table=SecurityEvent"


def test_relevance_is_default_with_search(web_client: TestClient) -> None:
    html = web_client.get("/", params={"q": "rule"}).text

    assert '<option value="relevance" selected>Best match</option>' in html


def test_newest_is_default_without_search(web_client: TestClient) -> None:
    html = web_client.get("/").text

    assert '<option value="newest" selected>Newest first</option>' in html


@pytest.mark.parametrize(("sort", "first"), [("title", "Filler rule 000"), ("severity", HOSTILE)])
def test_api_sort_orders(web_client: TestClient, sort: str, first: str) -> None:
    # "<" sorts before letters, so the hostile title would come first by title; the
    # search leaves it out to show the order of the others.
    params = {"sort": sort} if sort == "severity" else {"sort": sort, "q": "filler"}
    rule = web_client.get("/api/rules", params=params).json()["rules"][0]

    assert rule["title"].startswith(first)


def test_sort_kept_in_links(web_client: TestClient) -> None:
    html = web_client.get("/", params={"sort": "title", "per_page": "10"}).text

    assert params_of(href_of(html, "Next"))["sort"] == ["title"]


def test_mine_only_from_url(web_client: TestClient) -> None:
    total = api_total(web_client, mine_only="true", mine="SecurityEvent,DemoVendorLogs_CL")

    # Only the hostile rule reads a table that is not listed (windows/process_creation).
    # The filler and Splunk rules name no table at all, so they run anywhere.
    assert total == TOTAL - 1


def test_mine_only_case_insensitive(web_client: TestClient) -> None:
    total = api_total(web_client, mine_only="true", mine="securityevent,demovendorlogs_cl")

    assert total == TOTAL - 1


def test_mine_without_toggle_filters_nothing(web_client: TestClient) -> None:
    assert api_total(web_client, mine="SecurityEvent") == TOTAL


def test_mine_only_from_cookie(web_client: TestClient) -> None:
    web_client.cookies.set("socfeed_tables", "SecurityEvent%2CDemoVendorLogs_CL")
    try:
        total = api_total(web_client, mine_only="true")
    finally:
        web_client.cookies.clear()

    assert total == TOTAL - 1


def test_url_list_overrides_cookie(web_client: TestClient) -> None:
    web_client.cookies.set("socfeed_tables", "windows%2Fprocess_creation")
    try:
        total = api_total(web_client, mine_only="true", mine="SecurityEvent")
    finally:
        web_client.cookies.clear()

    # The Sentinel rule also reads DemoVendorLogs_CL, which this list leaves out.
    assert total == TOTAL - 2


def test_mine_toggle_link_carries_list(web_client: TestClient) -> None:
    web_client.cookies.set("socfeed_tables", "SecurityEvent")
    try:
        html = web_client.get("/").text
    finally:
        web_client.cookies.clear()

    href = href_of(html, "Show only rules I can run")
    assert params_of(href) == {"mine_only": ["true"], "mine": ["SecurityEvent"]}


def test_mine_links_keep_list(web_client: TestClient) -> None:
    html = web_client.get("/", params={"mine_only": "true", "mine": "SecurityEvent"}).text

    href = href_of(html, "community")
    assert params_of(href)["mine"] == ["SecurityEvent"]


def test_mine_marks_collected_tables(web_client: TestClient) -> None:
    html = web_client.get("/", params={"mine": "SecurityEvent"}).text

    assert '"badge badge-table badge-mine"' in html
    assert "✓ SecurityEvent" in html


def test_mine_filter_removable(web_client: TestClient) -> None:
    html = web_client.get("/", params={"mine_only": "true", "mine": "SecurityEvent"}).text

    href = href_of(html, "My data: runnable on my 1 data source ×")
    assert href == "/"


def test_export_links_keep_filters(web_client: TestClient) -> None:
    html = web_client.get("/", params={"source": "sigma", "page": "2"}).text

    assert href_of(html, "CSV") == "/api/export/csv?source=sigma"
    assert href_of(html, "Atom feed") == "/feed.atom?source=sigma"
    assert href_of(html, "ATT&CK Navigator layer") == "/api/export/navigator?source=sigma"


def test_feed_links_atom_in_head(web_client: TestClient) -> None:
    html = web_client.get("/", params={"kind": "hunting"}).text

    assert 'type="application/atom+xml"' in html
    assert 'href="/feed.atom?kind=hunting"' in html


def test_api_links_html_twin(web_client: TestClient) -> None:
    body = web_client.get("/api/rules", params={"kind": "hunting"}).json()

    assert body["links"]["html"] == "/?kind=hunting"
