"""Feed filters as query parameters, shared by every page and its JSON twin, and their links."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlencode

from fastapi import Cookie, Query
from pydantic import BeforeValidator

from socfeed.attack.ids import normalize_technique_id, tactic_by_any
from socfeed.model import Kind, Severity
from socfeed.store import FeedQuery

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500  # the store caps a page at 500 rules
MAX_PAGE = 100_000
Sort = Literal["relevance", "newest", "severity", "title"]
SORT_LABELS = {
    "relevance": "Best match",
    "newest": "Newest first",
    "severity": "Severity",
    "title": "Title",
}

# The cookie that keeps the tables and log sources a user collects ("my data sources").
TABLES_COOKIE = "socfeed_tables"
# Browsers keep cookies of up to 4,096 bytes, name and attributes included.
MAX_TABLES_COOKIE = 3800
MAX_MY_TABLES = 300
_TABLE_SEPARATOR = re.compile(r"[,\n\r]+")

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
OptionalSort = Annotated[Sort | None, BeforeValidator(_empty_as_none)]


def feed_query(
    q: Annotated[
        str,
        Query(
            max_length=500,
            description="Search words, all of which must occur in the title, description, "
            "query, tags, techniques or tables; the last word also matches as a prefix.",
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
    mine: Annotated[
        StrList,
        Query(
            description="My data sources: table or log source names, comma-separated or "
            f"repeated. Overrides the {TABLES_COOKIE} cookie."
        ),
    ] = None,
    mine_only: Annotated[
        OptionalBool,
        Query(
            description="true: only rules every table of which is among my data sources "
            f"(from mine, else the {TABLES_COOKIE} cookie)."
        ),
    ] = None,
    sort: Annotated[
        OptionalSort,
        Query(description="Order of the rules; default: relevance with search words, else newest."),
    ] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, Query(ge=1, le=MAX_PER_PAGE, description="Rules per page.")
    ] = DEFAULT_PER_PAGE,
    socfeed_tables: Annotated[
        str | None,
        Cookie(description="My data sources as saved by the form: comma-separated names."),
    ] = None,
) -> FeedQuery:
    """Build a FeedQuery from the request's query parameters and the data-sources cookie."""
    tables = split_tables(mine) if mine else tables_from_cookie(socfeed_tables)
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
        my_tables=tables if mine_only else None,
        sort=sort or "",
        page=page,
        per_page=per_page,
    )


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(value.strip() for value in values or [] if value.strip()))


def _tactic_name(value: str) -> str:
    # The store keeps tactic display names, so "TA0002" or "execution" become "Execution".
    found = tactic_by_any(value)
    return found.name if found else value


def split_tables(values: list[str] | str | None) -> list[str]:
    """Split table names given comma- or line-separated, dropping blanks and repeats."""
    if values is None:
        return []
    texts = [values] if isinstance(values, str) else values
    names = (name for text in texts for name in _TABLE_SEPARATOR.split(text))
    return _unique(names)[:MAX_MY_TABLES]


def tables_from_cookie(value: str | None) -> list[str]:
    """Return the table names saved in the data-sources cookie."""
    return split_tables(unquote(value)) if value else []


def tables_cookie_value(tables: list[str]) -> str:
    """Return the cookie value that saves ``tables``; raise ValueError when it is too long."""
    value = quote(",".join(tables), safe="")
    if len(value) > MAX_TABLES_COOKIE:
        raise ValueError(
            f"the list of {len(tables)} data sources is {len(value)} bytes once encoded, "
            f"more than the {MAX_TABLES_COOKIE} a cookie can keep; shorten the list"
        )
    return value


def query_params(query: FeedQuery) -> list[tuple[str, str]]:
    """Return the query parameters that reproduce ``query``, leaving out default values.

    The "my data sources" list is written out in full, so that a shared link shows the same
    rules to someone whose cookie lists other tables.
    """
    params: list[tuple[str, str]] = []
    if query.text:
        params.append(("q", query.text))
    for name in LIST_FILTERS:
        params.extend((name, value) for value in getattr(query, name))
    if query.official is not None:
        params.append(("official", "true" if query.official else "false"))
    if query.my_tables is not None:
        params.append(("mine_only", "true"))
        if query.my_tables:
            params.append(("mine", ",".join(query.my_tables)))
    if query.sort:
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


def filters_only(query: FeedQuery) -> FeedQuery:
    """Return a copy of ``query`` without order and page: what coverage and exports take."""
    return dataclasses.replace(query, sort="", page=1, per_page=DEFAULT_PER_PAGE)


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


def with_official(query: FeedQuery, official: bool) -> FeedQuery:
    """Return a copy of ``query`` on page 1 with only official or only community rules."""
    return dataclasses.replace(query, page=1, official=official)


def without_text(query: FeedQuery) -> FeedQuery:
    """Return a copy of ``query`` on page 1 without the search words."""
    return dataclasses.replace(query, page=1, text="")


def with_my_tables(query: FeedQuery, tables: list[str] | None) -> FeedQuery:
    """Return a copy of ``query`` on page 1 limited to rules runnable on ``tables`` (None: off)."""
    return dataclasses.replace(query, page=1, my_tables=tables)


def single_filter_url(name: str, value: str) -> str:
    """Return the feed URL that filters on one value only (badge and coverage links)."""
    return feed_url(_with_list(FeedQuery(), name, [value]))
