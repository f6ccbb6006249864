"""Mapping of the web app's URLs to static site files, and the site links to those files."""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    unquote,
    urlencode,
    urljoin,
    urlsplit,
)

# The origin the in-process client sends requests to. Links to it are internal links.
APP_ORIGIN = "http://socfeed.internal"

SEARCH_FILE = "search/index.html"
SEARCH_INDEX_FILE = "search/index.json"
NOT_FOUND_FILE = "404.html"
FEED_JSON_PATH = "/api/rules"

# Characters a rule folder name keeps as they are. Everything else is escaped, including
# upper-case letters, so that two keys never map to one folder on a case-insensitive disk.
_KEPT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-~")
# Most file systems limit a name to 255 bytes. Longer names are cut and end in a hash.
MAX_NAME_LENGTH = 200
# Feed parameters that choose a page rather than rules. Filters are every other parameter.
_PAGING_PARAMETERS = ("page", "per_page")
# A last path segment like style.css or openapi.json names a file, which keeps its name.
_FILE_SEGMENT = re.compile(r"\.[A-Za-z0-9]{1,8}$")
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
# Extensions for media types that mimetypes does not map, or maps oddly (XML to .xsl).
_EXTENSIONS = {
    "application/json": ".json",
    "application/atom+xml": ".atom",
    "application/x-ndjson": ".jsonl",
    "application/jsonl": ".jsonl",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "text/csv": ".csv",
    "text/plain": ".txt",
}

# Returns the media type of an app URL (path and query), or None when it is not a 200.
Probe = Callable[[str], "str | None"]


def rule_dir_name(key: str) -> str:
    """Return the folder name of a rule's pages: stable, collision-free, safe in paths and URLs.

    Lower-case ASCII letters, digits, '-' and '~' stay, ':' becomes '.', and every other
    character becomes '_' followed by the hex of its UTF-8 bytes, so "sigma:5d1f-..." becomes
    "sigma.5d1f-...". The mapping can be reversed, so distinct keys get distinct names, except
    that names over MAX_NAME_LENGTH are cut and end in the key's SHA-1 instead.
    """
    if not key:
        raise ValueError("a rule key must not be empty")
    parts: list[str] = []
    for index, char in enumerate(key):
        if char in _KEPT:
            parts.append(char)
        elif char == ":" and index > 0:  # a leading '.' would make a hidden file
            parts.append(".")
        else:
            parts.append("".join(f"_{byte:02x}" for byte in char.encode("utf-8")))
    name = "".join(parts)
    if len(name) > MAX_NAME_LENGTH:
        # Every cut name is longer than every uncut one, so the two kinds never meet.
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
        name = f"{name[:MAX_NAME_LENGTH]}-{digest}"
    return name


def normalize_base_path(base_path: str) -> str:
    """Return ``base_path`` with one leading and one trailing slash ("/", "/rules/")."""
    stripped = base_path.strip().strip("/")
    if not stripped:
        return "/"
    if any(char in stripped for char in "?#\\") or "//" in stripped:
        raise ValueError(f"invalid base path {base_path!r}: expected a path such as /socfeed/")
    return "/" + quote(stripped, safe="/") + "/"


def app_rule_path(key: str) -> str:
    """Return the app's URL path of a rule page, encoded as the app writes it."""
    return "/rules/" + quote(key, safe=":")


def app_rule_api_path(key: str) -> str:
    """Return the app's URL path of a rule's JSON document."""
    return "/api/rules/" + quote(key, safe=":")


def feed_page_path(page: int) -> str:
    """Return the app's URL of one page of the unfiltered feed."""
    return "/" if page == 1 else f"/?page={page}"


def feed_json_path(page: int) -> str:
    """Return the app's URL of one page of the unfiltered feed as JSON."""
    return FEED_JSON_PATH if page == 1 else f"{FEED_JSON_PATH}?page={page}"


def file_for_media_type(relative: str, media_type: str) -> str:
    """Return the site file of an app path without extension, by its response's media type."""
    if media_type == "text/html":
        return f"{relative}/index.html"
    extension = _EXTENSIONS.get(media_type)
    if extension is None and media_type.endswith("+json"):
        extension = ".json"
    if extension is None:
        extension = mimetypes.guess_extension(media_type) or ""
    return relative + extension


def _variant_file(file: str, query: str) -> str:
    # A page with a query string is another page, for example a filtered coverage view.
    digest = hashlib.sha1(query.encode("utf-8")).hexdigest()[:12]
    if file.endswith("/index.html"):
        return f"{file[: -len('index.html')]}q-{digest}/index.html"
    stem, extension = posixpath.splitext(file)
    return f"{stem}.q-{digest}{extension}"


@dataclass
class SiteMap:
    """The static file of each app URL, and the URL under ``base_path`` that serves it.

    ``probe`` requests the media type of a URL whose file name cannot be inferred from
    its path (is /coverage a page or a CSV file?). Without it, paths under /api/ are assumed
    to be JSON and others HTML pages.
    """

    base_path: str
    rule_names: dict[str, str]  # store key -> folder name under rules/
    feed_pages: int  # pages of the unfiltered feed that the site contains
    per_page: int  # rules per feed page, the app's default
    directory_urls: bool = True  # link to "rules/x/" rather than "rules/x/index.html"
    # Files that a build step writes besides the rule files.
    planned: set[str] = field(default_factory=set)
    # Linked files that no build step writes: file -> app URL, for the build to fetch.
    unplanned: dict[str, str] = field(default_factory=dict)
    # Linked app URLs that the app does not serve with a 200.
    unresolved: set[str] = field(default_factory=set)
    media_types: dict[str, str | None] = field(default_factory=dict)  # app URL -> probe result
    probe: Probe | None = None
    _names: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._names = set(self.rule_names.values())

    def __getstate__(self) -> dict[str, Any]:
        # The probe contains the app client of one process, so each worker sets its own.
        state = dict(self.__dict__)
        state["probe"] = None
        return state

    def file_for(self, path: str, query: str = "") -> str | None:
        """Return the site file of an app URL path (percent-encoded), or None if it has none.

        A query string gives another file, except for rule URLs and files with an extension.
        """
        decoded = unquote(path)
        if decoded.startswith("/rules/") and len(decoded) > len("/rules/"):
            return f"rules/{self._rule_name(decoded[len('/rules/') :])}/index.html"
        if decoded.startswith("/api/rules/") and len(decoded) > len("/api/rules/"):
            return f"rules/{self._rule_name(decoded[len('/api/rules/') :])}/rule.json"
        if decoded == "/":
            return "index.html"
        segments = decoded.strip("/").split("/")
        if not all(_SAFE_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
            return None
        relative = "/".join(segments)
        if _FILE_SEGMENT.search(segments[-1]):
            return relative
        url = path + (f"?{query}" if query else "")
        media_type = self._media_type(url, relative)
        if media_type is None:
            return None
        file = file_for_media_type(relative, media_type)
        return _variant_file(file, query) if query else file

    def _media_type(self, url: str, relative: str) -> str | None:
        if url not in self.media_types:
            if self.probe is not None:
                self.media_types[url] = self.probe(url)
            else:
                api = relative == "api" or relative.startswith("api/")
                self.media_types[url] = "application/json" if api else "text/html"
        return self.media_types[url]

    def url_for(self, file: str) -> str:
        """Return the URL of a site file under the base path."""
        if self.directory_urls and (file == "index.html" or file.endswith("/index.html")):
            file = file[: -len("index.html")]
        return self.base_path + file

    def feed_file(self, page: int) -> str:
        """Return the site file of one page of the unfiltered feed."""
        return "index.html" if page == 1 else f"page/{page}/index.html"

    def feed_json_file(self, page: int) -> str:
        """Return the site file of one page of the unfiltered feed as JSON."""
        return f"api/rules/page-{page}.json"

    def is_feed_url(self, href: str, page_path: str) -> bool:
        """Return True if ``href`` on the page at ``page_path`` points at the feed or its JSON."""
        parts = _split_link(href, page_path)
        if parts is None or f"{parts.scheme}://{parts.netloc}" != APP_ORIGIN:
            return False
        return parts.path in ("/", FEED_JSON_PATH)

    def search_url(self, params: list[tuple[str, str]]) -> str:
        """Return the URL of the search page with feed filters as its query."""
        query = urlencode([(name, value) for name, value in params if value != ""])
        return self.url_for(SEARCH_FILE) + (f"?{query}" if query else "")

    def link(self, href: str, page_path: str, *, form: bool = False) -> str | None:
        """Return the site URL for a link on the app page at ``page_path``, or None to keep it.

        Links to other hosts, to a fragment of the same page and to URLs that the app does
        not serve are kept. Feed links with filters, and forms that submit to the feed, go to
        the search page. An internal link to a file that no build step writes is recorded in
        ``unplanned``, so the build can fetch it.
        """
        if href.startswith("#") or not href.strip():
            return None
        parts = _split_link(href, page_path)
        if parts is None or f"{parts.scheme}://{parts.netloc}" != APP_ORIGIN:
            return None
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        if parts.path in ("/", FEED_JSON_PATH):
            params = parse_qsl(parts.query, keep_blank_values=True)
            return self._feed_link(parts.path, params, form=form) + fragment

        file = self.file_for(parts.path, parts.query)
        url = parts.path + (f"?{parts.query}" if parts.query else "")
        if file is None:
            self.unresolved.add(url)
            return None
        if file not in self.planned and not self._is_rule_file(file):
            self.unplanned.setdefault(file, url)
        # Files with an extension ignore the query on a static host, but it may bust caches.
        keep_query = parts.query and _FILE_SEGMENT.search(parts.path)
        return self.url_for(file) + (f"?{parts.query}" if keep_query else "") + fragment

    def _feed_link(self, path: str, params: list[tuple[str, str]], *, form: bool) -> str:
        filters = [(name, value) for name, value in params if name not in _PAGING_PARAMETERS]
        if form or any(value != "" for _, value in filters):
            return self.search_url(filters)
        page = _page_number(params, self.per_page)
        if page is None or page > self.feed_pages:
            # The site has the first pages only; the search page lists every rule.
            return self.search_url([])
        if path == FEED_JSON_PATH:
            return self.url_for(self.feed_json_file(page))
        return self.url_for(self.feed_file(page))

    def _rule_name(self, key: str) -> str:
        return self.rule_names.get(key) or rule_dir_name(key)

    def _is_rule_file(self, file: str) -> bool:
        # Files of keys that are not stored are not planned, so the build tries to fetch them.
        folder = posixpath.dirname(file)
        return folder.startswith("rules/") and folder[len("rules/") :] in self._names


def _split_link(href: str, page_path: str) -> SplitResult | None:
    # Rule text can put malformed URLs in links ("http://[::1"), which urlsplit rejects.
    try:
        return urlsplit(urljoin(APP_ORIGIN + page_path, href.strip()))
    except ValueError:
        return None


def _page_number(params: list[tuple[str, str]], per_page: int) -> int | None:
    # The site has pages of the app's default size only.
    sizes = [value for name, value in params if name == "per_page"]
    if any(value not in ("", str(per_page)) for value in sizes):
        return None
    pages = [value for name, value in params if name == "page"]
    if not pages:
        return 1
    try:
        number = int(pages[-1])
    except ValueError:
        return None
    return number if number >= 1 else None
