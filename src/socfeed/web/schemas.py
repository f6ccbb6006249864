"""Response models of the JSON API, and their conversion from store values."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, Field

from socfeed.errors import Location
from socfeed.model import Rule
from socfeed.store import FeedPage, RuleLink, SourceRecord, StoredError, Suggestion
from socfeed.store.search import END, START
from socfeed.web.rendering import api_rule_path, rule_path, safe_href


class ApiError(BaseModel):
    """The status and reason of a failed request."""

    status: int = Field(description="HTTP status code, repeated from the response.")
    message: str


class ErrorResponse(BaseModel):
    """The body of every JSON error response."""

    error: ApiError


# Every JSON route can fail on a bad parameter, an unreadable store or a bug.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Invalid query parameter"},
    500: {"model": ErrorResponse, "description": "Internal error"},
    503: {"model": ErrorResponse, "description": "The rule store could not be read"},
}
NOT_FOUND_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Not found"},
    **ERROR_RESPONSES,
}


class RuleLinks(BaseModel):
    """Links to a rule's page, its API document and its original file."""

    page: str
    api: str
    original: str | None = Field(description="The file in its repository; null if unknown.")


class DataSourceOut(BaseModel):
    """A table, log source, index or data source a rule reads."""

    kind: str
    name: str
    note: str
    custom: bool
    origin: str
    details: dict[str, Any]


class RuleOut(BaseModel):
    """A stored rule with every field of the normalized model."""

    key: str
    source: str
    path: str
    rule_id: str
    format: str
    title: str
    language: str
    kind: str
    query: str
    raw_text: str
    description: str
    author: str
    created: str | None
    modified: str | None
    status: str | None
    severity: str | None
    tactics: list[str]
    techniques: list[str]
    data_sources: list[DataSourceOut]
    tables: list[str]
    tags: list[str]
    references: list[str]
    false_positives: list[str]
    warnings: list[str]
    provenance: dict[str, str]
    extra: dict[str, Any]
    query_index: int
    line: int | None
    url: str
    commit: str | None
    retrieved_at: str
    licence: str
    official: bool
    links: RuleLinks
    related: list[RelatedRule] = Field(
        description="Similar rules of other sources and exact duplicates within the source."
    )
    suggested_techniques: list[SuggestedTechnique] = Field(
        description="Techniques a classifier suggests; never part of ``techniques``."
    )
    versions: list[RuleVersion] = Field(description="Earlier versions, newest first.")


class RelatedRule(BaseModel):
    """A rule linked to this one."""

    key: str
    title: str
    source: str
    relation: Literal["similar", "duplicate"]
    score: float
    reason: str
    links: RuleLinks


class SuggestedTechnique(BaseModel):
    """A technique suggested by a classifier for a rule whose source maps none."""

    technique: str
    score: float
    model: str


class RuleVersion(BaseModel):
    """An earlier content of a rule, replaced or retired by a later update."""

    content_hash: str
    retrieved_at: str
    replaced_at: str
    reason: str = Field(description="changed (a newer content replaced it) or retired.")


class Snippet(BaseModel):
    """An excerpt of the best matching field of a rule for the search words."""

    text: str
    matches: list[tuple[int, int]] = Field(
        description="Start and end offsets of each match in ``text``."
    )


class RuleSummary(BaseModel):
    """A rule as the feed lists it; the full rule is at ``links.api``."""

    key: str
    source: str
    path: str
    rule_id: str
    title: str
    language: str
    kind: str
    severity: str | None
    status: str | None
    official: bool
    created: str | None
    modified: str | None
    retrieved_at: str
    tactics: list[str]
    techniques: list[str]
    tables: list[str]
    tags: list[str]
    links: RuleLinks
    snippet: Snippet | None = Field(
        default=None, description="Excerpt with the search matches; null without search words."
    )


class FacetCount(BaseModel):
    """How many rules match the filters for one value of a facet."""

    value: str
    count: int


class PageLinks(BaseModel):
    """API URLs of this page and its neighbours, with the same filters, and its HTML page."""

    self: str
    html: str
    next: str | None
    prev: str | None


class FeedOut(BaseModel):
    """A page of the feed, newest first unless ``sort`` names another order."""

    total: int
    page: int
    pages: int
    per_page: int
    rules: list[RuleSummary]
    facets: dict[str, list[FacetCount]] = Field(
        description="Counts per facet value under every filter except that facet's own."
    )
    links: PageLinks


class SourceOut(BaseModel):
    """A source and the numbers of its latest ingest."""

    name: str
    format: str
    repo_url: str
    web_url: str
    licence: str
    official: bool
    vendor: str
    commit: str | None
    ref: str | None
    retrieved_at: str
    location: str
    is_sample: bool
    files_seen: int
    files_with_rules: int
    files_failed: int
    rules: int
    duplicates: int


class ParseErrorOut(BaseModel):
    """A file, or part of one, that yielded no rule in the latest ingest."""

    source: str
    path: str
    line: int | None
    column: int | None
    reason: str
    location: str = Field(description="source:path:line:column, as far as known.")


class SourcesOut(BaseModel):
    """Every source and the parse errors of their latest ingests."""

    sources: list[SourceOut]
    errors: list[ParseErrorOut]


class CoverageTechnique(BaseModel):
    """Rule counts of one technique, as a cell of the coverage matrix."""

    id: str
    name: str | None = Field(description="Null when no ATT&CK index is installed.")
    status: str | None = Field(
        default=None,
        description="ok, revoked, deprecated or unknown in the ATT&CK index; null without one.",
    )
    replacement: str | None = Field(
        default=None, description="The technique that replaced a revoked one."
    )
    rules: int
    detection: int = Field(description="Rules that are detections.")
    hunting: int = Field(description="Rules that are hunting queries.")
    deprecated: int = Field(description="Rules whose status is deprecated.")
    level: int = Field(description="Shade of the cell, 0 (no rule) to 5 (most rules).")
    feed: str = Field(description="Feed page listing these rules.")
    subtechniques: list[CoverageTechnique] = Field(
        default_factory=list, description="Sub-techniques of a technique under the same tactic."
    )


class CoverageTactic(BaseModel):
    """A tactic of the matrix with its techniques, sub-techniques nested under their parent."""

    id: str
    shortname: str
    name: str
    techniques: list[CoverageTechnique]
    techniques_with_rules: int = Field(
        description="Active techniques and sub-techniques under this tactic that have rules "
        "(every listed id without an ATT&CK index)."
    )
    techniques_in_attack: int | None = Field(
        description="Active techniques and sub-techniques ATT&CK lists under this tactic; "
        "null when no ATT&CK index is installed."
    )


GapKind = Literal["no rule", "hunting only", "deprecated only"]


class CoverageGap(BaseModel):
    """An active technique without a usable detection under the filters."""

    id: str
    name: str | None
    tactics: list[str]
    gap: GapKind
    rules: int
    hunting: int
    deprecated: int
    feed: str


class CoverageLinks(BaseModel):
    """This coverage with the same filters as JSON, as a page, as a layer and as a feed."""

    self: str
    html: str
    navigator: str
    feed: str


class CoverageOut(BaseModel):
    """Rule counts per technique, grouped by tactic in matrix order, and the gaps."""

    grouping: str = Field(description="How techniques were placed under tactics.")
    attack_version: str | None
    tactics: list[CoverageTactic]
    gaps: list[CoverageGap] = Field(
        description="Active techniques with no rule, only hunting queries or only deprecated "
        "rules, by tactic in matrix order; empty without an ATT&CK index."
    )
    ungrouped: list[CoverageTechnique] = Field(
        description="Techniques that could not be placed under a tactic."
    )
    levels: list[int] = Field(
        description="Lowest rule count of each shade from 1 up; shade 0 is no rule."
    )
    links: CoverageLinks


def rule_links(rule: Rule) -> RuleLinks:
    """Return the links of a rule."""
    return RuleLinks(
        page=rule_path(rule.key), api=api_rule_path(rule.key), original=safe_href(rule.url)
    )


def rule_out(
    rule: Rule,
    links: list[RuleLink] | None = None,
    suggestions: list[Suggestion] | None = None,
    versions: list[dict[str, Any]] | None = None,
) -> RuleOut:
    """Convert a stored rule, its links, suggestions and versions to its API document."""
    return RuleOut(
        **rule.to_dict(),
        tables=rule.tables(),
        links=rule_links(rule),
        related=[related_rule(link) for link in links or []],
        suggested_techniques=[
            SuggestedTechnique(technique=item.technique, score=item.score, model=item.model)
            for item in suggestions or []
        ],
        versions=[RuleVersion(**version) for version in versions or []],
    )


def related_rule(link: RuleLink) -> RelatedRule:
    """Convert a stored link between rules to its API form."""
    return RelatedRule(
        key=link.other_key,
        title=link.title,
        source=link.source,
        relation="duplicate" if link.relation == "duplicate" else "similar",
        score=link.score,
        reason=link.reason,
        links=RuleLinks(
            page=rule_path(link.other_key), api=api_rule_path(link.other_key), original=None
        ),
    )


def rule_summary(rule: Rule, snippet: str | None = None) -> RuleSummary:
    """Convert a stored rule to its feed entry."""
    names = (name for name in RuleSummary.model_fields if name not in ("links", "snippet"))
    fields = {name: getattr(rule, name) for name in names}
    fields["tables"] = rule.tables()
    return RuleSummary(
        **fields, links=rule_links(rule), snippet=snippet_out(snippet) if snippet else None
    )


def snippet_out(marked: str) -> Snippet:
    """Convert an excerpt with START/END markers to text and match offsets."""
    text: list[str] = []
    matches: list[tuple[int, int]] = []
    head, *rest = marked.split(START)
    text.append(head.replace(END, ""))
    for chunk in rest:
        match, found, after = chunk.partition(END)
        start = sum(len(part) for part in text)
        text.append(match)
        if found:
            matches.append((start, start + len(match)))
            text.append(after.replace(END, ""))
    return Snippet(text="".join(text), matches=matches)


def feed_out(page: FeedPage, links: PageLinks) -> FeedOut:
    """Convert a feed page to its API document."""
    facets = {
        name: [FacetCount(value=value, count=count) for value, count in counts]
        for name, counts in page.facets.items()
    }
    return FeedOut(
        total=page.total,
        page=page.page,
        pages=page.pages,
        per_page=page.per_page,
        rules=[rule_summary(rule, page.snippets.get(rule.key)) for rule in page.rules],
        facets=facets,
        links=links,
    )


def sources_out(records: list[SourceRecord], errors: list[StoredError]) -> SourcesOut:
    """Convert sources and parse errors to their API document."""
    return SourcesOut(
        sources=[SourceOut(**asdict(record)) for record in records],
        errors=[ParseErrorOut(**asdict(error), location=_location(error)) for error in errors],
    )


def _location(error: StoredError) -> str:
    return str(Location(error.source, error.path, error.line, error.column))
