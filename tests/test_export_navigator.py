"""Tests of the ATT&CK Navigator layer export: format 4.5 schema, tactics, scores, caps."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from socfeed.export import export_rules
from socfeed.export.base import ExportContext
from socfeed.export.navigator import MAX_COMMENT_TITLES, MAX_LINKS, build_layer
from socfeed.export.tactics import StaticTactics
from socfeed.model import Rule
from socfeed.store import FeedQuery, SourceRecord, Store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "export"

LOOKUP = StaticTactics(
    tactics={
        "T1059": ["execution"],
        "T1566": ["initial-access"],
        "T1003": ["credential-access"],
        "T1685": ["defense-impairment"],
        "T1046": ["discovery"],
        "T1070": ["stealth"],
        "T1078": ["initial-access", "persistence", "privilege-escalation", "stealth"],
    },
    names={"T1059": "Command and Scripting Interpreter"},
    replacements={"T1562.001": "T1685"},
    attack_version="19",
)


def load_rules() -> list[Rule]:
    documents = json.loads((FIXTURES / "rules.json").read_text(encoding="utf-8"))
    return [Rule.from_dict(document) for document in documents]


def fill_store(store: Store, rules: list[Rule]) -> None:
    by_source: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_source[rule.source].append(rule)
    for source, group in by_source.items():
        store.replace_source(SourceRecord(name=source, format=group[0].format), group, [])


def export_layer(store: Store, query: FeedQuery | None = None) -> dict[str, Any]:
    out = io.StringIO()
    context = ExportContext(tactics=LOOKUP)
    export_rules(store, query or FeedQuery(), "navigator", out, context)
    layer: dict[str, Any] = json.loads(out.getvalue())
    return layer


def layer_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (FIXTURES / "navigator-layer-4.5.schema.json").read_text(encoding="utf-8")
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def entries_by_pair(layer: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(entry["techniqueID"], entry["tactic"]): entry for entry in layer["techniques"]}


@pytest.fixture
def layer(store: Store) -> dict[str, Any]:
    fill_store(store, load_rules())
    return export_layer(store)


def test_layer_matches_format_schema(layer: dict[str, Any]) -> None:
    errors = list(jsonschema.Draft202012Validator(layer_schema()).iter_errors(layer))

    assert [error.message for error in errors] == []


def test_layer_versions_and_domain(layer: dict[str, Any]) -> None:
    assert layer["versions"] == {"attack": "19", "navigator": "5.1.0", "layer": "4.5"}
    assert layer["domain"] == "enterprise-attack"


def test_every_entry_has_tactic(layer: dict[str, Any]) -> None:
    assert layer["techniques"]
    for entry in layer["techniques"]:
        assert entry.get("tactic"), entry["techniqueID"]


def test_one_entry_per_technique_and_tactic(layer: dict[str, Any]) -> None:
    pairs = [(entry["techniqueID"], entry["tactic"]) for entry in layer["techniques"]]

    assert len(pairs) == len(set(pairs))


def test_rule_tactic_that_fits_wins(layer: dict[str, Any]) -> None:
    pairs = entries_by_pair(layer)

    # The EQL rule names Execution and Persistence, but T1059 belongs to Execution only.
    assert ("T1059", "execution") in pairs
    assert ("T1059", "persistence") not in pairs


def test_technique_without_rule_tactics_under_each_tactic(layer: dict[str, Any]) -> None:
    tactics = sorted(tactic for technique, tactic in entries_by_pair(layer) if technique == "T1078")

    assert tactics == ["initial-access", "persistence", "privilege-escalation", "stealth"]


def test_subtechnique_takes_parent_tactic(layer: dict[str, Any]) -> None:
    pairs = entries_by_pair(layer)

    assert ("T1059.001", "execution") in pairs
    assert ("T1003.001", "credential-access") in pairs


def test_revoked_id_counts_for_replacement(layer: dict[str, Any]) -> None:
    entry = entries_by_pair(layer)[("T1685", "defense-impairment")]

    assert entry["score"] == 1
    assert {"name": "rules name revoked ids", "value": "T1562.001"} in entry["metadata"]
    assert all(e["techniqueID"] != "T1562.001" for e in layer["techniques"])


def test_technique_without_tactic_left_out_and_listed(layer: dict[str, Any]) -> None:
    listed = {item.get("name"): item.get("value") for item in layer["metadata"]}

    assert all(entry["techniqueID"] != "T9999" for entry in layer["techniques"])
    assert listed["left out, no tactic known"] == "T9999"


def test_score_counts_rules(layer: dict[str, Any]) -> None:
    # T1046 is named by the ES|QL rule and by the Splunk rule.
    entry = entries_by_pair(layer)[("T1046", "discovery")]

    assert entry["score"] == 2
    assert layer["gradient"]["maxValue"] == 2


def test_comment_keeps_hostile_title_as_text(layer: dict[str, Any]) -> None:
    comment = entries_by_pair(layer)[("T1566", "initial-access")]["comment"]

    assert "<script>alert(1)</script> Процесс PowerShell ]]>" in comment
    assert "\u0001" not in comment


def test_links_point_to_rule_pages(layer: dict[str, Any]) -> None:
    links = entries_by_pair(layer)[("T1046", "discovery")]["links"]

    urls = sorted(link["url"] for link in links)
    assert urls == [
        "http://127.0.0.1:8000/rules/elastic-detection-rules%3Aa1b2c3d4-0000-4000-8000-000000000003",
        "http://127.0.0.1:8000/rules/splunk-security-content%3A5e6f7a8b-1c2d-4e3f-9a0b-1c2d3e4f5a6b",
    ]


def test_parent_shows_subtechniques(layer: dict[str, Any]) -> None:
    pairs = entries_by_pair(layer)

    assert pairs[("T1059", "execution")].get("showSubtechniques") is True
    assert "showSubtechniques" not in pairs[("T1046", "discovery")]


def test_filtered_layer_names_filters(store: Store) -> None:
    fill_store(store, load_rules())

    layer = export_layer(store, FeedQuery(source=["sigma"]))

    assert layer["name"] == "socfeed rule coverage (source=sigma)"
    assert {entry["techniqueID"] for entry in layer["techniques"]} == {"T1003.001", "T1685"}


def test_empty_layer_is_valid(store: Store) -> None:
    layer = export_layer(store)

    errors = list(jsonschema.Draft202012Validator(layer_schema()).iter_errors(layer))
    assert [error.message for error in errors] == []
    assert layer["techniques"] == []
    assert layer["gradient"]["maxValue"] > layer["gradient"]["minValue"]


def test_comment_and_links_capped() -> None:
    rules = [
        Rule(
            source="demo",
            path=f"r{index:02}.yml",
            rule_id=str(index),
            format="sigma",
            title=f"Rule number {index:02}",
            language="sigma",
            kind="detection",
            query="detection: {}",
            raw_text="",
            techniques=["T1059"],
            key=f"demo:{index}",
        )
        for index in range(MAX_COMMENT_TITLES + 5)
    ]

    layer, count = build_layer(rules, ExportContext(tactics=LOOKUP))

    entry = layer["techniques"][0]
    assert count == MAX_COMMENT_TITLES + 5
    assert entry["score"] == MAX_COMMENT_TITLES + 5
    assert entry["comment"].splitlines()[-1] == "… and 5 more"
    assert len(entry["links"]) == MAX_LINKS


def test_no_links_without_web_base_url(layer: dict[str, Any], store: Store) -> None:
    out = io.StringIO()
    context = ExportContext(tactics=LOOKUP, base_url="")

    export_rules(store, FeedQuery(), "navigator", out, context)

    layer = json.loads(out.getvalue())
    assert all("links" not in entry for entry in layer["techniques"])
    assert "links" not in layer
