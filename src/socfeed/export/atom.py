"""Atom feed export (RFC 4287) of new and changed rules, newest first.

Each entry is one version of a rule: its id is derived from the rule key and a hash of the
rule's content, so a changed rule shows up in feed readers as a new entry.
"""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from socfeed.export.base import (
    ExportContext,
    Exporter,
    clean_text,
    describe_query,
    encode_url,
    feed_url,
    is_web_url,
    parse_timestamp,
    rule_page_url,
    rule_timestamp,
)
from socfeed.model import Rule

ATOM_NS = "http://www.w3.org/2005/Atom"

# Feed readers poll the feed repeatedly and need only the newest rules.
DEFAULT_MAX_ENTRIES = 200

TECHNIQUE_SCHEME = "https://attack.mitre.org/techniques/"

# Namespace of the entry and feed ids. Changing it changes every id.
_NAMESPACE = uuid.UUID("0b6f3c52-8d4e-4f0a-a3c1-5e9d7b2f6a14")


@dataclass
class _Version:
    rule: Rule
    updated: dt.datetime
    retrieved: dt.datetime


def _add(parent: ET.Element, name: str, text: str | None = None, **attributes: str) -> ET.Element:
    child = ET.SubElement(parent, name, {k: clean_text(v) for k, v in attributes.items()})
    if text is not None:
        child.text = clean_text(text)
    return child


def atom_time(moment: dt.datetime) -> str:
    """Format an aware datetime as an RFC 3339 UTC timestamp, such as 2024-05-01T00:00:00Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_id(rule: Rule) -> str:
    """Return the entry id of this version of the rule: a urn:uuid from key and content."""
    name = "\0".join((rule.key, rule.content_hash()))
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, name)}"


def _entry(feed: ET.Element, version: _Version, context: ExportContext) -> None:
    rule = version.rule
    entry = _add(feed, "entry")
    _add(entry, "id", entry_id(rule))
    _add(entry, "title", rule.title or rule.key, type="text")
    _add(entry, "updated", atom_time(version.updated))
    published = parse_timestamp(rule.created)
    if published is not None:
        _add(entry, "published", atom_time(published))
    if rule.author.strip():
        _add(_add(entry, "author"), "name", rule.author.strip())

    page = rule_page_url(context.base_url, rule.key)
    _add(entry, "link", rel="alternate", type="text/html", href=page)
    if is_web_url(rule.url):
        _add(entry, "link", rel="via", href=encode_url(rule.url))
    if rule.description.strip():
        _add(entry, "summary", rule.description, type="text")
    _categories(entry, rule, context.base_url)


def _categories(entry: ET.Element, rule: Rule, base_url: str) -> None:
    base = base_url.rstrip("/")
    for technique_id in dict.fromkeys(rule.techniques):
        _add(entry, "category", term=technique_id, scheme=TECHNIQUE_SCHEME)
    for table in rule.tables():
        _add(entry, "category", term=table, scheme=f"{base}/?table=")
    if rule.language:
        _add(entry, "category", term=rule.language, scheme=f"{base}/?language=")


def _versions(rules: Iterable[Rule], fallback: dt.datetime) -> list[_Version]:
    versions = []
    for rule in rules:
        retrieved = parse_timestamp(rule.retrieved_at) or fallback
        versions.append(_Version(rule, rule_timestamp(rule) or retrieved, retrieved))
    # The store already orders by date, and this sort adds the retrieval time as tie-breaker.
    versions.sort(key=lambda version: (version.updated, version.retrieved), reverse=True)
    return versions


def build_feed(rules: Iterable[Rule], context: ExportContext) -> tuple[ET.Element, int]:
    """Build the Atom feed element for ``rules`` and return it with the number of entries."""
    now = context.generated_at or dt.datetime.now(dt.UTC)
    versions = _versions(rules, now)
    filters = describe_query(context.query)
    alternate = feed_url(context.base_url, context.query)
    self_url = context.self_url or alternate

    # The namespace is written as a plain attribute, so that the elements need no prefix.
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    feed_id = uuid.uuid5(_NAMESPACE, "\0".join(("feed", self_url)))
    _add(feed, "id", f"urn:uuid:{feed_id}")
    _add(feed, "title", f"socfeed: new and changed rules ({filters})", type="text")
    _add(feed, "subtitle", f"Detection and hunting rules, newest first. Filters: {filters}.")
    _add(feed, "updated", atom_time(versions[0].updated if versions else now))
    _add(_add(feed, "author"), "name", "socfeed")
    _add(feed, "generator", "socfeed")
    _add(feed, "link", rel="alternate", type="text/html", href=alternate)
    if context.self_url:
        _add(feed, "link", rel="self", type="application/atom+xml", href=context.self_url)
    for version in versions:
        _entry(feed, version, context)
    return feed, len(versions)


def write_atom(rules: Iterable[Rule], out: TextIO, context: ExportContext) -> int:
    """Write the Atom feed as XML text declared UTF-8, and return the number of entries."""
    feed, count = build_feed(rules, context)
    ET.indent(feed)
    out.write('<?xml version="1.0" encoding="utf-8"?>\n')
    out.write(ET.tostring(feed, encoding="unicode"))
    out.write("\n")
    return count


EXPORTER = Exporter(
    name="atom",
    media_type="application/atom+xml",
    extension="atom",
    write=write_atom,
    sort="newest",
    default_limit=DEFAULT_MAX_ENTRIES,
)
