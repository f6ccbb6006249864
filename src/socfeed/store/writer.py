"""Replace one source's rules in a single transaction."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from socfeed.errors import ParseError
from socfeed.model import Rule
from socfeed.store import search
from socfeed.store.history import record_versions
from socfeed.store.records import SaveResult, SourceRecord
from socfeed.store.schema import parse_errors, rule_facets, rules, sources

log = logging.getLogger(__name__)

_BATCH = 500


def replace_source(
    engine: Engine,
    record: SourceRecord,
    new_rules: Sequence[Rule],
    errors: Sequence[ParseError],
) -> SaveResult:
    """Store a source's latest ingest, replacing its previous rules, in one transaction.

    Rules stored earlier from a file that failed to parse this time are kept, marked with
    the reason, so that a broken commit upstream loses nothing already stored.
    """
    failed_paths = {e.location.path for e in errors if e.location is not None}
    parsed_paths = {r.path for r in new_rules}
    keep_paths = failed_paths - parsed_paths
    duplicates = assign_keys(record.name, new_rules)

    fresh_keys = {r.key for r in new_rules}

    with engine.begin() as conn:
        # A fresh rule that reuses a kept rule's key replaces it.
        kept = [
            (key, path)
            for key, path in _kept_rules(conn, record.name, keep_paths)
            if key not in fresh_keys
        ]
        record.duplicates = len(duplicates)
        _upsert_source(conn, record)
        kept_keys = {key for key, _ in kept}
        changed = record_versions(conn, record, new_rules, kept_keys)
        _delete_source_rows(conn, record.name, keep=[key for key, _ in kept])
        _mark_stale(conn, kept, errors)
        for start in range(0, len(new_rules), _BATCH):
            _insert_rules(conn, new_rules[start : start + _BATCH])
        _insert_errors(conn, record.name, errors)

    for rule_id, paths in duplicates:
        log.warning("duplicate rule id source=%s rule_id=%s paths=%s", record.name, rule_id, paths)
    log.info(
        "source stored source=%s rules=%d new=%d changed=%d retired=%d kept_stale=%d errors=%d",
        record.name,
        len(new_rules),
        changed.new,
        changed.changed,
        changed.retired,
        len(kept),
        len(errors),
    )
    return SaveResult(stored=len(new_rules), kept_stale=len(kept), duplicates=duplicates)


def assign_keys(source: str, new_rules: Iterable[Rule]) -> list[tuple[str, list[str]]]:
    """Give each rule its store key; return the rule ids used more than once, with paths.

    The first rule with an id (by path, then query index) keeps ``<source>:<rule_id>``; each
    repeat gets a suffix from its path so that both are stored and keys stay stable.
    """
    by_id: dict[str, list[Rule]] = defaultdict(list)
    for rule in new_rules:
        by_id[rule.rule_id].append(rule)
    duplicates: list[tuple[str, list[str]]] = []
    for rule_id, group in by_id.items():
        group.sort(key=lambda r: (r.path, r.query_index))
        group[0].key = f"{source}:{rule_id}"
        for rule in group[1:]:
            digest = hashlib.sha1(f"{rule.path}\0{rule.query_index}".encode()).hexdigest()[:8]
            rule.key = f"{source}:{rule_id}~{digest}"
            rule.warnings.append(
                f"rule id {rule_id} is also used by {group[0].path}; stored under {rule.key}"
            )
        if len(group) > 1:
            duplicates.append((rule_id, [r.path for r in group]))
    return duplicates


def _kept_rules(conn: Connection, source: str, paths: set[str]) -> list[tuple[str, str]]:
    if not paths:
        return []
    rows = conn.execute(select(rules.c.key, rules.c.path).where(rules.c.source == source)).all()
    return [(row.key, row.path) for row in rows if row.path in paths]


def _delete_source_rows(conn: Connection, source: str, keep: list[str]) -> None:
    search.unindex_source(conn, source, keep)
    keys_query = select(rules.c.key).where(rules.c.source == source)
    if keep:
        keys_query = keys_query.where(rules.c.key.not_in(keep))
    conn.execute(delete(rule_facets).where(rule_facets.c.rule_key.in_(keys_query)))
    doomed = delete(rules).where(rules.c.source == source)
    if keep:
        doomed = doomed.where(rules.c.key.not_in(keep))
    conn.execute(doomed)
    conn.execute(delete(parse_errors).where(parse_errors.c.source == source))


def _mark_stale(
    conn: Connection, kept: list[tuple[str, str]], errors: Sequence[ParseError]
) -> None:
    reasons = {e.location.path: str(e) for e in errors if e.location is not None}
    for key, path in kept:
        conn.execute(
            update(rules).where(rules.c.key == key).values(stale_reason=reasons.get(path, ""))
        )


def _insert_rules(conn: Connection, batch: Sequence[Rule]) -> None:
    if not batch:
        return
    conn.execute(insert(rules), [_rule_row(rule) for rule in batch])
    search.index_rows(conn, batch)
    facet_rows = [row for rule in batch for row in _facet_rows(rule)]
    if facet_rows:
        conn.execute(insert(rule_facets), facet_rows)


def _rule_row(rule: Rule) -> dict[str, Any]:
    searchable = " ".join(
        [rule.title, rule.description, rule.query, *rule.tags, *rule.techniques, *rule.tables()]
    )
    return {
        "key": rule.key,
        "source": rule.source,
        "rule_id": rule.rule_id,
        "path": rule.path,
        "query_index": rule.query_index,
        "title": rule.title,
        "language": rule.language,
        "kind": rule.kind,
        "severity": rule.severity,
        "status": rule.status,
        "official": rule.official,
        "created": rule.created,
        "modified": rule.modified,
        "retrieved_at": rule.retrieved_at,
        "sort_date": rule.modified or rule.created or rule.retrieved_at[:10],
        "content_hash": rule.content_hash(),
        "first_seen": rule.extra.get("first_seen", rule.retrieved_at),
        "changed_at": rule.extra.get("changed_at", rule.retrieved_at),
        "search_text": searchable.lower(),
        "doc": json.dumps(rule.to_dict(), ensure_ascii=False, default=str),
        "stale_reason": None,
    }


def _facet_rows(rule: Rule) -> list[dict[str, str]]:
    values = {
        "tactic": rule.tactics,
        "technique": rule.techniques,
        "table": rule.tables(),
        "tag": rule.tags,
    }
    return [
        {"rule_key": rule.key, "facet": facet, "value": value[:300]}
        for facet, items in values.items()
        for value in dict.fromkeys(items)
    ]


def _insert_errors(conn: Connection, source: str, errors: Sequence[ParseError]) -> None:
    rows = [
        {
            "source": source,
            "path": e.location.path if e.location else "",
            "line": e.location.line if e.location else None,
            "column": e.location.column if e.location else None,
            "reason": e.reason,
        }
        for e in errors
    ]
    if rows:
        conn.execute(insert(parse_errors), rows)


def _upsert_source(conn: Connection, record: SourceRecord) -> None:
    values = asdict(record)
    exists = conn.execute(select(sources.c.name).where(sources.c.name == record.name)).first()
    if exists:
        conn.execute(update(sources).where(sources.c.name == record.name).values(**values))
    else:
        conn.execute(insert(sources).values(**values))
