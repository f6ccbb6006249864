"""Tests for the Elastic parser: detection rules, hunting files, bad TOML and the corpus."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from socfeed.errors import ParseError
from socfeed.formats import get_format
from socfeed.formats.base import ParsedFile, RuleFile, decode_rule_bytes
from socfeed.formats.elastic import esql_source_indices, parse
from socfeed.model import Rule

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ELASTIC = FIXTURES / "elastic-detection-rules"
BAD = FIXTURES / "bad"
SOURCE = "elastic-detection-rules"
RULE_GLOBS = ("rules/**/*.toml", "rules_building_block/**/*.toml", "hunting/**/queries/*.toml")

EQL_RULE = "rules/windows/execution_shared_modules_local_sxs_dll.toml"
ESQL_RULE = "rules/linux/credential_access_potential_password_spraying_attack.toml"
ML_RULE = "rules/integrations/gcp/ml_gcp_error_message_spike.toml"
BUILDING_BLOCK = "rules_building_block/impact_github_user_blocked_from_organization.toml"
LUCENE_RULE = "rules/_deprecated/privilege_escalation_setgid_bit_set_via_chmod.toml"
KUERY_RULE = "rules/_deprecated/execution_command_shell_started_by_powershell.toml"
GRUB_HUNT = "hunting/linux/queries/persistence_via_grub_bootloader.toml"
LLM_HUNT = "hunting/llm/queries/aws_bedrock_sensitive_content_refusal_detection.toml"


def parse_fixture(path: str) -> ParsedFile:
    return parse(RuleFile(SOURCE, path, (ELASTIC / path).read_text(encoding="utf-8")))


def only_rule(path: str) -> Rule:
    parsed = parse_fixture(path)
    assert parsed.errors == []
    assert len(parsed.rules) == 1
    return parsed.rules[0]


def test_registry_returns_elastic_format() -> None:
    assert get_format("elastic").name == "elastic"


def test_eql_rule_fields() -> None:
    rule = only_rule(EQL_RULE)

    assert rule.rule_id == "a3ea12f3-0d4e-4667-8b44-4230c63f3c75"
    assert rule.format == "elastic"
    assert rule.language == "eql"
    assert rule.kind == "detection"
    assert rule.status == "production"
    assert rule.severity == "medium"
    assert rule.extra["risk_score"] == 47
    assert rule.author == "Elastic"
    assert rule.query.startswith('file where host.os.type == "windows"')
    assert rule.warnings == []
    assert rule.line == 7


def test_eql_rule_dates_are_iso() -> None:
    rule = only_rule(EQL_RULE)

    assert rule.created == "2020-10-28"
    assert rule.modified == "2026-05-04"
    assert "created" not in rule.provenance


def test_threat_gives_tactics_and_subtechniques() -> None:
    rule = only_rule(EQL_RULE)

    assert rule.tactics == ["Execution", "Stealth"]
    assert rule.techniques == ["T1129", "T1574", "T1574.001"]
    assert rule.provenance["tactics"].startswith("derived: ")


def test_index_and_integration_data_sources() -> None:
    rule = only_rule(EQL_RULE)

    kinds = [(source.kind, source.name, source.origin) for source in rule.data_sources]
    assert ("integration", "endpoint", "source: metadata.integration") in kinds
    assert all(origin.startswith("source: ") for _, _, origin in kinds)
    assert any(kind == "index" for kind, _, _ in kinds)


def test_esql_rule_reads_indices_from_query() -> None:
    rule = only_rule(ESQL_RULE)

    assert rule.language == "esql"
    indices = [source for source in rule.data_sources if source.kind == "index"]
    assert [source.name for source in indices] == ["logs-system.auth-*"]
    assert indices[0].origin == "derived: read from the ES|QL FROM clause"
    assert any("ES|QL rule has no index field" in warning for warning in rule.warnings)


def test_machine_learning_rule_has_no_query() -> None:
    rule = only_rule(ML_RULE)

    assert rule.query == ""
    assert rule.language == ""
    assert rule.extra["machine_learning_job_id"] == "gcp_audit_high_distinct_count_error_message_ea"
    assert len(rule.warnings) == 1
    assert "machine-learning rule" in rule.warnings[0]
    assert "'gcp_audit_high_distinct_count_error_message_ea'" in rule.warnings[0]


def test_building_block_gets_tag() -> None:
    rule = only_rule(BUILDING_BLOCK)

    assert "building block" in rule.tags
    assert rule.provenance["tags"].startswith("derived: ")
    assert rule.tactics == ["Impact"]


def test_deprecated_lucene_rule() -> None:
    rule = only_rule(LUCENE_RULE)

    assert rule.language == "lucene"
    assert rule.status == "deprecated"
    assert "deprecation_date" in rule.extra


def test_kuery_rule_language() -> None:
    rule = only_rule(KUERY_RULE)

    assert rule.language == "kuery"
    assert rule.status == "deprecated"


def test_hunting_file_gives_rule_per_query() -> None:
    parsed = parse_fixture(GRUB_HUNT)

    assert parsed.errors == []
    assert len(parsed.rules) == 4
    first, second = parsed.rules[0], parsed.rules[1]
    assert first.rule_id == "7adc1a69-3962-4f84-a46d-0b68f69e45a8"
    assert second.rule_id == "7adc1a69-3962-4f84-a46d-0b68f69e45a8-2"
    assert first.title == "Persistence via GRUB Bootloader (query 1 of 4)"
    assert [rule.query_index for rule in parsed.rules] == [0, 1, 2, 3]
    assert all(rule.kind == "hunting" for rule in parsed.rules)
    assert second.provenance["rule_id"].startswith("derived: ")


def test_hunting_language_per_query() -> None:
    parsed = parse_fixture(GRUB_HUNT)

    assert [rule.language for rule in parsed.rules] == ["esql", "esql", "osquery", "osquery"]
    assert parsed.rules[2].provenance["language"].startswith("inferred: ")
    assert "stray 'sql' line" in parsed.rules[0].warnings[0]


def test_hunting_rule_fields() -> None:
    first = parse_fixture(GRUB_HUNT).rules[0]

    assert first.techniques == ["T1542"]
    assert first.line == 20
    assert first.extra["notes"]
    assert [source.name for source in first.data_sources] == [
        "endpoint",
        "logs-endpoint.events.file-*",
    ]


def test_single_query_hunt_keeps_plain_title() -> None:
    rule = only_rule(LLM_HUNT)

    assert rule.title == "AWS Bedrock LLM Sensitive Content Refusals"
    assert rule.rule_id == "11e33a8f-805b-4394-bee0-08ae8d78b025"
    assert rule.techniques == []
    assert rule.extra["atlas_techniques"] == ["AML.T0051"]
    assert rule.warnings == []


def test_invalid_escape_reports_line() -> None:
    text = (BAD / "elastic_invalid_escape.toml").read_text(encoding="utf-8")

    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "rules/windows/escaped_colon.toml", text))

    location = caught.value.location
    assert location is not None
    assert location.path == "rules/windows/escaped_colon.toml"
    assert location.line == 20
    assert location.column == 29
    assert caught.value.reason.startswith("invalid TOML: Unescaped '\\' in a string")


def test_folder_with_bad_file_parses() -> None:
    paths = [EQL_RULE, "rules/windows/escaped_colon.toml", ESQL_RULE]
    texts = {path: (ELASTIC / path).read_text(encoding="utf-8") for path in (EQL_RULE, ESQL_RULE)}
    texts[paths[1]] = (BAD / "elastic_invalid_escape.toml").read_text(encoding="utf-8")
    rules: list[Rule] = []
    errors: list[ParseError] = []

    for path in paths:
        try:
            parsed = parse(RuleFile(SOURCE, path, texts[path]))
        except ParseError as error:
            errors.append(error)
            continue
        rules.extend(parsed.rules)

    assert [rule.path for rule in rules] == [EQL_RULE, ESQL_RULE]
    assert len(errors) == 1
    assert errors[0].location is not None
    assert errors[0].location.path == paths[1]


def test_toml_error_at_end_has_line() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "rules/x.toml", "[rule]\nname = [1,\n"))

    assert caught.value.location is not None
    assert caught.value.location.line == 2


def test_missing_query_is_parse_error() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "rules/x.toml", '[rule]\nname = "No Query"\ntype = "query"\n'))

    assert caught.value.reason == "[rule] of type 'query' is missing the query field"


def test_file_without_rule_table_is_parse_error() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "rules/x.toml", "a = 1\n"))

    assert "no [rule] or [hunt] table" in caught.value.reason


def test_severity_inferred_from_risk_score() -> None:
    text = '[rule]\nname = "n"\nrule_id = "r"\nlanguage = "kuery"\nquery = "a:b"\nrisk_score = 73\n'

    rule = parse(RuleFile(SOURCE, "rules/x.toml", text)).rules[0]

    assert rule.severity == "high"
    assert rule.provenance["severity"].startswith("inferred: risk_score 73")


def test_unknown_threat_entries_warn() -> None:
    text = (
        '[rule]\nname = "n"\nrule_id = "r"\nlanguage = "eql"\nquery = "any where true"\n'
        '[[rule.threat]]\nframework = "MITRE ATT&CK"\n'
        '[rule.threat.tactic]\nid = "TA9999"\nname = "Nope"\n'
    )

    rule = parse(RuleFile(SOURCE, "rules/x.toml", text)).rules[0]

    assert rule.tactics == []
    assert rule.warnings == ["rule.threat entries not mapped to ATT&CK: tactic 'TA9999'"]


def test_non_text_hunting_query_is_error() -> None:
    text = (
        '[hunt]\nname = "h"\nuuid = "u"\nlanguage = ["ES|QL"]\n'
        'query = ["from logs-* | limit 1", 5]\n'
    )

    parsed = parse(RuleFile(SOURCE, "hunting/x/queries/h.toml", text))

    assert len(parsed.rules) == 1
    assert len(parsed.errors) == 1
    assert parsed.errors[0].reason == "[hunt] query 2 is empty or not a string"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("from logs-a-*, logs-b-* metadata _id\n| limit 1", ["logs-a-*", "logs-b-*"]),
        ("// comment\nFROM logs-c-*\n| where x", ["logs-c-*"]),
        ("from logs-d-*", ["logs-d-*"]),
        ("row a = 1", []),
    ],
)
def test_esql_source_indices(query: str, expected: list[str]) -> None:
    assert esql_source_indices(query) == expected


def test_rule_serializes_to_plain_data() -> None:
    rule = only_rule(ML_RULE)

    assert Rule.from_dict(rule.to_dict()) == rule


@pytest.mark.corpus
def test_elastic_corpus_parses(corpus: Path) -> None:
    root = corpus / SOURCE
    if not root.is_dir():
        pytest.skip(f"Elastic corpus not found at {root}")
    files = sorted({path for pattern in RULE_GLOBS for path in root.glob(pattern)})
    rules = 0
    reasons: Counter[str] = Counter()
    started = time.perf_counter()

    for path in files:
        relative = path.relative_to(root).as_posix()
        text = decode_rule_bytes(path.read_bytes(), SOURCE, relative)
        try:
            parsed = parse(RuleFile(SOURCE, relative, text))
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
        f"\nelastic corpus: files={len(files)} rules={rules} errors={reasons.total()} "
        f"seconds={elapsed:.1f} top errors={reasons.most_common(5)}"
    )
    assert len(files) > 2000
    assert rules >= len(files) - reasons.total()
