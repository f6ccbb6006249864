"""Tests of the export registry and of export_rules paging through the store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from socfeed.export import export_names, export_rules, get_exporter, iter_rules
from socfeed.export.base import ExportContext
from socfeed.model import Rule
from socfeed.store import FeedQuery, SourceRecord, Store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "export"
SIGMA_FILE = "rules/windows/process_creation/proc_creation_win_lolbin_runscripthelper.yml"


def bulk_rules(count: int, source: str = "bulk") -> list[Rule]:
    return [
        Rule(
            source=source,
            path=f"rules/{index:04}.yml",
            rule_id=f"{source}-{index:04}",
            format="sigma",
            title=f"Bulk rule {index:04}",
            language="sigma",
            kind="detection",
            query="detection: {}",
            raw_text="",
            created=f"2024-{index % 12 + 1:02}-01",
        )
        for index in range(count)
    ]


def test_export_names_lists_formats() -> None:
    assert export_names() == ["csv", "jsonl", "navigator", "stix", "atom"]


@pytest.mark.parametrize("name", ["csv", "jsonl", "navigator", "stix", "atom"])
def test_registered_module_exposes_exporter(name: str) -> None:
    exporter = get_exporter(name)

    assert exporter.name == name
    assert exporter.media_type
    assert exporter.extension


def test_unknown_format_names_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown export format 'xlsx'; known formats: csv, jsonl"):
        get_exporter("xlsx")


def test_iter_rules_reads_every_page(store: Store) -> None:
    store.replace_source(SourceRecord(name="bulk", format="sigma"), bulk_rules(1203), [])

    keys = [rule.key for rule in iter_rules(store, FeedQuery(page=3, per_page=7))]

    assert len(keys) == 1203
    assert len(set(keys)) == 1203


def test_iter_rules_stops_at_limit(store: Store) -> None:
    store.replace_source(SourceRecord(name="bulk", format="sigma"), bulk_rules(620), [])

    assert len(list(iter_rules(store, FeedQuery(), limit=510))) == 510


def test_iter_rules_empty_store(store: Store) -> None:
    assert list(iter_rules(store, FeedQuery())) == []


def test_export_rules_applies_filters(store: Store) -> None:
    store.replace_source(SourceRecord(name="one", format="sigma"), bulk_rules(5, "one"), [])
    store.replace_source(SourceRecord(name="two", format="sigma"), bulk_rules(3, "two"), [])
    out = io.StringIO()

    written = export_rules(store, FeedQuery(source=["two"]), "jsonl", out)

    sources = {json.loads(line)["source"] for line in out.getvalue().splitlines()}
    assert written == 3
    assert sources == {"two"}


def test_export_rules_limit_overrides_default(store: Store) -> None:
    store.replace_source(SourceRecord(name="bulk", format="sigma"), bulk_rules(250), [])

    written = export_rules(store, FeedQuery(), "atom", io.StringIO(), limit=240)

    assert written == 240


def test_export_rules_unknown_format(store: Store) -> None:
    with pytest.raises(KeyError):
        export_rules(store, FeedQuery(), "xlsx", io.StringIO())


def test_real_sigma_rule_in_every_format(store: Store) -> None:
    formats = pytest.importorskip("socfeed.formats")
    try:
        sigma = formats.get_format("sigma")
    except ImportError:
        pytest.skip("the Sigma parser is not installed")
    text = (FIXTURES / "sigma" / SIGMA_FILE).read_text(encoding="utf-8")
    parsed = sigma.parse(formats.RuleFile("sigma", SIGMA_FILE, text))
    store.replace_source(SourceRecord(name="sigma", format="sigma"), parsed.rules, [])
    outputs = {}

    for name in export_names():
        out = io.StringIO(newline="")
        written = export_rules(store, FeedQuery(), name, out, ExportContext())
        outputs[name] = out.getvalue()
        assert written == 1, name

    layer = json.loads(outputs["navigator"])
    pairs = {(entry["techniqueID"], entry["tactic"]) for entry in layer["techniques"]}
    assert pairs == {("T1059", "execution"), ("T1202", "stealth")}
    assert "Suspicious Runscripthelper.exe" in outputs["atom"]
    assert '"pattern_type": "sigma"' in outputs["stix"]
