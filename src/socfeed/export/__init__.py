"""Export rules from the store: CSV, JSON Lines, ATT&CK Navigator layer, STIX 2.1, Atom.

Each format is one module exposing ``EXPORTER``, listed once in ``_MODULES``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Iterator
from typing import TextIO

from socfeed.export.base import ExportContext, Exporter, describe_query
from socfeed.model import Rule
from socfeed.store import FeedQuery, Store

log = logging.getLogger(__name__)

# Format name -> module exposing ``EXPORTER``.
_MODULES = {
    "csv": "socfeed.export.csv_rows",
    "jsonl": "socfeed.export.jsonl",
    "navigator": "socfeed.export.navigator",
    "stix": "socfeed.export.stix",
    "atom": "socfeed.export.atom",
}

# The store serves at most 500 rules per page.
_PAGE_SIZE = 500


def export_names() -> list[str]:
    """Return the names of every registered export format."""
    return list(_MODULES)


def get_exporter(name: str) -> Exporter:
    """Return the export format called ``name``, or raise KeyError naming the known ones."""
    try:
        module_name = _MODULES[name]
    except KeyError:
        known = ", ".join(_MODULES)
        raise KeyError(f"unknown export format {name!r}; known formats: {known}") from None
    module = importlib.import_module(module_name)
    exporter: Exporter = module.EXPORTER
    return exporter


def iter_rules(store: Store, query: FeedQuery, limit: int | None = None) -> Iterator[Rule]:
    """Yield every rule matching ``query`` in the query's order, page by page.

    ``limit`` stops after that many rules. The query's own page and page size are ignored.
    """
    # NOTE: pages are read in separate transactions by offset, so an ingest that commits
    # during the export can shift rules between pages, repeating or skipping some.
    page_number = 1
    yielded = 0
    while limit is None or yielded < limit:
        paged = dataclasses.replace(query, page=page_number, per_page=_PAGE_SIZE)
        page = store.feed(paged, with_facets=False)
        for rule in page.rules:
            if limit is not None and yielded >= limit:
                return
            yielded += 1
            yield rule
        if page_number >= page.pages or not page.rules:
            return
        page_number += 1


def export_rules(
    store: Store,
    query: FeedQuery,
    fmt: str,
    out_stream: TextIO,
    context: ExportContext | None = None,
    limit: int | None = None,
) -> int:
    """Write every rule matching ``query`` to ``out_stream`` in format ``fmt``.

    Returns the number of rules written. ``limit`` caps the rules taken from the store; when
    None the format's own cap applies (only Atom has one). Raise KeyError for an unknown
    format name.
    """
    exporter = get_exporter(fmt)
    if exporter.sort is not None:
        query = dataclasses.replace(query, sort=exporter.sort)
    if context is None:
        context = ExportContext()
    context = dataclasses.replace(context, query=query)
    cap = limit if limit is not None else exporter.default_limit

    written = exporter.write(iter_rules(store, query, cap), out_stream, context)
    log.info("export written format=%s rules=%d filters=%s", fmt, written, describe_query(query))
    return written


__all__ = [
    "ExportContext",
    "Exporter",
    "export_names",
    "export_rules",
    "get_exporter",
    "iter_rules",
]
