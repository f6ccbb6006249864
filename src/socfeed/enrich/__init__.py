"""Enrichment: ATT&CK context, data source notes, texts, severity and confidence per rule.

The result of each rule goes into ``rule.extra["enrichment"]`` as plain data (see
``Enricher.enrich``); fields the enrichment changes on the rule itself (techniques,
tactics, severity, data source notes) record how in ``rule.provenance``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from socfeed.attack.knowledge import AttackMapping, KnowledgeBase, default_knowledge_base
from socfeed.enrich.confidence import assess
from socfeed.enrich.datasources import fill_notes
from socfeed.enrich.facts import facts_from_rule
from socfeed.enrich.severity import infer_severity
from socfeed.enrich.text import GeneratedText, TextModel, generate_many
from socfeed.model import Rule

log = logging.getLogger(__name__)

ENRICHMENT_VERSION = 1
_SUMMARY_MAX_CHARS = 600


class Enricher:
    """Enriches rules against one ATT&CK knowledge base and one text generator."""

    def __init__(
        self, knowledge_base: KnowledgeBase | None = None, generator: TextModel | None = None
    ) -> None:
        self.kb = knowledge_base or default_knowledge_base()
        self.generator = generator

    def enrich(self, rules: Sequence[Rule]) -> None:
        """Enrich every rule in place."""
        source_mapped = [bool(rule.techniques) for rule in rules]
        for rule in rules:
            self._normalize_attack(rule)
            fill_notes(rule)
            self._fill_severity(rule)
        facts = [facts_from_rule(rule, self.kb.technique) for rule in rules]
        texts = generate_many(facts, self.generator)
        for rule, mapped, (hypothesis, false_positives) in zip(
            rules, source_mapped, texts, strict=True
        ):
            self._attach(rule, mapped, hypothesis, false_positives)

    def _normalize_attack(self, rule: Rule) -> None:
        mapping = self.kb.normalize_rule_attack(rule.techniques, rule.tactics)
        rule.extra["attack_mapping"] = mapping.to_dict()
        version = mapping.attack_version
        if list(mapping.techniques) != rule.techniques:
            rule.provenance["techniques"] = (
                f"derived: normalized to ATT&CK {version} (revoked ids replaced by their "
                "successor, parents of sub-techniques added)"
            )
            rule.techniques = list(mapping.techniques)
        if list(mapping.tactics) != rule.tactics:
            how = (
                "derived: tactics of the rule's techniques"
                if not rule.tactics
                else (f"derived: normalized to ATT&CK {version} tactics")
            )
            rule.provenance["tactics"] = how
            rule.tactics = list(mapping.tactics)
        for warning in mapping.warnings:
            if warning not in rule.warnings:
                rule.warnings.append(warning)

    @staticmethod
    def _fill_severity(rule: Rule) -> None:
        if rule.severity is not None:
            return
        rule.severity, reason = infer_severity(rule.kind, rule.tactics)
        rule.provenance["severity"] = reason

    def _attach(
        self,
        rule: Rule,
        source_mapped: bool,
        hypothesis: GeneratedText,
        false_positives: GeneratedText,
    ) -> None:
        mapping = AttackMapping(**_mapping_fields(rule.extra.pop("attack_mapping")))
        generated = {
            "hypothesis": hypothesis.origin,
            "false positive guidance": false_positives.origin,
        }
        confidence = assess(rule, generated, source_mapped)
        rule.extra["enrichment"] = {
            "version": ENRICHMENT_VERSION,
            "attack_version": mapping.attack_version,
            "techniques": self._technique_context(rule.techniques),
            "resolutions": [asdict(r) for r in mapping.resolutions],
            "unmatched_tactics": list(mapping.unmatched_tactics),
            "hypothesis": asdict(hypothesis),
            "false_positives": asdict(false_positives),
            "references": self._references(rule),
            "confidence": asdict(confidence),
        }

    def _technique_context(self, technique_ids: Sequence[str]) -> list[dict[str, Any]]:
        context: list[dict[str, Any]] = []
        for technique_id in technique_ids:
            technique = self.kb.technique(technique_id)
            if technique is None:
                context.append({"id": technique_id, "known": False})
                continue
            tactic_names = [
                t.name for t in (self.kb.tactic(s) for s in technique.tactics) if t is not None
            ]
            detection = technique.detection or "; ".join(
                s.name for s in technique.detection_strategies
            )
            context.append(
                {
                    "id": technique.id,
                    "known": True,
                    "name": technique.name,
                    "tactics": tactic_names,
                    "platforms": list(technique.platforms),
                    "summary": technique.summary[:_SUMMARY_MAX_CHARS],
                    "detection": detection[:_SUMMARY_MAX_CHARS],
                    "data_components": [c.name for c in technique.data_components],
                    "deprecated": technique.deprecated,
                    "url": technique.url,
                }
            )
        return context

    def _references(self, rule: Rule) -> list[str]:
        urls = list(rule.references)
        for technique_id in rule.techniques:
            technique = self.kb.technique(technique_id)
            if technique is not None and technique.url:
                urls.append(technique.url)
        return list(dict.fromkeys(urls))


def _add_provenance(rule: Rule, field: str, how: str) -> None:
    """Record a derivation step, after the parser's own when there is one."""
    previous = rule.provenance.get(field)
    rule.provenance[field] = f"{previous}; then {how}" if previous else f"derived: {how}"


def _mapping_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Rebuild AttackMapping fields from its ``to_dict`` form."""
    from socfeed.attack.knowledge import Resolution

    fields = {
        key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
    }
    fields["resolutions"] = tuple(Resolution(**r) for r in data["resolutions"])
    return fields


__all__ = ["ENRICHMENT_VERSION", "Enricher"]
