"""What the rule page shows, computed from a stored rule, its enrichment and its links.

The enrichment is ``rule.extra["enrichment"]`` as ``socfeed.enrich.Enricher`` writes it.
Rules stored before that step ran have none. The page then states that and takes technique
names from the ATT&CK knowledge base.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from socfeed.model import Rule
from socfeed.store import RuleLink, SourceRecord, Store
from socfeed.web.attack import TacticInfo, TechniqueInfo, knowledge_base, tactic_info
from socfeed.web.attack import technique_info as describe_technique
from socfeed.web.rendering import (
    file_lexer_name,
    highlight_code,
    language_label,
    query_lexer_name,
    safe_href,
)

ENRICHMENT_KEY = "enrichment"
# Keys of rule.extra that the store's history writes; the page shows them as the
# "what changed" note, not as fields of the rule's format.
HISTORY_KEYS = ("change", "first_seen", "changed_at")
MAX_SIMILAR = 5


@dataclass
class EnrichedText:
    """A generated or copied text and the label of who wrote it."""

    text: str
    origin: str = ""


@dataclass
class ConfidenceView:
    """How far to trust the page: a level, the reasons, and which fields came from where."""

    level: str
    reasons: list[str]
    groups: list[tuple[str, list[str]]]


@dataclass
class Suggested:
    """A technique a classifier suggests for a rule whose source maps none."""

    id: str
    name: str | None
    url: str
    score: float
    model: str


@dataclass
class RuleView:
    """A rule with everything its page shows, computed once for the template."""

    rule: Rule
    language: str
    original_url: str | None
    source: SourceRecord | None
    source_url: str | None
    enriched: bool
    hypothesis: EnrichedText | None
    false_positive_guidance: EnrichedText | None
    confidence: ConfidenceView | None
    query_html: Markup | None
    raw_html: Markup | None
    techniques: list[TechniqueInfo]
    tactics: list[TacticInfo]
    attack_notes: list[str]  # revoked or unknown ids as the source wrote them
    suggestions: list[Suggested]
    references: list[tuple[str, str | None]]  # (text, link when it is an http(s) URL)
    attack_version: str | None  # of the knowledge base that named the techniques
    change: str
    similar: list[RuleLink]
    duplicates: list[RuleLink]
    versions: list[dict[str, Any]]
    extra: list[tuple[str, str]] = field(default_factory=list)


def build_view(rule: Rule, store: Store) -> RuleView:
    """Compute what the rule page shows for ``rule``."""
    source = next((s for s in store.sources() if s.name == rule.source), None)
    enrichment = rule.extra.get(ENRICHMENT_KEY)
    enrichment = enrichment if isinstance(enrichment, dict) else None
    techniques, attack_version = technique_context(rule, enrichment)
    links = store.links(rule.key)
    query_html = (
        highlight_code(rule.query, query_lexer_name(rule.language), "query-line")
        if rule.query
        else None
    )
    raw_html = (
        highlight_code(rule.raw_text, file_lexer_name(rule.path), "file-line")
        if rule.raw_text
        else None
    )
    return RuleView(
        rule=rule,
        language=language_label(rule.language),
        original_url=safe_href(rule.url),
        source=source,
        source_url=safe_href(source.web_url or source.repo_url) if source else None,
        enriched=enrichment is not None,
        hypothesis=hypothesis_text(enrichment),
        false_positive_guidance=false_positive_text(enrichment),
        confidence=confidence_view(enrichment),
        query_html=query_html,
        raw_html=raw_html,
        techniques=techniques,
        tactics=[tactic_info(name) for name in rule.tactics],
        attack_notes=attack_notes(enrichment),
        suggestions=suggested_techniques(store, rule),
        references=[(url, safe_href(url)) for url in references(rule, enrichment)],
        attack_version=attack_version,
        change=change_note(rule.extra),
        similar=[link for link in links if link.relation == "similar"][:MAX_SIMILAR],
        duplicates=[link for link in links if link.relation == "duplicate"],
        versions=store.versions(rule.key),
        extra=extra_fields(rule),
    )


def technique_context(
    rule: Rule, enrichment: dict[str, Any] | None
) -> tuple[list[TechniqueInfo], str | None]:
    """Describe the rule's techniques from its enrichment, else from the knowledge base."""
    entries = enrichment.get("techniques") if enrichment else None
    if isinstance(entries, list) and entries:
        version = enrichment.get("attack_version") if enrichment else None
        return [_technique_from_entry(entry, version) for entry in entries], version
    knowledge = knowledge_base()
    infos = [describe_technique(technique, knowledge) for technique in rule.techniques]
    return infos, knowledge.attack_version if knowledge else None


def _technique_from_entry(entry: dict[str, Any], version: str | None) -> TechniqueInfo:
    info = describe_technique(str(entry.get("id", "")), None)
    if not entry.get("known"):
        info.status = "unknown"
        info.warning = f"{info.id} is not a technique in ATT&CK {version or 'the index'}"
        return info
    info.name = entry.get("name")
    info.tactics = list(entry.get("tactics", []))
    info.summary = entry.get("summary", "")
    info.detection = entry.get("detection", "")
    info.data_components = list(entry.get("data_components", []))
    info.platforms = list(entry.get("platforms", []))
    info.url = safe_href(entry.get("url")) or info.url
    info.status = "deprecated" if entry.get("deprecated") else "ok"
    if entry.get("deprecated"):
        info.warning = f"{info.id} is deprecated in ATT&CK {version or ''}".rstrip()
    return info


def attack_notes(enrichment: dict[str, Any] | None) -> list[str]:
    """Return what the ATT&CK normalization changed or could not resolve, as sentences."""
    if not enrichment:
        return []
    notes = [
        str(item.get("warning"))
        for item in enrichment.get("resolutions", [])
        if isinstance(item, dict) and item.get("status") != "ok" and item.get("warning")
    ]
    unmatched = enrichment.get("unmatched_tactics") or []
    if unmatched:
        names = ", ".join(str(name) for name in unmatched)
        notes.append(f"The rule names tactics that none of its techniques belongs to: {names}.")
    return notes


def suggested_techniques(store: Store, rule: Rule) -> list[Suggested]:
    """Return the techniques a classifier suggests for the rule, with ATT&CK names."""
    knowledge = knowledge_base()
    suggestions = []
    for item in store.suggestions(rule.key):
        technique = knowledge.technique(item.technique) if knowledge else None
        info = describe_technique(item.technique, None)
        suggestions.append(
            Suggested(
                id=item.technique,
                name=technique.name if technique else None,
                url=info.url,
                score=item.score,
                model=item.model,
            )
        )
    return suggestions


def hypothesis_text(enrichment: dict[str, Any] | None) -> EnrichedText | None:
    """Return the hunt hypothesis with the label of its origin."""
    labels = {"template": "generated from templates", "source": "from the source"}
    return _enriched_text(enrichment, "hypothesis", labels, "generated by model")


def false_positive_text(enrichment: dict[str, Any] | None) -> EnrichedText | None:
    """Return the false-positive guidance with the label of its origin."""
    labels = {"template": "generated from templates", "source": "from the source"}
    return _enriched_text(enrichment, "false_positives", labels, "generated by model")


def _enriched_text(
    enrichment: dict[str, Any] | None, name: str, labels: dict[str, str], model_label: str
) -> EnrichedText | None:
    value = enrichment.get(name) if enrichment else None
    if not isinstance(value, dict):
        return None
    text = value.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    origin = value.get("origin")
    if origin == "model":
        model = value.get("model") or "unnamed"
        return EnrichedText(text, f"{model_label} {model}")
    return EnrichedText(text, labels.get(str(origin), ""))


def confidence_view(enrichment: dict[str, Any] | None) -> ConfidenceView | None:
    """Return the confidence level of the enrichment with its reasons."""
    value = enrichment.get("confidence") if enrichment else None
    if not isinstance(value, dict) or not value.get("level"):
        return None
    titles = (
        ("from_source", "From the source"),
        ("derived", "Derived from the source"),
        ("inferred", "Inferred or generated"),
        ("missing", "Missing"),
    )
    groups = [(title, list(value.get(key) or [])) for key, title in titles if value.get(key)]
    return ConfidenceView(str(value["level"]), list(value.get("reasons") or []), groups)


def references(rule: Rule, enrichment: dict[str, Any] | None) -> list[str]:
    """Return the rule's references followed by those the enrichment added (ATT&CK pages)."""
    added = enrichment.get("references") if enrichment else None
    extra = [str(url) for url in added] if isinstance(added, list) else []
    return list(dict.fromkeys([*rule.references, *extra]))


def change_note(extra: dict[str, Any]) -> str:
    """Describe what the latest update changed in the rule; empty when nothing."""
    change = extra.get("change")
    if not isinstance(change, dict):
        return ""
    if change.get("status") == "new":
        seen = extra.get("first_seen") or "the latest update"
        return f"New: first stored by the update of {seen}."
    if change.get("status") == "changed":
        fields = ", ".join(str(name) for name in change.get("fields") or []) or "its content"
        since = change.get("since") or "the previous update"
        return f"Changed since the update of {since}: {fields}."
    return ""


def extra_fields(rule: Rule) -> list[tuple[str, str]]:
    """Return the format-specific fields of a rule as (name, text), without socfeed's own."""
    own = (ENRICHMENT_KEY, *HISTORY_KEYS)
    return [
        (name, display_text(value))
        for name, value in rule.extra.items()
        if name not in own and value not in (None, "", [], {})
    ]


def display_text(value: Any) -> str:
    """Return a value as text: strings as they are, string lists one item a line, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "\n".join(value)
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
