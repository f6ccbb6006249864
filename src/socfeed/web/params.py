"""Feed filters as query parameters, shared by the feed page and /api/rules, and their links."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Query
from pydantic import BeforeValidator

from socfeed.attack.ids import normalize_technique_id, tactic_by_any
from socfeed.model import Kind, Severity
from socfeed.store import FeedQuery

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500  # the store caps a page at 500 rules
MAX_PAGE = 100_000
SORTS = ("newest", "severity", "title")
Sort = Literal["newest", "severity", "title"]

# The filters that take several values, in the order links write them.
LIST_FILTERS = (
    "source",
    "language",
    "severity",
    "kind",
    "status",
    "tactic",
    "technique",
    "table",
    "tag",
)


def _drop_empty(value: Any) -> Any:
    # A form's "any" option submits an empty value, which means no filter.
    if isinstance(value, list):
        return [item for item in value if item != ""]
    return value


def _empty_as_none(value: Any) -> Any:
    return None if value == "" else value


StrList = Annotated[list[str] | None, BeforeValidator(_drop_empty)]
SeverityList = Annotated[list[Severity] | None, BeforeValidator(_drop_empty)]
KindList = Annotated[list[Kind] | None, BeforeValidator(_drop_empty)]
OptionalBool = Annotated[bool | None, BeforeValidator(_empty_as_none)]


def feed_query(
    q: Annotated[
        str,
        Query(
            max_length=500,
            description="Words that must all occur in the title, description, query, tags, "
            "techniques or tables (case-insensitive).",
        ),
    ] = "",
    source: Annotated[StrList, Query(description="Source name; repeat for several.")] = None,
    language: Annotated[StrList, Query(description="Query language, e.g. kql, spl, sigma.")] = None,
    severity: Annotated[SeverityList, Query(description="Severity; repeat for several.")] = None,
    kind: Annotated[KindList, Query(description="Rule kind: detection or hunting.")] = None,
    status: Annotated[StrList, Query(description="Rule status, e.g. stable, deprecated.")] = None,
    tactic: Annotated[
        StrList, Query(description="ATT&CK tactic name or id; all must match.")
    ] = None,
    technique: Annotated[
        StrList, Query(description="ATT&CK technique id such as T1059.001; all must match.")
    ] = None,
    table: Annotated[
        StrList, Query(description="Table or data source name; all must match.")
    ] = None,
    tag: Annotated[StrList, Query(description="Tag; all must match.")] = None,
    official: Annotated[
        OptionalBool, Query(description="true: vendor-maintained sources only; false: community.")
    ] = None,
    sort: Annotated[Sort, Query(description="Order of the rules.")] = "newest",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, Query(ge=1, le=MAX_PER_PAGE, description="Rules per page.")
    ] = DEFAULT_PER_PAGE,
) -> FeedQuery:
    """Build a FeedQuery from the request's query parameters."""
    return FeedQuery(
        text=q.strip(),
        source=_unique(source),
        language=_unique(language),
        severity=_unique(severity),
        kind=_unique(kind),
        status=_unique(status),
        tactic=_unique(_tactic_name(value) for value in tactic or []),
        technique=_unique(normalize_technique_id(value) or value for value in technique or []),
        table=_unique(table),
        tag=_unique(tag),
        official=official,
        sort=sort,
        page=page,
        per_page=per_page,
    )


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(value.strip() for value in values or [] if value.strip()))


def _tactic_name(value: str) -> str:
    # The store keeps tactic display names, so "TA0002" or "execution" become "Execution".
    found = tactic_by_any(value)
    return found.name if found else value


def query_params(query: FeedQuery) -> list[tuple[str, str]]:
    """Return the query parameters that reproduce ``query``, leaving out default values."""
    params: list[tuple[str, str]] = []
    if query.text:
        params.append(("q", query.text))
    for name in LIST_FILTERS:
        params.extend((name, value) for value in getattr(query, name))
    if query.official is not None:
        params.append(("official", "true" if query.official else "false"))
    if query.sort != "newest":
        params.append(("sort", query.sort))
    if query.per_page != DEFAULT_PER_PAGE:
        params.append(("per_page", str(query.per_page)))
    if query.page != 1:
        params.append(("page", str(query.page)))
    return params


def feed_url(query: FeedQuery, base: str = "/") -> str:
    """Return the URL of the feed page (or of ``base``) for ``query``."""
    params = query_params(query)
    return base + ("?" + urlencode(params) if params else "")


def with_page(query: FeedQuery, page: int) -> FeedQuery:
    """Return a copy of ``query`` that shows another page."""
    return dataclasses.replace(query, page=page)


def with_value(query: FeedQuery, name: str, value: str) -> FeedQuery:
    """Return a copy of ``query`` on page 1 with one more value of the filter ``name``."""
    values = _values(query, name)
    return _with_list(query, name, values if value in values else [*values, value])


def without_value(query: FeedQuery, name: str, value: str) -> FeedQuery:
    """Return a copy of ``query`` on page 1 without one value of the filter ``name``."""
    return _with_list(query, name, [item for item in _values(query, name) if item != value])


def _values(query: FeedQuery, name: str) -> list[str]:
    if name not in LIST_FILTERS:
        raise ValueError(f"{name!r} is not a list filter; expected one of {LIST_FILTERS}")
    values: list[str] = getattr(query, name)
    return values


def _with_list(query: FeedQuery, name: str, values: list[str]) -> FeedQuery:
    _values(query, name)  # raises ValueError when ``name`` is no list filter
    changed = dataclasses.replace(query, page=1)
    setattr(changed, name, values)
    return changed


def without_official(query: FeedQuery) -> FeedQuery:
    """Return a copy of ``query`` on page 1 without the official/community filter."""
    return dataclasses.replace(query, page=1, official=None)


def without_text(query: FeedQuery) -> FeedQuery:
    """Return a copy of ``query`` on page 1 without the search words."""
    return dataclasses.replace(query, page=1, text="")


def single_filter_url(name: str, value: str) -> str:
    """Return the feed URL that filters on one value only (badge and coverage links)."""
    return feed_url(_with_list(FeedQuery(), name, [value]))
