"""Tests of the feed filters: parameter parsing and the links that keep them."""

from __future__ import annotations

import pytest

from socfeed.store import FeedQuery
from socfeed.web.params import (
    feed_query,
    feed_url,
    filters_only,
    query_params,
    single_filter_url,
    split_tables,
    tables_cookie_value,
    tables_from_cookie,
    with_page,
    with_value,
    without_value,
)


def test_feed_query_normalizes_techniques() -> None:
    query = feed_query(technique=["t1059/001", " T1078 ", "T1078", "not-an-id"])

    assert query.technique == ["T1059.001", "T1078", "not-an-id"]


def test_feed_query_normalizes_tactics() -> None:
    query = feed_query(tactic=["TA0002", "initial-access", "DefenseEvasion", "Made Up"])

    assert query.tactic == ["Execution", "Initial Access", "Stealth", "Made Up"]


def test_feed_query_strips_search_text() -> None:
    assert feed_query(q="  powershell  ").text == "powershell"


def test_query_params_leave_out_defaults() -> None:
    assert query_params(FeedQuery()) == []


def test_query_params_round_trip() -> None:
    query = FeedQuery(
        text="cmd “x”",
        source=["sigma", "azure-sentinel"],
        technique=["T1059.001"],
        official=False,
        sort="severity",
        page=3,
        per_page=20,
    )

    assert query_params(query) == [
        ("q", "cmd “x”"),
        ("source", "sigma"),
        ("source", "azure-sentinel"),
        ("technique", "T1059.001"),
        ("official", "false"),
        ("sort", "severity"),
        ("per_page", "20"),
        ("page", "3"),
    ]


def test_feed_url_encodes_values() -> None:
    url = feed_url(FeedQuery(table=["a&b=c"], text="ключ"))

    assert url == "/?q=%D0%BA%D0%BB%D1%8E%D1%87&table=a%26b%3Dc"


def test_feed_url_other_base() -> None:
    assert feed_url(FeedQuery(kind=["hunting"]), "/api/rules") == "/api/rules?kind=hunting"


def test_with_value_resets_page() -> None:
    query = with_value(FeedQuery(source=["sigma"], page=4), "source", "splunk")

    assert query.source == ["sigma", "splunk"]
    assert query.page == 1


def test_with_value_no_repeat() -> None:
    assert with_value(FeedQuery(tag=["x"]), "tag", "x").tag == ["x"]


def test_without_value_keeps_others() -> None:
    original = FeedQuery(source=["sigma", "splunk"], severity=["high"])

    changed = without_value(original, "source", "sigma")

    assert changed.source == ["splunk"]
    assert changed.severity == ["high"]
    assert original.source == ["sigma", "splunk"]


def test_with_page_keeps_filters() -> None:
    query = with_page(FeedQuery(language=["kql"]), 2)

    assert feed_url(query) == "/?language=kql&page=2"


def test_single_filter_url() -> None:
    assert single_filter_url("technique", "T1059.001") == "/?technique=T1059.001"


def test_with_value_rejects_other_fields() -> None:
    with pytest.raises(ValueError, match="not a list filter"):
        with_value(FeedQuery(), "page", "2")


def test_feed_query_sort_default_empty() -> None:
    assert feed_query().sort == ""


def test_feed_query_mine_only_uses_url_list() -> None:
    query = feed_query(mine=["SecurityEvent, SigninLogs"], mine_only=True, socfeed_tables="X")

    assert query.my_tables == ["SecurityEvent", "SigninLogs"]


def test_feed_query_mine_only_uses_cookie() -> None:
    query = feed_query(mine_only=True, socfeed_tables="SecurityEvent%2CAuditLogs")

    assert query.my_tables == ["SecurityEvent", "AuditLogs"]


def test_feed_query_list_without_toggle() -> None:
    assert feed_query(mine=["SecurityEvent"]).my_tables is None


def test_split_tables_separators() -> None:
    assert split_tables(["a, b\nc", " a ", ""]) == ["a", "b", "c"]


def test_tables_cookie_round_trip() -> None:
    tables = ["SecurityEvent", "windows/process_creation", "Sysmon EventID 1"]

    assert tables_from_cookie(tables_cookie_value(tables)) == tables


def test_tables_cookie_too_long() -> None:
    with pytest.raises(ValueError, match="shorten the list"):
        tables_cookie_value([f"Table_{number:05d}_CL" for number in range(300)])


def test_query_params_write_my_tables() -> None:
    query = FeedQuery(my_tables=["SecurityEvent", "SigninLogs"])

    assert query_params(query) == [("mine_only", "true"), ("mine", "SecurityEvent,SigninLogs")]


def test_filters_only_drops_order_and_page() -> None:
    query = FeedQuery(source=["sigma"], sort="title", page=3, per_page=10)

    assert feed_url(filters_only(query)) == "/?source=sigma"
