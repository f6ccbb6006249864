"""Export every rule of the real corpora in every format and check each output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import pytest
from stix2validator import ValidationOptions, validate_string

from socfeed.export import export_rules
from socfeed.export.atom import DEFAULT_MAX_ENTRIES
from socfeed.store import FeedQuery, Store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "export"

# Validating the whole bundle took about 2 minutes for 8,000 Indicators on a 2-core machine,
# so only every 25th Indicator is validated, with its relationships.
STIX_SAMPLE_STEP = 25

pytestmark = pytest.mark.corpus


def export_text(store: Store, fmt: str) -> tuple[str, int]:
    out = io.StringIO(newline="")
    written = export_rules(store, FeedQuery(), fmt, out)
    return out.getvalue(), written


def total_rules(store: Store) -> int:
    return store.feed(FeedQuery(per_page=1), with_facets=False).total


def sample_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    indicators = [item for item in bundle["objects"] if item["type"] == "indicator"]
    sampled = {item["id"] for item in indicators[::STIX_SAMPLE_STEP]}
    objects = [
        item
        for item in bundle["objects"]
        if item["type"] in ("identity", "attack-pattern")
        or item["id"] in sampled
        or item.get("source_ref") in sampled
    ]
    return {**bundle, "objects": objects}


def test_csv_has_row_per_rule(corpus_store: Store) -> None:
    text, written = export_text(corpus_store, "csv")

    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert written == total_rules(corpus_store)
    assert len(rows) == written


def test_jsonl_has_line_per_rule(corpus_store: Store) -> None:
    text, written = export_text(corpus_store, "jsonl")

    lines = text.splitlines()
    assert written == total_rules(corpus_store)
    assert len(lines) == written
    assert all(json.loads(line)["key"] for line in lines)


def test_navigator_layer_valid(corpus_store: Store) -> None:
    text, _ = export_text(corpus_store, "navigator")
    layer = json.loads(text)
    schema = json.loads((FIXTURES / "navigator-layer-4.5.schema.json").read_text("utf-8"))

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(layer))
    assert [error.message for error in errors[:5]] == []
    assert len(layer["techniques"]) > 100
    assert all(entry.get("tactic") for entry in layer["techniques"])


def test_atom_feed_parses(corpus_store: Store) -> None:
    text, written = export_text(corpus_store, "atom")

    feed = feedparser.parse(text.encode("utf-8"))
    assert feed.bozo == 0
    assert written == DEFAULT_MAX_ENTRIES
    assert len(feed.entries) == DEFAULT_MAX_ENTRIES


def test_stix_bundle_sample_valid(corpus_store: Store) -> None:
    text, written = export_text(corpus_store, "stix")
    bundle = json.loads(text)

    results = validate_string(json.dumps(sample_bundle(bundle)), ValidationOptions())
    assert [str(error) for error in results.errors[:5]] == []
    assert written > 0.9 * total_rules(corpus_store)
