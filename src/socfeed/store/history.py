"""Per-rule version history: what changed between ingests, and which rules were retired."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from socfeed.model import Rule
from socfeed.store.records import SourceRecord
from socfeed.store.schema import rule_versions, rules

# Fields compared to say what changed; the original file text is compared last because a
# change anywhere in the file changes it.
_COMPARED = (
    "title",
    "description",
    "query",
    "severity",
    "status",
    "techniques",
    "tactics",
    "references",
    "false_positives",
    "raw_text",
)


@dataclass
class ChangeCounts:
    """How many rules an ingest added, changed and retired."""

    new: int = 0
    changed: int = 0
    retired: int = 0


def record_versions(
    conn: Connection, record: SourceRecord, new_rules: Sequence[Rule], kept_keys: set[str]
) -> ChangeCounts:
    """Compare the new rules with the stored ones, keep old versions, note what changed.

    Sets ``first_seen``, ``changed_at`` and ``change`` in each new rule's ``extra``. Must run
    before the source's old rows are deleted.
    """
    stored = {
        row.key: row
        for row in conn.execute(
            select(
                rules.c.key,
                rules.c.content_hash,
                rules.c.first_seen,
                rules.c.changed_at,
                rules.c.retrieved_at,
                rules.c.doc,
            ).where(rules.c.source == record.name)
        )
    }
    now = record.retrieved_at
    counts = ChangeCounts()
    history: list[dict[str, Any]] = []
    for rule in new_rules:
        previous = stored.get(rule.key)
        if previous is None:
            rule.extra.update(first_seen=now, changed_at=now)
            rule.extra["change"] = {"status": "new"} if stored else None
            counts.new += 1 if stored else 0
            continue
        rule.extra["first_seen"] = previous.first_seen or previous.retrieved_at
        if previous.content_hash == rule.content_hash():
            rule.extra["changed_at"] = previous.changed_at or previous.retrieved_at
            rule.extra["change"] = None
            continue
        old = json.loads(previous.doc)
        rule.extra["changed_at"] = now
        rule.extra["change"] = {
            "status": "changed",
            "since": previous.retrieved_at,
            "fields": changed_fields(old, rule),
        }
        history.append(_version_row(previous, now, "changed"))
        counts.changed += 1
    new_keys = {rule.key for rule in new_rules}
    for key, previous in stored.items():
        if key not in new_keys and key not in kept_keys:
            history.append(_version_row(previous, now, "retired"))
            counts.retired += 1
    if history:
        conn.execute(insert(rule_versions), history)
    return counts


def changed_fields(old: dict[str, Any], rule: Rule) -> list[str]:
    """Return the names of compared fields whose value differs between two versions."""
    new = rule.to_dict()
    return [name for name in _COMPARED if old.get(name) != new.get(name)]


def _version_row(previous: Any, now: str, reason: str) -> dict[str, Any]:
    return {
        "rule_key": previous.key,
        "content_hash": previous.content_hash,
        "retrieved_at": previous.retrieved_at,
        "replaced_at": now,
        "reason": reason,
        "doc": previous.doc,
    }


def versions_of(conn: Connection, key: str) -> list[dict[str, Any]]:
    """Return the earlier versions of a rule, newest first, without their documents."""
    stmt = (
        select(
            rule_versions.c.content_hash,
            rule_versions.c.retrieved_at,
            rule_versions.c.replaced_at,
            rule_versions.c.reason,
        )
        .where(rule_versions.c.rule_key == key)
        .order_by(rule_versions.c.id.desc())
    )
    return [dict(row._mapping) for row in conn.execute(stmt)]
