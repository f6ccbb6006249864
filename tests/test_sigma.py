"""Tests for the Sigma parser: real rules, collections, bad inputs and the whole corpus."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from socfeed.errors import ParseError
from socfeed.formats import get_format
from socfeed.formats.base import ParsedFile, RuleFile, decode_rule_bytes
from socfeed.formats.sigma import parse
from socfeed.model import Rule

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SIGMA = FIXTURES / "sigma"
BAD = FIXTURES / "bad"
SOURCE = "sigma"
RULE_GLOBS = ("rules*/**/*.yml", "deprecated/**/*.yml")


def parse_fixture(path: str) -> ParsedFile:
    return parse(RuleFile(SOURCE, path, (SIGMA / path).read_text(encoding="utf-8")))


def parse_bad(name: str, path: str = "rules/windows/test.yml") -> ParsedFile:
    return parse(RuleFile(SOURCE, path, (BAD / name).read_text(encoding="utf-8")))


def only_rule(parsed: ParsedFile) -> Rule:
    assert parsed.errors == []
    assert len(parsed.rules) == 1
    return parsed.rules[0]


def test_registry_returns_sigma_format() -> None:
    assert get_format("sigma").name == "sigma"


def test_process_creation_rule_fields() -> None:
    rule = only_rule(
        parse_fixture(
            "rules/windows/process_creation/proc_creation_win_whoami_groups_discovery.yml"
        )
    )

    assert rule.rule_id == "bd8b828d-0dca-48e1-8a63-8a58ecf2644f"
    assert rule.title == "Group Membership Reconnaissance Via Whoami.EXE"
    assert rule.format == "sigma"
    assert rule.language == "sigma"
    assert rule.kind == "detection"
    assert rule.status == "test"
    assert rule.severity == "medium"
    assert rule.created == "2023-02-28"
    assert rule.modified is None
    assert rule.author == "Nasreddine Bencherchali (Nextron Systems)"
    assert rule.tactics == ["Discovery"]
    assert rule.techniques == ["T1033"]
    assert rule.tags == ["attack.discovery", "attack.t1033"]
    assert rule.false_positives == ["Unknown"]
    assert rule.references == [
        "https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/whoami"
    ]
    assert rule.warnings == []
    assert rule.line == 1


def test_query_is_detection_yaml_in_file_order() -> None:
    rule = only_rule(
        parse_fixture(
            "rules/windows/process_creation/proc_creation_win_whoami_groups_discovery.yml"
        )
    )

    assert rule.query.splitlines()[0] == "selection_img:"
    assert rule.query.splitlines()[-1] == "condition: all of selection_*"
    assert "- ' /groups'" in rule.query


def test_logsource_becomes_data_source_and_extra() -> None:
    rule = only_rule(
        parse_fixture(
            "rules/windows/process_creation/proc_creation_win_whoami_groups_discovery.yml"
        )
    )

    assert len(rule.data_sources) == 1
    source = rule.data_sources[0]
    assert source.kind == "logsource"
    assert source.name == "windows/process_creation"
    assert source.details == {"product": "windows", "category": "process_creation"}
    assert rule.extra["logsource"] == {"category": "process_creation", "product": "windows"}


def test_logsource_service_and_definition() -> None:
    rule = only_rule(
        parse_fixture(
            "rules-placeholder/windows/builtin/security/win_security_potential_pass_the_hash.yml"
        )
    )

    source = rule.data_sources[0]
    assert source.name == "windows/security"
    assert source.details == {"product": "windows", "service": "security"}
    assert source.note.startswith("The successful use of PtH")


def test_provenance_covers_derived_fields() -> None:
    rule = only_rule(
        parse_fixture(
            "rules/windows/process_creation/proc_creation_win_whoami_groups_discovery.yml"
        )
    )

    for name in ("kind", "query", "language", "tactics", "techniques"):
        assert rule.provenance[name].startswith("derived: "), name
    assert "rule_id" not in rule.provenance


def test_group_and_car_tags_no_warning() -> None:
    rule = only_rule(parse_fixture("rules/windows/builtin/win_alert_mimikatz_keywords.yml"))

    assert rule.warnings == []
    assert "attack.s0002" in rule.tags
    assert "car.2013-07-001" in rule.tags
    assert rule.tactics == ["Credential Access", "Lateral Movement"]
    assert rule.techniques == ["T1003.002", "T1003.004", "T1003.001", "T1003.006"]


def test_emerging_threat_tags_keep_cve() -> None:
    rule = only_rule(
        parse_fixture(
            "rules-emerging-threats/2019/Exploits/CVE-2019-1378/"
            "proc_creation_win_exploit_cve_2019_1378.yml"
        )
    )

    assert "cve.2019-1378" in rule.tags
    assert "detection.emerging-threats" in rule.tags
    assert rule.warnings == []
    assert rule.tactics == ["Execution", "Persistence", "Privilege Escalation", "Stealth"]


def test_threat_hunting_folder_gives_hunting_kind() -> None:
    rule = only_rule(
        parse_fixture(
            "rules-threat-hunting/web/proxy_generic/proxy_susp_class_extension_request.yml"
        )
    )

    assert rule.kind == "hunting"
    assert rule.provenance["kind"] == "derived: the file is under rules-threat-hunting/"
    assert rule.data_sources[0].name == "proxy"


def test_aggregation_rule_kept_with_warning() -> None:
    rule = only_rule(parse_fixture("deprecated/other/generic_brute_force.yml"))

    assert rule.status == "deprecated"
    assert rule.created == "2019-10-25"
    assert rule.modified == "2022-11-04"
    assert rule.tactics == ["Credential Access"]
    assert any("aggregation syntax" in warning for warning in rule.warnings)
    assert any("'2019/10/25' is not written as YYYY-MM-DD" in w for w in rule.warnings)


def test_deprecated_folder_status_mismatch_warns() -> None:
    rule = only_rule(
        parse_fixture("deprecated/windows/proc_creation_win_lolbas_execution_of_wuauclt.yml")
    )

    assert rule.status == "experimental"
    assert "the file is under deprecated/ but its status is 'experimental'" in rule.warnings


def test_deprecated_folder_sets_status() -> None:
    text = (SIGMA / "deprecated/other/generic_brute_force.yml").read_text(encoding="utf-8")
    text = text.replace("status: deprecated\n", "")

    rule = only_rule(parse(RuleFile(SOURCE, "deprecated/other/no_status.yml", text)))

    assert rule.status == "deprecated"
    assert rule.provenance["status"] == "derived: the file is under deprecated/"


def test_trailing_separator_gives_one_rule() -> None:
    parsed = parse_bad("sigma_trailing_separator.yml")

    assert parsed.errors == []
    assert [rule.title for rule in parsed.rules] == ["Whoami Execution From a Command Shell"]


def test_two_documents_give_two_rules() -> None:
    parsed = parse_bad("sigma_two_rules.yml")

    assert parsed.errors == []
    assert [rule.title for rule in parsed.rules] == [
        "Certutil Download To Disk",
        "Bitsadmin Download To Disk",
    ]
    assert [rule.rule_id for rule in parsed.rules] == [
        "0f2d7f4e-1c3b-4f3a-8d2e-5b6c7d8e9f01",
        "1a3e8f5d-2d4c-4a4b-9e3f-6c7d8e9f0a12",
    ]
    assert [rule.query_index for rule in parsed.rules] == [0, 1]
    assert [rule.line for rule in parsed.rules] == [1, 22]


def test_two_documents_keep_own_raw_text() -> None:
    first, second = parse_bad("sigma_two_rules.yml").rules

    assert first.raw_text.startswith("title: Certutil Download To Disk")
    assert "Bitsadmin" not in first.raw_text
    assert second.raw_text.startswith("title: Bitsadmin Download To Disk")


def test_list_collection_repeats_inherit_global() -> None:
    parsed = parse_bad("sigma_collection_list.yml")

    assert parsed.errors == []
    assert len(parsed.rules) == 2
    windows, linux = parsed.rules
    assert windows.title == "Netcat Listener Started"
    assert linux.title == "Netcat Listener Started"
    assert windows.rule_id == "2b4f9a6e-3e5d-4b5c-8f4a-7d8e9f0a1b23"
    assert linux.rule_id == "3c5a0b7f-4f6e-4c6d-9a5b-8e9f0a1b2c34"
    assert [source.name for source in windows.data_sources] == ["windows/process_creation"]
    assert [source.name for source in linux.data_sources] == ["linux/process_creation"]
    assert linux.severity == "high"
    assert linux.techniques == ["T1095"]
    assert "CommandLine|contains: ' -l'" in linux.query
    assert [windows.line, linux.line] == [15, 20]


def test_document_collection_global_and_reset() -> None:
    text = (
        "action: global\n"
        "title: Shared Title\n"
        "status: test\n"
        "logsource:\n"
        "    product: windows\n"
        "detection:\n"
        "    selection:\n"
        "        Image|endswith: '\\\\net.exe'\n"
        "    condition: selection\n"
        "---\n"
        "logsource:\n"
        "    category: process_creation\n"
        "---\n"
        "action: reset\n"
        "---\n"
        "title: Own Title\n"
        "logsource:\n"
        "    product: linux\n"
        "detection:\n"
        "    selection:\n"
        "        Image|endswith: '/nc'\n"
        "    condition: selection\n"
    )

    parsed = parse(RuleFile(SOURCE, "rules/windows/collection.yml", text))

    assert parsed.errors == []
    merged, independent = parsed.rules
    assert merged.title == "Shared Title"
    assert merged.data_sources[0].name == "windows/process_creation"
    assert independent.title == "Own Title"
    assert independent.status is None


def test_global_fields_win_over_document() -> None:
    text = (
        "action: global\nlevel: high\nlogsource: {product: windows}\n---\n"
        "title: Own Level\nlevel: low\nlogsource: {category: process_creation}\n"
        "detection: {selection: {Image|endswith: '\\\\at.exe'}, condition: selection}\n"
    )

    rule = only_rule(parse(RuleFile(SOURCE, "rules/windows/precedence.yml", text)))

    assert rule.severity == "high"
    assert rule.data_sources[0].name == "windows/process_creation"


def test_unknown_action_is_located_error() -> None:
    parsed = parse_bad("sigma_unknown_action.yml")

    assert parsed.rules == []
    assert len(parsed.errors) == 1
    error = parsed.errors[0]
    assert error.reason == (
        "unknown Sigma collection action 'replace'; expected global, reset or repeat"
    )
    assert error.location is not None
    assert error.location.line == 15


def test_unknown_action_keeps_other_rules() -> None:
    good = (BAD / "sigma_trailing_separator.yml").read_text(encoding="utf-8")
    text = good + "action: merge\ntitle: x\n"

    parsed = parse(RuleFile(SOURCE, "rules/windows/mixed.yml", text))

    assert len(parsed.rules) == 1
    assert len(parsed.errors) == 1
    assert "'merge'" in parsed.errors[0].reason


def test_slash_dates_read_as_iso() -> None:
    rule = only_rule(parse_bad("sigma_slash_dates.yml"))

    assert rule.created == "2023-03-14"
    assert rule.modified == "2023-03-05"
    assert rule.provenance["created"] == "derived: date '03/14/2023' read as 2023-03-14"
    assert rule.provenance["modified"] == "derived: modified '2023/3/5' read as 2023-03-05"
    assert len(rule.warnings) == 2


def test_ambiguous_date_left_empty() -> None:
    text = (BAD / "sigma_slash_dates.yml").read_text(encoding="utf-8")
    text = text.replace("date: 03/14/2023", "date: 03/04/2023")

    rule = only_rule(parse(RuleFile(SOURCE, "rules/windows/ambiguous.yml", text)))

    assert rule.created is None
    assert "created" not in rule.provenance
    assert any("'03/04/2023' is ambiguous" in warning for warning in rule.warnings)


def test_attack_tags_map_and_warn() -> None:
    rule = only_rule(parse_bad("sigma_attack_tags.yml"))

    assert rule.techniques == ["T1059.001"]
    assert rule.tactics == ["Execution"]
    assert "t1059" in rule.tags
    assert "attack.tt1482" in rule.tags
    assert len(rule.warnings) == 1
    assert "'t1059'" in rule.warnings[0]
    assert "'attack.tt1482'" in rule.warnings[0]


def test_old_tactic_name_maps_to_stealth() -> None:
    text = (BAD / "sigma_attack_tags.yml").read_text(encoding="utf-8")
    text = text.replace("attack.execution", "attack.defense_evasion")

    rule = only_rule(parse(RuleFile(SOURCE, "rules/windows/old.yml", text)))

    assert rule.tactics == ["Stealth"]


@pytest.mark.parametrize(
    ("detection", "message"),
    [
        ("detection: [1, 2]", "Sigma detection must be a valid YAML map"),
        ("detection: {sel: {a|foo: c}, condition: sel}", "Unknown modifier 'foo'"),
        ("detection: {sel: {a: c}, condition: nope}", "Detection 'nope' not defined"),
        ("detection: {sel: {a: c}, condition: sel and}", "condition 'sel and'"),
    ],
)
def test_unusable_detection_is_parse_error(detection: str, message: str) -> None:
    text = f"title: Broken\nlogsource: {{product: windows}}\n{detection}\n"

    parsed = parse(RuleFile(SOURCE, "rules/windows/broken.yml", text))

    assert parsed.rules == []
    assert len(parsed.errors) == 1
    assert parsed.errors[0].reason.startswith("invalid Sigma rule: ")
    assert message in parsed.errors[0].reason
    assert parsed.errors[0].location is not None
    assert parsed.errors[0].location.line == 1


def test_missing_title_is_parse_error() -> None:
    text = "logsource: {product: windows}\ndetection: {sel: {a: c}, condition: sel}\n"

    parsed = parse(RuleFile(SOURCE, "rules/windows/untitled.yml", text))

    assert parsed.rules == []
    assert parsed.errors[0].reason == "invalid Sigma rule: Sigma rule must have a title"


def test_metadata_errors_become_warnings() -> None:
    text = (
        "title: Odd Metadata\nid: not-a-uuid\nstatus: wip\nlevel: severe\n"
        "logsource: {product: windows}\ndetection: {sel: {a: c}, condition: sel}\n"
    )

    rule = only_rule(parse(RuleFile(SOURCE, "rules/windows/odd.yml", text)))

    assert rule.rule_id == "not-a-uuid"
    assert rule.severity is None
    assert rule.status == "wip"
    assert "pySigma reports: Sigma rule identifier must be an UUID" in rule.warnings
    assert "pySigma reports: 'severe' is not a valid Sigma rule level" in rule.warnings


def test_missing_id_is_derived() -> None:
    text = "title: No Id\nlogsource: {product: windows}\ndetection: {s: {a: c}, condition: s}\n"

    rule = only_rule(parse(RuleFile(SOURCE, "rules/windows/no_id.yml", text)))

    assert len(rule.rule_id) == 36
    assert rule.provenance["rule_id"].startswith("derived: ")


def test_repeated_id_gets_derived_id() -> None:
    document = (
        "title: {title}\nid: 0f2d7f4e-1c3b-4f3a-8d2e-5b6c7d8e9f09\n"
        "logsource: {{product: windows}}\ndetection: {{s: {{a: c}}, condition: s}}\n"
    )
    text = document.format(title="One") + "---\n" + document.format(title="Two")

    parsed = parse(RuleFile(SOURCE, "rules/windows/same_id.yml", text))

    first, second = parsed.rules
    assert first.rule_id == "0f2d7f4e-1c3b-4f3a-8d2e-5b6c7d8e9f09"
    assert second.rule_id != first.rule_id
    assert second.warnings[0].startswith("id 0f2d7f4e-1c3b-4f3a-8d2e-5b6c7d8e9f09 is used")


def test_correlation_rule_is_parsed() -> None:
    text = (
        "title: Many Failed Logons\nid: 8b0e5a2c-9d1f-4e3a-8b7c-6d5e4f3a2b10\n"
        "correlation:\n    type: event_count\n    rules:\n        - failed_logon\n"
        "    group-by:\n        - TargetUserName\n    timespan: 1h\n"
        "    condition:\n        gte: 10\nlevel: high\n"
    )

    rule = only_rule(parse(RuleFile(SOURCE, "rules/windows/correlation.yml", text)))

    assert rule.query.startswith("type: event_count")
    assert rule.extra["correlation"]["timespan"] == "1h"
    assert rule.data_sources == []


def test_invalid_correlation_is_parse_error() -> None:
    text = "title: Broken Correlation\ncorrelation:\n    type: nope\n"

    parsed = parse(RuleFile(SOURCE, "rules/windows/correlation.yml", text))

    assert parsed.rules == []
    assert parsed.errors[0].reason.startswith("invalid Sigma rule: ")


def test_filter_document_is_reported() -> None:
    text = (
        "title: Exclude Admin Hosts\nlogsource: {product: windows}\n"
        "filter:\n    rules: [x]\n    selection: {Computer: admin01}\n"
        "    condition: not selection\n"
    )

    parsed = parse(RuleFile(SOURCE, "rules/windows/filter.yml", text))

    assert parsed.rules == []
    assert "Sigma filter" in parsed.errors[0].reason


def test_global_only_file_is_reported() -> None:
    text = "action: global\ntitle: Lonely Global\n"

    parsed = parse(RuleFile(SOURCE, "rules/windows/global.yml", text))

    assert parsed.rules == []
    assert len(parsed.errors) == 1


def test_invalid_yaml_raises_located_error() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile(SOURCE, "rules/windows/tab.yml", "title: a\n\tlogsource: x\n"))

    assert caught.value.location is not None
    assert caught.value.location.line == 2


def test_empty_file_raises() -> None:
    with pytest.raises(ParseError):
        parse(RuleFile(SOURCE, "rules/windows/empty.yml", ""))


def test_rule_serializes_to_plain_data() -> None:
    rule = only_rule(parse_fixture("deprecated/other/generic_brute_force.yml"))

    assert Rule.from_dict(rule.to_dict()) == rule


@pytest.mark.corpus
def test_sigma_corpus_parses(corpus: Path) -> None:
    root = corpus / SOURCE
    if not root.is_dir():
        pytest.skip(f"Sigma corpus not found at {root}")
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
        f"\nsigma corpus: files={len(files)} rules={rules} errors={reasons.total()} "
        f"seconds={elapsed:.1f} top errors={reasons.most_common(5)}"
    )
    assert len(files) > 3000
    assert rules >= len(files) - reasons.total()
