"""Tests for the KQL tokenizer, the table reader and the data-source notes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from socfeed.errors import ParseError
from socfeed.formats.base import RuleFile, decode_rule_bytes
from socfeed.formats.sentinel import parse as parse_sentinel
from socfeed.kql.notes import RequiredConnector, describe_sources, known_table_note
from socfeed.kql.tables import is_asim_parser, read_query_sources, read_table_names
from socfeed.kql.tokens import comments, tokenize

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SENTINEL = CORPUS / "azure-sentinel"
KQL_CORPORA = (
    "azure-sentinel",
    "m365-hunting-queries",
    "sentinel-queries-reprise99",
    "falconfriday",
)


def _expected_tables() -> list[tuple[str, list[str]]]:
    sources = SENTINEL / "SOURCES.json"
    if not sources.is_file():
        return []
    return [(entry["path"], entry["tables"]) for entry in json.loads(sources.read_text())]


def _kinds(query: str) -> list[tuple[str, str]]:
    return [(source.name, source.kind) for source in read_query_sources(query).sources]


# -- tokenizer -----------------------------------------------------------------------


def test_tokenizer_skips_comments() -> None:
    names = [token.text for token in tokenize("// SecurityEvent\nSyslog // AuditLogs")]

    assert names == ["Syslog"]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'a // b'", "a // b"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("@'C:\\temp\\'", "C:\\temp\\"),
        ('@"a""b"', 'a"b'),
        ("h'secret'", "secret"),
        ('H@"x\\y"', "x\\y"),
        ("```\nline | T\n```", "\nline | T\n"),
    ],
)
def test_tokenizer_reads_string_forms(literal: str, value: str) -> None:
    tokens = tokenize(literal)

    assert len(tokens) == 1
    assert tokens[0].kind == "string"
    assert tokens[0].string_value == value


def test_tokenizer_joins_hyphenated_operators() -> None:
    texts = [token.text for token in tokenize("T | project-away a | mv-expand b | x-y")]

    assert "project-away" in texts
    assert "mv-expand" in texts
    assert "x-y" not in texts


def test_tokenizer_ends_unterminated_string_at_line_end() -> None:
    tokens = tokenize("T | where x == 'abc\n| project y")

    assert tokens[-1].text == "y"
    assert tokens[-1].line == 2


def test_tokenizer_ignores_zero_width_space() -> None:
    assert [token.text for token in tokenize("\u200bDeviceEvents")] == ["DeviceEvents"]


def test_comments_returns_comment_text() -> None:
    assert comments("// one\nT // two") == ["one", "two"]


# -- reader: what is a table -----------------------------------------------------------


def test_reader_skips_strings_and_comments() -> None:
    query = "// SecurityEvent | where\nSyslog | where x == 'AuditLogs | y' or y == \"SigninLogs\""

    assert read_table_names(query) == ["Syslog"]


def test_reader_skips_verbatim_and_multiline_strings() -> None:
    query = "let p = @'C:\\temp\\'; let s = ```\nFakeTable | x\n```; AuditLogs | where x has p"

    assert read_table_names(query) == ["AuditLogs"]


def test_reader_skips_let_bound_names() -> None:
    query = (
        "let events = SecurityEvent | where EventID == 4625;\n"
        "let threshold = 5;\n"
        "events | join kind=inner (events | summarize c = count()) on Account"
    )

    assert read_table_names(query) == ["SecurityEvent"]


def test_reader_reads_union_operands_with_options() -> None:
    query = (
        "union withsource=TableName kind=outer isfuzzy=true "
        "Security*, Syslog, (AzureActivity | take 1)"
    )
    sources = read_query_sources(query).sources

    assert [source.name for source in sources] == ["Security*", "Syslog", "AzureActivity"]
    assert sources[0].wildcard is True
    assert sources[1].wildcard is False


def test_reader_reads_union_of_every_table() -> None:
    sources = read_query_sources("union withsource=_TableName * | summarize count() by _TableName")

    assert sources.names() == ["*"]
    assert sources.sources[0].wildcard is True


def test_reader_reads_pipe_union() -> None:
    assert read_table_names("SigninLogs | union AADNonInteractiveUserSignInLogs") == [
        "SigninLogs",
        "AADNonInteractiveUserSignInLogs",
    ]


def test_reader_reads_join_and_lookup_right_sides() -> None:
    query = (
        "DeviceProcessEvents\n"
        "| join kind=inner hint.strategy=broadcast DeviceNetworkEvents on DeviceId\n"
        "| lookup kind=leftouter (DeviceFileCertificateInfo | take 10) on SHA1"
    )

    assert read_table_names(query) == [
        "DeviceProcessEvents",
        "DeviceNetworkEvents",
        "DeviceFileCertificateInfo",
    ]


def test_reader_reads_table_function() -> None:
    assert read_table_names("table('DeviceEvents') | take 1") == ["DeviceEvents"]


def test_reader_resolves_table_parameter_of_let_function() -> None:
    query = (
        "let f = (tableName:string) { table(tableName) | where ResultType != 0 };\n"
        'let a = f("SigninLogs");\n'
        'let b = f("AADNonInteractiveUserSignInLogs");\n'
        "union a, b"
    )

    assert read_table_names(query) == ["SigninLogs", "AADNonInteractiveUserSignInLogs"]


def test_reader_uses_default_table_parameter() -> None:
    query = "let f = (t:string = 'AuditLogs') { table(t) | take 1 }; f()"

    assert read_table_names(query) == ["AuditLogs"]


def test_reader_reads_tabular_argument_of_let_function() -> None:
    query = "let f = (T:(x:string), n:int) { T | take n }; f(SecurityEvent, 3)"

    assert read_table_names(query) == ["SecurityEvent"]


def test_reader_reads_search_and_find_in() -> None:
    assert read_table_names('search in (SecurityEvent, Syslog) "mimikatz"') == [
        "SecurityEvent",
        "Syslog",
    ]
    assert read_table_names("find in (DeviceProcessEvents, Device*Events) where x == 1") == [
        "DeviceProcessEvents",
        "Device*Events",
    ]


def test_reader_reads_search_without_in_as_every_table() -> None:
    assert read_table_names("search 'microsoft.com' | take 10") == ["*"]


def test_reader_reads_sub_query_in_expression() -> None:
    query = (
        "SigninLogs | where IPAddress in ((AADNonInteractiveUserSignInLogs | distinct IPAddress))"
    )

    assert read_table_names(query) == ["SigninLogs", "AADNonInteractiveUserSignInLogs"]


def test_reader_reads_toscalar_and_materialize() -> None:
    query = "let n = toscalar(Heartbeat | count); let m = materialize(Syslog | take 5); m"

    assert read_table_names(query) == ["Heartbeat", "Syslog"]


def test_reader_reads_qualified_table() -> None:
    assert read_table_names("cluster('help').database('Samples').StormEvents | take 1") == [
        "StormEvents"
    ]


def test_reader_binds_as_operator_name() -> None:
    assert read_table_names("SecurityEvent | as T1 | join (T1) on Account") == ["SecurityEvent"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("print x = 1", []),
        ("range i from 1 to 10 step 1", []),
        ("datatable(a:string)['x', 'y'] | where a == 'x'", []),
        ("let a = 1; let b = 2;", []),
        ("let lookback = starttime - 7d; print lookback", []),
        ("let t = true; print t", []),
        (
            "AuditLogs | mv-apply t = Targets on (where t.type == 'User' | extend u = t.id)",
            ["AuditLogs"],
        ),
    ],
)
def test_reader_finds_no_table_in_literals(query: str, expected: list[str]) -> None:
    assert read_table_names(query) == expected


def test_reader_keeps_externaldata_apart() -> None:
    query = (
        "let iocs = externaldata(ip:string)[@'https://example.org/ips.csv'] with(format='csv');\n"
        "CommonSecurityLog | where DestinationIP in (iocs)"
    )
    sources = read_query_sources(query)

    assert sources.names() == ["CommonSecurityLog"]
    assert sources.externaldata_urls == ["https://example.org/ips.csv"]


def test_reader_recognizes_asim_parsers() -> None:
    query = "_ASim_Dns | union imDns, ASimDnsActivityLogs, _Im_WebSession(starttime=ago(1d))"

    assert _kinds(query) == [
        ("_ASim_Dns", "asim_parser"),
        ("imDns", "asim_parser"),
        ("ASimDnsActivityLogs", "table"),
        ("_Im_WebSession", "asim_parser"),
    ]


def test_asim_parser_names() -> None:
    assert is_asim_parser("_Im_NetworkSession")
    assert is_asim_parser("imProcessCreation")
    assert is_asim_parser("vimDnsAzureFirewall")
    assert not is_asim_parser("ASimAuditEventLogs")
    assert not is_asim_parser("important")


def test_reader_recognizes_watchlist() -> None:
    query = (
        "let vip = _GetWatchlist('HighValueAssets') | project SearchKey;\n"
        "SigninLogs | where UserPrincipalName in (vip)"
    )

    assert _kinds(query) == [("HighValueAssets", "watchlist"), ("SigninLogs", "table")]


def test_reader_marks_unknown_piped_function() -> None:
    assert _kinds("MyParser() | take 5") == [("MyParser", "function")]


def test_reader_ignores_scalar_function_in_let() -> None:
    assert read_table_names("let l = array_concat(a, b); print l") == []


def test_reader_marks_custom_table() -> None:
    sources = read_query_sources("DemoVendorLogs_CL | where EventType_s == 'login'").sources

    assert [source.name for source in sources] == ["DemoVendorLogs_CL"]
    assert sources[0].custom is True


def test_reader_lists_each_source_once() -> None:
    query = "SecurityEvent | join (SecurityEvent | take 1) on Account | union SecurityEvent"

    assert read_table_names(query) == ["SecurityEvent"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "))) ]]] ((( let = ; | | union , , join",
        "(" * 5000,
        "let f = (a:string) { " * 300,
        "T | where x == 'unterminated",
        "```never closed",
        "| | | join kind= on",
    ],
)
def test_reader_never_raises_on_broken_query(query: str) -> None:
    read_query_sources(query)


def test_reader_never_raises_on_mutated_queries() -> None:
    base = (
        "let f = (t:string) { table(t) | join kind=inner (union A, B*) on x };\n"
        "search in (C, D) 'x' | lookup (E | where y in ((F | take 1))) on z"
    )
    alphabet = "abcXYZ_|()[]{};,'\"@h`~/ \n=*.$-"
    generator = random.Random(7)
    for _ in range(2000):
        characters = list(base)
        for _ in range(8):
            characters[generator.randrange(len(characters))] = generator.choice(alphabet)
        read_query_sources("".join(characters))


# -- data-source notes -----------------------------------------------------------------


def test_note_names_required_connector() -> None:
    connectors = [
        RequiredConnector("CiscoASA", ("CommonSecurityLog",)),
        RequiredConnector("PaloAltoNetworks", ("commonsecuritylog ",)),
        RequiredConnector("Office365", ("OfficeActivity",)),
    ]
    [source] = describe_sources(read_query_sources("CommonSecurityLog | take 1"), connectors)

    assert source.details["connectors"] == ["CiscoASA", "PaloAltoNetworks"]
    assert "CiscoASA, PaloAltoNetworks" in source.note
    assert source.origin == "derived: read from the KQL query"


def test_note_falls_back_to_known_table() -> None:
    [source] = describe_sources(read_query_sources("SigninLogs | take 1"))

    assert "AzureActiveDirectory" in source.note
    assert source.details == {}


@pytest.mark.parametrize(
    ("table", "connector"),
    [
        ("SecurityEvent", "WindowsSecurityEvents"),
        ("AuditLogs", "AzureActiveDirectory"),
        ("OfficeActivity", "Office365"),
        ("CommonSecurityLog", "CefAma"),
        ("Syslog", "SyslogAma"),
        ("AzureActivity", "AzureActivity"),
        ("DeviceProcessEvents", "MicrosoftThreatProtection"),
        ("EmailEvents", "MicrosoftThreatProtection"),
        ("IdentityLogonEvents", "MicrosoftThreatProtection"),
        ("CloudAppEvents", "MicrosoftThreatProtection"),
        ("AWSCloudTrail", "AWS"),
    ],
)
def test_known_table_notes(table: str, connector: str) -> None:
    assert f"({connector})" in known_table_note(table)


def test_note_for_unknown_table_is_plain() -> None:
    [source] = describe_sources(read_query_sources("ContosoWidgetEvents | take 1"))

    assert source.note == "enable the connector or data collection that writes ContosoWidgetEvents"


def test_note_for_custom_table_names_custom_ingestion() -> None:
    [source] = describe_sources(read_query_sources("DemoVendorLogs_CL | take 1"))

    assert source.custom is True
    assert "custom ingestion" in source.note
    assert "Logs Ingestion API" in source.note


def test_notes_for_parser_watchlist_and_function() -> None:
    query = "union _Im_Dns, imDns, (_GetWatchlist('VIP') | take 1), (MyParser() | take 1)"
    notes = {source.name: source for source in describe_sources(read_query_sources(query))}

    assert notes["_Im_Dns"].kind == "asim_parser"
    assert "built into Microsoft Sentinel" in notes["_Im_Dns"].note
    assert "deployed to the workspace" in notes["imDns"].note
    assert notes["VIP"].kind == "watchlist"
    assert "'VIP'" in notes["VIP"].note
    assert notes["MyParser"].kind == "function"


# -- the real corpora ------------------------------------------------------------------


def _sentinel_query(path: str) -> str:
    text = decode_rule_bytes((SENTINEL / path).read_bytes(), "azure-sentinel", path)
    try:
        parsed = parse_sentinel(RuleFile("azure-sentinel", path, text))
    except ParseError:
        return ""
    return parsed.rules[0].query


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("path", "expected"),
    _expected_tables() or [pytest.param("", [], marks=pytest.mark.skip(reason="no corpus"))],
)
def test_reader_matches_reviewed_tables(path: str, expected: list[str]) -> None:
    assert read_table_names(_sentinel_query(path)) == expected


@pytest.mark.corpus
def test_reader_never_raises_on_corpora(corpus: Path) -> None:
    files = [path for name in KQL_CORPORA for path in (corpus / name).rglob("*") if path.is_file()]
    for path in files:
        read_query_sources(path.read_text(encoding="utf-8", errors="replace"))

    assert len(files) > 900
