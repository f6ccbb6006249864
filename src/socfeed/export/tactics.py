"""Technique -> tactic lookups for exports, over the ATT&CK knowledge base when it exists.

Exports need the tactics of a technique (a Navigator layer places each technique under a
tactic). The lookup is a small protocol so that tests can hand in a dict, and so that the
exports keep working where the knowledge base is missing or fails to load.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from socfeed.attack.ids import tactic_by_any
from socfeed.errors import SocfeedError

log = logging.getLogger(__name__)

# The ATT&CK version whose tactics socfeed.attack.ids lists; used when no knowledge base
# gives a version.
FALLBACK_ATTACK_VERSION = "19"


class TechniqueTactics(Protocol):
    """Tactics and names of ATT&CK techniques, by technique id."""

    @property
    def attack_version(self) -> str:
        """ATT&CK major version of the data, such as ``"19"``."""
        ...

    def tactics_of(self, technique_id: str) -> tuple[str, ...]:
        """Return the tactic shortnames of a technique, or () when the technique is unknown."""
        ...

    def name_of(self, technique_id: str) -> str | None:
        """Return the technique's name, or None when unknown."""
        ...

    def current_id(self, technique_id: str) -> str:
        """Return the replacement of a revoked technique id, else the id itself."""
        ...


@dataclass(frozen=True)
class StaticTactics:
    """A lookup over plain mappings, for tests and for running without ATT&CK data."""

    tactics: Mapping[str, Sequence[str]] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    # Revoked technique id -> the technique that replaces it.
    replacements: Mapping[str, str] = field(default_factory=dict)
    attack_version: str = FALLBACK_ATTACK_VERSION

    def tactics_of(self, technique_id: str) -> tuple[str, ...]:
        """Return the tactic shortnames of a technique, or of its parent for a sub-technique."""
        for candidate in _self_then_parent(technique_id):
            if candidate in self.tactics:
                return tuple(self.tactics[candidate])
        return ()

    def name_of(self, technique_id: str) -> str | None:
        """Return the technique's name from the mapping, or None."""
        return self.names.get(technique_id)

    def current_id(self, technique_id: str) -> str:
        """Return the replacement from the mapping, else the id itself."""
        return self.replacements.get(technique_id, technique_id)


class KnowledgeTactics:
    """A lookup over the ATT&CK knowledge base (``socfeed.attack.knowledge.KnowledgeBase``)."""

    def __init__(self, knowledge: Any) -> None:
        self._knowledge = knowledge

    @property
    def attack_version(self) -> str:
        """ATT&CK major version of the loaded data."""
        version = str(self._knowledge.attack_version)
        return version.split(".", 1)[0] or FALLBACK_ATTACK_VERSION

    def tactics_of(self, technique_id: str) -> tuple[str, ...]:
        """Return the technique's tactic shortnames, or its parent's for a sub-technique."""
        for candidate in _self_then_parent(technique_id):
            technique = self._knowledge.technique(candidate)
            if technique is not None and technique.tactics:
                return tuple(technique.tactics)
        return ()

    def name_of(self, technique_id: str) -> str | None:
        """Return the technique's name from the knowledge base, or None."""
        technique = self._knowledge.technique(technique_id)
        return None if technique is None else str(technique.name)

    def current_id(self, technique_id: str) -> str:
        """Return the active technique at the end of a revoked id's revoked-by chain."""
        resolution = self._knowledge.resolve(technique_id)
        return str(resolution.effective_id or technique_id)


def _self_then_parent(technique_id: str) -> list[str]:
    # ATT&CK gives a sub-technique the tactics of its parent.
    parent = technique_id.split(".", 1)[0]
    return [technique_id] if parent == technique_id else [technique_id, parent]


def default_tactics() -> TechniqueTactics:
    """Return a lookup over the shared knowledge base, or an empty one if it is unusable.

    With the empty lookup, exports place a technique only under the tactics its rule names.
    """
    try:
        knowledge_module = importlib.import_module("socfeed.attack.knowledge")
    except ImportError:
        log.debug("ATT&CK knowledge base not installed, so tactics come from the rules alone")
        return StaticTactics()

    lookup = KnowledgeTactics(knowledge_module.default_knowledge_base())
    try:
        # The knowledge base reads its index on first use; read it here to catch failures.
        version = lookup.attack_version
    except SocfeedError as exc:
        log.warning("ATT&CK knowledge base failed to load, tactics come from the rules: %s", exc)
        return StaticTactics()
    log.debug("tactics from the ATT&CK knowledge base version=%s", version)
    return lookup


def tactics_for(
    technique_id: str, rule_tactics: Iterable[str], lookup: TechniqueTactics
) -> list[str]:
    """Return the tactic shortnames to place a technique under, for one rule.

    The rule's own tactics that fit the technique win. When none fit, every tactic of the
    technique is used. When the lookup does not know the technique, the rule's tactics are
    used as they are, because nothing can check them.
    """
    own = list(dict.fromkeys(_shortnames(rule_tactics)))
    known = lookup.tactics_of(technique_id)
    if not known:
        return own

    fitting = [shortname for shortname in own if shortname in known]
    return fitting or list(known)


def _shortnames(values: Iterable[str]) -> Iterable[str]:
    for value in values:
        tactic = tactic_by_any(value)
        if tactic is not None:
            yield tactic.shortname
