"""ATT&CK Navigator layer export (layer format 4.5): rules per technique and tactic.

Each technique appears once per tactic it is placed under, always with a ``tactic``, so
that the Navigator does not copy its score into tactics no rule covers.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from socfeed.attack.ids import TACTICS, normalize_technique_id
from socfeed.export.base import (
    ExportContext,
    Exporter,
    clean_text,
    describe_query,
    feed_url,
    is_web_url,
    rule_page_url,
)
from socfeed.export.tactics import TechniqueTactics, default_tactics, tactics_for
from socfeed.model import Rule

log = logging.getLogger(__name__)

LAYER_FORMAT = "4.5"
NAVIGATOR_VERSION = "5.1.0"
DOMAIN = "enterprise-attack"

# Caps that keep a cell's tooltip and context menu usable when hundreds of rules share it.
MAX_COMMENT_TITLES = 20
MAX_COMMENT_CHARS = 1500
MAX_LINKS = 10
MAX_LISTED_MISSING = 50

# Light to dark blue. The Navigator interpolates scores between these colors.
GRADIENT_COLORS = ["#ffffff", "#8ec3ef", "#08519c"]

_TACTIC_ORDER = {tactic.shortname: index for index, tactic in enumerate(TACTICS)}


@dataclass(frozen=True)
class RuleRef:
    """The parts of a rule a layer shows: its title and the key of its page."""

    title: str
    key: str


@dataclass
class Coverage:
    """Rules per (technique, tactic) pair, gathered from a stream of rules."""

    cells: dict[tuple[str, str], list[RuleRef]] = field(default_factory=dict)
    # Revoked ids that rules wrote, per pair of the technique that replaced them.
    replaced: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    rules: int = 0
    # Technique id -> rules that name it but give no tactic to place it under.
    without_tactic: Counter[str] = field(default_factory=Counter)
    invalid_ids: Counter[str] = field(default_factory=Counter)

    def add(self, rule: Rule, lookup: TechniqueTactics) -> None:
        """Count one rule under every (technique, tactic) pair it covers."""
        self.rules += 1
        ref = RuleRef(rule.title, rule.key)
        for raw_id in dict.fromkeys(rule.techniques):
            written = normalize_technique_id(raw_id)
            if written is None:
                self.invalid_ids[raw_id] += 1
                continue
            technique_id = lookup.current_id(written)
            tactics = tactics_for(technique_id, rule.tactics, lookup)
            if not tactics:
                self.without_tactic[technique_id] += 1
            for tactic in tactics:
                found = self.cells.setdefault((technique_id, tactic), [])
                # A rule naming a revoked id and its replacement counts once.
                if not found or found[-1] is not ref:
                    found.append(ref)
                if written != technique_id:
                    self.replaced.setdefault((technique_id, tactic), set()).add(written)


def build_layer(rules: Iterable[Rule], context: ExportContext) -> tuple[dict[str, Any], int]:
    """Build the layer for ``rules`` and return it with the number of rules read."""
    lookup = context.tactics or default_tactics()
    coverage = Coverage()
    for rule in rules:
        coverage.add(rule, lookup)
    _log_skipped(coverage)

    filters = clean_text(describe_query(context.query))
    max_score = max((len(found) for found in coverage.cells.values()), default=0)
    layer: dict[str, Any] = {
        "name": f"socfeed rule coverage ({filters})",
        "versions": {
            "attack": lookup.attack_version,
            "navigator": NAVIGATOR_VERSION,
            "layer": LAYER_FORMAT,
        },
        "domain": DOMAIN,
        "description": (
            f"Detection and hunting rules per ATT&CK technique and tactic, from socfeed. "
            f"Score = number of rules. {coverage.rules} rules read. Filters: {filters}."
        ),
        "sorting": 3,  # descending by score
        "layout": {
            "layout": "side",
            "showID": True,
            "showName": True,
            "showAggregateScores": False,
            "countUnscored": False,
            "aggregateFunction": "max",
            "expandedSubtechniques": "annotated",
        },
        "hideDisabled": False,
        "techniques": _technique_entries(coverage, context.base_url),
        "gradient": {
            "colors": GRADIENT_COLORS,
            "minValue": 0,
            # The format requires maxValue > minValue, also for an empty layer.
            "maxValue": max(max_score, 1),
        },
        "legendItems": [
            {"label": "no rule", "color": GRADIENT_COLORS[0]},
            {"label": _top_label(max_score), "color": GRADIENT_COLORS[-1]},
        ],
        "showTacticRowBackground": False,
        "tacticRowBackground": "#dddddd",
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
        "metadata": _layer_metadata(coverage, filters),
    }
    if is_web_url(context.base_url):
        feed = feed_url(context.base_url, context.query)
        layer["links"] = [{"label": "socfeed feed with these filters", "url": feed}]
    return layer, coverage.rules


def _top_label(max_score: int) -> str:
    top = max(max_score, 1)
    return f"{top} rule" if top == 1 else f"{top} rules"


def _technique_entries(coverage: Coverage, base_url: str) -> list[dict[str, Any]]:
    # Parents get showSubtechniques where one of their sub-techniques is in the same tactic.
    parents = {(tid.split(".", 1)[0], tactic) for tid, tactic in coverage.cells if "." in tid}
    with_links = is_web_url(base_url)
    entries = []
    for (technique_id, tactic), found in sorted(coverage.cells.items(), key=_cell_order):
        ordered = sorted(found, key=lambda rule: (rule.title.casefold(), rule.key))
        entry: dict[str, Any] = {
            "techniqueID": technique_id,
            "tactic": tactic,
            "score": len(found),
            "comment": _comment(ordered),
            "enabled": True,
            "metadata": [{"name": "rules", "value": str(len(found))}],
        }
        revoked = coverage.replaced.get((technique_id, tactic))
        if revoked:
            value = ", ".join(sorted(revoked))
            entry["metadata"].append({"name": "rules name revoked ids", "value": value})
        if with_links:
            entry["links"] = [
                {"label": clean_text(rule.title), "url": rule_page_url(base_url, rule.key)}
                for rule in ordered[:MAX_LINKS]
            ]
        if (technique_id, tactic) in parents:
            entry["showSubtechniques"] = True
        entries.append(entry)
    return entries


def _cell_order(item: tuple[tuple[str, str], list[RuleRef]]) -> tuple[int, str, str]:
    (technique_id, tactic), _ = item
    return (_TACTIC_ORDER.get(tactic, len(_TACTIC_ORDER)), tactic, technique_id)


def _comment(rules: list[RuleRef]) -> str:
    """Join rule titles into a comment, capped by title count and length."""
    titles: list[str] = []
    length = 0
    for rule in rules[:MAX_COMMENT_TITLES]:
        title = " ".join(clean_text(rule.title).split())
        if titles and length + len(title) + 1 > MAX_COMMENT_CHARS:
            break
        titles.append(title[:MAX_COMMENT_CHARS])
        length += len(title) + 1
    comment = "\n".join(titles)
    if len(titles) < len(rules):
        comment += f"\n… and {len(rules) - len(titles)} more"
    return comment


def _layer_metadata(coverage: Coverage, filters: str) -> list[dict[str, Any]]:
    metadata: list[dict[str, Any]] = [
        {"name": "generator", "value": "socfeed"},
        {"name": "rules", "value": str(coverage.rules)},
        {"name": "filters", "value": filters},
    ]
    if coverage.without_tactic:
        listed = sorted(coverage.without_tactic)
        text = ", ".join(listed[:MAX_LISTED_MISSING])
        if len(listed) > MAX_LISTED_MISSING:
            text += f" and {len(listed) - MAX_LISTED_MISSING} more"
        metadata.append({"divider": True})
        metadata.append({"name": "left out, no tactic known", "value": text})
    return metadata


def write_navigator(rules: Iterable[Rule], out: TextIO, context: ExportContext) -> int:
    """Write the layer as JSON and return the number of rules read."""
    layer, count = build_layer(rules, context)
    json.dump(layer, out, ensure_ascii=False, indent=2)
    out.write("\n")
    return count


def _log_skipped(coverage: Coverage) -> None:
    for technique_id, count in sorted(coverage.without_tactic.items()):
        log.warning(
            "technique left out of layer, no tactic known technique=%s rules=%d",
            technique_id,
            count,
        )
    for raw_id, count in sorted(coverage.invalid_ids.items()):
        log.warning("invalid technique id left out of layer id=%r rules=%d", raw_id, count)


EXPORTER = Exporter(
    name="navigator", media_type="application/json", extension="json", write=write_navigator
)
