"""Passes over the whole store after an update: similar rules and exact duplicates."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from socfeed.enrich.similar import RuleSketch, exact_duplicates, similar_rules
from socfeed.store import Store

log = logging.getLogger(__name__)


@dataclass
class LinkCounts:
    """How many links the pass stored."""

    rules: int = 0
    similar: int = 0
    duplicates: int = 0


def refresh_links(store: Store) -> LinkCounts:
    """Recompute similar rules across sources and duplicates within a source."""
    sketches = [
        RuleSketch(
            key=rule.key,
            source=rule.source,
            title=rule.title,
            description=rule.description,
            query=rule.query,
            techniques=tuple(rule.techniques),
            tables=tuple(rule.tables()),
        )
        for rule in store.iter_rules()
    ]
    counts = LinkCounts(rules=len(sketches))
    rows: list[tuple[str, str, str, float, str]] = []
    for key, others in exact_duplicates(sketches).items():
        for other in others:
            rows.append((key, other, "duplicate", 1.0, "same normalized query"))
            counts.duplicates += 1
    for key, found in similar_rules(sketches).items():
        for item in found:
            rows.append((key, item.key, "similar", item.score, item.reason))
            counts.similar += 1
    store.replace_links(rows)
    log.info(
        "links refreshed rules=%d similar=%d duplicates=%d",
        counts.rules,
        counts.similar,
        counts.duplicates,
    )
    return counts
