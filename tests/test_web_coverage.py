"""Tests of the coverage page and /api/coverage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from socfeed.attack.ids import TACTICS
from socfeed.attack.knowledge import default_knowledge_base
from socfeed.store import SourceRecord, Store
from socfeed.web import coverage, create_app
from test_web_app import filled_client, href_of, make_rule


@pytest.fixture(scope="module")
def web_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with filled_client(tmp_path_factory.mktemp("web")) as client:
        yield client


@pytest.fixture
def without_knowledge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coverage, "knowledge_base", lambda: None)


def tactic_of(body: dict[str, Any], tactic_name: str) -> dict[str, Any]:
    return next(tactic for tactic in body["tactics"] if tactic["name"] == tactic_name)


def cells_of(body: dict[str, Any], tactic_name: str) -> list[dict[str, Any]]:
    """Return the cells of a tactic column, sub-techniques after their parent."""
    cells = []
    for entry in tactic_of(body, tactic_name)["techniques"]:
        cells.append(entry)
        cells.extend(entry["subtechniques"])
    return cells


def cell(body: dict[str, Any], tactic_name: str, technique_id: str) -> dict[str, Any]:
    return next(entry for entry in cells_of(body, tactic_name) if entry["id"] == technique_id)


def covered(body: dict[str, Any], tactic_name: str) -> list[str]:
    return [entry["id"] for entry in cells_of(body, tactic_name) if entry["rules"]]


def test_tactics_in_matrix_order(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()

    assert [tactic["id"] for tactic in body["tactics"]] == [tactic.id for tactic in TACTICS]


def test_matrix_lists_every_active_technique(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()
    knowledge = default_knowledge_base()
    in_execution = [
        t.id
        for t in knowledge.index.techniques.values()
        if "execution" in t.tactics and not (t.revoked or t.deprecated)
    ]

    assert sorted(entry["id"] for entry in cells_of(body, "Execution")) == sorted(in_execution)
    assert tactic_of(body, "Execution")["techniques_in_attack"] == len(in_execution)


def test_subtechniques_nested_under_parent(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()

    parent = next(e for e in tactic_of(body, "Execution")["techniques"] if e["id"] == "T1059")
    assert "T1059.001" in [sub["id"] for sub in parent["subtechniques"]]
    assert all("." not in entry["id"] for entry in tactic_of(body, "Execution")["techniques"])


def test_cell_counts(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()

    entry = cell(body, "Execution", "T1059.001")
    assert entry["name"] == "PowerShell"
    assert entry["status"] == "ok"
    assert entry["rules"] == 1
    assert entry["detection"] == 1
    assert entry["hunting"] == 0
    assert entry["level"] == 1
    assert entry["feed"] == "/?technique=T1059.001"
    assert body["attack_version"]


def test_technique_under_each_of_its_tactics(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()

    # ATT&CK lists Valid Accounts under four tactics, but the rule names only Initial Access.
    for tactic_name in ("Initial Access", "Persistence", "Privilege Escalation", "Stealth"):
        assert covered(body, tactic_name) == ["T1078"], tactic_name


def test_techniques_with_rules_per_tactic(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()

    assert tactic_of(body, "Execution")["techniques_with_rules"] == 1
    assert tactic_of(body, "Impact")["techniques_with_rules"] == 0


@pytest.mark.parametrize(("rules", "shade"), [(0, 0), (1, 1), (2, 1), (3, 2), (99, 4), (100, 5)])
def test_shade_levels(rules: int, shade: int) -> None:
    assert coverage.level(rules) == shade


def test_filters_apply(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage", params={"source": "azure-sentinel"}).json()

    assert covered(body, "Execution") == []
    assert covered(body, "Initial Access") == ["T1078"]


def test_filters_kept_in_cell_links(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage", params={"official": "true"}).json()

    entry = cell(body, "Initial Access", "T1078")
    assert parse_qs(urlsplit(entry["feed"]).query) == {
        "official": ["true"],
        "technique": ["T1078"],
    }


def test_mine_only_applies(web_client: TestClient) -> None:
    body = web_client.get(
        "/api/coverage", params={"mine_only": "true", "mine": "SecurityEvent"}
    ).json()

    # The Sentinel rule also reads DemoVendorLogs_CL, which is not in the list.
    assert covered(body, "Initial Access") == []
    assert covered(body, "Execution") == []


def test_hunting_only_gap(store: Store) -> None:
    rule = make_rule("elastic", "h1", "Hunt for PowerShell", kind="hunting", techniques=["T1059"])
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    body = TestClient(create_app(store)).get("/api/coverage").json()

    gap = next(gap for gap in body["gaps"] if gap["id"] == "T1059")
    assert gap["gap"] == "hunting only"
    assert gap["hunting"] == 1


def test_deprecated_only_gap(store: Store) -> None:
    rule = make_rule("elastic", "d1", "Old rule", status="deprecated", techniques=["T1059"])
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    body = TestClient(create_app(store)).get("/api/coverage").json()

    gap = next(gap for gap in body["gaps"] if gap["id"] == "T1059")
    assert gap["gap"] == "deprecated only"


def test_covered_technique_no_gap(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()

    ids = {gap["id"] for gap in body["gaps"]}
    assert "T1078" not in ids
    assert "T1059.001" not in ids
    assert "T1059.002" in ids


def test_gaps_sorted_by_tactic(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()
    order = [tactic.name for tactic in TACTICS]

    firsts = [min(order.index(name) for name in gap["tactics"]) for gap in body["gaps"]]
    assert firsts == sorted(firsts)


def test_gaps_sorted_by_technique(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage", params={"gaps": "technique"}).json()

    ids = [gap["id"] for gap in body["gaps"]]
    assert ids == sorted(ids)


def test_gap_order_links(web_client: TestClient) -> None:
    html = web_client.get("/coverage", params={"source": "sigma"}).text

    assert href_of(html, "Technique") == "/coverage?source=sigma&gaps=technique#gaps"
    assert href_of(html, "Tactics") == "/coverage?source=sigma#gaps"


def test_navigator_link_keeps_filters(web_client: TestClient) -> None:
    html = web_client.get("/coverage", params={"kind": "detection", "page": "3"}).text

    href = href_of(html, "Download ATT&CK Navigator layer")
    assert href == "/coverage/navigator.json?kind=detection"


def test_api_links(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage", params={"source": "sigma"}).json()

    assert body["links"] == {
        "self": "/api/coverage?source=sigma",
        "html": "/coverage?source=sigma",
        "navigator": "/coverage/navigator.json?source=sigma",
        "feed": "/?source=sigma",
    }


def test_fallback_groups_by_rule_tactics(web_client: TestClient, without_knowledge: None) -> None:
    body = web_client.get("/api/coverage").json()

    assert body["attack_version"] is None
    assert body["grouping"].startswith("rule tactics")
    assert [entry["id"] for entry in tactic_of(body, "Initial Access")["techniques"]] == ["T1078"]
    assert tactic_of(body, "Persistence")["techniques"] == []
    assert body["gaps"] == []


def test_fallback_link_filters_tactic_too(web_client: TestClient, without_knowledge: None) -> None:
    body = web_client.get("/api/coverage").json()

    entry = tactic_of(body, "Execution")["techniques"][0]
    assert entry["name"] is None
    assert parse_qs(urlsplit(entry["feed"]).query) == {
        "tactic": ["Execution"],
        "technique": ["T1059.001"],
    }


def test_feed_link_count_matches(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()
    entry = cell(body, "Execution", "T1059.001")

    feed = web_client.get("/api/rules?" + urlsplit(entry["feed"]).query).json()

    assert feed["total"] == entry["rules"]


def test_page_lists_tactics_in_order(web_client: TestClient) -> None:
    html = web_client.get("/coverage").text

    positions = [html.find(f">{tactic.name}</a>") for tactic in TACTICS]
    assert -1 not in positions
    assert positions == sorted(positions)


def test_page_cell_links_to_feed(web_client: TestClient) -> None:
    html = web_client.get("/coverage").text

    assert '<a class="cell lvl-1" href="/?technique=T1059.001">' in html


def test_page_subtechniques_in_details(web_client: TestClient) -> None:
    html = web_client.get("/coverage").text

    details = html.split('href="/?technique=T1059">', 1)[1].split("</details>", 1)[0]
    assert '<details class="subs">' in details
    assert 'href="/?technique=T1059.001"' in details


def test_page_without_knowledge_says_so(web_client: TestClient, without_knowledge: None) -> None:
    html = web_client.get("/coverage").text

    assert "no ATT&amp;CK index is installed" in html


def test_revoked_id_counts_for_replacement(store: Store) -> None:
    rule = make_rule("elastic", "r1", "Old PowerShell rule", techniques=["T1086"])
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    body = TestClient(create_app(store)).get("/api/coverage").json()

    # T1086 was revoked in favour of T1059.001, so its rule counts there.
    assert cell(body, "Execution", "T1059.001")["rules"] == 1
    assert body["ungrouped"] == []


def test_unknown_technique_ungrouped(store: Store) -> None:
    rule = make_rule("elastic", "r1", "Future rule", techniques=["T9999"])
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    body = TestClient(create_app(store)).get("/api/coverage").json()

    assert [entry["id"] for entry in body["ungrouped"]] == ["T9999"]
    assert body["ungrouped"][0]["status"] == "unknown"
