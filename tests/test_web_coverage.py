"""Tests of the coverage page and /api/coverage."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from socfeed.attack.ids import TACTICS
from socfeed.store import SourceRecord, Store
from socfeed.web import coverage, create_app
from test_web_app import filled_client, make_rule


@pytest.fixture(scope="module")
def web_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with filled_client(tmp_path_factory.mktemp("web")) as client:
        yield client


@pytest.fixture
def without_knowledge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coverage, "knowledge_base", lambda: None)


def techniques_of(body: dict[str, object], tactic_name: str) -> list[dict[str, object]]:
    tactics = body["tactics"]
    assert isinstance(tactics, list)
    return next(tactic["techniques"] for tactic in tactics if tactic["name"] == tactic_name)


def test_tactics_in_matrix_order(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()

    assert [tactic["id"] for tactic in body["tactics"]] == [tactic.id for tactic in TACTICS]


def test_counts_by_knowledge_base(web_client: TestClient) -> None:
    pytest.importorskip("socfeed.attack.knowledge")
    body = web_client.get("/api/coverage").json()

    execution = techniques_of(body, "Execution")
    assert execution == [
        {
            "id": "T1059.001",
            "name": "PowerShell",
            "status": "ok",
            "replacement": None,
            "rules": 1,
            "feed": "/?technique=T1059.001",
        }
    ]
    assert body["attack_version"]


def test_technique_under_each_of_its_tactics(web_client: TestClient) -> None:
    pytest.importorskip("socfeed.attack.knowledge")
    body = web_client.get("/api/coverage").json()

    # ATT&CK lists Valid Accounts under four tactics, but the rule names only Initial Access.
    for tactic_name in ("Initial Access", "Persistence", "Privilege Escalation", "Stealth"):
        ids = [entry["id"] for entry in techniques_of(body, tactic_name)]
        assert ids == ["T1078"], tactic_name


def test_totals_from_knowledge_base(web_client: TestClient) -> None:
    pytest.importorskip("socfeed.attack.knowledge")
    body = web_client.get("/api/coverage").json()

    execution = next(tactic for tactic in body["tactics"] if tactic["name"] == "Execution")
    assert execution["techniques_in_attack"] > 10


def test_fallback_groups_by_rule_tactics(web_client: TestClient, without_knowledge: None) -> None:
    body = web_client.get("/api/coverage").json()

    assert body["attack_version"] is None
    assert body["grouping"].startswith("rule tactics")
    assert [entry["id"] for entry in techniques_of(body, "Initial Access")] == ["T1078"]
    assert techniques_of(body, "Persistence") == []


def test_fallback_link_filters_tactic_too(web_client: TestClient, without_knowledge: None) -> None:
    body = web_client.get("/api/coverage").json()

    entry = techniques_of(body, "Execution")[0]
    assert entry["name"] is None
    assert parse_qs(urlsplit(entry["feed"]).query) == {
        "tactic": ["Execution"],
        "technique": ["T1059.001"],
    }


def test_feed_link_count_matches(web_client: TestClient) -> None:
    body = web_client.get("/api/coverage").json()
    entry = techniques_of(body, "Execution")[0]

    feed = web_client.get("/api" + "/rules?" + urlsplit(entry["feed"]).query).json()

    assert feed["total"] == entry["rules"]


def test_page_lists_tactics_in_order(web_client: TestClient) -> None:
    html = web_client.get("/coverage").text

    positions = [html.find(f">{tactic.name}</a>") for tactic in TACTICS]
    assert -1 not in positions
    assert positions == sorted(positions)


def test_page_links_technique_to_feed(web_client: TestClient) -> None:
    html = web_client.get("/coverage").text

    assert '<a href="/?technique=T1059.001">' in html


def test_page_without_knowledge_says_so(web_client: TestClient, without_knowledge: None) -> None:
    html = web_client.get("/coverage").text

    assert "no ATT&amp;CK index is installed" in html


def test_revoked_technique_flagged(store: Store) -> None:
    pytest.importorskip("socfeed.attack.knowledge")
    rule = make_rule("elastic", "r1", "Old PowerShell rule", techniques=["T1086"])
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    body = TestClient(create_app(store)).get("/api/coverage").json()

    execution = next(tactic for tactic in body["tactics"] if tactic["name"] == "Execution")
    # T1086 has no tactics of its own in the index, so it is listed under its replacement's.
    assert [entry["status"] for entry in execution["techniques"]] == ["revoked"]
    assert execution["techniques"][0]["replacement"] == "T1059.001"
    assert execution["techniques_with_rules"] == 0


def test_unknown_technique_ungrouped(store: Store) -> None:
    pytest.importorskip("socfeed.attack.knowledge")
    rule = make_rule("elastic", "r1", "Future rule", techniques=["T9999"])
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    body = TestClient(create_app(store)).get("/api/coverage").json()

    assert [entry["id"] for entry in body["ungrouped"]] == ["T9999"]
    assert body["ungrouped"][0]["status"] == "unknown"
