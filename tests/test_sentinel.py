"""Tests for the Sentinel YAML parser: real rules, repairs, bad inputs and the whole sample."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from socfeed.errors import ParseError
from socfeed.formats import get_format
from socfeed.formats.base import ParsedFile, RuleFile, decode_rule_bytes
from socfeed.formats.sentinel import FORMAT, parse
from socfeed.model import Rule

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SENTINEL = FIXTURES / "azure-sentinel"
BAD = FIXTURES / "bad"
SOURCE = "azure-sentinel"

PHISH = (
    "Hunting Queries/Microsoft 365 Defender/Email and Collaboration Queries/Quarantine/"
    "High Confidence Phish Released.yaml"
)
NOBELIUM = "Detections/MultipleDataSources/NOBELIUM_IOCsMay2021.yaml"
SPRAY = "Solutions/Microsoft Entra ID/Analytic Rules/SigninPasswordSpray.yaml"
FIRST_CREDENTIAL = (
    "Solutions/Microsoft Entra ID/Analytic Rules/nrt_FirstAppOrServicePrincipalCredential.yaml"
)
XDR = "Solutions/Windows Security Events/XDR Detections/ExcessiveLogonFailures.yaml"
FORTINET = "Detections/CommonSecurityLog/Fortinet-NetworkBeaconPattern.yaml"
KNOTWEED = (
    "Hunting Queries/Microsoft 365 Defender/Campaigns/KNOTWEED/"
    "KNOTWEED-COMRegistryKeyModifiedtoPointtoColorProfileFolder.yaml"
)
APT29 = "Hunting Queries/Microsoft 365 Defender/Campaigns/APT29 thinktanks (0).yaml"
WMI = "Solutions/Windows Security Events/Analytic Rules/WMI-Abuse.yaml"
FORWARDED = (
    "Solutions/Microsoft 365/Hunting Queries/MultipleUsersEmailForwardedToSameDestination.yaml"
)
MINERS = "Detections/ASimDNS/imDNS_Miners.yaml"
MACAW = (
    "Hunting Queries/Microsoft 365 Defender/Campaigns/Macaw Ransomware/"
    "Mass account password change.yaml"
)
STUB = "Detections/SigninLogs/NRT_MFARejectedbyUser.yaml"


def parse_fixture(path: str) -> ParsedFile:
    text = decode_rule_bytes((SENTINEL / path).read_bytes(), SOURCE, path)
    return parse(RuleFile(SOURCE, path, text))


def parse_bad(name: str, path: str = "Detections/Test/test.yaml") -> ParsedFile:
    text = decode_rule_bytes((BAD / name).read_bytes(), SOURCE, path)
    return parse(RuleFile(SOURCE, path, text))


def only_rule(parsed: ParsedFile) -> Rule:
    assert parsed.errors == []
    assert len(parsed.rules) == 1
    return parsed.rules[0]


def table_names(rule: Rule) -> list[str]:
    return [source.name for source in rule.data_sources if source.kind != "connector"]


def test_registry_returns_sentinel_format() -> None:
    assert get_format("sentinel") is FORMAT
    assert FORMAT.name == "sentinel"


# -- fields ------------------------------------------------------------------------------


def test_hunting_query_fields() -> None:
    rule = only_rule(parse_fixture(PHISH))

    assert rule.rule_id == "9e8faa62-7222-48a5-a78f-ef2d22f866dc"
    assert rule.title == "High Confidence Phish Released"
    assert rule.kind == "hunting"
    assert rule.language == "kql"
    assert rule.format == "sentinel"
    assert rule.tactics == ["Initial Access"]
    assert rule.techniques == ["T1566"]
    assert rule.severity is None
    assert rule.query.startswith("CloudAppEvents")
    assert rule.raw_text.startswith("id: ")
    assert rule.warnings == []


def test_hunting_kind_comes_from_path() -> None:
    rule = only_rule(parse_fixture(PHISH))

    assert rule.provenance["kind"] == "derived: the path has a 'Hunting Queries' folder"


def test_hunting_query_keeps_detailed_description() -> None:
    rule = only_rule(parse_fixture(PHISH))

    assert "description-detailed" in rule.extra


def test_analytic_rule_fields() -> None:
    rule = only_rule(parse_fixture(SPRAY))

    assert rule.kind == "detection"
    assert rule.severity == "medium"
    assert rule.status == "Available"
    assert rule.tactics == ["Credential Access"]
    assert rule.techniques == ["T1110"]
    assert rule.extra["queryFrequency"] == "1d"
    assert rule.extra["queryPeriod"] == "7d"
    assert rule.extra["triggerOperator"] == "gt"
    assert rule.extra["triggerThreshold"] == 0
    assert rule.extra["kind"] == "Scheduled"
    assert rule.extra["entityMappings"][0]["entityType"] == "IP"


def test_derived_fields_have_provenance() -> None:
    rule = only_rule(parse_fixture(SPRAY))

    assert rule.provenance["severity"] == "derived: 'Medium' lower-cased"
    assert rule.provenance["language"].startswith("derived:")
    assert rule.provenance["tactics"].startswith("derived:")
    assert rule.provenance["data_sources"].startswith("derived:")
    assert rule.provenance["description"] == "derived: the surrounding single quotes removed"
    assert "title" not in rule.provenance
    assert "rule_id" not in rule.provenance


def test_description_loses_wrapping_quotes() -> None:
    rule = only_rule(parse_fixture(SPRAY))

    assert rule.description.startswith("Identifies evidence of password spray activity")
    assert not rule.description.endswith("'")


def test_references_come_from_description_urls() -> None:
    rule = only_rule(parse_fixture(NOBELIUM))

    assert rule.references == [
        "https://www.microsoft.com/security/blog/2021/05/27/new-sophisticated-email-based-attack-from-nobelium/"
    ]
    assert rule.provenance["references"] == "derived: the URLs written in the description"


def test_tables_through_function_parameter() -> None:
    rule = only_rule(parse_fixture(SPRAY))

    assert table_names(rule) == ["SigninLogs", "AADNonInteractiveUserSignInLogs"]


def test_table_notes_name_required_connector() -> None:
    rule = only_rule(parse_fixture(SPRAY))
    signin = rule.data_sources[0]

    assert signin.kind == "table"
    assert signin.details["connectors"] == ["AzureActiveDirectory"]
    assert "AzureActiveDirectory" in signin.note


def test_connectors_become_data_sources() -> None:
    rule = only_rule(parse_fixture(SPRAY))
    connectors = [source for source in rule.data_sources if source.kind == "connector"]

    assert [source.name for source in connectors] == ["AzureActiveDirectory"]
    assert connectors[0].origin == "source: requiredDataConnectors"
    assert connectors[0].details["data_types"] == [
        "SigninLogs",
        "AADNonInteractiveUserSignInLogs",
    ]


def test_lowercase_datatypes_key_is_read() -> None:
    rule = only_rule(parse_fixture(NOBELIUM))
    connectors = {entry["connectorId"]: entry for entry in rule.extra["requiredDataConnectors"]}

    assert connectors["AWSS3"]["dataTypes"] == ["AWSVPCFlow"]


def test_many_connectors_for_one_table() -> None:
    rule = only_rule(parse_fixture(NOBELIUM))
    common = next(source for source in rule.data_sources if source.name == "CommonSecurityLog")

    assert common.details["connectors"] == [
        "F5",
        "CiscoASA",
        "PaloAltoNetworks",
        "Fortinet",
        "CheckPoint",
        "CEF",
        "Zscaler",
    ]


def test_asim_parsers_and_externaldata() -> None:
    rule = only_rule(parse_fixture(NOBELIUM))
    kinds = {source.name: source.kind for source in rule.data_sources}

    assert kinds["_Im_Dns"] == "asim_parser"
    assert kinds["_Im_WebSession"] == "asim_parser"
    assert kinds["imFileEvent"] == "asim_parser"
    assert kinds["VMConnection"] == "table"
    assert rule.extra["externaldata_urls"] == [
        "https://raw.githubusercontent.com/microsoft/mstic/master/Indicators/May21-NOBELIUM/"
        "May21NOBELIUMIoCs.csv"
    ]


def test_structured_tags_go_to_extra() -> None:
    rule = only_rule(parse_fixture(NOBELIUM))

    assert rule.tags == ["NOBELIUM"]
    assert rule.extra["tag_objects"] == [{"Schema": "ASIMFileEvent", "SchemaVersion": "0.1.0"}]


def test_asim_rule_without_connectors() -> None:
    rule = only_rule(parse_fixture(MINERS))

    assert table_names(rule) == ["imDns"]
    assert rule.data_sources[0].kind == "asim_parser"
    assert rule.extra["requiredDataConnectors"] == []


def test_malformed_metadata_gives_warning() -> None:
    rule = only_rule(parse_fixture(FIRST_CREDENTIAL))

    assert len(rule.warnings) == 1
    assert "metadata block is empty" in rule.warnings[0]
    assert "line 80" in rule.warnings[0]


def test_malformed_metadata_is_read_from_top_level() -> None:
    rule = only_rule(parse_fixture(FIRST_CREDENTIAL))

    assert rule.author == "Samik Roy"
    assert rule.extra["metadata"]["support"] == {"tier": "Community"}
    assert "author" not in rule.extra
    assert rule.provenance["author"].startswith("derived:")


def test_renamed_tactic_maps_to_stealth() -> None:
    rule = only_rule(parse_fixture(FIRST_CREDENTIAL))

    assert rule.tactics == ["Stealth"]
    assert rule.techniques == ["T1550.001"]


def test_empty_tactics_and_technique_item_are_skipped() -> None:
    rule = only_rule(parse_fixture(KNOTWEED))

    assert rule.tactics == []
    assert rule.techniques == []
    assert rule.warnings == []
    assert table_names(rule) == ["DeviceRegistryEvents"]


def test_unknown_tactic_is_kept_in_extra() -> None:
    rule = only_rule(parse_fixture(MACAW))

    assert rule.tactics == []
    assert rule.extra["unmapped_tactics"] == ["Ransomware"]
    assert rule.warnings == ["tactic 'Ransomware' names no ATT&CK tactic; kept in extra"]


def test_double_quoted_query_keeps_line_breaks() -> None:
    rule = only_rule(parse_fixture(APT29))

    assert rule.query.startswith("DeviceProcessEvents \r\n| where Timestamp > ago(7d)")
    assert table_names(rule) == ["DeviceProcessEvents"]


def test_crlf_file_parses() -> None:
    rule = only_rule(parse_fixture(WMI))

    assert b"\r\n" in (SENTINEL / WMI).read_bytes()
    assert rule.techniques == ["T1047", "T1021.006", "T1059.001", "T1059.003", "T1059.005"]
    assert table_names(rule) == ["DeviceProcessEvents", "SecurityEvent"]


def test_hunting_query_drops_analytic_fields() -> None:
    rule = only_rule(parse_fixture(FORWARDED))

    assert rule.kind == "hunting"
    assert "queryFrequency" not in rule.extra
    assert "kind" not in rule.extra
    assert len(rule.warnings) == 1
    assert rule.warnings[0].startswith("a hunting query carries analytic-rule fields")


# -- odd files ---------------------------------------------------------------------------


def test_migration_stub_raises_no_query() -> None:
    with pytest.raises(ParseError) as caught:
        parse_fixture(STUB)

    assert caught.value.reason.startswith("no query: the file is a content-migration stub")
    assert "NRT_MFARejectedbyUser.yaml" in caught.value.reason
    assert caught.value.location is not None
    assert caught.value.location.line == 1


def test_xdr_custom_detection_parses() -> None:
    rule = only_rule(parse_fixture(XDR))

    assert rule.rule_id == "xdr-excessive-windows-logon-failures-2391ce61"
    assert rule.title == "Excessive Windows Logon Failures"
    assert rule.severity == "low"
    assert rule.status == "disabled"
    assert rule.tactics == ["Credential Access"]
    assert rule.techniques == ["T1110"]
    assert rule.description.startswith("This query identifies user accounts")
    assert rule.extra["kind"] == "CustomDetection"
    assert rule.extra["schedule"] == {"frequency": "P1D"}
    assert table_names(rule) == ["SecurityEvent"]


def test_xdr_custom_detection_without_query_raises() -> None:
    with pytest.raises(ParseError) as caught:
        parse_bad("sentinel_xdr_without_query.yaml")

    assert caught.value.reason == (
        "no query: this Defender XDR custom detection has no properties.queryCondition.queryText"
    )


def test_unindented_query_block_is_recovered() -> None:
    rule = only_rule(parse_fixture(FORTINET))

    assert rule.warnings == [
        "the query block scalar at line 25 is not indented; read lines 26 to 73 as the query"
    ]
    assert rule.query.startswith("let starttime = 1d;")
    assert rule.query.endswith("IPCustomEntity = DestinationIP")
    assert table_names(rule) == ["CommonSecurityLog"]


def test_not_yaml_raises_with_line_and_column() -> None:
    with pytest.raises(ParseError) as caught:
        parse_bad("sentinel_not_yaml.yaml")

    assert caught.value.reason.startswith("invalid YAML:")
    assert caught.value.location is not None
    assert caught.value.location.line == 4
    assert caught.value.location.column == 6


def test_yaml_list_is_not_a_rule() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "Detections/x.yaml", "- a\n- b\n"))

    assert caught.value.reason == "no query: the YAML document is a list, not a Sentinel rule"


def test_missing_query_names_the_keys() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "Detections/x.yaml", "id: 1\nname: x\n"))

    assert caught.value.reason == "no query: the file has no 'query' field (its keys are id, name)"


def test_empty_file_raises() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "Detections/x.yaml", "\n"))

    assert caught.value.reason == "no query: the file is empty (it contains no YAML document)"


def test_rule_without_id_and_name_gets_derived_ones() -> None:
    rule = only_rule(parse(RuleFile(SOURCE, "Detections/Odd/no_id.yaml", "query: Syslog\n")))

    assert rule.title == "no_id"
    assert len(rule.rule_id) == 36
    assert rule.provenance["rule_id"].startswith("derived:")
    assert rule.provenance["title"].startswith("derived:")
    assert len(rule.warnings) == 2


def test_unknown_severity_gives_warning() -> None:
    text = "id: x\nname: y\nseverity: Severe\nquery: Syslog\n"
    rule = only_rule(parse(RuleFile(SOURCE, "Detections/x.yaml", text)))

    assert rule.severity is None
    assert rule.extra["severity"] == "Severe"
    assert rule.warnings[0].startswith("severity 'Severe' is not one of")


# -- bad inputs that must come out right -------------------------------------------------


def test_tab_after_dash_is_recovered() -> None:
    rule = only_rule(parse_bad("sentinel_tab_in_techniques.yaml"))

    assert rule.techniques == ["T1212"]
    assert len(rule.warnings) == 1
    assert "line:column 18:4" in rule.warnings[0]


def test_tab_inside_query_block_is_kept() -> None:
    rule = only_rule(parse_bad("sentinel_tab_in_techniques.yaml"))

    assert '| extend Separator = "before\tafter"' in rule.query


def test_same_id_in_two_files_parses_twice() -> None:
    first = only_rule(parse_bad("sentinel_duplicate_id_a.yaml", "Detections/A/a.yaml"))
    second = only_rule(parse_bad("sentinel_duplicate_id_b.yaml", "Detections/B/b.yaml"))

    assert first.rule_id == "7d0e4b52-91a3-4c6f-b8e2-5a1f3c9d2e77"
    assert second.rule_id == "7d0e4b52-91a3-4c6f-b8e2-5a1f3c9d2e77"
    assert first.title == "Mailbox export request created"
    assert second.title == "Mailbox export request removed"


def test_unicode_name_and_query_survive_bom() -> None:
    data = (BAD / "sentinel_unicode_bom.yaml").read_bytes()
    text = decode_rule_bytes(data, SOURCE, "Detections/x.yaml")
    rule = only_rule(parse(RuleFile(SOURCE, "Detections/x.yaml", text)))

    assert data.startswith(b"\xef\xbb\xbf")
    assert rule.rule_id == "9a5c3e17-6f2b-4d80-a4c9-1e7b5d2f8c63"
    assert rule.title == "“Connexion refusée” — échec répété pour l’utilisateur Алиса"
    assert '| where UserDisplayName == "Алиса Иванова"' in rule.query
    assert '| where Status has “Connexion refusée” or ResultDescription has "échec"' in rule.query
    assert rule.techniques == ["T1110.001"]


def test_rule_serializes_to_plain_data() -> None:
    rule = only_rule(parse_fixture(NOBELIUM))

    assert Rule.from_dict(rule.to_dict()) == rule


# -- the real sample -----------------------------------------------------------------------


@pytest.mark.corpus
def test_sentinel_corpus_parses(corpus: Path) -> None:
    root = corpus / SOURCE
    if not root.is_dir():
        pytest.skip(f"Sentinel sample not found at {root}")
    files = sorted(path for path in root.rglob("*") if path.suffix.lower() in (".yaml", ".yml"))
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
            reasons[error.reason[:60]] += 1
        rules += len(parsed.rules)

    elapsed = time.perf_counter() - started
    print(
        f"\nazure-sentinel: files={len(files)} rules={rules} errors={reasons.total()} "
        f"seconds={elapsed:.2f} top errors={reasons.most_common(3)}"
    )
    assert len(files) == 50
    assert rules == 48
    assert reasons.total() == 2
