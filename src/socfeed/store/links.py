"""Store and read links between rules and technique suggestions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from socfeed.model import Rule
from socfeed.store.schema import rule_links, rule_suggestions, rules


@dataclass(frozen=True)
class RuleLink:
    """A link from one rule to another, as stored."""

    other_key: str
    relation: str  # "similar" or "duplicate"
    score: float
    reason: str
    title: str = ""
    source: str = ""


@dataclass(frozen=True)
class Suggestion:
    """A technique suggested by a classifier for a rule that maps none."""

    technique: str
    score: float
    model: str


def iter_rules(conn: Connection, batch: int = 1000) -> Iterator[Rule]:
    """Yield every stored rule, in key order, a batch at a time."""
    last = ""
    while True:
        rows = conn.execute(
            select(rules.c.key, rules.c.doc)
            .where(rules.c.key > last)
            .order_by(rules.c.key)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            rule = Rule.from_dict(json.loads(row.doc))
            rule.key = row.key
            yield rule
        last = rows[-1].key


def replace_links(conn: Connection, links: Iterable[tuple[str, str, str, float, str]]) -> int:
    """Replace every stored link with (rule_key, other_key, relation, score, reason) rows."""
    conn.execute(delete(rule_links))
    rows = [
        {"rule_key": a, "other_key": b, "relation": rel, "score": score, "reason": reason}
        for a, b, rel, score, reason in links
    ]
    for start in range(0, len(rows), 1000):
        conn.execute(insert(rule_links), rows[start : start + 1000])
    return len(rows)


def replace_suggestions(
    conn: Connection, suggestions: Iterable[tuple[str, str, float, str]]
) -> int:
    """Replace every stored suggestion with (rule_key, technique, score, model) rows."""
    conn.execute(delete(rule_suggestions))
    rows = [
        {"rule_key": key, "technique": technique, "score": score, "model": model}
        for key, technique, score, model in suggestions
    ]
    for start in range(0, len(rows), 1000):
        conn.execute(insert(rule_suggestions), rows[start : start + 1000])
    return len(rows)


def links_for(conn: Connection, key: str) -> list[RuleLink]:
    """Return the links of one rule, duplicates first, then by score."""
    stmt: Any = (
        select(
            rule_links.c.other_key,
            rule_links.c.relation,
            rule_links.c.score,
            rule_links.c.reason,
            rules.c.title,
            rules.c.source,
        )
        .join(rules, rules.c.key == rule_links.c.other_key)
        .where(rule_links.c.rule_key == key)
        .order_by(rule_links.c.relation, rule_links.c.score.desc(), rule_links.c.other_key)
    )
    return [RuleLink(*row) for row in conn.execute(stmt)]


def suggestions_for(conn: Connection, key: str) -> list[Suggestion]:
    """Return the suggested techniques of one rule, best first."""
    stmt = (
        select(rule_suggestions.c.technique, rule_suggestions.c.score, rule_suggestions.c.model)
        .where(rule_suggestions.c.rule_key == key)
        .order_by(rule_suggestions.c.score.desc())
    )
    return [Suggestion(*row) for row in conn.execute(stmt)]


def count_links(conn: Connection, relation: str) -> int:
    """Return how many links of one relation are stored."""
    stmt = select(func.count()).select_from(rule_links).where(rule_links.c.relation == relation)
    return int(conn.execute(stmt).scalar_one())
