"""Tests of the rule store: replacing a source, duplicates, stale rules, feed queries."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from socfeed.errors import Location, ParseError
from socfeed.model import DataSource, Rule
from socfeed.store import FeedQuery, SourceRecord, Store, open_store

PG_URL = os.environ.get("SOCFEED_TEST_PG_URL", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Return an empty store on SQLite, and on PostgreSQL when SOCFEED_TEST_PG_URL is set."""
    if request.param == "sqlite":
        opened = open_store(tmp_path / "socfeed.db")
    else:
        if not PG_URL:
            pytest.skip("SOCFEED_TEST_PG_URL not set (scripts/start-test-postgres.sh sets it)")
        opened = open_store(PG_URL)
        with opened.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        opened.close()
        opened = open_store(PG_URL)
    yield opened
    opened.close()


def make_rule(path: str, rule_id: str, title: str, **fields: object) -> Rule:
    values: dict[str, object] = {
        "source": "demo",
        "path": path,
        "rule_id": rule_id,
        "format": "sentinel",
        "title": title,
        "language": "kql",
        "kind": "detection",
        "query": "SecurityEvent | take 1",
        "raw_text": f"name: {title}\n",
    }
    values.update(fields)
    return Rule(**values)  # type: ignore[arg-type]


def record() -> SourceRecord:
    return SourceRecord(name="demo", format="sentinel")


def test_duplicate_ids_both_stored_and_reported(store: Store) -> None:
    first = make_rule("Detections/a.yaml", "1111", "First name")
    second = make_rule("Detections/b.yaml", "1111", "Second name")

    saved = store.replace_source(record(), [first, second], [])

    assert saved.stored == 2
    assert saved.duplicates == [("1111", ["Detections/a.yaml", "Detections/b.yaml"])]
    titles = sorted(r.title for r in store.feed(FeedQuery()).rules)
    assert titles == ["First name", "Second name"]
    assert store.rule("demo:1111") is not None
    assert store.sources()[0].duplicates == 1


def test_duplicate_keys_stable_across_ingests(store: Store) -> None:
    rules = [make_rule("b.yaml", "7", "B"), make_rule("a.yaml", "7", "A")]
    store.replace_source(record(), rules, [])
    first_keys = sorted(r.key for r in rules)

    again = [make_rule("a.yaml", "7", "A"), make_rule("b.yaml", "7", "B")]
    store.replace_source(record(), again, [])

    assert sorted(r.key for r in again) == first_keys


def test_failed_file_keeps_earlier_rule(store: Store) -> None:
    store.replace_source(record(), [make_rule("x.yaml", "1", "Kept rule")], [])
    error = ParseError("invalid YAML", Location("demo", "x.yaml", 3, 1))

    saved = store.replace_source(record(), [], [error])

    assert saved.kept_stale == 1
    kept = store.rule("demo:1")
    assert kept is not None
    assert any("failed to parse" in w for w in kept.warnings)
    assert [str(e) for e in store.errors()] == ["demo:x.yaml:3:1: invalid YAML"]


def test_removed_file_drops_its_rule(store: Store) -> None:
    store.replace_source(record(), [make_rule("x.yaml", "1", "Gone")], [])

    store.replace_source(record(), [make_rule("y.yaml", "2", "New")], [])

    assert store.rule("demo:1") is None
    assert store.rule("demo:2") is not None


def test_feed_filters_and_facets(store: Store) -> None:
    rules = [
        make_rule(
            "a.yaml",
            "1",
            "Phish released",
            kind="hunting",
            techniques=["T1566"],
            data_sources=[DataSource("table", "EmailEvents")],
        ),
        make_rule("b.yaml", "2", "Kerberoast", severity="high", techniques=["T1558.003"]),
    ]
    store.replace_source(record(), rules, [])

    page = store.feed(FeedQuery(technique=["T1566"]))

    assert [r.title for r in page.rules] == ["Phish released"]
    assert ("hunting", 1) in page.facets["kind"]
    assert ("EmailEvents", 1) in page.facets["table"]
    # The technique facet ignores its own filter, so both techniques stay selectable.
    assert {value for value, _ in page.facets["technique"]} == {"T1566", "T1558.003"}


@pytest.mark.parametrize("text", ["emailevents", "T1566", "phish"])
def test_search_text_finds_rule(store: Store, text: str) -> None:
    rule = make_rule(
        "a.yaml",
        "1",
        "Phish released",
        techniques=["T1566"],
        data_sources=[DataSource("table", "EmailEvents")],
    )
    store.replace_source(record(), [rule], [])

    assert store.feed(FeedQuery(text=text)).total == 1


def test_newest_first_order(store: Store) -> None:
    rules = [
        make_rule("a.yaml", "1", "Old", modified="2020-01-01"),
        make_rule("b.yaml", "2", "New", modified="2024-05-01"),
        make_rule("c.yaml", "3", "Middle", created="2022-03-03"),
    ]
    store.replace_source(record(), rules, [])

    titles = [r.title for r in store.feed(FeedQuery()).rules]

    assert titles == ["New", "Middle", "Old"]


def test_unicode_text_round_trips(store: Store) -> None:
    title = "Connexion réussie “après” échec – Вход"
    store.replace_source(record(), [make_rule("u.yaml", "u", title, query=f"// {title}")], [])

    stored = store.rule("demo:u")

    assert stored is not None
    assert stored.title == title
    assert stored.query == f"// {title}"


def test_changed_rule_keeps_history(store: Store) -> None:
    store.replace_source(record(), [make_rule("a.yaml", "1", "Before")], [])

    newer = record()
    newer.retrieved_at = "2030-01-01T00:00:00Z"
    changed = make_rule("a.yaml", "1", "After", retrieved_at="2030-01-01T00:00:00Z")
    store.replace_source(newer, [changed], [])

    stored = store.rule("demo:1")
    assert stored is not None
    change = stored.extra["change"]
    assert change["status"] == "changed"
    assert "title" in change["fields"]
    assert "query" not in change["fields"]
    versions = store.versions("demo:1")
    assert [v["reason"] for v in versions] == ["changed"]


def test_unchanged_rule_has_no_change_note(store: Store) -> None:
    store.replace_source(record(), [make_rule("a.yaml", "1", "Same")], [])

    store.replace_source(record(), [make_rule("a.yaml", "1", "Same")], [])

    stored = store.rule("demo:1")
    assert stored is not None
    assert stored.extra["change"] is None
    assert store.versions("demo:1") == []


def test_removed_rule_is_retired(store: Store) -> None:
    store.replace_source(record(), [make_rule("a.yaml", "1", "Gone soon")], [])

    store.replace_source(record(), [make_rule("b.yaml", "2", "Stays")], [])

    assert [v["reason"] for v in store.versions("demo:1")] == ["retired"]
    added = store.rule("demo:2")
    assert added is not None
    assert added.extra["change"] == {"status": "new"}


def test_my_tables_keeps_runnable_rules(store: Store) -> None:
    rules = [
        make_rule("a.yaml", "1", "Email only", data_sources=[DataSource("table", "EmailEvents")]),
        make_rule(
            "b.yaml",
            "2",
            "Email and cloud apps",
            data_sources=[
                DataSource("table", "EmailEvents"),
                DataSource("table", "CloudAppEvents"),
            ],
        ),
    ]
    store.replace_source(record(), rules, [])

    page = store.feed(FeedQuery(my_tables=["emailevents"]))

    assert [r.title for r in page.rules] == ["Email only"]


def test_technique_coverage_counts_kinds(store: Store) -> None:
    rules = [
        make_rule("a.yaml", "1", "Hunt", kind="hunting", techniques=["T1566"]),
        make_rule("b.yaml", "2", "Old", status="deprecated", techniques=["T1566", "T1059"]),
    ]
    store.replace_source(record(), rules, [])

    coverage = store.technique_coverage(FeedQuery())

    assert coverage["T1566"] == {"rules": 2, "hunting": 1, "detection": 1, "deprecated": 1}
    assert coverage["T1059"]["deprecated"] == 1


def test_search_ranks_title_match_first(store: Store) -> None:
    rules = [
        make_rule("a.yaml", "1", "Other rule", description="mentions kerberoast once"),
        make_rule("b.yaml", "2", "Kerberoast request", modified="2000-01-01"),
    ]
    store.replace_source(record(), rules, [])

    page = store.feed(FeedQuery(text="kerberoast"))

    assert [r.title for r in page.rules] == ["Kerberoast request", "Other rule"]
    assert page.snippets["demo:2"].startswith("\x02Kerberoast\x03 request")


def test_search_text_with_fts_syntax_is_literal(store: Store) -> None:
    store.replace_source(record(), [make_rule("a.yaml", "1", "A rule OR")], [])

    # Punctuation alone has no words, so it filters nothing.
    assert store.feed(FeedQuery(text='"')).total == 1
    assert store.feed(FeedQuery(text="*")).total == 1
    # FTS5 operators are searched as words, never interpreted.
    assert store.feed(FeedQuery(text="rule OR")).total == 1
    assert store.feed(FeedQuery(text="title:rule")).total == 0
    assert store.feed(FeedQuery(text="NEAR(a b)")).total == 0
