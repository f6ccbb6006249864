"""STIX 2.1 bundle export: an Indicator per rule, ATT&CK attack-patterns and relationships.

Ids are UUIDv5 values derived from rule keys and technique ids, and timestamps come from
the rules, so that exporting the same rules twice gives the same bundle. STIX 2.1 recommends
UUIDv4 in object ids (a SHOULD), so validators warn about the derived ids.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from typing import Any, TextIO

import stix2
from stix2.exceptions import STIXError

from socfeed.attack.ids import normalize_technique_id, tactic_by_any
from socfeed.attack.index import technique_url
from socfeed.export.base import (
    ExportContext,
    Exporter,
    encode_url,
    is_web_url,
    parse_timestamp,
)
from socfeed.export.tactics import TechniqueTactics, default_tactics
from socfeed.model import Rule

log = logging.getLogger(__name__)

# Namespace of every id this export derives. Changing it changes every id.
_NAMESPACE = uuid.UUID("6a03d4a3-c2ff-43cc-8aed-d5434101b786")

# Timestamp of the objects socfeed makes that no rule dates: its identity and the
# attack-patterns. Fixed so that repeated exports stay identical.
_FIXED_TIMESTAMP = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

# Rule language -> STIX pattern_type. "sigma" is in the STIX 2.1 indicator-pattern
# vocabulary. The others are custom values, which the open vocabulary allows and
# stix2-validator 3.3 accepts with a warning. "kuery" is Elastic's name for its Kibana
# Query Language, kept apart from Microsoft's Kusto "kql".
PATTERN_TYPES = {
    "sigma": "sigma",
    "spl": "spl",
    "kql": "kql",
    "eql": "eql",
    "esql": "esql",
    "kuery": "kuery",
    "lucene": "lucene",
}

KILL_CHAIN = "mitre-attack"


def stix_id(object_type: str, *parts: str) -> str:
    """Return a STIX id whose UUIDv5 is derived from ``parts``."""
    return f"{object_type}--{uuid.uuid5(_NAMESPACE, chr(0).join((object_type, *parts)))}"


IDENTITY_ID = stix_id("identity", "socfeed")


def socfeed_identity() -> stix2.Identity:
    """Return the identity that every exported object names as its creator."""
    return stix2.Identity(
        id=IDENTITY_ID,
        name="socfeed",
        description="Normalized feed of public detection and hunting rules.",
        identity_class="system",
        created=_FIXED_TIMESTAMP,
        modified=_FIXED_TIMESTAMP,
    )


def pattern_type(language: str) -> str:
    """Return the STIX pattern_type for a rule language (the language itself if unmapped).

    A rule without a language gets "unknown", because STIX requires a pattern_type.
    """
    name = language.strip().lower()
    return PATTERN_TYPES.get(name, name or "unknown")


def rule_indicator(rule: Rule, fallback_time: dt.datetime) -> stix2.Indicator:
    """Return the Indicator of one rule, whose id depends only on the rule key."""
    created = parse_timestamp(rule.created) or parse_timestamp(rule.retrieved_at)
    created = created or fallback_time
    modified = max(created, parse_timestamp(rule.modified) or created)
    values: dict[str, Any] = {
        "id": stix_id("indicator", rule.key),
        "created": created,
        "modified": modified,
        "valid_from": created,
        "created_by_ref": IDENTITY_ID,
        "name": rule.title or rule.key,
        "pattern": rule.query,
        "pattern_type": pattern_type(rule.language),
        "external_references": _rule_references(rule),
    }
    if rule.description:
        values["description"] = rule.description
    labels = [tag for tag in dict.fromkeys(rule.tags) if tag.strip()]
    if labels:
        values["labels"] = labels
    phases = _kill_chain_phases(rule.tactics)
    if phases:
        values["kill_chain_phases"] = phases
    return stix2.Indicator(**values)


def _rule_references(rule: Rule) -> list[dict[str, str]]:
    origin: dict[str, str] = {
        "source_name": rule.source or "socfeed",
        "external_id": rule.rule_id,
        "description": f"{rule.path}, licence: {rule.licence or 'not stated'}",
    }
    if is_web_url(rule.url):
        origin["url"] = encode_url(rule.url)
    references = [origin]
    for reference in dict.fromkeys(rule.references):
        if is_web_url(reference):
            references.append({"source_name": "reference", "url": encode_url(reference)})
    return references


def _kill_chain_phases(tactic_names: Iterable[str]) -> list[dict[str, str]]:
    shortnames: dict[str, None] = {}
    for name in tactic_names:
        tactic = tactic_by_any(name)
        if tactic is not None:
            shortnames[tactic.shortname] = None
    return [{"kill_chain_name": KILL_CHAIN, "phase_name": name} for name in shortnames]


def attack_pattern(technique_id: str, lookup: TechniqueTactics) -> stix2.AttackPattern:
    """Return the attack-pattern of an ATT&CK technique, named from the lookup if known."""
    values: dict[str, Any] = {
        "id": stix_id("attack-pattern", technique_id),
        "created": _FIXED_TIMESTAMP,
        "modified": _FIXED_TIMESTAMP,
        "created_by_ref": IDENTITY_ID,
        "name": lookup.name_of(technique_id) or technique_id,
        "external_references": [
            {
                "source_name": "mitre-attack",
                "external_id": technique_id,
                "url": technique_url(technique_id),
            }
        ],
    }
    phases = [
        {"kill_chain_name": KILL_CHAIN, "phase_name": shortname}
        for shortname in lookup.tactics_of(technique_id)
    ]
    if phases:
        values["kill_chain_phases"] = phases
    return stix2.AttackPattern(**values)


def indicates(indicator: stix2.Indicator, technique_id: str) -> stix2.Relationship:
    """Return the ``indicates`` relationship from a rule's Indicator to a technique."""
    return stix2.Relationship(
        id=stix_id("relationship", indicator.id, technique_id),
        created=indicator.created,
        modified=indicator.modified,
        created_by_ref=IDENTITY_ID,
        relationship_type="indicates",
        source_ref=indicator.id,
        target_ref=stix_id("attack-pattern", technique_id),
    )


def build_bundle(rules: Iterable[Rule], context: ExportContext) -> tuple[stix2.Bundle, int]:
    """Build the bundle for ``rules`` and return it with the number of Indicators."""
    lookup = context.tactics or default_tactics()
    fallback_time = context.generated_at or dt.datetime.now(dt.UTC)
    indicators: list[stix2.Indicator] = []
    relationships: list[stix2.Relationship] = []
    techniques: set[str] = set()
    without_query = 0
    for rule in rules:
        if not rule.query.strip():
            # A STIX Indicator requires a pattern, and machine learning jobs have none.
            log.debug("rule left out of STIX bundle, no query key=%s", rule.key)
            without_query += 1
            continue
        try:
            indicator = rule_indicator(rule, fallback_time)
        except STIXError as exc:
            log.warning("rule left out of STIX bundle, invalid value key=%s: %s", rule.key, exc)
            continue
        indicators.append(indicator)
        for technique_id in _technique_ids(rule, lookup):
            techniques.add(technique_id)
            relationships.append(indicates(indicator, technique_id))

    if without_query:
        log.info("rules left out of STIX bundle, no query count=%d", without_query)
    patterns = [attack_pattern(technique_id, lookup) for technique_id in sorted(techniques)]
    objects = [socfeed_identity(), *patterns, *indicators, *relationships]
    bundle_id = stix_id("bundle", *sorted(indicator.id for indicator in indicators))
    return stix2.Bundle(objects=objects, id=bundle_id), len(indicators)


def _technique_ids(rule: Rule, lookup: TechniqueTactics) -> list[str]:
    """Return the rule's valid technique ids, revoked ones replaced, without repeats."""
    found = (normalize_technique_id(raw_id) for raw_id in rule.techniques)
    return list(dict.fromkeys(lookup.current_id(written) for written in found if written))


def write_stix(rules: Iterable[Rule], out: TextIO, context: ExportContext) -> int:
    """Write a STIX 2.1 bundle as JSON and return the number of Indicators."""
    bundle, count = build_bundle(rules, context)
    bundle.fp_serialize(out, indent=2)
    out.write("\n")
    return count


EXPORTER = Exporter(
    name="stix", media_type="application/stix+json;version=2.1", extension="json", write=write_stix
)
