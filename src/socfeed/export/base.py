"""Parts shared by the export formats: the exporter record, its context and text helpers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, TextIO
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from socfeed.model import Rule
from socfeed.store import FeedQuery

if TYPE_CHECKING:
    from socfeed.export.tactics import TechniqueTactics

# Where `socfeed serve` listens by default. Rule page links start with this URL.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

# Characters XML 1.0 does not allow in a document, even escaped.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BARE_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")
# RFC 3986 sub-delimiters, allowed unencoded in every part of a URL.
_SUB_DELIMS = "!$&'()*+,;="


@dataclass
class ExportContext:
    """Settings of one export: the feed's filters, where rule pages live, ATT&CK lookups."""

    query: FeedQuery = field(default_factory=FeedQuery)
    base_url: str = DEFAULT_BASE_URL
    # URL the export itself is served from, written as the Atom feed's self link. Without
    # it the feed has no self link.
    self_url: str = ""
    # Stands in for the clock where a format needs a time that no rule gives (the
    # updated time of an empty Atom feed), so that tests get stable output.
    generated_at: dt.datetime | None = None
    # Technique -> tactic lookup for the Navigator layer and STIX; None loads the default.
    tactics: TechniqueTactics | None = None


WriteFunction = Callable[[Iterable[Rule], TextIO, ExportContext], int]


@dataclass(frozen=True)
class Exporter:
    """An export format: its name, media type, file extension and writer.

    ``write`` consumes the rules, writes the export to the stream and returns the number of
    rules it wrote. ``sort`` is the feed order the format needs (None keeps the query's)
    and ``default_limit`` caps how many rules it takes unless the caller sets a limit.
    """

    name: str
    media_type: str
    extension: str
    write: WriteFunction
    sort: str | None = None
    default_limit: int | None = None


def clean_text(text: str) -> str:
    """Replace characters that XML 1.0 cannot carry with U+FFFD.

    These are control characters other than tab, line feed and carriage return, lone
    surrogates (which no UTF-8 stream can encode) and U+FFFE and U+FFFF.
    """
    return _UNSAFE.sub("\ufffd", text)


def without_surrogates(text: str) -> str:
    """Replace lone surrogates, which no UTF-8 stream can encode, with U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def rule_page_url(base_url: str, key: str) -> str:
    """Return the URL of a rule's page, with every reserved character of the key encoded."""
    return f"{base_url.rstrip('/')}/rules/{quote(key, safe='')}"


def query_parameters(query: FeedQuery) -> list[tuple[str, str]]:
    """Return the filters of a feed query as (name, value) pairs, one per value.

    The names are the feed page's query parameters, where ``q`` is the search text.
    """
    pairs: list[tuple[str, str]] = []
    if query.text.strip():
        pairs.append(("q", query.text.strip()))
    for item in fields(query):
        value = getattr(query, item.name)
        if isinstance(value, list) and item.name != "my_tables":
            pairs.extend((item.name, str(entry)) for entry in value)
    if query.official is not None:
        pairs.append(("official", "true" if query.official else "false"))
    if query.my_tables is not None:
        # The feed page reads the data-source filter as a comma list plus a toggle.
        pairs.append(("mine_only", "true"))
        pairs.append(("mine", ",".join(query.my_tables)))
    return pairs


def feed_url(base_url: str, query: FeedQuery, path: str = "/") -> str:
    """Return the URL of the feed page (or ``path``) filtered like ``query``."""
    pairs = query_parameters(query)
    suffix = f"?{urlencode(pairs)}" if pairs else ""
    return f"{base_url.rstrip('/')}{path}{suffix}"


def describe_query(query: FeedQuery) -> str:
    """Describe a query's filters in one line, such as ``source=sigma, technique=T1059``."""
    pairs = query_parameters(query)
    if not pairs:
        return "all rules"
    return ", ".join(f"{name}={value}" for name, value in pairs)


def parse_timestamp(value: str | None) -> dt.datetime | None:
    """Parse an ISO 8601 date or date-time into an aware UTC datetime, or None if unreadable.

    A bare date becomes midnight UTC and a time without an offset is taken as UTC.
    """
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def rule_timestamp(rule: Rule) -> dt.datetime | None:
    """Return when a rule version appeared: modified, else created, else retrieved."""
    for value in (rule.modified, rule.created, rule.retrieved_at):
        parsed = parse_timestamp(value)
        if parsed is not None:
            return parsed
    return None


def is_web_url(value: str) -> bool:
    """Return True for an absolute http or https URL with a host."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def encode_url(value: str) -> str:
    """Percent-encode what RFC 3986 does not allow in each part of a URL.

    Spaces, non-ASCII text and brackets outside an IPv6 host are encoded. Escapes already in
    the URL are kept, but a ``%`` that starts no escape is encoded. Raise ValueError for a
    URL that ``urllib.parse.urlsplit`` rejects.
    """
    parts = urlsplit(value.strip())
    netloc = _encode_part(parts.netloc, _SUB_DELIMS + ":@[]")
    path = _encode_part(parts.path, _SUB_DELIMS + ":@/")
    query = _encode_part(parts.query, _SUB_DELIMS + ":@/?")
    fragment = _encode_part(parts.fragment, _SUB_DELIMS + ":@/?")
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def _encode_part(text: str, safe: str) -> str:
    return quote(_BARE_PERCENT.sub("%25", text), safe=safe + "%")
