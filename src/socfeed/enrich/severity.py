"""Infer a severity for rules whose file gives none (hunting queries, Markdown KQL)."""

from __future__ import annotations

from collections.abc import Sequence

from socfeed.model import SEVERITIES, Severity

# Tactics whose success does the most harm come first; a rule takes the highest of its
# tactics. Keyed by display name as rules store them.
_TACTIC_SEVERITY: dict[str, Severity] = {
    "Impact": "high",
    "Exfiltration": "high",
    "Credential Access": "high",
    "Defense Impairment": "high",
    "Lateral Movement": "medium",
    "Privilege Escalation": "medium",
    "Persistence": "medium",
    "Execution": "medium",
    "Command and Control": "medium",
    "Stealth": "medium",
    "Initial Access": "medium",
    "Collection": "medium",
    "Discovery": "low",
    "Reconnaissance": "low",
    "Resource Development": "low",
}


def infer_severity(kind: str, tactics: Sequence[str]) -> tuple[Severity, str]:
    """Return a severity and the reason, from the rule's tactics and kind.

    A hunting query returns leads for an analyst, not alerts, so its inferred severity is at
    most medium.
    """
    ranked = [(SEVERITIES.index(_TACTIC_SEVERITY[t]), t) for t in tactics if t in _TACTIC_SEVERITY]
    if not ranked:
        if kind == "hunting":
            return "informational", "inferred: hunting query without ATT&CK tactics"
        return "low", "inferred: detection without ATT&CK tactics"
    rank, tactic = max(ranked)
    severity: Severity = SEVERITIES[rank]  # type: ignore[assignment]
    reason = f"inferred: from its most harmful tactic, {tactic}"
    if kind == "hunting" and rank > SEVERITIES.index("medium"):
        severity = "medium"
        reason += " (hunting queries are capped at medium)"
    return severity, reason
