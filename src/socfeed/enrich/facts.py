"""The facts about one rule that the text generators read, built from a Rule and ATT&CK data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from socfeed.attack.ids import normalize_technique_id, tactic_by_any
from socfeed.model import Rule

# Queries longer than this are cut before they reach a prompt: the start of a query names
# its tables and filters, and a prompt of a few KB keeps a local model fast.
QUERY_MAX_CHARS = 4000


class TechniqueRef(NamedTuple):
    """An ATT&CK technique of a rule: id, display name and the display names of its tactics.

    The name of a sub-technique includes its parent's, as in
    "Command and Scripting Interpreter: PowerShell". It is empty when ATT&CK data has no
    entry for the id.
    """

    id: str
    name: str
    tactics: tuple[str, ...]


class DataSourceRef(NamedTuple):
    """A table, log source or index a rule reads, with its DataSource kind."""

    name: str
    kind: str


@dataclass(frozen=True)
class RuleFacts:
    """Facts about one rule that the text generators read."""

    key: str  # the store key of the rule, for logs
    title: str
    description: str
    kind: str  # "detection" or "hunting"
    language: str
    severity: str | None
    techniques: tuple[TechniqueRef, ...]
    tactics: tuple[str, ...]  # tactic display names the rule itself lists
    data_sources: tuple[DataSourceRef, ...]
    false_positives: tuple[str, ...]  # the rule's own false-positive notes, verbatim
    query: str  # cut to QUERY_MAX_CHARS
    content_hash: str


class TechniqueInfo(Protocol):
    """The part of an ATT&CK technique record that facts need (socfeed.attack.index)."""

    @property
    def name(self) -> str: ...

    @property
    def tactics(self) -> tuple[str, ...]: ...


TechniqueLookup = Callable[[str], TechniqueInfo | None]


def facts_from_rule(rule: Rule, lookup: TechniqueLookup | None = None) -> RuleFacts:
    """Build the facts of a rule; ``lookup`` returns ATT&CK data for a technique id."""
    techniques = tuple(_technique_ref(raw, lookup) for raw in rule.techniques)
    return RuleFacts(
        key=rule.key or f"{rule.source}:{rule.rule_id}",
        title=rule.title,
        description=rule.description,
        kind=rule.kind,
        language=rule.language,
        severity=rule.severity,
        techniques=tuple(t for t in techniques if t is not None),
        tactics=_tactic_names(rule.tactics),
        data_sources=tuple(
            dict.fromkeys(DataSourceRef(d.name, d.kind) for d in rule.data_sources if d.name)
        ),
        false_positives=tuple(text for text in rule.false_positives if text.strip()),
        query=rule.query[:QUERY_MAX_CHARS],
        content_hash=rule.content_hash(),
    )


def _technique_ref(raw_id: str, lookup: TechniqueLookup | None) -> TechniqueRef | None:
    technique_id = normalize_technique_id(raw_id)
    if technique_id is None:
        return None
    info = lookup(technique_id) if lookup is not None else None
    if info is None:
        return TechniqueRef(technique_id, "", ())

    name = info.name
    parent_id = technique_id.split(".")[0]
    if parent_id != technique_id:
        parent = lookup(parent_id) if lookup is not None else None
        if parent is not None and not name.startswith(parent.name):
            name = f"{parent.name}: {name}"
    return TechniqueRef(technique_id, name, _tactic_names(info.tactics))


def _tactic_names(values: Sequence[str]) -> tuple[str, ...]:
    """Return display names for tactic ids, shortnames or names; unknown values are kept."""
    names: list[str] = []
    for value in values:
        tactic = tactic_by_any(value)
        names.append(tactic.name if tactic is not None else value)
    return tuple(dict.fromkeys(names))
