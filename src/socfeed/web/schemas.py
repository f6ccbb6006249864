"""Response models of the JSON API, and their conversion from store values."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, Field

from socfeed.errors import Location
from socfeed.model import Rule
from socfeed.store import FeedPage, SourceRecord, StoredError
from socfeed.web.rendering import api_rule_path, rule_path, safe_href


class ApiError(BaseModel):
    """The status and reason of a failed request."""

    status: int = Field(description="HTTP status code, repeated from the response.")
    message: str


class ErrorResponse(BaseModel):
    """The body of every JSON error response."""

    error: ApiError


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Not found"},
    422: {"model": ErrorResponse, "description": "Invalid query parameter"},
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


class FacetCount(BaseModel):
    """How many rules match the filters for one value of a facet."""

    value: str
    count: int


class PageLinks(BaseModel):
    """API URLs of this page and its neighbours, with the same filters."""

    self: str
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
    """Rule count of one technique under one tactic."""

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
    feed: str = Field(description="Feed page listing these rules.")


class CoverageTactic(BaseModel):
    """A tactic with the techniques that rules cover under it."""

    id: str
    shortname: str
    name: str
    techniques: list[CoverageTechnique]
    techniques_with_rules: int = Field(
        description="Listed techniques that are active in the ATT&CK index (all without one)."
    )
    techniques_in_attack: int | None = Field(
        description="Active techniques and sub-techniques ATT&CK lists under this tactic; "
        "null when no ATT&CK index is installed."
    )


class CoverageOut(BaseModel):
    """Rule counts per technique, grouped by tactic in matrix order."""

    grouping: str = Field(description="How techniques were placed under tactics.")
    attack_version: str | None
    tactics: list[CoverageTactic]
    ungrouped: list[CoverageTechnique] = Field(
        description="Techniques that could not be placed under a tactic."
    )


def rule_links(rule: Rule) -> RuleLinks:
    """Return the links of a rule."""
    return RuleLinks(
        page=rule_path(rule.key), api=api_rule_path(rule.key), original=safe_href(rule.url)
    )


def rule_out(rule: Rule) -> RuleOut:
    """Convert a stored rule to its API document."""
    return RuleOut(**rule.to_dict(), tables=rule.tables(), links=rule_links(rule))


def rule_summary(rule: Rule) -> RuleSummary:
    """Convert a stored rule to its feed entry."""
    fields = {name: getattr(rule, name) for name in RuleSummary.model_fields if name != "links"}
    fields["tables"] = rule.tables()
    return RuleSummary(**fields, links=rule_links(rule))


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
        rules=[rule_summary(rule) for rule in page.rules],
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
