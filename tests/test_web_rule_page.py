"""Tests of the rule page and /api/rules/{key}: sections, escaping, links, 404."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from socfeed.model import Rule
from socfeed.store import SourceRecord, Store
from socfeed.web import create_app
from socfeed.web.rendering import rule_path
from socfeed.web.rule_view import (
    change_note,
    confidence_view,
    false_positive_text,
    hypothesis_text,
)
from socfeed.web.schemas import RuleOut
from test_web_app import (
    HOSTILE,
    HOSTILE_KEY,
    ODD_KEY,
    SENTINEL_KEY,
    anchors,
    filled_client,
    href_of,
    make_rule,
)

SECTIONS = (
    "Description",
    "Hunt Hypothesis",
    "Sigma Query",
    "Rule Definition",
    "Required Data Sources",
    "MITRE ATT&amp;CK Context",
    "References",
    "False Positive Guidance",
    "Original source",
    "Similar rules and duplicates",
)


@pytest.fixture(scope="module")
def web_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with filled_client(tmp_path_factory.mktemp("web")) as client:
        yield client


@pytest.fixture(scope="module")
def hostile_page(web_client: TestClient) -> str:
    response = web_client.get(rule_path(HOSTILE_KEY))
    assert response.status_code == 200
    return response.text


@pytest.fixture(scope="module")
def sentinel_page(web_client: TestClient) -> str:
    response = web_client.get(rule_path(SENTINEL_KEY))
    assert response.status_code == 200
    return response.text


def test_every_section_in_order(hostile_page: str) -> None:
    positions = [hostile_page.find(f">{title}</h2>") for title in SECTIONS]

    assert -1 not in positions, dict(zip(SECTIONS, positions, strict=True))
    assert positions == sorted(positions)


def test_header_parts_in_order(hostile_page: str) -> None:
    parts = [
        "<h1>",
        'class="badges"',
        "Validate it in a test environment",
        "View original rule at sigma",
        "<dt>Retrieved</dt>",
        "<dt>Commit</dt>",
        "<dt>Confidence</dt>",
        ">Description</h2>",
    ]
    positions = [hostile_page.find(part) for part in parts]

    assert -1 not in positions, dict(zip(parts, positions, strict=True))
    assert positions == sorted(positions)


def test_sections_present_for_sparse_rule(web_client: TestClient) -> None:
    html = web_client.get(rule_path(ODD_KEY)).text

    for title in ("Hunt Hypothesis", "SPL Query", "Required Data Sources", "References"):
        assert f">{title}</h2>" in html, title
    assert "The source lists no references." in html
    assert "The source gives no false-positive guidance, and the enrichment step" in html
    assert "The rule names no table, index or data source" in html


def test_title_escaped(hostile_page: str) -> None:
    assert "<script>alert" not in hostile_page
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt; PowerShell" in hostile_page


def test_page_title_escaped(hostile_page: str) -> None:
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; PowerShell" in hostile_page


def test_query_highlighted_and_escaped(hostile_page: str) -> None:
    query_section = hostile_page.split(">Sigma Query</h2>", 1)[1].split("</section>", 1)[0]

    assert 'class="highlight"' in query_section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in query_section


def test_raw_text_escaped(hostile_page: str) -> None:
    definition = hostile_page.split(">Rule Definition</h2>", 1)[1].split("</section>", 1)[0]

    assert "&lt;script&gt;" in definition
    assert "<code>rules/" in definition


def test_unicode_kept(hostile_page: str) -> None:
    assert "“Download Cradle” Подозрительный" in hostile_page
    assert "— “curly quotes” and Кириллица." in hostile_page
    assert "Admin scripts “install” software" in hostile_page


def test_validation_note(hostile_page: str) -> None:
    assert "pulled from an open-source repository and enriched automatically" in hostile_page
    assert "Validate it in a test environment before production use." in hostile_page


def test_original_link(hostile_page: str) -> None:
    href = href_of(hostile_page, "View original rule at sigma")

    assert href == f"https://github.com/example/sigma/blob/main/rules/{HOSTILE_KEY[6:]}.yml"


def test_commit_shown(hostile_page: str) -> None:
    assert "<code>0123456789abcdef0123456789abcdef01234567</code>" in hostile_page


def test_commit_unknown(web_client: TestClient) -> None:
    html = web_client.get(rule_path(ODD_KEY)).text

    assert "<dt>Commit</dt><dd><code>unknown</code></dd>" in html


def test_badges(hostile_page: str) -> None:
    links = anchors(hostile_page)

    assert ("/?language=sigma", "Sigma") in links
    assert ("/?severity=high", "high") in links
    assert ("/?source=sigma", "sigma") in links
    assert ("/?technique=T1059.001", "T1059.001") in links
    assert ("/?table=windows%2Fprocess_creation", "windows/process_creation") in links
    assert ("/?tag=attack.execution", "attack.execution") in links


def test_warnings_shown_escaped(hostile_page: str) -> None:
    assert ">Warnings</h2>" in hostile_page
    assert "date &lt;script&gt;alert(1)&lt;/script&gt; could not be read" in hostile_page


def test_enrichment_missing_said_plainly(hostile_page: str) -> None:
    assert "Not written yet: the hunt hypothesis comes from the enrichment step" in hostile_page
    assert "not assessed yet: confidence comes from the enrichment step" in hostile_page


def test_enrichment_shown(sentinel_page: str) -> None:
    section = sentinel_page.split(">Hunt Hypothesis</h2>", 1)[1].split("</section>", 1)[0]

    assert "An attacker reuses a stolen account on the appliance." in section
    assert "Generated from templates" in section


def test_confidence_with_reasons(sentinel_page: str) -> None:
    assert '<span class="confidence confidence-medium">medium</span>' in sentinel_page
    assert "2 fields taken from the source, 1 derived from it, 1 inferred" in sentinel_page
    assert "<dt>From the source</dt><dd>title, severity</dd>" in sentinel_page


def test_enrichment_false_positive_guidance(sentinel_page: str) -> None:
    section = sentinel_page.split(">False Positive Guidance</h2>", 1)[1].split("</section>")[0]

    assert "Backup jobs log on at night." in section
    assert "<h3>Generated by model demo-model</h3>" in section


def test_source_false_positives_labelled(hostile_page: str) -> None:
    section = hostile_page.split(">False Positive Guidance</h2>", 1)[1].split("</section>")[0]

    assert "<h3>From the source</h3>" in section
    assert "Admin scripts “install” software" in section


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ({"text": "t", "origin": "template", "model": ""}, "generated from templates"),
        ({"text": "t", "origin": "model", "model": "m-1"}, "generated by model m-1"),
        ({"text": "t", "origin": "source", "model": ""}, "from the source"),
    ],
)
def test_hypothesis_labels(value: dict[str, str], label: str) -> None:
    text = hypothesis_text({"hypothesis": value})

    assert text is not None
    assert text.origin == label


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ({"text": "t", "origin": "template"}, "generated from templates"),
        ({"text": "t", "origin": "model", "model": "m-1"}, "generated by model m-1"),
        ({"text": "t", "origin": "source"}, "from the source"),
    ],
)
def test_false_positive_labels(value: dict[str, str], label: str) -> None:
    text = false_positive_text({"false_positives": value})

    assert text is not None
    assert text.origin == label


@pytest.mark.parametrize("value", [{"text": "  "}, {"origin": "model"}, "", None, "plain"])
def test_enriched_text_absent_forms(value: object) -> None:
    assert hypothesis_text({"hypothesis": value}) is None


def test_enriched_text_without_enrichment() -> None:
    assert hypothesis_text(None) is None
    assert confidence_view(None) is None


def test_change_note_new() -> None:
    note = change_note({"change": {"status": "new"}, "first_seen": "2026-11-01T10:00:00Z"})

    assert note == "New: first stored by the update of 2026-11-01T10:00:00Z."


def test_change_note_changed() -> None:
    change = {"status": "changed", "since": "2026-10-01", "fields": ["query", "severity"]}

    assert change_note({"change": change}) == (
        "Changed since the update of 2026-10-01: query, severity."
    )


def test_change_note_absent() -> None:
    assert change_note({"change": None}) == ""


def test_change_shown_after_update(store: Store) -> None:
    record = SourceRecord(name="elastic", format="elastic", retrieved_at="2026-10-01T00:00:00Z")
    first = make_rule("elastic", "c1", "Changing rule", query="a")
    store.replace_source(record, [first], [])
    later = dataclasses.replace(record, retrieved_at="2026-11-01T00:00:00Z")
    store.replace_source(later, [make_rule("elastic", "c1", "Changing rule", query="b")], [])

    html = TestClient(create_app(store)).get(rule_path("elastic:c1")).text

    # "since" is the retrieval time stored with the earlier version of the rule.
    assert "Changed since the update of 2026-11-01T10:00:00Z: query." in html
    assert "1 earlier version stored." in html


def test_history_keys_not_format_fields(sentinel_page: str) -> None:
    assert "<dt>first_seen</dt>" not in sentinel_page
    assert "<dt>change</dt>" not in sentinel_page


def test_revoked_original_flagged(sentinel_page: str) -> None:
    section = sentinel_page.split(">MITRE ATT&amp;CK Context</h2>", 1)[1].split("</section>")[0]

    assert "T1086 (PowerShell) is revoked in ATT&amp;CK 19.2; replaced by T1059.001" in section


def test_technique_context_from_enrichment(sentinel_page: str) -> None:
    section = sentinel_page.split(">MITRE ATT&amp;CK Context</h2>", 1)[1].split("</section>")[0]

    assert "<strong>T1078</strong> Valid Accounts" in section
    assert "Adversaries may obtain and abuse credentials of existing accounts." in section
    assert "Watch for logons at odd hours from new places." in section
    assert "(Initial Access, Persistence)" in section
    assert "Data components: Logon Session Creation" in section


def test_deprecated_technique_flagged(store: Store) -> None:
    enrichment = {
        "attack_version": "19.2",
        "techniques": [{"id": "T1000", "known": True, "name": "Old", "deprecated": True}],
    }
    rule = make_rule("elastic", "d1", "Deprecated", extra={"enrichment": enrichment})
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    html = TestClient(create_app(store)).get(rule_path("elastic:d1")).text

    assert '<span class="flag">deprecated</span>' in html
    assert "T1000 is deprecated in ATT&amp;CK 19.2" in html


def test_suggested_techniques_listed_apart(web_client: TestClient) -> None:
    html = web_client.get(rule_path(ODD_KEY)).text

    section = html.split(">MITRE ATT&amp;CK Context</h2>", 1)[1].split("</section>")[0]
    suggested = section.split("Suggested techniques (not from the source)", 1)[1]
    assert "<strong>T1003.001</strong>" in suggested
    assert "suggested by demo-classifier, score 0.71" in suggested
    assert "The source maps the rule to no ATT&amp;CK tactic or technique." in section


def test_similar_rules_listed(sentinel_page: str) -> None:
    section = sentinel_page.split(">Similar rules and duplicates</h2>", 1)[1]

    assert href_of(section, f"{HOSTILE} PowerShell “Download Cradle” Подозрительный") == (
        rule_path(HOSTILE_KEY)
    )
    assert "same technique T1078 and table" in section


def test_duplicates_listed(hostile_page: str) -> None:
    section = hostile_page.split("Exact duplicates in sigma</h3>", 1)[1].split("</section>")[0]

    assert href_of(section, "Filler rule 001") == rule_path("sigma:filler-001")


def test_query_has_line_numbers(sentinel_page: str) -> None:
    query_section = sentinel_page.split(">KQL Query</h2>", 1)[1].split("</section>", 1)[0]

    assert '<span id="query-line-1">' in query_section
    assert '<span id="query-line-3">' in query_section
    assert 'data-copy="query"' in query_section


def test_query_scroll_box_focusable(sentinel_page: str) -> None:
    assert 'class="code-scroll" tabindex="0" role="region" aria-label="KQL query"' in sentinel_page


def test_inferred_severity_explained(web_client: TestClient, store: Store) -> None:
    rule = make_rule(
        "elastic",
        "s1",
        "Hunting query",
        kind="hunting",
        severity="low",
        provenance={"severity": "inferred: hunting queries start at low"},
    )
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    html = TestClient(create_app(store)).get(rule_path("elastic:s1")).text

    assert "<dt>Severity</dt><dd>low (inferred: hunting queries start at low)</dd>" in html


def test_api_rule_related(web_client: TestClient) -> None:
    body = web_client.get("/api/rules/" + HOSTILE_KEY).json()

    relations = {(item["key"], item["relation"]) for item in body["related"]}
    assert relations == {(SENTINEL_KEY, "similar"), ("sigma:filler-001", "duplicate")}


def test_api_rule_suggestions(web_client: TestClient) -> None:
    body = web_client.get(rule_path(ODD_KEY).replace("/rules/", "/api/rules/", 1)).json()

    assert body["suggested_techniques"] == [
        {"technique": "T1003.001", "score": 0.71, "model": "demo-classifier"}
    ]
    assert body["techniques"] == []


def test_kql_query_uses_kusto_lexer(sentinel_page: str) -> None:
    query_section = sentinel_page.split(">KQL Query</h2>", 1)[1].split("</section>", 1)[0]

    # The Kusto lexer marks "where" and "join" as keywords (class "k").
    assert '<span class="k">where</span>' in query_section


def test_data_sources_table(sentinel_page: str) -> None:
    section = sentinel_page.split(">Required Data Sources</h2>", 1)[1].split("</section>", 1)[0]

    assert "<code>DemoVendorLogs_CL</code>" in section
    assert "Needs a custom ingestion (DCR)." in section
    assert "<td>yes</td>" in section
    assert "<td>derived: read from the KQL query</td>" in section
    assert "<td>source</td>" in section


def test_extra_fields_shown(sentinel_page: str) -> None:
    assert "<dt>queryFrequency</dt>" in sentinel_page
    assert "<dt>enrichment</dt>" not in sentinel_page


def test_attack_links(hostile_page: str) -> None:
    links = [href for href, _ in anchors(hostile_page)]

    assert "https://attack.mitre.org/techniques/T1059/001/" in links
    assert "https://attack.mitre.org/tactics/TA0002/" in links
    assert "/coverage" in links


def test_attack_names_from_knowledge_base(hostile_page: str) -> None:
    pytest.importorskip("socfeed.attack.knowledge")

    assert "<strong>T1059.001</strong> PowerShell" in hostile_page


def test_script_reference_not_linked(hostile_page: str) -> None:
    links = [href for href, _ in anchors(hostile_page)]

    assert "javascript:alert(1)" not in links
    assert "<code>javascript:alert(1)</code>" in hostile_page
    assert "https://example.org/report" in links


def test_original_source_section(sentinel_page: str) -> None:
    section = sentinel_page.split(">Original source</h2>", 1)[1].split("</section>", 1)[0]

    assert "https://github.com/Azure/Azure-Sentinel" in section
    assert "<code>Detections/DemoVendor/RareLogon.yaml</code>" in section
    assert "(shipped sample)" in section
    assert "<dd>MIT</dd>" in section


def test_links_back_to_feed_and_coverage(hostile_page: str) -> None:
    assert href_of(hostile_page, "Back to the feed") == "/"
    assert href_of(hostile_page, "ATT&CK coverage") == "/coverage"


def test_odd_key_reachable(web_client: TestClient) -> None:
    response = web_client.get(rule_path(ODD_KEY))

    assert response.status_code == 200
    assert "<h1>Odd key hunting search</h1>" in response.text


def test_tilde_key_reachable(web_client: TestClient) -> None:
    keys = [rule["key"] for rule in web_client.get("/api/rules").json()["rules"]]
    tilde_key = next(key for key in keys if "~" in key)

    response = web_client.get(rule_path(tilde_key))

    assert response.status_code == 200
    assert "<h1>Odd key twin</h1>" in response.text
    assert "is also used by" in response.text


def test_unknown_key_404_page(web_client: TestClient) -> None:
    response = web_client.get("/rules/sigma:no-such-rule")

    assert response.status_code == 404
    assert "Rule not found" in response.text
    assert "No rule is stored under the key &#39;sigma:no-such-rule&#39;." in response.text


def test_unknown_key_suggests_similar(web_client: TestClient) -> None:
    response = web_client.get("/rules/wrong-source:" + HOSTILE_KEY.split(":", 1)[1])

    assert response.status_code == 404
    assert href_of(response.text, HOSTILE_KEY) == rule_path(HOSTILE_KEY)


def test_unknown_key_escaped(web_client: TestClient) -> None:
    response = web_client.get(rule_path(f"sigma:{HOSTILE}"))

    assert response.status_code == 404
    assert "<script>alert" not in response.text


def test_api_rule_matches_store(web_client: TestClient) -> None:
    body = web_client.get("/api/rules/" + SENTINEL_KEY).json()

    assert body["key"] == SENTINEL_KEY
    assert body["tables"] == ["DemoVendorLogs_CL", "SecurityEvent"]
    assert body["extra"]["enrichment"]["confidence"]["level"] == "medium"
    assert body["data_sources"][0]["custom"] is True
    assert body["links"]["page"] == rule_path(SENTINEL_KEY)


def test_api_rule_unicode(web_client: TestClient) -> None:
    body = web_client.get("/api/rules/" + HOSTILE_KEY).json()

    assert body["title"] == f"{HOSTILE} PowerShell “Download Cradle” Подозрительный"


def test_api_rule_odd_key(web_client: TestClient) -> None:
    response = web_client.get(rule_path(ODD_KEY).replace("/rules/", "/api/rules/", 1))

    assert response.status_code == 200
    assert response.json()["key"] == ODD_KEY


def test_api_unknown_rule_json_404(web_client: TestClient) -> None:
    response = web_client.get("/api/rules/sigma:no-such-rule")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"status": 404, "message": "no rule is stored under the key 'sigma:no-such-rule'"}
    }


def test_api_model_covers_rule_fields() -> None:
    # The API document must not drift from the rule model: a new Rule field needs a RuleOut
    # field too.
    rule_fields = {field.name for field in dataclasses.fields(Rule)}

    assert rule_fields <= set(RuleOut.model_fields)


def test_rule_without_query(store: Store) -> None:
    rule = make_rule(
        "elastic",
        "ml-1",
        "Unusual process for a host",
        format="elastic",
        language="",
        query="",
        warnings=["this is a machine-learning job (rare_process_by_host_windows); no query"],
    )
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [rule], [])

    html = TestClient(create_app(store)).get(rule_path("elastic:ml-1")).text

    assert '<h2 id="query-heading">Query</h2>' in html
    assert "This rule has no query text; see the warnings above." in html
    assert "rare_process_by_host_windows" in html


PHISH_RELEASED = (
    "Hunting Queries/Microsoft 365 Defender/Email and Collaboration Queries/Quarantine/"
    "High Confidence Phish Released.yaml"
)


@pytest.mark.corpus
def test_corpus_sentinel_hunting_page(corpus_store: Store) -> None:
    keys = corpus_store.find_rule_keys(PHISH_RELEASED)
    assert keys, "the Sentinel hunting query is missing from the corpus store"

    html = TestClient(create_app(corpus_store)).get(rule_path(keys[0])).text

    links = anchors(html)
    assert ("/?language=kql", "KQL") in links
    assert ("/?source=azure-sentinel", "azure-sentinel") in links
    assert ("/?technique=T1566", "T1566") in links
    assert ("/?table=CloudAppEvents", "CloudAppEvents") in links
    assert ("/?table=EmailEvents", "EmailEvents") in links
    assert ("/?tag=hunting", "hunting") in links
    assert "Initial Access (TA0001)" in html
    assert href_of(html, "View original rule at azure-sentinel").startswith(
        "https://github.com/Azure/Azure-Sentinel/blob/"
    )
    assert "<dt>Retrieved</dt><dd><time datetime=" in html
    assert ">KQL Query</h2>" in html
    assert "QuarantineReleaseMessage" in html.split(">KQL Query</h2>", 1)[1]
    definition = html.split(">Rule Definition</h2>", 1)[1].split("</section>", 1)[0]
    assert "requiredDataConnectors" in definition
