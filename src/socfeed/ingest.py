"""Ingest a source: list its rule files, parse each, stamp the rules and store them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socfeed.enrich import Enricher
from socfeed.errors import Location, ParseError, SourceError
from socfeed.formats import Format, ParsedFile, RuleFile, get_format
from socfeed.formats.base import decode_rule_bytes
from socfeed.model import Rule
from socfeed.store import SaveResult, SourceRecord, Store

log = logging.getLogger(__name__)

# Called after each file with (files done, files in all).
ProgressCallback = Callable[[int, int], None]


@dataclass
class SourceInput:
    """A source's files on disk and the commit they come from, where known."""

    name: str
    format: str
    root: Path
    files: list[str]
    context_files: list[str] = field(default_factory=list)
    commit: str | None = None
    ref: str | None = None
    retrieved_at: str = ""
    licence: str = ""
    official: bool = False
    vendor: str = ""
    repo_url: str = ""
    web_url: str = ""
    location: str = ""
    is_sample: bool = False
    # Builds the link to a file at its source: (ref or commit, path) -> URL.
    url_for: Callable[[str, str], str] | None = None
    # Reads a listed file's bytes; the default reads root/path.
    reader: Callable[[str], bytes] | None = None

    def read(self, path: str) -> bytes:
        """Return the bytes of one listed file."""
        if self.reader is not None:
            return self.reader(path)
        return (self.root / path).read_bytes()


@dataclass
class IngestReport:
    """The outcome of one source's ingest: the stored record, errors and save result."""

    record: SourceRecord
    errors: list[ParseError]
    saved: SaveResult


def parse_files(
    fmt: Format,
    source: SourceInput,
    context: Mapping[str, Any],
    progress: ProgressCallback | None = None,
) -> tuple[list[Rule], list[ParseError], int]:
    """Parse every rule file of a source; return (rules, errors, files that yielded rules)."""
    all_rules: list[Rule] = []
    errors: list[ParseError] = []
    files_with_rules = 0
    for done, path in enumerate(source.files, start=1):
        parsed = parse_file(fmt, source, path, context)
        if parsed.rules:
            files_with_rules += 1
        all_rules.extend(parsed.rules)
        errors.extend(parsed.errors)
        if progress is not None:
            progress(done, len(source.files))
    return all_rules, errors, files_with_rules


def parse_file(
    fmt: Format, source: SourceInput, path: str, context: Mapping[str, Any]
) -> ParsedFile:
    """Parse one file; every failure comes back as a located ParseError, never raised."""
    location = Location(source.name, path)
    try:
        data = source.read(path)
        text = decode_rule_bytes(data, source.name, path)
        parsed = fmt.parse(RuleFile(source=source.name, path=path, text=text, context=context))
    except ParseError as exc:
        parsed = ParsedFile(errors=[exc])
    except SourceError as exc:
        parsed = ParsedFile(errors=[ParseError(exc.reason, location)])
    except OSError as exc:
        parsed = ParsedFile(errors=[ParseError(f"cannot read file: {exc.strerror}", location)])
    except Exception as exc:
        # A parser bug must not stop the run: the file is reported like any bad input and the
        # traceback goes to the log for a bug report.
        log.exception("parser failed source=%s path=%s format=%s", source.name, path, fmt.name)
        reason = f"internal parser error ({type(exc).__name__}: {exc}); please report it"
        parsed = ParsedFile(errors=[ParseError(reason, location)])
    if not parsed.rules and not parsed.errors:
        parsed.errors.append(ParseError("no rule found in the file", location))
    for error in parsed.errors:
        log.warning("file reported %s", error)
    return parsed


def stamp_rules(source: SourceInput, rules: list[Rule]) -> None:
    """Set the fields every rule takes from its source, and the kind/vendor/official tags."""
    ref = source.commit or source.ref or "HEAD"
    for rule in rules:
        rule.source = source.name
        rule.commit = source.commit
        rule.retrieved_at = source.retrieved_at
        rule.licence = source.licence
        rule.official = source.official
        rule.url = source.url_for(ref, rule.path) if source.url_for else ""
        own_tags = [
            rule.kind,
            *([source.vendor.lower()] if source.vendor else []),
            "official" if source.official else "community",
        ]
        rule.tags = list(dict.fromkeys([*own_tags, *rule.tags]))


def ingest_source(
    store: Store,
    source: SourceInput,
    enricher: Enricher | None = None,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Parse and enrich a source's files and replace its rules in the store atomically."""
    fmt = get_format(source.format)
    context: Mapping[str, Any] = {}
    if fmt.load_context is not None:
        context = fmt.load_context(source.root)
    log.info(
        "ingest started source=%s files=%d commit=%s location=%s",
        source.name,
        len(source.files),
        source.commit or "unknown",
        source.location,
    )
    rules, errors, files_with_rules = parse_files(fmt, source, context, progress)
    stamp_rules(source, rules)
    if enricher is not None:
        enricher.enrich(rules)
    files_failed = len(source.files) - files_with_rules
    record = SourceRecord(
        name=source.name,
        format=source.format,
        repo_url=source.repo_url,
        web_url=source.web_url,
        licence=source.licence,
        official=source.official,
        vendor=source.vendor,
        commit=source.commit,
        ref=source.ref,
        retrieved_at=source.retrieved_at,
        location=source.location,
        is_sample=source.is_sample,
        files_seen=len(source.files),
        files_with_rules=files_with_rules,
        files_failed=files_failed,
        rules=len(rules),
    )
    saved = store.replace_source(record, rules, errors)
    log.info(
        "ingest finished source=%s files=%d rules=%d files_failed=%d duplicates=%d",
        source.name,
        len(source.files),
        len(rules),
        files_failed,
        len(saved.duplicates),
    )
    return IngestReport(record=record, errors=errors, saved=saved)
