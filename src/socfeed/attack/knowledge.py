"""The ATT&CK knowledge base: technique look-up, id resolution and rule mapping normalization.

The knowledge base reads its index file on first use, never at import. By default that is
the fallback index committed in ``socfeed/attack/data``. Tests and callers with a newer
STIX bundle pass another file or index, or swap the default with :func:`use_knowledge_base`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from socfeed.attack.ids import Tactic, normalize_technique_id, tactic_by_any
from socfeed.attack.index import AttackIndex, Technique, read_index

log = logging.getLogger(__name__)

DEFAULT_INDEX_PATH = Path(__file__).resolve().parent / "data" / "enterprise-attack.json.gz"

Status = Literal["ok", "revoked", "deprecated", "unknown", "invalid"]


@dataclass(frozen=True)
class Resolution:
    """Outcome of resolving one technique id, as a rule wrote it, against the index."""

    original: str  # the value as written
    id: str | None  # the normalized form of ``original``, or None if it is no technique id
    status: Status
    # For a revoked id, the active technique at the end of its revoked-by chain.
    replacement: str | None = None
    warning: str = ""

    @property
    def effective_id(self) -> str | None:
        """Id to use for the rule: the replacement of a revoked id, else the normalized id."""
        return self.replacement or self.id


@dataclass(frozen=True)
class AttackMapping:
    """A rule's techniques and tactics after normalization against one ATT&CK version."""

    attack_version: str
    techniques: tuple[str, ...]  # sorted ids, replacements and added parents included
    tactics: tuple[str, ...]  # tactic display names in matrix order
    resolutions: tuple[Resolution, ...]  # one per distinct technique value of the rule
    added_parents: tuple[str, ...]
    added_tactics: tuple[str, ...]
    # Tactics the rule names that none of its known techniques belongs to.
    unmatched_tactics: tuple[str, ...]
    # Tactic values of the rule that name no tactic of this ATT&CK version.
    unknown_tactics: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Convert to plain JSON-ready data for storage."""
        return asdict(self)


@dataclass(frozen=True)
class _Loaded:
    index: AttackIndex
    tactic_by_key: dict[str, Tactic]
    tactic_by_shortname: dict[str, Tactic]
    tactic_position: dict[str, int]  # tactic id -> matrix position


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


class KnowledgeBase:
    """Enterprise ATT&CK techniques and tactics of one version, loaded on first use."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or DEFAULT_INDEX_PATH
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_index(cls, index: AttackIndex) -> KnowledgeBase:
        """Wrap an index built in memory, such as one from a STIX bundle."""
        knowledge_base = cls(Path("<memory>"))
        knowledge_base._loaded = _prepare(index)
        return knowledge_base

    def _data(self) -> _Loaded:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    started = time.perf_counter()
                    self._loaded = _prepare(read_index(self.path))
                    log.info(
                        "loaded ATT&CK %s index %s: %d techniques in %.1f ms",
                        self._loaded.index.attack_version,
                        self.path,
                        len(self._loaded.index.techniques),
                        (time.perf_counter() - started) * 1000,
                    )
        return self._loaded

    @property
    def index(self) -> AttackIndex:
        return self._data().index

    @property
    def attack_version(self) -> str:
        return self._data().index.attack_version

    def technique(self, technique_id: str) -> Technique | None:
        """Return the technique for an id in any form ``normalize_technique_id`` accepts."""
        normalized = normalize_technique_id(technique_id)
        if normalized is None:
            return None
        return self._data().index.techniques.get(normalized)

    def tactics_in_order(self) -> tuple[Tactic, ...]:
        """Return the tactics in matrix order (see the index's ``tactic_order_source``)."""
        return self._data().index.tactics

    def tactic(self, value: str) -> Tactic | None:
        """Return the tactic named by an id, shortname or display name of this version.

        Names of other ATT&CK versions resolve through the tactic's id, so "Defense Evasion"
        gives TA0005 Stealth in a v19 index and "Stealth" gives Defense Evasion in a v15 one.
        """
        data = self._data()
        found = data.tactic_by_key.get(_squash(value))
        if found is None:
            other_version = tactic_by_any(value)
            if other_version is not None:
                found = data.tactic_by_key.get(_squash(other_version.id))
        return found

    def resolve(self, raw_id: str) -> Resolution:
        """Resolve a technique id as written: normalize it and follow revoked-by links."""
        normalized = normalize_technique_id(raw_id)
        if normalized is None:
            reason = f"{raw_id!r} is not an ATT&CK technique id such as T1059 or T1059.001"
            return Resolution(raw_id, None, "invalid", warning=reason)

        index = self._data().index
        technique = index.techniques.get(normalized)
        version = index.attack_version
        if technique is None:
            warning = f"{normalized} is not a technique in ATT&CK {version}; kept as written"
            return Resolution(raw_id, normalized, "unknown", warning=warning)
        if technique.revoked or normalized in index.revoked_by:
            return self._resolve_revoked(raw_id, technique)
        if technique.deprecated:
            warning = f"{normalized} ({technique.name}) is deprecated in ATT&CK {version}"
            return Resolution(raw_id, normalized, "deprecated", warning=warning)
        return Resolution(raw_id, normalized, "ok")

    def _resolve_revoked(self, raw_id: str, technique: Technique) -> Resolution:
        index = self._data().index
        label = f"{technique.id} ({technique.name}) is revoked in ATT&CK {index.attack_version}"

        # Follow the chain: a replacement can itself have been revoked later (T1073 was
        # replaced by T1574.002, which v19 replaced by T1574.001).
        current, seen = technique.id, {technique.id}
        while current in index.revoked_by and index.revoked_by[current] not in seen:
            current = index.revoked_by[current]
            seen.add(current)
        replacement = index.techniques.get(current)
        if current == technique.id or replacement is None:
            return Resolution(raw_id, technique.id, "revoked", warning=f"{label}; no replacement")

        warning = f"{label}; replaced by {current} ({replacement.name})"
        if replacement.deprecated:
            warning += ", which is deprecated too"
        return Resolution(raw_id, technique.id, "revoked", current, warning)

    def normalize_rule_attack(
        self, techniques: Iterable[str], tactics: Iterable[str]
    ) -> AttackMapping:
        """Normalize a rule's ATT&CK mapping as a pure function of its inputs and this index.

        Revoked ids become their replacement, and the resolutions keep and flag the
        original. Deprecated ids are kept and flagged. Well-formed ids that this version does
        not know are kept with a warning. Values that are no technique id are dropped with a
        warning. The parent of every sub-technique is added. A technique none of whose
        tactics the rule names adds all its tactics. A tactic of the rule that fits none of
        its known techniques is kept and flagged. Tactic values that name no tactic of this
        version are left out with a warning.
        """
        resolutions = tuple(self.resolve(raw) for raw in _distinct(techniques))
        own_ids = _distinct(r.effective_id for r in resolutions if r.effective_id)
        added_parents = self._missing_parents(own_ids)
        rule_tactics, unknown_tactics = self._rule_tactics(tactics)
        added, unmatched = self._check_tactics(own_ids, rule_tactics)

        warnings = [r.warning for r in resolutions if r.warning]
        version = self.attack_version
        for value in unknown_tactics:
            warnings.append(f"{value!r} is not a tactic in ATT&CK {version}; left out")
        for tactic in unmatched:
            warnings.append(f"tactic {tactic.name} ({tactic.id}) fits none of the techniques")

        position = self._data().tactic_position
        all_tactics = sorted({*rule_tactics, *added}, key=lambda t: position.get(t.id, 999))
        return AttackMapping(
            attack_version=version,
            techniques=tuple(sorted({*own_ids, *added_parents})),
            tactics=tuple(t.name for t in all_tactics),
            resolutions=resolutions,
            added_parents=tuple(added_parents),
            added_tactics=tuple(t.name for t in added),
            unmatched_tactics=tuple(t.name for t in unmatched),
            unknown_tactics=tuple(unknown_tactics),
            warnings=tuple(warnings),
        )

    def _missing_parents(self, technique_ids: list[str]) -> list[str]:
        """Return the parents of sub-techniques that the list lacks and the index contains."""
        index = self._data().index
        parents: list[str] = []
        for technique_id in technique_ids:
            parent_id = technique_id.split(".", 1)[0] if "." in technique_id else None
            parent = index.techniques.get(parent_id) if parent_id else None
            if parent is None or parent.revoked or parent.id in technique_ids:
                continue
            if parent.id not in parents:
                parents.append(parent.id)
        return parents

    def _rule_tactics(self, values: Iterable[str]) -> tuple[list[Tactic], list[str]]:
        known: list[Tactic] = []
        unknown: list[str] = []
        for value in _distinct(values):
            tactic = self.tactic(value)
            if tactic is None:
                unknown.append(value)
            elif tactic not in known:
                known.append(tactic)
        return known, unknown

    def _check_tactics(
        self, technique_ids: list[str], rule_tactics: list[Tactic]
    ) -> tuple[list[Tactic], list[Tactic]]:
        """Return the tactics to add from the techniques and the rule tactics that fit none."""
        data = self._data()
        added: list[Tactic] = []
        fitting: set[Tactic] = set()
        for technique_id in technique_ids:
            technique = data.index.techniques.get(technique_id)
            if technique is None:
                continue
            own = [
                data.tactic_by_shortname[shortname]
                for shortname in technique.tactics
                if shortname in data.tactic_by_shortname
            ]
            fitting.update(own)
            if not any(tactic in rule_tactics for tactic in own):
                added.extend(t for t in own if t not in added and t not in rule_tactics)

        if not fitting:
            return added, []
        return added, [tactic for tactic in rule_tactics if tactic not in fitting]


def _distinct(values: Iterable[str | None]) -> list[str]:
    """Return the non-empty stripped values in order, without repeats."""
    stripped = (value.strip() for value in values if value)
    return list(dict.fromkeys(value for value in stripped if value))


def _prepare(index: AttackIndex) -> _Loaded:
    by_key: dict[str, Tactic] = {}
    for tactic in index.tactics:
        for key in (tactic.id, tactic.shortname, tactic.name):
            by_key[_squash(key)] = tactic
    return _Loaded(
        index=index,
        tactic_by_key=by_key,
        tactic_by_shortname={tactic.shortname: tactic for tactic in index.tactics},
        tactic_position={tactic.id: position for position, tactic in enumerate(index.tactics)},
    )


_default: KnowledgeBase | None = None


def default_knowledge_base() -> KnowledgeBase:
    """Return the shared knowledge base (or the one swapped in).

    It reads the index built from the latest STIX bundle when ``socfeed update`` or
    ``socfeed attack build`` wrote one, else the fallback index committed in the package.
    """
    global _default
    if _default is None:
        from socfeed.attack.refresh import current_index_path

        _default = KnowledgeBase(current_index_path())
    return _default


@contextmanager
def use_knowledge_base(knowledge_base: KnowledgeBase) -> Iterator[KnowledgeBase]:
    """Make ``knowledge_base`` the default inside a ``with`` block, as tests do."""
    global _default
    previous = _default
    _default = knowledge_base
    try:
        yield knowledge_base
    finally:
        _default = previous
