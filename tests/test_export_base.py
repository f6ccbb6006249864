"""Tests of the helpers every export format shares: text cleaning, URLs, timestamps."""

from __future__ import annotations

import datetime as dt

import pytest

from socfeed.export.base import (
    clean_text,
    describe_query,
    encode_url,
    feed_url,
    is_web_url,
    parse_timestamp,
    rule_page_url,
    rule_timestamp,
    without_surrogates,
)
from socfeed.model import Rule
from socfeed.store import FeedQuery


def test_clean_text_replaces_xml_forbidden() -> None:
    text = "a\x00b\x01c\x0bd\x1fe\ud800f\ufffeg"

    assert clean_text(text) == "a\ufffdb\ufffdc\ufffdd\ufffde\ufffdf\ufffdg"


def test_clean_text_keeps_whitespace_and_cyrillic() -> None:
    text = "строка\tс\nпереводом\r"

    assert clean_text(text) == text


def test_without_surrogates_keeps_controls() -> None:
    assert without_surrogates("a\x01\udc80") == "a\x01\ufffd"


def test_rule_page_url_encodes_key() -> None:
    url = rule_page_url("https://socfeed.example/", "sigma:abc~1f2e/x y")

    assert url == "https://socfeed.example/rules/sigma%3Aabc~1f2e%2Fx%20y"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/a b", "https://example.org/a%20b"),
        ("https://example.org/путь", "https://example.org/%D0%BF%D1%83%D1%82%D1%8C"),
        ("https://example.org/?q=a[0]", "https://example.org/?q=a%5B0%5D"),
        ("https://example.org/100%", "https://example.org/100%25"),
        ("https://example.org/a%20b", "https://example.org/a%20b"),
        ("http://[::1]:8000/x", "http://[::1]:8000/x"),
        ("https://example.org/a#b c", "https://example.org/a#b%20c"),
    ],
)
def test_encode_url(url: str, expected: str) -> None:
    assert encode_url(url) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://example.org/x", True),
        ("http://example.org", True),
        ("ftp://example.org/x", False),
        ("https://", False),
        ("not a url", False),
        ("http://[::1", False),
    ],
)
def test_is_web_url(value: str, expected: bool) -> None:
    assert is_web_url(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-05", dt.datetime(2024, 3, 5, tzinfo=dt.UTC)),
        ("2024-03-05T10:20:30Z", dt.datetime(2024, 3, 5, 10, 20, 30, tzinfo=dt.UTC)),
        ("2024-03-05T10:20:30+02:00", dt.datetime(2024, 3, 5, 8, 20, 30, tzinfo=dt.UTC)),
        ("2024-03-05 10:20:30", dt.datetime(2024, 3, 5, 10, 20, 30, tzinfo=dt.UTC)),
        ("05/03/2024", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(value: str | None, expected: dt.datetime | None) -> None:
    assert parse_timestamp(value) == expected


def test_rule_timestamp_prefers_modified() -> None:
    rule = Rule("s", "p", "1", "sigma", "t", "sigma", "detection", "q", "r")
    rule.created = "2020-01-01"
    rule.retrieved_at = "2025-01-01T00:00:00Z"

    assert rule_timestamp(rule) == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    rule.modified = "2021-01-01"
    assert rule_timestamp(rule) == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)


def test_describe_query_lists_filters() -> None:
    query = FeedQuery(text=" powershell ", source=["sigma"], technique=["T1059", "T1566"])

    described = describe_query(query)

    assert described == "q=powershell, source=sigma, technique=T1059, technique=T1566"
    assert describe_query(FeedQuery()) == "all rules"


def test_feed_url_carries_filters() -> None:
    query = FeedQuery(text="lsass dump", table=["Security Event"], official=True)

    url = feed_url("https://socfeed.example/", query, "/feed.atom")

    assert url == (
        "https://socfeed.example/feed.atom?q=lsass+dump&table=Security+Event&official=true"
    )
