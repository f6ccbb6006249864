"""Tests for KQL in Markdown and plain query files: real pages, splitting, bad inputs, corpora."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from socfeed.errors import ParseError
from socfeed.formats import get_format
from socfeed.formats.base import ParsedFile, RuleFile, decode_rule_bytes
from socfeed.formats.kql_markdown import FORMAT, parse
from socfeed.kql.markdown import parse_markdown
from socfeed.kql.queries import looks_like_kql, split_queries
from socfeed.model import Rule, derive_rule_id

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BAD = FIXTURES / "bad"
M365 = "m365-hunting-queries"
REPRISE = "sentinel-queries-reprise99"
FALCON = "falconfriday"
BERTJANP = "bertjanp"
MARKDOWN_CORPORA = (M365, REPRISE, FALCON)


def parse_fixture(source: str, path: str) -> ParsedFile:
    text = decode_rule_bytes((FIXTURES / source / path).read_bytes(), source, path)
    return parse(RuleFile(source, path, text))


def parse_bad(name: str) -> ParsedFile:
    text = decode_rule_bytes((BAD / name).read_bytes(), "bad", name)
    return parse(RuleFile("bad", name, text))


def only_rule(parsed: ParsedFile) -> Rule:
    assert parsed.errors == []
    assert len(parsed.rules) == 1
    return parsed.rules[0]


def test_registry_returns_kql_markdown_format() -> None:
    assert get_format("kql-markdown") is FORMAT
    assert FORMAT.name == "kql-markdown"


# -- Microsoft 365 Defender hunting queries ------------------------------------------------


def test_m365_page_fields() -> None:
    rule = only_rule(parse_fixture(M365, "Execution/detect-suspicious-mshta-usage.md"))

    assert rule.title == "Detect suspicious Mshta usage"
    assert rule.kind == "hunting"
    assert rule.language == "kql"
    assert rule.format == "kql-markdown"
    assert rule.author == "Microsoft Threat Protection team"
    assert rule.tactics == ["Execution"]
    assert rule.techniques == ["T1170"]
    assert rule.tables() == ["DeviceProcessEvents"]
    assert rule.line == 14
    assert rule.query.startswith("// mshta.exe script launching processes\nDeviceProcessEvents")
    assert rule.description.startswith("This query was originally published")
    assert rule.description.endswith("which might include illegitimate usage by attackers.")


def test_m365_page_provenance() -> None:
    rule = only_rule(parse_fixture(M365, "Execution/detect-suspicious-mshta-usage.md"))

    assert rule.provenance["title"] == "derived: the first heading"
    assert rule.provenance["description"] == "derived: the text before the query"
    assert rule.provenance["language"] == "derived: a code block marked 'Kusto'"
    assert rule.provenance["tactics"] == "derived: an ATT&CK table"
    assert rule.provenance["techniques"] == "derived: ATT&CK ids and links in the text"
    assert rule.provenance["kind"].startswith("inferred:")
    assert rule.provenance["rule_id"].startswith("derived:")


def test_rule_id_is_derived_from_path_and_index() -> None:
    path = "Execution/detect-suspicious-mshta-usage.md"
    rule = only_rule(parse_fixture(M365, path))

    assert rule.rule_id == derive_rule_id(M365, path, 0)


def test_unfenced_query_is_read_under_query_heading() -> None:
    path = "Initial access/identify-potential-missed-phishing-email-campaigns.md"
    rule = only_rule(parse_fixture(M365, path))

    assert rule.query.startswith("EmailEvents\n| where SenderFromDomain")
    assert rule.tables() == ["EmailEvents"]
    assert rule.line == 10
    assert rule.tactics == ["Initial Access"]
    assert rule.author == "Milad Aslaner"
    assert rule.warnings == [
        "the query is not in a fenced code block; it was read from the text under the heading "
        "'Query'"
    ]


def test_fence_with_five_queries_gives_five_rules() -> None:
    path = "Campaigns/detect-cyzfc-activity.md"
    parsed = parse_fixture(M365, path)
    titles = [rule.title for rule in parsed.rules]

    assert len(parsed.rules) == 5
    assert titles[0] == "Detect activity associated with malicious DLL, cyzfc.dat (query 1 of 5)"
    assert titles[4].endswith("(query 5 of 5)")
    assert [rule.query_index for rule in parsed.rules] == [0, 1, 2, 3, 4]
    assert [rule.rule_id for rule in parsed.rules] == [
        derive_rule_id(M365, path, index) for index in range(5)
    ]
    assert [rule.line for rule in parsed.rules] == [16, 23, 28, 34, 40]


def test_query_comment_describes_its_query() -> None:
    parsed = parse_fixture(M365, "Campaigns/detect-cyzfc-activity.md")

    assert parsed.rules[1].description.endswith("Query 2: C2 connection")
    assert parsed.rules[1].tables() == ["DeviceNetworkEvents"]
    assert parsed.rules[0].tables()[:2] == ["DeviceFileEvents", "DeviceProcessEvents"]


def test_zero_width_space_before_query() -> None:
    rule = only_rule(parse_fixture(M365, "Credential Access/wdigest-caching.md"))

    assert rule.tables() == ["DeviceRegistryEvents", "DeviceProcessEvents"]


def test_txt_file_with_two_queries() -> None:
    parsed = parse_fixture(M365, "Campaigns/apt unidentified nov 18.txt")
    first, second = parsed.rules

    assert first.title == "apt unidentified nov 18 (query 1 of 2)"
    assert (
        first.provenance["title"] == "derived: the file name, with the query's position in the file"
    )
    assert first.description.startswith("Original Sigma Rule: https://github.com/Neo23x0/sigma")
    assert first.tables() == ["DeviceProcessEvents"]
    assert second.tables() == ["DeviceFileEvents"]
    assert second.line == 8


def test_readme_without_kql_raises() -> None:
    with pytest.raises(ParseError) as caught:
        parse_fixture(M365, "Protection events/README.md")

    assert caught.value.reason == "no KQL query found: this README contains no KQL code block"
    assert caught.value.location is not None
    assert caught.value.location.path == "Protection events/README.md"


# -- reprise99 .kql files --------------------------------------------------------------------


def test_kql_file_leading_comments_are_description() -> None:
    rule = only_rule(parse_fixture(REPRISE, "Heartbeat/Heartbeat-NoHeartbeatinTimeframe.kql"))

    assert rule.title == "Heartbeat-NoHeartbeatinTimeframe"
    assert rule.description.startswith("Finds computers that haven't sent a heartbeat")
    assert rule.provenance["description"] == "derived: the leading // comments of the file"
    assert rule.query.startswith("Heartbeat\n| where TimeGenerated > ago(365d)")
    assert rule.extra["fields"]["Data connector"].startswith("Heartbeat (created automatically")
    assert rule.tables() == ["Heartbeat"]


def test_blank_lines_inside_let_statements_do_not_split() -> None:
    parsed = parse_fixture(REPRISE, "Azure Active Directory/Identity-DeviceCodePhishing.kql")
    first, second, third = parsed.rules

    assert len(parsed.rules) == 3
    assert first.query.startswith("let suspiciousids=\nSigninLogs")
    assert first.query.endswith(
        "| project TimeGenerated, UserPrincipalName, Location, IPAddress, UserAgent, ResultType"
    )
    assert second.query.startswith("let knownusers=")
    assert "let suspiciousids=" in second.query
    assert third.query.count("SigninLogs") == 3
    assert [rule.line for rule in parsed.rules] == [9, 21, 41]


def test_file_calling_itself_detection_rule() -> None:
    parsed = parse_fixture(REPRISE, "Azure Diagnostics/CVE-2021-44228.kql")

    assert [rule.kind for rule in parsed.rules] == ["detection", "detection"]
    assert parsed.rules[0].provenance["kind"] == (
        "derived: the description calls the query 'Detection rule'"
    )


def test_second_query_keeps_its_own_comments() -> None:
    parsed = parse_fixture(REPRISE, "Defender for Endpoint/Device-NewHashAccessingLSASS.kql")
    second = parsed.rules[1]

    assert "Advanced Hunting query" in second.description
    assert second.query.startswith("//Advanced Hunting query\nlet knownhashes=")
    assert second.tables() == ["DeviceEvents"]


# -- FalconFriday --------------------------------------------------------------------------


def test_falconfriday_detection_page() -> None:
    rule = only_rule(parse_fixture(FALCON, "0xFF-0082-Persistence-Via-Scheduled-Tasks-Win.md"))

    assert rule.title == "Persistence Via Scheduled Tasks"
    assert rule.kind == "detection"
    assert rule.provenance["kind"] == "derived: the heading 'Detection' above the query"
    assert rule.tactics == ["Privilege Escalation", "Persistence", "Execution"]
    assert rule.techniques == ["T1053.005"]
    assert rule.description.startswith(
        "This query identifies binaries that run as a scheduled task"
    )
    assert rule.provenance["description"] == "derived: the 'Detection description' section"
    assert rule.tables() == ["DeviceProcessEvents"]


def test_falconfriday_dates_and_lists() -> None:
    rule = only_rule(parse_fixture(FALCON, "0xFF-0082-Persistence-Via-Scheduled-Tasks-Win.md"))

    assert rule.created == "2021-03-22"
    assert rule.modified == "2024-06-28"
    assert rule.references == [
        "https://medium.com/falconforce/malicious-scheduled-tasks-debc64633f81"
    ]
    assert rule.false_positives[0].startswith("Some legitimate software also uses scheduled tasks")
    assert rule.extra["fields"]["ID"] == "0xFF-0082-Persistence-Via-Scheduled-Tasks-Win"
    assert rule.extra["sections"]["Suggested Response Actions"].startswith("Investigate whether")


def test_falconfriday_hunt_page() -> None:
    rule = only_rule(parse_fixture(FALCON, "hunts/T1036-WIN-001.md"))

    assert rule.kind == "hunting"
    assert rule.author == "FalconForce"
    assert rule.tactics == ["Stealth"]
    assert rule.techniques == ["T1036.001"]
    assert rule.modified == "2020-08-27"
    assert rule.references[0].startswith("https://medium.com/falconforce/falcon-friday-detecting")
    assert rule.tables() == ["DeviceNetworkEvents", "DeviceFileCertificateInfo"]


def test_page_without_extension_is_markdown() -> None:
    path = "0xFF-0508-Excessive_enumeration_of_policy_effective_permissions-AWS"
    rule = only_rule(parse_fixture(FALCON, path))

    assert rule.title == "Excessive enumeration of policy effective permissions"
    assert rule.techniques == ["T1069.003", "T1580"]
    assert rule.tables() == ["AWSCloudTrail"]
    assert "AWS" in rule.data_sources[0].note


def test_page_that_points_elsewhere_raises() -> None:
    path = (
        "0xFF-0086-Process_injection_via_NtAllocateVirtualMemoryRemote_by_rare_or_unsigned_"
        "processes-Win.md"
    )
    with pytest.raises(ParseError) as caught:
        parse_fixture(FALCON, path)

    assert caught.value.reason == (
        "no KQL query found: the page only points to "
        "0xFF-0081-Process_Injection_From_Untrusted_Process-Win.md"
    )


# -- Bert-JanP layout ----------------------------------------------------------------------


def test_bertjanp_variants_give_two_rules() -> None:
    parsed = parse_fixture(BERTJANP, "Defender For Endpoint/Rclone Copy To Cloud Storage.md")
    xdr, sentinel = parsed.rules

    assert xdr.title == "Rclone Copy To Cloud Storage (query 1 of 2)"
    assert sentinel.title == "Rclone Copy To Cloud Storage (query 2 of 2)"
    assert xdr.extra["section"] == "Defender XDR"
    assert sentinel.extra["section"] == "Sentinel"
    assert "| project Timestamp," in xdr.query
    assert "| project TimeGenerated," in sentinel.query


def test_bertjanp_page_fields() -> None:
    parsed = parse_fixture(BERTJANP, "Defender For Endpoint/Rclone Copy To Cloud Storage.md")
    rule = parsed.rules[0]

    assert rule.techniques == ["T1567.002"]
    assert rule.provenance["techniques"] == "derived: an ATT&CK table"
    assert rule.description.startswith("Rclone syncs files to cloud storage")
    assert rule.provenance["description"] == "derived: the 'Description' section"
    assert rule.references == [
        "https://rclone.org/commands/rclone_copy/",
        "https://attack.mitre.org/software/S1040/",
    ]
    assert (
        rule.extra["sections"]["Risk"]
        == "Data leaves the network for storage that the intruder controls."
    )


def test_bertjanp_table_with_two_techniques() -> None:
    rule = only_rule(
        parse_fixture(BERTJANP, "Sentinel/Privileged Role Granted To Guest Account.md")
    )

    assert rule.techniques == ["T1098.003", "T1078.004"]
    assert rule.tables() == ["SigninLogs", "AuditLogs"]
    assert rule.language == "kql"
    assert rule.provenance["language"] == "derived: a code block marked 'kql'"


# -- bad inputs ------------------------------------------------------------------------------


def test_custom_table_is_recorded_and_marked() -> None:
    rule = only_rule(parse_bad("kql_custom_table.kql"))
    [table] = rule.data_sources

    assert table.name == "DemoVendorLogs_CL"
    assert table.kind == "table"
    assert table.custom is True
    assert "custom ingestion" in table.note


def test_one_query_with_blank_lines_stays_whole() -> None:
    rule = only_rule(parse_bad("kql_blank_lines_in_query.kql"))

    assert rule.query.startswith("let NewServices = DeviceEvents")
    assert rule.query.endswith(
        "| project Timestamp, DeviceName, RemoteIP, RemoteUrl, ServiceFileName"
    )
    assert rule.tables() == ["DeviceEvents", "DeviceNetworkEvents"]


def test_markdown_without_kql_raises() -> None:
    with pytest.raises(ParseError) as caught:
        parse_bad("kql_readme.md")

    assert caught.value.reason.startswith("no KQL query found")


def test_empty_file_raises() -> None:
    with pytest.raises(ParseError) as caught:
        parse(RuleFile("x", "empty.txt", ""))

    assert caught.value.reason == "no KQL query found: the file is empty"


def test_powershell_fence_is_not_kql() -> None:
    text = "# Script\n\n```powershell\nGet-Process | where { $_.Name -eq 'x' }\n```\n"
    with pytest.raises(ParseError):
        parse(RuleFile("x", "script.md", text))


def test_unlabelled_fence_is_judged_by_content() -> None:
    text = "# Two blocks\n\n```\nsome output text\n```\n\n```\nSyslog\n| take 10\n```\n"
    rule = only_rule(parse(RuleFile("x", "page.md", text)))

    assert rule.query == "Syslog\n| take 10"
    assert rule.provenance["language"] == "derived: the code block reads as KQL"


# -- splitting and Markdown reading --------------------------------------------------------


def test_split_keeps_pipe_after_blank_line() -> None:
    chunks = split_queries("T\n| where a == 1\n\n| project a\n")

    assert [chunk.text for chunk in chunks] == ["T\n| where a == 1\n\n| project a"]


def test_split_keeps_open_bracket_across_blank_line() -> None:
    chunks = split_queries("T\n| join (\n\n  U\n) on x\n")

    assert len(chunks) == 1


def test_split_keeps_continuing_operator() -> None:
    chunks = split_queries("T\n| where a == 1\n\nor b == 2\n")

    assert len(chunks) == 1


def test_split_separates_complete_queries() -> None:
    chunks = split_queries("// intro\n\n// first\nT | take 1\n\n// second\nU | take 2\n")

    assert [chunk.text for chunk in chunks] == ["// first\nT | take 1", "// second\nU | take 2"]
    assert chunks[0].preceding_comments == ["intro"]
    assert chunks[0].leading_comments == ["first"]
    assert chunks[1].first_line == 6


def test_split_puts_commentary_between_queries_apart() -> None:
    chunks = split_queries("T | take 1\n\n// about T\n\nU | take 1\n")

    assert [chunk.text for chunk in chunks] == ["T | take 1", "U | take 1"]
    assert chunks[1].preceding_comments == ["about T"]


def test_split_of_comments_only_is_empty() -> None:
    assert split_queries("// nothing\n\n// here\n") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SigninLogs\n| where ResultType != 0", True),
        ("let x = 1;\nprint x", True),
        ("union A, B", True),
        ("Get-Process | where { $_.CPU -gt 10 }", False),
        ("Just some words here.", False),
        ("// only a comment", False),
    ],
)
def test_looks_like_kql(text: str, expected: bool) -> None:
    assert looks_like_kql(text) is expected


def test_markdown_headings_above() -> None:
    document = parse_markdown("# A\n\n## B\n\ntext\n\n### C\n\n```kql\nT\n```\n\n## D\n")
    fence = next(block for block in document.blocks if block.kind == "fence")

    assert document.title == "A"
    assert [heading.text for heading in document.headings_above(fence.start)] == ["A", "B", "C"]


def test_markdown_fields() -> None:
    document = parse_markdown("**ID:** 0xFF-1\n\n**Author:** [Team](https://example.org)\n")

    assert document.fields() == {"ID": "0xFF-1", "Author": "[Team](https://example.org)"}


# -- the real corpora ------------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize("source", MARKDOWN_CORPORA)
def test_markdown_corpus_parses(corpus: Path, source: str) -> None:
    root = corpus / source
    if not root.is_dir():
        pytest.skip(f"{source} corpus not found at {root}")
    files = sorted(path for path in root.rglob("*") if path.is_file())
    rules = 0
    reasons: Counter[str] = Counter()
    started = time.perf_counter()

    for path in files:
        relative = path.relative_to(root).as_posix()
        text = decode_rule_bytes(path.read_bytes(), source, relative)
        try:
            parsed = parse(RuleFile(source, relative, text))
        except ParseError as error:
            parsed = ParsedFile(errors=[error])
        assert parsed.rules or parsed.errors, relative
        for error in parsed.errors:
            assert error.location is not None, relative
            assert error.location.path == relative
            assert error.reason.startswith("no KQL query found"), relative
            reasons[error.reason[:60]] += 1
        for rule in parsed.rules:
            assert rule.query.strip(), relative
        rules += len(parsed.rules)

    elapsed = time.perf_counter() - started
    print(
        f"\n{source}: files={len(files)} rules={rules} errors={reasons.total()} "
        f"seconds={elapsed:.2f} top errors={reasons.most_common(3)}"
    )
    assert rules >= len(files) - reasons.total()
    assert reasons.total() <= 10
