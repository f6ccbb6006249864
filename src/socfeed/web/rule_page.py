"""The rule page and its JSON twin."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from socfeed.model import Rule
from socfeed.store import SourceRecord, Store
from socfeed.web.attack import TacticInfo, TechniqueInfo, knowledge_base, tactic_info
from socfeed.web.attack import technique_info as describe_technique
from socfeed.web.deps import StoreDep
from socfeed.web.rendering import (
    api_rule_path,
    file_lexer_name,
    highlight_code,
    language_label,
    query_lexer_name,
    render,
    safe_href,
)
from socfeed.web.schemas import ERROR_RESPONSES, RuleOut, rule_out

log = logging.getLogger(__name__)

router = APIRouter()

# Keys read from rule.extra["enrichment"]. Each value is a string, or a dict with "text"
# and optionally "origin" ("source", "template" or "model") and "model".
# NOTE: no enrichment step writes this dict yet. These key names are what the page
# expects, not a contract that the enrichment step has agreed to.
ENRICHMENT_KEY = "enrichment"
HYPOTHESIS_KEY = "hunt_hypothesis"
FALSE_POSITIVES_KEY = "false_positive_guidance"
CONFIDENCE_KEY = "confidence"


@dataclass
class EnrichedText:
    """A text of the enrichment and who wrote it, as the page labels it."""

    text: str
    origin: str = ""


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
    confidence: str
    query_html: Markup | None
    raw_html: Markup | None
    techniques: list[TechniqueInfo]
    tactics: list[TacticInfo]
    references: list[tuple[str, str | None]]  # (text, link when it is an http(s) URL)
    attack_version: str | None  # of the knowledge base that named the techniques
    extra: list[tuple[str, str]] = field(default_factory=list)


@router.get("/rules/{key:path}", response_class=HTMLResponse, include_in_schema=False)
def rule_page(key: str, request: Request, store: StoreDep) -> HTMLResponse:
    """Render the page of one rule, or a 404 page with keys that look alike."""
    rule = store.rule(key)
    if rule is None:
        log.info("rule not found key=%r", key)
        context = {
            "status": 404,
            "title": "Rule not found",
            "message": f"No rule is stored under the key {key!r}.",
            "suggestions": _similar_keys(store, key),
        }
        return render(request, "error.html", context, status_code=404)
    context = {"view": build_view(rule, store), "rule": rule, "api_url": api_rule_path(rule.key)}
    return render(request, "rule.html", context)


@router.get(
    "/api/rules/{key:path}", response_model=RuleOut, responses=ERROR_RESPONSES, tags=["rules"]
)
def api_rule(key: str, store: StoreDep) -> RuleOut:
    """Return one rule with every field of the normalized model."""
    rule = store.rule(key)
    if rule is None:
        raise HTTPException(404, f"no rule is stored under the key {key!r}")
    return rule_out(rule)


def _similar_keys(store: Store, key: str) -> list[str]:
    # A key whose source prefix is wrong or missing may still end with a rule id or path.
    needle = key.split(":", 1)[-1]
    return store.find_rule_keys(needle) if needle else []


def build_view(rule: Rule, store: Store) -> RuleView:
    """Compute what the rule page shows for ``rule``."""
    source = next((s for s in store.sources() if s.name == rule.source), None)
    enrichment = rule.extra.get(ENRICHMENT_KEY)
    enriched = isinstance(enrichment, dict)
    knowledge = knowledge_base()
    query_html = highlight_code(rule.query, query_lexer_name(rule.language)) if rule.query else None
    raw_html = highlight_code(rule.raw_text, file_lexer_name(rule.path)) if rule.raw_text else None

    return RuleView(
        rule=rule,
        language=language_label(rule.language),
        original_url=safe_href(rule.url),
        source=source,
        source_url=safe_href(source.web_url or source.repo_url) if source else None,
        enriched=enriched,
        hypothesis=enriched_text(enrichment, HYPOTHESIS_KEY),
        false_positive_guidance=enriched_text(enrichment, FALSE_POSITIVES_KEY),
        confidence=_confidence(enrichment),
        query_html=query_html,
        raw_html=raw_html,
        techniques=[describe_technique(t, knowledge) for t in rule.techniques],
        tactics=[tactic_info(name) for name in rule.tactics],
        references=[(reference, safe_href(reference)) for reference in rule.references],
        attack_version=knowledge.attack_version if knowledge else None,
        extra=extra_fields(rule),
    )


def enriched_text(enrichment: Any, name: str) -> EnrichedText | None:
    """Return one text of the enrichment with a label of its origin, or None if absent."""
    value = enrichment.get(name) if isinstance(enrichment, dict) else None
    if isinstance(value, dict):
        text = value.get("text")
        if not isinstance(text, str) or not text.strip():
            return None
        return EnrichedText(text, _origin_label(value.get("origin"), value.get("model")))
    if value in (None, "", [], {}):
        return None
    return EnrichedText(display_text(value))


def _origin_label(origin: Any, model: Any) -> str:
    if origin == "model":
        return f"written by the model {model}" if model else "written by a model"
    if origin == "template":
        return "written from a template"
    if origin == "source":
        return "from the rule's source"
    return ""


def _confidence(enrichment: Any) -> str:
    value = enrichment.get(CONFIDENCE_KEY) if isinstance(enrichment, dict) else None
    return display_text(value) if value not in (None, "", [], {}) else ""


def extra_fields(rule: Rule) -> list[tuple[str, str]]:
    """Return the format-specific fields of a rule as (name, text), without the enrichment."""
    return [
        (name, display_text(value))
        for name, value in rule.extra.items()
        if name != ENRICHMENT_KEY and value not in (None, "", [], {})
    ]


def display_text(value: Any) -> str:
    """Return a value as text: strings as they are, string lists one item a line, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "\n".join(value)
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
