"""The SOC feed: newest rules first with filters, search and facet counts, as HTML and JSON."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from socfeed.model import SEVERITIES
from socfeed.store import FeedPage, FeedQuery
from socfeed.web.deps import FeedQueryDep, StoreDep
from socfeed.web.params import (
    DEFAULT_PER_PAGE,
    LIST_FILTERS,
    feed_url,
    with_page,
    with_value,
    without_official,
    without_text,
    without_value,
)
from socfeed.web.rendering import render
from socfeed.web.schemas import ERROR_RESPONSES, FeedOut, PageLinks, feed_out

router = APIRouter()

# Facets listed beside the feed, in this order, with their headings.
FACET_TITLES = {
    "source": "Source",
    "language": "Language",
    "severity": "Severity",
    "kind": "Kind",
    "official": "Maintainer",
    "status": "Status",
    "tactic": "Tactic",
    "technique": "Technique",
    "table": "Table",
    "tag": "Tag",
}
# Facets whose values are too many for a select: a text box with suggestions instead.
TYPED_FILTERS = ("technique", "table")
FACET_VISIBLE = 8  # values shown before the "more" fold
# Values listed at most per facet and per filter control. The seven corpus folders give
# 1,336 tags and 674 tables, and even a cap of 300 made the first feed page 217 KiB.
FACET_MAX = 50
OPTION_MAX = 200


@dataclass
class FacetValue:
    """One value of a facet with its count and the link that turns it on or off."""

    value: str
    count: int
    active: bool
    url: str


@dataclass
class ActiveFilter:
    """A filter in force, with the link that removes it."""

    label: str
    value: str
    remove_url: str


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def feed_page(request: Request, query: FeedQueryDep, store: StoreDep) -> HTMLResponse:
    """Render the feed page."""
    page = store.feed(query)
    context = {
        "section": "feed",
        "query": query,
        "page": page,
        "facets": facet_values(page, query),
        "facet_titles": FACET_TITLES,
        "facet_visible": FACET_VISIBLE,
        "facet_totals": {name: len(counts) for name, counts in page.facets.items()},
        "typed_filters": TYPED_FILTERS,
        "default_per_page": DEFAULT_PER_PAGE,
        "options": select_options(page, query),
        "active_filters": active_filters(query),
        "pages": page_links(page, query),
        "links": api_page_links(page, query),
        "prev_url": feed_url(with_page(query, page.page - 1)) if page.page > 1 else None,
        "next_url": feed_url(with_page(query, page.page + 1)) if page.page < page.pages else None,
        "first_url": feed_url(with_page(query, 1)),
    }
    return render(request, "feed.html", context)


@router.get("/api/rules", response_model=FeedOut, responses=ERROR_RESPONSES, tags=["rules"])
def api_rules(query: FeedQueryDep, store: StoreDep) -> FeedOut:
    """Return a page of the feed with facet counts. It takes the filters of the feed page."""
    page = store.feed(query)
    return feed_out(page, api_page_links(page, query))


def api_page_links(page: FeedPage, query: FeedQuery) -> PageLinks:
    """Return the API links of this page and its neighbours."""
    base = "/api/rules"
    return PageLinks(
        self=feed_url(query, base),
        next=feed_url(with_page(query, page.page + 1), base) if page.page < page.pages else None,
        prev=feed_url(with_page(query, page.page - 1), base) if page.page > 1 else None,
    )


def facet_values(page: FeedPage, query: FeedQuery) -> dict[str, list[FacetValue]]:
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


def _official_value(query: FeedQuery, value: str, count: int) -> FacetValue:
    wanted = value == "official"
    active = query.official is wanted
    target = without_official(query) if active else _with_official(query, wanted)
    return FacetValue(value=value, count=count, active=active, url=feed_url(target))


def _with_official(query: FeedQuery, official: bool) -> FeedQuery:
    target = without_official(query)
    target.official = official
    return target


def select_options(page: FeedPage, query: FeedQuery) -> dict[str, list[tuple[str, int]]]:
    """Return the choices of each filter control, keeping active values that count zero."""
    options: dict[str, list[tuple[str, int]]] = {}
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
            active.append(ActiveFilter(FACET_TITLES[name], value, remove))
    if query.official is not None:
        label = "official" if query.official else "community"
        active.append(ActiveFilter("Maintainer", label, feed_url(without_official(query))))
    return active


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
