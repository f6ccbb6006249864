"""The one rule model that every format is normalized into."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SEVERITIES = ("informational", "low", "medium", "high", "critical")
KINDS = ("detection", "hunting")

Severity = Literal["informational", "low", "medium", "high", "critical"]
Kind = Literal["detection", "hunting"]

# Namespace for rule ids derived from source + path + query index, so that the same file
# yields the same ids on every ingest.
_RULE_ID_NAMESPACE = uuid.UUID("5d1f2b8e-3c4a-4e0b-9a57-0c6f2f1f7a10")


@dataclass
class DataSource:
    """A table, log source, index or data source definition a rule reads."""

    # "table", "logsource", "index", "integration", "splunk_data_source", "connector",
    # "asim_parser", "watchlist" or "function"
    kind: str
    name: str
    note: str = ""
    custom: bool = False
    # How the entry was obtained, for example "source: requiredDataConnectors" or
    # "derived: read from the KQL query".
    origin: str = "source"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rule:
    """A detection or hunting rule in normalized form.

    Fields copied verbatim from the rule file carry no entry in ``provenance``; every other
    field that has a value records there how it was derived (``"derived: …"`` when computed
    from the file, ``"inferred: …"`` when guessed).
    """

    source: str
    path: str
    rule_id: str
    format: str
    title: str
    language: str
    kind: Kind
    query: str
    raw_text: str
    description: str = ""
    author: str = ""
    created: str | None = None
    modified: str | None = None
    status: str | None = None
    severity: Severity | None = None
    tactics: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    data_sources: list[DataSource] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)
    # Format-specific fields kept for the rule page (Sentinel queryFrequency, Sigma
    # logsource, Elastic risk_score, Splunk analytic stories, ...).
    extra: dict[str, Any] = field(default_factory=dict)
    # Position of the rule in its file: query index for multi-query files, first line.
    query_index: int = 0
    line: int | None = None
    # Set by the ingest from the source, not by parsers.
    url: str = ""
    commit: str | None = None
    retrieved_at: str = ""
    licence: str = ""
    official: bool = False
    # Unique key of the stored rule, "<source>:<rule_id>" plus a path suffix for duplicates.
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as plain JSON-compatible data.

        Nested values (``extra``, ``provenance``) are shared, not copied: dataclasses.asdict
        deep-copies them and was the slowest step of storing a large source.
        """
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["data_sources"] = [asdict(source) for source in self.data_sources]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        """Build a rule from ``to_dict`` output, ignoring keys this version does not know."""
        known = {name for name in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["data_sources"] = [DataSource(**d) for d in values.get("data_sources", [])]
        return cls(**values)

    def tables(self) -> list[str]:
        """Return the names of every data source, in order, without repeats."""
        return list(dict.fromkeys(d.name for d in self.data_sources))

    def content_hash(self) -> str:
        """Return a hash of the rule's text fields, used to detect changes between ingests."""
        digest = hashlib.sha256()
        for part in (self.title, self.description, self.query, self.raw_text):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        return digest.hexdigest()


def derive_rule_id(source: str, path: str, query_index: int = 0) -> str:
    """Return a stable id for a rule whose file gives none."""
    return str(uuid.uuid5(_RULE_ID_NAMESPACE, f"{source}\0{path}\0{query_index}"))
