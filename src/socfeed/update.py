"""Update the feed: fetch each source, ingest it, then compute cross-source links."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from socfeed.config import Settings, Source
from socfeed.enrich import Enricher
from socfeed.errors import SourceError
from socfeed.ingest import IngestReport, ProgressCallback, SourceInput, ingest_source
from socfeed.sources import (
    Checkout,
    fetch,
    iter_context_files,
    iter_rule_files,
    original_url,
    read_source_file,
    sample_checkout,
)
from socfeed.store import Store

log = logging.getLogger(__name__)

# Makes a progress callback for one source: (source name, files in all) -> callback.
ProgressFactory = Callable[[str, int], ProgressCallback]


@dataclass
class SourceOutcome:
    """The outcome of one source in an update."""

    source: str
    mode: str  # clone, pull, local, mirror, sample, or "kept" when nothing was ingested
    report: IngestReport | None = None
    # Why the source was not read from where it was asked, or why it was not ingested.
    note: str = ""


def update_sources(
    settings: Settings,
    store: Store,
    names: Sequence[str] = (),
    path: str | os.PathLike[str] | None = None,
    enricher: Enricher | None = None,
    progress: ProgressFactory | None = None,
) -> list[SourceOutcome]:
    """Fetch and ingest the named sources (every enabled one when none are named).

    A source that cannot be fetched keeps what the store already has. If the store has
    nothing but the sample for it (or nothing at all), the sample shipped in the package is
    ingested instead, and the outcome says so.
    """
    if path is not None and len(names) != 1:
        raise SourceError("--path reads one folder: name exactly one source with --source")
    selected = [settings.source(name) for name in names] or settings.enabled_sources()
    outcomes: list[SourceOutcome] = []
    for source in selected:
        outcome = _update_one(settings, store, source, path, enricher, progress)
        outcomes.append(outcome)
    return outcomes


def _update_one(
    settings: Settings,
    store: Store,
    source: Source,
    path: str | os.PathLike[str] | None,
    enricher: Enricher | None,
    progress: ProgressFactory | None,
) -> SourceOutcome:
    note = ""
    try:
        checkout = fetch(source, settings, path)
    except SourceError as exc:
        log.warning("fetch failed source=%s reason=%s", source.name, exc)
        fallback = _fallback_checkout(
            store, source, explicit=path is not None or bool(settings.mirror_dir)
        )
        if fallback is None:
            return SourceOutcome(source.name, "kept", note=f"{exc}; stored rules kept")
        checkout = fallback
        note = f"{exc}; ingested the sample shipped with socfeed instead"
    source_input = build_source_input(settings, source, checkout)
    if not source_input.files and _has_stored_rules(store, source):
        # An empty or wrong folder would otherwise replace every stored rule with nothing.
        note = f"no rule files found in {checkout.location}; stored rules kept"
        log.warning("empty source listing source=%s location=%s", source.name, checkout.location)
        return SourceOutcome(source.name, "kept", note=note)
    callback = progress(source.name, len(source_input.files)) if progress else None
    report = ingest_source(store, source_input, enricher, callback)
    return SourceOutcome(source.name, checkout.mode, report, note)


def _has_stored_rules(store: Store, source: Source) -> bool:
    stored = {record.name: record for record in store.sources()}
    previous = stored.get(source.name)
    return previous is not None and previous.rules > 0


def _fallback_checkout(store: Store, source: Source, explicit: bool) -> Checkout | None:
    """Return the sample checkout when falling back to it loses nothing stored."""
    if explicit:
        # A folder the user named is missing, so report it rather than show the sample.
        return None
    stored = {record.name: record for record in store.sources()}
    previous = stored.get(source.name)
    if previous is not None and not previous.is_sample and previous.rules > 0:
        return None
    return sample_checkout(source)


def build_source_input(settings: Settings, source: Source, checkout: Checkout) -> SourceInput:
    """Describe a fetched source for the ingest: its files, commit and links."""
    max_bytes = settings.max_file_bytes
    files = iter_rule_files(source, checkout.root, max_bytes=max_bytes)
    context_files = iter_context_files(source, checkout.root, max_bytes=max_bytes)
    return SourceInput(
        name=source.name,
        format=source.format,
        root=checkout.root,
        files=files,
        context_files=context_files,
        commit=checkout.commit,
        ref=checkout.ref or source.ref,
        retrieved_at=checkout.retrieved_at,
        licence=source.licence,
        official=source.official,
        vendor=source.vendor,
        repo_url=source.url or f"https://github.com/{source.repo}.git",
        web_url=source.web_url,
        location=checkout.location,
        is_sample=checkout.is_sample,
        url_for=functools.partial(original_url, source),
        reader=functools.partial(read_source_file, source, checkout.root, max_bytes=max_bytes),
    )
