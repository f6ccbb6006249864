"""ATT&CK coverage: rule counts per technique, grouped by tactic in matrix order."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from socfeed.attack.ids import TACTICS, Tactic, tactic_by_any
from socfeed.store import FeedQuery, Store
from socfeed.web.attack import knowledge_base
from socfeed.web.deps import StoreDep
from socfeed.web.params import feed_url
from socfeed.web.rendering import render
from socfeed.web.schemas import CoverageOut, CoverageTactic, CoverageTechnique

if TYPE_CHECKING:
    from socfeed.attack.knowledge import KnowledgeBase

router = APIRouter()

BY_INDEX = "ATT&CK index: each technique is listed under the tactics ATT&CK gives it."
BY_RULES = (
    "rule tactics: no ATT&CK index is installed, so each technique is listed under the "
    "tactics that the rules naming it list; a rule with several tactics puts its "
    "techniques under each of them."
)


@router.get("/coverage", response_class=HTMLResponse, include_in_schema=False)
def coverage_page(request: Request, store: StoreDep) -> HTMLResponse:
    """Render the coverage page."""
    context = {"section": "coverage", "coverage": build_coverage(store)}
    return render(request, "coverage.html", context)


@router.get("/api/coverage", response_model=CoverageOut, tags=["coverage"])
def api_coverage(store: StoreDep) -> CoverageOut:
    """Return rule counts per technique, grouped by tactic in ATT&CK matrix order."""
    return build_coverage(store)


def build_coverage(store: Store) -> CoverageOut:
    """Count the stored rules per technique and group the techniques by tactic."""
    counts = store.technique_counts(FeedQuery())
    knowledge = knowledge_base()
    if knowledge is not None:
        return _coverage_by_index(counts, knowledge)
    return _coverage_by_rules(counts, store)


def _coverage_by_index(counts: dict[str, int], knowledge: KnowledgeBase) -> CoverageOut:
    grouped: dict[str, list[CoverageTechnique]] = defaultdict(list)
    ungrouped: list[CoverageTechnique] = []
    for technique_id in sorted(counts):
        entry = _technique_entry(technique_id, counts[technique_id], knowledge)
        placed = _index_tactics(entry, knowledge)
        for tactic in placed:
            grouped[tactic.id].append(entry)
        if not placed:
            ungrouped.append(entry)

    totals = _active_techniques_per_tactic(knowledge)
    return CoverageOut(
        grouping=BY_INDEX,
        attack_version=knowledge.attack_version,
        tactics=[
            _tactic_out(tactic, grouped[tactic.id], totals.get(tactic.id, 0)) for tactic in TACTICS
        ],
        ungrouped=ungrouped,
    )


def _technique_entry(technique_id: str, rules: int, knowledge: KnowledgeBase) -> CoverageTechnique:
    technique = knowledge.technique(technique_id)
    resolution = knowledge.resolve(technique_id)
    return CoverageTechnique(
        id=technique_id,
        name=technique.name if technique else None,
        status=resolution.status,
        replacement=resolution.replacement,
        rules=rules,
        feed=feed_url(FeedQuery(technique=[technique_id])),
    )


def _index_tactics(entry: CoverageTechnique, knowledge: KnowledgeBase) -> list[Tactic]:
    """Return the tactics of a technique. A revoked one takes those of its replacement."""
    technique = knowledge.technique(entry.replacement or entry.id)
    if technique is None:
        return []
    tactics = (tactic_by_any(shortname) for shortname in technique.tactics)
    return list(dict.fromkeys(tactic for tactic in tactics if tactic is not None))


def _active_techniques_per_tactic(knowledge: KnowledgeBase) -> dict[str, int]:
    """Count the techniques and sub-techniques per tactic id, leaving out revoked and deprecated."""
    totals: dict[str, int] = defaultdict(int)
    for technique in knowledge.index.techniques.values():
        if technique.revoked or technique.deprecated:
            continue
        tactics = {tactic_by_any(shortname) for shortname in technique.tactics}
        for tactic in tactics:
            if tactic is not None:
                totals[tactic.id] += 1
    return totals


def _coverage_by_rules(counts: dict[str, int], store: Store) -> CoverageOut:
    tactics: list[CoverageTactic] = []
    placed: set[str] = set()
    for tactic in TACTICS:
        # Counts only the rules that list both this tactic and the technique.
        query = FeedQuery(tactic=[tactic.name])
        per_technique = store.technique_counts(query)
        entries = [
            CoverageTechnique(
                id=technique_id,
                name=None,
                rules=count,
                feed=feed_url(FeedQuery(tactic=[tactic.name], technique=[technique_id])),
            )
            for technique_id, count in sorted(per_technique.items())
        ]
        placed.update(per_technique)
        tactics.append(_tactic_out(tactic, entries))

    ungrouped = [
        CoverageTechnique(
            id=technique_id,
            name=None,
            rules=count,
            feed=feed_url(FeedQuery(technique=[technique_id])),
        )
        for technique_id, count in sorted(counts.items())
        if technique_id not in placed
    ]
    return CoverageOut(grouping=BY_RULES, attack_version=None, tactics=tactics, ungrouped=ungrouped)


def _tactic_out(
    tactic: Tactic, techniques: list[CoverageTechnique], in_attack: int | None = None
) -> CoverageTactic:
    # With an index only active techniques count, so that revoked ids in old rules cannot
    # push the count past the ATT&CK total. Without one every listed id counts.
    covered = [entry for entry in techniques if entry.status in (None, "ok")]
    return CoverageTactic(
        id=tactic.id,
        shortname=tactic.shortname,
        name=tactic.name,
        techniques=techniques,
        techniques_with_rules=len(covered),
        techniques_in_attack=in_attack,
    )
