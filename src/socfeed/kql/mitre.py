"""Map the tactic and technique values that KQL rule files write to ATT&CK names and ids."""

from __future__ import annotations

from collections.abc import Iterable

from socfeed.attack.ids import normalize_technique_id, tactic_by_any


def map_tactics(values: Iterable[str]) -> tuple[list[str], list[str]]:
    """Return (display names of the known tactics, values that name no tactic), in order."""
    names: list[str] = []
    unknown: list[str] = []
    for value in values:
        tactic = tactic_by_any(value)
        if tactic is None:
            unknown.append(value)
        elif tactic.name not in names:
            names.append(tactic.name)
    return names, unknown


def map_techniques(values: Iterable[str]) -> tuple[list[str], list[str]]:
    """Return (normalized technique ids, values that are no technique id), in order."""
    ids: list[str] = []
    invalid: list[str] = []
    for value in values:
        technique = normalize_technique_id(value)
        if technique is None:
            invalid.append(value)
        elif technique not in ids:
            ids.append(technique)
    return ids, invalid
