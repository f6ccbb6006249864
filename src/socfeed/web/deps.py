"""Request dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from socfeed.store import FeedQuery, Store
from socfeed.web.params import feed_query


def get_store(request: Request) -> Store:
    """Return the store the app was created with."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]
FeedQueryDep = Annotated[FeedQuery, Depends(feed_query)]


def is_api_path(path: str) -> bool:
    """Return True for paths of the JSON API, whose errors are JSON too."""
    return path == "/api" or path.startswith("/api/")
