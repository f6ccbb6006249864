"""Request the web app's pages in process and write them, with site links, into the site."""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from fastapi import FastAPI

from socfeed.site.paths import APP_ORIGIN, SiteMap, app_rule_api_path, app_rule_path
from socfeed.site.rewrite import rewrite_atom, rewrite_css, rewrite_html, rewrite_json
from socfeed.store import Store, open_store
from socfeed.web.app import create_app

log = logging.getLogger(__name__)


class AppClient:
    """Send GET requests to an ASGI app in this process, with the app's lifespan running.

    It runs its own event loop, so it must not be used from inside a running event loop.
    """

    def __init__(self, app: FastAPI) -> None:
        self._loop = asyncio.new_event_loop()
        # identity: the app gzips large responses, and the site stores them uncompressed.
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=APP_ORIGIN,
            headers={"accept-encoding": "identity"},
        )
        self._lifespan: AbstractAsyncContextManager[object] = app.router.lifespan_context(app)
        self._loop.run_until_complete(self._lifespan.__aenter__())
        self._stored: dict[str, httpx.Response] = {}

    def get(self, path: str, *, keep: bool = False) -> httpx.Response:
        """Send a GET request for an app path and return the whole response.

        ``keep`` stores the response for one later ``get`` of the same path, which saves
        rendering a page twice when its media type was asked for before it is written.
        """
        stored = self._stored.pop(path, None)
        if stored is not None:
            return stored
        response = self._loop.run_until_complete(self._client.get(path))
        if keep:
            self._stored[path] = response
        return response

    def close(self) -> None:
        """Stop the app's lifespan and close the event loop."""
        try:
            self._loop.run_until_complete(self._lifespan.__aexit__(None, None, None))
            self._loop.run_until_complete(self._client.aclose())
        finally:
            self._loop.close()


@dataclass
class RenderTotals:
    """Counts of the files a batch of requests wrote, and its failures."""

    files: int = 0
    html_pages: int = 0
    bytes: int = 0
    rules: int = 0
    failed: list[str] = field(default_factory=list)  # "GET /path: 500 Internal Server Error"
    unplanned: dict[str, str] = field(default_factory=dict)  # site file -> app URL
    unresolved: set[str] = field(default_factory=set)  # linked app URLs the app does not serve

    def add(self, other: RenderTotals) -> None:
        """Add the counts of another batch to these."""
        self.files += other.files
        self.html_pages += other.html_pages
        self.bytes += other.bytes
        self.rules += other.rules
        self.failed.extend(other.failed)
        for file, url in other.unplanned.items():
            self.unplanned.setdefault(file, url)
        self.unresolved.update(other.unresolved)


class SiteRenderer:
    """Fetch app URLs, rewrite their links and write them into the site folder."""

    def __init__(self, client: AppClient, site: SiteMap, root: Path, origin: str = "") -> None:
        self.client = client
        self.site = site
        self.root = root
        self.origin = origin
        self.totals = RenderTotals()

    def save(self, app_path: str, file: str) -> bool:
        """Fetch ``app_path`` and write it to ``file``. On a failure, record it and return False."""
        response = self.client.get(app_path)
        if response.status_code != 200:
            reason = f"GET {app_path}: {response.status_code} {response.reason_phrase}"
            log.warning("page not written file=%s error=%s", file, reason)
            self.totals.failed.append(reason)
            return False
        self.write(file, self.transform(response, app_path))
        return True

    def transform(self, response: httpx.Response, app_path: str) -> bytes:
        """Return a response body with its internal links pointing at the site.

        A JSON or Atom body that does not parse is written as it came, with a warning.
        """
        media_type = _media_type(response)
        try:
            if media_type == "text/html":
                text = rewrite_html(response.text, app_path, self.site, response.headers)
            elif media_type == "application/json" or media_type.endswith("+json"):
                text = rewrite_json(response.text, app_path, self.site)
            elif media_type == "text/css":
                text = rewrite_css(response.text, app_path, self.site)
            elif media_type == "application/atom+xml":
                text = rewrite_atom(response.text, app_path, self.site, self.origin)
            else:
                return response.content
        except (ValueError, ET.ParseError) as exc:
            log.warning(
                "links not rewritten path=%s media_type=%s error=%s", app_path, media_type, exc
            )
            return response.content
        return text.encode("utf-8")

    def write(self, file: str, data: bytes | str) -> None:
        """Write one site file, creating its folder."""
        body = data.encode("utf-8") if isinstance(data, str) else data
        target = self.root / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        self.totals.files += 1
        self.totals.bytes += len(body)
        if file.endswith(".html"):
            self.totals.html_pages += 1

    def render_rule(self, key: str) -> None:
        """Write the page and the JSON document of one rule."""
        name = self.site.rule_names[key]
        page_ok = self.save(app_rule_path(key), f"rules/{name}/index.html")
        json_ok = self.save(app_rule_api_path(key), f"rules/{name}/rule.json")
        if page_ok and json_ok:
            self.totals.rules += 1

    def take_totals(self) -> RenderTotals:
        """Return the totals so far, with the links to unplanned files, and start new ones."""
        totals = self.totals
        totals.unplanned = dict(self.site.unplanned)
        totals.unresolved = set(self.site.unresolved)
        self.site.unplanned.clear()
        self.site.unresolved.clear()
        self.totals = RenderTotals()
        return totals


def probe_media_type(client: AppClient, url: str, keep: bool = False) -> str | None:
    """Return the media type the app serves ``url`` with, or None if it is not a 200."""
    response = client.get(url, keep=keep)
    if response.status_code != 200:
        return None
    return _media_type(response)


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


# One renderer per worker process, set up by start_worker.
_worker: SiteRenderer | None = None
_worker_store: Store | None = None


def start_worker(db_url: str, site: SiteMap, root: str, origin: str) -> None:
    """Open the store and the app in a worker process (a ProcessPoolExecutor initializer)."""
    global _worker, _worker_store
    _worker_store = open_store(db_url)
    client = AppClient(create_app(_worker_store))
    site.probe = partial(probe_media_type, client)
    _worker = SiteRenderer(client, site, Path(root), origin)


def render_rules_in_worker(keys: list[str]) -> RenderTotals:
    """Write the pages of ``keys`` in a worker process and return what was written."""
    if _worker is None:
        raise RuntimeError("start_worker must run before render_rules_in_worker")
    for key in keys:
        _worker.render_rule(key)
    return _worker.take_totals()
