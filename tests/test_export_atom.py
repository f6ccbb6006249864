"""Tests of the Atom feed export: well-formed for feedparser, order, stable entry ids."""

from __future__ import annotations

import datetime as dt
import io
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import feedparser
import pytest

from socfeed.export import export_rules
from socfeed.export.atom import DEFAULT_MAX_ENTRIES, entry_id
from socfeed.export.base import ExportContext
from socfeed.model import Rule
from socfeed.store import FeedQuery, SourceRecord, Store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "export"
ATOM = "{http://www.w3.org/2005/Atom}"
NOW = dt.datetime(2025, 2, 1, 12, 0, tzinfo=dt.UTC)
BASE_URL = "https://socfeed.example/"
SENTINEL_KEY = "azure-sentinel:0d8a1f7e-5b1c-4a56-9f0e-2a1b3c4d5e6f"


def load_rules() -> list[Rule]:
    documents = json.loads((FIXTURES / "rules.json").read_text(encoding="utf-8"))
    return [Rule.from_dict(document) for document in documents]


def fill_store(store: Store, rules: list[Rule]) -> None:
    by_source: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_source[rule.source].append(rule)
    for source, group in by_source.items():
        store.replace_source(SourceRecord(name=source, format=group[0].format), group, [])


def export_text(store: Store, query: FeedQuery | None = None, self_url: str = "") -> str:
    out = io.StringIO()
    context = ExportContext(
        base_url="https://socfeed.example/", self_url=self_url, generated_at=NOW
    )
    export_rules(store, query or FeedQuery(), "atom", out, context)
    return out.getvalue()


def parse(text: str) -> Any:
    # Bytes, as a feed reader receives them, so that feedparser reads the XML declaration.
    return feedparser.parse(text.encode("utf-8"))


@pytest.fixture
def filled(store: Store) -> Store:
    fill_store(store, load_rules())
    return store


@pytest.fixture
def feed_text(filled: Store) -> str:
    return export_text(filled)


@pytest.fixture
def feed(feed_text: str) -> Any:
    return parse(feed_text)


def entry_for(feed: Any, key: str) -> Any:
    link = f"https://socfeed.example/rules/{key.replace(':', '%3A')}"
    return next(entry for entry in feed.entries if entry.link == link)


def test_feedparser_reads_without_bozo(feed: Any) -> None:
    assert feed.bozo == 0
    assert feed.version == "atom10"


def test_strict_xml_parser_accepts_feed(feed_text: str) -> None:
    root = ET.fromstring(feed_text.encode("utf-8"))

    assert root.tag == f"{ATOM}feed"
    assert len(root.findall(f"{ATOM}entry")) == 8


def test_entries_newest_first(feed: Any) -> None:
    titles = [entry.title for entry in feed.entries[:3]]

    # Three rules were modified on 2025-01-05, and the latest retrieval comes first.
    assert titles == [
        "@Network discovery with nmap",
        "Unusual login activity (machine learning)",
        "Suspicious script interpreter\tchild",
    ]
    assert feed.entries[-1].title == "Lucene query rule"


def test_entry_updated_from_modified_date(feed: Any) -> None:
    entry = entry_for(feed, SENTINEL_KEY)

    assert entry.updated == "2024-03-05T00:00:00Z"
    assert entry.published == "2023-01-01T00:00:00Z"


def test_feed_updated_is_newest_entry(feed: Any) -> None:
    assert feed.feed.updated == "2025-01-05T00:00:00Z"


def test_hostile_text_survives_escaping(feed: Any) -> None:
    entry = entry_for(feed, SENTINEL_KEY)

    assert entry.title == "<script>alert(1)</script> Процесс PowerShell ]]> \ufffd alert"
    assert entry.summary.startswith("Описание: <b>bold</b> & ]]> then a bell \ufffd")
    assert entry.author == "Иван <ivan@example.org>"


def test_control_characters_replaced(feed_text: str) -> None:
    assert "\u0001" not in feed_text
    assert "\u0007" not in feed_text
    assert "\u000b" not in feed_text


def test_link_to_rule_page_percent_encoded(feed: Any) -> None:
    entry = entry_for(feed, SENTINEL_KEY)

    assert entry.link == (
        "https://socfeed.example/rules/azure-sentinel%3A0d8a1f7e-5b1c-4a56-9f0e-2a1b3c4d5e6f"
    )


def test_original_file_linked_as_via(feed: Any) -> None:
    entry = entry_for(feed, SENTINEL_KEY)

    via = [link.href for link in entry.links if link.rel == "via"]
    assert via == [
        "https://github.com/Azure/Azure-Sentinel/blob/main/Detections/SecurityEvent/"
        "Hostile%20name.yaml"
    ]


def test_categories_techniques_tables_language(feed: Any) -> None:
    entry = entry_for(feed, SENTINEL_KEY)

    terms = [tag.term for tag in entry.tags]
    assert terms == ["T1059.001", "T1566", "SecurityEvent", "kql"]
    assert entry.tags[0].scheme == "https://attack.mitre.org/techniques/"


def test_entry_id_stable_across_exports(filled: Store, feed: Any) -> None:
    again = parse(export_text(filled))

    assert [entry.id for entry in again.entries] == [entry.id for entry in feed.entries]


def test_entry_id_changes_with_content(filled: Store, feed: Any) -> None:
    rule = next(rule for rule in load_rules() if rule.source == "azure-sentinel")
    before = entry_for(feed, SENTINEL_KEY).id
    rule.query += "\n| take 10"
    fill_store(filled, [rule])

    after = entry_for(parse(export_text(filled)), SENTINEL_KEY).id

    assert before.startswith("urn:uuid:")
    assert after != before
    assert after == entry_id(rule)


def test_feed_names_filters(filled: Store) -> None:
    feed = parse(export_text(filled, FeedQuery(language=["kql"])))

    assert feed.feed.title == "socfeed: new and changed rules (language=kql)"
    assert feed.feed.link == "https://socfeed.example/?language=kql"
    assert len(feed.entries) == 1


def test_self_link_when_given(filled: Store) -> None:
    self_url = "https://socfeed.example/feed.atom?language=kql"

    feed = parse(export_text(filled, FeedQuery(language=["kql"]), self_url=self_url))

    selves = [link.href for link in feed.feed.links if link.rel == "self"]
    assert selves == [self_url]


def test_empty_feed_uses_generated_time(store: Store) -> None:
    feed = parse(export_text(store))

    assert feed.bozo == 0
    assert feed.entries == []
    assert feed.feed.updated == "2025-02-01T12:00:00Z"


def test_default_limit_caps_entries(store: Store) -> None:
    rules = [
        Rule(
            source="bulk",
            path=f"rules/{index:04}.yml",
            rule_id=f"bulk-{index:04}",
            format="sigma",
            title=f"Bulk rule {index:04}",
            language="sigma",
            kind="detection",
            query="detection: {}",
            raw_text="",
            created=f"2024-01-{index % 28 + 1:02}",
        )
        for index in range(DEFAULT_MAX_ENTRIES + 30)
    ]
    fill_store(store, rules)

    written = export_rules(store, FeedQuery(), "atom", io.StringIO())

    assert written == DEFAULT_MAX_ENTRIES
