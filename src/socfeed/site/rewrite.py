"""Rewrite the links of the app's HTML, JSON, CSS and Atom output to the static site's URLs."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from socfeed.site.paths import APP_ORIGIN, SEARCH_FILE, SiteMap

# Attributes whose value is a URL that a browser follows or loads.
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "poster"})
# Keys of the app's JSON documents whose values are app URLs (RuleLinks, PageLinks, coverage).
JSON_LINK_KEYS = frozenset({"page", "api", "self", "next", "prev", "feed"})
# CSP directives that browsers ignore in a <meta> element (CSP Level 3, section 3.3).
_HEADER_ONLY_DIRECTIVES = ("frame-ancestors", "report-uri", "report-to", "sandbox")
_URL_ATTRIBUTE = re.compile(r"\b(?:" + "|".join(sorted(URL_ATTRIBUTES)) + r")\s*=", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(/[^'")\s]*)\1\s*\)""")
ATOM_NS = "http://www.w3.org/2005/Atom"
REMOVED_FORM = "<!-- A form that needs the socfeed server was removed from this static copy. -->"


@dataclass
class StartTag:
    """A start tag of the page: its name, attributes and place in the text."""

    name: str
    attributes: list[tuple[str, str | None]]
    start: int
    end: int
    self_closing: bool


@dataclass
class _Scan:
    tags: list[StartTag] = field(default_factory=list)
    end_tags: list[tuple[str, int]] = field(default_factory=list)  # (name, offset)


class _TagScanner(HTMLParser):
    """Record where each start and end tag sits, so edits can splice the original text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.scan = _Scan()
        self._text = text
        self._line_starts = [0]
        newline = text.find("\n")
        while newline != -1:
            self._line_starts.append(newline + 1)
            newline = text.find("\n", newline + 1)

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs, self_closing=False)
        if tag == "pre" and not self._links_before("</pre"):
            # Highlighted code is a <span> per token, most of a rule page's tags. With no
            # link inside, the parser may skip to </pre> as it does for <script>.
            self.set_cdata_mode(tag)

    def _links_before(self, closing: str) -> bool:
        start = self._offset() + len(self.get_starttag_text() or "")
        end = self._text.find(closing, start)
        inside = self._text[start:] if end == -1 else self._text[start:end]
        return _URL_ATTRIBUTE.search(inside) is not None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs, self_closing=True)

    def handle_endtag(self, tag: str) -> None:
        self.scan.end_tags.append((tag, self._offset()))

    def _record(self, tag: str, attrs: list[tuple[str, str | None]], self_closing: bool) -> None:
        start = self._offset()
        text = self.get_starttag_text() or ""
        self.scan.tags.append(StartTag(tag, attrs, start, start + len(text), self_closing))


def scan_tags(text: str) -> _Scan:
    """Parse an HTML document and return its start tags and end tags with their offsets."""
    scanner = _TagScanner(text)
    scanner.feed(text)
    scanner.close()
    return scanner.scan


def format_start_tag(tag: StartTag) -> str:
    """Write a start tag again from its name and attributes, escaping every value."""
    parts = [f"<{tag.name}"]
    for name, value in tag.attributes:
        parts.append(f" {name}" if value is None else f' {name}="{html.escape(value)}"')
    parts.append(" />" if tag.self_closing else ">")
    return "".join(parts)


def splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Replace the spans (start, end) of ``text`` with new text. The spans must not overlap."""
    pieces: list[str] = []
    position = 0
    for start, end, replacement in sorted(edits):
        pieces.append(text[position:start])
        pieces.append(replacement)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def rewrite_html(
    text: str, page_path: str, site: SiteMap, headers: Mapping[str, str] | None = None
) -> str:
    """Point every internal link of an app page at the site, and keep its security headers.

    The page is parsed with the standard library's HTML parser. Only the start tags whose
    links change are written again, and the rest of the page stays byte for byte. Forms that
    submit to the feed go to the search page. Other forms are removed, because a static
    host cannot answer them. The Content-Security-Policy and Referrer-Policy headers that
    the app sent become <meta> elements, because a static host does not send them.
    """
    scan = scan_tags(text)
    edits: list[tuple[int, int, str]] = []
    removed_until = -1
    for tag in scan.tags:
        if tag.start < removed_until:
            continue
        if tag.name == "form" and not _submits_to_feed(tag, page_path, site):
            removed_until = _end_of_element(text, scan, tag)
            edits.append((tag.start, removed_until, REMOVED_FORM))
            continue
        if _rewrite_attributes(tag, page_path, site):
            edits.append((tag.start, tag.end, format_start_tag(tag)))
    head = next((tag for tag in scan.tags if tag.name == "head"), None)
    metas = meta_elements(headers or {})
    if head is not None and metas:
        edits.append((head.end, head.end, metas))
    return splice(text, edits)


def _submits_to_feed(form: StartTag, page_path: str, site: SiteMap) -> bool:
    attributes = dict(form.attributes)
    method = (attributes.get("method") or "get").strip().lower()
    action = attributes.get("action") or page_path
    return method == "get" and site.is_feed_url(action, page_path)


def _end_of_element(text: str, scan: _Scan, tag: StartTag) -> int:
    # Forms do not nest, so the first </form> after the start tag closes this one.
    for name, offset in scan.end_tags:
        if name == tag.name and offset >= tag.end:
            closing = text.find(">", offset)
            return len(text) if closing == -1 else closing + 1
    return tag.end


def _rewrite_attributes(tag: StartTag, page_path: str, site: SiteMap) -> bool:
    changed = False
    for index, (name, value) in enumerate(tag.attributes):
        if name not in URL_ATTRIBUTES or value is None:
            continue
        # A form that submits to the feed carries filters, so it goes to the search page.
        form_target = name in ("action", "formaction")
        new_value = site.link(value, page_path, form=form_target)
        if new_value is not None and new_value != value:
            tag.attributes[index] = (name, new_value)
            changed = True
    return changed


def meta_elements(headers: Mapping[str, str]) -> str:
    """Return <meta> elements that carry the app's CSP and referrer policy on a static host."""
    lowered = {name.lower(): value for name, value in headers.items()}
    elements: list[str] = []
    policy = lowered.get("content-security-policy")
    if policy:
        directives = [
            directive.strip()
            for directive in policy.split(";")
            if directive.strip() and directive.split()[0].lower() not in _HEADER_ONLY_DIRECTIVES
        ]
        content = html.escape("; ".join(directives))
        elements.append(f'<meta http-equiv="Content-Security-Policy" content="{content}">')
    referrer = lowered.get("referrer-policy")
    if referrer:
        elements.append(f'<meta name="referrer" content="{html.escape(referrer)}">')
    return "".join(elements)


def rewrite_json(text: str, page_path: str, site: SiteMap) -> str:
    """Point the link fields of an app JSON document at the site, leaving other values as is."""
    document = json.loads(text)
    rewritten = _rewrite_value(document, lambda href: site.link(href, page_path))
    return json.dumps(rewritten, ensure_ascii=False, separators=(",", ":"))


def _rewrite_value(value: Any, link: Callable[[str], str | None]) -> Any:
    if isinstance(value, list):
        return [_rewrite_value(item, link) for item in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key in JSON_LINK_KEYS and isinstance(item, str) and item.startswith("/"):
            result[key] = link(item) or item
        else:
            result[key] = _rewrite_value(item, link)
    return result


def rewrite_css(text: str, page_path: str, site: SiteMap) -> str:
    """Point the absolute url(...) references of a stylesheet at the site."""

    def replace(match: re.Match[str]) -> str:
        new_value = site.link(match.group(2), page_path)
        return match.group(0) if new_value is None else f'url("{new_value}")'

    return _CSS_URL.sub(replace, text)


def rewrite_atom(text: str, page_path: str, site: SiteMap, origin: str) -> str:
    """Point the app URLs in an Atom feed's href and scheme attributes at the site.

    ``origin`` ("https://rules.example.org") makes the new links absolute. Without it they
    are absolute paths, which Atom readers resolve against the feed's own URL.
    """
    ET.register_namespace("", ATOM_NS)
    root = ET.fromstring(text)
    for element in root.iter():
        href = element.get("href")
        if href is not None and href.startswith(APP_ORIGIN + "/"):
            new_href = site.link(href, page_path)
            if new_href is not None:
                element.set("href", origin + new_href)
        scheme = element.get("scheme")
        if scheme is not None and scheme.startswith(APP_ORIGIN + "/"):
            element.set("scheme", origin + _category_scheme(scheme, site))
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n"


def _category_scheme(scheme: str, site: SiteMap) -> str:
    # A scheme such as ".../?table=" names a feed filter that the term completes, so it
    # becomes the search page with the same parameter.
    query = urlsplit(scheme).query
    return site.url_for(SEARCH_FILE) + (f"?{query}" if query else "")


def replace_main(text: str, title: str, main_html: str) -> str | None:
    """Replace the <title> text and the content of <main> of a page, or return None without <main>.

    ``title`` is plain text and gets escaped. ``main_html`` is inserted as it is.
    """
    scan = scan_tags(text)
    edits: list[tuple[int, int, str]] = []
    main_span = _element_span(scan, "main")
    if main_span is None:
        return None
    edits.append((*main_span, main_html))
    title_span = _element_span(scan, "title")
    if title_span is not None:
        edits.append((*title_span, html.escape(title)))
    return splice(text, edits)


def _element_span(scan: _Scan, name: str) -> tuple[int, int] | None:
    # The content runs from the end of the first start tag to the last matching end tag.
    start = next((tag.end for tag in scan.tags if tag.name == name), None)
    ends = [offset for tag_name, offset in scan.end_tags if tag_name == name]
    if start is None or not ends or ends[-1] < start:
        return None
    return start, ends[-1]
