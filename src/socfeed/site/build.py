"""Build the whole feed as a static site: the app's pages with site links, and a search."""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from socfeed.errors import SocfeedError
from socfeed.export import ExportContext, export_rules
from socfeed.model import Rule
from socfeed.site.paths import (
    APP_ORIGIN,
    NOT_FOUND_FILE,
    SEARCH_FILE,
    SEARCH_INDEX_FILE,
    SiteMap,
    feed_json_path,
    feed_page_path,
    normalize_base_path,
    rule_dir_name,
)
from socfeed.site.render import (
    AppClient,
    RenderTotals,
    SiteRenderer,
    probe_media_type,
    render_rules_in_worker,
    start_worker,
)
from socfeed.site.rewrite import replace_main, rewrite_atom
from socfeed.site.search import (
    SearchIndex,
    asset_files,
    not_found_main,
    search_main,
    standalone_page,
)
from socfeed.store import FeedQuery, Store
from socfeed.web.app import create_app

log = logging.getLogger(__name__)

# A folder that contains this file was written by build_site, so the next build may replace it.
MARKER_FILE = ".socfeed-site"
# App pages every site has besides the feed pages and the rules.
FIXED_PATHS = ("/coverage", "/sources", "/api/coverage", "/api/sources")
ATOM_PATH = "/feed.atom"
# A path the app has no page for: its 404 page gives the header and footer of the site's
# own pages (search, 404).
FRAME_PATH = "/404"
# Worker processes pay about a second each to import the app, so small stores render in one.
RULES_PER_WORKER = 500
CHUNK_SIZE = 100
# Rounds of fetching pages that rendered pages link to but that no step planned.
MAX_DISCOVERY_ROUNDS = 5
MAX_LINKED_FILES = 500
DEFAULT_FEED_PAGES = 20

ProgressCallback = Callable[[int, int], None]


class SiteError(SocfeedError):
    """The static site could not be built or put in place."""


@dataclass
class SiteReport:
    """Counts and duration of one site build."""

    path: Path
    pages: int  # HTML files
    rules: int  # rules whose page and JSON document were both written
    files: int
    bytes: int
    seconds: float
    feed_pages: int
    workers: int
    failed: list[str] = field(default_factory=list)  # "GET /path: 500 Internal Server Error"


@dataclass
class _Options:
    base_path: str
    origin: str
    feed_pages: int
    directory_urls: bool
    search_query_text: bool
    workers: int | None
    progress: ProgressCallback | None


def build_site(
    store: Store,
    out_dir: str | os.PathLike[str],
    *,
    base_path: str = "/",
    origin: str = "",
    feed_pages: int = DEFAULT_FEED_PAGES,
    directory_urls: bool = True,
    search_query_text: bool = False,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> SiteReport:
    """Render every page of the feed through the web app into ``out_dir`` as a static site.

    The site is built in a new folder beside ``out_dir`` and swapped in when complete, so a
    failed build leaves ``out_dir`` as it was. ``base_path`` is the URL path the site is
    served under. ``origin`` ("https://rules.example.org") makes the Atom feed's links
    absolute. ``feed_pages`` caps the pages of the unfiltered feed. ``workers`` sets the
    processes that render rule pages (None: one per CPU for large stores). Workers are
    started with the spawn method, so a script that calls this with more than one needs an
    ``if __name__ == "__main__":`` guard. Pages that fail to render are listed in the
    report's ``failed`` and the rest of the site is written.
    """
    started = time.perf_counter()
    if feed_pages < 1:
        raise ValueError(f"feed_pages must be at least 1, got {feed_pages}")
    options = _Options(
        normalize_base_path(base_path),
        origin.rstrip("/"),
        feed_pages,
        directory_urls,
        search_query_text,
        workers,
        progress,
    )
    target = Path(out_dir).absolute()
    _check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes the folder private (0700), but a site must be readable
        totals, site, worker_count = _build_into(staging, store, options)
        (staging / MARKER_FILE).write_text("Built by socfeed build-site.\n", encoding="utf-8")
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    report = SiteReport(
        path=target,
        pages=totals.html_pages,
        rules=totals.rules,
        files=totals.files,
        bytes=totals.bytes,
        seconds=round(time.perf_counter() - started, 2),
        feed_pages=site.feed_pages,
        workers=worker_count,
        failed=totals.failed,
    )
    _log_report(report)
    return report


def _log_report(report: SiteReport) -> None:
    log.info(
        "site built path=%s pages=%d rules=%d files=%d bytes=%d seconds=%.1f failed=%d",
        report.path,
        report.pages,
        report.rules,
        report.files,
        report.bytes,
        report.seconds,
        len(report.failed),
    )


def _build_into(
    staging: Path, store: Store, options: _Options
) -> tuple[RenderTotals, SiteMap, int]:
    index = SearchIndex(include_query=options.search_query_text)
    names = _collect_rules(store, index)
    app = create_app(store)
    client = AppClient(app)
    try:
        site = _site_map(client, app, names, options)
        renderer = SiteRenderer(client, site, staging, options.origin)
        worker_count = _worker_count(store, len(names), options.workers)
        keys = list(names)
        if worker_count > 1:
            db_url = store.engine.url.render_as_string(hide_password=False)
            pool = _WorkerPool(db_url, site, staging, options, worker_count)
            totals = pool.render(keys, lambda: _render_other_pages(renderer, app, store, index))
        else:
            _render_other_pages(renderer, app, store, index)
            totals = _render_in_process(renderer, keys, options.progress)
        totals.add(renderer.take_totals())
        _render_linked_pages(renderer, totals)
    finally:
        client.close()
    return totals, site, worker_count


def _collect_rules(store: Store, index: SearchIndex) -> dict[str, str]:
    """Return key -> folder name of every rule, newest first, and fill the search index."""
    names: dict[str, str] = {}
    used: dict[str, str] = {}
    for rule in _iter_newest(store):
        name = rule_dir_name(rule.key)
        if name in used:
            # Only cut names (over 200 characters) can meet, through a SHA-1 collision.
            raise SiteError(f"rules {used[name]!r} and {rule.key!r} map to one folder {name!r}")
        used[name] = rule.key
        names[rule.key] = name
        index.add(rule, name)
    return names


def _iter_newest(store: Store) -> Iterator[Rule]:
    page_number = 1
    while True:
        query = FeedQuery(sort="newest", page=page_number, per_page=500)
        page = store.feed(query, with_facets=False)
        yield from page.rules
        if page_number >= page.pages or not page.rules:
            return
        page_number += 1


def _site_map(client: AppClient, app: FastAPI, names: dict[str, str], options: _Options) -> SiteMap:
    # The app's own paging decides how many feed pages there are and how long they are.
    response = client.get(feed_json_path(1))
    if response.status_code != 200:
        raise SiteError(
            f"the feed failed to render: GET {feed_json_path(1)} returned "
            f"{response.status_code}; check the store with `socfeed sources`"
        )
    first = response.json()
    pages = min(options.feed_pages, int(first["pages"]))
    site = SiteMap(options.base_path, names, pages, int(first["per_page"]), options.directory_urls)
    # This process writes the pages it probes, so it keeps their responses for the write.
    site.probe = partial(probe_media_type, client, keep=True)
    site.planned.update(file for path in _static_paths(app) if (file := site.file_for(path)))
    site.planned.update(site.feed_file(page) for page in range(1, pages + 1))
    site.planned.update(site.feed_json_file(page) for page in range(1, pages + 1))
    site.planned.update(file for path in FIXED_PATHS if (file := site.file_for(path)))
    site.planned.update({NOT_FOUND_FILE, SEARCH_FILE, SEARCH_INDEX_FILE, "feed.atom"})
    site.planned.update(asset_files())
    return site


def _worker_count(store: Store, rules: int, requested: int | None) -> int:
    database = store.engine.url.database or ""
    if store.engine.url.get_backend_name() == "sqlite" and database in ("", ":memory:"):
        return 1  # another process cannot open an in-memory database
    if requested is not None:
        return max(1, requested)
    return max(1, min(os.cpu_count() or 1, rules // RULES_PER_WORKER))


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), CHUNK_SIZE):
        yield keys[start : start + CHUNK_SIZE]


def _render_in_process(
    renderer: SiteRenderer, keys: list[str], progress: ProgressCallback | None
) -> RenderTotals:
    totals = RenderTotals()
    done = 0
    for chunk in _chunks(keys):
        for key in chunk:
            renderer.render_rule(key)
        totals.add(renderer.take_totals())
        done += len(chunk)
        if progress is not None:
            progress(done, len(keys))
    return totals


@dataclass
class _WorkerPool:
    """Processes that render rule pages, each with its own store connection and app."""

    db_url: str
    site: SiteMap
    staging: Path
    options: _Options
    size: int

    def render(self, keys: list[str], meanwhile: Callable[[], None]) -> RenderTotals:
        """Render the rules of ``keys`` in the workers, running ``meanwhile`` in this process."""
        # spawn: a forked child would share the parent's database connections.
        context = multiprocessing.get_context("spawn")
        initargs = (self.db_url, self.site, str(self.staging), self.options.origin)
        totals = RenderTotals()
        with ProcessPoolExecutor(self.size, context, start_worker, initargs) as pool:
            futures: dict[Future[RenderTotals], int] = {
                pool.submit(render_rules_in_worker, chunk): len(chunk) for chunk in _chunks(keys)
            }
            meanwhile()
            done = 0
            try:
                for future in as_completed(futures):
                    totals.add(future.result())
                    done += futures[future]
                    if self.options.progress is not None:
                        self.options.progress(done, len(keys))
            except BrokenProcessPool as exc:
                raise SiteError(
                    "a worker process that renders rule pages failed to start or crashed; "
                    "a script that calls build_site with more than one worker needs an "
                    "`if __name__ == '__main__':` guard, or pass workers=1"
                ) from exc
        return totals


def _render_other_pages(
    renderer: SiteRenderer, app: FastAPI, store: Store, index: SearchIndex
) -> None:
    """Write the feed pages, the fixed pages, static files, the Atom feed and the search."""
    site = renderer.site
    for page in range(1, site.feed_pages + 1):
        renderer.save(feed_page_path(page), site.feed_file(page))
        renderer.save(feed_json_path(page), site.feed_json_file(page))
    for path in FIXED_PATHS:
        file = site.file_for(path)
        if file is not None:
            renderer.save(path, file)
    for path in _static_paths(app):
        file = site.file_for(path)
        if file is not None:
            renderer.save(path, file)
    _render_atom(renderer, store)
    _render_own_pages(renderer, index)


def _static_paths(app: FastAPI) -> list[str]:
    """Return the app path of every file under the app's StaticFiles mounts."""
    paths: list[str] = []
    for route in app.routes:
        if not isinstance(route, Mount) or not isinstance(route.app, StaticFiles):
            continue
        directory = route.app.directory
        if directory is None:
            continue
        root = Path(directory)
        for file in sorted(root.rglob("*")):
            if file.is_file():
                paths.append(f"{route.path}/{quote(file.relative_to(root).as_posix())}")
    return paths


def _render_atom(renderer: SiteRenderer, store: Store) -> None:
    """Write the app's Atom feed, or the Atom export when the app serves none."""
    response = renderer.client.get(ATOM_PATH)
    if response.status_code == 200:
        renderer.write("feed.atom", renderer.transform(response, ATOM_PATH))
        return
    origin = renderer.origin
    # Without an origin the self link is an absolute path, resolved against the feed's URL.
    self_url = origin + renderer.site.url_for("feed.atom")
    buffer = io.StringIO()
    context = ExportContext(base_url=APP_ORIGIN, self_url=self_url)
    export_rules(store, FeedQuery(), "atom", buffer, context)
    text = rewrite_atom(buffer.getvalue(), ATOM_PATH, renderer.site, origin)
    renderer.write("feed.atom", text)


def _render_own_pages(renderer: SiteRenderer, index: SearchIndex) -> None:
    """Write the 404 and search pages in the frame of an app page, and the search files."""
    site = renderer.site
    frame = _page_frame(renderer)
    pages = {
        NOT_FOUND_FILE: ("Page not found · socfeed", not_found_main(site)),
        SEARCH_FILE: ("Search · socfeed", search_main(site, index.include_query)),
    }
    for file, (title, main_html) in pages.items():
        page = replace_main(frame, title, main_html) if frame else None
        renderer.write(file, page or standalone_page(title, main_html))
    renderer.write(SEARCH_INDEX_FILE, index.to_json(site))
    for file, data in asset_files().items():
        renderer.write(file, data)


def _page_frame(renderer: SiteRenderer) -> str:
    """Return the app's 404 page with site links: its header and footer frame the site's pages."""
    response = renderer.client.get(FRAME_PATH)
    if response.status_code != 404 or "text/html" not in response.headers.get("content-type", ""):
        log.warning(
            "own pages written without the app's frame: GET %s returned %d %s",
            FRAME_PATH,
            response.status_code,
            response.headers.get("content-type", ""),
        )
        return ""
    return renderer.transform(response, FRAME_PATH).decode("utf-8")


def _render_linked_pages(renderer: SiteRenderer, totals: RenderTotals) -> None:
    """Fetch the pages that rendered pages link to but no step planned (highlight.css, ...).

    Fetched pages may link to more such pages, up to MAX_DISCOVERY_ROUNDS levels deep and
    MAX_LINKED_FILES in all. Links to pages left over stay broken and are reported.
    """
    fetched: set[str] = set()
    for _round in range(MAX_DISCOVERY_ROUNDS):
        wanted = {file: url for file, url in totals.unplanned.items() if file not in fetched}
        if not wanted or len(fetched) >= MAX_LINKED_FILES:
            break
        for file, url in sorted(wanted.items())[: MAX_LINKED_FILES - len(fetched)]:
            fetched.add(file)
            if not (renderer.root / file).exists():
                renderer.save(url, file)
        totals.add(renderer.take_totals())
    left = sorted(url for file, url in totals.unplanned.items() if file not in fetched)
    if left:
        log.warning("linked pages not fetched count=%d first=%s", len(left), left[:5])
        totals.failed.extend(f"link to {url}: not fetched, over the limit" for url in left)
    for url in sorted(totals.unresolved):
        totals.failed.append(f"link to {url}: the app does not serve it")


def _check_target(target: Path) -> None:
    """Raise SiteError unless ``target`` is new, empty or an earlier socfeed site."""
    if not target.exists():
        return
    if not target.is_dir():
        raise SiteError(f"{target} exists and is not a folder; choose another output folder")
    if (target / MARKER_FILE).is_file() or not any(target.iterdir()):
        return
    raise SiteError(
        f"{target} is not empty and was not built by socfeed build-site; choose an empty or "
        "new folder, because the build replaces the whole folder"
    )


def _swap(staging: Path, target: Path) -> None:
    """Put the finished site in place of ``target`` and remove the old site."""
    if not target.exists():
        os.rename(staging, target)
        return
    # NOTE: between the two renames the folder is missing for a moment. Readers see the old
    # site or the new one, never a mix, but a request in that moment gets a 404.
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
