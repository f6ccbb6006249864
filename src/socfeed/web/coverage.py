"""ATT&CK coverage: the Enterprise matrix with rule counts per technique, and the gaps."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from socfeed.attack.ids import TACTICS, Tactic
from socfeed.store import FeedQuery
from socfeed.web.attack import knowledge_base
from socfeed.web.deps import FacetsDep, FeedQueryDep, my_tables_of
from socfeed.web.facets import FacetCounter
from socfeed.web.params import feed_url, filters_only, with_my_tables
from socfeed.web.rendering import render
from socfeed.web.schemas import (
    ERROR_RESPONSES,
    CoverageGap,
    CoverageLinks,
    CoverageOut,
    CoverageTactic,
    CoverageTechnique,
    GapKind,
)

if TYPE_CHECKING:
    from socfeed.attack.index import Technique
    from socfeed.attack.knowledge import KnowledgeBase

router = APIRouter()

BY_INDEX = "ATT&CK index: each technique is listed under the tactics ATT&CK gives it."
BY_RULES = (
    "rule tactics: no ATT&CK index is installed, so each technique is listed under the "
    "tactics that the rules naming it list; a rule with several tactics puts its "
    "techniques under each of them."
)
# Lowest rule count of shades 1 to 5; fixed, so that a shade means the same under any filter.
LEVELS = (1, 3, 10, 30, 100)
GapOrder = Literal["tactic", "technique", "gap"]
_GAP_RANK = {"no rule": 0, "hunting only": 1, "deprecated only": 2}
Counts = dict[str, dict[str, int]]

GapOrderParam = Annotated[
    GapOrder,
    Query(description="Order of the gap list: by tactic in matrix order, technique id or gap."),
]


@router.get("/coverage", response_class=HTMLResponse, include_in_schema=False)
def coverage_page(
    request: Request, query: FeedQueryDep, counter: FacetsDep, gaps: GapOrderParam = "tactic"
) -> HTMLResponse:
    """Render the coverage page."""
    filters = filters_only(query)
    coverage = build_coverage(counter, filters, gaps)
    mine = my_tables_of(request)
    facets = counter.facet_counts(filters, ("source", "language", "kind"))
    context = {
        "section": "coverage",
        "coverage": coverage,
        "query": filters,
        "facets": facets,
        "mine": mine,
        "gap_order": gaps,
        "gap_urls": {
            order: _gap_order_url(filters, order) for order in ("tactic", "technique", "gap")
        },
        "level_labels": level_labels(),
        "mine_on_url": feed_url(with_my_tables(filters, mine.tables), "/coverage")
        if mine.tables
        else None,
    }
    return render(request, "coverage.html", context)


@router.get(
    "/api/coverage", response_model=CoverageOut, responses=ERROR_RESPONSES, tags=["coverage"]
)
def api_coverage(
    query: FeedQueryDep, counter: FacetsDep, gaps: GapOrderParam = "tactic"
) -> CoverageOut:
    """Return rule counts per technique in ATT&CK matrix order, and the gaps.

    It takes the filters of the feed; order and page are ignored.
    """
    return build_coverage(counter, filters_only(query), gaps)


def build_coverage(
    counter: FacetCounter, query: FeedQuery, gap_order: GapOrder = "tactic"
) -> CoverageOut:
    """Count the rules matching ``query`` per technique and lay them out as the matrix."""
    knowledge = knowledge_base()
    links = coverage_links(query)
    if knowledge is None:
        return _coverage_by_rules(counter, query, links)
    merge = _revoked_replacements(counter, knowledge)
    counts = counter.technique_coverage(query, merge)
    tactics = [_tactic_column(tactic, counts, knowledge, query) for tactic in _tactics(knowledge)]
    placed = {entry.id for tactic in tactics for entry in _flatten(tactic.techniques)}
    ungrouped = [
        _entry(technique_id, counts, knowledge, query)
        for technique_id in sorted(counts)
        if technique_id not in placed
    ]
    return CoverageOut(
        grouping=BY_INDEX,
        attack_version=knowledge.attack_version,
        tactics=tactics,
        gaps=sort_gaps(gap_list(counts, knowledge, query), gap_order, knowledge),
        ungrouped=ungrouped,
        levels=list(LEVELS),
        links=links,
    )


def coverage_links(query: FeedQuery) -> CoverageLinks:
    """Return the links of this coverage view."""
    return CoverageLinks(
        self=feed_url(query, "/api/coverage"),
        html=feed_url(query, "/coverage"),
        navigator=feed_url(query, "/coverage/navigator.json"),
        feed=feed_url(query),
    )


def level(rules: int) -> int:
    """Return the shade of a cell with ``rules`` rules: 0 for none, up to 5."""
    return sum(1 for lowest in LEVELS if rules >= lowest)


def level_labels() -> list[tuple[int, str]]:
    """Return (shade, label) for the legend, such as (2, "3–9 rules")."""
    labels = [(0, "no rule")]
    for number, lowest in enumerate(LEVELS, start=1):
        if number < len(LEVELS):
            highest = LEVELS[number] - 1
            text = f"{lowest} rule" if lowest == highest else f"{lowest}–{highest} rules"
        else:
            text = f"{lowest} rules or more"
        labels.append((number, text))
    return labels


def _tactics(knowledge: KnowledgeBase) -> tuple[Tactic, ...]:
    return knowledge.tactics_in_order() or TACTICS


def _active(knowledge: KnowledgeBase) -> list[Technique]:
    return [t for t in knowledge.index.techniques.values() if not (t.revoked or t.deprecated)]


def _revoked_replacements(counter: FacetCounter, knowledge: KnowledgeBase) -> dict[str, str]:
    """Map each revoked id that some rule names onto its active replacement."""
    merge: dict[str, str] = {}
    for technique_id in counter.index().values["technique"]:
        resolution = knowledge.resolve(technique_id)
        if resolution.status == "revoked" and resolution.replacement:
            merge[technique_id] = resolution.replacement
    return merge


def _tactic_column(
    tactic: Tactic, counts: Counts, knowledge: KnowledgeBase, query: FeedQuery
) -> CoverageTactic:
    members = [t for t in _active(knowledge) if tactic.shortname in t.tactics]
    parents = sorted((t for t in members if not t.is_subtechnique), key=lambda t: t.name)
    children: dict[str, list[Technique]] = defaultdict(list)
    for technique in members:
        if technique.parent_id:
            children[technique.parent_id].append(technique)
    cells = []
    for parent in parents:
        cell = _entry(parent.id, counts, knowledge, query)
        subs = sorted(children.get(parent.id, []), key=lambda t: t.name)
        cell.subtechniques = [_entry(sub.id, counts, knowledge, query) for sub in subs]
        cells.append(cell)
    return CoverageTactic(
        id=tactic.id,
        shortname=tactic.shortname,
        name=tactic.name,
        techniques=cells,
        techniques_with_rules=sum(1 for t in members if counts.get(t.id, {}).get("rules")),
        techniques_in_attack=len(members),
    )


def _entry(
    technique_id: str, counts: Counts, knowledge: KnowledgeBase | None, query: FeedQuery
) -> CoverageTechnique:
    found = counts.get(technique_id, {})
    technique = knowledge.technique(technique_id) if knowledge else None
    resolution = knowledge.resolve(technique_id) if knowledge else None
    rules = found.get("rules", 0)
    return CoverageTechnique(
        id=technique_id,
        name=technique.name if technique else None,
        status=resolution.status if resolution else None,
        replacement=resolution.replacement if resolution else None,
        rules=rules,
        detection=found.get("detection", 0),
        hunting=found.get("hunting", 0),
        deprecated=found.get("deprecated", 0),
        level=level(rules),
        feed=feed_url(dataclasses.replace(query, technique=[technique_id])),
    )


def _flatten(entries: list[CoverageTechnique]) -> list[CoverageTechnique]:
    return [item for entry in entries for item in (entry, *entry.subtechniques)]


def gap_list(counts: Counts, knowledge: KnowledgeBase, query: FeedQuery) -> list[CoverageGap]:
    """Return the active techniques with no rule, only hunting queries or only deprecated rules."""
    gaps = []
    for technique in _active(knowledge):
        found = counts.get(technique.id, {})
        rules = found.get("rules", 0)
        gap: GapKind
        if rules == 0:
            gap = "no rule"
        elif found.get("deprecated", 0) == rules:
            gap = "deprecated only"
        elif found.get("active_detection", 0) == 0:
            gap = "hunting only"
        else:
            continue
        tactics = [t.name for t in (knowledge.tactic(s) for s in technique.tactics) if t]
        gaps.append(
            CoverageGap(
                id=technique.id,
                name=technique.name,
                tactics=tactics,
                gap=gap,
                rules=rules,
                hunting=found.get("hunting", 0),
                deprecated=found.get("deprecated", 0),
                feed=feed_url(dataclasses.replace(query, technique=[technique.id])),
            )
        )
    return gaps


def sort_gaps(
    gaps: list[CoverageGap], order: GapOrder, knowledge: KnowledgeBase
) -> list[CoverageGap]:
    """Sort the gap list by tactic in matrix order, by technique id or by kind of gap."""
    position = {tactic.name: number for number, tactic in enumerate(_tactics(knowledge))}

    def by_tactic(gap: CoverageGap) -> tuple[int, str]:
        first = min((position.get(name, len(position)) for name in gap.tactics), default=99)
        return first, gap.id

    if order == "technique":
        return sorted(gaps, key=lambda gap: gap.id)
    if order == "gap":
        return sorted(gaps, key=lambda gap: (_GAP_RANK[gap.gap], *by_tactic(gap)))
    return sorted(gaps, key=by_tactic)


def _gap_order_url(query: FeedQuery, order: str) -> str:
    url = feed_url(query, "/coverage")
    if order == "tactic":
        return url + "#gaps"
    return url + ("&" if "?" in url else "?") + f"gaps={order}#gaps"


def _coverage_by_rules(
    counter: FacetCounter, query: FeedQuery, links: CoverageLinks
) -> CoverageOut:
    counts = counter.technique_coverage(query)
    tactics: list[CoverageTactic] = []
    placed: set[str] = set()
    for tactic in TACTICS:
        # Counts only the rules that list both this tactic and the technique.
        in_tactic = dataclasses.replace(query, tactic=[*query.tactic, tactic.name])
        per_technique = counter.technique_coverage(in_tactic)
        entries = [
            _entry(technique_id, per_technique, None, in_tactic)
            for technique_id in sorted(per_technique)
        ]
        placed.update(per_technique)
        tactics.append(
            CoverageTactic(
                id=tactic.id,
                shortname=tactic.shortname,
                name=tactic.name,
                techniques=entries,
                techniques_with_rules=len(entries),
                techniques_in_attack=None,
            )
        )
    ungrouped = [_entry(t, counts, None, query) for t in sorted(counts) if t not in placed]
    return CoverageOut(
        grouping=BY_RULES,
        attack_version=None,
        tactics=tactics,
        gaps=[],
        ungrouped=ungrouped,
        levels=list(LEVELS),
        links=links,
    )
