"""The SOC feed: rules with filters, ranked search and facet counts, as HTML and JSON."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from socfeed.attack.ids import normalize_technique_id
from socfeed.model import SEVERITIES
from socfeed.store import FeedPage, FeedQuery
from socfeed.web.attack import technique_names
from socfeed.web.deps import FacetsDep, FeedQueryDep, MyTables, StoreDep, my_tables_of
from socfeed.web.facets import ALL_FACETS, Counts
from socfeed.web.params import (
    DEFAULT_PER_PAGE,
    LIST_FILTERS,
    SORT_LABELS,
    feed_url,
    filters_only,
    with_my_tables,
    with_official,
    with_page,
    with_value,
    without_official,
    without_text,
    without_value,
)
from socfeed.web.rendering import language_label, marked_snippet, render
from socfeed.web.schemas import ERROR_RESPONSES, FeedOut, PageLinks, feed_out

router = APIRouter()

# Facets listed beside the feed, in this order, with their headings. Tags are left out:
# the corpora carry over 1,300 of them, mostly ATT&CK ids again; tag badges filter instead.
FACET_TITLES = {
    "source": "Source",
    "language": "Language",
    "severity": "Severity",
    "kind": "Kind",
    "official": "Maintainer",
    "tactic": "Tactic",
    "technique": "Technique",
    "table": "Table or data source",
    "status": "Status",
}
FILTER_TITLES = {**FACET_TITLES, "tag": "Tag", "table": "Table"}
# Facets whose values are too many for a select: a text box with suggestions instead.
TYPED_FILTERS = ("technique", "table")
FACET_VISIBLE = 8  # values shown before the "more" fold
# Values listed at most per facet and per filter control. The seven corpus folders give
# 674 tables, and even a cap of 300 made the first feed page 217 KiB.
FACET_MAX = 50
OPTION_MAX = 200
# Export formats offered under the feed, with their link labels.
EXPORT_LABELS = {
    "csv": "CSV",
    "jsonl": "JSON Lines",
    "stix": "STIX 2.1",
    "navigator": "ATT&CK Navigator layer",
}


@dataclass
class FacetValue:
    """One value of a facet with its count and the link that turns it on or off."""

    value: str
    label: str
    count: int
    active: bool
    url: str


@dataclass
class ActiveFilter:
    """A filter in force, with the link that removes it."""

    label: str
    value: str
    remove_url: str


@dataclass
class SearchHint:
    """A filter that finds what the search words name exactly: a technique or a table."""

    text: str
    url: str


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def feed_page(
    request: Request, query: FeedQueryDep, store: StoreDep, counter: FacetsDep
) -> HTMLResponse:
    """Render the feed page."""
    page = store.feed(query, with_facets=False)
    page.facets = counter.facet_counts(query, tuple(FACET_TITLES))
    mine = my_tables_of(request)
    names = technique_names(value for value, _ in page.facets.get("technique", []))
    context = {
        "section": "feed",
        "query": query,
        "page": page,
        "facets": facet_values(page, query, names),
        "facet_titles": FACET_TITLES,
        "facet_visible": FACET_VISIBLE,
        "facet_totals": {name: len(counts) for name, counts in page.facets.items()},
        "typed_filters": TYPED_FILTERS,
        "default_per_page": DEFAULT_PER_PAGE,
        "sort_labels": SORT_LABELS,
        "effective_sort": query.sort or ("relevance" if query.text else "newest"),
        "options": select_options(page, query),
        "technique_names": names,
        "active_filters": active_filters(query),
        "pages": page_links(page, query),
        "links": api_page_links(page, query),
        "prev_url": feed_url(with_page(query, page.page - 1)) if page.page > 1 else None,
        "next_url": feed_url(with_page(query, page.page + 1)) if page.page < page.pages else None,
        "first_url": feed_url(with_page(query, 1)),
        "snippets": {key: marked_snippet(text) for key, text in page.snippets.items()},
        "hints": search_hints(query, page),
        "mine": mine,
        "mine_lower": {table.lower() for table in mine.tables},
        "mine_toggle": mine_toggle_url(query, mine),
        "exports": export_links(query),
        "atom_url": feed_url(filters_only(query), "/feed.atom"),
        "coverage_url": feed_url(filters_only(query), "/coverage"),
        "return_to": str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
    }
    return render(request, "feed.html", context)


@router.get("/api/rules", response_model=FeedOut, responses=ERROR_RESPONSES, tags=["rules"])
def api_rules(query: FeedQueryDep, store: StoreDep, counter: FacetsDep) -> FeedOut:
    """Return a page of the feed with facet counts. It takes the filters of the feed page."""
    page = store.feed(query, with_facets=False)
    page.facets = counter.facet_counts(query, ALL_FACETS)
    return feed_out(page, api_page_links(page, query))


def api_page_links(page: FeedPage, query: FeedQuery) -> PageLinks:
    """Return the API links of this page and its neighbours."""
    base = "/api/rules"
    return PageLinks(
        self=feed_url(query, base),
        html=feed_url(query),
        next=feed_url(with_page(query, page.page + 1), base) if page.page < page.pages else None,
        prev=feed_url(with_page(query, page.page - 1), base) if page.page > 1 else None,
    )


def export_links(query: FeedQuery) -> list[tuple[str, str]]:
    """Return (label, URL) of each export of the rules matching the feed's filters."""
    filters = filters_only(query)
    return [
        (label, feed_url(filters, f"/api/export/{name}")) for name, label in EXPORT_LABELS.items()
    ]


def facet_values(
    page: FeedPage, query: FeedQuery, names: dict[str, str]
) -> dict[str, list[FacetValue]]:
    """Return the facet lists of the sidebar, each value linking to the feed with it toggled."""
    facets: dict[str, list[FacetValue]] = {}
    for name in FACET_TITLES:
        counts = page.facets.get(name, [])[:FACET_MAX]
        if name == "official":
            facets[name] = [_official_value(query, value, count) for value, count in counts]
            continue
        active = getattr(query, name)
        facets[name] = [
            FacetValue(
                value=value,
                label=_facet_label(name, value, names),
                count=count,
                active=value in active,
                url=feed_url(
                    without_value(query, name, value)
                    if value in active
                    else with_value(query, name, value)
                ),
            )
            for value, count in counts
        ]
    return facets


def _facet_label(name: str, value: str, names: dict[str, str]) -> str:
    if name == "language":
        return language_label(value)
    if name == "technique" and value in names:
        return f"{value} {names[value]}"
    return value


def _official_value(query: FeedQuery, value: str, count: int) -> FacetValue:
    is_official = value == "official"
    active = query.official is is_official
    target = without_official(query) if active else with_official(query, is_official)
    label = "official (vendor)" if is_official else "community"
    return FacetValue(value=value, label=label, count=count, active=active, url=feed_url(target))


def select_options(page: FeedPage, query: FeedQuery) -> dict[str, Counts]:
    """Return the choices of each filter control, keeping active values that count zero."""
    options: dict[str, Counts] = {}
    for name in ("source", "language", "severity", "kind", *TYPED_FILTERS):
        counts = dict(page.facets.get(name, []))
        for value in getattr(query, name):
            counts.setdefault(value, 0)
        pairs = list(counts.items())
        if name == "severity":
            pairs.sort(key=lambda pair: _severity_rank(pair[0]))
        options[name] = pairs[:OPTION_MAX]
    return options


def _severity_rank(value: str) -> int:
    return SEVERITIES.index(value) if value in SEVERITIES else len(SEVERITIES)


def active_filters(query: FeedQuery) -> list[ActiveFilter]:
    """Return the filters in force, each with a link that removes it."""
    active: list[ActiveFilter] = []
    if query.text:
        active.append(ActiveFilter("Search", query.text, feed_url(without_text(query))))
    for name in LIST_FILTERS:
        for value in getattr(query, name):
            remove = feed_url(without_value(query, name, value))
            active.append(ActiveFilter(FILTER_TITLES[name], value, remove))
    if query.official is not None:
        label = "official" if query.official else "community"
        active.append(ActiveFilter("Maintainer", label, feed_url(without_official(query))))
    if query.my_tables is not None:
        count = len(query.my_tables)
        text = f"runnable on my {count} data source{'' if count == 1 else 's'}"
        active.append(ActiveFilter("My data", text, feed_url(with_my_tables(query, None))))
    return active


def mine_toggle_url(query: FeedQuery, mine: MyTables) -> str | None:
    """Return the link that turns the "my data sources" filter on or off; None without a list."""
    if query.my_tables is not None:
        return feed_url(with_my_tables(query, None))
    if not mine.tables:
        return None
    return feed_url(with_my_tables(query, mine.tables))


def search_hints(query: FeedQuery, page: FeedPage) -> list[SearchHint]:
    """Offer the technique or table filter when the search words are exactly one of them."""
    text = query.text.strip()
    if not text or " " in text:
        return []
    hints: list[SearchHint] = []
    technique = normalize_technique_id(text)
    if technique is not None and technique not in query.technique:
        target = with_value(without_text(query), "technique", technique)
        hints.append(SearchHint(f"rules mapped to {technique}", feed_url(target)))
    tables = [value for value, _ in page.facets.get("table", []) if value.lower() == text.lower()]
    for table in tables:
        if table not in query.table:
            target = with_value(without_text(query), "table", table)
            hints.append(SearchHint(f"rules that read {table}", feed_url(target)))
    return hints


def page_links(page: FeedPage, query: FeedQuery) -> list[tuple[str, str | None, bool]]:
    """Return (label, URL or None for a gap, is current) for the pagination bar."""
    shown = {1, page.pages, *range(page.page - 2, page.page + 3)}
    numbers = sorted(number for number in shown if 1 <= number <= page.pages)
    links: list[tuple[str, str | None, bool]] = []
    previous = 0
    for number in numbers:
        if number - previous > 1:
            links.append(("…", None, False))
        links.append((str(number), feed_url(with_page(query, number)), number == page.page))
        previous = number
    return links
