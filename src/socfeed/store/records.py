"""Values passed in and out of the store."""

from __future__ import annotations

from dataclasses import dataclass, field

from socfeed.model import Rule


@dataclass
class SourceRecord:
    """The stored record of one source and its latest ingest."""

    name: str
    format: str
    repo_url: str = ""
    web_url: str = ""  # https://github.com/<owner>/<repo>, base of original-file links
    licence: str = ""
    official: bool = False
    vendor: str = ""
    commit: str | None = None
    ref: str | None = None
    retrieved_at: str = ""
    location: str = ""  # where the files were read: cache folder, mirror or local path
    is_sample: bool = False
    files_seen: int = 0
    files_with_rules: int = 0
    files_failed: int = 0
    rules: int = 0
    duplicates: int = 0


@dataclass
class StoredError:
    """A file, or part of one, that yielded no rule, with the reason."""

    source: str
    path: str
    line: int | None
    column: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.path}"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.reason}"


@dataclass
class SaveResult:
    """Outcome of replacing one source's rules."""

    stored: int
    kept_stale: int
    duplicates: list[tuple[str, list[str]]]  # (rule_id, paths)


FACET_NAMES = (
    "source",
    "language",
    "severity",
    "kind",
    "official",
    "status",
    "tactic",
    "technique",
    "table",
    "tag",
)


@dataclass
class FeedQuery:
    """Filters, search text, order and page of a feed request."""

    text: str = ""
    source: list[str] = field(default_factory=list)
    language: list[str] = field(default_factory=list)
    severity: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    tactic: list[str] = field(default_factory=list)
    technique: list[str] = field(default_factory=list)
    table: list[str] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    official: bool | None = None
    # "My data sources": when set, only rules whose every table or data source is in this
    # list (case-insensitive) match, i.e. the rules a SOC collecting these can run.
    my_tables: list[str] | None = None
    # "relevance" (the default when there is search text), "newest", "severity" or "title".
    sort: str = ""
    page: int = 1
    per_page: int = 50


@dataclass
class FeedPage:
    """One page of the feed with the total count and facet counts for the same filters."""

    rules: list[Rule]
    total: int
    page: int
    per_page: int
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # Excerpts of the best matching field per rule key, matches between search.START/END.
    snippets: dict[str, str] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))
