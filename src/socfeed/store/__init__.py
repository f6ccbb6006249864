"""The rule store: SQLAlchemy over a SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Engine

from socfeed.errors import ParseError
from socfeed.model import Rule
from socfeed.store import history, links, queries
from socfeed.store.engine import create_store_engine, default_db_path, resolve_db_url
from socfeed.store.links import RuleLink, Suggestion
from socfeed.store.records import (
    FACET_NAMES,
    FeedPage,
    FeedQuery,
    SaveResult,
    SourceRecord,
    StoredError,
)
from socfeed.store.writer import replace_source


class Store:
    """Reads and writes rules; one instance per process, safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def replace_source(
        self, record: SourceRecord, rules: Sequence[Rule], errors: Sequence[ParseError]
    ) -> SaveResult:
        """Replace a source's rules and errors with a new ingest, atomically."""
        return replace_source(self.engine, record, rules, errors)

    def feed(self, query: FeedQuery, with_facets: bool = True) -> FeedPage:
        """Return a page of the feed for ``query``."""
        with self.engine.connect() as conn:
            return queries.feed_page(conn, query, with_facets)

    def rule(self, key: str) -> Rule | None:
        """Return the rule stored under ``key``, or None."""
        with self.engine.connect() as conn:
            return queries.get_rule(conn, key)

    def find_rule_keys(self, needle: str) -> list[str]:
        """Return keys of rules matching a key, rule id or path (suffix)."""
        with self.engine.connect() as conn:
            return queries.find_rule_keys(conn, needle)

    def sources(self) -> list[SourceRecord]:
        """Return every stored source."""
        with self.engine.connect() as conn:
            return queries.list_sources(conn)

    def errors(self, source: str | None = None) -> list[StoredError]:
        """Return the parse errors of the latest ingest."""
        with self.engine.connect() as conn:
            return queries.list_errors(conn, source)

    def technique_counts(self, query: FeedQuery) -> dict[str, int]:
        """Return rule counts per technique id under the query's filters."""
        with self.engine.connect() as conn:
            return queries.technique_counts(conn, query)

    def technique_coverage(self, query: FeedQuery) -> dict[str, dict[str, int]]:
        """Return per technique the counts of all, detection, hunting and deprecated rules."""
        with self.engine.connect() as conn:
            return queries.technique_coverage(conn, query)

    def iter_rules(self) -> Iterator[Rule]:
        """Yield every stored rule (for passes over the whole store)."""
        with self.engine.connect() as conn:
            yield from links.iter_rules(conn)

    def replace_links(self, rows: Iterable[tuple[str, str, str, float, str]]) -> int:
        """Replace all links between rules in one transaction."""
        with self.engine.begin() as conn:
            return links.replace_links(conn, rows)

    def replace_suggestions(self, rows: Iterable[tuple[str, str, float, str]]) -> int:
        """Replace all technique suggestions in one transaction."""
        with self.engine.begin() as conn:
            return links.replace_suggestions(conn, rows)

    def links(self, key: str) -> list[RuleLink]:
        """Return the similar and duplicate rules linked to a rule."""
        with self.engine.connect() as conn:
            return links.links_for(conn, key)

    def suggestions(self, key: str) -> list[Suggestion]:
        """Return the techniques suggested for a rule."""
        with self.engine.connect() as conn:
            return links.suggestions_for(conn, key)

    def versions(self, key: str) -> list[dict[str, Any]]:
        """Return the earlier versions of a rule, newest first."""
        with self.engine.connect() as conn:
            return history.versions_of(conn, key)

    def close(self) -> None:
        self.engine.dispose()


def open_store(db: str | os.PathLike[str] | None = None) -> Store:
    """Open (and create if needed) the store named by --db, SOCFEED_DB or the default file."""
    return Store(create_store_engine(resolve_db_url(db)))


__all__ = [
    "FACET_NAMES",
    "FeedPage",
    "FeedQuery",
    "RuleLink",
    "SaveResult",
    "SourceRecord",
    "Store",
    "StoredError",
    "Suggestion",
    "default_db_path",
    "open_store",
    "resolve_db_url",
]
