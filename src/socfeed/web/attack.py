"""ATT&CK context for the pages: technique names and details from the knowledge base.

The pages work without the knowledge base (they then show ids only), so a missing module or
index file is logged once and not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from socfeed.attack.ids import tactic_by_any
from socfeed.errors import SocfeedError
from socfeed.web.rendering import attack_tactic_url, attack_technique_url

if TYPE_CHECKING:
    from socfeed.attack.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

_unavailable_logged = False


def knowledge_base() -> KnowledgeBase | None:
    """Return the loaded default knowledge base, or None when it cannot be loaded."""
    global _unavailable_logged
    try:
        from socfeed.attack.knowledge import default_knowledge_base

        knowledge = default_knowledge_base()
        knowledge.attack_version  # noqa: B018 (loads the index now, so errors surface here)
    except (ImportError, SocfeedError, OSError) as exc:
        if not _unavailable_logged:
            log.warning("ATT&CK knowledge base unavailable, showing ids only: %s", exc)
            _unavailable_logged = True
        return None
    return knowledge


@dataclass
class TechniqueInfo:
    """A technique of a rule as the rule page shows it."""

    id: str
    url: str
    name: str | None = None
    tactics: list[str] = field(default_factory=list)
    summary: str = ""
    status: str = ""  # "ok", "revoked", "deprecated", "unknown"; empty without an index
    warning: str = ""
    detection: str = ""  # how to detect: ATT&CK's advice, or its detection strategies
    data_components: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)


@dataclass
class TacticInfo:
    """A tactic of a rule with its ATT&CK id and page, when the name is a known tactic."""

    name: str
    id: str | None
    url: str | None


def technique_info(technique_id: str, knowledge: KnowledgeBase | None) -> TechniqueInfo:
    """Describe one technique id, with names and details when the knowledge base has them."""
    info = TechniqueInfo(id=technique_id, url=attack_technique_url(technique_id))
    if knowledge is None:
        return info

    resolution = knowledge.resolve(technique_id)
    info.status = resolution.status
    info.warning = resolution.warning
    technique = knowledge.technique(technique_id)
    if technique is None:
        return info
    info.name = technique.name
    info.summary = technique.summary
    info.tactics = [_tactic_name(knowledge, shortname) for shortname in technique.tactics]
    strategies = "; ".join(f"{s.id} {s.name}" for s in technique.detection_strategies)
    info.detection = technique.detection or strategies
    info.data_components = [c.name for c in technique.data_components]
    info.platforms = list(technique.platforms)
    return info


def _tactic_name(knowledge: KnowledgeBase, shortname: str) -> str:
    tactic = knowledge.tactic(shortname)
    return tactic.name if tactic else shortname


def tactic_info(name: str) -> TacticInfo:
    """Describe one tactic of a rule."""
    found = tactic_by_any(name)
    return TacticInfo(name=name, id=found.id if found else None, url=attack_tactic_url(name))


def technique_names(technique_ids: Iterable[str]) -> dict[str, str]:
    """Return the ATT&CK names of those technique ids that the knowledge base contains."""
    knowledge = knowledge_base()
    if knowledge is None:
        return {}
    names: dict[str, str] = {}
    for technique_id in technique_ids:
        technique = knowledge.technique(technique_id)
        if technique is not None:
            names[technique_id] = technique.name
    return names
