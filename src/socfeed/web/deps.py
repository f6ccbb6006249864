"""Request dependencies shared by the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from socfeed.store import FeedQuery, Store
from socfeed.web.facets import FacetCounter
from socfeed.web.params import TABLES_COOKIE, feed_query, split_tables, tables_from_cookie


def get_store(request: Request) -> Store:
    """Return the store the app was created with."""
    store: Store = request.app.state.store
    return store


def get_facets(request: Request) -> FacetCounter:
    """Return the facet counter of the app's store."""
    counter: FacetCounter = request.app.state.facets
    return counter


StoreDep = Annotated[Store, Depends(get_store)]
FacetsDep = Annotated[FacetCounter, Depends(get_facets)]
FeedQueryDep = Annotated[FeedQuery, Depends(feed_query)]


@dataclass
class MyTables:
    """The user's data sources and where the list came from: "url", "cookie" or ""."""

    tables: list[str]
    origin: str


def my_tables_of(request: Request) -> MyTables:
    """Return the data sources named by the URL's ``mine``, else by the cookie."""
    from_url = split_tables(request.query_params.getlist("mine"))
    if from_url:
        return MyTables(from_url, "url")
    from_cookie = tables_from_cookie(request.cookies.get(TABLES_COOKIE))
    return MyTables(from_cookie, "cookie" if from_cookie else "")


def is_api_path(path: str) -> bool:
    """Return True for paths of the JSON API and of downloads, whose errors are JSON."""
    return path == "/api" or path.startswith("/api/") or path.endswith((".json", ".atom"))
