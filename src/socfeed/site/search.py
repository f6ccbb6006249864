"""The static site's search: a prebuilt JSON index and the page whose script reads it."""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections import defaultdict
from pathlib import Path
from string import Template
from typing import Any

from socfeed.model import Rule
from socfeed.site.paths import SEARCH_FILE, SiteMap

STATIC_DIR = Path(__file__).parent / "static"
INDEX_FORMAT = "socfeed-search-index"
INDEX_VERSION = 1

# Facets with a table of their values in the index; rules refer to values by position.
SINGLE_FACETS = ("source", "language", "severity", "kind", "status")
LIST_FACETS = ("tactic", "technique", "table", "tag")
RULE_FIELDS = (
    "key",
    "name",
    "title",
    *SINGLE_FACETS,
    "official",
    "date",
    "tactics",
    "techniques",
    "tables",
    "tags",
)
# Letters and digits of any script; search.js splits text with the same classes.
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> set[str]:
    """Return the search tokens of a text: lower case, accents removed, split at non-letters.

    search.js tokenizes the search box the same way (toLowerCase, NFKD, drop marks).
    """
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(char for char in decomposed if not unicodedata.category(char).startswith("M"))
    return set(_TOKEN.findall(plain))


class SearchIndex:
    """Collects the rules of the site into the compact index that search.js loads.

    Values of facets are stored once in ``values``, and rules point to them by position.
    The text of the rules becomes an inverted index from token to delta-encoded rule numbers.
    """

    def __init__(self, include_query: bool = False) -> None:
        self.include_query = include_query
        self._rules: list[list[Any]] = []
        self._values: dict[str, dict[str, int]] = {
            name: {} for name in (*SINGLE_FACETS, *LIST_FACETS)
        }
        self._postings: dict[str, list[int]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._rules)

    def add(self, rule: Rule, name: str) -> None:
        """Add a rule, whose pages are in the folder rules/<name>/."""
        number = len(self._rules)
        self._rules.append(
            [
                rule.key,
                # Most folder names are the key with '.' for ':', which search.js derives.
                None if name == rule.key.replace(":", ".") else name,
                rule.title,
                self._value("source", rule.source),
                self._value("language", rule.language),
                self._value("severity", rule.severity),
                self._value("kind", rule.kind),
                self._value("status", rule.status),
                1 if rule.official else 0,
                rule.modified or rule.created or rule.retrieved_at[:10],
                self._values_of("tactic", rule.tactics),
                self._values_of("technique", rule.techniques),
                self._values_of("table", rule.tables()),
                self._values_of("tag", rule.tags),
            ]
        )
        for token in tokens(self._text(rule)):
            self._postings[token].append(number)

    def _text(self, rule: Rule) -> str:
        parts = [rule.title, rule.description, *rule.tags, *rule.techniques, *rule.tables()]
        if self.include_query:
            parts.append(rule.query)
        return "\n".join(parts)

    def _value(self, facet: str, value: str | None) -> int:
        if not value:
            return -1
        table = self._values[facet]
        return table.setdefault(value, len(table))

    def _values_of(self, facet: str, values: list[str]) -> list[int]:
        return [self._value(facet, value) for value in dict.fromkeys(values) if value]

    def to_json(self, site: SiteMap) -> str:
        """Return the index as compact JSON."""
        rule_url = site.url_for("rules/{name}/index.html")[len(site.base_path) :]
        document = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "rule_url": rule_url,
            "text_fields": self._text_fields(),
            "fields": list(RULE_FIELDS),
            "values": {name: list(table) for name, table in self._values.items()},
            "rules": self._rules,
            "tokens": {token: _deltas(numbers) for token, numbers in self._postings.items()},
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    def _text_fields(self) -> list[str]:
        fields = ["title", "description", "tags", "techniques", "tables"]
        return [*fields, "query"] if self.include_query else fields


def _deltas(numbers: list[int]) -> list[int]:
    # Gaps between rule numbers are small, which keeps the JSON short.
    previous = 0
    gaps = []
    for number in numbers:
        gaps.append(number - previous)
        previous = number
    return gaps


def not_found_main(site: SiteMap) -> str:
    """Return the <main> content of the site's 404 page."""
    values = {"feed_url": site.url_for("index.html"), "search_url": site.url_for(SEARCH_FILE)}
    return _fill("not-found.html", values)


def search_main(site: SiteMap, include_query: bool) -> str:
    """Return the <main> content of the search page: the form, the results, the script."""
    searched = "titles, descriptions, tags, techniques and tables"
    if include_query:
        searched = "titles, descriptions, queries, tags, techniques and tables"
    values = {
        "index_url": site.url_for("search/index.json"),
        "base_path": site.base_path,
        "script_url": site.url_for("search/search.js"),
        "style_url": site.url_for("search/search.css"),
        "feed_url": site.url_for("index.html"),
        "searched": searched,
    }
    return _fill("search.html", values)


def _fill(template_name: str, values: dict[str, str]) -> str:
    template = Template((STATIC_DIR / template_name).read_text(encoding="utf-8"))
    return template.substitute({name: html.escape(value) for name, value in values.items()})


def standalone_page(title: str, main_html: str) -> str:
    """Return a whole page around ``main_html``, for an app page that has no <main>."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f'<main id="main">{main_html}</main>\n</body>\n</html>\n'
    )


def asset_files() -> dict[str, bytes]:
    """Return the search page's own script and stylesheet, by site file."""
    return {
        "search/search.js": (STATIC_DIR / "search.js").read_bytes(),
        "search/search.css": (STATIC_DIR / "search.css").read_bytes(),
    }
