"""Tests of the CSV export: columns, list joining, formula neutralizing, hostile text."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import pytest

from socfeed.export import export_rules
from socfeed.export.csv_rows import COLUMNS, neutralize_formula
from socfeed.model import Rule
from socfeed.store import FeedQuery, SourceRecord, Store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "export"
SENTINEL_KEY = "azure-sentinel:0d8a1f7e-5b1c-4a56-9f0e-2a1b3c4d5e6f"
SIGMA_KEY = "sigma:3f1e2d4c-0b9a-4c8d-8e7f-6a5b4c3d2e1f"


def load_rules() -> list[Rule]:
    documents = json.loads((FIXTURES / "rules.json").read_text(encoding="utf-8"))
    return [Rule.from_dict(document) for document in documents]


def fill_store(store: Store, rules: list[Rule]) -> None:
    by_source: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_source[rule.source].append(rule)
    for source, group in by_source.items():
        store.replace_source(SourceRecord(name=source, format=group[0].format), group, [])


@pytest.fixture
def csv_text(store: Store) -> str:
    fill_store(store, load_rules())
    out = io.StringIO(newline="")
    export_rules(store, FeedQuery(), "csv", out)
    return out.getvalue()


@pytest.fixture
def rows(csv_text: str) -> dict[str, dict[str, str]]:
    reader = csv.DictReader(io.StringIO(csv_text, newline=""))
    return {row["key"]: row for row in reader}


def test_header_lists_columns(csv_text: str) -> None:
    header = next(csv.reader(io.StringIO(csv_text, newline="")))

    assert tuple(header) == COLUMNS


def test_one_row_per_rule(rows: dict[str, dict[str, str]]) -> None:
    assert len(rows) == 8


def test_lists_joined_with_semicolons(rows: dict[str, dict[str, str]]) -> None:
    row = rows[SENTINEL_KEY]

    assert row["tactics"] == "Execution; InitialAccess"
    assert row["techniques"] == "T1059.001; T1566"
    assert row["tables"] == "SecurityEvent"
    assert row["tags"] == "detection; official"


def test_scalar_columns(rows: dict[str, dict[str, str]]) -> None:
    row = rows[SENTINEL_KEY]

    assert row["official"] == "true"
    assert row["severity"] == "high"
    assert row["modified"] == "2024-03-05"
    assert row["commit"] == "1111111111111111111111111111111111111111"
    assert rows[SIGMA_KEY]["commit"] == ""


def test_formula_cells_neutralized(rows: dict[str, dict[str, str]]) -> None:
    row = rows[SIGMA_KEY]

    assert row["title"] == "'=cmd|' /C calc'!A0"
    assert row["tags"] == "attack.credential-access; @import; -minus"


def test_hostile_title_kept_without_controls(rows: dict[str, dict[str, str]]) -> None:
    title = rows[SENTINEL_KEY]["title"]

    assert title == "<script>alert(1)</script> Процесс PowerShell ]]> \ufffd alert"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("plain = text", "plain = text"),
        ("", ""),
    ],
)
def test_neutralize_formula(cell: str, expected: str) -> None:
    assert neutralize_formula(cell) == expected


def test_title_with_newline_round_trips(store: Store) -> None:
    rule = load_rules()[2]
    rule.title = 'First line\nsecond, "quoted" line'
    fill_store(store, [rule])
    out = io.StringIO(newline="")

    export_rules(store, FeedQuery(), "csv", out)

    row = next(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert row["title"] == 'First line\nsecond, "quoted" line'
