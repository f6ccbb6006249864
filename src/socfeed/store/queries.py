"""Read the store: the feed with filters and facets, single rules, sources, coverage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, or_, select

from socfeed.model import SEVERITIES, Rule
from socfeed.store import search
from socfeed.store.records import FeedPage, FeedQuery, SourceRecord, StoredError
from socfeed.store.schema import parse_errors, rule_facets, rules, sources

# Facets kept as columns of the rules table; the others live in rule_facets.
_COLUMN_FACETS = {
    "source": rules.c.source,
    "language": rules.c.language,
    "severity": rules.c.severity,
    "kind": rules.c.kind,
    "status": rules.c.status,
}
_LINKED_FACETS = ("tactic", "technique", "table", "tag")


def feed_conditions(
    query: FeedQuery, dialect: str, skip: str | None = None
) -> list[ColumnElement[bool]]:
    """Return the WHERE conditions for a feed query, leaving out the facet named ``skip``."""
    conditions: list[ColumnElement[bool]] = []
    for name, column in _COLUMN_FACETS.items():
        values = getattr(query, name)
        if values and name != skip:
            conditions.append(column.in_(values))
    for name in _LINKED_FACETS:
        values = getattr(query, name)
        if values and name != skip:
            # Every value of a linked facet must match (a rule on T1059 *and* T1566).
            for value in values:
                conditions.append(_has_facet(name, value))
    if query.official is not None and skip != "official":
        conditions.append(rules.c.official.is_(query.official))
    if query.my_tables is not None:
        conditions.append(_runnable_with(query.my_tables))
    matching = search.match_condition(dialect, query.text)
    if matching is not None:
        conditions.append(matching)
    return conditions


def _runnable_with(tables: list[str]) -> ColumnElement[bool]:
    """Select rules every table of which is in ``tables`` (rules naming no table pass)."""
    lowered = [t.lower() for t in tables]
    missing = select(rule_facets.c.rule_key).where(
        rule_facets.c.facet == "table", func.lower(rule_facets.c.value).not_in(lowered)
    )
    return rules.c.key.not_in(missing)


def _has_facet(name: str, value: str) -> ColumnElement[bool]:
    linked = select(rule_facets.c.rule_key).where(
        rule_facets.c.facet == name, rule_facets.c.value == value
    )
    return rules.c.key.in_(linked)


def _order(query: FeedQuery, rank: Any | None) -> list[Any]:
    if query.sort in ("", "relevance") and rank is not None:
        return [rank, rules.c.sort_date.desc(), rules.c.key]
    if query.sort == "title":
        return [rules.c.title, rules.c.key]
    if query.sort == "severity":
        rank = case(
            {name: index for index, name in enumerate(SEVERITIES)},
            value=rules.c.severity,
            else_=-1,
        )
        return [rank.desc(), rules.c.sort_date.desc(), rules.c.key]
    return [rules.c.sort_date.desc(), rules.c.retrieved_at.desc(), rules.c.title, rules.c.key]


def feed_page(conn: Connection, query: FeedQuery, with_facets: bool = True) -> FeedPage:
    """Return one page of matching rules, newest first unless asked otherwise."""
    dialect = conn.dialect.name
    conditions = feed_conditions(query, dialect)
    where = and_(*conditions) if conditions else None
    total_query = select(func.count()).select_from(rules)
    page_query: Select[Any] = select(rules.c.doc, rules.c.key, rules.c.stale_reason)
    if where is not None:
        total_query = total_query.where(where)
        page_query = page_query.where(where)
    total = conn.execute(total_query).scalar_one()
    per_page = max(1, min(query.per_page, 500))
    page = max(1, query.page)
    rank_join, rank = (None, None)
    if query.sort in ("", "relevance"):
        rank_join, rank = search.ranked(dialect, query.text)
    if rank_join is not None:
        page_query = page_query.join(rank_join, rank_join.c.key == rules.c.key)
    rows = conn.execute(
        page_query.order_by(*_order(query, rank)).limit(per_page).offset((page - 1) * per_page)
    ).all()
    result = FeedPage(
        rules=[_rule_from_row(row) for row in rows], total=total, page=page, per_page=per_page
    )
    result.snippets = search.snippets(conn, [r.key for r in result.rules], query.text)
    if with_facets:
        result.facets = facet_counts(conn, query)
    return result


def facet_counts(conn: Connection, query: FeedQuery) -> dict[str, list[tuple[str, int]]]:
    """Count rules per facet value under every filter except that facet's own."""
    counts: dict[str, list[tuple[str, int]]] = {}
    for name, column in _COLUMN_FACETS.items():
        stmt = select(column, func.count()).where(column.is_not(None)).group_by(column)
        stmt = _filtered(stmt, feed_conditions(query, conn.dialect.name, skip=name))
        counts[name] = _sorted_counts(conn.execute(stmt).all())
    stmt = select(rules.c.official, func.count()).group_by(rules.c.official)
    stmt = _filtered(stmt, feed_conditions(query, conn.dialect.name, skip="official"))
    counts["official"] = [
        ("official" if value else "community", count) for value, count in conn.execute(stmt)
    ]
    for name in _LINKED_FACETS:
        stmt = (
            select(rule_facets.c.value, func.count())
            .join(rules, rules.c.key == rule_facets.c.rule_key)
            .where(rule_facets.c.facet == name)
            .group_by(rule_facets.c.value)
        )
        stmt = _filtered(stmt, feed_conditions(query, conn.dialect.name, skip=name))
        counts[name] = _sorted_counts(conn.execute(stmt).all())
    return counts


def _filtered(stmt: Select[Any], conditions: list[ColumnElement[bool]]) -> Select[Any]:
    return stmt.where(and_(*conditions)) if conditions else stmt


def _sorted_counts(rows: Sequence[Any]) -> list[tuple[str, int]]:
    pairs = [(str(value), int(count)) for value, count in rows if value is not None]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def _rule_from_row(row: Any) -> Rule:
    rule = Rule.from_dict(json.loads(row.doc))
    rule.key = row.key
    if row.stale_reason is not None:
        rule.warnings.append(
            "this file failed to parse in the latest update, so the rule shown is the one "
            f"stored earlier: {row.stale_reason}"
        )
    return rule


def get_rule(conn: Connection, key: str) -> Rule | None:
    """Return the rule stored under ``key``, or None."""
    row = conn.execute(
        select(rules.c.doc, rules.c.key, rules.c.stale_reason).where(rules.c.key == key)
    ).first()
    return _rule_from_row(row) if row is not None else None


def find_rule_keys(conn: Connection, needle: str, limit: int = 10) -> list[str]:
    """Return keys of rules whose key, rule id or path equals ``needle`` or ends with it."""
    stmt = (
        select(rules.c.key)
        .where(
            or_(
                rules.c.key == needle,
                rules.c.rule_id == needle,
                rules.c.path == needle,
                rules.c.path.endswith(needle, autoescape=True),
            )
        )
        .order_by(rules.c.key)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def list_sources(conn: Connection) -> list[SourceRecord]:
    """Return every stored source, by name."""
    rows = conn.execute(select(sources).order_by(sources.c.name)).mappings().all()
    return [SourceRecord(**dict(row)) for row in rows]


def list_errors(conn: Connection, source: str | None = None) -> list[StoredError]:
    """Return the parse errors of the latest ingest of one or every source."""
    stmt = select(parse_errors).order_by(parse_errors.c.source, parse_errors.c.path)
    if source:
        stmt = stmt.where(parse_errors.c.source == source)
    return [
        StoredError(row.source, row.path, row.line, row.column, row.reason)
        for row in conn.execute(stmt)
    ]


def technique_counts(conn: Connection, query: FeedQuery) -> dict[str, int]:
    """Count the rules matching ``query`` per technique id."""
    stmt = (
        select(rule_facets.c.value, func.count())
        .join(rules, rules.c.key == rule_facets.c.rule_key)
        .where(rule_facets.c.facet == "technique")
        .group_by(rule_facets.c.value)
    )
    stmt = _filtered(stmt, feed_conditions(query, conn.dialect.name, skip="technique"))
    return {str(value): int(count) for value, count in conn.execute(stmt)}


def technique_coverage(conn: Connection, query: FeedQuery) -> dict[str, dict[str, int]]:
    """Count matching rules per technique: all, detections, hunting queries, deprecated.

    A technique whose rules are all hunting queries, or all deprecated, is a gap for a SOC
    that needs alerts; the coverage page lists those.
    """
    deprecated = case((rules.c.status == "deprecated", 1), else_=0)
    hunting = case((rules.c.kind == "hunting", 1), else_=0)
    stmt = (
        select(
            rule_facets.c.value,
            func.count(),
            func.sum(hunting),
            func.sum(deprecated),
        )
        .join(rules, rules.c.key == rule_facets.c.rule_key)
        .where(rule_facets.c.facet == "technique")
        .group_by(rule_facets.c.value)
    )
    stmt = _filtered(stmt, feed_conditions(query, conn.dialect.name, skip="technique"))
    return {
        str(value): {
            "rules": int(total),
            "hunting": int(hunt or 0),
            "detection": int(total) - int(hunt or 0),
            "deprecated": int(dep or 0),
        }
        for value, total, hunt, dep in conn.execute(stmt)
    }
