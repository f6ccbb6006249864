"""Say how far to trust a rule's page: what came from the source, what was inferred."""

from __future__ import annotations

from dataclasses import dataclass, field

from socfeed.model import Rule

# Fields a rule page shows that the source file may or may not provide.
_CHECKED_FIELDS = (
    "title",
    "description",
    "severity",
    "techniques",
    "tactics",
    "data_sources",
    "false_positives",
    "author",
)


@dataclass
class Confidence:
    """A confidence label with the counts and reasons behind it."""

    level: str  # high, medium or low
    from_source: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    inferred: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    warnings: int = 0
    reasons: list[str] = field(default_factory=list)


def assess(rule: Rule, generated: dict[str, str], source_mapped: bool) -> Confidence:
    """Rate a rule.

    ``generated`` maps enrichment texts to their origin (source, template, model);
    ``source_mapped`` says whether the rule file itself named ATT&CK techniques.
    """
    result = Confidence(level="medium", warnings=len(rule.warnings))
    for name in _CHECKED_FIELDS:
        value = getattr(rule, name)
        how = rule.provenance.get(name, "")
        if not value:
            result.missing.append(name)
        elif how.startswith("inferred"):
            result.inferred.append(name)
        elif how.startswith("derived"):
            result.derived.append(name)
        else:
            result.from_source.append(name)
    for name, origin in generated.items():
        if origin != "source":
            result.inferred.append(name)

    result.reasons.append(
        f"{len(result.from_source)} fields taken from the source, {len(result.derived)} "
        f"derived from it, {len(result.inferred)} inferred, {len(result.missing)} missing"
    )
    if result.warnings:
        result.reasons.append(f"{result.warnings} parse or normalization warnings")
    result.level = _level(rule, result, source_mapped)
    return result


def _level(rule: Rule, result: Confidence, mapped: bool) -> str:
    if not rule.query.strip():
        result.reasons.append("the rule has no query text")
        return "low"
    if not mapped:
        result.reasons.append("the source maps no ATT&CK technique")
        return "low"
    if result.warnings >= 3:
        return "low"
    sourced = {"severity", "description"} <= set(result.from_source)
    if mapped and sourced and result.warnings <= 1:
        result.reasons.append("techniques, severity and description come from the source")
        return "high"
    return "medium"
