"""Integration test: socfeed update over every folder of the real corpora."""

from __future__ import annotations

import pytest

from socfeed.store import FeedQuery, Store

pytestmark = pytest.mark.corpus

CORPUS_SOURCES = {
    "azure-sentinel",
    "sigma",
    "elastic-detection-rules",
    "splunk-security-content",
    "m365-hunting-queries",
    "sentinel-queries-reprise99",
    "falconfriday",
}


def test_every_corpus_source_ingested(corpus_store: Store) -> None:
    records = {r.name: r for r in corpus_store.sources()}

    assert set(records) >= CORPUS_SOURCES
    for name in CORPUS_SOURCES:
        record = records[name]
        assert record.is_sample is False, name
        assert record.files_seen > 0, name
        assert record.files_seen == record.files_with_rules + record.files_failed, name
        assert record.rules >= record.files_with_rules, name


def test_every_failed_file_has_a_reason(corpus_store: Store) -> None:
    records = {r.name: r for r in corpus_store.sources()}
    errors = corpus_store.errors()

    for name in CORPUS_SOURCES:
        failed_paths = {e.path for e in errors if e.source == name}
        assert len(failed_paths) == records[name].files_failed, name
    assert all(e.reason for e in errors)
    assert not [e for e in errors if "internal parser error" in e.reason]


def test_odd_sentinel_files_handled(corpus_store: Store) -> None:
    errors = {e.path: e for e in corpus_store.errors("azure-sentinel")}
    stub = errors["Detections/SigninLogs/NRT_MFARejectedbyUser.yaml"]
    assert stub.reason.startswith("no query")

    # Not valid YAML upstream (KQL below the block scalar is not indented): recovered with
    # a warning that names the line instead of losing the rule.
    keys = corpus_store.find_rule_keys(
        "Detections/CommonSecurityLog/Fortinet-NetworkBeaconPattern.yaml"
    )
    recovered = corpus_store.rule(keys[0])
    assert recovered is not None
    assert any("line 25" in w for w in recovered.warnings)


def test_phish_released_rule_fields(corpus_store: Store) -> None:
    path = (
        "Hunting Queries/Microsoft 365 Defender/Email and Collaboration Queries/Quarantine/"
        "High Confidence Phish Released.yaml"
    )
    keys = corpus_store.find_rule_keys(path)
    assert len(keys) == 1
    rule = corpus_store.rule(keys[0])
    assert rule is not None

    assert rule.language == "kql"
    assert rule.kind == "hunting"
    assert "hunting" in rule.tags
    assert "T1566" in rule.techniques
    assert "Initial Access" in rule.tactics
    assert {"CloudAppEvents", "EmailEvents"} <= set(rule.tables())
    assert rule.url.startswith("https://github.com/Azure/Azure-Sentinel/blob/")
    assert rule.retrieved_at.endswith("Z")


def test_feed_filters_on_real_data(corpus_store: Store) -> None:
    page = corpus_store.feed(FeedQuery(technique=["T1566"], language=["kql"]))

    assert page.total > 0
    assert all("T1566" in r.techniques for r in page.rules)
    assert all(r.language == "kql" for r in page.rules)


def test_every_rule_enriched(corpus_store: Store) -> None:
    statuses = {"ok", "revoked", "deprecated", "unknown", "invalid"}
    count = 0
    for rule in corpus_store.iter_rules():
        count += 1
        enrichment = rule.extra.get("enrichment")
        assert enrichment, rule.key
        assert enrichment["hypothesis"]["text"].strip(), rule.key
        assert enrichment["false_positives"]["text"].strip(), rule.key
        assert enrichment["confidence"]["level"] in {"high", "medium", "low"}, rule.key
        assert enrichment["confidence"]["reasons"], rule.key
        assert rule.severity is not None, rule.key
        assert all(d.note for d in rule.data_sources), rule.key
        assert {r["status"] for r in enrichment["resolutions"]} <= statuses, rule.key
        known = {t["id"] for t in enrichment["techniques"]}
        assert known == set(rule.techniques), rule.key
    assert count > 9000


def test_revoked_elastic_id_mapped(corpus_store: Store) -> None:
    page = corpus_store.feed(FeedQuery(source=["elastic-detection-rules"], per_page=500))
    revoked = []
    for rule in corpus_store.iter_rules():
        for resolution in (rule.extra.get("enrichment") or {}).get("resolutions", []):
            if resolution["status"] == "revoked" and resolution["original"] == "T1086":
                revoked.append((rule, resolution))
    assert page.total > 0
    assert revoked, "no Elastic rule maps the revoked PowerShell id T1086"
    rule, resolution = revoked[0]
    assert resolution["replacement"] == "T1059.001"
    assert "T1059.001" in rule.techniques
    assert "T1086" not in rule.techniques
