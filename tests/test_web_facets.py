"""Tests of the in-memory facet counts: they must equal the store's own SQL counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from socfeed.store import FeedQuery, SourceRecord, Store, open_store
from socfeed.web.facets import ALL_FACETS, FacetCounter
from test_web_app import fill_store, make_rule

# Filters of every kind, alone and combined, as the feed and coverage pages send them.
QUERIES = [
    FeedQuery(),
    FeedQuery(source=["sigma"]),
    FeedQuery(source=["sigma", "azure-sentinel"], severity=["high", "medium"]),
    FeedQuery(kind=["hunting"]),
    FeedQuery(official=True),
    FeedQuery(official=False, language=["sigma"]),
    FeedQuery(technique=["T1059.001"]),
    FeedQuery(tactic=["Execution", "Initial Access"]),
    FeedQuery(table=["SecurityEvent"]),
    FeedQuery(tag=["attack.execution"]),
    FeedQuery(status=["test"]),
    FeedQuery(text="filler"),
    FeedQuery(text="cradle", source=["sigma"]),
    FeedQuery(text="no-such-word"),
    FeedQuery(my_tables=["SecurityEvent", "DemoVendorLogs_CL"]),
    FeedQuery(my_tables=["securityevent"]),
    FeedQuery(my_tables=[]),
    FeedQuery(severity=["low"], my_tables=["x"], text="rule"),
]


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = open_store(tmp_path_factory.mktemp("facets") / "web.db")
    fill_store(store)
    yield store
    store.close()


def as_dicts(counts: dict[str, list[tuple[str, int]]]) -> dict[str, dict[str, int]]:
    return {name: dict(pairs) for name, pairs in counts.items()}


@pytest.mark.parametrize("query", QUERIES, ids=[str(number) for number in range(len(QUERIES))])
def test_counts_equal_store(filled_store: Store, query: FeedQuery) -> None:
    counter = FacetCounter(filled_store)

    ours = as_dicts(counter.facet_counts(query))
    theirs = as_dicts(filled_store.feed(query).facets)

    for name in ALL_FACETS:
        assert ours[name] == theirs[name], name


@pytest.mark.parametrize("query", QUERIES, ids=[str(number) for number in range(len(QUERIES))])
def test_coverage_equals_store(filled_store: Store, query: FeedQuery) -> None:
    counter = FacetCounter(filled_store)

    ours = counter.technique_coverage(query)
    theirs = filled_store.technique_coverage(query)

    assert {t: {k: v for k, v in c.items() if k in theirs[t]} for t, c in ours.items()} == theirs


def test_counts_sorted_most_common_first(filled_store: Store) -> None:
    counts = FacetCounter(filled_store).facet_counts(FeedQuery(), ("source",))["source"]

    assert [count for _, count in counts] == sorted((count for _, count in counts), reverse=True)


def test_index_rebuilt_after_update(store: Store) -> None:
    record = SourceRecord(name="elastic", format="elastic", retrieved_at="2026-01-01T00:00:00Z")
    store.replace_source(record, [make_rule("elastic", "a", "A")], [])
    counter = FacetCounter(store)
    first = counter.index()

    later = SourceRecord(name="elastic", format="elastic", retrieved_at="2026-02-01T00:00:00Z")
    store.replace_source(
        later, [make_rule("elastic", "a", "A"), make_rule("elastic", "b", "B")], []
    )

    assert counter.index() is not first
    assert counter.facet_counts(FeedQuery(), ("source",))["source"] == [("elastic", 2)]


def test_index_kept_while_store_unchanged(store: Store) -> None:
    store.replace_source(
        SourceRecord(name="elastic", format="elastic"), [make_rule("elastic", "a", "A")], []
    )
    counter = FacetCounter(store)

    assert counter.index() is counter.index()


def test_revoked_ids_merged_once(store: Store) -> None:
    both = make_rule("elastic", "a", "Both ids", techniques=["T1086", "T1059.001"])
    old = make_rule("elastic", "b", "Old id", techniques=["T1086"])
    store.replace_source(SourceRecord(name="elastic", format="elastic"), [both, old], [])

    coverage = FacetCounter(store).technique_coverage(FeedQuery(), {"T1086": "T1059.001"})

    assert coverage["T1059.001"]["rules"] == 2
    assert "T1086" not in coverage


def test_active_detection_leaves_out_deprecated(store: Store) -> None:
    rules = [
        make_rule("elastic", "a", "Hunt", kind="hunting", techniques=["T1078"]),
        make_rule("elastic", "b", "Old", status="deprecated", techniques=["T1078"]),
    ]
    store.replace_source(SourceRecord(name="elastic", format="elastic"), rules, [])

    counts = FacetCounter(store).technique_coverage(FeedQuery())["T1078"]

    assert counts["detection"] == 1
    assert counts["active_detection"] == 0


@pytest.mark.corpus
@pytest.mark.parametrize(
    "query",
    [
        FeedQuery(),
        FeedQuery(source=["sigma"], kind=["detection"]),
        FeedQuery(text="powershell encoded"),
        FeedQuery(technique=["T1566"], official=True),
        FeedQuery(my_tables=["SecurityEvent", "SigninLogs", "AuditLogs", "EmailEvents"]),
    ],
    ids=["all", "sigma-detection", "search", "technique-official", "mine"],
)
def test_corpus_counts_equal_store(corpus_store: Store, query: FeedQuery) -> None:
    counter = FacetCounter(corpus_store)

    ours = as_dicts(counter.facet_counts(query))
    theirs = as_dicts(corpus_store.feed(query).facets)

    for name in ALL_FACETS:
        assert ours[name] == theirs[name], name
