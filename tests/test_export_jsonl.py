"""Tests of the JSON Lines export: one rule per line, round trip, escaping."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

from socfeed.export import export_rules
from socfeed.export.jsonl import rule_line
from socfeed.model import Rule
from socfeed.store import FeedQuery, SourceRecord, Store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "export"


def load_rules() -> list[Rule]:
    documents = json.loads((FIXTURES / "rules.json").read_text(encoding="utf-8"))
    return [Rule.from_dict(document) for document in documents]


def fill_store(store: Store, rules: list[Rule]) -> None:
    by_source: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_source[rule.source].append(rule)
    for source, group in by_source.items():
        store.replace_source(SourceRecord(name=source, format=group[0].format), group, [])


def export_text(store: Store) -> str:
    out = io.StringIO()
    export_rules(store, FeedQuery(), "jsonl", out)
    return out.getvalue()


def test_one_line_per_rule(store: Store) -> None:
    fill_store(store, load_rules())

    lines = export_text(store).splitlines()

    assert len(lines) == 8
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_lines_round_trip_to_stored_rules(store: Store) -> None:
    fill_store(store, load_rules())

    exported = [Rule.from_dict(json.loads(line)) for line in export_text(store).splitlines()]

    for rule in exported:
        assert rule == store.rule(rule.key)


def test_control_characters_escaped(store: Store) -> None:
    fill_store(store, load_rules())

    text = export_text(store)

    assert "\u0001" not in text
    assert "\\u0001" in text


def test_cyrillic_written_as_text(store: Store) -> None:
    fill_store(store, load_rules())

    assert "Обнаружение дампа памяти LSASS" in export_text(store)


def test_lone_surrogate_escaped() -> None:
    rule = load_rules()[0]
    rule.description = "broken \udc80 byte"

    line = rule_line(rule)

    line.encode("utf-8")
    assert json.loads(line)["description"] == "broken \udc80 byte"
    assert line.endswith("}\n")
