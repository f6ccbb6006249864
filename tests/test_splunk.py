"""Tests for the Splunk parser and its context loader, on real detections and the corpus."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from socfeed.errors import ParseError
from socfeed.formats import get_format
from socfeed.formats.base import ParsedFile, RuleFile, decode_rule_bytes
from socfeed.formats.splunk import load_context, parse
from socfeed.model import Rule

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPLUNK = FIXTURES / "splunk-security-content"
SOURCE = "splunk-security-content"
RULE_GLOBS = ("detections/**/*.yml",)

LINUX_TTP = "detections/endpoint/linux_auditd_unix_shell_configuration_modification.yml"
PSWA_HUNTING = "detections/endpoint/windows_identify_powershell_web_access_iis_pool.yml"
OUTLOOK_ZIP = "detections/endpoint/detect_outlook_exe_writing_a_zip_file.yml"
GPO_DISABLED = "detections/application/windows_ad_gpo_disabled.yml"
SPECTRE = "detections/deprecated/spectre_and_meltdown_vulnerable_systems.yml"

MINIMAL = (
    "name: Minimal Detection\nid: 9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d\nversion: 1\n"
    "date: '2024-06-01'\nstatus: production\ntype: Anomaly\n"
    "search: '`sysmon` EventCode=1 | `minimal_detection_filter`'\n"
)


@pytest.fixture(scope="module")
def context() -> Mapping[str, Any]:
    return load_context(SPLUNK)


def parse_fixture(path: str, context: Mapping[str, Any]) -> Rule:
    text = (SPLUNK / path).read_text(encoding="utf-8")
    parsed = parse(RuleFile(SOURCE, path, text, context))
    assert parsed.errors == []
    assert len(parsed.rules) == 1
    return parsed.rules[0]


def parse_text(text: str, context: Mapping[str, Any] | None = None) -> Rule:
    parsed = parse(RuleFile(SOURCE, "detections/endpoint/test.yml", text, context or {}))
    assert parsed.errors == []
    return parsed.rules[0]


def test_registry_returns_splunk_format() -> None:
    splunk = get_format("splunk")

    assert splunk.name == "splunk"
    assert splunk.load_context is load_context


def test_context_loads_every_folder(context: Mapping[str, Any]) -> None:
    assert "Linux Persistence Techniques" in context["stories"]
    assert "Spectre And Meltdown Vulnerabilities" in context["stories"]
    assert "linux_auditd" in context["macros"]
    assert "Sysmon EventID 1" in context["data_sources"]


def test_context_skips_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stories = tmp_path / "stories"
    stories.mkdir()
    (stories / "good.yml").write_text("name: Good Story\ndescription: Fine.\n", encoding="utf-8")
    (stories / "tabs.yml").write_text("name: Bad\n\tdescription: x\n", encoding="utf-8")
    (stories / "list.yml").write_text("- name: Listed\n", encoding="utf-8")
    (stories / "nameless.yml").write_text("description: No name.\n", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="socfeed.formats.splunk"):
        context = load_context(tmp_path)

    assert list(context["stories"]) == ["Good Story"]
    assert context["macros"] == {}
    skipped = [record.getMessage() for record in caplog.records]
    assert len(skipped) == 3
    assert any("stories/tabs.yml" in message for message in skipped)


def test_ttp_detection_fields(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(LINUX_TTP, context)

    assert rule.rule_id == "66f737c6-3f7f-46ed-8e9b-cc0e5bf01f04"
    assert rule.title == "Linux Auditd Unix Shell Configuration Modification"
    assert rule.format == "splunk"
    assert rule.language == "spl"
    assert rule.kind == "detection"
    assert rule.status == "production"
    assert rule.author == "Teoderick Contreras, Splunk"
    assert rule.query.startswith("`linux_auditd` type=PATH")
    assert rule.techniques == ["T1546.004", "T1546"]
    assert rule.extra["type"] == "TTP"
    assert rule.extra["version"] == 2
    assert rule.extra["how_to_implement"].startswith("To implement this detection")
    assert rule.false_positives[0].startswith("Administrator or network operator")


def test_date_is_modified_date(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(LINUX_TTP, context)

    assert rule.modified == "2024-09-30"
    assert rule.created is None
    assert rule.provenance["modified"].startswith("inferred: ")


def test_first_version_date_is_also_created() -> None:
    rule = parse_text(MINIMAL)

    assert rule.created == "2024-06-01"
    assert rule.modified == "2024-06-01"
    assert rule.provenance["created"].startswith("derived: ")


def test_severity_from_risk_score(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(LINUX_TTP, context)

    assert rule.severity == "low"
    assert rule.provenance["severity"].startswith("derived: risk score 25 from tags.risk_score")
    assert rule.extra["risk_score"] == 25
    assert rule.extra["confidence"] == 80
    assert rule.extra["impact"] == 80


def test_inconsistent_risk_score_warns(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(LINUX_TTP, context)

    assert "tags.risk_score 25 differs from confidence x impact / 100 = 64" in rule.warnings


@pytest.mark.parametrize(
    ("tags", "severity", "origin"),
    [
        ("  risk_score: 90\n", "critical", "tags.risk_score"),
        ("  risk_score: 61\n", "high", "tags.risk_score"),
        ("  risk_score: 41\n", "medium", "tags.risk_score"),
        ("  risk_score: 20\n", "informational", "tags.risk_score"),
        ("  confidence: 50\n  impact: 70\n", "low", "tags.confidence x tags.impact / 100"),
    ],
)
def test_severity_bands(tags: str, severity: str, origin: str) -> None:
    rule = parse_text(MINIMAL + "tags:\n" + tags)

    assert rule.severity == severity
    assert f"from {origin}," in rule.provenance["severity"]


def test_rba_score_wins() -> None:
    text = (
        MINIMAL
        + "rba:\n  message: m\n  risk_objects:\n  - field: dest\n    type: system\n    score: 56\n"
        + "  - field: user\n    type: user\n    score: 82\n"
        + "tags:\n  risk_score: 10\n"
    )

    rule = parse_text(text)

    assert rule.severity == "critical"
    assert "the highest rba.risk_objects score" in rule.provenance["severity"]


def test_no_score_leaves_severity_empty() -> None:
    rule = parse_text(MINIMAL)

    assert rule.severity is None
    assert "severity" not in rule.provenance
    assert any("severity left empty" in warning for warning in rule.warnings)


def test_data_source_details_from_definition(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(LINUX_TTP, context)

    (source,) = rule.data_sources
    assert source.kind == "splunk_data_source"
    assert source.name == "Linux Auditd Path"
    assert source.details["sourcetype"] == "linux:audit"
    assert source.details["source"] == "/var/log/audit/audit.log"
    assert source.details["supported_add_ons"] == [
        {"name": "Splunk Add-on for Unix and Linux", "url": "https://splunkbase.splunk.com/app/833"}
    ]
    assert source.note.startswith("Collect sourcetype linux:audit")
    assert "Splunk Add-on for Unix and Linux" in source.note


def test_joined_data_source_is_split(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(OUTLOOK_ZIP, context)

    assert [source.name for source in rule.data_sources] == [
        "Sysmon EventID 1",
        "Sysmon EventID 11",
    ]
    assert rule.data_sources[0].origin.startswith("derived: one part of ")
    assert rule.data_sources[0].details["separator"] == "EventID"
    assert "sysmon-config" in rule.data_sources[0].note


def test_unknown_data_source_warns(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(GPO_DISABLED, context)

    assert rule.data_sources[0].name == "Windows Security 5136"
    assert rule.data_sources[0].note == ""
    assert len(rule.warnings) == 1
    assert "'Windows Security 5136'" in rule.warnings[0]


def test_misnamed_data_source_key_warns(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(PSWA_HUNTING, context)

    assert [source.name for source in rule.data_sources] == ["Windows Event Log Security 4648"]
    assert any("'data_sources'" in warning for warning in rule.warnings)


def test_hunting_type_gives_hunting_kind(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(PSWA_HUNTING, context)

    assert rule.kind == "hunting"
    assert rule.provenance["kind"].startswith("derived: type 'Hunting'")


def test_stories_resolved_from_context(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(LINUX_TTP, context)

    stories = rule.extra["analytic_stories"]
    assert [story["name"] for story in stories] == [
        "Linux Living Off The Land",
        "Linux Privilege Escalation",
        "Linux Persistence Techniques",
        "Compromised Linux Host",
    ]
    assert stories[0]["description"].startswith("Linux Living Off The Land consists")
    assert stories[0]["id"] == "e405a2d7-dc8e-4227-8e9d-f60267b8c0cd"
    assert "Analytic Story: Linux Privilege Escalation" in rule.tags


def test_unknown_story_warns(context: Mapping[str, Any]) -> None:
    rule = parse_text(MINIMAL + "tags:\n  analytic_story:\n  - No Such Story\n", context)

    assert rule.extra["analytic_stories"] == [
        {"name": "No Such Story", "id": "", "description": ""}
    ]
    assert "analytic stories not defined in stories/: 'No Such Story'" in rule.warnings


def test_macros_resolved_from_context(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(OUTLOOK_ZIP, context)

    assert set(rule.extra["macros"]) == {"security_content_summariesonly", "security_content_ctime"}
    assert rule.extra["macros_not_in_source"] == ["drop_dm_object_name"]


def test_deprecated_folder_sets_status(context: Mapping[str, Any]) -> None:
    text = (
        (SPLUNK / SPECTRE)
        .read_text(encoding="utf-8")
        .replace("status: deprecated", "status: production")
    )

    rule = parse(RuleFile(SOURCE, SPECTRE, text, context)).rules[0]

    assert rule.status == "deprecated"
    assert rule.provenance["status"] == "derived: the file is under detections/deprecated/"


def test_parse_works_without_context() -> None:
    text = (SPLUNK / LINUX_TTP).read_text(encoding="utf-8")

    rule = parse(RuleFile(SOURCE, LINUX_TTP, text)).rules[0]

    assert rule.data_sources[0].name == "Linux Auditd Path"
    assert rule.extra["analytic_stories"][0]["description"] == ""
    assert rule.warnings == ["tags.risk_score 25 differs from confidence x impact / 100 = 64"]


def test_missing_search_is_parse_error() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "detections/x.yml", "name: No Search\nid: x\n"))

    assert caught.value.reason == "the detection is missing the search field"
    assert caught.value.location is not None
    assert caught.value.location.line == 1


def test_list_document_is_parse_error() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "detections/x.yml", "- name: a\n"))

    assert "not a mapping" in caught.value.reason


def test_rule_serializes_to_plain_data(context: Mapping[str, Any]) -> None:
    rule = parse_fixture(LINUX_TTP, context)

    assert Rule.from_dict(rule.to_dict()) == rule


@pytest.mark.corpus
def test_splunk_corpus_parses(corpus: Path) -> None:
    root = corpus / SOURCE
    if not root.is_dir():
        pytest.skip(f"Splunk corpus not found at {root}")
    started = time.perf_counter()
    corpus_context = load_context(root)
    files = sorted({path for pattern in RULE_GLOBS for path in root.glob(pattern)})
    rules = 0
    reasons: Counter[str] = Counter()

    for path in files:
        relative = path.relative_to(root).as_posix()
        text = decode_rule_bytes(path.read_bytes(), SOURCE, relative)
        try:
            parsed = parse(RuleFile(SOURCE, relative, text, corpus_context))
        except ParseError as error:
            parsed = ParsedFile(errors=[error])
        assert parsed.rules or parsed.errors, relative
        for error in parsed.errors:
            assert error.location is not None, relative
            assert error.location.path == relative
            assert error.reason, relative
            reasons[error.reason[:80]] += 1
        rules += len(parsed.rules)

    elapsed = time.perf_counter() - started
    print(
        f"\nsplunk corpus: files={len(files)} rules={rules} errors={reasons.total()} "
        f"seconds={elapsed:.1f} (context included) top errors={reasons.most_common(5)}"
    )
    assert len(files) > 1500
    assert len(corpus_context["data_sources"]) > 100
    assert rules >= len(files) - reasons.total()
